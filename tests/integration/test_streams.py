"""LibP2PStream over a real loopback libp2p connection (two hosts, one process)."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from libp2p.stream_muxer.yamux import yamux

from p2pshare.errors import TransferTimeout
from p2pshare.node.host import NodeHost
from p2pshare.node.streams import LibP2PStream, transfer_deadline
from tests.helpers.nodes import open_test_nodes, serve_test_node

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # trio-stubs shadow trio.TaskStatus

pytestmark = pytest.mark.integration

PAIR_PROTOCOL = "/p2pshare-test/pair/1"

StreamPair = tuple[LibP2PStream, LibP2PStream]


@asynccontextmanager
async def stream_pairs(
    tmp_path: Path,
) -> AsyncIterator[tuple[Callable[[], Awaitable[StreamPair]], list[NodeHost]]]:
    """Two connected hosts and a maker of (client, server) stream pairs.

    The server side's handler hands its stream to the test and then parks
    until host shutdown, so the test owns both ends.
    """
    async with open_test_nodes(2, tmp_path) as nodes:
        a, b = nodes
        send, receive = trio.open_memory_channel[LibP2PStream](math.inf)

        async def park(stream: LibP2PStream) -> None:
            await send.send(stream)
            await trio.sleep_forever()

        b.set_handler(PAIR_PROTOCOL, park)

        async def make() -> StreamPair:
            client = await a.open_stream(b.peer_id, PAIR_PROTOCOL)
            # open_stream returns after multistream-select: B's handler runs.
            server = await receive.receive()
            return client, server

        yield make, nodes


async def test_conforms_to_trio_half_closeable_stream(tmp_path, monkeypatch):
    # trio's checker closes a receiver and expects the sender's writes to
    # fail "eventually": with Yamux that is when the sender has filled the
    # flow-control window (autotuned to 4 MiB by the handshake's reads) and
    # then waited 5 s for credit (P10). A 64 KiB window keeps it to ~5 s.
    monkeypatch.setattr(yamux, "DEFAULT_WINDOW_SIZE", 64 * 1024)
    monkeypatch.setattr(yamux, "MAX_WINDOW_SIZE", 64 * 1024)
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, _):
            await trio.testing.check_half_closeable_stream(make, None)


async def test_bulk_data_both_ways_with_eof(tmp_path):
    up = bytes(range(256)) * 12_288  # 3 MiB, sent in 1 MiB writes (P15)
    down = b"reply:" + bytes(reversed(up[:500_000]))
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, _):
            client, server = await make()

            async def serve() -> None:
                got = bytearray()
                while data := await server.receive_some():
                    got += data
                assert got == up
                assert await server.receive_some() == b""  # EOF is sticky
                await server.send_all(down)
                await server.send_eof()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                for i in range(0, len(up), 1 << 20):
                    await client.send_all(up[i : i + (1 << 20)])
                await client.send_eof()
                with pytest.raises(trio.ClosedResourceError):
                    await client.send_all(b"late")
                got = bytearray()
                while data := await client.receive_some():
                    got += data
            assert got == down
            await client.aclose()
            await server.aclose()


async def test_peer_reset_is_broken_and_connection_survives(tmp_path):
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, _):
            client, server = await make()
            await server.send_all(b"before")
            assert await client.receive_some() == b"before"
            await server.reset()
            with pytest.raises(trio.BrokenResourceError):
                await client.receive_some()
            with pytest.raises(trio.BrokenResourceError):
                await client.send_all(b"after")
            with pytest.raises(trio.ClosedResourceError):
                await server.receive_some()
            await client.aclose()
            # Same connection, new stream: fine.
            client, server = await make()
            await client.send_all(b"again")
            assert await server.receive_some() == b"again"


async def test_leaving_the_block_by_exception_resets(tmp_path):
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, _):
            client, server = await make()
            with pytest.raises(KeyError):
                async with client:
                    raise KeyError("abort")
            with pytest.raises(trio.BrokenResourceError):
                await server.receive_some()


async def test_close_with_unread_data_resets_the_writer_at_once(tmp_path):
    """Like TCP: closing without reading what arrived tells the sender now.

    Without the reset, the sender would fill the Yamux window, then wait 5 s
    for credit before failing (P10).
    """
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, _):
            client, server = await make()
            await server.send_all(b"x" * 100_000)
            assert await client.receive_some(1) == b"x"  # the rest is buffered
            await client.aclose()

            async def send_until_broken() -> None:
                while True:
                    await server.send_all(b"y" * 1000)

            with trio.fail_after(2):
                with pytest.raises(trio.BrokenResourceError):
                    await send_until_broken()


async def test_dying_peer_is_broken_not_eof(tmp_path):
    """P10: 0.8.1 can wake a reader whose peer vanished with a clean EOF."""
    b_scope = trio.CancelScope()

    async def run_b(*, task_status: TaskStatus[NodeHost]) -> None:
        with b_scope:
            await serve_test_node(
                tmp_path / "b", [a.addrs()[0]], "client", task_status=task_status
            )

    with trio.fail_after(60):
        async with open_test_nodes(1, tmp_path) as (a,), trio.open_nursery() as n:
            b = await n.start(run_b)

            async def park(stream: LibP2PStream) -> None:
                await stream.send_all(b"partial")
                await trio.sleep_forever()

            b.set_handler(PAIR_PROTOCOL, park)
            client = await a.open_stream(b.peer_id, PAIR_PROTOCOL)
            assert await client.receive_some() == b"partial"
            outcome: list[BaseException | bytes] = []

            async def read_on() -> None:
                try:
                    outcome.append(await client.receive_some())
                except trio.BrokenResourceError as exc:
                    outcome.append(exc)

            async with trio.open_nursery() as readers:
                readers.start_soon(read_on)
                await trio.testing.wait_all_tasks_blocked()  # reader is waiting
                b_scope.cancel()  # B shuts down under it
            assert len(outcome) == 1
            assert isinstance(outcome[0], trio.BrokenResourceError)
            with pytest.raises(trio.BrokenResourceError):
                await client.receive_some()
            await client.aclose()


async def test_silent_peer_times_out_as_transfer_timeout(tmp_path):
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, _):
            client, _server = await make()
            with (
                pytest.raises(TransferTimeout, match="peer X: no answer within"),
                transfer_deadline(0.2, what="peer X"),
            ):
                await client.receive_some()
            # The stream is still usable after the timeout.
            await _server.send_all(b"late")
            assert await client.receive_some() == b"late"


async def test_remote_peer_identity(tmp_path):
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, (a, b)):
            client, server = await make()
            assert client.remote_peer_bytes == b.peer_id_bytes
            assert server.remote_peer_bytes == a.peer_id_bytes
            assert client.protocol == server.protocol == PAIR_PROTOCOL


PATTERN = bytes(range(251)) * 16_711  # ~4 MiB, no period aligned with frames


async def test_cancelled_receives_lose_nothing_and_keep_the_connection(tmp_path):
    """N1: a receive cut by a timeout used to drop data or kill the connection."""
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, _):
            client, server = await make()

            async def feed() -> None:
                for i in range(0, len(PATTERN), 4096):
                    await server.send_all(PATTERN[i : i + 4096])
                await server.send_eof()

            got = bytearray()
            cancelled = 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed)
                for i in itertools.count():
                    with trio.move_on_after(0.0002 * (i % 7)) as scope:
                        data = await client.receive_some(3000)
                        if not data:
                            break
                        got += data
                    cancelled += scope.cancelled_caught
            assert cancelled > 50
            assert got == PATTERN


async def test_cancelled_sends_break_the_stream_not_the_connection(tmp_path):
    """N1: a send cut by a timeout used to corrupt Noise and drop the connection."""
    with trio.fail_after(60):
        async with stream_pairs(tmp_path) as (make, _):
            for _ in range(10):
                client, server = await make()
                with trio.move_on_after(0.001) as scope:
                    await client.send_all(PATTERN)
                if scope.cancelled_caught:
                    with pytest.raises(trio.BrokenResourceError):
                        await client.send_all(b"more")
                await client.aclose()
                await server.aclose()
            client, server = await make()  # the connection is still healthy
            await client.send_all(b"ping")
            assert await server.receive_some() == b"ping"
