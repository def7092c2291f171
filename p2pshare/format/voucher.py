"""Storage vouchers: a seed's signed promise to store up to ``quota`` bytes.

Theory of operation
-------------------
Issue 7, ``docs/seeds.md``: a seed run in voucher mode stores replicas only
for peers holding credit on it. Its operator issues **vouchers** (think of
a gift card): each names the seed, a quota in bytes, an expiry and a random
serial, and is signed with the seed's own libp2p **identity** key. A user
redeems one at that seed (``RedeemRequest`` in ``p2pshare.protocol.pin``);
the seed verifies it, binds the serial to the redeeming peer id in its
ledger (first redeemer wins) and charges that peer's pins against it. The
signed bytes are::

    b"p2pshare/voucher/1\\x00"        domain tag (never a grant, an access
                                      proof or an unpin request)
    u16be len || seed                 the seed's raw libp2p peer id
    u8 count                          number of addresses, 0..4
    count * (u16be len || addr)       multiaddrs where the seed listens,
                                      UTF-8 (printable ASCII, no spaces)
    u64be quota                       bytes, 1..2**62
    u64be expires                     unix seconds; valid while now < expires
    serial                            16 random bytes (the ledger's key)

Every field is signed and every variable field is length-prefixed, so the
encoding is injective and nothing can be altered or moved between fields.

**No separate public key travels.** An Ed25519 libp2p peer id is the
identity multihash of the protobuf-encoded public key::

    00 24 08 01 12 20 || public key (32)
    │  │  │  │  │  └─ protobuf field 2 (Data), length 32
    │  │  └──┴─ protobuf field 1 (Type) = 1 (Ed25519)
    │  └─ digest length 36
    └─ multihash code 0x00 (identity)

so :func:`ed25519_public_from_peer_id` reads the verifying key out of the
seed's peer id, and :meth:`Voucher.verify` checks the signature against the
key of the voucher's *own* seed after checking that it is the verifier's
seed. A voucher for seed A can therefore never verify at seed B: B refuses
it as "issued by another seed", and rewriting its seed field breaks the
signature. Seeds always have Ed25519 identities (``node/identity.py``), so a
voucher whose seed is any other kind of peer id is malformed.

The addresses are hints for the redeemer (where to reach the seed without
a DHT lookup); they are signed so a reseller cannot redirect users, but a
seed never needs them to judge a voucher.

Wire form: canonical msgpack (``canonical.py``) of the map::

    {"v": 1, "seed": bin(38), "addrs": [str, ...] (0..4), "quota": int,
     "exp": int, "serial": bin(16), "sig": bin(64)}

at most ``MAX_VOUCHER_BYTES`` (the voucher as a whole is bounded too, so
long addresses and a long seed cannot add up past the limit).
:meth:`Voucher.from_bytes` is strict like :meth:`Grant.from_bytes
<p2pshare.format.grant.Grant.from_bytes>`: size checked before decoding,
exactly these keys, exact types, lengths and ranges, canonical encoding.

**Text code**, for copying and pasting (one shell token, no spaces)::

    p2pv1-<base32 of the wire form: RFC 4648 alphabet, lowercase, unpadded>

:meth:`Voucher.from_code` strips surrounding whitespace and ignores case
(ASCII only), and accepts only the canonical base32 of a valid voucher (no
padding, zero trailing bits), at most ``MAX_CODE_CHARS`` characters.

Errors: every malformed input is a :class:`~p2pshare.errors.FormatError`;
a well-formed voucher that does not admit is refused by
:meth:`Voucher.verify` with :class:`~p2pshare.errors.AccessDenied`. Nothing
here reads a clock (``now`` is an argument); :func:`issue_voucher` draws a
random serial with :mod:`secrets` unless one is given. Known answers:
``tests/data/vectors/voucher-v1.json``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied, FormatError
from p2pshare.format import canonical, signed
from p2pshare.format.signed import MAX_EXPIRES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES

__all__ = [
    "CODE_PREFIX",
    "ED25519_PEER_PREFIX",
    "MAX_ADDRS",
    "MAX_ADDR_CHARS",
    "MAX_CODE_CHARS",
    "MAX_QUOTA",
    "MAX_VOUCHER_BYTES",
    "SERIAL_BYTES",
    "VOUCHER_TAG",
    "VOUCHER_VERSION",
    "Voucher",
    "ed25519_public_from_peer_id",
    "issue_voucher",
    "voucher_message",
]

VOUCHER_TAG = b"p2pshare/voucher/1\x00"
VOUCHER_VERSION = 1
CODE_PREFIX = "p2pv1-"
# Identity multihash (0x00, length 36) of the protobuf PublicKey
# {Type: Ed25519 (field 1 = 1), Data: 32 bytes (field 2)}.
ED25519_PEER_PREFIX = b"\x00\x24\x08\x01\x12\x20"
SERIAL_BYTES = 16  # random: collisions are out of reach (2**-64 at 2**32 vouchers)
MAX_SEED_BYTES = 256  # the bound of every peer id in the format (grant.py)
MAX_ADDRS = 4  # a few ways in; the DHT finds the rest
MAX_ADDR_CHARS = 256  # a multiaddr with a DNS name and /p2p/ suffix fits
MAX_QUOTA = 2**62  # bytes (4 EiB), well inside msgpack's u63 range
# A voucher with a 38-byte Ed25519 seed, four 150-char addresses and the
# largest numbers encodes in about 790 bytes; 1024 bounds the work before
# any signature is looked at, and the pin protocol carries it
# (``MAX_VOUCHER_BYTES`` there is this constant).
MAX_VOUCHER_BYTES = 1024
# The code of a 1024-byte voucher is 6 + 1639 chars; 2000 leaves a margin
# and bounds the work on pasted text.
MAX_CODE_CHARS = 2000

_U16 = signed.U16
_U64 = signed.U64
_KEYS = frozenset({"v", "seed", "addrs", "quota", "exp", "serial", "sig"})
_ADDR_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))  # printable, no space
_B32_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz234567")


# -- field checks (raise FormatError) -------------------------------------------
def _check_bytes(name: str, value: object, low: int, high: int) -> None:
    signed.check_bytes("voucher", name, value, low, high)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    signed.check_int("voucher", name, value, low, high)


def _check_addrs(value: object) -> None:
    if type(value) is not tuple:
        raise FormatError(f"voucher: addrs must be a tuple, got {type(value).__name__}")
    if len(value) > MAX_ADDRS:
        raise FormatError(f"voucher: more than {MAX_ADDRS} addrs")
    for addr in value:
        if type(addr) is not str:
            raise FormatError(f"voucher: addr must be str, got {type(addr).__name__}")
        if not 0 < len(addr) <= MAX_ADDR_CHARS:
            raise FormatError(f"voucher: each addr must be 1..{MAX_ADDR_CHARS} chars")
        if not set(addr) <= _ADDR_CHARS:
            raise FormatError("voucher: addrs must be printable ASCII without spaces")


def _check_fields(
    seed: object, addrs: object, quota: object, expires: object, serial: object
) -> None:
    _check_bytes("seed", seed, 1, MAX_SEED_BYTES)
    ed25519_public_from_peer_id(seed)  # type: ignore[arg-type]  # bytes, checked
    _check_addrs(addrs)
    _check_int("quota", quota, 1, MAX_QUOTA)
    _check_int("expires", expires, 0, MAX_EXPIRES)
    _check_bytes("serial", serial, SERIAL_BYTES, SERIAL_BYTES)


def ed25519_public_from_peer_id(peer: bytes) -> bytes:
    """The 32-byte Ed25519 public key embedded in a libp2p peer id.

    Args:
        peer: raw peer id bytes (``ID.to_bytes()``), for an Ed25519 key
            ``00 24 08 01 12 20 || key``.

    Raises:
        FormatError: ``peer`` has any other shape (an RSA, secp256k1 or
            ECDSA id, a sha2-256 multihash, or not a peer id at all).
    """
    if type(peer) is not bytes:
        raise FormatError(f"voucher: peer id must be bytes, got {type(peer).__name__}")
    if len(peer) != len(ED25519_PEER_PREFIX) + PUBLIC_KEY_BYTES or not peer.startswith(
        ED25519_PEER_PREFIX
    ):
        raise FormatError("voucher: seed is not an Ed25519 libp2p peer id")
    return peer[len(ED25519_PEER_PREFIX) :]


def voucher_message(
    seed: bytes, addrs: tuple[str, ...], quota: int, expires: int, serial: bytes
) -> bytes:
    """The exact bytes a voucher signs (see the module docstring).

    Raises:
        FormatError: an argument is out of bounds.
    """
    _check_fields(seed, addrs, quota, expires, serial)
    parts = [VOUCHER_TAG, _U16.pack(len(seed)), seed, bytes([len(addrs)])]
    for addr in addrs:
        raw = addr.encode("ascii")
        parts += [_U16.pack(len(raw)), raw]
    parts += [_U64.pack(quota), _U64.pack(expires), serial]
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Voucher:
    """A seed's signed offer of ``quota`` bytes of storage until ``expires``.

    Building one validates types, sizes and the overall encoded size; the
    signature is checked by :meth:`verify`.

    Raises:
        FormatError: a field has the wrong type, size or range, ``seed`` is
            not an Ed25519 peer id, or the voucher would encode in more than
            ``MAX_VOUCHER_BYTES``.
    """

    seed: bytes
    addrs: tuple[str, ...]
    quota: int
    expires: int
    serial: bytes
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_fields(self.seed, self.addrs, self.quota, self.expires, self.serial)
        _check_bytes("signature", self.signature, SIGNATURE_BYTES, SIGNATURE_BYTES)
        size = len(self.to_bytes())
        if size > MAX_VOUCHER_BYTES:
            raise FormatError(
                f"voucher: encodes in {size} bytes, more than {MAX_VOUCHER_BYTES} "
                "(use fewer or shorter addrs)"
            )

    def __repr__(self) -> str:  # a voucher is a bearer token: no signature
        return (
            f"Voucher(seed=…{self.seed[-4:].hex()}, addrs={len(self.addrs)}, "
            f"quota={self.quota}, expires={self.expires}, "
            f"serial={self.serial[:4].hex()}…)"
        )

    def message(self) -> bytes:
        """The bytes :attr:`signature` signs."""
        return voucher_message(
            self.seed, self.addrs, self.quota, self.expires, self.serial
        )

    def to_bytes(self) -> bytes:
        """Encode as canonical msgpack (at most ``MAX_VOUCHER_BYTES``)."""
        return canonical.pack(
            {
                "v": VOUCHER_VERSION,
                "seed": self.seed,
                "addrs": list(self.addrs),
                "quota": self.quota,
                "exp": self.expires,
                "serial": self.serial,
                "sig": self.signature,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Voucher:
        """Decode a voucher strictly (the signature is *not* checked here).

        Raises:
            FormatError: oversized (checked before decoding), malformed or
                non-canonical msgpack, unknown or missing keys, wrong
                version, types, sizes or ranges.
        """
        value = canonical.unpack_record(
            data,
            what="voucher",
            keys=_KEYS,
            version=VOUCHER_VERSION,
            max_len=MAX_VOUCHER_BYTES,
        )
        addrs = value["addrs"]
        if type(addrs) is not list:
            raise FormatError(
                f"voucher: addrs must be a list, got {type(addrs).__name__}"
            )
        return cls(
            seed=value["seed"],
            addrs=tuple(addrs),
            quota=value["quota"],
            expires=value["exp"],
            serial=value["serial"],
            signature=value["sig"],
        )

    def to_code(self) -> str:
        """The text code: ``p2pv1-`` + lowercase unpadded base32 of the bytes.

        One token of ``[a-z2-7-]``, safe to paste in a shell or a URL.
        """
        return CODE_PREFIX + _b32encode(self.to_bytes())

    @classmethod
    def from_code(cls, text: str) -> Voucher:
        """Parse a text code (surrounding whitespace and case are ignored).

        Raises:
            FormatError: not a str, too long, no ``p2pv1-`` prefix,
                characters outside the base32 alphabet, non-canonical
                base32, or bytes that are not a valid voucher.
        """
        if not isinstance(text, str):
            raise FormatError(
                f"voucher: expected a str code, got {type(text).__name__}"
            )
        text = text.strip()
        if len(text) > MAX_CODE_CHARS:
            raise FormatError(
                f"voucher: code too long ({len(text)} chars, at most {MAX_CODE_CHARS})"
            )
        # ASCII first: str.lower() maps some non-ASCII letters onto ASCII
        # ones (KELVIN SIGN -> "k"), which must not be accepted.
        if not text.isascii() or not text.lower().startswith(CODE_PREFIX):
            raise FormatError("voucher: not a p2pshare voucher code")
        body = text[len(CODE_PREFIX) :].lower()
        if not body:
            raise FormatError("voucher: code is empty after its prefix")
        if not set(body) <= _B32_CHARS:
            raise FormatError("voucher: code has characters outside base32 (a-z, 2-7)")
        try:
            data = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except binascii.Error as exc:
            raise FormatError("voucher: code is truncated or damaged") from exc
        if _b32encode(data) != body:  # non-zero trailing bits: not canonical
            raise FormatError("voucher: code is truncated or damaged")
        return cls.from_bytes(data)

    def verify(self, *, seed: bytes, now: float) -> None:
        """Check that this voucher admits at ``seed`` at time ``now``.

        Checks run in this order, so the reason names the first problem:
        seed, signature, expiry (a forged voucher is reported as forged,
        never as expired).

        Args:
            seed: the verifying seed's own peer id (raw bytes).
            now: the verifier's current unix time, in seconds.

        Raises:
            AccessDenied: ``"voucher: issued by another seed"``,
                ``"voucher: bad signature"`` or ``"voucher: expired"``.
        """
        if self.seed != seed:
            raise AccessDenied("voucher: issued by another seed")
        public = ed25519_public_from_peer_id(self.seed)  # checked when built
        signed.check_signature(
            "voucher",
            public,
            self.message(),
            self.signature,
            expires=self.expires,
            now=now,
        )


def _b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def issue_voucher(
    signing_key: SigningKey,
    seed: bytes,
    addrs: Sequence[str],
    quota: int,
    expires: int,
    serial: bytes | None = None,
) -> Voucher:
    """Sign a voucher for ``quota`` bytes on ``seed`` until ``expires``.

    Args:
        signing_key: the seed's identity key (for a libp2p
            ``Ed25519PrivateKey``, its ``.impl``).
        seed: the seed's raw peer id; must be the Ed25519 id of
            ``signing_key``.
        addrs: 0..4 multiaddrs where the seed can be reached.
        quota: bytes of storage, 1..2**62.
        expires: unix seconds after which the voucher is refused.
        serial: 16 bytes; random (:mod:`secrets`) when None.

    Raises:
        FormatError: an argument is out of bounds, or ``seed`` is not an
            Ed25519 peer id.
        ValueError: ``signing_key`` is not the key of ``seed`` (a local bug).
    """
    if isinstance(addrs, str):
        raise FormatError("voucher: addrs must be a sequence of str, not one str")
    if serial is None:
        serial = secrets.token_bytes(SERIAL_BYTES)
    addrs = tuple(addrs)
    message = voucher_message(seed, addrs, quota, expires, serial)
    if bytes(signing_key.verify_key) != ed25519_public_from_peer_id(seed):
        raise ValueError("voucher: signing key does not match the seed's peer id")
    signature = signed.sign(signing_key, message)
    return Voucher(
        seed=seed,
        addrs=addrs,
        quota=quota,
        expires=expires,
        serial=serial,
        signature=signature,
    )
