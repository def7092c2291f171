"""Pointer records: the signed, versioned, sealed "current root" of a live share.

Theory of operation
-------------------
A live share's link names a *pointer*, not a snapshot. The owner holds the
pointer's Ed25519 signing key (its seed stays in the owner's home); the link
carries the pointer's public key ``pub`` and a 32-byte *read key* ``R``.
Each version the owner publishes is a record::

    seq       u64, higher wins; a reader never goes back
    expires   unix seconds; republished before then
    box       24-byte random nonce || XChaCha20-Poly1305(
                  key   = BLAKE2b-256(key=R, person="p2pshare.v1.ptrb"),
                  AD    = POINTER_TAG || pub || u64be seq || u64be expires,
                  plain = the 32-byte root id of the current snapshot
                          || its 32-byte file key)
    sig       Ed25519 by the pointer key over
              POINTER_TAG || pub || u64be seq || u64be expires || box

where ``POINTER_TAG = b"p2pshare/pointer/1\\x00"`` (a domain tag no grant,
voucher or access proof starts with). So:

* **Anyone** (a DHT server, a seed) can check that a record is genuine
  (signature by ``pub``), that it is newer than another (``seq``), not
  expired, and small; nobody can forge, alter or re-date one.
* **Only link holders** learn the root and the snapshot's file key (each
  snapshot is an ordinary share with its own key): the box needs ``R``,
  which never leaves the link. The DHT and seeds see ``pub``, ``seq``,
  ``expires`` and 104 opaque bytes. The box's AD binds it to this ``pub``, ``seq`` and
  ``expires``, so a box cannot be moved into another (validly signed)
  record of the same pointer either.
* Records are stored in the DHT under :func:`dht_key`, which is derived
  from ``pub``; a validator recomputes it from the record, so a record
  cannot be filed under another pointer's key.

Wire form: canonical msgpack of the map ``{"v": 1, "pub": bin(32),
"seq": int, "exp": int, "box": bin(104), "sig": bin(64)}``, at most
:data:`MAX_POINTER_BYTES` (checked before decoding). Known answers:
``tests/data/vectors/pointer-v1.json`` (``scripts/gen-vectors``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import nacl.utils
from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied, IntegrityError
from p2pshare.format import canonical, signed
from p2pshare.format.aead import AuthenticationFailed, xchacha_open, xchacha_seal
from p2pshare.format.signed import MAX_EXPIRES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES

__all__ = [
    "BOX_BYTES",
    "DHT_NAMESPACE",
    "MAX_POINTER_BYTES",
    "POINTER_TAG",
    "POINTER_VERSION",
    "PointerRecord",
    "dht_key",
    "goes_back",
    "make_pointer",
    "newest",
    "pointer_message",
    "validate",
]

POINTER_TAG: Final = b"p2pshare/pointer/1\x00"
POINTER_VERSION: Final = 1
ROOT_BYTES: Final = 32
NONCE_BYTES: Final = 24
KEY_BYTES: Final = 32
BOX_BYTES: Final = NONCE_BYTES + ROOT_BYTES + KEY_BYTES + 16  # nonce, sealed, tag
# A record encodes in at most 248 bytes; 256 bounds the work before any signature
# is looked at, and is the limit DHT servers, seeds and getters apply.
MAX_POINTER_BYTES: Final = 256
DHT_NAMESPACE: Final = b"/p2pshare-ptr/"

_BOX_PERSON: Final = b"p2pshare.v1.ptrb"
_KEY_PERSON: Final = b"p2pshare.v1.ptrd"
_U64 = signed.U64
_KEYS = frozenset({"v", "pub", "seq", "exp", "box", "sig"})

Rng = Callable[[int], bytes]


def _check_bytes(name: str, value: object, low: int, high: int) -> None:
    signed.check_bytes("pointer", name, value, low, high)


def _check_u64(name: str, value: object) -> None:
    signed.check_int("pointer", name, value, 0, MAX_EXPIRES)


def dht_key(pub: bytes) -> bytes:
    """The DHT key a pointer's records live under: the namespace, then the
    hex of BLAKE2b-256(pub) (so it is printable, as libp2p records expect)."""
    _check_bytes("public key", pub, PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES)
    digest = hashlib.blake2b(pub, digest_size=32, person=_KEY_PERSON).hexdigest()
    return DHT_NAMESPACE + digest.encode()


def _box_key(read_key: bytes) -> bytes:
    if type(read_key) is not bytes or len(read_key) != 32:
        raise ValueError("pointer: the read key must be 32 bytes")
    return hashlib.blake2b(
        b"", digest_size=32, key=read_key, person=_BOX_PERSON
    ).digest()


def _header(pub: bytes, seq: int, expires: int) -> bytes:
    return b"".join((POINTER_TAG, pub, _U64.pack(seq), _U64.pack(expires)))


def pointer_message(pub: bytes, seq: int, expires: int, box: bytes) -> bytes:
    """The exact bytes a record's signature covers.

    Raises:
        FormatError: a field is out of bounds.
    """
    _check_bytes("public key", pub, PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES)
    _check_u64("seq", seq)
    _check_u64("expires", expires)
    _check_bytes("box", box, BOX_BYTES, BOX_BYTES)
    return _header(pub, seq, expires) + box


@dataclass(frozen=True, slots=True)
class PointerRecord:
    """One signed version of a pointer. Building one checks types and sizes;
    :meth:`verify` checks the signature and expiry, :meth:`open` the box."""

    pub: bytes
    seq: int
    expires: int
    box: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        pointer_message(self.pub, self.seq, self.expires, self.box)
        _check_bytes("signature", self.signature, SIGNATURE_BYTES, SIGNATURE_BYTES)

    def __repr__(self) -> str:
        return (
            f"PointerRecord(pub={self.pub[:4].hex()}…, seq={self.seq}, "
            f"expires={self.expires})"
        )

    def message(self) -> bytes:
        return pointer_message(self.pub, self.seq, self.expires, self.box)

    def to_bytes(self) -> bytes:
        return canonical.pack(
            {
                "v": POINTER_VERSION,
                "pub": self.pub,
                "seq": self.seq,
                "exp": self.expires,
                "box": self.box,
                "sig": self.signature,
            }
        )

    @classmethod
    def from_bytes(cls, data: object) -> PointerRecord:
        """Decode strictly (the signature is *not* checked here).

        Raises:
            FormatError: oversized (before decoding), malformed or
                non-canonical, unknown or missing keys, wrong version,
                types or sizes.
        """
        value = canonical.unpack_record(
            data,
            what="pointer",
            keys=_KEYS,
            version=POINTER_VERSION,
            max_len=MAX_POINTER_BYTES,
        )
        return cls(
            pub=value["pub"],
            seq=value["seq"],
            expires=value["exp"],
            box=value["box"],
            signature=value["sig"],
        )

    def verify(self, *, now: float, pub: bytes | None = None) -> None:
        """Check the signature (by ``pub`` when given: the pointer a link
        names), then the expiry. What DHT servers, seeds and getters all run.

        Raises:
            AccessDenied: ``"pointer: for another pointer"``, ``"pointer: bad
                signature"`` or ``"pointer: expired"``.
        """
        if pub is not None and pub != self.pub:
            raise AccessDenied("pointer: for another pointer")
        signed.check_signature(
            "pointer",
            self.pub,
            self.message(),
            self.signature,
            expires=self.expires,
            now=now,
        )

    def open(self, read_key: bytes) -> tuple[bytes, bytes]:
        """The root id and file key in the box (verify the record first).

        Raises:
            IntegrityError: the read key does not open it (a wrong link, or
                a box moved from another record).
        """
        nonce, sealed = self.box[:NONCE_BYTES], self.box[NONCE_BYTES:]
        ad = _header(self.pub, self.seq, self.expires)
        try:
            plain = xchacha_open(_box_key(read_key), nonce, ad, sealed)
        except AuthenticationFailed as exc:
            raise IntegrityError("pointer: the read key does not open it") from exc
        return plain[:ROOT_BYTES], plain[ROOT_BYTES:]


def make_pointer(
    signing_key: SigningKey,
    read_key: bytes,
    *,
    seq: int,
    root: bytes,
    key: bytes,
    expires: int,
    rng: Rng = nacl.utils.random,
) -> PointerRecord:
    """Seal ``root`` and its file ``key``, and sign version ``seq``.

    Raises:
        FormatError: an argument is out of bounds.
    """
    _check_bytes("root", root, ROOT_BYTES, ROOT_BYTES)
    _check_bytes("file key", key, KEY_BYTES, KEY_BYTES)
    pub = bytes(signing_key.verify_key)
    _check_u64("seq", seq)
    _check_u64("expires", expires)
    nonce = rng(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ValueError("rng returned the wrong number of bytes")
    ad = _header(pub, seq, expires)
    sealed = xchacha_seal(_box_key(read_key), nonce, ad, root + key)
    box = bytes(nonce) + sealed
    signature = signed.sign(signing_key, pointer_message(pub, seq, expires, box))
    return PointerRecord(pub, seq, expires, box, signature)


def validate(key: bytes, value: object, *, now: float) -> PointerRecord:
    """The DHT validator (and a seed's, and a getter's, for a record from
    anywhere): ``value`` is a genuine, unexpired record filed under the key
    its own ``pub`` gives.

    Raises:
        FormatError: malformed or oversized.
        AccessDenied: filed under another key, forged, or expired.
    """
    record = PointerRecord.from_bytes(value)
    if dht_key(record.pub) != key:
        raise AccessDenied("pointer: filed under another pointer's key")
    record.verify(now=now)
    return record


def newest(records: Sequence[PointerRecord]) -> int:
    """The index of the record to keep: the highest ``seq``; among equal
    ones the latest ``expires`` (a re-publication of the same version wins
    over the record it renews), then the lexicographically largest
    encoding, so every node picks the same one; the first of identical
    ones. (The DHT selector; the caller validated each.)

    Raises:
        ValueError: no records.
    """
    if not records:
        raise ValueError("pointer: no records to choose from")
    return max(
        range(len(records)),
        key=lambda i: (records[i].seq, records[i].expires, records[i].to_bytes()),
    )


def goes_back(record: PointerRecord, last_seq: int | None) -> bool:
    """A replayed older record: its ``seq`` is below the last one this
    reader accepted for the pointer (equal is no news, not a replay)."""
    return last_seq is not None and record.seq < last_seq
