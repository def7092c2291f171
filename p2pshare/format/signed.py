"""Signed records: the shape grants and vouchers share.

A signed record of p2pshare is a handful of typed fields, a domain tag, a
*signed message* (the tag and the fields in fixed binary layout, so the
signature never depends on an encoder), an Ed25519 signature over it, and
an expiry; on the wire it is a canonical msgpack map with a version
(``canonical.unpack_record``). Grants (``grant.py``) and vouchers
(``voucher.py``) are such records, and so will be the next ones (the
signed pointers of updatable shares). This module holds their common
parts: the field checks with the record's name in every message, signing,
and verification in the order that names the first problem (a forged
record is reported as forged, never as expired).
"""

from __future__ import annotations

import struct

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from p2pshare.errors import AccessDenied, FormatError

__all__ = [
    "MAX_EXPIRES",
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "U16",
    "U64",
    "check_bytes",
    "check_int",
    "check_signature",
    "sign",
]

SIGNATURE_BYTES = 64  # Ed25519
PUBLIC_KEY_BYTES = 32
MAX_EXPIRES = 2**63 - 1  # u64 on the wire, but kept in msgpack's signed range
U16 = struct.Struct(">H")
U64 = struct.Struct(">Q")


def check_bytes(what: str, name: str, value: object, low: int, high: int) -> None:
    """``value`` is ``bytes`` of ``low..high`` bytes.

    Raises:
        FormatError: ``"<what>: <name> must be …"``.
    """
    if type(value) is not bytes:
        raise FormatError(f"{what}: {name} must be bytes, got {type(value).__name__}")
    if not low <= len(value) <= high:
        span = str(low) if low == high else f"{low}..{high}"
        raise FormatError(f"{what}: {name} must be {span} bytes, got {len(value)}")


def check_int(what: str, name: str, value: object, low: int, high: int) -> None:
    """``value`` is an ``int`` (never a ``bool``) in ``low..high``.

    Raises:
        FormatError: ``"<what>: <name> …"``.
    """
    if type(value) is not int:  # exactly int: bool is an int subclass
        raise FormatError(f"{what}: {name} must be int, got {type(value).__name__}")
    if not low <= value <= high:
        raise FormatError(f"{what}: {name} {value} out of range {low}..{high}")


def sign(signing_key: SigningKey, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message``."""
    return bytes(signing_key.sign(message).signature)


def check_signature(
    what: str,
    public: bytes,
    message: bytes,
    signature: bytes,
    *,
    expires: int,
    now: float,
) -> None:
    """Check the signature, then the expiry (in that order).

    Raises:
        AccessDenied: ``"<what>: bad signature"`` or ``"<what>: expired"``.
    """
    try:
        VerifyKey(public).verify(message, signature)
    except CryptoError as exc:  # BadSignatureError, or a key off the curve
        raise AccessDenied(f"{what}: bad signature") from exc
    if not now < expires:
        raise AccessDenied(f"{what}: expired")
