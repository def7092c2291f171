"""The owner's side of seeds: replicate, renew, check and repair.

Theory of operation
-------------------
**Replicate.** For a share (a file, or a folder and every member share
below it, since a seed cannot read a listing to find the members) the
owner's node finds seeds — configured addresses first, then the providers
of the well-known :data:`~p2pshare.node.seed.SEED_ROOT` in the DHT — asks
each for its :class:`~p2pshare.protocol.pin.Info`, and ranks them:
configured seeds first, then seeds in regions not chosen yet, then by free
space. It sends each chosen seed one ``PinRequest`` per root, each with a
grant for that seed's peer id signed by that root's access key (the key
itself never leaves this machine), the lease, the ciphertext size to
reserve and this node's addresses as hints. A refused seed (full, not
admitting) is replaced by the next candidate; what was already pinned on it
is unpinned. Then it polls each seed's status until every root is complete,
reporting progress. Replicas are recorded in the catalog (``replicas``).

**Renew.** The node re-pins every recorded replica when less than half of
its lease is left (a pin for a root already kept only extends the lease).

**Check and repair** are ``replica_check.py``; ranking seeds is
``seed_choice.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from p2pshare.errors import (
    AccessDenied,
    NoProviders,
    NotFoundError,
    P2PShareError,
    RemoteProtocolError,
    ReplicationError,
    UsageError,
)
from p2pshare.format import FileKeys, root_to_cid
from p2pshare.format.grant import make_grant
from p2pshare.node import linkctl
from p2pshare.node.facades import RootEntry
from p2pshare.node.seed import PIN_PROTOCOL, SEED_ROOT
from p2pshare.node.seed_choice import SeedInfo, rank, too_small
from p2pshare.node.streams import read_frame
from p2pshare.protocol import pin as pinproto
from p2pshare.store.catalog import ReplicaRow

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = [
    "DEFAULT_LEASE_S",
    "Erasure",
    "Progress",
    "ReplicationError",
    "RootEntry",
    "SeedInfo",
    "call",
    "find_seeds",
    "full_addrs",
    "quiet",
    "reach",
    "renew_loop",
    "replicate",
    "with_id",
]

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 7 * 24 * 3600
CALL_TIMEOUT_S = 20.0
INFO_TIMEOUT_S = 5.0
POLL_S = 0.5
MAX_PROVE_ROOTS = 16  # roots of a folder checked per seed (sampled)
RENEW_CHECK_S = 600.0


Progress = Callable[[str, int, int, str], None]  # seed, have, count, state


def quiet(_seed: str, _have: int, _count: int, _state: str) -> None:
    pass


# -- one request, one response ------------------------------------------------------
async def call(
    node: Node, peer: ID | bytes | str, request: pinproto.Request
) -> pinproto.Request | pinproto.Response:
    """Send one pin request to ``peer`` (a peer id, raw or libp2p, or a full
    multiaddr text) and return its response.

    Raises:
        NoProviders: the peer cannot be reached or does not speak the pin
            protocol. RemoteProtocolError: it answered garbage.
    """
    try:
        with trio.fail_after(CALL_TIMEOUT_S):
            if isinstance(peer, str):
                peer = await node.host.connect(peer)
            stream = await node.host.open_stream(peer, PIN_PROTOCOL)
            async with stream:
                wire = pinproto.PinStream("client")
                await stream.send_all(wire.send(request))
                frame = await read_frame(stream, pinproto.MAX_PIN_FRAME_BYTES, "pin")
                return wire.receive_frame(frame)
    except trio.TooSlowError:
        raise NoProviders("seed: no answer in time") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise NoProviders(f"seed: connection lost ({exc})") from None
    except (RemoteProtocolError, NoProviders):
        raise
    except P2PShareError:
        raise
    except Exception as exc:  # libp2p dial/negotiation failures: the peer is unusable
        raise NoProviders(f"seed: unreachable ({type(exc).__name__})") from exc


def _refused(resp: pinproto.PinRefused, seed: str) -> P2PShareError:
    message = f"seed {seed[-8:]}: {resp.message}"
    if resp.code == "access_denied":
        return AccessDenied(message)
    if resp.code == "not_found":
        return NotFoundError(message)
    return ReplicationError(message)


# -- finding seeds ------------------------------------------------------------------
async def find_seeds(
    node: Node, configured: Sequence[str] = (), *, use_dht: bool = True
) -> list[SeedInfo]:
    """Seeds that answer ``Info``: configured ones first, then the DHT's."""
    found: dict[str, SeedInfo] = {}

    async def ask(peer: ID | str, addrs: tuple[str, ...], configured: bool) -> None:
        try:
            with trio.move_on_after(INFO_TIMEOUT_S):
                peer_id = (
                    await node.host.connect(peer) if isinstance(peer, str) else peer
                )
                info = await call(node, peer_id, pinproto.InfoRequest())
                if not isinstance(info, pinproto.Info):
                    return
                text = str(peer_id)
                if text == node.peer_id:
                    return
                credit = None
                if info.admission == "voucher":
                    bal = await call(node, peer_id, pinproto.BalanceRequest())
                    if isinstance(bal, pinproto.Balance):
                        credit = max(0, bal.quota - bal.used)
                known = addrs or tuple(_addrs_of(node, peer_id))
                found.setdefault(
                    text,
                    SeedInfo(
                        peer=peer_id.to_bytes(),
                        peer_id=text,
                        addrs=known,
                        region=info.region,
                        free_bytes=info.free_bytes,
                        admission=info.admission,
                        configured=configured,
                        credit=credit,
                    ),
                )
        except (P2PShareError, OSError) as exc:
            log.info("seed %s: not usable (%s)", str(peer)[-12:], exc)

    mine = _voucher_addrs(await node.vouchers.mine())
    async with trio.open_nursery() as nursery:
        for addr in [*configured, *(a for a in mine if a not in configured)]:
            nursery.start_soon(ask, addr, (addr,), True)
    if use_dht:
        infos: list[PeerInfo] = []
        with trio.move_on_after(CALL_TIMEOUT_S):
            infos = await node.host.find_providers(SEED_ROOT, count=20)
        async with trio.open_nursery() as nursery:
            for i in infos:
                if str(i.peer_id) not in found:
                    nursery.start_soon(ask, i.peer_id, full_addrs(i), False)
    return list(found.values())


