"""Bounded inbound streams (S1): a peer cannot make a node allocate without
limit by opening streams.

S1 (measured against 0.8.1; not in LIBP2P-NOTES): every Yamux SYN becomes a
``YamuxStream``, a ``NetStream`` and a task that waits up to 30 s for
multistream-select. Nothing caps them per connection: 40 000 raw SYNs on
one connection, no protocol negotiated, cost a node +256 MB RSS (204 MB
still held 35 s later) and made a legitimate download take 20 times
longer. The resource manager's stream limit (10 000) counts every peer
together, so one peer can use all of it.

:func:`cap_inbound_streams` wraps ``SwarmConn._handle_muxed_stream``, the
first code that sees an accepted stream, before any negotiation: beyond
``MAX_INBOUND_PER_CONN`` streams being handled on one connection, or
``MAX_INBOUND_PER_PEER`` on all of a peer's connections to this host, the
new stream is reset at once (one 12-byte frame) and forgotten. The node's
own protocols need far fewer (at most 4 transfer streams per peer, one pin
request at a time, 12 KAD streams), so honest peers never meet the cap.
Negotiation itself is bounded by :data:`NEGOTIATE_TIMEOUT_S` (the host's
``negotiate_timeout``), so a stream that never names a protocol holds its
slot for at most that long.

Remove when: py-libp2p caps inbound streams per connection and per peer
before negotiation (its resource manager gains per-peer stream scopes that
reset, not queue).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import trio
from libp2p.network.connection.swarm_connection import SwarmConn

__all__ = [
    "MAX_INBOUND_PER_CONN",
    "MAX_INBOUND_PER_PEER",
    "NEGOTIATE_TIMEOUT_S",
    "InboundStats",
    "cap_inbound_streams",
    "inbound_stats",
]

logger = logging.getLogger(__name__)

MAX_INBOUND_PER_CONN: Final = 64
MAX_INBOUND_PER_PEER: Final = 128
NEGOTIATE_TIMEOUT_S: Final = 10
_RESET_TIMEOUT_S: Final = 2.0
_ATTR: Final = "_p2pshare_inbound"


@dataclass
class InboundStats:
    refused: int = 0  # streams reset over a cap, since the process started


inbound_stats = InboundStats()
# streams being handled, per (host's swarm, peer): peers are told apart per
# host, so several nodes in one process (the tests) keep their own counts
_per_peer: Counter[tuple[int, str]] = Counter()
_installed = False


def cap_inbound_streams() -> None:
    """Install the caps (idempotent; applies to every host in the process)."""
    global _installed
    if _installed:
        return
    original = SwarmConn._handle_muxed_stream

    async def handle_capped(self: SwarmConn, muxed_stream: Any) -> None:
        peer = (id(self.swarm), str(self.muxed_conn.peer_id))
        mine: int = getattr(self, _ATTR, 0)
        if mine >= MAX_INBOUND_PER_CONN or _per_peer[peer] >= MAX_INBOUND_PER_PEER:
            inbound_stats.refused += 1
            if inbound_stats.refused % 1000 == 1:
                logger.warning(
                    "peer …%s: too many inbound streams, resetting new ones"
                    " (%d reset so far)",
                    peer[1][-8:],
                    inbound_stats.refused,
                )
            with trio.move_on_after(_RESET_TIMEOUT_S):
                try:
                    await muxed_stream.reset()
                except Exception:  # a dead connection: nothing left to reset
                    logger.debug("reset of a refused stream failed", exc_info=True)
            return
        setattr(self, _ATTR, mine + 1)
        _per_peer[peer] += 1
        try:
            await original(self, muxed_stream)
        finally:
            setattr(self, _ATTR, getattr(self, _ATTR) - 1)
            _per_peer[peer] -= 1
            if _per_peer[peer] <= 0:
                del _per_peer[peer]

    SwarmConn._handle_muxed_stream = handle_capped  # type: ignore[method-assign]
    _installed = True
