"""The libp2p host of a node: identity, transport, DHT and lifecycle.

Theory of operation
-------------------
:func:`open_host` is the one way to get a running host. It owns everything it
starts and releases it all when its block exits::

    open_host(home_dir, listen, bootstrap, dht_mode)
      ├─ identity      <home>/identity.key (Ed25519, 0600; created atomically)
      ├─ new_host      TCP + Noise + Yamux only, explicit options (compat)
      ├─ _run_host     a task under a shielded cancel scope:
      │    └─ host.run(listen)         listeners bound; each one is checked
      │         └─ KadDHT service      server (hardened) or client mode
      │              └─ background nursery for compat.run_detached (N1)
      │                   └─ wait for stop; then DHT stop, close_network,
      │                      swarm stop
      ├─ bootstrap     dial seeds, add to table, refresh (cancellable)
      ├─ yield NodeHost                ← the caller's block runs here
      └─ stop          set on any exit; wait for the orderly shutdown

Why the shield: cancelling the caller must not cancel libp2p's tasks while
they close connections, or sockets leak (P9); the caller's exit sets ``stop``
instead, and shutdown runs under a deadline (:data:`SHUTDOWN_TIMEOUT_S`).

Readiness: when the ``async with`` body starts, the listeners are bound
(``addrs()`` gives dialable addresses with the real port even for ``tcp/0``),
the DHT service is running and bootstrap has finished (its lookups are
bounded by :data:`BOOTSTRAP_REFRESH_TIMEOUT_S`). Nothing sleeps to wait.

Identity: ``<home>/identity.key``, loaded or created by
:mod:`p2pshare.node.identity` (in a worker thread: it is disk I/O).

Errors: bad configuration (listen or bootstrap addresses, the identity file,
a port that cannot be bound) raises ``ConfigError``; failing to reach a
bootstrap peer is logged and not fatal; failing to reach a peer in
:meth:`NodeHost.connect` or :meth:`NodeHost.open_stream` raises
``TransferError``. Network calls carry no timeouts of their own beyond
libp2p's (10 s dial, 10 s negotiation): callers put cancel scopes around them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final, Literal

import trio
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from multiaddr import Multiaddr

from p2pshare.errors import ConfigError, TransferError, UsageError
from p2pshare.node import compat
from p2pshare.node import dht as dhtmod
from p2pshare.node.streams import LibP2PStream

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream

__all__ = [
    "BOOTSTRAP_DIAL_TIMEOUT_S",
    "BOOTSTRAP_REFRESH_TIMEOUT_S",
    "OPEN_STREAM_LIMIT_S",
    "PRUNE_EVERY_S",
    "SHUTDOWN_TIMEOUT_S",
    "DHTModeName",
    "NodeHost",
    "StreamHandler",
    "parse_peer_addr",
]

logger = logging.getLogger(__name__)

DHTModeName = Literal["server", "client"]
StreamHandler = Callable[[LibP2PStream], Awaitable[None]]

# libp2p's own dial timeout is 10 s; a seed that does not answer in that time
# is skipped (bootstrap goes on with the others).
BOOTSTRAP_DIAL_TIMEOUT_S: Final = 10.0
# The notes measured bootstrap + refresh at p50 1.1 s, max 6-7 s on 40 nodes;
# a refresh stalls ~10 s per dead peer (P10 churn), so cap the whole refresh.
BOOTSTRAP_REFRESH_TIMEOUT_S: Final = 30.0
# Stopping the DHT and the swarm is quick; closing connections is bounded by
# compat.NETWORK_CLOSE_TIMEOUT_S. The margin covers the rest.
SHUTDOWN_TIMEOUT_S: Final = compat.NETWORK_CLOSE_TIMEOUT_S + 5.0
# Stream open + protocol negotiation on a live connection, shielded (N1);
# libp2p's own outbound negotiation timeout is 10 s.
OPEN_STREAM_LIMIT_S: Final = 15.0

_LISTEN_IP_PROTOCOLS: Final = ("ip4", "ip6")
# How often the routing table drops peers that switched to DHT client mode
# (a node that learns it is behind a NAT does; identify tells us at once).
PRUNE_EVERY_S: Final = 5.0
# How long addresses learned from a hint or a DHT record stay in the
# peerstore: long enough to reconnect during a download.
PEER_ADDR_TTL_S: Final = 600


# --------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------


def parse_peer_addr(text: str) -> PeerInfo:
    """Parse a full peer multiaddr, ``…/p2p/<peer id>``, into a ``PeerInfo``.

    Raises:
        UsageError: ``text`` is not a multiaddr or lacks a trailing
            ``/p2p/<peer id>``.
    """
    try:
        maddr = Multiaddr(text)
    except Exception as exc:  # multiaddr raises several ValueError subclasses
        raise UsageError(f"peer address {text!r}: not a multiaddr ({exc})") from exc
    try:
        info = info_from_p2p_addr(maddr)
    except Exception as exc:
        raise UsageError(
            f"peer address {text!r}: must end with /p2p/<peer id>"
        ) from exc
    # A bare "/p2p/<id>" decapsulates to an empty address: keep no addrs.
    info.addrs = [a for a in info.addrs if str(a) not in ("", "/")]
    return info


def _parse_listen_addr(text: str) -> Multiaddr:
    try:
        maddr = Multiaddr(text)
        names = [p.name for p in maddr.protocols()]
    except Exception as exc:
        raise ConfigError(f"listen address {text!r}: not a multiaddr") from exc
    if len(names) != 2 or names[0] not in _LISTEN_IP_PROTOCOLS or names[1] != "tcp":
        raise ConfigError(
            f"listen address {text!r}: must be /ip4/<addr>/tcp/<port> "
            "or /ip6/<addr>/tcp/<port> (TCP is the only transport)"
        )
    return maddr


# --------------------------------------------------------------------------
# NodeHost
# --------------------------------------------------------------------------


class NodeHost:
    """A running libp2p host with its DHT; obtained from :func:`open_host`.

    Attributes:
        host: the libp2p ``IHost`` (for libp2p-level calls only).
        dht: the ``KadDHT`` service (use ``p2pshare.node.dht`` helpers).
        peer_id: our libp2p peer id.
        peer_id_bytes: the same, as bytes.
    """

    def __init__(
        self, host: IHost, dht: KadDHT, verified: list[Multiaddr] | None = None
    ) -> None:
        self.host = host
        self.dht = dht
        self.peer_id: ID = host.get_id()
        self.peer_id_bytes: bytes = self.peer_id.to_bytes()
        # advertised beside the listen addresses: public addresses others
        # dialled us back on (a forwarded port; ``open_host``'s factory reads
        # this list) and circuit addresses through the relays holding a
        # reservation for us (appended by ``compat.advertise_circuits``)
        self.verified = verified if verified is not None else []
        self._circuits: list[str] = []

    def set_verified_addrs(self, addrs: Sequence[str]) -> bool:
        """Advertise these public addresses (``/ip4/…/tcp/…``, checked by a
        dial-back) beside the listen addresses; True if that changed."""
        if [str(a) for a in self.verified] == list(addrs):
            return False
        self.verified[:] = [Multiaddr(a) for a in addrs]
        return True

    def set_circuit_addrs(self, addrs: Sequence[str]) -> bool:
        """Advertise these relay addresses (``…/p2p/<relay>/p2p-circuit``);
        True if that changed."""
        if self._circuits == list(addrs):
            return False
        self._circuits = list(addrs)
        return True

    def circuit_addrs(self) -> list[Multiaddr]:
        """Our relay addresses, ``…/p2p/<relay>/p2p-circuit/p2p/<us>``."""
        me = f"/p2p/{self.peer_id}"
        return [Multiaddr(a + me) for a in self._circuits]

    def __repr__(self) -> str:
        return f"<NodeHost {compat.short_peer_id(self.peer_id)}>"

    def addrs(self) -> list[str]:
        """Our dialable addresses, each ending in ``/p2p/<our peer id>``.

        Wildcard listen addresses appear as the concrete interface addresses
        plus loopback (``compat.advertised_addrs``); ``tcp/0`` shows the port
        actually bound.
        """
        return [str(a) for a in self.host.get_addrs()]

    def known_addrs(self, peer_id: ID) -> list[Multiaddr]:
        """The addresses the peerstore holds for ``peer_id``; none for a
        peer it does not know (not an error)."""
        try:
            return list(self.host.get_peerstore().addrs(peer_id))
        except Exception:  # libp2p raises PeerStoreError for an unknown peer
            return []

    async def find_providers(self, root: bytes, *, count: int) -> list[PeerInfo]:
        """Up to ``count`` peers that announced ``root`` (``dht.find_providers``)."""
        return await dhtmod.find_providers(self.dht, root, count=count)

    def connected_peers(self) -> list[ID]:
        """Peers we currently hold a connection to."""
        return list(self.host.get_connected_peers())

    async def connect(self, maddr_text: str) -> ID:
        """Connect to the peer at a full multiaddr (``…/p2p/<peer id>``).

        Returns at once if already connected. Cancellation: safe.

        Returns:
            The peer's id (authenticated by the Noise handshake).

        Raises:
            UsageError: ``maddr_text`` is malformed.
            TransferError: the peer could not be reached.
        """
        info = parse_peer_addr(maddr_text)
        try:
            await self.connect_info(info)
        except (BaseLibp2pError, OSError) as exc:
            raise TransferError(
                f"peer {compat.short_peer_id(info.peer_id)}: cannot connect: {exc}"
            ) from exc
        return info.peer_id

    async def connect_info(self, info: PeerInfo) -> None:
        """Connect to ``info.peer_id``, dialling ``info.addrs`` if not
        connected yet.

        Fresh addresses (a link's hint, a DHT record) *replace* what the
        peerstore remembers of that peer: libp2p dials every remembered
        address and drops loopback ones when another is known, so after the
        peer restarted on a new port it dialled only the stale addresses
        (12 dials, none to the new one) and the download found "no
        provider". Remembered addresses are still used when ``info`` has
        none.
        """
        if info.addrs and not self.host.get_network().connections.get(info.peer_id):
            store = self.host.get_peerstore()
            store.clear_addrs(info.peer_id)
            store.add_addrs(info.peer_id, info.addrs, PEER_ADDR_TTL_S)
        await self.host.connect(info)

    async def bootstrap(self, peers: Sequence[str]) -> int:
        """Join the DHT through ``peers``: dial, add to the table, refresh.

        Dials run concurrently, each bounded by
        :data:`BOOTSTRAP_DIAL_TIMEOUT_S`; a failure is logged, not raised.
        The routing-table refresh is bounded by
        :data:`BOOTSTRAP_REFRESH_TIMEOUT_S`. Our own address is skipped.

        Returns:
            How many of ``peers`` were reached.

        Raises:
            UsageError: an address is malformed (checked before any dial).
        """
        infos = [parse_peer_addr(text) for text in peers]
        reached: list[ID] = []

        async def dial(info: PeerInfo) -> None:
            short = compat.short_peer_id(info.peer_id)
            try:
                with trio.fail_after(BOOTSTRAP_DIAL_TIMEOUT_S):
                    await self.host.connect(info)
            except (BaseLibp2pError, OSError, trio.TooSlowError) as exc:
                logger.warning("bootstrap peer %s: cannot connect: %s", short, exc)
                return
            reached.append(info.peer_id)
            if not await self.dht.add_peer(info.peer_id):
                logger.info("bootstrap peer %s: not added to the DHT table", short)

        async with trio.open_nursery() as nursery:
            for info in infos:
                if info.peer_id != self.peer_id:
                    nursery.start_soon(dial, info)
        if reached:
            with trio.move_on_after(BOOTSTRAP_REFRESH_TIMEOUT_S) as scope:
                try:  # detached: a timeout must not cut its frame writes (N1)
                    await compat.run_detached(self.host, self.dht.refresh_routing_table)
                except BaseLibp2pError as exc:
                    logger.warning("DHT routing table refresh failed: %s", exc)
            if scope.cancelled_caught:
                logger.warning(
                    "DHT routing table refresh did not finish in %.0f s",
                    BOOTSTRAP_REFRESH_TIMEOUT_S,
                )
        logger.info(
            "bootstrap: reached %d of %d peers; DHT table holds %d",
            len(reached),
            len(infos),
            self.dht.get_routing_table_size(),
        )
        return len(reached)

    def set_handler(self, protocol_id: str, handler: StreamHandler) -> None:
        """Serve ``protocol_id``: each inbound stream runs ``handler(stream)``.

        The handler gets a :class:`LibP2PStream` and owns it while it runs;
        when it returns the stream is closed (gracefully), when it raises the
        stream is reset. Every handler runs under ``compat.safe_handler``, so
        an ``Exception`` is logged and costs only that stream (P4).
        Cancellation reaches handlers only when the host shuts down.
        """

        async def adapter(net_stream: INetStream) -> None:
            async with LibP2PStream(net_stream) as stream:
                await handler(stream)

        self.host.set_stream_handler(
            TProtocol(protocol_id), compat.safe_handler(adapter)
        )

    def remove_handler(self, protocol_id: str) -> None:
        """Stop serving ``protocol_id`` (streams already open continue)."""
        self.host.remove_stream_handler(TProtocol(protocol_id))

    async def open_stream(self, peer_id: ID | bytes, protocol_id: str) -> LibP2PStream:
        """Open a stream to ``peer_id`` speaking ``protocol_id``.

        Dials the peer first if needed (addresses from the peerstore, filled
        by :meth:`connect`, the DHT or identify). The caller owns the
        returned stream (use ``async with``).

        Cancellation: the dial is cancellable at any point. Opening the stream
        on a live connection writes frames shared with other streams, so it
        runs shielded (compat N1; at most :data:`OPEN_STREAM_LIMIT_S`, in
        practice one round trip) and a cancellation that arrived meanwhile is
        delivered afterwards, with the new stream reset.

        Raises:
            TransferError: the peer cannot be reached or does not speak
                ``protocol_id``.
        """
        peer = peer_id if isinstance(peer_id, ID) else ID(peer_id)
        short = compat.short_peer_id(peer)
        try:
            if peer not in self.host.get_connected_peers():
                addrs = self.host.get_peerstore().addrs(peer)
                await self.host.connect(PeerInfo(peer, addrs))
            with trio.CancelScope(shield=True) as shield:
                shield.deadline = trio.current_time() + OPEN_STREAM_LIMIT_S
                net_stream = await self.host.new_stream(peer, [TProtocol(protocol_id)])
        except KeyError as exc:  # the peerstore's PeerStoreError
            raise TransferError(f"peer {short}: no known address") from exc
        except (BaseLibp2pError, OSError) as exc:
            raise TransferError(
                f"peer {short}: cannot open {protocol_id}: {exc}"
            ) from exc
        if shield.cancelled_caught:
            raise TransferError(f"peer {short}: cannot open {protocol_id}: timed out")
        stream = LibP2PStream(net_stream)
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except trio.Cancelled:
            await stream.reset()
            raise
        return stream
