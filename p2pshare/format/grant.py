"""Grants: the owner lets one seed fetch a share's ciphertext without its key.

Theory of operation
-------------------
DESIGN.md, "Capabilities": the root id alone lets a node find and verify
ciphertext, but a server sends a root's envelope, index blocks and chunks
only to a peer that proves it holds the key (an access proof) *or* presents
a grant. A grant is a statement, signed with the share's access key (the
Ed25519 key derived from the file key, ``FileKeys.signing_key``; its public
half is in the public envelope), that one peer id may fetch one root until
a deadline. The signed bytes are::

    b"p2pshare/grant/1\\x00"          domain tag (never a valid other message,
                                      in particular never an access proof)
    root                              32 bytes
    u16be len || peer id              the grantee's raw libp2p peer id
    u64be expires                     unix seconds; valid while now < expires

Why it is safe to hand a grant to an untrusted seed:

* it grants **ciphertext only**: the file key never leaves the owner, and
  the access key cannot be recomputed from a signature;
* it names **one peer id**, checked by the server against the id the Noise
  handshake authenticated, so a grant that leaks (logs, a malicious seed
  relaying it) is useless to anyone else;
* it names **one root** and is bound to its access key: it opens nothing
  else, and nobody without the key can forge or alter one (every field is
  signed; the length prefix keeps the encoding injective);
* it **expires**: the owner's node renews pins with fresh grants, so a seed
  that was dropped loses access on its own. Expiry is judged by the
  server's clock, passed in as ``now`` (nothing here reads a clock).

Wire form: canonical msgpack (``canonical.py``) of the map
``{"v": 1, "root": bin(32), "peer": bin(1..256), "exp": int, "sig": bin(64)}``,
at most ``MAX_GRANT_BYTES``. :meth:`Grant.from_bytes` is strict: size
checked before decoding, exactly these keys, exact types (an ``int`` is never
a ``bool``), exact lengths, canonical encoding. Every problem is a
:class:`~p2pshare.errors.FormatError`; a grant that decodes but does not
open what is asked raises :class:`~p2pshare.errors.AccessDenied` from
:meth:`Grant.verify`. Known answers: ``tests/data/vectors/grant-v1.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied
from p2pshare.format import canonical, signed
from p2pshare.format.signed import MAX_EXPIRES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES

__all__ = [
    "GRANT_TAG",
    "GRANT_VERSION",
    "MAX_EXPIRES",
    "MAX_GRANT_BYTES",
    "MAX_PEER_BYTES",
    "SIGNATURE_BYTES",
    "Grant",
    "grant_message",
    "make_grant",
]

GRANT_TAG = b"p2pshare/grant/1\x00"
GRANT_VERSION = 1
ROOT_BYTES = 32
# libp2p peer ids are multihashes: 38 bytes for Ed25519 identity keys, 34 for
# sha2-256 of larger keys. 256 matches the access proof's bound (proof.py).
MAX_PEER_BYTES = 256
# The largest grant (256-byte peer id) encodes in 390 bytes; 512 leaves a
# margin and still bounds the work before a signature is even looked at.
MAX_GRANT_BYTES = 512

_U16 = signed.U16
_U64 = signed.U64
_KEYS = frozenset({"v", "root", "peer", "exp", "sig"})


def _check_bytes(name: str, value: object, low: int, high: int) -> None:
    signed.check_bytes("grant", name, value, low, high)


def _check_expires(value: object) -> None:
    signed.check_int("grant", "expires", value, 0, MAX_EXPIRES)


def grant_message(root: bytes, peer: bytes, expires: int) -> bytes:
    """The exact bytes a grant signs (see the module docstring).

    Raises:
        FormatError: ``root``, ``peer`` or ``expires`` is out of bounds.
    """
    _check_bytes("root", root, ROOT_BYTES, ROOT_BYTES)
    _check_bytes("peer", peer, 1, MAX_PEER_BYTES)
    _check_expires(expires)
    return b"".join((GRANT_TAG, root, _U16.pack(len(peer)), peer, _U64.pack(expires)))


@dataclass(frozen=True, slots=True)
class Grant:
    """A signed permission for ``peer`` to fetch ``root``'s ciphertext.

    Building one validates sizes and types only; the signature is checked by
    :meth:`verify`, against the access public key of the root's envelope.

    Raises:
        FormatError: a field has the wrong type or size.
    """

    root: bytes
    peer: bytes
    expires: int
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_bytes("root", self.root, ROOT_BYTES, ROOT_BYTES)
        _check_bytes("peer", self.peer, 1, MAX_PEER_BYTES)
        _check_expires(self.expires)
        _check_bytes("signature", self.signature, SIGNATURE_BYTES, SIGNATURE_BYTES)

    def __repr__(self) -> str:  # short ids only; the signature stays out of logs
        return (
            f"Grant(root={self.root[:4].hex()}…, peer={self.peer[-4:].hex()}…, "
            f"expires={self.expires})"
        )

    def message(self) -> bytes:
        """The bytes :attr:`signature` signs."""
        return grant_message(self.root, self.peer, self.expires)

    def to_bytes(self) -> bytes:
        """Encode as canonical msgpack (at most ``MAX_GRANT_BYTES``)."""
        return canonical.pack(
            {
                "v": GRANT_VERSION,
                "root": self.root,
                "peer": self.peer,
                "exp": self.expires,
                "sig": self.signature,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Grant:
        """Decode a grant strictly (the signature is *not* checked here).

        Raises:
            FormatError: oversized (checked before decoding), malformed or
                non-canonical msgpack, unknown or missing keys, wrong version,
                types or sizes.
        """
        value = canonical.unpack_record(
            data,
            what="grant",
            keys=_KEYS,
            version=GRANT_VERSION,
            max_len=MAX_GRANT_BYTES,
        )
        return cls(
            root=value["root"],
            peer=value["peer"],
            expires=value["exp"],
            signature=value["sig"],
        )

    def verify(
        self, access_public: bytes, *, root: bytes, peer: bytes, now: float
    ) -> None:
        """Check that this grant lets ``peer`` fetch ``root`` at time ``now``.

        Checks run in this order, so the reason names the first problem:
        root, peer, signature, expiry (a forged grant is reported as forged,
        not as expired; an expired genuine one tells the owner to renew).

        Args:
            access_public: the 32-byte access public key of ``root``'s
                envelope (never taken from the grant's sender).
            root: the root being opened.
            peer: the requesting peer id, as the Noise handshake
                authenticated it (never taken from a message).
            now: the verifier's current unix time, in seconds.

        Raises:
            AccessDenied: ``"grant: for another share"``, ``"grant: issued for
                another peer"``, ``"grant: bad signature"`` or ``"grant:
                expired"``.
            ValueError: ``access_public`` is not 32 bytes (a local bug).
        """
        if len(access_public) != PUBLIC_KEY_BYTES:
            raise ValueError("access public key: expected 32 bytes")
        if self.root != root:
            raise AccessDenied("grant: for another share")
        if self.peer != peer:
            raise AccessDenied("grant: issued for another peer")
        signed.check_signature(
            "grant",
            access_public,
            self.message(),
            self.signature,
            expires=self.expires,
            now=now,
        )


def make_grant(
    signing_key: SigningKey, root: bytes, peer: bytes, expires: int
) -> Grant:
    """Sign a grant letting ``peer`` fetch ``root`` until ``expires``.

    Args:
        signing_key: the share's access key (``FileKeys.signing_key``).
        root: the share's root id (32 bytes).
        peer: the grantee's raw libp2p peer id (1..256 bytes).
        expires: unix seconds after which the grant is refused.

    Raises:
        FormatError: an argument is out of bounds.
    """
    message = grant_message(root, peer, expires)
    signature = signed.sign(signing_key, message)
    return Grant(root=root, peer=peer, expires=expires, signature=signature)
