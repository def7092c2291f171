"""Is this node dialable from the Internet? Asked of seeds, by fresh dial-back.

Server side (every seed): :class:`ReachServer` answers ``/p2pshare/reach/1``
(``protocol/reach.py``): it dials the requester's *observed* IP on the port
it names, on a new TCP connection (never the one the question came on),
and reports whether the Noise handshake completed with the requester's
peer id. At most :data:`MAX_CHECKS` dial-backs run at once, one per peer.

Client side (every node): :class:`Reachability` asks up to
:data:`ASK_AT_MOST` peers that may serve it (the configured seeds and
bootstrap peers first, then connected peers whose identify lists the
protocol) until
:data:`ENOUGH_ANSWERS` have answered, and concludes:

* ``public``: a seed's fresh dial reached us (on ``<observed ip>:<port>``);
* ``private``: every seed that answered found nothing listening there
  (a NAT or a firewall dropped or refused its dial);
* ``unknown``: nobody answered (no seed known, or none reachable).

It checks when the node starts, again every :data:`RECHECK_S`, sooner
while the answer is ``unknown`` (after :data:`RETRY_S`, doubling each time
nobody answered), and at once when the node's addresses change.
``status --json`` shows the state, why, and the address the seeds saw.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import trio
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from p2pshare.errors import P2PShareError, RemoteProtocolError
from p2pshare.node import compat
from p2pshare.node.host import parse_peer_addr
from p2pshare.node.streams import read_frame
from p2pshare.protocol import reach as proto
from p2pshare.records import ReachState

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from p2pshare.node.host import NodeHost
    from p2pshare.node.streams import LibP2PStream

__all__ = [
    "ASK_AT_MOST",
    "DIAL_BACK_TIMEOUT_S",
    "ENOUGH_ANSWERS",
    "MAX_CHECKS",
    "RECHECK_S",
    "ReachServer",
    "Reachability",
    "tcp_addr",
]

log = logging.getLogger(__name__)

DIAL_BACK_TIMEOUT_S: Final = 4.0  # a silent drop shows as no answer by then
REQUEST_TIMEOUT_S: Final = 10.0  # a whole question, seen from either side
MAX_CHECKS: Final = 8  # dial-backs at once on a seed
ASK_AT_MOST: Final = 6
ENOUGH_ANSWERS: Final = 2
RECHECK_S: Final = 1800.0
RETRY_S: Final = 5.0  # while unknown: 5 s, then doubling up to RECHECK_S
ADDR_POLL_S: Final = 30.0


# --------------------------------------------------------------------------
# Server (seeds)
# --------------------------------------------------------------------------


class ReachServer:
    """Answers ``/p2pshare/reach/1`` on a seed (see the module docstring)."""

    def __init__(self, nh: NodeHost) -> None:
        self.nh = nh
        self.limiter = trio.CapacityLimiter(MAX_CHECKS)
        self.checking: set[bytes] = set()  # peers with a dial-back under way
        self.answered: dict[str, int] = dict.fromkeys(proto.RESULTS, 0)

    async def handle(self, stream: LibP2PStream) -> None:
        peer = stream.remote_peer_id
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                request = proto.decode(
                    await read_frame(stream, proto.MAX_REACH_FRAME_BYTES, "reach"),
                    proto.ReachRequest,
                )
        except (RemoteProtocolError, trio.TooSlowError) as exc:
            log.info("reach: bad request from %s: %s", compat.short_peer_id(peer), exc)
            return
        observed = _remote_ip(stream)
        if observed is None:
            return  # not a TCP connection we can dial back (a relay, later)
        result = await self.check(peer, observed, request.port)
        self.answered[result] += 1
        with trio.fail_after(REQUEST_TIMEOUT_S):
            await stream.send_all(
                proto.encode(proto.Reached(observed=observed, result=result))
            )

    async def check(self, peer: ID, ip: str, port: int) -> str:
        """Dial ``ip:port`` fresh and expect ``peer``; one of ``RESULTS``."""
        key = peer.to_bytes()
        if key in self.checking:
            return "busy"
        try:
            self.limiter.acquire_nowait()
        except trio.WouldBlock:
            return "busy"
        self.checking.add(key)
        try:
            return await dial_back(self.nh, peer, ip, port)
        finally:
            self.checking.discard(key)
            self.limiter.release()


def tcp_addr(ip: str, port: int) -> str:
    """``/ip4/<ip>/tcp/<port>`` (or ``/ip6/…``) for an IP address text."""
    family = "ip6" if ipaddress.ip_address(ip).version == 6 else "ip4"
    return f"/{family}/{ip}/tcp/{port}"


async def dial_back(nh: NodeHost, peer: ID, ip: str, port: int) -> str:
    """A new TCP connection to ``ip:port``, secured by Noise expecting
    ``peer``, then closed; never one the swarm already holds."""
    maddr = Multiaddr(tcp_addr(ip, port))
    swarm: Any = nh.host.get_network()
    transport = swarm.transport_manager.transport_for_dialing(maddr)
    if transport is None:
        return "refused"
    raw: Any = None
    try:
        with trio.fail_after(DIAL_BACK_TIMEOUT_S):
            raw = await transport.dial(maddr)
            await swarm.upgrader.upgrade_security(raw, True, peer)
        return "dialed"
    except trio.TooSlowError:
        return "no_answer" if raw is None else "refused"
    except Exception as exc:
        # a reset or refusal, a handshake with another peer, a timeout that
        # the transport reports in its own words
        text = str(exc).lower()
        if raw is None and ("timed out" in text or "timeout" in text):
            return "no_answer"
        return "refused"
    finally:
        if raw is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                try:
                    await raw.close()
                except Exception:
                    log.debug("reach: closing a dial-back failed", exc_info=True)


def _remote_ip(stream: LibP2PStream) -> str | None:
    try:
        remote = stream.net_stream.get_remote_address()
    except Exception:
        return None
    if not remote:
        return None
    try:
        return str(ipaddress.ip_address(remote[0]))
    except ValueError:
        return None


# --------------------------------------------------------------------------
# Client (every node)
# --------------------------------------------------------------------------


@dataclass
class Reachability:
    """This node's reachability (see the module docstring)."""

    nh: NodeHost
    ask: Sequence[str] = ()  # full multiaddrs of seeds / bootstrap peers
    state: str = "unknown"
    why: str = "not checked yet"
    observed: str | None = None
    port: int | None = None
    checked_at: float | None = None
    answers: list[tuple[str, str]] = field(default_factory=list)  # (peer, result)
    on_change: Callable[[Reachability], Awaitable[None]] | None = None
    _recheck: trio.Event = field(default_factory=trio.Event)

    def describe(self) -> ReachState:
        return ReachState(
            state=self.state,
            why=self.why,
            observed=self.observed,
            port=self.port,
            checked_s_ago=(
                None
                if self.checked_at is None
                else round(time.monotonic() - self.checked_at, 1)
            ),
        )

    def recheck(self) -> None:
        self._recheck.set()

    async def run(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_addrs)
            unanswered = 0  # checks in a row that nobody answered
            while True:
                self._recheck = trio.Event()
                await self.check()
                unanswered = unanswered + 1 if self.state == "unknown" else 0
                wait = (
                    min(RECHECK_S, RETRY_S * 2 ** (unanswered - 1))
                    if unanswered
                    else RECHECK_S
                )
                with trio.move_on_after(wait):
                    await self._recheck.wait()

    async def _watch_addrs(self) -> None:
        seen = self.listen_port()
        while True:
            await trio.sleep(ADDR_POLL_S)
            now = self.listen_port()
            if now != seen:
                seen = now
                self.recheck()

    def listen_port(self) -> int | None:
        for addr in self.nh.host.get_transport_addrs():
            if "tcp" in [p.name for p in addr.protocols()]:
                return int(addr.value_for_protocol("tcp"))
        return None

    def _candidates(self) -> list[Any]:
        out: list[Any] = []
        seen = {self.nh.peer_id}
        for text in self.ask:
            try:
                info = parse_peer_addr(text)
            except P2PShareError:
                continue
            if info.peer_id not in seen:
                seen.add(info.peer_id)
                out.append(info)
        store = self.nh.host.get_peerstore()
        for peer in self.nh.connected_peers():  # those identify says can answer
            try:
                serves = proto.REACH_PROTOCOL in (store.get_protocols(peer) or [])
            except Exception:  # the peerstore knows nothing of it yet
                serves = False
            if serves and peer not in seen:
                seen.add(peer)
                out.append(peer)
        return out[:ASK_AT_MOST]

    async def check(self) -> None:
        """Ask seeds now; update ``state`` (never raises for the network)."""
        before, first = self.state, self.checked_at is None
        await self._check()
        if (first or self.state != before) and self.on_change is not None:
            await self.on_change(self)

    async def _check(self) -> None:
        port = self.listen_port()
        if port is None:
            self._set("unknown", "not listening on TCP", None, [])
            return
        self.port = port
        answers: list[tuple[str, str, str]] = []  # (peer, observed, result)
        candidates = self._candidates()
        while candidates and len(answers) < ENOUGH_ANSWERS:
            batch = candidates[: ENOUGH_ANSWERS - len(answers)]
            del candidates[: len(batch)]
            async with trio.open_nursery() as nursery:  # asked at once

                async def ask(peer: Any) -> None:
                    answer = await self._ask(peer, port)
                    if answer is not None and answer[2] != "busy":
                        answers.append(answer)

                for peer in batch:
                    nursery.start_soon(ask, peer)
        observed = answers[0][1] if answers else None
        pairs = [(p, r) for p, _o, r in answers]
        dialed = [p for p, r in pairs if r == "dialed"]
        if dialed:
            why = f"seed {dialed[0]} dialled back {observed}:{port}"
            self._set("public", why, observed, pairs)
            self._advertise(observed, port)
        elif answers:
            self.nh.set_verified_addrs([])
            n = len(answers)
            who = "the seed" if n == 1 else f"all {n} seeds"
            why = f"{who} could not dial back {observed}:{port} (NAT or firewall)"
            self._set("private", why, observed, pairs)
        else:
            why = (
                "no seed answered"
                if self.ask or self.nh.connected_peers()
                else ("no seed known to ask")
            )
            self._set("unknown", why, None, [])

    def _advertise(self, observed: str | None, port: int) -> None:
        """A public address the seeds dialled that we do not listen on
        (a forwarded port) is advertised: identify, DHT records, links."""
        if observed is None:
            return
        listening = compat.advertised_addrs(list(self.nh.host.get_transport_addrs()))
        own = {str(a).split("/")[2] for a in listening if str(a).count("/") > 2}
        extra = [] if observed in own else [tcp_addr(observed, port)]
        if self.nh.set_verified_addrs(extra) and extra:
            log.info("reachable through a forwarded port: advertising %s", extra[0])

    async def _ask(self, peer: Any, port: int) -> tuple[str, str, str] | None:
        peer_id: ID = peer if isinstance(peer, ID) else peer.peer_id
        short = compat.short_peer_id(peer_id)
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S + DIAL_BACK_TIMEOUT_S):
                if not isinstance(peer, ID):
                    await self.nh.connect_info(peer)
                stream = await self.nh.open_stream(peer_id, proto.REACH_PROTOCOL)
                async with stream:
                    await stream.send_all(proto.encode(proto.ReachRequest(port=port)))
                    reply = proto.decode(
                        await read_frame(stream, proto.MAX_REACH_FRAME_BYTES, "reach"),
                        proto.Reached,
                    )
        except (P2PShareError, BaseLibp2pError, OSError, trio.TooSlowError) as exc:
            log.debug("reach: %s did not answer: %s", short, type(exc).__name__)
            return None
        return short, reply.observed, reply.result

    def _set(
        self, state: str, why: str, observed: str | None, answers: list[tuple[str, str]]
    ) -> None:
        if state != self.state:
            log.info("reachability: %s (%s)", state, why)
        self.state, self.why, self.observed = state, why, observed
        self.answers = answers
        self.checked_at = time.monotonic()
