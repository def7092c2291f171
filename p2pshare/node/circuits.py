"""Reaching a private node through a seed: reservations, circuits, DCUtR.

Client side (:class:`RelayClient`, every node): answers STOP (incoming
circuits), runs DCUtR, keeps its reservations while the node is
``private`` (checked every :data:`KEEP_EVERY_S`, renewed at half their
lifetime and at once after the connection to the seed came back), and
dials circuit addresses for the dialer (``compat/dialer.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import trio
from libp2p.connection_types import ConnectionType
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
from libp2p.relay.circuit_v2.pb.circuit_pb2 import PeerId as CircuitPeerId
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from p2pshare.errors import P2PShareError, TransferError
from p2pshare.node import compat
from p2pshare.node.host import parse_peer_addr
from p2pshare.records import RelayState, Reservation

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from p2pshare.node.host import NodeHost

from p2pshare.node.relay import HOP_PROTOCOL, LIMITED, REQUEST_TIMEOUT_S

__all__ = [
    "DIRECT_WAIT_S",
    "PUNCH_WAIT_S",
    "RESERVE_ON",
    "RelayClient",
    "circuit_limit",
    "dial_circuit",
    "is_direct",
    "is_relayed",
    "path",
    "split_circuit",
    "wait_direct",
]

log = logging.getLogger(__name__)

RESERVE_ON: Final = 2  # seeds holding a reservation for a private node
KEEP_EVERY_S: Final = 5.0
DIRECT_WAIT_S: Final = 4.0  # how long a download waits for DCUtR to go direct
# ... when it started the punch itself: it stops waiting when the attempt
# ends, so only a slow (loaded) success waits this long
PUNCH_WAIT_S: Final = 12.0


# --------------------------------------------------------------------------
# Dialing a circuit
# --------------------------------------------------------------------------


def split_circuit(addr: Multiaddr) -> tuple[ID, Multiaddr] | None:
    """``<relay addr>/p2p/<relay>/p2p-circuit[/p2p/<target>]`` → (relay id,
    relay address without ``/p2p``); None if it is not such an address."""
    text = str(addr)
    if "/p2p-circuit" not in text:
        return None
    relay_part = text.split("/p2p-circuit", 1)[0]
    try:
        info = parse_peer_addr(relay_part)
    except P2PShareError:
        return None
    if len(info.addrs) != 1:
        return None
    return info.peer_id, info.addrs[0]


async def dial_circuit(host: Any, addr: Multiaddr, target: ID) -> Any:
    """Connect to ``target`` through the relay named in ``addr``; the
    connection joins the swarm, tagged relayed. Raises on refusal
    (``RelayLimitReached`` when the relay's limits say no)."""
    parts = split_circuit(addr)
    if parts is None:
        raise TransferError(f"not a circuit address: {addr}")
    relay, relay_addr = parts
    if relay == target:
        raise TransferError("a circuit through the target itself")
    store = host.get_peerstore()
    store.add_addrs(relay, [relay_addr], 600)
    await host.connect(PeerInfo(relay, [relay_addr]))
    stream = await host.new_stream(relay, [HOP_PROTOCOL])
    try:
        with trio.fail_after(REQUEST_TIMEOUT_S):
            await write_delimited_msg(
                stream,
                HopMessage(
                    type=HopMessage.CONNECT,
                    peer=CircuitPeerId(id=target.to_bytes()),
                ),
            )
            resp = await read_delimited_msg(stream, HopMessage)
        status = StatusCode(resp.status) if resp.HasField("status") else StatusCode.OK
        if status != StatusCode.OK:
            raise TransferError(
                f"relay {compat.short_peer_id(relay)} refused the circuit ({status})"
            )
        circuit = Multiaddr(f"/p2p/{relay}/p2p-circuit/p2p/{target}")
        raw = RawConnection(
            stream=stream,
            initiator=True,
            connection_type=ConnectionType.RELAYED,
            addresses=[circuit],
        )
        conn = await host.upgrade_outbound_connection(raw, target)
        _tag_relayed(conn, circuit)
        limit = resp.limit if resp.HasField("limit") else None
        key = (host.get_id(), target)
        _LIMITS.pop(key, None)
        if limit is not None and 0 < limit.data < _UNCAPPED:
            _LIMITS[key] = (relay, int(limit.data), int(limit.duration))
            while len(_LIMITS) > _MAX_LIMITS:  # oldest first
                del _LIMITS[next(iter(_LIMITS))]
        return conn
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            try:
                await stream.reset()
            except Exception:
                log.debug("relay: resetting a failed circuit stream failed")
        raise


# (our host id, target) -> (relay, data cap, duration cap) of our latest
# circuit to that target when the relay capped its bytes (a limited circuit)
_LIMITS: dict[tuple[ID, ID], tuple[ID, int, int]] = {}
_MAX_LIMITS = 1024
_UNCAPPED = 1 << 40  # a byte cap this large is no cap (bulk circuits)


def circuit_limit(host: Any, target: ID) -> tuple[ID, int, int] | None:
    """The relay limit of our circuit to ``target``, if it had one."""
    return _LIMITS.get((host.get_id(), target))


def _tag_relayed(conn: Any, circuit: Multiaddr) -> None:
    """Mark a connection we made through a relay as relayed (the generic
    upgrade path cannot tell), so DCUtR and ``peers`` see it."""
    setter = getattr(conn, "set_transport_info", None)
    if setter is not None:
        with contextlib.suppress(Exception):
            setter([circuit], ConnectionType.RELAYED)


def _live(host: Any, peer: ID) -> list[Any]:
    return [c for c in host.get_network().get_connections(peer) if not c.is_closed]


def is_relayed(host: Any, peer: ID) -> bool:
    """We are connected to ``peer``, and only through relays."""
    conns = _live(host, peer)
    return bool(conns) and all(
        c.get_connection_type() is ConnectionType.RELAYED for c in conns
    )


def is_direct(host: Any, peer: ID) -> bool:
    """We hold a direct (not relayed) connection to ``peer``."""
    return any(
        c.get_connection_type() is not ConnectionType.RELAYED for c in _live(host, peer)
    )


def path(host: Any, peer: ID) -> str:
    """``direct``, or ``relayed via …<relay>`` (for ``peers`` and logs)."""
    conns = _live(host, peer)
    if not conns or is_direct(host, peer):
        return "direct"
    for conn in conns:
        getter = getattr(conn, "get_transport_addresses", None)
        for addr in getter() if getter is not None else []:
            relay = str(addr).split("/p2p-circuit", 1)[0].rsplit("/p2p/", 1)
            if len(relay) == 2:
                return f"relayed via {compat.short_peer_id(ID.from_base58(relay[1]))}"
    return "relayed"


async def wait_direct(
    host: Any,
    peer: ID,
    timeout_s: float = DIRECT_WAIT_S,
    attempt_over: trio.Event | None = None,
) -> bool:
    """Give DCUtR up to ``timeout_s`` to add a direct connection to a peer
    we reach only through a relay; True if one came. ``attempt_over``: set
    when our own punch attempt ended; after :data:`DIRECT_WAIT_S` (the
    other side's punch may still come) waiting longer is then pointless."""
    began = trio.current_time()
    with trio.move_on_after(timeout_s):
        while not is_direct(host, peer) and _live(host, peer):
            over = attempt_over is not None and attempt_over.is_set()
            if over and trio.current_time() - began >= DIRECT_WAIT_S:
                break
            await trio.sleep(0.1)  # (no event tells of a new connection)
    return is_direct(host, peer)


# --------------------------------------------------------------------------
# Client side (every node)
# --------------------------------------------------------------------------


@dataclass
class _Held:
    addr: Multiaddr  # the relay's address, /p2p/<relay> included
    expires: float  # time.time()
    ttl: float


@dataclass(eq=False)
class RelayClient:
    """Incoming circuits, hole punching, and reservations while private."""

    nh: NodeHost
    seeds: Sequence[str] = ()  # full multiaddrs of seeds to reserve on
    held: dict[ID, _Held] = field(default_factory=dict)
    wanted: bool = False  # the node is private: keep reservations
    stop: Any = None
    dcutr: Any = None
    on_change: Callable[[], None] = lambda: None
    # our public address as seeds saw it, with our listen port (behind a
    # port-preserving NAT, where a hole punch from the listen port lands)
    public_guess: Callable[[], list[str]] = list

    def circuit_addrs(self) -> list[str]:
        now = time.time()
        return [f"{h.addr}/p2p-circuit" for h in self.held.values() if h.expires > now]

    def describe(self) -> RelayState:
        now = time.time()
        return RelayState(
            reservations=[
                Reservation(relay=str(r), expires_in_s=round(h.expires - now))
                for r, h in self.held.items()
                if h.expires > now
            ]
        )

    async def run(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        host = self.nh.host
        compat.set_circuit_dialer(host, dial_circuit)
        self.dcutr = DCUtRProtocol(host)
        self._predict_from_reachability(self.dcutr)
        async with contextlib.AsyncExitStack() as stack:
            if self.stop is None:  # a seed's relay answers STOP already
                self.stop = CircuitV2Protocol(host, allow_hop=False)
                await stack.enter_async_context(background_trio_service(self.stop))
            await stack.enter_async_context(background_trio_service(self.dcutr))
            task_status.started()
            while True:
                if self.wanted:
                    await self._keep()
                elif self.held:
                    self.held.clear()
                    self.on_change()
                await trio.sleep(KEEP_EVERY_S)

    def _predict_from_reachability(self, dcutr: Any) -> None:
        """DCUtR tells the other side where to punch: 0.8.1 predicts it
        from identify's observed addresses, which it had lost after the
        connection to the seed came back (it then sent only private and
        loopback addresses, and the punch failed). The address the seeds
        reported in the reachability check goes first."""
        original = dcutr._get_observed_addrs

        async def observed() -> list[bytes]:
            found: list[bytes] = list(await original())
            guesses = []
            for text in self.public_guess():
                with contextlib.suppress(Exception):
                    guesses.append(Multiaddr(text).to_bytes())
            return [g for g in guesses if g not in found] + found

        dcutr._get_observed_addrs = observed

    async def _keep(self) -> None:
        now = time.time()
        changed = False
        for relay in list(self.held):
            h = self.held[relay]
            connected = relay in self.nh.connected_peers()
            if h.expires - now < h.ttl / 2 or not connected:
                ok = await self._reserve(relay, h.addr)
                if not ok and h.expires <= now + KEEP_EVERY_S:
                    del self.held[relay]
                    changed = True
                changed = changed or ok
        for text in self.seeds:
            if len(self.held) >= RESERVE_ON:
                break
            try:
                info = parse_peer_addr(text)
            except P2PShareError:
                continue
            if info.peer_id in self.held or info.peer_id == self.nh.peer_id:
                continue
            for addr in info.addrs:
                full = Multiaddr(f"{addr}/p2p/{info.peer_id}")
                if await self._reserve(info.peer_id, full):
                    changed = True
                    break
        if changed:
            self.on_change()

    async def _reserve(self, relay: ID, addr: Multiaddr) -> bool:
        short = compat.short_peer_id(relay)
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                await self.nh.connect(str(addr))
                stream = await self.nh.host.new_stream(relay, [HOP_PROTOCOL])
                try:
                    await write_delimited_msg(
                        stream, HopMessage(type=HopMessage.RESERVE)
                    )
                    resp = await read_delimited_msg(stream, HopMessage)
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(2):
                        try:
                            await stream.close()
                        except Exception:
                            log.debug("relay: closing a RESERVE stream failed")
        except Exception as exc:  # unreachable, no relay there, reset
            log.info("relay %s: no reservation: %s", short, type(exc).__name__)
            return False
        status = StatusCode(resp.status) if resp.HasField("status") else StatusCode.OK
        if status != StatusCode.OK or not resp.HasField("reservation"):
            log.info("relay %s refused a reservation (%s)", short, status)
            return False
        expires = (
            float(resp.reservation.expire) or time.time() + LIMITED.reservation_ttl
        )
        ttl = max(60.0, expires - time.time())
        fresh = relay not in self.held
        self.held[relay] = _Held(addr=addr, expires=expires, ttl=ttl)
        if fresh:
            log.info("relay %s: reservation held (%.0f s)", short, ttl)
        return True
