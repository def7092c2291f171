"""The p2pshare format: pure functions over bytes, no I/O, no clock.

See DESIGN.md ("Cryptographic format", "Share links") and each module's
theory of operation. Known-answer vectors in ``tests/data/vectors`` pin
every byte of format version 1.
"""

from p2pshare.format.chunks import (
    DEFAULT_CHUNK_SIZE,
    PAD_BYTES,
    Geometry,
    block_id,
    open_chunk,
    seal_chunk,
)
from p2pshare.format.cid import cid_to_root, root_to_cid
from p2pshare.format.envelope import (
    Envelope,
    Meta,
    build_envelope,
    open_meta,
    seal_meta,
)
from p2pshare.format.folder import Entry, decode_listing, encode_listing
from p2pshare.format.grant import MAX_GRANT_BYTES, Grant, make_grant
from p2pshare.format.keys import FileKeys, new_file_key
from p2pshare.format.links import ShareLink, parse_link, parse_root_or_link
from p2pshare.format.names import check_name
from p2pshare.format.voucher import MAX_VOUCHER_BYTES, Voucher, issue_voucher

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_GRANT_BYTES",
    "MAX_VOUCHER_BYTES",
    "PAD_BYTES",
    "Entry",
    "Envelope",
    "FileKeys",
    "Geometry",
    "Grant",
    "Meta",
    "ShareLink",
    "Voucher",
    "block_id",
    "build_envelope",
    "check_name",
    "cid_to_root",
    "decode_listing",
    "encode_listing",
    "issue_voucher",
    "make_grant",
    "new_file_key",
    "open_chunk",
    "open_meta",
    "parse_link",
    "parse_root_or_link",
    "root_to_cid",
    "seal_chunk",
    "seal_meta",
]
