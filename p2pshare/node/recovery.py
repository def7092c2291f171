"""Rebuilding chunks nobody serves from erasure-coded fragments, inside a Fill.

Theory of operation
-------------------
A share kept erasure coded ``K/N`` (``format/erasure.py``) sits on seeds
that each keep one **column**: the seeds of columns ``0..K-1`` hold every
K-th chunk (ordinary chunks, served like any partial provider's), those of
columns ``K..N-1`` hold parity. A :class:`~p2pshare.node.fill.Fill`
downloads chunks from whoever has them; this module steps in only for the
chunks **no live provider holds** (orphans: their seed is gone, banned, or
said it lacks them).

Units. The Fill's scheduler works on *units*: ``0..count-1`` are chunks,
and ``count + s*(N-K) + (c-K)`` is parity column *c* of stripe *s*, which
only the session keeping column *c* holds and is asked for with
``want(kind="frag", index=s)``.

Planning (:meth:`Recovery.plan`, whenever the providers changed): for a
stripe with orphans, the columns still at hand are its chunks held here
(or by a live provider) plus the parity columns of live sessions. With at
least K of them, the stripe needs one parity fragment per orphan: those
units are added to the scheduler (spread over the parity columns), and the
stripe's other chunks are fetched as usual. With fewer, the stripe cannot
be rebuilt now; :meth:`Recovery.shortfall` names it in the download's
error ("not enough fragments (2 of 3 needed)").

Verifying. A parity fragment is checked against its id in the signed
erasure map (fetched from any column session, checked against the
envelope's access key) before it is kept; once a stripe has K fragments
they are decoded in the writer thread and each rebuilt chunk goes through
the sink's own ``verify_write``, i.e. checked against its chunk id like a
downloaded one. Nothing unverified is written. Fragments of a stripe are
held in memory only until it decodes (at most ``MAX_INFLIGHT`` units are
requested at once, so few stripes are open at a time).

Cost: with every column up, no parity unit is ever requested: a getter
takes whole chunks from the systematic columns (and the owner), which is
the cheapest mix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from p2pshare.errors import BlockMissing, IntegrityError
from p2pshare.format import block_id
from p2pshare.format.erasure import ErasureMap, Stripes, decode_stripe
from p2pshare.protocol.scheduler import Scheduler

__all__ = ["Recovery", "RecoverySink"]

log = logging.getLogger(__name__)


class RecoverySink(Protocol):
    """What recovery needs of a Fill's sink (``fill.Sink`` plus ``cipher``)."""

    def has(self, i: int) -> bool: ...

    def verify_write(self, i: int, data: bytes) -> bool: ...

    def cipher(self, i: int) -> bytes:
        """Chunk ``i``'s ciphertext, for a chunk this sink holds."""
        ...


@dataclass
class _Stripe:
    parity: set[int] = field(default_factory=set)  # parity columns asked for
    helpers: set[int] = field(default_factory=set)  # chunks asked for, not kept
    frags: dict[int, bytes] = field(default_factory=dict)  # column -> bytes


