"""Link control on the node: issue tickets, revoke them, keep the share's
policy on every seed (format/ticket.py has the records and the rules).

Owner side. ``share``/``add`` with an expiry (or ``link --expires``) issues a
ticket: a random link id and the expiry, signed by this node's identity,
recorded in ``tickets``. The first ticket of a share puts it under link
control: the share gets a policy (signed the same way) naming the seeds that
keep it and the ids revoked so far, and from then on this node and its seeds
serve the share only on a valid ticket. ``revoke`` marks a ticket (or every
ticket of the share) revoked and signs a new policy. Every new policy is
pushed to each seed keeping the share (``/p2pshare/pin/1`` ``policy``);
replicating a share under link control adds the new seed to the policy and
pushes it before the seed is asked to fetch (a seed fetches with a grant,
and a policy serves grants only to its listed seeds).

Seed side. A seed keeps a policy for a root it pins only if the pin's owner
signed it, and only if it is newer (``seq``) than the one it has. A policy
it had not seen is passed on to the other seeds it lists (gossip): a seed
the owner could not reach hears it from another.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID

from p2pshare.errors import AccessDenied, FormatError, NotFoundError, P2PShareError
from p2pshare.format import root_to_cid
from p2pshare.format.ticket import Policy, Ticket
from p2pshare.node.identity import signing_key
from p2pshare.protocol import pin as pinproto
from p2pshare.store.catalog_erasure import TicketRow

if TYPE_CHECKING:
    from nacl.signing import SigningKey

    from p2pshare.node.service import Node
    from p2pshare.store.catalog import Catalog

__all__ = [
    "Pushed",
    "accept_policy",
    "add_seed",
    "issue",
    "issue_ticket",
    "new_policy",
    "push",
    "revoke",
]

log = logging.getLogger(__name__)

GOSSIP_TIMEOUT_S = 10.0


@dataclass
class Pushed:
    """How a policy push went: seeds told, and the ones that could not be."""

    told: int
    failed: list[str]


def _owner_key(node: Node) -> SigningKey:
    return signing_key(node.host.host.get_private_key())


# -- the store side (also used without a node: cli/offline.py) -----------------
def issue_ticket(
    catalog: Catalog,
    key: SigningKey,
    owner: bytes,
    root: bytes,
    expires: int,
    seeds: list[bytes],
) -> bytes:
    """Record and sign a new ticket for ``root`` (``expires``: unix seconds,
    0 none); the first one puts the share under link control (a policy
    naming ``seeds``). Returns the ticket's bytes, for the link."""
    link_id = secrets.token_bytes(16)
    ticket = Ticket.make(key, root, link_id, expires)
    catalog.put_ticket(TicketRow(link_id, root, expires, False, int(time.time())))
    if catalog.policy_of(root) is None:
        new_policy(catalog, key, owner, root, seeds)
        log.info("share %s: under link control now", root_to_cid(root)[:16])
    return ticket.to_bytes()


