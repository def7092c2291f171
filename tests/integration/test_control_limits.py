"""The control socket's connection limits (issue 13): idle connections that
never say hello are closed, connections beyond the cap are refused at once,
and a real client is served again as soon as the idle ones are gone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from p2pshare.config import Home
from p2pshare.control import server as srv
from p2pshare.control.client import open_client
from p2pshare.node.service import open_node

pytestmark = pytest.mark.integration


async def _closed_by_server(sock: trio.SocketStream) -> bool:
    """True once the server closed ``sock`` (EOF or reset)."""
    try:
        return await sock.receive_some(100) == b""
    except trio.BrokenResourceError:
        return True


async def test_idle_control_connections_cannot_hold_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(srv, "MAX_CLIENTS", 4)
    monkeypatch.setattr(srv, "HELLO_TIMEOUT_S", 1.0)
    home = Home(tmp_path / "n")
    path = home.path / "control.sock"
    with trio.fail_after(30):
        async with (
            open_node(home, listen=["/ip4/127.0.0.1/tcp/0"]) as node,
            trio.open_nursery() as nursery,
        ):
            server = srv.ControlServer(node, path, stop=lambda: None)
            await nursery.start(server.serve)
            idle = [await trio.open_unix_socket(str(path)) for _ in range(4)]
            while server.clients < 4:  # noqa: ASYNC110
                await trio.sleep(0.01)
            extra = await trio.open_unix_socket(str(path))
            assert await _closed_by_server(extra)  # over the cap: closed at once
            assert server.clients == 4
            # none said hello: each is closed after HELLO_TIMEOUT_S
            for sock in idle:
                assert await _closed_by_server(sock)
                await sock.aclose()
            await extra.aclose()
            async with open_client(home) as client:
                status = await client.call("status")
                assert status["peer_id"] == node.peer_id
            nursery.cancel_scope.cancel()


async def test_a_malformed_result_is_refused_at_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client checks every result against its record before a command
    reads it: a node answering a status without a peer id (a bug, or a
    different program on the socket) is a RemoteProtocolError, not a
    KeyError deep in the CLI; the next call on the connection still works."""
    from p2pshare.errors import RemoteProtocolError
    from p2pshare.node.service import Node

    home = Home(tmp_path / "n")
    path = home.path / "control.sock"
    with trio.fail_after(30):
        async with (
            open_node(home, listen=["/ip4/127.0.0.1/tcp/0"]) as node,
            trio.open_nursery() as nursery,
        ):
            server = srv.ControlServer(node, path, stop=lambda: None)
            await nursery.start(server.serve)
            real = Node.status

            async def broken(self: Node) -> object:
                st = dict(await real(self))
                del st["peer_id"]
                return st

            async with open_client(home) as client:
                monkeypatch.setattr(Node, "status", broken)
                with pytest.raises(RemoteProtocolError, match="'peer_id' is missing"):
                    await client.call("status")
                monkeypatch.setattr(Node, "status", real)
                assert (await client.call("status"))["peer_id"] == node.peer_id
            nursery.cancel_scope.cancel()


async def test_a_client_gone_before_its_answer_costs_only_its_connection(
    tmp_path: Path,
) -> None:
    """A client that says hello and closes before reading: the
    server's answer meets a closed socket (EPIPE). That error used to leave
    the connection wrapped in an exception group, pass the handler's
    ``except`` by, and stop the control server and the node with it (a TUI
    quitting did it in CI)."""
    from p2pshare.control.wire import ClientWire

    home = Home(tmp_path / "n")
    path = home.path / "control.sock"
    with trio.fail_after(30):
        async with (
            open_node(home, listen=["/ip4/127.0.0.1/tcp/0"]) as node,
            trio.open_nursery() as nursery,
        ):
            server = srv.ControlServer(node, path, stop=lambda: None)
            await nursery.start(server.serve)
            for _ in range(3):
                data = ClientWire("test").hello()
                with socket.socket(socket.AF_UNIX) as raw:  # no checkpoint:
                    raw.connect(str(path))  # the server reads only after
                    raw.sendall(data)  # the close
                    raw.shutdown(socket.SHUT_RDWR)
                while server.clients:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            async with open_client(home) as client:
                status = await client.call("status")
                assert status["peer_id"] == node.peer_id
            assert node.jobs.failures == 0
            nursery.cancel_scope.cancel()
