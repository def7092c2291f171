"""Every py-libp2p 0.8.1 workaround p2pshare needs, in one place.

Theory of operation
-------------------
py-libp2p 0.8.1 works end to end on TCP + Noise + Yamux, but several of its
defaults are unsafe or broken for a file-sharing node (see
``LIBP2P-NOTES.md`` beside ``DESIGN.md``; the ``Pn`` numbers below are its
pitfall numbers). The rest of ``p2pshare.node`` never reaches into libp2p
internals itself: it calls the helpers here, so that when upstream fixes land
each workaround can be deleted on its own, following its "remove when" note.

================  ==========================================================
helper            workaround
================  ==========================================================
tcp_transports    TCP only; QUIC truncates stream tails (P2)
security_options  Noise only; the default list accepts plaintext/SECIO (P3)
muxer_options     Yamux only; Mplex deadlocks on read+write (P1)
advertised_addrs  wildcard listen addrs are advertised as ``0.0.0.0`` (A1)
disable_auto_     the swarm dials up to 199 peerstore peers by itself (A2)
connector
unbound_listen_   ``host.run()`` ignores listen failures (A3)
addrs
safe_handler      a raising stream handler kills the whole host (P4)
stream_eof_clean  a reset or a dead connection reads as a clean EOF (P10)
unread_bytes      closing with unread data stalls the peer's writer (P10)
wait_readable,    a cancelled read or write can corrupt the Noise session
wait_send_credit, and drop the whole connection (N1); library operations
run_detached      run where no caller can cancel them
harden_dht_server 12 idle KAD streams starve a DHT server; every normal
                  KAD close logs a WARNING and sends an RST (P5, P8)
uncached_find_    ``find_providers`` answers from the local cache without a
providers         network query, even when that cache holds only us (P11)
skip_library_     the library re-provides at its own times as well (P17)
republish
stop_providing    there is no un-provide API (P17)
close_network     ``host.run()`` exit leaks sockets, and so does cancelling
                  libp2p's tasks while they close (P9; ``host.py`` also runs
                  the host under a shield for this)
configure_libp2p_ libp2p's logger has no handler and does not propagate;
logging           "Failed to read DHT message" floods the log (P8)
================  ==========================================================

(A1-A3 and N1 are not in the notes: see :func:`advertised_addrs`,
:func:`disable_auto_connector`, :func:`unbound_listen_addrs` and the
"Cancellation-safe stream I/O" section.)

This module is the leaf of ``p2pshare.node``: it imports nothing else from
the package, so ``streams.py``, ``host.py`` and ``dht.py`` may all use it.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import sys
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import trio
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TMuxerOptions, TProtocol, TSecurityOptions
from libp2p.exceptions import BaseLibp2pError
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.provider_store import ProviderStore
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.tcp.tcp import TCP
from multiaddr import Multiaddr
from multiaddr.utils import get_thin_waist_addresses

from p2pshare.errors import P2PShareError, TransferError

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream, ITransport
    from libp2p.crypto.keys import KeyPair
    from libp2p.kad_dht.kad_dht import KadDHT
    from libp2p.peer.peerinfo import PeerInfo

__all__ = [
    "DHT_MAX_INBOUND_STREAMS",
    "DHT_MAX_STREAMS_PER_PEER",
    "DHT_STREAM_IDLE_S",
    "DHT_STREAM_LIFETIME_S",
    "NETWORK_CLOSE_TIMEOUT_S",
    "SEND_CREDIT_WAIT_S",
    "SHIELDED_IO_LIMIT_S",
    "STREAM_RESET_TIMEOUT_S",
    "StreamHandler",
    "advertised_addrs",
    "close_network",
    "configure_libp2p_logging",
    "disable_auto_connector",
    "harden_dht_server",
    "muxer_options",
    "reset_quietly",
    "run_detached",
    "safe_handler",
    "security_options",
    "set_background_nursery",
    "short_peer_id",
    "skip_library_republish",
    "stop_providing",
    "stream_eof_clean",
    "tcp_transports",
    "unbound_listen_addrs",
    "uncached_find_providers",
    "unread_bytes",
    "wait_readable",
    "wait_send_credit",
]

logger = logging.getLogger(__name__)

StreamHandler = Callable[["INetStream"], Awaitable[None]]
_T = TypeVar("_T")

# Resetting a stream writes one 12-byte Yamux frame, but it queues behind the
# connection's write lock; a congested or dead connection must not hold a
# cleanup path hostage.
STREAM_RESET_TIMEOUT_S: Final = 2.0

# Closing one connection costs ~0.2 s in 0.8.1 (Yamux.close and
# SwarmConn._cleanup each sleep 0.1 s); connections are closed concurrently,
# so this bounds the whole shutdown, not one connection.
NETWORK_CLOSE_TIMEOUT_S: Final = 10.0

# DHT server limits (P5). 0.8.1 allows 12 concurrent inbound KAD handlers and
# has no read timeout, so 12 idle streams from one peer starve everyone.
# 64 handlers cost little (each is mostly waiting), one peer may hold at most
# 8 of them, an idle read is cut after the client-side query timeout (10 s in
# 0.8.1), and no stream lives longer than go-libp2p's 1-minute idle timeout.
DHT_MAX_INBOUND_STREAMS: Final = 64
DHT_MAX_STREAMS_PER_PEER: Final = 8
DHT_STREAM_IDLE_S: Final = 10.0
DHT_STREAM_LIFETIME_S: Final = 60.0

_PEER_ID_SHORT_LEN: Final = 8


def short_peer_id(peer_id: ID | bytes | str) -> str:
    """Short, log-friendly form of a peer id: the last 8 base58 characters.

    Ed25519 peer ids all start with ``12D3KooW``, so the tail is the part
    that tells peers apart.
    """
    text = str(ID(peer_id)) if isinstance(peer_id, bytes) else str(peer_id)
    return "…" + text[-_PEER_ID_SHORT_LEN:]


# --------------------------------------------------------------------------
# Host construction: P1, P2, P3, A1
# --------------------------------------------------------------------------


def tcp_transports() -> list[ITransport]:
    """The only transport p2pshare uses: TCP.

    P2: QUIC silently truncates stream tails and runs at 3-5 MB/s, and
    ``new_host`` builds a QUIC transport for any ``/quic-v1`` listen address.
    Passing the transport list explicitly means no listen address can enable
    another transport. Remove when: QUIC's EOF race is fixed upstream and its
    throughput is measured acceptable.
    """
    return [TCP()]


def security_options(key_pair: KeyPair) -> TSecurityOptions:
    """Security transports for ``new_host(sec_opt=...)``: Noise, and only Noise.

    P3: without ``sec_opt`` a 0.8.1 host also offers and accepts
    ``/plaintext/2.0.0`` and SECIO, so any dialer can get an unencrypted,
    unauthenticated connection. Remove when: never; pinning the list is simply
    correct (TLS could be added here if ever needed).
    """
    noise_key = create_new_x25519_key_pair().private_key
    return {NOISE_PROTOCOL_ID: NoiseTransport(key_pair, noise_privkey=noise_key)}


def muxer_options() -> TMuxerOptions:
    """Stream muxers for ``new_host(muxer_opt=...)``: Yamux only.

    P1: Mplex deadlocks when one stream reads and writes concurrently, resets
    streams after 5 s without reads and runs at ~19 MB/s. With Mplex absent
    from the options it cannot be negotiated. Remove when: never (pinning is
    correct); revisit if Mplex is fixed and wanted for interop.
    """
    return {TProtocol(YAMUX_PROTOCOL_ID): Yamux}


def advertised_addrs(candidates: list[Multiaddr]) -> list[Multiaddr]:
    """``addrs_factory`` for ``new_host``: advertise dialable addresses only.

    A1: ``BasicHost.get_addrs()`` returns listen addresses as bound, so a host
    listening on ``/ip4/0.0.0.0/tcp/P`` advertises ``0.0.0.0`` in identify,
    in its signed peer record and in every DHT provider record. Each wildcard
    is replaced by the concrete interface addresses (plus loopback, which is
    harmless to advertise: Noise authenticates whoever answers). Runs on
    every ``get_addrs()`` call, so interface changes are picked up; it costs
    ~0.1 ms. Remove when: upstream expands wildcards in ``get_addrs()``.
    """
    out: list[Multiaddr] = []
    seen: set[str] = set()

    def add(addr: Multiaddr) -> None:
        if str(addr) not in seen:
            seen.add(str(addr))
            out.append(addr)

    for addr in candidates:
        wildcard = _wildcard_family(addr)
        if wildcard is None:
            add(addr)
            continue
        try:
            expanded = list(get_thin_waist_addresses(addr))
        except Exception:  # psutil or interface enumeration failed
            logger.debug("cannot enumerate interfaces for %s", addr, exc_info=True)
            expanded = []
        for concrete in expanded:
            if _wildcard_family(concrete) is None:
                add(concrete)
        port = addr.value_for_protocol("tcp")
        loopback = "/ip4/127.0.0.1" if wildcard == 4 else "/ip6/::1"
        add(Multiaddr(f"{loopback}/tcp/{port}"))
    return out


def _wildcard_family(addr: Multiaddr) -> int | None:
    """4 or 6 if ``addr`` is an unspecified (wildcard) IP address."""
    for proto in ("ip4", "ip6"):
        try:
            value = addr.value_for_protocol(proto)
        except Exception:  # multiaddr raises when the protocol is absent
            value = None
        if value and ipaddress.ip_address(value).is_unspecified:
            return 4 if proto == "ip4" else 6
    return None


def unbound_listen_addrs(host: IHost, wanted: Iterable[Multiaddr]) -> list[str]:
    """The listen addresses ``host.run()`` failed to bind; call inside it.

    A3: ``Swarm.listen`` returns False on failure and ``host.run()`` ignores
    it; the cause (port in use, address not local) is logged at DEBUG. The
    host then runs without listening. Remove when: ``host.run()`` raises.
    """
    listening = host.get_network().listeners
    return [str(a) for a in wanted if str(a) not in listening]


def disable_auto_connector(host: IHost) -> None:
    """Keep the swarm's background dialer from starting; call before ``run()``.

    A2: 0.8.1's ``AutoConnector`` keeps the node near 200 connections: while
    below ``min_connections`` (50) it dials, every 10 s, up to 199 peers from
    the peerstore, which the DHT fills with every peer and provider it hears
    of. For a file-sharing node that is traffic nobody asked for, and it
    tells every provider we merely looked up that we exist. p2pshare dials on
    demand (DHT lookups, transfers, bootstrap). The swarm starts the
    connector inside ``host.run()``, concurrently with ``listen()``, so a
    ``stop()`` afterwards can lose the race; instead its ``start`` is made a
    no-op, which leaves it stopped (every entry point checks that). Remove
    when: the dialer can be disabled through ``ConnectionConfig``.
    """
    connector = getattr(host.get_network(), "auto_connector", None)
    if connector is None or not hasattr(connector, "start"):  # pragma: no cover
        logger.warning("libp2p swarm has no auto_connector; nothing to disable")
        return

    async def stay_stopped() -> None:
        await trio.lowlevel.checkpoint()

    setattr(connector, "start", stay_stopped)  # noqa: B010 - a method slot


# --------------------------------------------------------------------------
# Stream handlers and streams: P4, P10
# --------------------------------------------------------------------------


def safe_handler(handler: StreamHandler) -> StreamHandler:
    """Wrap a stream handler so that its failure costs one stream, not the host.

    P4: in 0.8.1 an exception escaping a stream handler propagates into the
    connection's nursery, fails the Swarm service and takes the whole host
    down. The wrapper catches every ``Exception`` (with ``except*``, so a
    group is split), logs it at WARNING with the remote peer's short id and
    resets the stream. ``trio.Cancelled`` and any other ``BaseException`` are
    never swallowed: the non-``Exception`` part of a group is re-raised. Peer
    misbehaviour (``P2PShareError``, libp2p stream errors) is logged in one
    line; anything else is a bug in the handler and is logged with its
    traceback. Remove when: never; a task root catch-all is our policy
    (STYLE §10), even once libp2p isolates handlers itself.
    """

    @functools.wraps(handler)
    async def guarded(stream: INetStream) -> None:
        try:
            await handler(stream)
        except* Exception as group:
            peer = _remote_peer_short(stream)
            protocol = stream.get_protocol()
            for exc in group.exceptions:
                if isinstance(exc, P2PShareError | BaseLibp2pError):
                    logger.warning(
                        "handler %s: peer %s: %s: %s",
                        protocol,
                        peer,
                        type(exc).__name__,
                        exc,
                    )
                else:
                    logger.warning(
                        "handler %s: peer %s: unexpected error",
                        protocol,
                        peer,
                        exc_info=exc,
                    )
            await reset_quietly(stream)

    return guarded


def _remote_peer_short(stream: INetStream) -> str:
    try:
        return short_peer_id(stream.muxed_conn.peer_id)
    except Exception:  # a half-torn-down stream may lack its connection
        return "?"


async def reset_quietly(stream: INetStream) -> None:
    """Reset ``stream``, bounded in time, ignoring errors (it may be dead).

    Cancellation: honoured (not shielded); callers that must reset during
    cancellation shield the call themselves.
    """
    with trio.move_on_after(STREAM_RESET_TIMEOUT_S):
        try:
            await stream.reset()
        except Exception:  # already reset or connection gone: nothing to do
            logger.debug("stream reset failed", exc_info=True)


def stream_eof_clean(stream: INetStream) -> bool:
    """Whether a ``StreamEOF`` just read from ``stream`` is a real end of stream.

    P10: 0.8.1's Yamux reports three different events as a clean EOF:
    the peer's FIN (correct), the peer's RST when nothing is buffered (the
    RST drops the stream entry and the reader then finds "no such stream"),
    and the connection dying (remote host stopped, or our side closed it).
    Only the first is an end of stream; the others lose data and must read as
    a broken stream. A Yamux stream records a received RST and a connection
    teardown in ``reset_received``; a connection we close ourselves sets
    ``event_shutting_down`` on the muxer. (A FIN that arrived just before the
    connection died, but was not read before it, is reported as not clean:
    the teardown also discards buffered data, so this is the safe answer.)
    Other muxers (none are negotiated, see :func:`muxer_options`) count as
    clean. Remove when: Yamux raises ``MuxedStreamReset`` for these cases.
    """
    muxed: Any = getattr(stream, "muxed_stream", None)
    if getattr(muxed, "reset_received", False):
        return False
    conn: Any = getattr(muxed, "conn", None)
    shutting_down: Any = getattr(conn, "event_shutting_down", None)
    return not (shutting_down is not None and shutting_down.is_set())


def unread_bytes(stream: INetStream) -> int:
    """How many bytes the peer sent on ``stream`` that nobody has read yet.

    Used to close like TCP does: closing with unread data resets the stream
    so the sender learns at once, instead of stalling 5 s on flow control and
    failing (P10). 0.8.1's ``INetStream`` has no such query; this reads the
    Yamux connection's per-stream buffer (0 for any other muxer). Remove
    when: the muxer exposes it, or ``close()`` does this itself.
    """
    parts = _yamux_parts(stream)
    if parts is None:
        return 0
    muxed, conn = parts
    return len(conn.stream_buffers.get(muxed.stream_id) or b"")


# --------------------------------------------------------------------------
# Cancellation-safe stream I/O: N1
# --------------------------------------------------------------------------
#
# N1 (not in the notes; found here): cancelling a libp2p read or write can
# kill the whole connection. Yamux writes frames through Noise; a cancel that
# lands inside ``Yamux._write_frame`` (after Noise consumed a nonce, or with
# a frame half sent) desynchronises the Noise session, the peer fails with
# "Failed authentication of message" and drops the connection, with every
# stream on it. Reads are affected too: ``YamuxStream.read`` sends a window
# update after taking the data, so a cancelled read can also lose the data
# it took. A receive loop under a short ``move_on_after`` reproduces both in
# seconds. The cure: wait (cancellably, consuming nothing) until the
# operation cannot block on the peer, then run it shielded; the shield only
# covers local work and TCP, and gets a deadline all the same.
# Remove when: upstream Yamux/Noise writes are cancellation-safe.

# How long shielded I/O may take: only TCP backpressure can hold it up (the
# peer's kernel not accepting data), and then the connection is lost anyway.
SHIELDED_IO_LIMIT_S: Final = 30.0
# Yamux's own limit for a writer without flow-control credit (P10).
SEND_CREDIT_WAIT_S: Final = 5.0
# Yamux has no event for window updates; it polls every 10 ms, and so do we.
_CREDIT_POLL_S: Final = 0.01


def _yamux_parts(stream: INetStream) -> tuple[Any, Any] | None:
    """(YamuxStream, Yamux) behind ``stream``, or None for another muxer."""
    muxed: Any = getattr(stream, "muxed_stream", None)
    conn: Any = getattr(muxed, "conn", None)
    needed = ("stream_buffers", "stream_events", "streams", "event_shutting_down")
    if conn is None or not all(hasattr(conn, name) for name in needed):
        return None
    if not hasattr(muxed, "stream_id") or not hasattr(muxed, "send_window"):
        return None
    return muxed, conn


async def wait_readable(stream: INetStream) -> None:
    """Wait until ``stream.read()`` would return without waiting on the peer.

    Cancellation: safe, consumes nothing (N1). Returns at once for a muxer
    other than Yamux (the read is then not cancellation-safe).
    """
    parts = _yamux_parts(stream)
    if parts is None:
        await trio.lowlevel.checkpoint()
        return
    muxed, conn = parts
    sid = muxed.stream_id
    while not (
        conn.stream_buffers.get(sid)
        or muxed.recv_closed
        or muxed.reset_received
        or sid not in conn.streams
        or conn.event_shutting_down.is_set()
    ):
        event = conn.stream_events.get(sid)
        if event is None:
            break
        if event.is_set():  # left set by data already read: re-arm, as
            conn.stream_events[sid] = trio.Event()  # read_stream() does
            continue
        await event.wait()
    await trio.lowlevel.checkpoint()


async def wait_send_credit(stream: INetStream, *, limit_s: float | None) -> int:
    """Wait until ``stream`` may send without waiting for flow-control credit.

    Returns the number of bytes that can be written without waiting (the
    Yamux send window; a huge number for another muxer or a closed stream,
    whose write then fails on its own), or 0 if no credit came within
    ``limit_s`` (None: wait indefinitely). Cancellation: safe (N1).
    """
    parts = _yamux_parts(stream)
    if parts is None:
        await trio.lowlevel.checkpoint()
        return sys.maxsize
    muxed, conn = parts
    deadline = math.inf if limit_s is None else trio.current_time() + limit_s
    while True:
        if muxed.closed or muxed.send_closed or conn.event_shutting_down.is_set():
            await trio.lowlevel.checkpoint()
            return sys.maxsize  # let the write raise the right error
        window = int(muxed.send_window)
        if window > 0:
            await trio.lowlevel.checkpoint()
            return window
        if trio.current_time() >= deadline:
            return 0
        await trio.sleep(_CREDIT_POLL_S)


_BACKGROUND: weakref.WeakKeyDictionary[Any, trio.Nursery] = weakref.WeakKeyDictionary()


def set_background_nursery(host: IHost, nursery: trio.Nursery | None) -> None:
    """Register (or with None, forget) the nursery :func:`run_detached` uses.

    ``host.py`` registers a nursery that lives inside the host's shielded
    task, so that work started there is never cancelled by a caller.
    """
    if nursery is None:
        _BACKGROUND.pop(host, None)
    else:
        _BACKGROUND[host] = nursery


async def run_detached(host: IHost, fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run a libp2p operation where its caller's cancellation cannot cut it.

    N1 for library code: DHT lookups and provides write frames on shared
    connections, and they wait on peers, so they can be neither shielded nor
    safely cancelled. ``fn`` runs as a task in the host's background nursery
    (see :func:`set_background_nursery`); the caller waits for its result
    and may be cancelled at any time, in which case ``fn`` runs on to its
    own end (libp2p bounds every query by its 10 s query timeout) and the
    result is dropped. Exceptions from ``fn`` are re-raised in the caller.
    Without a registered nursery, ``fn`` simply runs in the caller.

    Raises:
        TransferError: the host shut down before ``fn`` finished.
    """
    nursery = _BACKGROUND.get(host)
    if nursery is None:
        return await fn()
    done = trio.Event()
    values: list[_T] = []
    errors: list[Exception] = []

    async def run() -> None:
        try:
            values.append(await fn())
        except Exception as exc:  # handed to the caller, re-raised there
            errors.append(exc)
        finally:
            done.set()

    nursery.start_soon(run)
    await done.wait()
    if errors:
        raise errors[0]
    if not values:
        raise TransferError("the libp2p host shut down during the operation")
    return values[0]