class Recovery:
    """Erasure recovery state of one Fill (see the module docstring)."""

    def __init__(
        self,
        emap: ErasureMap,
        geo: Stripes,
        sink: RecoverySink,
        chunk_id: Callable[[int], bytes],
        wanted: set[int],
        written: set[int] | None = None,
    ) -> None:
        self.emap = emap
        self.geo = geo
        self.sink = sink
        self.chunk_id = chunk_id
        self.wanted = wanted  # chunks the sink keeps; others only help decode
        self.count = geo.count
        self.open: dict[int, _Stripe] = {}
        self.short: dict[int, int] = {}  # stripe -> columns at hand (< k)
        self.recovered: list[int] = []  # chunks rebuilt since the last take
        self.closed: list[int] = []  # units no longer needed (decoded stripes)
        self.dirty = True
        self.kept: set[int] = set()  # wanted chunks written through us
        # the Fill's own record of what it wrote, also before we existed (a
        # sink may record a chunk only at its next checkpoint)
        self.written = written if written is not None else set()

    def _holds(self, i: int) -> bool:
        """Chunk ``i`` is in the sink."""
        return i in self.kept or i in self.written or self.sink.has(i)

    # -- units -------------------------------------------------------------------
    def unit(self, s: int, column: int) -> int:
        return self.count + s * self.geo.parity + (column - self.geo.k)

    def is_parity(self, u: int) -> bool:
        return u >= self.count

    def split(self, u: int) -> tuple[int, int]:
        """Parity unit → (stripe, column)."""
        s, c = divmod(u - self.count, self.geo.parity)
        return s, self.geo.k + c

    def column_units(self, column: int) -> frozenset[int]:
        """What a session keeping ``column`` holds, in units."""
        if column < self.geo.k:
            return frozenset(self.geo.column_chunks(column))
        return frozenset(self.unit(s, column) for s in range(self.geo.stripes))

    # -- planning (trio thread) --------------------------------------------------
    def plan(self, sched: Scheduler, columns: dict[str, int]) -> None:
        """Ask for parity where chunks have no live holder (module docstring).

        ``columns``: session name → the column it keeps.
        """
        if not self.dirty:
            return
        self.dirty = False
        k = self.geo.k
        live = sched.live_peers
        holders = [sched.peer(p) for p in live]

        def held(i: int) -> bool:
            return self._holds(i) or any(st.holds(i) for st in holders)

        live_parity = sorted({c for n, c in columns.items() if n in live and c >= k})
        self.short.clear()
        stripes = {
            self.geo.stripe_of(u) for u in sched.missing_units() if u < self.count
        }
        for s in sorted(stripes):
            chunks = self.geo.chunks(s)
            st = self.open.get(s)
            got = set(st.frags) if st is not None else set()
            orphans = [i for i in chunks if i % k not in got and not held(i)]
            if not any(i in self.wanted for i in orphans) and st is None:
                continue  # every chunk it needs comes as a chunk
            if not orphans:
                continue
            log.debug(
                "stripe %d: orphans %s, got %s, asked %s, live parity %s, live %s",
                s,
                orphans,
                sorted(got),
                sorted(st.parity) if st is not None else [],
                live_parity,
                live,
            )
            asked = st.parity if st is not None else set()
            parity = {c for c in got if c >= k} | {c for c in asked if c in live_parity}
            spare = [c for c in live_parity if c not in parity and c not in got]
            need = len(orphans) - len(parity)
            if need > len(spare):
                self.short[s] = k - len(orphans) + len(parity) + len(spare)
                continue
            if need <= 0:
                continue
            st = self.open.setdefault(s, _Stripe())
            start = s % len(spare)
            picked = (spare[start:] + spare[:start])[:need]
            st.parity.update(picked)
            # the stripe's other chunks are fetched too, even those the sink
            # does not keep (a seed keeping one column): they help decode
            helpers = [
                i
                for i in chunks
                if i not in self.wanted
                and i % k not in got
                and i not in st.helpers
                and held(i)
            ]
            st.helpers.update(helpers)
            sched.add_missing([self.unit(s, c) for c in picked] + helpers)
            log.info(
                "stripe %d: %d chunk(s) without a provider, rebuilding from"
                " parity column(s) %s",
                s,
                len(orphans),
                ",".join(map(str, picked)),
            )

    def shortfall(self) -> tuple[int, int] | None:
        """(columns at hand, k) of the worst stripe that cannot be rebuilt."""
        if not self.short:
            return None
        return min(self.short.values()), self.geo.k

    # -- arriving units (the writer's worker thread) -----------------------------
    def has(self, u: int) -> bool:
        if self.is_parity(u):
            s, c = self.split(u)
            st = self.open.get(s)
            return st is None or c in st.frags
        if u in self.wanted:
            return self._holds(u)
        st = self.open.get(self.geo.stripe_of(u))
        return st is None or u % self.geo.k in st.frags

    def verify_write(self, u: int, data: bytes) -> bool:
        """Check and keep one unit; decode its stripe once it can be."""
        if self.is_parity(u):
            s, c = self.split(u)
            if block_id(data) != self.emap.parity_id(s, c):
                return False
            st = self.open.get(s)
            if st is not None:
                st.frags[c] = data
                self._try_decode(s)
            return True
        s = self.geo.stripe_of(u)
        if u not in self.wanted:  # a helper: verified, kept for decoding only
            if block_id(data) != self.chunk_id(u):
                return False
            st = self.open.get(s)
            if st is not None:
                st.frags[u % self.geo.k] = data
                self._try_decode(s)
            return True
        if not self.sink.verify_write(u, data):
            return False
        self.kept.add(u)
        if s in self.open:
            self._try_decode(s)
        return True

    def _try_decode(self, s: int) -> None:
        st = self.open[s]
        geo = self.geo
        size = geo.frag_len(s)
        frags = dict(st.frags)
        for i in geo.chunks(s):
            if i % geo.k not in frags and i in self.wanted and self._holds(i):
                try:
                    frags[i % geo.k] = self.sink.cipher(i)
                except BlockMissing:  # a streaming reader took it already
                    log.warning("stripe %d: chunk %d is gone, cannot decode", s, i)
                    return
        if len(frags) + geo.k - len(geo.chunks(s)) < geo.k:
            return
        padded = {c: d + bytes(size - len(d)) for c, d in frags.items()}
        chunks = decode_stripe(geo, s, padded)
        for i, data in zip(geo.chunks(s), chunks, strict=True):
            if i in self.wanted and not self._holds(i):
                if not self.sink.verify_write(i, data):
                    raise IntegrityError(
                        f"stripe {s}: chunk {i} rebuilt from verified fragments"
                        " does not match its id (a bad erasure map)"
                    )
                self.kept.add(i)
                self.recovered.append(i)
        del self.open[s]
        self.closed += [self.unit(s, c) for c in st.parity]
        self.closed += sorted(st.helpers)
        log.info("stripe %d: rebuilt from %d fragments", s, geo.k)

    def take(self) -> tuple[list[int], list[int]]:
        """(chunks rebuilt, units no longer needed) since the last call."""
        out = (self.recovered, self.closed)
        self.recovered, self.closed = [], []
        return out
