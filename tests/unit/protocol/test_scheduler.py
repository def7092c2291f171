from __future__ import annotations

from p2pshare.protocol.scheduler import MAX_DEPTH, MIN_DEPTH, STALL_LIMIT, Scheduler

MB = 1 << 20


def test_single_peer_gets_everything_in_order() -> None:
    s = Scheduler(list(range(10)), MB)
    s.add_peer("a", None)
    got: list[int] = []
    now = 0.0
    while not s.done:
        batch = s.assign("a", now)
        assert batch, "peer with room and missing chunks must get work"
        for i in batch:
            now += 0.01
            assert s.completed("a", i, MB, now) == []
            got.append(i)
    assert got == list(range(10))
    assert s.total_inflight() == 0


def test_rarest_first_and_only_what_a_peer_has() -> None:
    s = Scheduler(list(range(6)), MB)
    s.add_peer("full", None)
    s.add_peer("part", frozenset({0, 1, 2, 5}))
    assert set(s.assign("part", 0)) <= {0, 1, 2, 5}
    # chunks 3 and 4 are held only by "full": rarer, so they go first
    assert s.assign("full", 0)[:2] == [3, 4]


def test_depth_adapts_to_throughput_and_global_budget() -> None:
    s = Scheduler(list(range(1000)), MB, max_inflight=40)
    s.add_peer("fast", None)
    s.add_peer("slow", None)
    assert s.depth("fast") == MIN_DEPTH
    now = 0.0
    for _ in range(20):
        for i in s.assign("fast", now):
            s.completed("fast", i, MB, now + 0.005)  # ~200+ MB/s
        for i in s.assign("slow", now):
            s.completed("slow", i, MB, now + 1.0)  # ~1-2 MB/s
        now += 1.0
    assert s.depth("fast") == MAX_DEPTH
    assert s.depth("slow") <= 3
    assert len(s.assign("fast", now)) <= 40
    assert s.total_inflight() <= 40


def test_stalled_requests_move_to_another_peer() -> None:
    s = Scheduler([0, 1], MB, stall_s=10)
    s.add_peer("a", None)
    s.add_peer("b", None)
    assert s.assign("a", 0) == [0, 1]
    assert s.assign("b", 0) == [0, 1]  # endgame duplicates
    assert s.next_deadline() == 10
    assert sorted(s.stalled(11)) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert s.assign("b", 11) == [0, 1]
    s.completed("b", 0, MB, 12)
    s.completed("b", 1, MB, 12)
    assert s.done


def test_repeated_stalls_cut_depth_to_one() -> None:
    s = Scheduler(list(range(100)), MB, stall_s=1)
    s.add_peer("a", None)
    now = 0.0
    for _ in range(STALL_LIMIT):
        s.assign("a", now)
        now += 2
        assert s.stalled(now)
    assert s.depth("a") == 1
    assert len(s.assign("a", now)) == 1


def test_endgame_duplicate_and_cancel_list() -> None:
    s = Scheduler([7], MB)
    s.add_peer("a", None)
    s.add_peer("b", None)
    assert s.assign("a", 0) == [7]
    assert s.assign("b", 0) == [7]
    assert s.completed("b", 7, MB, 1) == ["a"]
    assert s.done and s.total_inflight() == 0


def test_ban_releases_chunks_and_never_asks_again() -> None:
    s = Scheduler([0, 1, 2], MB)
    s.add_peer("liar", None)
    s.add_peer("good", frozenset({0, 1, 2}))
    assert s.assign("liar", 0) == [0, 1]
    assert sorted(s.ban("liar")) == [0, 1]
    assert s.assign("liar", 0) == []
    assert s.assign("good", 0) == [0, 1]
    assert s.live_peers == ["good"]


def test_missing_answer_stops_asking_that_peer_for_it() -> None:
    s = Scheduler([0, 1], MB)
    s.add_peer("a", None)
    s.add_peer("b", None)
    assert s.assign("a", 0) == [0, 1]
    s.failed("a", 0)
    assert 0 not in s.assign("a", 0)
    assert s.assign("b", 0)[0] == 0