def _voucher_addrs(mine: list[tuple[str, str, int, int]]) -> list[str]:
    """One address of each seed we hold a voucher for (from its code)."""
    from p2pshare.format.voucher import Voucher

    out = []
    for _seed, code, _quota, expires in mine:
        if expires <= time.time():
            continue
        try:
            v = Voucher.from_code(code)
        except P2PShareError:
            continue
        out += [with_id(a, ID(v.seed)) for a in v.addrs[:1]]
    return out


def with_id(addr: Multiaddr | str, peer_id: ID) -> str:
    text = str(addr)
    return text if "/p2p/" in text else f"{text}/p2p/{peer_id}"


def full_addrs(info: PeerInfo) -> tuple[str, ...]:
    """A PeerInfo's addresses as full multiaddrs (``…/p2p/<id>``)."""
    return tuple(with_id(a, info.peer_id) for a in info.addrs)[:4]


def _addrs_of(node: Node, peer_id: ID) -> list[str]:
    return [with_id(a, peer_id) for a in node.host.known_addrs(peer_id)][:4]


# -- replicate --------------------------------------------------------------------
@dataclass
class _Target:
    seed: SeedInfo
    pinned: list[bytes] = field(default_factory=list)
    state: str = "pinning"
    error: str | None = None
    column: int | None = None  # the erasure column it keeps


