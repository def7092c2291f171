"""Rebuilding chunks nobody serves from erasure-coded columns (the planning
and verifying half of node/recovery.py, with the real scheduler)."""

from __future__ import annotations

import os

import pytest
from nacl.signing import SigningKey

from p2pshare.errors import IntegrityError
from p2pshare.format import block_id
from p2pshare.format.erasure import ErasureMap, Stripes, encode_parity
from p2pshare.node.recovery import Recovery
from p2pshare.protocol.scheduler import Scheduler

GEO = Stripes(3, 5, 7, 64, 30)  # stripes 0-2, 3-5, 6


class Sink:
    def __init__(self, chunks: list[bytes], ids: list[bytes]) -> None:
        self.chunks = chunks
        self.ids = ids
        self.kept: dict[int, bytes] = {}

    def has(self, i: int) -> bool:
        return i in self.kept

    def verify_write(self, i: int, data: bytes) -> bool:
        if block_id(data) != self.ids[i]:
            return False
        self.kept[i] = data
        return True

    def cipher(self, i: int) -> bytes:
        return self.kept[i]


def setup(
    wanted: set[int] | None = None,
) -> tuple[Recovery, Sink, Scheduler, list[bytes], dict[tuple[int, int], bytes]]:
    chunks = [os.urandom(GEO.cipher_len(i)) for i in range(GEO.count)]
    ids = [block_id(c) for c in chunks]
    parity: dict[tuple[int, int], bytes] = {}
    pids = []
    for s in range(GEO.stripes):
        for c, p in enumerate(
            encode_parity(GEO, s, [chunks[i] for i in GEO.chunks(s)])
        ):
            parity[(s, GEO.k + c)] = p
            pids.append(block_id(p))
    emap = ErasureMap.make(SigningKey(bytes(32)), b"r" * 32, GEO, pids)
    sink = Sink(chunks, ids)
    want = set(range(GEO.count)) if wanted is None else wanted
    rec = Recovery(emap, GEO, sink, ids.__getitem__, want)
    sched = Scheduler(sorted(want), 64)
    return rec, sink, sched, chunks, parity


def test_nothing_is_asked_while_every_chunk_has_a_provider() -> None:
    rec, _sink, sched, _chunks, _parity = setup()
    for col in range(5):
        sched.add_peer(f"c{col}", rec.column_units(col))
    rec.plan(sched, {f"c{c}": c for c in range(5)})
    assert sched.missing_units() == set(range(7))
    assert rec.shortfall() is None


def test_two_lost_columns_are_rebuilt_from_parity() -> None:
    rec, sink, sched, chunks, parity = setup()
    for col in (2, 3, 4):  # the seeds of columns 0 and 1 are gone
        sched.add_peer(f"c{col}", rec.column_units(col))
    rec.plan(sched, {f"c{c}": c for c in (2, 3, 4)})
    asked = sched.missing_units() - set(range(7))
    # stripes 0 and 1 lost two chunks each: both their parity units are
    # asked for; stripe 2 (chunk 6 alone, zero-padded) lost one: one unit
    pairs = {rec.split(u) for u in asked}
    assert {p for p in pairs if p[0] < 2} == {(s, c) for s in (0, 1) for c in (3, 4)}
    assert len([p for p in pairs if p[0] == 2]) == 1
    for i in GEO.column_chunks(2):
        assert rec.verify_write(i, chunks[i])
    for u in sorted(asked):
        assert rec.verify_write(u, parity[rec.split(u)])
    rebuilt, closed = rec.take()
    assert sorted(rebuilt) == [0, 1, 3, 4, 6]
    assert sorted(sink.kept) == list(range(7))
    assert all(sink.kept[i] == chunks[i] for i in range(7))
    assert set(closed) == asked


def test_a_bad_parity_fragment_is_refused_and_nothing_is_written() -> None:
    rec, sink, sched, chunks, parity = setup()
    for col in (2, 3, 4):
        sched.add_peer(f"c{col}", rec.column_units(col))
    rec.plan(sched, {f"c{c}": c for c in (2, 3, 4)})
    bad = bytearray(parity[(0, 3)])
    bad[0] ^= 1
    assert not rec.verify_write(rec.unit(0, 3), bytes(bad))
    assert rec.verify_write(2, chunks[2])
    assert rec.verify_write(rec.unit(0, 4), parity[(0, 4)])
    assert not rec.has(rec.unit(0, 3))  # still wanted: another copy will do
    assert sorted(sink.kept) == [2]


