"""Which chunk to ask which peer for: the multi-source download policy.

Sans-IO: no sockets, no clock (``now`` is an argument), no randomness. The
node's fetch driver asks :meth:`Scheduler.assign` what to request from a
peer whenever that peer has room, and reports every answer back.

Theory of operation
-------------------
* **Rarest first.** A peer is only asked for chunks it has (its ``have``
  bitmap, or all). Among the next ``SCAN_WINDOW`` candidates, chunks held by
  the fewest live peers go first (ties: lowest index, which keeps disk
  writes mostly sequential), so the swarm loses no chunk when a peer
  leaves. The window keeps each decision O(window) for any file size.
* **Adaptive pipeline.** Each peer gets ``depth`` requests in flight. The
  depth follows its measured throughput (an exponential moving average of
  bytes per second over completed requests): enough to cover
  ``TARGET_INFLIGHT_S`` of transfer, clamped to ``MIN_DEPTH..MAX_DEPTH``. A
  fast peer gets more of the file; a slow one is not flooded.
* **Global budget.** At most ``max_inflight`` requests across all peers, so
  memory stays bounded (chunks in flight are the only buffers).
* **Stalls.** A request unanswered for ``stall_s`` (or for 4x the peer's
  typical latency, if longer) is given up on that peer: :meth:`stalled`
  returns it so the driver can cancel it, and the chunk becomes assignable
  to another peer. A peer that stalls repeatedly has its depth cut to 1.
* **Endgame.** When every missing chunk is already in flight, an idle peer
  may duplicate a request (at most ``ENDGAME_COPIES`` copies of a chunk);
  the first good answer wins and the driver cancels the rest.
* **Bans.** A peer that sends a chunk failing verification is banned: its
  requests are returned for reassignment and it is never asked again.
* **Horizon** (streaming reads, ``cat``): with :attr:`Scheduler.horizon`
  set, only chunks below it are assigned, in index order; the reader moves
  it up as it consumes chunks, so what is fetched ahead of the reader (in
  flight or waiting to be read) stays within a bounded window.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["PeerStats", "Scheduler"]

MIN_DEPTH = 2
MAX_DEPTH = 32
TARGET_INFLIGHT_S = 0.5  # keep about half a second of data in flight per peer
EWMA_ALPHA = 0.3
ENDGAME_COPIES = 2
STALL_LIMIT = 3  # stalls after which a peer is kept at depth 1
SCAN_WINDOW = 256  # candidates examined per assignment (rarest among them)


@dataclass(slots=True)
class PeerStats:
    """What the scheduler knows about one provider."""

    have: frozenset[int] | None  # None: has every chunk
    rate_bps: float = 0.0
    latency_s: float = 0.0
    inflight: dict[int, float] = field(default_factory=dict)  # index -> sent at
    stalls: int = 0
    received: int = 0
    banned: bool = False

    def holds(self, index: int) -> bool:
        return self.have is None or index in self.have


class Scheduler:
    """Assignment state for one share being downloaded."""

    def __init__(
        self,
        missing: list[int],
        chunk_bytes: int,
        *,
        max_inflight: int = 48,
        stall_s: float = 15.0,
    ) -> None:
        self.chunk_bytes = max(1, chunk_bytes)
        self.max_inflight = max_inflight
        self.stall_s = stall_s
        self._missing: set[int] = set(missing)
        self._order = sorted(missing)
        self._peers: dict[str, PeerStats] = {}
        self._copies: dict[int, int] = {}  # index -> requests in flight
        self._retry: set[int] = set()  # released chunks, before the cursor
        self._cursor = 0
        self.horizon: int | None = None  # assign only below this (streaming)

    # -- peers ---------------------------------------------------------------
    def add_peer(self, peer: str, have: frozenset[int] | None) -> None:
        self._peers[peer] = PeerStats(have=have)

    def remove_peer(self, peer: str) -> list[int]:
        """Forget a peer; returns the chunks it had in flight."""
        stats = self._peers.pop(peer, None)
        if stats is None:
            return []
        return self._drop_inflight(stats)

    def ban(self, peer: str) -> list[int]:
        """Never ask ``peer`` again; returns the chunks it had in flight."""
        stats = self._peers.get(peer)
        if stats is None:
            return []
        stats.banned = True
        return self._drop_inflight(stats)

    def has_peer(self, peer: str) -> bool:
        return peer in self._peers

    def peer(self, peer: str) -> PeerStats:
        return self._peers[peer]

    @property
    def live_peers(self) -> list[str]:
        return [p for p, s in self._peers.items() if not s.banned]

    def depth(self, peer: str) -> int:
        stats = self._peers[peer]
        if stats.stalls >= STALL_LIMIT:
            return 1
        if stats.rate_bps <= 0:
            return MIN_DEPTH
        want = stats.rate_bps * TARGET_INFLIGHT_S / self.chunk_bytes
        return max(MIN_DEPTH, min(MAX_DEPTH, round(want) + 1))

    def set_have(self, peer: str, have: frozenset[int] | None) -> None:
        """What ``peer`` holds changed (an erasure map arrived)."""
        stats = self._peers.get(peer)
        if stats is not None:
            stats.have = have

    # -- wanted units beyond the first list (erasure recovery) -------------------
    def add_missing(self, units: list[int]) -> None:
        """Also fetch ``units`` (assignable at once, before the scan)."""
        fresh = [u for u in units if u not in self._missing]
        self._missing.update(fresh)
        self._retry.update(fresh)

    def drop_missing(self, units: list[int]) -> list[tuple[str, int]]:
        """No longer fetch ``units``; returns the requests in flight for
        them, for the driver to cancel."""
        out = []
        for u in units:
            self._missing.discard(u)
            self._retry.discard(u)
            for name, stats in self._peers.items():
                if stats.inflight.pop(u, None) is not None:
                    out.append((name, u))
            self._copies.pop(u, None)
        return out

    def missing_units(self) -> set[int]:
        return self._missing

    # -- progress ----------------------------------------------------------------
    @property
    def done(self) -> bool:
        return not self._missing

    @property
    def missing_count(self) -> int:
        return len(self._missing)

    def total_inflight(self) -> int:
        return sum(self._copies.values())

    def can_progress(self) -> bool:
        """Whether a live peer holds a missing chunk or a request is in
        flight: False means waiting on these peers alone can never finish
        the download (they left, were banned, or hold nothing we need)."""
        if self._copies:
            return True
        live = [s for s in self._peers.values() if not s.banned]
        if any(s.have is None for s in live):
            return bool(self._missing) and bool(live)
        return any(s.holds(i) for s in live for i in self._missing)

    def useful_peers(self) -> list[str]:
        """Live peers that hold a chunk still missing (the ones a stalled
        download is waiting on)."""
        return [
            name
            for name, s in self._peers.items()
            if not s.banned and (s.inflight or any(s.holds(i) for i in self._missing))
        ]

    def assign(self, peer: str, now: float) -> list[int]:
        """Chunks to request from ``peer`` now (possibly none)."""
        stats = self._peers.get(peer)
        if stats is None or stats.banned:
            return []
        room = min(
            self.depth(peer) - len(stats.inflight),
            self.max_inflight - self.total_inflight(),
        )
        if room <= 0:
            return []
        fresh = self._fresh(stats, SCAN_WINDOW)
        if fresh and self.horizon is not None:
            picked = fresh[:room]  # streaming: index order, not rarest first
        elif self.horizon is not None and self._beyond(self.horizon):
            # the window is full, not the download: no endgame duplicates
            # (everything beyond the horizon is still to come)
            picked = []
        elif fresh:
            rarity = self._rarity(fresh)
            fresh.sort(key=lambda i: (rarity.get(i, 0), i))
            picked = fresh[:room]
        else:
            # Endgame: duplicate what others have in flight, least-copied first.
            dup = [
                i
                for i in sorted(self._copies)
                if i not in stats.inflight
                and self._copies[i] < ENDGAME_COPIES
                and stats.holds(i)
            ]
            dup.sort(key=lambda i: (self._copies.get(i, 0), i))
            picked = dup[:room]
        for i in picked:
            stats.inflight[i] = now
            self._copies[i] = self._copies.get(i, 0) + 1
            self._retry.discard(i)
        return picked

    def _fresh(self, stats: PeerStats, limit: int) -> list[int]:
        """Up to ``limit`` missing, not-in-flight chunks ``stats`` holds.

        Released chunks (``_retry``) come first, then a scan from a cursor
        below which every chunk is done, in flight or in ``_retry``: each
        call costs O(limit), not O(chunks), so a 100 GiB file schedules as
        cheaply as a small one.
        """
        horizon = self.horizon
        out = [
            i
            for i in sorted(self._retry)
            if i in self._missing
            and i not in self._copies
            and stats.holds(i)
            and (horizon is None or i < horizon)
        ][:limit]
        order, j = self._order, self._cursor
        while j < len(order) and (
            order[j] not in self._missing or order[j] in self._copies
        ):
            j += 1  # settled prefix: done or in flight
        self._cursor = j
        scanned = 0
        while j < len(order) and len(out) < limit and scanned < 8 * limit:
            i = order[j]
            if horizon is not None and i >= horizon:
                break  # ``order`` is sorted: nothing further is in the window
            if i in self._missing and i not in self._copies and i not in self._retry:
                scanned += 1
                if stats.holds(i):
                    out.append(i)
            j += 1
        return out

    def _beyond(self, horizon: int) -> bool:
        """Chunks at or above ``horizon`` are still to be fetched."""
        return bisect.bisect_left(self._order, horizon) < len(self._order)

    def _rarity(self, candidates: list[int]) -> dict[int, int]:
        live = [s for s in self._peers.values() if not s.banned]
        if all(s.have is None for s in live):
            return {}  # everyone has everything: index order
        return {i: sum(1 for s in live if s.holds(i)) for i in candidates}

    def completed(self, peer: str, index: int, nbytes: int, now: float) -> list[str]:
        """A verified chunk arrived from ``peer``.

        Returns the other peers that still have the same chunk in flight
        (endgame duplicates): the driver cancels those requests.
        """
        self._missing.discard(index)
        stats = self._peers.get(peer)
        if stats is not None and index in stats.inflight:
            elapsed = max(1e-6, now - stats.inflight.pop(index))
            rate = nbytes * max(1, len(stats.inflight) + 1) / elapsed
            stats.rate_bps = (
                rate
                if stats.rate_bps <= 0
                else (1 - EWMA_ALPHA) * stats.rate_bps + EWMA_ALPHA * rate
            )
            stats.latency_s = (
                elapsed
                if stats.latency_s <= 0
                else (1 - EWMA_ALPHA) * stats.latency_s + EWMA_ALPHA * elapsed
            )
            stats.received += 1
            self._dec(index)
        others = []
        for name, other in self._peers.items():
            if name != peer and index in other.inflight:
                del other.inflight[index]
                self._dec(index)
                others.append(name)
        return others

    def failed(self, peer: str, index: int) -> None:
        """``peer`` does not have ``index`` after all (or the request was
        cancelled): make it assignable again and stop asking that peer."""
        stats = self._peers.get(peer)
        if stats is not None and index in stats.inflight:
            del stats.inflight[index]
            self._dec(index)
            if stats.have is None:
                stats.have = frozenset(self._missing) - {index}
            else:
                stats.have = stats.have - {index}

    def stalled(self, now: float) -> list[tuple[str, int]]:
        """Requests that waited too long; they are released for others."""
        out = []
        for name, stats in self._peers.items():
            limit = max(self.stall_s, 4 * stats.latency_s)
            for index, sent in list(stats.inflight.items()):
                if now - sent > limit:
                    del stats.inflight[index]
                    self._dec(index)
                    stats.stalls += 1
                    out.append((name, index))
        return out

    def next_deadline(self) -> float | None:
        """When the next stall check is due, or None with nothing in flight."""
        times = [
            sent + max(self.stall_s, 4 * s.latency_s)
            for s in self._peers.values()
            for sent in s.inflight.values()
        ]
        return min(times) if times else None

    def _drop_inflight(self, stats: PeerStats) -> list[int]:
        dropped = list(stats.inflight)
        for i in dropped:
            self._dec(i)
        stats.inflight.clear()
        return dropped

    def _dec(self, index: int) -> None:
        n = self._copies.get(index, 0) - 1
        if n > 0:
            self._copies[index] = n
        else:
            self._copies.pop(index, None)
            if index in self._missing:
                self._retry.add(index)  # released: assignable again