def test_large_file_assignment_is_cheap() -> None:
    n = 200_000
    s = Scheduler(list(range(n)), MB, max_inflight=64)
    s.add_peer("a", None)
    now = 0.0
    done = 0
    while done < 5000:
        for i in s.assign("a", now):
            s.completed("a", i, MB, now + 0.001)
            done += 1
        now += 0.01
    assert s.missing_count == n - done


def test_can_progress_only_while_a_live_peer_can_help() -> None:
    from p2pshare.protocol.scheduler import Scheduler as S

    sched = S([0, 1, 2], 1 << 20)
    assert not sched.can_progress()  # nobody yet
    sched.add_peer("partial", frozenset({0}))
    assert sched.can_progress()
    sched.failed("partial", 0)  # not actually in flight: no change
    assert sched.can_progress()
    assert sched.assign("partial", 0.0) == [0]
    sched.completed("partial", 0, 1 << 20, 1.0)
    assert not sched.can_progress()  # it holds nothing we still miss
    sched.add_peer("full", None)
    assert sched.can_progress()
    sched.ban("full")
    assert not sched.can_progress()
    sched.add_peer("other", frozenset({2}))
    assert sched.assign("other", 2.0) == [2]
    assert sched.can_progress()  # a request in flight
    sched.remove_peer("other")
    assert not sched.can_progress()


def test_useful_peers_are_the_ones_a_stalled_download_waits_on() -> None:
    from p2pshare.protocol.scheduler import Scheduler as S

    sched = S([0, 1, 2], 1 << 20)
    sched.add_peer("full", None)
    sched.add_peer("lacks", frozenset({0, 1, 2}))
    sched.add_peer("liar", None)
    sched.ban("liar")
    while asked := sched.assign("lacks", 0.0):
        for i in asked:
            sched.failed("lacks", i)  # it answers `missing` for everything
    assert sched.useful_peers() == ["full"]
    sched.completed("full", 0, 1, 1.0)
    assert sched.useful_peers() == ["full"]


def test_horizon_bounds_what_is_assigned_and_keeps_index_order() -> None:
    s = Scheduler(list(range(100)), MB, max_inflight=64)
    s.add_peer("a", None)
    s.add_peer("b", frozenset({5, 6, 7, 50}))  # rarer chunks come first, unless
    s.horizon = 8  # streaming: index order within the window
    got = s.assign("b", 0.0) + s.assign("a", 0.0)
    assert got and all(i < 8 for i in got)
    assert all(i < 8 for p in ("a", "b") for i in s.peer(p).inflight)
    # the reader consumed 0..3: the window moves; 50 (beyond it) waits
    for i in range(4):
        for peer in ("a", "b"):
            if i in s.peer(peer).inflight:
                s.completed(peer, i, MB, 1.0)
    s.horizon = 12
    more = s.assign("a", 2.0) + s.assign("b", 2.0)
    assert more and all(i < 12 for i in more)
    assert 50 not in s.peer("b").inflight
    # a full window: nothing more (no endgame copies) until the reader
    # moves it
    while s.assign("a", 3.0) or s.assign("b", 3.0):
        pass
    inflight = [*s.peer("a").inflight, *s.peer("b").inflight]
    assert len(inflight) == len(set(inflight))  # each once
    assert all(i < 12 for i in inflight)


def test_a_full_window_is_not_an_endgame() -> None:
    s = Scheduler(list(range(10)), MB)
    s.add_peer("a", None)
    s.add_peer("c", None)
    s.horizon = 3
    assert s.assign("a", 0.0) == [0, 1]
    assert s.assign("c", 0.0) == [2]
    # c has room, but 0..2 are in flight and 3.. are beyond the window: no
    # duplicate requests (that would double the traffic of every stream)
    assert s.assign("c", 0.0) == []
    s.horizon = None  # a plain download: the chunks beyond are fresh again
    assert s.assign("c", 0.0) == [3]
