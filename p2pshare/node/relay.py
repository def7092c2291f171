"""Seeds as relays; private nodes reachable through them (circuit relay v2).

A node behind a NAT cannot be dialled. It keeps a *reservation* on up to
:data:`RESERVE_ON` seeds and advertises ``<seed addr>/p2p-circuit`` addresses
(identify, DHT records, link hints); a getter that cannot dial it directly
asks the seed to connect them (``CONNECT``), and the two talk through the
seed, end-to-end encrypted as ever (Noise runs inside the circuit: the seed
relays ciphertext of ciphertext). Both sides then try to go direct with
DCUtR (TCP hole punching, py-libp2p's ``DCUtRProtocol``, driven
automatically for every relayed connection); a download waits briefly for
that direct connection before it opens its transfer stream, so bulk data
crosses the relay only when the punch failed.

Seed side (:class:`SeedRelay`, a ``CircuitV2Protocol`` with hop on):

* **A RESERVE is only ever for the peer that sent it.** 0.8.1 takes the
  peer id from the message, so anyone could reserve (and so receive the
  circuits) for another peer id; a RESERVE naming another peer is refused
  with ``PERMISSION_DENIED``.
* **Limited circuits for everyone, bulk circuits by voucher.** A circuit
  where neither end holds a voucher on this seed gets :data:`LIMITED` (128
  KiB and 2 minutes, like kubo: enough for hole punching and small
  messages); one where either end does, or on an ``--open-relay`` seed,
  gets :data:`BULK` (no byte cap, one hour). Every relayed byte is counted
  per peer and in total, and held to the operator's bandwidth caps
  (``RelayPolicy``). A circuit that passes its limit is reset; the seed
  goes on.

The client side (reservations, dialling circuits, DCUtR) is ``circuits.py``.
"""

from __future__ import annotations

import contextvars
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
from libp2p.relay.circuit_v2.resources import RelayLimits

from p2pshare.errors import TransferError
from p2pshare.node import compat
from p2pshare.node.ratelimit import RateLimiter
from p2pshare.records import SeedRelayState

if TYPE_CHECKING:
    from libp2p.abc import INetStream


__all__ = [
    "BULK",
    "HOP_PROTOCOL",
    "LIMITED",
    "REQUEST_TIMEOUT_S",
    "RelayLimitReached",
    "RelayPolicy",
    "SeedRelay",
]

log = logging.getLogger(__name__)

HOP_PROTOCOL: Final = TProtocol("/libp2p/circuit/relay/0.2.0/hop")
LIMITED: Final = RelayLimits(
    duration=120,
    data=128 * 1024,
    max_circuit_conns=16,
    max_reservations=256,
    reservation_ttl=3600,
)
BULK: Final = RelayLimits(
    duration=3600,
    # no byte cap in practice (the bandwidth caps hold it); not 0: with 0,
    # 0.8.1 falls back to the *reservation's* byte limit (128 KiB)
    data=1 << 62,
    max_circuit_conns=16,
    max_reservations=256,
    reservation_ttl=3600,
)
MAX_RESERVATIONS_PER_IP: Final = 8  # behind one NAT: a household, an office
REQUEST_TIMEOUT_S: Final = 10.0

_circuit_limits: contextvars.ContextVar[RelayLimits] = contextvars.ContextVar(
    "p2pshare_circuit_limits"
)
# the voucher holder a bulk circuit's bytes are charged to (peer id bytes)
_circuit_payer: contextvars.ContextVar[bytes | None] = contextvars.ContextVar(
    "p2pshare_circuit_payer", default=None
)


class RelayLimitReached(TransferError):
    """A relayed provider was cut by the relay's limit (no voucher there)."""


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    """What a seed's operator allows through its relay."""

    open_relay: bool = False  # bulk circuits for everyone, not only vouchers
    max_rate: float | None = None  # bytes/s relayed in all
    max_peer_rate: float | None = None  # bytes/s relayed for one peer


# --------------------------------------------------------------------------
# Seed side
# --------------------------------------------------------------------------


