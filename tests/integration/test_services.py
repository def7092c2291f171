"""A node's long-running services outlive what goes wrong in them: real
nodes on loopback (a seed answering reachability checks, a node that serves,
a node that downloads from it).

The failure that once stopped a whole node came from a remote answer
(a seed saying it saw ``fe80::1%eth0``, which the reachability service could
not turn into an address). That answer is now refused by the protocol; the
service failures nobody has foreseen yet are injected here as a bug in the
service itself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pshare.config import Home
from p2pshare.format import ShareLink
from p2pshare.node import jobs as jobsmod
from p2pshare.node.reach import Reachability, ReachServer
from p2pshare.node.seed_policy import SeedPolicy
from p2pshare.node.service import Node, open_node
from p2pshare.node.streams import read_frame
from p2pshare.protocol import reach as proto
from p2pshare.protocol.framing import encode_frame
from p2pshare.store import LocalStore
from p2pshare.store.adder import add_path

pytestmark = pytest.mark.integration

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]


@asynccontextmanager
async def _seed_and_server(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    """A seed, and a serving node (DHT server) that asks it whether it is
    reachable, as every serving node does."""
    async with AsyncExitStack() as stack:
        seed = await stack.enter_async_context(
            open_node(
                Home(tmp_path / "seed"),
                listen=LOOPBACK,
                dht_mode="server",
                seed=SeedPolicy(admission="open"),
            )
        )
        server = await stack.enter_async_context(
            open_node(
                Home(tmp_path / "server"),
                listen=LOOPBACK,
                dht_mode="server",
                bootstrap=[seed.addrs()[0]],
            )
        )
        yield seed, server


async def _reach_state(node: Node, state: str) -> Reachability:
    reach = node.reach
    assert reach is not None
    while reach.state != state:  # noqa: ASYNC110 - the node has no event for it
        await trio.sleep(0.05)
    return reach


async def test_a_service_that_fails_is_restarted_and_the_node_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobsmod, "RESTART_FIRST_S", 0.1)
    advertise = Reachability._advertise
    calls: list[str | None] = []

    def buggy_advertise(self: Reachability, observed: str | None, port: int) -> None:
        calls.append(observed)
        if len(calls) == 1:  # the first answer hits a bug
            raise RuntimeError("a bug in the reachability service")
        advertise(self, observed, port)

    monkeypatch.setattr(Reachability, "_advertise", buggy_advertise)
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(300_000))
    with LocalStore(Home(tmp_path / "server")) as store:
        added = add_path(store, src, copy=True)
    with trio.fail_after(60):
        async with _seed_and_server(tmp_path) as (_seed, server):
            while not server.jobs.recent:  # noqa: ASYNC110
                await trio.sleep(0.05)
            failed = server.jobs.recent[0]  # what `status` shows
            assert (failed.kind, failed.what) == ("service", "reachability")
            assert failed.code == "internal" and "a bug in" in failed.message
            # restarted: it checks again, and this time gets to the end
            while len(calls) < 2:  # noqa: ASYNC110
                await trio.sleep(0.05)
            assert calls == ["127.0.0.1", "127.0.0.1"]
            assert (await _reach_state(server, "public")).checked_at is not None
            assert server.jobs.failures == 1
            # and the node serves all along
            async with open_node(Home(tmp_path / "getter"), listen=LOOPBACK) as getter:
                link = ShareLink(
                    root_id=added.root, key=added.key, peers=(server.addrs()[0],)
                )
                await getter.get(link, tmp_path / "out", timeout_s=30)
            assert (tmp_path / "out" / "f.bin").read_bytes() == src.read_bytes()


async def test_a_seed_answering_an_address_with_a_zone_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What once stopped the node: now a bad answer like any other (the
    node asks again later), and nothing fails."""
    answered = trio.Event()

    async def hostile_handle(self: ReachServer, stream: Any) -> None:
        await read_frame(stream, proto.MAX_REACH_FRAME_BYTES, "reach")
        body = {"t": "reached", "observed": "fe80::1%eth0", "result": "dialed"}
        await stream.send_all(encode_frame(body, max_frame=proto.MAX_REACH_FRAME_BYTES))
        answered.set()

    monkeypatch.setattr(ReachServer, "handle", hostile_handle)
    with trio.fail_after(60):
        async with _seed_and_server(tmp_path) as (_seed, server):
            await answered.wait()
            reach = server.reach
            assert reach is not None
            while reach.checked_at is None:  # noqa: ASYNC110
                await trio.sleep(0.05)
            assert (reach.state, reach.why) == ("unknown", "no seed answered")
            assert server.jobs.failures == 0
            assert server.host.verified == []  # nothing advertised
            assert (await server.status())["peer_id"]
