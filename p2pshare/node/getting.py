"""Getting a share: providers found and dialled, the walk driven.

The download half of :class:`~p2pshare.node.service.Node` (a mixin): a
:class:`~p2pshare.node.fetch.Swarm` of providers from the link's hints, the
LAN and the DHT in parallel (:meth:`Getting.source`), each dialled with the
wait for a direct path that hole punching may give (:meth:`Getting.dial`),
and the store's walk of the share driven over them (:meth:`Getting.get`,
:meth:`Getting.inspect`; ``fetch.drive``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from p2pshare.errors import NoProviders, NotFoundError
from p2pshare.format import ShareLink, root_to_cid
from p2pshare.groups import single_error
from p2pshare.node.circuits import (
    DIRECT_WAIT_S,
    PUNCH_WAIT_S,
    RelayClient,
    circuit_limit,
    is_direct,
    is_relayed,
    wait_direct,
)
from p2pshare.node.circuits import path as relay_path
from p2pshare.node.compat import short_peer_id
from p2pshare.node.fetch import DownloadStats, NetworkSource, Swarm, drive
from p2pshare.node.fill import STALL_TIMEOUT_S
from p2pshare.node.host import NodeHost, parse_peer_addr
from p2pshare.node.jobs import Supervisor
from p2pshare.node.provider import ProviderConn
from p2pshare.records import Inspection
from p2pshare.store import GetResult, LocalStore
from p2pshare.store.partial import partial_name
from p2pshare.store.rebuild import get_walk
from p2pshare.store.restore import LocalSource
from p2pshare.store.schema import ShareRow
from p2pshare.store.walk import (
    DEFAULT_LIMITS,
    FolderLimits,
    parse_selection,
    run_walk,
    tree_walk,
)

__all__ = ["DIAL_TIMEOUT_S", "MAX_PATHS", "XFER_PROTOCOL", "Getting"]

log = logging.getLogger("p2pshare.node.service")

XFER_PROTOCOL = "/p2pshare/xfer/1"
DIAL_TIMEOUT_S = 15.0
MAX_PATHS = 64  # Node.paths


class Getting:
    """Downloads: the parts of the node a get uses (see the module docstring)."""

    host: NodeHost
    store: LocalStore
    jobs: Supervisor
    relay: RelayClient | None
    swarms: dict[bytes, Swarm]
    paths: dict[str, str]
    punching: dict[str, float]  # a dial waits for a hole punch: since when
    received_by_peer: Counter[bytes]
    last_download: DownloadStats

    if TYPE_CHECKING:

        def lan_candidates(self) -> list[tuple[Any, bytes]]: ...

        def announce_soon(self, root: bytes) -> None: ...

    # -- providers ------------------------------------------------------------------
    async def dial(self, peer: Any, nursery: trio.Nursery) -> ProviderConn | None:
        """Connect to ``peer`` (a multiaddr text or a PeerInfo) and open a
        transfer stream; its reader runs in ``nursery``."""
        host = self.host.host
        info = parse_peer_addr(peer) if isinstance(peer, str) else peer
        # only a relay leads there, unless a direct connection already did
        via_relay = bool(info.addrs) and not is_direct(host, info.peer_id)
        via_relay = via_relay and all("/p2p-circuit" in str(a) for a in info.addrs)
        with trio.fail_after(DIAL_TIMEOUT_S):
            if isinstance(peer, str):
                peer_id = await self.host.connect(peer)
            else:
                await self.host.connect_info(peer)
                peer_id = peer.peer_id
            if peer_id == self.host.peer_id:
                return None
            how: str | None = None
            short = short_peer_id(peer_id)
            if is_relayed(host, peer_id):  # give hole punching a moment
                over: trio.Event | None = None
                wait_s = DIRECT_WAIT_S  # for a punch the other side starts
                if self.relay is not None and self.relay.dcutr is not None:
                    punch = self.relay.dcutr.initiate_hole_punch
                    over, wait_s = trio.Event(), PUNCH_WAIT_S

                    async def attempt(done: trio.Event = over) -> None:
                        try:
                            await punch(peer_id)
                        finally:
                            done.set()

                    self.jobs.spawn("hole punch", short, attempt)
                started = self.punching[short] = trio.current_time()
                try:
                    direct = await wait_direct(host, peer_id, wait_s, over)
                finally:
                    self.punching.pop(short, None)
                waited = trio.current_time() - started
                how = (
                    f"direct after hole punching ({waited:.1f} s relayed)"
                    if direct
                    else relay_path(host, peer_id)
                )
            elif is_direct(host, peer_id) and (
                via_relay or short in self.punching
            ):  # the hole was punched before this dial returned, or while
                # another dial of the same peer (another hint) waits for it
                since = self.punching.get(short, trio.current_time())
                waited = trio.current_time() - since
                how = f"direct after hole punching ({waited:.1f} s relayed)"
            if how is not None:
                self.paths[short] = how
                while len(self.paths) > MAX_PATHS:
                    del self.paths[next(iter(self.paths))]
                log.info("provider %s: %s", short, how)
            relayed = is_relayed(host, peer_id)
            stream = await self.host.open_stream(peer_id, XFER_PROTOCOL)
        pc = ProviderConn(
            stream,
            local_peer=self.host.peer_id_bytes,
            name=short_peer_id(peer_id),
            traffic=self.received_by_peer,
        )
        limit = circuit_limit(self.host.host, peer_id) if relayed else None
        if limit is not None:  # only limited circuits have one
            relay, data, _duration = limit
            pc.relay_note = (
                f"cut by the relay limit of {short_peer_id(relay)} "
                f"({data // 1024} KiB per circuit without a voucher there)"
            )
        await nursery.start(pc.serve)
        if pc.dead:
            return None
        return pc

    async def find(self, root: bytes) -> list[tuple[Any, bytes]]:
        infos = await self.host.find_providers(root, count=3)
        return [
            (i, i.peer_id.to_bytes()) for i in infos if i.peer_id != self.host.peer_id
        ]

    # -- downloads ------------------------------------------------------------------
    @asynccontextmanager
    async def source(
        self,
        link: ShareLink,
        *,
        timeout_s: float,
        use_dht: bool = True,
        stall_s: float = STALL_TIMEOUT_S,
        held: bool = False,
    ) -> AsyncIterator[NetworkSource]:
        """Providers of ``link`` (hints and DHT in parallel) as a source;
        waits for the first one, unless the share is ``held`` here already
        (then only members it lacks come from providers).

        Raises:
            NoProviders: nobody serving it was found within ``timeout_s``.
        """
        root = link.root_id
        started = trio.current_time()
        swarm: Swarm | None = None
        try:
            with single_error():
                async with trio.open_nursery() as nursery:
                    swarm = Swarm(
                        dial=lambda peer: self.dial(peer, nursery),
                        find=(lambda: self.find(root)) if use_dht else None,
                        hints=link.peers,
                    )
                    self.swarms[root] = swarm
                    await swarm.run(nursery)
                    swarm.offer(self.lan_candidates())
                    if not held:  # a share held here needs no provider to start
                        with trio.move_on_after(timeout_s) as scope:
                            await swarm.wait_for_provider()
                        if scope.cancelled_caught:
                            raise NoProviders(
                                f"share {root_to_cid(root)[:16]}…: no provider found"
                                f" within {timeout_s:g} s"
                            )
                    source = NetworkSource(
                        self.store,
                        swarm,
                        announce=self.announce_soon,
                        give_up_s=timeout_s,
                        stall_s=stall_s,
                        ticket=link.ticket,
                    )
                    source.stats.started_at = started
                    yield source
                    nursery.cancel_scope.cancel()
        finally:
            if self.swarms.get(root) is swarm:
                self.swarms.pop(root, None)

    async def get(
        self,
        link: ShareLink,
        out_dir: Path,
        *,
        progress: Callable[[int], None] = lambda _n: None,
        on_total: Callable[[int], None] = lambda _n: None,
        timeout_s: float = 60.0,
        use_dht: bool = True,
        paths: Sequence[str] = (),
        on_name: Callable[[str], None] = lambda _name: None,
        stall_s: float = STALL_TIMEOUT_S,
        limits: FolderLimits = DEFAULT_LIMITS,
    ) -> GetResult:
        """Download ``link`` into ``out_dir`` from every provider found;
        with ``paths``, only those files and folders of a folder share.

        ``timeout_s`` bounds the wait for a first provider; ``stall_s`` ends
        the download when no provider sent a verified byte for that long.

        Raises:
            NoProviders: nobody serving it was found within ``timeout_s``,
                or every provider failed (the message says how).
            TransferTimeout: every provider stalled.
            UsageError: a bad path in ``paths``; NotFoundError: one that is
                not in the folder.
            AccessDenied, IntegrityError, …: as ``store.rebuild.get_walk``.
        """
        select = parse_selection(paths) if paths else None
        row = await trio.to_thread.run_sync(self._local_row, link.root_id)
        async with self.source(
            link,
            timeout_s=timeout_s,
            use_dht=use_dht,
            stall_s=stall_s,
            held=row is not None and row.storage in ("ref", "copy"),
        ) as source:
            walk = get_walk(
                self.store.catalog,
                link,
                out_dir,
                progress=progress,
                on_total=on_total,
                select=select,
                on_name=on_name,
                limits=limits,
            )
            result = await drive(walk, source)
            self.last_download = source.stats
            await trio.to_thread.run_sync(self._adopt_download, link.root_id, result)
        return result

    async def inspect(
        self, link: ShareLink, *, timeout_s: float = 60.0, use_dht: bool = True
    ) -> Inspection:
        """What ``link`` holds (name, kind, size, the folder tree), fetching
        only envelopes and folder listings. See ``describe_tree``."""
        row = await trio.to_thread.run_sync(self._local_row, link.root_id)
        if row is not None and row.storage in ("ref", "copy"):
            local = LocalSource(self.store)
            return await trio.to_thread.run_sync(run_walk, tree_walk(link), local)
        async with self.source(link, timeout_s=timeout_s, use_dht=use_dht) as net:
            return await drive(tree_walk(link), net)

    def _local_row(self, root: bytes) -> ShareRow | None:
        try:
            return self.store.catalog.get_share(root)
        except NotFoundError:
            return None

    def _adopt_download(self, root: bytes, result: GetResult) -> None:
        """Keep serving a finished download: by reference from where it landed."""
        if result.kind == "folder":
            old = str(result.path.with_name(partial_name(root)))
            self.store.catalog.rebase_sources(old + "/", str(result.path) + "/")
            # ls shows what it holds, not the size of its listing
            self.store.catalog.set_tree_size(root, result.size)
        self.store.catalog.set_top(root)
