"""The control client: the CLI (trio) and the TUI (asyncio) drive a node.

Built on anyio, so the same code runs on both event loops. One reader task
feeds the sans-IO :mod:`p2pshare.control.wire` codec and resolves waiters:
``call`` sends a request and waits for its response (an error response is
raised as the same :class:`~p2pshare.errors.P2PShareError` subclass the
node raised, so exit codes match a node-less run); ``subscribe`` yields the
node's events until the caller leaves the block. Every result and event
is checked against its record in :mod:`p2pshare.records` as it arrives (a
node that answers a malformed one is a ``RemoteProtocolError``), so the
CLI and the TUI read only fields that are there with their types. A lost
connection fails every waiter with :class:`~p2pshare.errors.NodeLost` (exit 7: the node
went away during the call; ``NodeNotRunning``, exit 8, is only for a node
that does not answer at all).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import SocketStream
from anyio.streams.memory import MemoryObjectSendStream

from p2pshare.config import Home
from p2pshare.control.wire import (
    ClientWire,
    ErrorResponse,
    Event,
    Fatal,
    Response,
    ServerHello,
    State,
    exception_for,
)
from p2pshare.errors import (
    NodeLost,
    NodeNotRunning,
    P2PShareError,
    RemoteProtocolError,
)
from p2pshare.records import check_event, check_result

__all__ = ["ControlClient", "control_socket", "open_client"]

CONNECT_TIMEOUT_S = 5.0
READ_BYTES = 65536


def control_socket(home: Home) -> str:
    return str(home.path / "control.sock")


class _Pending:
    def __init__(self) -> None:
        self.event = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        if not self.event.is_set():
            self.result, self.error = result, error
            self.event.set()


class ControlClient:
    """A connection to a node's control socket. Use :func:`open_client`."""

    def __init__(self, stream: SocketStream, wire: ClientWire) -> None:
        self._stream = stream
        self._wire = wire
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._subs: dict[int, MemoryObjectSendStream[Mapping[str, Any]]] = {}
        self._ready = _Pending()
        self._lock = anyio.Lock()
        self.node_id: str | None = None

    async def _send(self, data: bytes) -> None:
        async with self._lock:
            try:
                await self._stream.send(data)
            except (
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ) as exc:
                raise NodeLost(
                    "node: it went away (the control connection was lost)"
                ) from exc

    async def _reader(self) -> None:
        error: BaseException = NodeLost(
            "node: it went away during the call (stopped or died; see its log)"
        )
        try:
            while True:
                try:
                    data = await self._stream.receive(READ_BYTES)
                except anyio.EndOfStream:
                    data = b""
                self._wire.receive_data(data)
                for event in self._wire.events():
                    self._dispatch(event)
                if not data:
                    break
        except RemoteProtocolError as exc:
            error = exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            self._fail_all(error)

    def _dispatch(self, event: object) -> None:
        if isinstance(event, ServerHello):
            self.node_id = event.node
            self._ready.resolve()
        elif isinstance(event, Response):
            sub = self._subs.pop(event.id, None)
            if sub is not None:
                sub.close()
            pending = self._pending.pop(event.id, None)
            if pending is not None:
                pending.resolve(event.result)
        elif isinstance(event, ErrorResponse):
            pending = self._pending.pop(event.id, None)
            if pending is not None:
                pending.resolve(error=exception_for(event.code, event.message))
        elif isinstance(event, Event):
            sub = self._subs.get(event.sub)
            if sub is not None:
                check_event(event.event)  # raises into _reader: the node is broken
                # a slow subscriber loses events; it never blocks the reader
                with contextlib.suppress(anyio.WouldBlock):
                    sub.send_nowait(event.event)
        elif isinstance(event, Fatal):
            self._fail_all(exception_for(event.code, event.message))

    def _fail_all(self, error: BaseException) -> None:
        self._ready.resolve(error=error)
        for pending in self._pending.values():
            pending.resolve(error=error)
        self._pending.clear()
        for sub in self._subs.values():
            sub.close()
        self._subs.clear()

    async def call(self, method: str, **params: Any) -> Any:
        """Call ``method`` and return its result.

        Raises:
            P2PShareError: the node's error, rebuilt with the same class/code.
            NodeLost: the connection is gone (the node stopped or died).
        """
        if self._wire.state is not State.READY:
            raise NodeLost("node: it went away (the control connection is closed)")
        req = next(self._ids)
        pending = _Pending()
        self._pending[req] = pending
        await self._send(self._wire.request(req, method, params))
        await pending.event.wait()
        if pending.error is not None:
            raise pending.error
        check_result(method, pending.result)
        return pending.result

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Mapping[str, Any]]]:
        """Stream the node's events: ``async with c.subscribe() as events``."""
        req = next(self._ids)
        send, receive = anyio.create_memory_object_stream[Mapping[str, Any]](256)
        self._subs[req] = send
        self._pending[req] = _Pending()
        await self._send(self._wire.request(req, "events", {}))
        async with receive:
            yield receive
        self._subs.pop(req, None)
        self._pending.pop(req, None)


@asynccontextmanager
async def open_client(
    home: Home, *, name: str = "p2pshare-cli"
) -> AsyncIterator[ControlClient]:
    """Connect to the node of ``home``.

    Raises:
        NodeNotRunning: no node answers on the home's control socket.
    """
    path = control_socket(home)
    try:
        with anyio.fail_after(CONNECT_TIMEOUT_S):
            stream = await anyio.connect_unix(path)
    except (OSError, TimeoutError) as exc:
        raise NodeNotRunning(f"{home.path}: no node is running for this home") from exc
    wire = ClientWire(name)
    client = ControlClient(stream, wire)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client._reader)
            await client._send(wire.hello())
            try:
                with anyio.fail_after(CONNECT_TIMEOUT_S):
                    await client._ready.event.wait()
            except TimeoutError:
                raise NodeNotRunning(f"{home.path}: the node does not answer") from None
            if isinstance(client._ready.error, NodeLost):  # gone before hello
                raise NodeNotRunning(f"{home.path}: the node does not answer")
            if client._ready.error is not None:
                raise client._ready.error
            try:
                yield client
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        real = [e for e in _leaves(group) if isinstance(e, P2PShareError)]
        if len(real) == 1:
            raise real[0] from group
        raise
    finally:
        await stream.aclose()


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out
