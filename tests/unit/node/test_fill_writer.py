"""Fill._writer, alone: it batches what is queued and ends cleanly when the
fetchers close the channel right after queueing (a race that crashed a
download in CI once the stream got faster)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio

from p2pshare.node.fill import Fill


class Sink:
    def __init__(self) -> None:
        self.written: list[int] = []

    def has(self, i: int) -> bool:
        return i in self.written

    def verify_write(self, i: int, data: bytes) -> bool:
        self.written.append(i)
        return data != b"bad"


def writer_fill() -> tuple[Fill, Sink, list[tuple[str, int]], list[int]]:
    fill = Fill.__new__(Fill)
    sink = Sink()
    ok: list[tuple[str, int]] = []
    bad: list[int] = []

    async def written_ok(name: str, i: int, size: int) -> None:
        ok.append((name, i))

    async def bad_chunk(name: str, i: int) -> None:
        bad.append(i)

    fill.sink = sink  # type: ignore[assignment]
    fill.recovery = None
    fill.sched = SimpleNamespace(done=False)  # type: ignore[assignment]
    fill._written = set()
    fill._written_ok = written_ok  # type: ignore[method-assign]
    fill._bad_chunk = bad_chunk  # type: ignore[method-assign]
    return fill, sink, ok, bad


@pytest.mark.trio
async def test_a_channel_closed_after_the_last_chunks_ends_the_writer() -> None:
    fill, sink, ok, bad = writer_fill()
    send, recv = trio.open_memory_channel[tuple[str, int, bytes]](16)
    for i, data in enumerate([b"a", b"b", b"bad", b"d"]):
        send.send_nowait(("p", i, data))
    send.close()  # the fetchers are done: nothing more will come
    with trio.fail_after(10):
        await fill._writer(recv)
    assert sorted(sink.written) == [0, 1, 2, 3]
    assert ok == [("p", 0), ("p", 1), ("p", 3)]
    assert bad == [2]


@pytest.mark.trio
async def test_duplicates_in_one_batch_are_written_once() -> None:
    fill, sink, ok, _bad = writer_fill()
    send, recv = trio.open_memory_channel[tuple[str, int, bytes]](16)
    send.send_nowait(("p", 5, b"x"))
    send.send_nowait(("q", 5, b"x"))  # endgame: the same chunk from two peers
    send.close()
    await fill._writer(recv)
    assert sink.written == [5]
    assert ok == [("p", 5)]