def new_policy(
    catalog: Catalog, key: SigningKey, owner: bytes, root: bytes, seeds: list[bytes]
) -> Policy:
    """Sign and keep the next policy of ``root``: ``seeds`` and every seed
    of the last one, the tickets revoked so far."""
    old_raw = catalog.policy_of(root)
    old = Policy.from_bytes(old_raw) if old_raw is not None else None
    listed = set(seeds) | (set(old.seeds) if old is not None else set())
    revoked = [t.link_id for t in catalog.tickets(root) if t.revoked]
    seq = max(time.time_ns() // 1000, (old.seq + 1) if old is not None else 0)
    policy = Policy.make(key, root, owner, seq, sorted(listed), revoked)
    catalog.put_policy(root, policy.seq, policy.to_bytes())
    return policy


# -- the node side ------------------------------------------------------------------
async def _seeds(node: Node, root: bytes) -> list[bytes]:
    return [ID.from_base58(r.seed).to_bytes() for r in await node.shares.replicas(root)]


async def issue(node: Node, root: bytes, expires: int) -> bytes:
    """:func:`issue_ticket` with this node's identity, its policy pushed."""
    catalog = node.store.catalog
    seeds = await _seeds(node, root)
    key, owner = _owner_key(node), node.host.peer_id_bytes
    fresh = await node.db(lambda: catalog.policy_of(root)) is None
    ticket = await node.db(
        lambda: issue_ticket(catalog, key, owner, root, expires, seeds)
    )
    if fresh and seeds:
        await push(node, root)
    return ticket


async def revoke(node: Node, root: bytes, link_id: bytes | None) -> tuple[int, Pushed]:
    """Revoke one ticket (``link_id``) or every ticket of ``root`` (None);
    returns how many were revoked and how the push to the seeds went.

    Raises:
        NotFoundError: ``link_id`` is not a ticket of ``root`` issued here.
    """
    catalog = node.store.catalog
    if link_id is not None:
        known = {t.link_id for t in await node.db(lambda: catalog.tickets(root))}
        if link_id not in known:
            raise NotFoundError("revoke: this home issued no such link for the share")
    ids = None if link_id is None else [link_id]
    n = await node.db(lambda: catalog.revoke_tickets(root, ids))
    seeds = await _seeds(node, root)
    key, owner = _owner_key(node), node.host.peer_id_bytes
    await node.db(lambda: new_policy(catalog, key, owner, root, seeds))
    return n, await push(node, root)


async def add_seed(node: Node, root: bytes, seed: bytes) -> bool:
    """``seed`` is about to keep ``root``: a share under link control lists
    it in a new policy (so this node serves it on its grant); True when the
    share is under link control (push the policy once the pin is made)."""
    catalog = node.store.catalog
    if await node.db(lambda: catalog.policy_of(root)) is None:
        return False
    seeds = [*await _seeds(node, root), seed]
    key, owner = _owner_key(node), node.host.peer_id_bytes
    await node.db(lambda: new_policy(catalog, key, owner, root, seeds))
    return True


async def push(node: Node, root: bytes, only: list[bytes] | None = None) -> Pushed:
    """Send the share's policy to its seeds (or to ``only``), at once."""
    from p2pshare.node.replicate import call

    raw = await node.db(lambda: node.store.catalog.policy_of(root))
    if raw is None:
        return Pushed(0, [])
    policy = Policy.from_bytes(raw)
    targets = [s for s in policy.seeds if s != node.host.peer_id_bytes]
    if only is not None:
        targets = [s for s in targets if s in only]
    out = Pushed(0, [])

    async def one(seed: bytes) -> None:
        name = ID(seed).to_base58()
        try:
            with trio.fail_after(GOSSIP_TIMEOUT_S):
                resp = await call(node, ID(seed), pinproto.PolicyRequest(policy=raw))
        except (P2PShareError, trio.TooSlowError) as exc:
            out.failed.append(f"{name[-8:]}: {exc}")
            return
        if isinstance(resp, pinproto.PolicyKept) and resp.seq >= policy.seq:
            out.told += 1
        else:
            why = resp.message if isinstance(resp, pinproto.PinRefused) else "?"
            out.failed.append(f"{name[-8:]}: {why}")

    async with trio.open_nursery() as nursery:
        for seed in targets:
            nursery.start_soon(one, seed)
    return out


async def accept_policy(node: Node, raw: bytes, sender: bytes) -> pinproto.PolicyKept:
    """A seed: keep a policy for a root it pins, signed by the pin's owner;
    pass a new one on to the other seeds it lists (in the background).

    Raises:
        AccessDenied: not the owner's, or for a root this seed does not pin.
    """
    try:
        policy = Policy.from_bytes(raw)
    except FormatError as exc:
        raise AccessDenied(f"policy: malformed ({exc})") from None
    pin = await node.pins.get(policy.root)
    if pin is None:
        raise NotFoundError("policy: this seed does not keep that share")
    policy.verify(pin.owner, policy.root)
    catalog = node.store.catalog
    newer = await node.db(lambda: catalog.put_policy(policy.root, policy.seq, raw))
    if newer:
        log.info(
            "share %s: link policy %d kept (%d revoked)",
            root_to_cid(policy.root)[:16],
            policy.seq,
            len(policy.revoked),
        )
        others = [s for s in policy.seeds if s not in (node.host.peer_id_bytes, sender)]
        if others:
            node.jobs.spawn(
                "gossip",
                root_to_cid(policy.root)[:16],
                lambda: push(node, policy.root, only=others),
            )
    kept = await node.db(lambda: catalog.policy_of(policy.root))
    seq = Policy.from_bytes(kept).seq if kept is not None else policy.seq
    return pinproto.PolicyKept(root=policy.root, seq=seq)