# --------------------------------------------------------------------------
# DHT: P5, P8, P11, P17
# --------------------------------------------------------------------------


def harden_dht_server(host: IHost, dht: KadDHT) -> None:
    """Replace the KAD stream handler of a DHT server with a hardened one.

    P5: 0.8.1 caps inbound KAD handlers at 12 and reads with no timeout, so
    one peer holding 12 idle streams makes the server reset every other
    request. The replacement handler

    * raises the global cap to :data:`DHT_MAX_INBOUND_STREAMS`
      (``dht._inbound_limiter.total_tokens``; the attribute is checked),
    * resets streams beyond :data:`DHT_MAX_STREAMS_PER_PEER` per peer,
    * gives every read :data:`DHT_STREAM_IDLE_S`, and a stream no reads
      after :data:`DHT_STREAM_LIFETIME_S` (the stream is then reset; reads
      are cut only while waiting, never mid-frame: N1),
    * runs under :func:`safe_handler` (P4: the library's own handler awaits
      ``add_peer`` outside its ``try``).

    P8: the library's read loop treats only an empty read as a clean end of
    stream, but ``NetStream.read`` raises ``StreamEOF`` instead, so every
    normal request logs "Failed to read DHT message from stream" and resets
    the stream. The stream handed to the library turns a clean ``StreamEOF``
    into ``b""``, so a finished exchange closes quietly.

    Call it once, after constructing a ``DHTMode.SERVER`` KadDHT (whose
    constructor registers the unhardened handler). Remove when: upstream
    adds read timeouts, a per-peer cap, and EOF handling to ``handle_stream``.
    """
    limiter = getattr(dht, "_inbound_limiter", None)
    if isinstance(limiter, trio.CapacityLimiter):
        limiter.total_tokens = DHT_MAX_INBOUND_STREAMS
    else:  # pragma: no cover - a libp2p upgrade changed the internals
        logger.warning("libp2p KadDHT has no _inbound_limiter; cap left as is")
    guard = _KadInboundGuard(dht)
    host.set_stream_handler(TProtocol(KAD_PROTOCOL_ID), safe_handler(guard))


