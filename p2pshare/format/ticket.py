"""Links the owner controls: per-link tickets (expiry) and the share policy
(revocation), both signed by the owner node's identity key.

Theory of operation
-------------------
The key in a link cannot be taken back: whoever has it can decrypt
ciphertext they get hold of. What the owner *can* control is who is served
the ciphertext. So a share under **link control** is served (by the owner
and by every seed keeping it) only to a getter whose ``Open`` carries, beside
its proof of the key, a valid **ticket**: a statement signed by the owner's
node identity (not by anything derived from the file key, which every link
holder has) that link ``id`` of ``root`` may be used until ``expires``::

    b"p2pshare/ticket/1\\x00"   domain tag
    root                       32 bytes
    id                         16 random bytes, the link's
    u64be expires              unix seconds; 0: no expiry (revocable only)

Wire form (in the link's fragment, ``…#<key>~t1.<base64url>``, and in the
``Open``): ``id || u64be expires || signature``, exactly
:data:`TICKET_BYTES`; the root is the link's own.

The **policy** of a share, also signed by the owner, is what servers
enforce: the ids revoked so far, and the peer ids of the seeds keeping it
(the only peers still served on a seed *grant*: a grant is signed with the
access key, which any link holder can derive, so without this list anybody
holding an expired link could mint a grant for themselves). Canonical
msgpack ``{"v": 1, "root", "owner", "seq", "seeds", "revoked", "sig"}``;
``seq`` only grows (servers keep the highest), ``owner`` is the owner's
peer id (an Ed25519 identity: its public key is inside it). The owner
pushes a new policy to its seeds on every change; a seed that accepts a
newer one passes it to the other seeds it lists. Known answers:
``tests/data/vectors/ticket-v1.json``.

What this does not do, said plainly in docs/seeds.md: it does not take a
file back from anyone who downloaded it, and someone holding the key and a
copy of the ciphertext (from a cache, a misbehaving seed, a getter that
kept it) can still decrypt it. It stops the owner's node and the seeds from
serving it further.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied, FormatError
from p2pshare.format import canonical, signed
from p2pshare.format.signed import SIGNATURE_BYTES
from p2pshare.format.voucher import ed25519_public_from_peer_id

__all__ = [
    "MAX_POLICY_BYTES",
    "POLICY_TAG",
    "TICKET_BYTES",
    "TICKET_PREFIX",
    "TICKET_TAG",
    "Policy",
    "Ticket",
    "check_access",
]

TICKET_TAG = b"p2pshare/ticket/1\x00"
POLICY_TAG = b"p2pshare/policy/1\x00"
POLICY_VERSION = 1
ID_BYTES = 16
TICKET_BYTES = ID_BYTES + 8 + SIGNATURE_BYTES
TICKET_PREFIX = "t1."
MAX_SEEDS = 32
MAX_REVOKED = 512  # the policy fits one pin frame (16 KiB)
MAX_PEER = 64  # an Ed25519 peer id is 38 bytes
MAX_POLICY_BYTES = 128 + MAX_SEEDS * (MAX_PEER + 2) + MAX_REVOKED * (ID_BYTES + 2)
_U64 = struct.Struct(">Q")
_KEYS = frozenset({"v", "root", "owner", "seq", "seeds", "revoked", "sig"})


def ticket_message(root: bytes, link_id: bytes, expires: int) -> bytes:
    return b"".join((TICKET_TAG, root, link_id, _U64.pack(expires)))


@dataclass(frozen=True, slots=True)
class Ticket:
    """One link's permission (see the module docstring)."""

    link_id: bytes
    expires: int  # 0: none
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        signed.check_bytes("ticket", "id", self.link_id, ID_BYTES, ID_BYTES)
        signed.check_int("ticket", "expires", self.expires, 0, signed.MAX_EXPIRES)
        signed.check_bytes(
            "ticket", "signature", self.signature, SIGNATURE_BYTES, SIGNATURE_BYTES
        )

    @classmethod
    def make(
        cls, owner_key: SigningKey, root: bytes, link_id: bytes, expires: int
    ) -> Ticket:
        sig = signed.sign(owner_key, ticket_message(root, link_id, expires))
        return cls(link_id, expires, sig)

    def to_bytes(self) -> bytes:
        return self.link_id + _U64.pack(self.expires) + self.signature

    @classmethod
    def from_bytes(cls, data: object) -> Ticket:
        """Raises: FormatError: not exactly :data:`TICKET_BYTES` bytes."""
        if type(data) is not bytes or len(data) != TICKET_BYTES:
            raise FormatError(f"ticket: expected {TICKET_BYTES} bytes")
        (expires,) = _U64.unpack_from(data, ID_BYTES)
        if expires > signed.MAX_EXPIRES:
            raise FormatError("ticket: expiry out of range")
        return cls(data[:ID_BYTES], expires, data[ID_BYTES + 8 :])

    def to_text(self) -> str:
        """``t1.<base64url>``, as it follows ``~`` in a link's fragment."""
        return TICKET_PREFIX + base64.urlsafe_b64encode(self.to_bytes()).decode(
            "ascii"
        ).rstrip("=")

    @classmethod
    def from_text(cls, text: str) -> Ticket:
        """Raises: FormatError: not a canonical ``t1.`` ticket."""
        body = text.removeprefix(TICKET_PREFIX)
        if body == text or not body.isascii():
            raise FormatError("ticket: expected t1.<base64url>")
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise FormatError("ticket: not base64url") from exc
        ticket = cls.from_bytes(data)
        if ticket.to_text() != text:
            raise FormatError("ticket: not canonical base64url")
        return ticket

    def verify(self, owner: bytes, root: bytes, now: float) -> None:
        """Signed by ``owner`` (a peer id) for ``root``, and not expired.

        Raises:
            AccessDenied: "link: not issued by the owner" or "link: expired".
        """
        try:
            public = ed25519_public_from_peer_id(owner)
        except FormatError:
            raise AccessDenied("link: the owner's id has no Ed25519 key") from None
        message = ticket_message(root, self.link_id, self.expires)
        signed.check_signature(
            "link", public, message, self.signature, expires=2**63 - 1, now=0
        )
        if self.expires and not now < self.expires:
            raise AccessDenied("link: expired")


