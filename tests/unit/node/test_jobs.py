"""The supervisor: any failure of a job becomes a typed failure of that job,
published and logged, and the node's other tasks go on."""

from __future__ import annotations

import errno
import itertools
from typing import Any

import pytest
import trio
import trio.testing

from p2pshare.errors import (
    InternalError,
    NodeLost,
    NoProviders,
    P2PShareError,
    StoreError,
    TransferTimeout,
)
from p2pshare.node.events import EventBus
from p2pshare.node.jobs import (
    RESTART_FIRST_S,
    RESTART_MAX_S,
    Supervisor,
    at_once,
    failure_of,
)
from p2pshare.records import Event

pytestmark = pytest.mark.trio


def _nested_group(exc: Exception) -> BaseExceptionGroup[BaseException]:
    return BaseExceptionGroup("outer", [ExceptionGroup("inner", [exc])])


@pytest.mark.parametrize(
    ("exc", "cls", "code"),
    [
        (NoProviders("share x: none"), NoProviders, "no_providers"),
        (_nested_group(NoProviders("in a group")), NoProviders, "no_providers"),
        (OSError(errno.ENOSPC, "No space left", "/out/f"), StoreError, "store"),
        (OSError(errno.EFBIG, "File too large"), StoreError, "store"),
        (trio.TooSlowError(), TransferTimeout, "timeout"),
        (TypeError("'_NoNode' object is not iterable"), InternalError, "internal"),
        (
            ExceptionGroup("g", [KeyError("k"), NoProviders("typed wins")]),
            NoProviders,
            "no_providers",
        ),
    ],
)
async def test_failure_of_types_every_exception(
    exc: BaseException, cls: type[P2PShareError], code: str
) -> None:
    error = failure_of(exc)
    assert type(error) is cls and error.code == code


class _RecordingBus(EventBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, dict[str, object]]] = []

    def publish(self, record: Event) -> None:
        fields = {k: v for k, v in record.items() if k != "kind"}
        self.published.append((record["kind"], fields))
        super().publish(record)


async def test_a_failed_job_stops_only_itself() -> None:
    bus = _RecordingBus()
    seen: list[P2PShareError] = []
    survivor_ran = trio.Event()
    async with trio.open_nursery() as nursery:
        jobs = Supervisor(nursery, bus)

        async def bad() -> None:
            async with trio.open_nursery() as inner:  # the error leaves as a group
                inner.start_soon(trio.sleep_forever)
                raise OSError(errno.ENOSPC, "No space left on device", "/x")

        async def survivor() -> None:
            await trio.sleep(0.05)
            survivor_ran.set()

        jobs.spawn("download", "7", bad, on_failure=seen.append)
        jobs.spawn("announce", "a", survivor)
        await survivor_ran.wait()
        nursery.cancel_scope.cancel()
    assert [e.code for e in seen] == ["store"]
    assert bus.published == [
        (
            "job.failed",
            {
                "job": "download",
                "what": "7",
                "code": "store",
                "error": "/x: no space left on the device",
            },
        )
    ]
    assert jobs.failures == 1 and jobs.recent[0].kind == "download"


async def test_run_raises_typed_and_detach_outlives_its_caller() -> None:
    bus = EventBus()
    finished = trio.Event()
    async with trio.open_nursery() as nursery:
        jobs = Supervisor(nursery, bus)

        async def boom() -> None:
            raise ValueError("bug")

        with pytest.raises(InternalError, match="ValueError: bug"):
            await jobs.run("control", "ls", boom)

        async def slow() -> int:
            await trio.sleep(0.1)
            finished.set()
            return 42

        with trio.move_on_after(0.01):  # the client went away
            await jobs.detach("replicate", "r", slow)
        await finished.wait()  # the job went on
        assert await jobs.detach("replicate", "r", slow) == 42
        nursery.cancel_scope.cancel()


async def test_detach_when_the_node_stops_is_node_lost() -> None:
    async def run_node(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as node:
            task_status.started(node)
            await trio.sleep_forever()

    async with trio.open_nursery() as outer:
        node = await outer.start(run_node)
        jobs = Supervisor(node, EventBus())

        async def stop_node() -> None:
            await trio.sleep(0.01)
            node.cancel_scope.cancel()

        outer.start_soon(stop_node)
        waiting = jobs.detach("replicate", "r", trio.sleep_forever)
        with pytest.raises(NodeLost, match="stopped before it ended"):
            await waiting
        outer.cancel_scope.cancel()


async def test_cancellation_is_never_swallowed() -> None:
    bus = EventBus()
    seen: list[P2PShareError] = []
    async with trio.open_nursery() as nursery:
        jobs = Supervisor(nursery, bus)
        jobs.spawn("download", "1", trio.sleep_forever, on_failure=seen.append)
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert seen == [] and jobs.failures == 0


async def test_a_service_that_fails_after_it_started_is_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = _RecordingBus()
    runs: list[float] = []
    third_run = trio.Event()

    async def flaky(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started(len(runs))
        if len(runs) == 3:
            third_run.set()
            await trio.sleep_forever()
        raise ValueError("an answer nobody foresaw")

    async with trio.open_nursery() as nursery:
        jobs = Supervisor(nursery, bus)
        # the first start's value comes back; a restart's is not passed again
        assert await nursery.start(jobs.keep, "reachability", flaky) == 1
        await third_run.wait()
        nursery.cancel_scope.cancel()
    # the pause doubles: 1 s, then 2 s
    assert [b - a for a, b in itertools.pairwise(runs)] == [
        RESTART_FIRST_S,
        2 * RESTART_FIRST_S,
    ]
    assert [kind for kind, _ in bus.published] == ["job.failed", "job.failed"]
    _, fields = bus.published[0]
    assert fields["job"] == "service" and fields["what"] == "reachability"
    assert fields["code"] == "internal"
    assert jobs.failures == 2


async def test_a_service_that_fails_before_it_is_ready_stops_the_start() -> None:
    async def broken(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    async with trio.open_nursery() as nursery:
        jobs = Supervisor(nursery, EventBus())
        with pytest.raises(OSError, match="already in use"):
            await nursery.start(jobs.keep, "upnp", broken)
    assert jobs.failures == 0


async def test_a_service_that_returns_is_not_restarted_and_loops_start_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[str] = []

    async def gives_up(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        runs.append("lan")

    async def loop() -> None:
        runs.append("renew")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        jobs = Supervisor(nursery, EventBus())
        await nursery.start(jobs.keep, "lan", gives_up)
        await nursery.start(jobs.keep, "renew", at_once(loop))
        await trio.sleep(3 * RESTART_MAX_S)
        nursery.cancel_scope.cancel()
    assert sorted(runs) == ["lan", "renew"] and jobs.failures == 0


async def test_cancelling_a_kept_service_is_not_a_failure() -> None:
    bus = _RecordingBus()
    async with trio.open_nursery() as nursery:
        jobs = Supervisor(nursery, bus)
        await nursery.start(jobs.keep, "announcer", at_once(trio.sleep_forever))
        nursery.cancel_scope.cancel()
    assert bus.published == [] and jobs.failures == 0
