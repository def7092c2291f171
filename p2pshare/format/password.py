"""Password links: the key in a link's fragment, wrapped by a password.

Theory of operation
-------------------
``share/add --password`` prints a link whose fragment is not the 32-byte
file key but ``pw1.<base64url>`` of::

    salt       16 bytes, random
    ops        u32be  Argon2id iterations (opslimit)
    mem        u32be  Argon2id memory in KiB (memlimit / 1024)
    nonce      24 bytes, random
    box        XChaCha20-Poly1305(key = Argon2id(password, salt, ops, mem),
                                  AD = b"p2pshare/pwlink/1" || salt || ops || mem,
                                  plaintext = the 32-byte file key)   48 bytes

(96 bytes, 128 characters). Whoever has the link and the password gets the
key; the link alone gives nothing but an offline guessing target whose
every guess costs one Argon2id run. The parameters travel in the link so
they can be raised later (``--password-strength``); a getter refuses ones
outside :data:`MIN_OPS`..:data:`MAX_OPS` and :data:`MIN_MEM_KIB`..
:data:`MAX_MEM_KIB` before running anything, so a hostile link cannot make
it spend minutes or gigabytes. A wrong password fails the box's
authentication: :class:`~p2pshare.errors.AccessDenied` (exit 5), before any
network access, so no provider serves a byte for it.

Known answers: ``tests/data/vectors/pwlink-v1.json``.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable
from typing import Final

import nacl.pwhash.argon2id as argon2id
import nacl.utils

from p2pshare.errors import AccessDenied, LinkError
from p2pshare.format.aead import AuthenticationFailed, xchacha_open, xchacha_seal

__all__ = [
    "MODERATE",
    "PREFIX",
    "SENSITIVE",
    "is_wrapped",
    "unwrap_key",
    "wrap_key",
]

PREFIX: Final = "pw1."
_AD: Final = b"p2pshare/pwlink/1"
_HEAD: Final = struct.Struct(">16sII")
_NONCE: Final = 24
_KEY: Final = 32
_BLOB: Final = _HEAD.size + _NONCE + _KEY + 16  # 96 bytes
MIN_OPS, MAX_OPS = 1, 10
MIN_MEM_KIB, MAX_MEM_KIB = 8 * 1024, 1024 * 1024  # 8 MiB .. 1 GiB
# libsodium's presets: moderate (~0.4 s, 256 MiB here) and sensitive
MODERATE: Final = (argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE // 1024)
SENSITIVE: Final = (argon2id.OPSLIMIT_SENSITIVE, argon2id.MEMLIMIT_SENSITIVE // 1024)

Rng = Callable[[int], bytes]


def is_wrapped(fragment: str) -> bool:
    return fragment.startswith(PREFIX)


def _derive(password: bytes, salt: bytes, ops: int, mem_kib: int) -> bytes:
    return bytes(
        argon2id.kdf(_KEY, password, salt, opslimit=ops, memlimit=mem_kib * 1024)
    )


def wrap_key(
    key: bytes,
    password: bytes,
    *,
    params: tuple[int, int] = MODERATE,
    rng: Rng = nacl.utils.random,
) -> str:
    """The fragment ``pw1.…`` holding ``key`` under ``password``."""
    ops, mem_kib = params
    if len(key) != _KEY or not password:
        raise ValueError("wrap_key: a 32-byte key and a non-empty password")
    if not (MIN_OPS <= ops <= MAX_OPS and MIN_MEM_KIB <= mem_kib <= MAX_MEM_KIB):
        raise ValueError("wrap_key: Argon2id parameters out of range")
    salt, nonce = rng(16), rng(_NONCE)
    head = _HEAD.pack(salt, ops, mem_kib)
    box = xchacha_seal(_derive(password, salt, ops, mem_kib), nonce, _AD + head, key)
    blob = head + nonce + box
    return PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")


def parse_wrapped(fragment: str) -> bytes:
    """Check a ``pw1.…`` fragment's shape and parameters (no Argon2id run).

    Raises:
        LinkError: malformed, or parameters outside the accepted range.
    """
    text = fragment[len(PREFIX) :]
    try:
        blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise LinkError("link: the password-protected key is not base64url") from exc
    if len(blob) != _BLOB or not fragment.startswith(PREFIX):
        raise LinkError("link: the password-protected key has the wrong length")
    if base64.urlsafe_b64encode(blob).decode().rstrip("=") != text:
        raise LinkError("link: the password-protected key is not canonical")
    _salt, ops, mem_kib = _HEAD.unpack(blob[: _HEAD.size])
    if not (MIN_OPS <= ops <= MAX_OPS and MIN_MEM_KIB <= mem_kib <= MAX_MEM_KIB):
        raise LinkError(
            f"link: password parameters out of range ({ops} passes,"
            f" {mem_kib} KiB; accepted {MIN_OPS}-{MAX_OPS},"
            f" {MIN_MEM_KIB}-{MAX_MEM_KIB} KiB)"
        )
    return blob


def unwrap_key(fragment: str, password: bytes) -> bytes:
    """The file key in a ``pw1.…`` fragment.

    Raises:
        LinkError: a malformed fragment (see :func:`parse_wrapped`).
        AccessDenied: the password does not open it.
    """
    blob = parse_wrapped(fragment)
    head, nonce, box = blob[: _HEAD.size], blob[_HEAD.size : -48], blob[-48:]
    salt, ops, mem_kib = _HEAD.unpack(head)
    try:
        return xchacha_open(
            _derive(password, salt, ops, mem_kib), nonce, _AD + head, box
        )
    except AuthenticationFailed:
        raise AccessDenied("link: wrong password") from None