class SeedRelay(CircuitV2Protocol):
    """Circuit relay v2 hop service of a seed (see the module docstring).

    ``admit(peer)`` says whether ``peer`` may use bulk circuits (a voucher
    holder on this seed).
    """

    def __init__(
        self,
        host: Any,
        admit: Callable[[ID], Awaitable[bool]],
        policy: RelayPolicy = RelayPolicy(),
    ) -> None:
        self._default_limits = LIMITED
        super().__init__(host, limits=LIMITED, allow_hop=True)
        self.admit = admit
        self.policy = policy
        self.total = RateLimiter(policy.max_rate)
        self.per_peer: dict[bytes, RateLimiter] = {}
        self.relayed: Counter[bytes] = Counter()  # bytes, by the peer sending
        self.charged: Counter[bytes] = Counter()  # bulk bytes, by voucher holder
        self.relayed_total = 0
        self.refused_reservations = 0
        self.reserved_from: dict[ID, str | None] = {}  # peer -> remote IP
        self.circuits = {"limited": 0, "bulk": 0}

    @property
    def limits(self) -> RelayLimits:
        """The limits of the circuit being handled (a context variable set
        per CONNECT), else the reservation defaults."""
        return _circuit_limits.get(self._default_limits)

    @limits.setter
    def limits(self, value: RelayLimits) -> None:
        self._default_limits = value

    def describe(self) -> SeedRelayState:
        return SeedRelayState(
            reservations=len(getattr(self.resource_manager, "_reservations", {})),
            circuits=dict(self.circuits),
            relayed_bytes=self.relayed_total,
            refused_reservations=self.refused_reservations,
            open_relay=self.policy.open_relay,
        )

    async def _handle_reserve(self, stream: INetStream, msg: HopMessage) -> None:
        remote = stream.muxed_conn.peer_id
        if msg.HasField("peer") and msg.peer.id and msg.peer.id != remote.to_bytes():
            self.refused_reservations += 1
            log.warning(
                "relay: %s asked a reservation for another peer id: refused",
                compat.short_peer_id(remote),
            )
            await self._send_status(
                stream,
                StatusCode.PERMISSION_DENIED,
                "a reservation is only for the peer that asks",
            )
            return
        msg.ClearField("peer")
        ip = _remote_ip(stream)
        same_ip = [
            p
            for p, where in self.reserved_from.items()
            if where == ip and p != remote and self.resource_manager.has_reservation(p)
        ]
        if ip is not None and len(same_ip) >= MAX_RESERVATIONS_PER_IP:
            self.refused_reservations += 1
            await self._send_status(
                stream,
                StatusCode.RESOURCE_LIMIT_EXCEEDED,
                "too many reservations from one address",
            )
            return
        for peer in [
            p
            for p in self.reserved_from
            if not self.resource_manager.has_reservation(p)
        ]:
            del self.reserved_from[peer]
        self.reserved_from[remote] = ip
        await super()._handle_reserve(stream, msg)

    async def _handle_connect(self, stream: INetStream, msg: HopMessage) -> None:
        source = stream.muxed_conn.peer_id
        try:
            target = ID(msg.peer.id)
        except Exception:
            await self._send_status(stream, StatusCode.MALFORMED_MESSAGE, "bad peer")
            return
        payer = None
        for peer in (source, target):
            if await self.admit(peer):
                payer = peer.to_bytes()
                break
        bulk = payer is not None or self.policy.open_relay
        self.circuits["bulk" if bulk else "limited"] += 1
        token = _circuit_limits.set(BULK if bulk else LIMITED)
        paying = _circuit_payer.set(payer)
        try:
            await super()._handle_connect(stream, msg)
        finally:
            _circuit_payer.reset(paying)
            _circuit_limits.reset(token)

    async def _relay_data(
        self,
        src_stream: INetStream,
        dst_stream: INetStream,
        peer_id: ID,
        deadline: float | None = None,
        circuit_data_limit: list[int] | None = None,
    ) -> None:
        sender = src_stream.muxed_conn.peer_id.to_bytes()
        limiter = self.per_peer.get(sender)
        if limiter is None:
            limiter = self.per_peer[sender] = RateLimiter(self.policy.max_peer_rate)
        metered: Any = _Metered(dst_stream, self, sender, limiter)
        try:
            await super()._relay_data(
                src_stream, metered, peer_id, deadline, circuit_data_limit
            )
        finally:
            if not any(
                s is src_stream or getattr(d, "wrapped", d) is dst_stream
                for s, d in self._active_relays.values()
            ):
                self.per_peer.pop(sender, None)


def _remote_ip(stream: Any) -> str | None:
    try:
        remote = stream.get_remote_address()
    except Exception:  # a stream without a socket address (a circuit)
        return None
    return str(remote[0]) if remote else None


class _Metered:
    """A destination stream that counts and paces what the relay writes."""

    def __init__(
        self, wrapped: Any, relay: SeedRelay, sender: bytes, limiter: RateLimiter
    ) -> None:
        self.wrapped = wrapped
        self.relay = relay
        self.sender = sender
        self.limiter = limiter

    async def write(self, data: bytes) -> None:
        await self.limiter.take(len(data))
        await self.relay.total.take(len(data))
        self.relay.relayed[self.sender] += len(data)
        self.relay.relayed_total += len(data)
        payer = _circuit_payer.get()
        if payer is not None:
            self.relay.charged[payer] += len(data)
        await self.wrapped.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
