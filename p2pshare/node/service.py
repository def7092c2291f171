"""The running node: host + DHT + share server + downloads, as one scope.

Theory of operation
-------------------
:func:`open_node` is the root of every running node (``share``, ``get``,
``node``). It opens the home's store, starts the libp2p host and the DHT
(``host.py``), registers the ``/p2pshare/xfer/1`` handler (every node
serves what it holds, including the verified chunks of its own downloads),
and starts the announcer, which provides every top share and every partial
download in the DHT and re-announces before records expire. Leaving the
context cancels every task and closes the network (no leaked sockets).

Downloads (:meth:`Node.get`) drive the store's walk of a share
(``store/walk.py``) with a :class:`~p2pshare.node.fetch.NetworkSource`, whose providers
come from the link's hints and the DHT in parallel.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar, TypeVarTuple

import trio
from libp2p.peer.peerinfo import PeerInfo
from libp2p.tools.anyio_service.api import Service

from p2pshare.config import Home, load_config
from p2pshare.errors import P2PShareError
from p2pshare.format import ShareLink, root_to_cid
from p2pshare.node import compat, linkctl
from p2pshare.node import dht as dhtmod
from p2pshare.node import live as livemod
from p2pshare.node.circuits import (
    RelayClient,
)
from p2pshare.node.downloads import DownloadManager
from p2pshare.node.events import EventBus
from p2pshare.node.facades import Pins, Shares, Vouchers
from p2pshare.node.fetch import DownloadStats, Swarm
from p2pshare.node.gateway import Gateway
from p2pshare.node.getting import XFER_PROTOCOL, Getting
from p2pshare.node.host import NodeHost
from p2pshare.node.host_start import open_host
from p2pshare.node.jobs import Supervisor, at_once
from p2pshare.node.known_peers import load_known, remember_known
from p2pshare.node.lan import LanDiscovery
from p2pshare.node.link_hints import link_hints
from p2pshare.node.ports import check_free, remember_port, sticky
from p2pshare.node.ratelimit import RateLimiter
from p2pshare.node.reach import Reachability, ReachServer, tcp_addr
from p2pshare.node.relay import RelayPolicy, SeedRelay
from p2pshare.node.replicate import renew_loop
from p2pshare.node.reporting import Rates, Reporting
from p2pshare.node.seed import PIN_PROTOCOL, SeedService
from p2pshare.node.seed_policy import SeedPolicy
from p2pshare.node.upnp import PortMapper
from p2pshare.node.xfer_server import ShareServer
from p2pshare.protocol.reach import REACH_PROTOCOL
from p2pshare.records import (
    AddResult,
    GcReport,
    ReplicaProgress,
    ShareAdded,
    ShareRemoved,
)
from p2pshare.store import LocalStore
from p2pshare.store.gc import collect
from p2pshare.store.schema import ReplicaRow

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["XFER_PROTOCOL", "Node", "open_node"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = logging.getLogger(__name__)

LINKS_READY_S = 15.0  # a link printed at start waits this long for relays


@dataclass(eq=False)
class Node(Getting, Reporting):
    host: NodeHost
    store: LocalStore
    server: ShareServer
    nursery: trio.Nursery
    jobs: Supervisor
    announcer: dhtmod.Announcer | None = None
    last_download: DownloadStats = field(default_factory=DownloadStats)
    bus: EventBus = field(default_factory=EventBus)
    swarms: dict[bytes, Swarm] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    downloads: DownloadManager = field(init=False)  # set by open_node
    seed: SeedService | None = None  # when this node is a seed
    lan: LanDiscovery | None = None  # mDNS, unless turned off
    reach: Reachability | None = None  # checked by nodes that serve (DHT server)
    relay: RelayClient | None = None  # circuits, hole punching, reservations
    seed_relay: SeedRelay | None = None  # a seed's relay service
    dht_auto: bool = False  # DHT server unless reachability says private
    upnp: PortMapper | None = None  # [network] upnp = true
    publishing: trio.Lock = field(default_factory=trio.Lock)  # one at a time
    gateway: Gateway | None = None  # HTTP, started by the first `open`
    # how we reached the providers that were not plainly direct: "direct
    # after hole punching (…)", "relayed via …<seed>" (short peer id -> path;
    # the latest MAX_PATHS, for `get` to print)
    paths: dict[str, str] = field(default_factory=dict)
    punching: dict[str, float] = field(default_factory=dict)  # peer -> since
    rates: Rates = field(default_factory=lambda: Rates())
    received_by_peer: Counter[bytes] = field(default_factory=Counter)
    peer_rates: dict[bytes, Rates] = field(default_factory=dict)
    store_limiter: trio.CapacityLimiter = field(
        default_factory=lambda: trio.CapacityLimiter(2)
    )
    # the store, one facade per concern (node/facades.py)
    shares: Shares = field(init=False)
    pins: Pins = field(init=False)
    vouchers: Vouchers = field(init=False)

    def __post_init__(self) -> None:
        self.shares = Shares(self.store, self.store_limiter)
        self.pins = Pins(self.store, self.store_limiter)
        self.vouchers = Vouchers(self.store, self.store_limiter)

    async def serve_rates(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Sample upload/download byte counters once a second."""
        task_status.started()
        sent, received = self.server.stats.bytes_sent, self._received()
        by_peer = self._per_peer()
        while True:
            await trio.sleep(1.0)
            now_sent, now_received = self.server.stats.bytes_sent, self._received()
            self.rates.update(now_sent - sent, now_received - received)
            sent, received = now_sent, now_received
            now_by_peer = self._per_peer()
            for peer, (s_now, r_now) in now_by_peer.items():
                s_then, r_then = by_peer.get(peer, (0, 0))
                self.peer_rates.setdefault(peer, Rates()).update(
                    s_now - s_then, r_now - r_then
                )
            by_peer = now_by_peer
            self._forget_gone_peers()

    def _forget_gone_peers(self) -> None:
        """Per-peer counters cover connected peers only, so they stay
        bounded on a node that meets many peers over months."""
        connected = {p.to_bytes() for p in self.host.connected_peers()}
        _keep_only(self.server.stats.per_peer_sent, connected)
        _keep_only(self.received_by_peer, connected)
        _keep_only(self.peer_rates, connected)

    async def db(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run a store call in a worker thread (at most two at a time)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.store_limiter)

    def _per_peer(self) -> dict[bytes, tuple[int, int]]:
        """Bytes sent to and received from each peer so far."""
        sent = self.server.stats.per_peer_sent
        return {
            p: (sent[p], self.received_by_peer[p])
            for p in sent.keys() | self.received_by_peer.keys()
        }

    def _received(self) -> int:
        return sum(d.done_bytes for d in self.downloads.list())

    async def reachability_changed(self, reach: Reachability) -> None:
        """Behind a NAT a node is a DHT client (nobody could dial it as a
        server) and keeps relay reservations on seeds; it serves the DHT
        again once seeds can dial it. A seed stays a server and says it is
        unreachable."""
        if self.relay is not None:
            self.relay.wanted = reach.state == "private"
        if self.seed is not None:
            if reach.state == "private":
                log.warning("this seed cannot be dialled from outside: %s", reach.why)
            return
        if reach.state in ("public", "private") or self.dht_auto:
            server = reach.state != "private"
            if await compat.set_dht_mode(self.host.host, self.host.dht, server):
                log.info(
                    "DHT %s mode: this node is %s",
                    "server" if server else "client",
                    reach.state,
                )

    async def links_ready(self, timeout_s: float = LINKS_READY_S) -> None:
        """Wait (at most ``timeout_s``) until the links we print can carry
        what a peer elsewhere needs: the reachability check answered and,
        behind a NAT, a relay holds a reservation for us."""
        if self.reach is None or not self.reach.ask:
            return  # nobody to ask: nothing to wait for
        with trio.move_on_after(timeout_s):
            while self.reach.checked_at is None or (  # noqa: ASYNC110
                self.reach.state == "private"
                and self.relay is not None
                and not self.relay.circuit_addrs()
            ):
                await trio.sleep(0.1)

    def public_guess(self) -> list[str]:
        """``/ip4/<address seeds saw>/tcp/<our listen port>`` when known."""
        r = self.reach
        if r is None or r.observed is None or r.port is None:
            return []
        return [tcp_addr(r.observed, r.port)]

    def relays_changed(self) -> None:
        """Our reservations changed: advertise the circuit addresses."""
        assert self.relay is not None
        if self.host.set_circuit_addrs(self.relay.circuit_addrs()):
            host = self.host.host
            self.jobs.spawn("identify", "push", lambda: compat.push_identify(host))

    def lan_candidates(self) -> list[tuple[PeerInfo, bytes]]:
        if self.lan is None:
            return []
        return [(i, i.peer_id.to_bytes()) for i in self.lan.candidates()]

    def _lan_peer(self, info: PeerInfo) -> None:
        """A LAN peer appeared: every download under way asks it too."""
        for swarm in list(self.swarms.values()):
            swarm.offer([(info, info.peer_id.to_bytes())])

    def active_providers(self, root: bytes) -> int:
        swarm = self.swarms.get(root)
        return len(swarm.live()) if swarm is not None else 0

    @property
    def peer_id(self) -> str:
        return str(self.host.peer_id)

    def addrs(self) -> list[str]:
        return self.host.addrs()

    def link(
        self, root: bytes, key: bytes | None, replicas: Sequence[ReplicaRow] = ()
    ) -> ShareLink:
        """A share link with this node's addresses as peer hints, and one
        address of each seed that keeps a replica (``replicas``: catalog
        rows), so the link works while this node is offline; at most
        :data:`~p2pshare.node.link_hints.MAX_LINK_PEERS` hints in all."""
        seeds = [r.addrs[0] for r in replicas if r.addrs and r.state != "failed"]
        return ShareLink(root_id=root, key=key, peers=link_hints(self.addrs(), seeds))

    async def replicate(
        self,
        root: bytes,
        n: int,
        *,
        seeds: Sequence[str] = (),
        lease_s: int | None = None,
        erasure: str | None = None,
    ) -> list[ReplicaRow]:
        """Keep ``n`` replicas of ``root`` on seeds (with ``erasure`` "K/N":
        one erasure-coded column on each of N seeds); progress goes to the
        bus as ``replica.progress`` events. See ``node/replicate.py``."""
        from p2pshare.format.erasure import parse_erasure
        from p2pshare.node import replicate as rep

        coded = None
        if erasure is not None:
            k, n = parse_erasure(erasure)
            coded = rep.Erasure(k, n, tuple(range(n)))

        cid = root_to_cid(root)

        def progress(seed: str, have: int, count: int, state: str) -> None:
            self.bus.publish(
                ReplicaProgress(
                    kind="replica.progress",
                    root=cid,
                    seed=seed,
                    have=have,
                    count=count,
                    state=state,
                )
            )

        rows: list[ReplicaRow] = await rep.replicate(
            self,
            root,
            n,
            seeds=seeds,
            lease_s=lease_s or rep.DEFAULT_LEASE_S,
            progress=progress,
            erasure=coded,
        )
        await livemod.replicated(self, root)  # a live share's record follows
        return rows

    # -- what the control API drives -------------------------------------------
    async def add(
        self,
        path: Path,
        *,
        copy: bool,
        hints: bool,
        new: bool = False,
        live: bool = False,
    ) -> AddResult:
        """Add a file or folder, serve and announce it; returns ``{root, link,
        kind, size, reused}`` (the link carries peer hints when ``hints``;
        ``reused``: it was already shared, unchanged, and keeps its link).
        ``live``: the link is the source's live link (``node/live.py``)."""
        from p2pshare.store.adder import add_path

        if live:
            return await livemod.add(self, path, copy=copy, hints=hints, new=new)
        added = await self.db(lambda: add_path(self.store, path, copy=copy, new=new))
        self.announce_soon(added.root)
        link = (
            self.link(added.root, added.key)
            if hints
            else ShareLink(root_id=added.root, key=added.key)
        )
        if await self.db(lambda: self.store.catalog.policy_of(added.root)):
            # under link control: a link without a ticket would be refused;
            # this one never expires, and `revoke` can still end it
            ticket = await linkctl.issue(self, added.root, 0)
            link = dataclasses.replace(link, ticket=ticket)
        cid = root_to_cid(added.root)
        self.bus.publish(
            ShareAdded(kind="share.added", root=cid, share_kind=added.kind)
        )
        return AddResult(
            root=cid,
            link=str(link),
            kind=added.kind,
            size=added.size,
            reused=added.reused,
        )

    async def gc(self) -> GcReport:
        """Remove blocks, temp files and partial shares nothing needs
        (``store/gc.py``); waits for adds and fetches in flight."""
        report = await trio.to_thread.run_sync(collect, self.store)
        return report.to_wire()

    async def remove(self, root: bytes) -> None:
        """Stop serving a share and delete what the home stored for it."""

        def rm() -> None:
            for bid in self.store.catalog.remove_top(root):
                self.store.blocks.delete(bid)

        await trio.to_thread.run_sync(rm, limiter=self.store_limiter)
        await self.server.forget_removed()
        if self.announcer is not None:
            self.announcer.withdraw(root)
        self.bus.publish(ShareRemoved(kind="share.removed", root=root_to_cid(root)))

    def roots_to_announce(self) -> list[bytes]:
        roots = self.store.catalog.announced_roots()
        if self.seed is not None:
            mine = set(roots)
            roots += [r for r in self.seed.roots() if r not in mine]
        return roots

    async def announce(self, root: bytes) -> None:
        """Announce a root now (a share added or a download started)."""
        if self.announcer is not None:
            await self.announcer.announce_now(root)

    def announce_soon(self, root: bytes) -> None:
        """Announce in the background: a DHT provide can take seconds and
        must never hold up a transfer (nor fail anything but itself)."""
        self.jobs.spawn("announce", root_to_cid(root)[:16], lambda: self.announce(root))


