"""Root ids written as CIDv1 text, the form IPFS provider records use.

A root id (BLAKE2b-256, 32 bytes) is written as a CIDv1 with the ``raw``
codec (0x55) and a ``blake2b-256`` multihash (0xb220), in multibase
base32-lower (prefix ``b``): always 62 characters, e.g. ``bafk2bzace…``.
Parsing accepts exactly that form and nothing else, so one root id has one
spelling.
"""

from __future__ import annotations

import base64

from p2pshare.errors import LinkError

__all__ = ["CID_TEXT_LEN", "cid_to_root", "root_to_cid"]

# varint(1) varint(0x55) varint(0xb220) varint(32)
_PREFIX = bytes([0x01, 0x55, 0xA0, 0xE4, 0x02, 0x20])
CID_TEXT_LEN = 62


def root_to_cid(root_id: bytes) -> str:
    """Write a 32-byte root id as CIDv1 base32 text."""
    if len(root_id) != 32:
        raise ValueError("root id must be 32 bytes")
    return "b" + base64.b32encode(_PREFIX + root_id).decode("ascii").lower().rstrip("=")


def cid_to_root(text: object) -> bytes:
    """Parse CIDv1 text back into a root id.

    Raises:
        LinkError: ``text`` is not a p2pshare root id.
    """
    if not isinstance(text, str) or len(text) != CID_TEXT_LEN or text[0] != "b":
        raise LinkError("root id: not a 62-character CIDv1 (base32, starting with 'b')")
    body = text[1:]
    if not all(c in "abcdefghijklmnopqrstuvwxyz234567" for c in body):
        raise LinkError("root id: not lowercase base32")
    raw = base64.b32decode(body.upper() + "===")
    if raw[: len(_PREFIX)] != _PREFIX or len(raw) != len(_PREFIX) + 32:
        raise LinkError("root id: not a raw BLAKE2b-256 CIDv1")
    root = raw[len(_PREFIX) :]
    if root_to_cid(root) != text:  # trailing bits must be zero
        raise LinkError("root id: non-canonical encoding")
    return root