class _KadInboundGuard:
    def __init__(self, dht: KadDHT) -> None:
        self._dht = dht
        self._per_peer: dict[ID, int] = {}

    async def __call__(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        active = self._per_peer.get(peer, 0)
        if active >= DHT_MAX_STREAMS_PER_PEER:
            logger.debug("peer %s: too many KAD streams", short_peer_id(peer))
            await reset_quietly(stream)
            return
        self._per_peer[peer] = active + 1
        proxy = _KadStream(stream, trio.current_time() + DHT_STREAM_LIFETIME_S)
        try:
            await self._dht.handle_stream(cast("INetStream", proxy))
        finally:
            left = self._per_peer[peer] - 1
            if left:
                self._per_peer[peer] = left
            else:
                del self._per_peer[peer]


class _KadStream:
    """An ``INetStream`` proxy for the KAD server loop.

    Reads wait (cancellably, N1) at most :data:`DHT_STREAM_IDLE_S` for data
    and never past the stream's lifetime; a timeout raises ``TooSlowError``,
    which the library's loop answers by resetting the stream. The read itself
    is shielded, and writes are never cut by us (N1). A clean EOF reads as
    ``b""`` (P8).
    """

    def __init__(self, inner: INetStream, expires_at: float) -> None:
        self._inner = inner
        self._expires_at = expires_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read(self, n: int | None = None) -> bytes:
        deadline = min(trio.current_time() + DHT_STREAM_IDLE_S, self._expires_at)
        with trio.fail_at(deadline):
            await wait_readable(self._inner)
        try:
            with trio.CancelScope(shield=True) as shield:
                shield.deadline = trio.current_time() + SHIELDED_IO_LIMIT_S
                data = await self._inner.read(n)
        except StreamEOF:
            if stream_eof_clean(self._inner):
                return b""
            raise
        if shield.cancelled_caught:
            raise trio.TooSlowError("KAD read stalled on the connection")
        return data


async def uncached_find_providers(
    dht: KadDHT, key: bytes, count: int
) -> list[PeerInfo]:
    """Ask the network for providers of ``key``, bypassing the local cache.

    P11: ``ProviderStore.find_providers`` returns whatever the local store
    holds for the key without any network query. On a node that provides the
    key itself, that is only itself, so it could never find another source.
    The lookup therefore runs on a fresh, empty ``ProviderStore`` sharing the
    DHT's host and routing (public constructor, no private state touched);
    its result cache is discarded. Remove when: upstream offers an uncached
    lookup (or stops short-circuiting on a local record).
    """
    fresh = ProviderStore(host=dht.host, peer_routing=dht.peer_routing)
    return await fresh.find_providers(key, count)


def skip_library_republish(dht: KadDHT, key: bytes) -> None:
    """Leave re-announcing ``key`` to the caller (``dht.Announcer``).

    P17/notes §3: ``provide()`` adds the key to ``providing_keys`` without
    setting its last-republish time, so the library re-provides it at the
    next 10-minute maintenance tick and every 22 h after, on top of our own
    schedule. Removing the key from the set makes the Announcer the single
    owner of the schedule. Remove when: upstream records the provide time
    (then the duplicate is only every 22 h and can be tolerated).
    """
    store: Any = getattr(dht, "provider_store", None)
    keys = getattr(store, "providing_keys", None)
    if isinstance(keys, set):
        keys.discard(key)


def stop_providing(dht: KadDHT, key: bytes, local_peer: ID) -> None:
    """Stop announcing ``key``: drop it from the republish set and our record.

    P17: 0.8.1 has no un-provide API. ``provide()`` adds the key to
    ``provider_store.providing_keys`` (republished by the library every 22 h)
    and stores our own provider record, which we hand out to GET_PROVIDERS
    queries. Both are removed here (attributes checked first); records
    already stored on other peers expire on their own (48 h). Remove when:
    upstream adds ``unprovide``.
    """
    store: Any = getattr(dht, "provider_store", None)
    keys = getattr(store, "providing_keys", None)
    if isinstance(keys, set):
        keys.discard(key)
    records = getattr(store, "providers", None)
    if isinstance(records, dict) and key in records:
        records[key].pop(str(local_peer), None)
        if not records[key]:
            del records[key]


# --------------------------------------------------------------------------
# Shutdown: P9
# --------------------------------------------------------------------------


async def close_network(host: IHost) -> None:
    """Close every connection and listener of ``host``: shielded, bounded.

    P9: leaving ``host.run()`` leaks listening and connection sockets in
    0.8.1 (the swarm's cleanup awaits unshielded while being cancelled, and
    the TCP listener lives in a system task). Calling this inside the
    ``host.run()`` block, before leaving it, releases them all. It is shielded
    from cancellation (shutdown usually *is* a cancellation) and bounded by
    :data:`NETWORK_CLOSE_TIMEOUT_S`. Connections are closed concurrently,
    since each costs ~0.2 s of library sleeps. Errors are logged, never
    raised. Remove when: ``host.run()`` exit releases sockets by itself.
    """
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(NETWORK_CLOSE_TIMEOUT_S) as scope,
    ):
        network = host.get_network()
        conns = [c for cs in list(network.connections.values()) for c in list(cs)]
        async with trio.open_nursery() as nursery:
            for conn in conns:
                nursery.start_soon(_close_conn_quietly, conn)
        try:
            await host.close()
        except Exception:
            logger.warning("closing the libp2p network failed", exc_info=True)
    if scope.cancelled_caught:
        logger.warning(
            "closing the libp2p network took over %.0f s; sockets may leak",
            NETWORK_CLOSE_TIMEOUT_S,
        )


async def _close_conn_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:
        logger.debug("closing a connection failed", exc_info=True)


# --------------------------------------------------------------------------
# Logging: P8
# --------------------------------------------------------------------------


def configure_libp2p_logging(
    handlers: Iterable[logging.Handler], *, level: int = logging.WARNING
) -> None:
    """Send libp2p's log records to ``handlers`` (for ``cli.py`` to call).

    P8: on import 0.8.1 clears the ``libp2p`` logger's handlers and sets
    ``propagate=False``, so its warnings reach only Python's last-resort
    stderr handler, bypassing the application's log setup. This attaches the
    application's handlers (idempotently) at ``level`` and quiets
    ``libp2p.kad_dht.kad_dht`` to ERROR: it emits "Failed to read DHT message
    from stream" for every normal request served by an unhardened DHT server
    (thousands per minute). Library code never calls this; only the CLI,
    which owns logging (STYLE §11). Remove when: libp2p stops disabling
    propagation and the DHT warning is fixed.
    """
    root = logging.getLogger("libp2p")
    root.setLevel(level)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    logging.getLogger("libp2p.kad_dht.kad_dht").setLevel(max(level, logging.ERROR))
