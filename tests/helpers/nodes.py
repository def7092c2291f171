"""Real libp2p nodes on loopback for integration tests.

``open_test_nodes(n, tmp_path)`` starts ``n`` hosts on ``127.0.0.1/tcp/0``,
each with its own home under ``tmp_path``. Node 0 starts first and is the
bootstrap peer of all others, which then start concurrently. Node 0 is always
a DHT server (a client cannot serve as a bootstrap peer); ``mode`` applies to
the others. Every node runs
in its own task, started with ``nursery.start``: when the block begins, every
node is listening, its DHT service runs and its bootstrap has finished.
Leaving the block stops all nodes concurrently and closes their sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2pshare.node.host import DHTModeName, NodeHost
from p2pshare.node.host_start import open_host

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # trio-stubs shadow trio.TaskStatus

LOOPBACK_ANY_PORT = "/ip4/127.0.0.1/tcp/0"


async def serve_test_node(
    home: Path,
    bootstrap: Sequence[str],
    mode: DHTModeName,
    *,
    task_status: TaskStatus[NodeHost] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one node until cancelled; ``nursery.start`` returns its NodeHost."""
    async with open_host(
        home_dir=home, listen=[LOOPBACK_ANY_PORT], bootstrap=bootstrap, dht_mode=mode
    ) as node:
        task_status.started(node)
        await trio.sleep_forever()


@asynccontextmanager
async def open_test_nodes(
    n: int, tmp_path: Path, mode: DHTModeName = "server"
) -> AsyncIterator[list[NodeHost]]:
    """Start ``n`` nodes bootstrapped to node 0; yield them in order."""
    if n < 1:
        raise ValueError("n must be >= 1")
    async with trio.open_nursery() as nursery:
        first: NodeHost = await nursery.start(
            serve_test_node, tmp_path / "node0", (), "server"
        )
        seed = [_loopback_addr(first)]
        others: list[NodeHost | None] = [None] * (n - 1)

        async def start(i: int) -> None:
            others[i - 1] = await nursery.start(
                serve_test_node, tmp_path / f"node{i}", seed, mode
            )

        async with trio.open_nursery() as starters:
            for i in range(1, n):
                starters.start_soon(start, i)
        nodes = [first, *(node for node in others if node is not None)]
        assert len(nodes) == n
        try:
            yield nodes
        finally:
            nursery.cancel_scope.cancel()


def _loopback_addr(node: NodeHost) -> str:
    return next(a for a in node.addrs() if a.startswith("/ip4/127.0.0.1/"))