def _collect_at_start(store: LocalStore) -> None:
    """What a crash or a failed job left behind goes before serving starts;
    another process using the home only postpones it."""
    try:
        collect(store, wait_s=0)
    except P2PShareError as exc:
        log.info("gc at start skipped: %s", exc)


def _keep_only(table: MutableMapping[bytes, T], peers: set[bytes]) -> None:
    for peer in [p for p in table if p not in peers]:
        del table[peer]


async def _run_service(
    service: Service, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a py-libp2p ``Service`` until cancelled."""
    from libp2p.tools.anyio_service import background_trio_service

    async with background_trio_service(service):
        task_status.started()
        await trio.sleep_forever()


@asynccontextmanager
async def open_node(
    home: Home,
    *,
    listen: Sequence[str] = ("/ip4/0.0.0.0/tcp/0",),
    bootstrap: Sequence[str] = (),
    dht_mode: Literal["server", "client"] = "client",
    upload_rate: float | None = None,
    seed: SeedPolicy | None = None,
    announce_lan: bool = True,
) -> AsyncIterator[Node]:
    """Run a node for ``home`` until the context exits; with ``seed``, a
    seed node (pins, replicas: ``node/seed.py``). ``announce_lan`` false:
    LAN discovery (when on) only browses, for nodes that serve nobody.

    Cancellation: leaving the block cancels announcements, transfers and
    the host, then closes every socket.
    """
    check_free(listen)
    asked = list(listen)
    config = load_config(home)
    known = load_known(home.path)  # last-good peers of the previous run
    joined = list(dict.fromkeys([*bootstrap, *config.bootstrap, *known]))
    # A serving node with seeds to ask starts as a DHT client and turns
    # server unless they find it behind a NAT: peers elsewhere would
    # otherwise put it in their tables and wait on it (kubo's "auto" mode).
    seeds = list(dict.fromkeys([*config.seeds, *joined]))  # relays, reachability
    dht_auto = dht_mode == "server" and seed is None and bool(seeds)
    store = LocalStore(home)
    try:
        await trio.to_thread.run_sync(_collect_at_start, store)
        async with (
            open_host(
                home_dir=home.path,
                listen=sticky(home.path, asked),
                bootstrap=joined,
                dht_mode="client" if dht_auto else dht_mode,
            ) as nh,
            trio.open_nursery() as nursery,
        ):
            server = ShareServer(
                store, local_peer=nh.peer_id_bytes, upload=RateLimiter(upload_rate)
            )

            remember_port(home.path, asked, nh.addrs())
            nh.set_handler(XFER_PROTOCOL, server.handle)
            bus = EventBus()
            node = Node(nh, store, server, nursery, Supervisor(nursery, bus), bus=bus)
            node.dht_auto = dht_auto
            node.downloads = DownloadManager(node, node.jobs, bus)
            node.gateway = Gateway(node, config.gateway)
            keep = node.jobs.keep  # a service that fails restarts (node/jobs.py)
            await nursery.start(keep, "renew", at_once(lambda: renew_loop(node)))
            await nursery.start(
                keep, "publish", at_once(lambda: livemod.publish_loop(node))
            )
            await nursery.start(
                keep, "rescan", at_once(lambda: livemod.rescan_loop(node))
            )
            if seed is not None:
                node.seed = SeedService(node, seed)
                nh.set_handler(PIN_PROTOCOL, node.seed.handle)
                nh.set_handler(REACH_PROTOCOL, ReachServer(nh).handle)
                node.seed_relay = SeedRelay(
                    nh.host,
                    node.seed.relay_admits,
                    RelayPolicy(seed.open_relay, seed.relay_rate, seed.relay_peer_rate),
                )
                await nursery.start(_run_service, node.seed_relay)
                # the peers met while joining learn what a seed serves now
                # (identify ran before these handlers were set)
                node.jobs.spawn(
                    "identify", "push", lambda: compat.push_identify(nh.host)
                )
            node.relay = RelayClient(
                nh,
                seeds=seeds,
                stop=node.seed_relay,  # a seed answers STOP itself
                on_change=node.relays_changed,
                public_guess=node.public_guess,
            )
            if node.seed is not None:
                await nursery.start(keep, "seed", node.seed.run)
            await nursery.start(keep, "relay client", node.relay.run)
            await nursery.start(keep, "rates", node.serve_rates)
            node.announcer = dhtmod.Announcer(nh.dht, node.roots_to_announce)
            await nursery.start(keep, "announcer", node.announcer.serve)
            if dht_mode == "server" or seed is not None:
                node.reach = Reachability(
                    nh,
                    ask=seeds,
                    on_change=node.reachability_changed,
                )
                await nursery.start(keep, "reachability", node.reach.run)
            port = node.reach.listen_port() if node.reach is not None else None
            if config.upnp and node.reach is not None and port is not None:
                node.upnp = PortMapper(port, on_mapped=node.reach.recheck)
                await nursery.start(keep, "upnp", node.upnp.run)
            if config.mdns:
                node.lan = LanDiscovery(
                    nh.peer_id, nh.addrs, node._lan_peer, announce=announce_lan
                )
                await nursery.start(keep, "lan", node.lan.run)
            try:
                yield node
            finally:
                remember_known(home.path, nh)
                nursery.cancel_scope.cancel()
    except P2PShareError:
        raise
    finally:
        store.close()
