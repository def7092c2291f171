"""LAN discovery by mDNS: announce this node, learn the nodes beside it.

Two laptops on one Wi-Fi find each other with no bootstrap address and no
hints: each node registers a DNS-SD service of type :data:`SERVICE_TYPE`
whose TXT record lists its addresses (``dnsaddr=/ip4/…/tcp/…/p2p/<id>``,
the libp2p mDNS record format), and browses for the others. A download asks
every LAN peer it knows whether it serves the share (a peer that does not
answers ``not_found`` on the transfer protocol; nothing else is sent).

Why not py-libp2p's ``MDNSDiscovery``: its ``start()`` registers the service
synchronously and blocks the trio loop for ~1.7 s (REACHABILITY-NOTES); its
listener writes into the peerstore from zeroconf's threads; it trusts every
TXT record, unbounded; and its ``_p2p._udp`` type makes every IPFS node on
the LAN a candidate. Here zeroconf's blocking calls run in worker threads,
zeroconf's callbacks only hand names to the trio loop (through its token),
and every record is hostile input: at most :data:`MAX_ADDRS` addresses per
peer, each a strict ``/ip4|ip6/…/tcp/…/p2p/<id>`` naming one and the same
peer, at most :data:`MAX_LAN_PEERS` peers, forgotten after
:data:`PEER_TTL_S` without news.

What a LAN learns: this node's peer id and addresses, nothing about what it
shares (no root id, no key, no name). ``[network] mdns = false`` in
``config.toml`` (or ``P2PSHARE_MDNS=0``) turns it off.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from p2pshare.errors import UsageError
from p2pshare.node import compat
from p2pshare.node.host import parse_peer_addr
from p2pshare.records import LanState

if TYPE_CHECKING:
    from trio_typing import TaskStatus
    from zeroconf import ServiceStateChange, Zeroconf

__all__ = [
    "MAX_ADDRS",
    "MAX_LAN_PEERS",
    "PEER_TTL_S",
    "SERVICE_TYPE",
    "LanDiscovery",
    "in_worker",
    "lan_addrs",
    "parse_record",
]

log = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_p2pshare._udp.local."
MAX_LAN_PEERS: Final = 32  # a home or office LAN; more are ignored until some expire
MAX_ADDRS: Final = 8  # per peer, from its TXT record
MAX_PENDING: Final = 64  # service names waiting to be resolved; more are dropped
PEER_TTL_S: Final = 300.0  # a peer not heard of for this long is forgotten
RESOLVE_TIMEOUT_MS: Final = 3000
STOP_TIMEOUT_S: Final = 2.0  # goodbye packets + closing sockets, at most
_MAX_NAME = 255  # a DNS name


@dataclass(slots=True)
class LanPeer:
    info: PeerInfo
    seen: float  # time.monotonic() of the last record


def lan_addrs(own: Sequence[str]) -> list[str]:
    """The addresses to announce on the LAN: ``/ip4|ip6/…/tcp/…/p2p/…``,
    never a wildcard, loopback only when nothing else listens."""
    keep: list[str] = []
    loop: list[str] = []
    for text in own:
        parts = text.split("/")
        if len(parts) < 7 or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
            continue
        rank = compat.addr_rank(Multiaddr(text))
        if rank is not None:
            (loop if rank == 2 else keep).append(text)
    return (keep or loop)[:MAX_ADDRS]


def parse_record(properties: dict[bytes, bytes | None], own: ID) -> PeerInfo | None:
    """The peer a TXT record describes, or ``None`` when the record is not
    a valid p2pshare record (bad or mixed peer ids, no usable address, our
    own id). Only ``dnsaddr*`` keys count; at most :data:`MAX_ADDRS`."""
    peer: ID | None = None
    addrs: list[Any] = []
    for key, value in sorted(properties.items()):
        if not key.startswith(b"dnsaddr") or value is None:
            continue
        if len(addrs) >= MAX_ADDRS:
            break
        try:
            info = parse_peer_addr(value.decode("ascii"))
        except (UnicodeDecodeError, UsageError):
            return None
        names = [p.name for a in info.addrs for p in a.protocols()]
        if names[:1] not in (["ip4"], ["ip6"]) or names[1:] != ["tcp"]:
            return None
        if peer is not None and info.peer_id != peer:
            return None  # one record names one peer
        peer = info.peer_id
        addrs.extend(info.addrs)
    if peer is None or not addrs or peer == own:
        return None
    return PeerInfo(peer, addrs)


class LanDiscovery:
    """mDNS for one node (see the module docstring).

    ``own_addrs`` gives this node's addresses (``NodeHost.addrs``);
    ``on_peer`` is called, in the trio loop, for each new or changed peer.
    With ``announce`` false the node only browses: a node started for one
    ``get`` serves nobody, and a registration it left during zeroconf's
    ~1.7 s name probe would hold its exit for another second.
    """

    def __init__(
        self,
        own: ID,
        own_addrs: Callable[[], list[str]],
        on_peer: Callable[[PeerInfo], None] = lambda _info: None,
        *,
        announce: bool = True,
    ) -> None:
        self.own = own
        self.announce = announce
        self.own_addrs = own_addrs
        self.on_peer = on_peer
        self.peers: dict[bytes, LanPeer] = {}
        self.by_name: dict[str, bytes] = {}
        self.running = False
        self.announced: list[str] = []
        self.dropped = 0  # records refused or names dropped (hostile or overflow)
        self._name = f"{secrets.token_hex(16)}.{SERVICE_TYPE}"

    def candidates(self) -> list[PeerInfo]:
        """LAN peers heard of recently, most recent first."""
        self._expire()
        ordered = sorted(self.peers.values(), key=lambda p: -p.seen)
        return [p.info for p in ordered]

    def describe(self) -> LanState:
        return LanState(
            mdns=self.running,
            peers=len(self.candidates()),
            announced=list(self.announced),
        )

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, p in self.peers.items() if now - p.seen > PEER_TTL_S]:
            del self.peers[key]

    async def run(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Announce and browse until cancelled. Never raises for the network:
        a machine where mDNS cannot start (no multicast, port 5353 refused)
        logs one warning and runs without it."""
        from zeroconf import ServiceBrowser, Zeroconf

        try:
            zc = await trio.to_thread.run_sync(Zeroconf)
        except Exception as exc:  # zeroconf raises OSError and its own types
            log.warning("LAN discovery off: mDNS cannot start: %s", exc)
            task_status.started()
            return
        token = trio.lowlevel.current_trio_token()
        send, receive = trio.open_memory_channel[str](MAX_PENDING)
        browser: Any = None
        try:

            def on_change(
                zeroconf: Zeroconf,
                service_type: str,
                name: str,
                state_change: ServiceStateChange,
            ) -> None:  # zeroconf's thread: hand over to trio, nothing else
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(self._news, send, name, state_change.name)

            browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
            self.running = True
            task_status.started()
            async with trio.open_nursery() as nursery:
                if self.announce:
                    nursery.start_soon(self._register, zc)
                async for name in receive:
                    await self._resolve(zc, name)
        finally:
            self.running = False
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + STOP_TIMEOUT_S
                await in_worker(_close, zc, browser)

    def _news(self, send: trio.MemorySendChannel[str], name: str, change: str) -> None:
        if name == self._name or len(name) > _MAX_NAME:
            return
        if change == "Removed":
            peer = self.by_name.pop(name, None)
            if peer is not None:
                self.peers.pop(peer, None)
            return
        try:
            send.send_nowait(name)
        except trio.WouldBlock:
            self.dropped += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _register(self, zc: Zeroconf) -> None:
        """Announce our addresses (zeroconf probes the name first: ~1.7 s,
        in a worker thread so the loop runs on)."""
        from zeroconf import ServiceInfo

        addrs = lan_addrs(self.own_addrs())
        if not addrs:
            log.info("LAN discovery: no address to announce")
            return
        ips = sorted({ipaddress.ip_address(a.split("/")[2]).packed for a in addrs})
        port = int(addrs[0].split("/")[4])
        props = {
            (b"dnsaddr" if i == 0 else f"dnsaddr{i + 1}".encode()): a.encode()
            for i, a in enumerate(addrs)
        }
        info = ServiceInfo(
            SERVICE_TYPE,
            self._name,
            port=port,
            properties=props,
            server=f"{self._name.split('.')[0]}.local.",
            addresses=ips,
        )
        try:
            await in_worker(zc.register_service, info)
        except Exception as exc:  # a name clash, or the sockets went away
            log.warning("LAN discovery: cannot announce this node: %s", exc)
            return
        self.announced = addrs
        log.info("LAN discovery: announced %d address(es)", len(addrs))

    async def _resolve(self, zc: Zeroconf, name: str) -> None:
        info = await in_worker(_service_info, zc, name)
        if info is None:
            return
        peer = parse_record(info, self.own)
        if peer is None:
            self.dropped += 1
            log.debug("LAN discovery: a record was refused")
            return
        key = peer.peer_id.to_bytes()
        self._expire()
        if key not in self.peers and len(self.peers) >= MAX_LAN_PEERS:
            self.dropped += 1
            return
        old = self.peers.get(key)
        self.peers[key] = LanPeer(peer, time.monotonic())
        self.by_name[name] = key
        while len(self.by_name) > 4 * MAX_LAN_PEERS:  # names of expired peers
            del self.by_name[next(iter(self.by_name))]
        if old is None or [str(a) for a in old.info.addrs] != [
            str(a) for a in peer.addrs
        ]:
            log.info("LAN peer %s found", str(peer.peer_id)[-8:])
            self.on_peer(peer)


async def in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread; a cancellation returns at once and
    leaves the thread to finish alone (zeroconf's calls end by themselves
    within their own timeouts)."""
    run: Any = trio.to_thread.run_sync  # the stubs predate abandon_on_cancel
    return await run(fn, *args, abandon_on_cancel=True)


def _service_info(zc: Zeroconf, name: str) -> dict[bytes, bytes | None] | None:
    """The TXT properties of ``name`` (blocking: a worker thread)."""
    try:
        info = zc.get_service_info(SERVICE_TYPE, name, timeout=RESOLVE_TIMEOUT_MS)
    except Exception:  # a malformed name, or zeroconf closing
        return None
    if info is None:
        return None
    return dict(info.properties)


def _close(zc: Zeroconf, browser: Any) -> None:
    """Say goodbye and close the sockets (blocking: a worker thread)."""
    with contextlib.suppress(Exception):
        if browser is not None:
            browser.cancel()
        zc.unregister_all_services()
    with contextlib.suppress(Exception):
        zc.close()