def policy_message(
    root: bytes,
    owner: bytes,
    seq: int,
    seeds: Sequence[bytes],
    revoked: Sequence[bytes],
) -> bytes:
    parts = [POLICY_TAG, root, bytes((len(owner),)), owner, _U64.pack(seq)]
    parts.append(struct.pack(">H", len(seeds)))
    parts += [bytes((len(s),)) + s for s in seeds]
    parts.append(struct.pack(">H", len(revoked)))
    parts += list(revoked)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Policy:
    """A share's link control (see the module docstring)."""

    root: bytes
    owner: bytes
    seq: int
    seeds: tuple[bytes, ...]
    revoked: tuple[bytes, ...]
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        signed.check_bytes("policy", "root", self.root, 32, 32)
        signed.check_bytes("policy", "owner", self.owner, 1, MAX_PEER)
        signed.check_int("policy", "seq", self.seq, 0, signed.MAX_EXPIRES)
        if type(self.seeds) is not tuple or len(self.seeds) > MAX_SEEDS:
            raise FormatError(f"policy: seeds must be at most {MAX_SEEDS} peer ids")
        for s in self.seeds:
            signed.check_bytes("policy", "seed", s, 1, MAX_PEER)
        if type(self.revoked) is not tuple or len(self.revoked) > MAX_REVOKED:
            raise FormatError(f"policy: at most {MAX_REVOKED} revoked links")
        for r in self.revoked:
            signed.check_bytes("policy", "revoked id", r, ID_BYTES, ID_BYTES)
        signed.check_bytes(
            "policy", "signature", self.signature, SIGNATURE_BYTES, SIGNATURE_BYTES
        )

    @classmethod
    def make(
        cls,
        owner_key: SigningKey,
        root: bytes,
        owner: bytes,
        seq: int,
        seeds: Sequence[bytes],
        revoked: Sequence[bytes],
    ) -> Policy:
        seeds, revoked = tuple(sorted(set(seeds))), tuple(sorted(set(revoked)))
        sig = signed.sign(owner_key, policy_message(root, owner, seq, seeds, revoked))
        return cls(root, owner, seq, seeds, revoked, sig)

    def to_bytes(self) -> bytes:
        return canonical.pack(
            {
                "v": POLICY_VERSION,
                "root": self.root,
                "owner": self.owner,
                "seq": self.seq,
                "seeds": list(self.seeds),
                "revoked": list(self.revoked),
                "sig": self.signature,
            }
        )

    @classmethod
    def from_bytes(cls, data: object) -> Policy:
        """Decode strictly (the signature is checked by :meth:`verify`).

        Raises:
            FormatError: oversized (checked first), malformed, non-canonical.
        """
        value = canonical.unpack_record(
            data,
            what="policy",
            keys=_KEYS,
            version=POLICY_VERSION,
            max_len=MAX_POLICY_BYTES,
            max_items=MAX_REVOKED + MAX_SEEDS + 16,
        )
        seeds, revoked = value["seeds"], value["revoked"]
        if type(seeds) is not list or type(revoked) is not list:
            raise FormatError("policy: seeds and revoked must be arrays")
        policy = cls(
            value["root"],
            value["owner"],
            value["seq"],
            tuple(seeds),
            tuple(revoked),
            value["sig"],
        )
        if list(policy.seeds) != sorted(set(policy.seeds)) or list(
            policy.revoked
        ) != sorted(set(policy.revoked)):
            raise FormatError("policy: seeds and revoked must be sorted, no repeats")
        return policy

    def verify(self, owner: bytes, root: bytes) -> None:
        """Signed by ``owner`` (the peer id that pinned the share, or this
        node), for ``root``.

        Raises:
            AccessDenied: another owner or share, or a bad signature.
        """
        if self.owner != owner:
            raise AccessDenied("policy: not from the share's owner")
        if self.root != root:
            raise AccessDenied("policy: for another share")
        try:
            public = ed25519_public_from_peer_id(owner)
        except FormatError:
            raise AccessDenied("policy: the owner's id has no Ed25519 key") from None
        signed.check_signature(
            "policy",
            public,
            policy_message(self.root, self.owner, self.seq, self.seeds, self.revoked),
            self.signature,
            expires=2**63 - 1,
            now=0,
        )


def check_access(
    policy: Policy | None,
    *,
    root: bytes,
    ticket: bytes | None,
    grant_peer: bytes | None,
    now: float,
) -> None:
    """May this open be served? ``grant_peer`` is the peer of a seed-grant
    open (None for an open with a proof of the key and maybe a ticket).

    Raises:
        AccessDenied: what the getter is told (one of "link: required",
            "link: expired", "link: revoked", "link: not issued by the
            owner", "grant: not a seed of this share").
    """
    if policy is None:
        return
    if grant_peer is not None:
        if grant_peer not in policy.seeds:
            raise AccessDenied("grant: not a seed of this share")
        return
    if ticket is None:
        raise AccessDenied(
            "link: required (the owner controls this share's links; ask for a new one)"
        )
    try:
        parsed = Ticket.from_bytes(ticket)
    except FormatError:
        raise AccessDenied("link: malformed ticket") from None
    try:
        parsed.verify(policy.owner, root, now)
    except AccessDenied as exc:
        if "bad signature" in str(exc):
            raise AccessDenied("link: not issued by the owner") from None
        raise
    if parsed.link_id in policy.revoked:
        raise AccessDenied("link: revoked by the owner")