def test_too_few_columns_is_a_shortfall_naming_the_numbers() -> None:
    rec, _sink, sched, _chunks, _parity = setup()
    for col in (3, 4):
        sched.add_peer(f"c{col}", rec.column_units(col))
    rec.plan(sched, {"c3": 3, "c4": 4})
    assert rec.shortfall() == (2, 3)  # stripes 0 and 1: columns 2, 3, 4 only
    # no parity is asked for them in vain; the last stripe (chunk 6 and two
    # known zero chunks) can still be rebuilt from one parity unit
    extra = sched.missing_units() - set(range(7))
    assert {rec.split(u)[0] for u in extra} == {2} and len(extra) == 1


def test_a_seed_keeping_one_column_fetches_helpers_but_keeps_its_own() -> None:
    rec, sink, sched, chunks, parity = setup(wanted=set(GEO.column_chunks(0)))
    for col in (1, 2, 3):  # column 0's old seed is gone
        sched.add_peer(f"c{col}", rec.column_units(col))
    rec.plan(sched, {f"c{c}": c for c in (1, 2, 3)})
    asked = sched.missing_units()
    helpers = {u for u in asked if u < 7 and u not in rec.wanted}
    assert helpers == {1, 2, 4, 5}  # stripe 2 is chunk 6 alone
    for u in sorted(asked):
        data = chunks[u] if u < 7 else parity[rec.split(u)]
        if u not in rec.wanted:
            assert rec.verify_write(u, data)
    assert sorted(sink.kept) == [0, 3, 6]  # helpers were never written
    rebuilt, closed = rec.take()
    assert sorted(rebuilt) == [0, 3, 6]
    assert helpers <= set(closed)


def test_a_rebuilt_chunk_that_fails_its_id_is_an_integrity_error() -> None:
    rec, sink, sched, chunks, parity = setup()
    for col in (2, 3, 4):
        sched.add_peer(f"c{col}", rec.column_units(col))
    rec.plan(sched, {f"c{c}": c for c in (2, 3, 4)})
    sink.ids[0] = b"\x00" * 32  # as if the map disagreed with the chunk ids
    assert rec.verify_write(rec.unit(0, 3), parity[(0, 3)])
    assert rec.verify_write(rec.unit(0, 4), parity[(0, 4)])
    with pytest.raises(IntegrityError, match="bad erasure map"):
        rec.verify_write(2, chunks[2])


def test_a_chunk_written_before_the_map_arrived_counts_for_decoding() -> None:
    """A download writes chunks before it has the erasure map; its sink may
    record them only at the next checkpoint (``has`` is late). The Fill's
    own record of what it wrote tells recovery they are there: without it,
    a stripe waited for a chunk already written and the download stalled."""
    chunks = [os.urandom(GEO.cipher_len(i)) for i in range(GEO.count)]
    ids = [block_id(c) for c in chunks]
    pids, parity = [], {}
    for s in range(GEO.stripes):
        for c, p in enumerate(
            encode_parity(GEO, s, [chunks[i] for i in GEO.chunks(s)])
        ):
            parity[(s, GEO.k + c)] = p
            pids.append(block_id(p))
    emap = ErasureMap.make(SigningKey(bytes(32)), b"r" * 32, GEO, pids)

    class LateSink(Sink):
        def has(self, i: int) -> bool:
            return False  # the bitmap is not checkpointed yet

    sink = LateSink(chunks, ids)
    sink.kept[2] = chunks[2]  # written through the sink, before the map
    written = {2}
    rec = Recovery(emap, GEO, sink, ids.__getitem__, set(range(7)), written)
    sched = Scheduler([0, 1, 3, 4, 5, 6], 64)
    for col in (2, 3, 4):
        sched.add_peer(f"c{col}", rec.column_units(col))
    rec.plan(sched, {f"c{c}": c for c in (2, 3, 4)})
    assert rec.verify_write(rec.unit(0, 3), parity[(0, 3)])
    assert rec.verify_write(rec.unit(0, 4), parity[(0, 4)])
    rebuilt, _closed = rec.take()
    assert sorted(rebuilt) == [0, 1]
    assert sink.kept[0] == chunks[0] and sink.kept[1] == chunks[1]