@dataclass(frozen=True)
class Erasure:
    """Keep a share erasure coded ``k/n``: ``columns`` are the ones to place
    (all n at first; the missing ones on a repair), ``regions`` counts the
    columns already kept per region (a repair's survivors)."""

    k: int
    n: int
    columns: tuple[int, ...]
    regions: dict[str, int] = field(default_factory=dict)

    def cap(self, regions: set[str]) -> int | None:
        """At most n-k columns in one region, when there are regions enough
        for that (``ceil(n / (n-k))``); otherwise no cap."""
        spread = -(-self.n // (self.n - self.k))
        return self.n - self.k if len(regions) >= spread else None


def _next_seed(
    queue: list[SeedInfo], taken: dict[str, int], cap: int | None
) -> SeedInfo:
    """The first candidate whose region is below ``cap`` (else the first)."""
    for s in queue:
        if cap is None or taken.get(s.region, 0) < cap:
            queue.remove(s)
            return s
    return queue.pop(0)


async def replicate(
    node: Node,
    root: bytes,
    n: int,
    *,
    seeds: Sequence[str] = (),
    lease_s: int = DEFAULT_LEASE_S,
    exclude: Sequence[str] = (),
    progress: Progress = quiet,
    use_dht: bool = True,
    wait: bool = True,
    erasure: Erasure | None = None,
) -> list[ReplicaRow]:
    """Keep ``n`` replicas of ``root`` on seeds (see the module docstring);
    returns the replicas made, complete when ``wait``. With ``erasure``,
    each of ``n`` (its number of columns) seeds keeps one column.

    Raises:
        ReplicationError: fewer than ``n`` seeds could take it (the message
            says why for each one tried).
        NotFoundError / AccessDenied: this home does not hold the share.
    """
    if n < 1:
        raise UsageError("replicas: must be at least 1")
    tree = await node.shares.tree(root)
    need = sum(r.size for r in tree)
    columns: list[int] = []
    if erasure is not None:
        columns = list(erasure.columns)
        n = len(columns)
        # the largest column: a parity one (a fragment per stripe, each as
        # long as the stripe's longest chunk), else the lowest systematic one
        largest = min(
            (c for c in columns if c >= erasure.k), default=min(columns, default=0)
        )
        need = await _column_need(node, tree, erasure, largest)
    found = [
        s
        for s in await find_seeds(node, seeds, use_dht=use_dht)
        if s.peer_id not in set(exclude)
    ]
    candidates = rank(found, need)
    reasons: list[str] = too_small(found, need)
    good: list[_Target] = []
    queue = list(candidates)
    taken = dict(erasure.regions) if erasure is not None else {}
    cap = (
        erasure.cap({s.region for s in candidates} | set(taken))
        if erasure is not None
        else None
    )

    def why(t: _Target, error: object) -> str:
        return f"{t.seed.peer_id[-8:]} ({t.seed.region or '?'}): {error}"

    # rounds: pin on as many new seeds as are missing, wait, replace failures
    while len(good) < n and queue:
        made: list[_Target] = []
        while len(good) + len(made) < n and queue:
            target = _Target(_next_seed(queue, taken, cap))
            if erasure is not None:
                target.column = columns.pop(0)
            try:
                await _pintree_of(node, target, tree, lease_s, erasure)
            except P2PShareError as exc:
                reasons.append(why(target, exc))
                log.info("seed %s refused: %s", target.seed.peer_id[-8:], exc)
                await _unpin_all(node, target, tree)
                if target.column is not None:
                    columns.insert(0, target.column)
                continue
            made.append(target)
            taken[target.seed.region] = taken.get(target.seed.region, 0) + 1
            await node.shares.record_replica(_row(root, target, "fetching", lease_s))
            await node.shares.record_column(root, target.seed.peer_id, target.column)
            progress(target.seed.peer_id, 0, 0, "fetching")
        if wait and made:
            async with trio.open_nursery() as nursery:
                for target in made:
                    nursery.start_soon(_await_complete, node, target, tree, progress)
        for target in made:
            if target.state == "failed":
                reasons.append(why(target, target.error))
                await node.shares.drop_replica(root, target.seed.peer_id)
                await _unpin_all(node, target, tree)
                taken[target.seed.region] -= 1
                if target.column is not None:
                    columns.insert(0, target.column)
            else:
                await node.shares.record_replica(
                    _row(root, target, target.state, lease_s)
                )
                good.append(target)
    if len(good) < n:
        detail = (
            "; ".join(reasons)
            if reasons
            else "no seed found: name one with --seed MADDR, set `seeds` in"
            " config.toml, or redeem a voucher"
        )
        what = "replicas" if erasure is None else "erasure columns"
        raise ReplicationError(
            f"share {root_to_cid(root)[:16]}…: {len(good)} of {n} {what} ({detail})"
        )
    rows = await node.shares.replicas(root)
    return rows


async def _column_need(
    node: Node, tree: list[RootEntry], erasure: Erasure, column: int
) -> int:
    """What keeping ``column`` of every share of ``tree`` takes on a seed."""
    total = 0
    for r in tree:
        _emap, size = await node.shares.erasure_map(r.root, erasure.k, erasure.n)
        total += await node.shares.column_size(
            r.root, erasure.k, erasure.n, column, size
        )
    return total


async def _pintree_of(
    node: Node,
    target: _Target,
    tree: list[RootEntry],
    lease_s: int,
    erasure: Erasure | None = None,
) -> None:
    expires = int(time.time()) + lease_s
    hints = tuple(node.addrs()[:4])
    controlled = [
        r.root for r in tree if await linkctl.add_seed(node, r.root, target.seed.peer)
    ]
    # members first, the top root last: a seed announces the top only when
    # everything below it was accepted
    for r in sorted(tree, key=lambda r: r.top):
        grant = make_grant(
            FileKeys.from_key(r.key).signing_key, r.root, target.seed.peer, expires
        )
        size, field_ = r.size, None
        if erasure is not None and target.column is not None:
            emap, map_size = await node.shares.erasure_map(r.root, erasure.k, erasure.n)
            size = await node.shares.column_size(
                r.root, erasure.k, erasure.n, target.column, map_size
            )
            field_ = pinproto.erasure_field(erasure.k, erasure.n, target.column, emap)
        req = pinproto.PinRequest(
            root=r.root,
            grant=grant.to_bytes(),
            lease_s=lease_s,
            size=size,
            hints=hints,
            top=r.top,
            erasure=field_,
        )
        resp = await call(node, target.seed.peer, req)
        if isinstance(resp, pinproto.PinRefused):
            raise _refused(resp, target.seed.peer_id)
        if not isinstance(resp, pinproto.PinStatus):
            raise RemoteProtocolError("pin: unexpected answer")
        target.pinned.append(r.root)
        if r.root in controlled:  # the seed learns the share's link control
            await linkctl.push(node, r.root, only=[target.seed.peer])


async def _unpin_all(node: Node, target: _Target, tree: list[RootEntry]) -> None:
    keys = {r.root: r.key for r in tree}
    for root in target.pinned:
        await unpin(node, target.seed.peer, root, keys[root])


async def unpin(node: Node, seed: bytes | ID, root: bytes, key: bytes) -> bool:
    """Ask ``seed`` to drop ``root`` (best effort: False when it could not)."""
    at = int(time.time())
    auth = pinproto.make_unpin_auth(
        FileKeys.from_key(key).signing_key,
        root,
        seed if isinstance(seed, bytes) else seed.to_bytes(),
        node.host.peer_id_bytes,
        at,
    )
    try:
        resp = await call(
            node, seed, pinproto.UnpinRequest(root=root, at=at, auth=auth)
        )
    except P2PShareError:
        return False
    return isinstance(resp, pinproto.Unpinned)


async def _await_complete(
    node: Node, target: _Target, tree: list[RootEntry], progress: Progress
) -> None:
    total_have = 0
    while True:
        have = count = 0
        states = []
        for r in tree:
            try:
                resp = await call(
                    node, target.seed.peer, pinproto.StatusRequest(root=r.root)
                )
            except P2PShareError as exc:
                target.state, target.error = "failed", str(exc)
                progress(target.seed.peer_id, total_have, 0, "failed")
                return
            if not isinstance(resp, pinproto.PinStatus):
                target.state, target.error = "failed", "seed answered garbage"
                return
            states.append(resp.state)
            have += resp.have
            count += resp.count
            if resp.state == "failed":
                target.state = "failed"
                target.error = resp.error or "the seed could not fetch it"
                progress(target.seed.peer_id, have, count, "failed")
                return
            if resp.state == "none":
                target.state, target.error = "failed", "the seed forgot the pin"
                return
        total_have = have
        if all(s == "complete" for s in states):
            target.state = "complete"
            progress(target.seed.peer_id, have, count, "complete")
            return
        progress(target.seed.peer_id, have, count, "fetching")
        await trio.sleep(POLL_S)


def _row(root: bytes, target: _Target, state: str, lease_s: int) -> ReplicaRow:
    return ReplicaRow(
        root=root,
        seed=target.seed.peer_id,
        addrs=target.seed.addrs,
        region=target.seed.region,
        state=state,
        lease_expires=int(time.time()) + lease_s,
        updated_at=int(time.time()),
    )


# -- renew ------------------------------------------------------------------------
async def renew_loop(node: Node, *, interval_s: float = RENEW_CHECK_S) -> None:
    """Re-pin replicas whose lease is more than half gone; runs until cancelled."""
    while True:
        await trio.sleep(interval_s)
        rows = await node.shares.replicas()
        now = int(time.time())
        for rep in rows:
            if rep.lease_expires is None or rep.state == "failed":
                continue
            lease = DEFAULT_LEASE_S
            if rep.lease_expires - now > lease // 2:
                continue
            try:
                tree = await node.shares.tree(rep.root)
                target = _Target(_seed_of(rep))
                # an erasure-coded replica renews as its column (a seed that
                # lost the pin fetches the column again, not a full copy)
                coded, column = await _column_of(node, rep)
                target.column = column
                await _pintree_of(node, target, tree, lease, coded)
                await node.shares.record_replica(
                    _row(rep.root, target, rep.state, lease)
                )
                log.info("replica on %s renewed", rep.seed[-8:])
            except Exception as exc:  # a job root: one renewal, not the node
                node.jobs.record("renew", rep.seed[-8:], exc)


async def _column_of(node: Node, rep: ReplicaRow) -> tuple[Erasure | None, int | None]:
    column = (await node.shares.columns(rep.root)).get(rep.seed)
    er = await node.shares.erasure(rep.root)
    if column is None or er is None:
        return None, None
    return Erasure(er.k, er.n, (column,)), column


def _seed_of(rep: ReplicaRow) -> SeedInfo:
    pid = ID.from_base58(rep.seed)
    return SeedInfo(
        peer=pid.to_bytes(),
        peer_id=rep.seed,
        addrs=rep.addrs,
        region=rep.region,
        free_bytes=0,
        admission="",
    )


async def reach(
    node: Node, peer: ID, addrs: Sequence[str], *, timeout_s: float = INFO_TIMEOUT_S
) -> ID:
    """Connect to ``peer`` through the first of ``addrs`` that answers (an
    address without ``/p2p/`` gets the peer's id); failing all, return the
    id and let the peerstore or the DHT find it when a stream is opened."""
    for addr in addrs:
        try:
            with trio.fail_after(timeout_s):
                connected: ID = await node.host.connect(with_id(addr, peer))
                return connected
        except Exception:  # try the next address  # noqa: S112
            continue
    return peer
