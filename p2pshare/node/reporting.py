"""What a node reports: status, peers, providers of a root (a mixin of
:class:`~p2pshare.node.service.Node`, read by the control API)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from libp2p.peer.peerinfo import PeerInfo

from p2pshare import __version__
from p2pshare.node.circuits import RelayClient
from p2pshare.node.circuits import path as relay_path
from p2pshare.node.facades import Shares
from p2pshare.node.host import NodeHost
from p2pshare.node.jobs import Supervisor
from p2pshare.node.xfer_server import ShareServer
from p2pshare.records import (
    LanState,
    PeerReport,
    ReachState,
    RecentFailure,
    SeedKnown,
    Status,
)
from p2pshare.store.schema import ReplicaRow

if TYPE_CHECKING:
    from p2pshare.node.downloads import DownloadManager
    from p2pshare.node.lan import LanDiscovery
    from p2pshare.node.reach import Reachability
    from p2pshare.node.relay import SeedRelay
    from p2pshare.node.seed import SeedService
    from p2pshare.node.upnp import PortMapper

__all__ = ["Rates", "Reporting"]


@dataclass
class Rates:
    """Bytes per second, smoothed (EWMA over one-second samples)."""

    upload: float = 0.0
    download: float = 0.0

    def update(self, sent: int, received: int) -> None:
        self.upload = 0.6 * self.upload + 0.4 * max(0, sent)
        self.download = 0.6 * self.download + 0.4 * max(0, received)


class Reporting:
    """Status and peers: the parts of the node they read."""

    host: NodeHost
    shares: Shares
    server: ShareServer
    jobs: Supervisor
    relay: RelayClient | None
    rates: Rates
    peer_rates: dict[bytes, Rates]
    received_by_peer: Counter[bytes]
    started_at: float
    downloads: DownloadManager
    seed: SeedService | None
    lan: LanDiscovery | None
    upnp: PortMapper | None
    seed_relay: SeedRelay | None
    reach: Reachability | None

    if TYPE_CHECKING:

        @property
        def peer_id(self) -> str: ...

        def addrs(self) -> list[str]: ...

    def peers(self) -> list[PeerReport]:
        out = []
        for peer_id in self.host.connected_peers():
            raw = peer_id.to_bytes()
            rates = self.peer_rates.get(raw, Rates())
            out.append(
                PeerReport(
                    peer_id=str(peer_id),
                    addrs=[str(a) for a in self.host.known_addrs(peer_id)][:8],
                    path=relay_path(self.host.host, peer_id),
                    sent=self.server.stats.per_peer_sent[raw],
                    received=self.received_by_peer[raw],
                    upload_rate=round(rates.upload, 1),
                    download_rate=round(rates.download, 1),
                )
            )
        return out

    async def providers(self, root: bytes, *, timeout_s: float = 10.0) -> int:
        """How many peers provide ``root`` (a DHT lookup), this node included
        when it serves the share."""
        found: list[PeerInfo] = []
        with trio.move_on_after(timeout_s):
            found = await self.host.find_providers(root, count=20)
        others = {i.peer_id for i in found if i.peer_id != self.host.peer_id}
        mine = await self.shares.announced(root)
        return len(others) + (1 if mine else 0)

    async def status(self) -> Status:
        shares = await self.shares.count()
        try:
            table = self.host.dht.routing_table.size()
        except Exception:  # the attribute moved between libp2p versions
            table = None
        downloads = self.downloads.list()
        return Status(
            peer_id=self.peer_id,
            addrs=self.addrs(),
            dht_routing_table=table,
            connected_peers=len(self.host.connected_peers()),
            shares=shares,
            downloads_active=sum(1 for d in downloads if d.state == "active"),
            uploads_active=sum(self.server.stats.per_peer_streams.values()),
            upload_rate=round(self.rates.upload, 1),
            download_rate=round(self.rates.download, 1),
            bytes_sent=self.server.stats.bytes_sent,
            jobs_failed=self.jobs.failures,
            recent_failures=[
                RecentFailure(job=f.kind, what=f.what, code=f.code)
                for f in self.jobs.recent
            ],
            uptime_s=round(time.time() - self.started_at, 1),
            version=__version__,
            seeds=_seeds_known(await self.shares.replicas()),
            seed=await self.seed.describe() if self.seed is not None else None,
            lan=self.lan.describe() if self.lan is not None else LanState(mdns=False),
            relay=self.relay.describe() if self.relay is not None else None,
            upnp=self.upnp.describe() if self.upnp is not None else None,
            seed_relay=(
                self.seed_relay.describe() if self.seed_relay is not None else None
            ),
            reachability=(
                self.reach.describe()
                if self.reach is not None
                else ReachState(state="unknown", why="not checked (not serving)")
            ),
        )


def _seeds_known(replicas: list[ReplicaRow]) -> list[SeedKnown]:
    """The seeds keeping replicas of this node's shares."""
    out: dict[str, SeedKnown] = {}
    for r in replicas:
        s = out.setdefault(
            r.seed, SeedKnown(peer_id=r.seed, region=r.region, replicas=0)
        )
        s["replicas"] += 1
    return list(out.values())
