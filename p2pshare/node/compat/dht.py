"""The Kademlia DHT: server hardening, lookups, provides (P5, P8, P11, P17).

``host.py`` hardens a DHT server once, right after building it
(:func:`harden_dht_server`); ``p2pshare.node.dht`` does its lookups and
provides through the other helpers here, since 0.8.1 answers lookups from
its cache (:func:`uncached_find_providers`), re-provides on its own schedule
(:func:`skip_library_republish`) and cannot withdraw a record
(:func:`stop_providing`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, cast

import trio
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.provider_store import ProviderStore
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID

from p2pshare.node.compat.handlers import reset_quietly, safe_handler, short_peer_id
from p2pshare.node.compat.stream_io import (
    SHIELDED_IO_LIMIT_S,
    stream_eof_clean,
    wait_readable,
)

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream
    from libp2p.kad_dht.kad_dht import KadDHT
    from libp2p.peer.peerinfo import PeerInfo

__all__ = [
    "DHT_MAX_INBOUND_STREAMS",
    "DHT_MAX_STREAMS_PER_PEER",
    "DHT_STREAM_IDLE_S",
    "DHT_STREAM_LIFETIME_S",
    "harden_dht_server",
    "prune_routing_table",
    "push_identify",
    "servers_only_routing",
    "set_dht_mode",
    "skip_library_republish",
    "stop_providing",
    "uncached_find_providers",
]

logger = logging.getLogger(__name__)

# DHT server limits (P5). 0.8.1 allows 12 concurrent inbound KAD handlers and
# has no read timeout, so 12 idle streams from one peer starve everyone.
# 64 handlers cost little (each is mostly waiting), one peer may hold at most
# 8 of them, an idle read is cut after the client-side query timeout (10 s in
# 0.8.1), and no stream lives longer than go-libp2p's 1-minute idle timeout.
DHT_MAX_INBOUND_STREAMS: Final = 64
DHT_MAX_STREAMS_PER_PEER: Final = 8
DHT_STREAM_IDLE_S: Final = 10.0
DHT_STREAM_LIFETIME_S: Final = 60.0


# --------------------------------------------------------------------------
# Server hardening: P5, P8
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


# --------------------------------------------------------------------------
# Lookups and provider records: P11, P17
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Routing table hygiene and mode switches (R1)
# --------------------------------------------------------------------------


def _protocols(host: IHost, peer_id: ID) -> list[str]:
    """What identify said ``peer_id`` speaks (empty: not known yet)."""
    try:
        return list(host.get_peerstore().get_protocols(peer_id) or [])
    except Exception:  # the peerstore knows nothing of it yet
        return []


def _serves_kad(host: IHost, peer_id: ID) -> bool:
    return str(KAD_PROTOCOL_ID) in _protocols(host, peer_id)


def servers_only_routing(host: IHost, dht: KadDHT) -> None:
    """Keep DHT clients out of this node's routing table.

    R1: 0.8.1 adds every peer that *sends* a KAD request to the routing
    table (``add_peer(..., skip_server_mode_check=True)``: "they MUST
    support KAD server mode"), but clients send requests too. A client
    behind a NAT then sat in a seed's table, was handed out as a "closer
    peer", and every lookup through the seed waited on dials that could
    never succeed (a ``share`` took 21 s to print its link instead of
    ~1 s). Here a peer enters the table from an inbound request only when
    identify showed it serves KAD. Remove when: upstream checks the peer's
    protocols on that path.
    """
    original = dht.add_peer

    async def add_peer(peer_id: ID, *, skip_server_mode_check: bool = False) -> bool:
        if skip_server_mode_check and not _serves_kad(host, peer_id):
            return False
        return await original(peer_id, skip_server_mode_check=False)

    dht.add_peer = add_peer  # type: ignore[method-assign]


def prune_routing_table(host: IHost, dht: KadDHT) -> int:
    """Drop routing-table peers whose identify no longer lists KAD (they
    switched to client mode); returns how many."""
    table: Any = dht.routing_table
    removed = 0
    for peer in list(table.get_peer_ids()):
        known = _protocols(host, peer)
        if known and str(KAD_PROTOCOL_ID) not in known and table.remove_peer(peer):
            removed += 1
    return removed


async def set_dht_mode(host: IHost, dht: KadDHT, server: bool) -> bool:
    """Switch between DHT server and client mode; True if it changed.

    A node behind a NAT must not be a DHT server: nobody can dial it, and
    every lookup that meets it waits. ``switch_mode`` registers the
    library's unhardened handler on the way to server mode, so the hardened
    one is put back (P5); connected peers learn the change by an identify
    push, so they drop us from their tables (:func:`prune_routing_table`).
    """
    from libp2p.kad_dht.kad_dht import DHTMode

    want = DHTMode.SERVER if server else DHTMode.CLIENT
    if dht.mode == want:
        return False
    await dht.switch_mode(want)
    if server:
        harden_dht_server(host, dht)
    await push_identify(host)
    return True


async def push_identify(host: IHost) -> None:
    """Tell every connected peer our protocols and addresses now (0.8.1
    pushes only when listen addresses change, not after a mode switch or a
    new relay address)."""
    push: Any = getattr(host, "_push_identify_to_all_peers", None)
    if push is not None:
        try:
            await push()
        except Exception:
            logger.debug("identify push failed", exc_info=True)


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
