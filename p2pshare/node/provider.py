"""One outbound ``/p2pshare/xfer/1`` stream to a provider: the client driver.

Theory of operation
-------------------
A :class:`ProviderConn` owns one stream and one ``ClientConnection``. A
reader task (``serve``) reads up to a block at a time, feeds
the machine and resolves waiters: ``open`` waits for ``ShareOpened`` or
``ShareRefused`` of its share slot, ``want`` for ``BlockReceived`` or
``BlockMissing`` of its request id. The reader never stops reading while
the connection lives, so the provider's Yamux writer never stalls on
window credit (pitfall P10); memory is bounded by what was asked for.

Writes (opens, wants, cancels) are serialised by a lock. When the stream
dies or the peer misbehaves, every waiter is woken with
:class:`ProviderGone` and the connection is marked dead; callers treat that
like any other lost provider.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio
from nacl.signing import SigningKey

from p2pshare.errors import (
    AccessDenied,
    LocalProtocolError,
    NotFoundError,
    RemoteProtocolError,
    TransferError,
)
from p2pshare.node.streams import LibP2PStream
from p2pshare.protocol import (
    BlockMissing,
    BlockReceived,
    ClientConnection,
    Closed,
    Ready,
    ShareOpened,
    ShareRefused,
)
from p2pshare.protocol.messages import Kind

if TYPE_CHECKING:
    # trio-stubs (from trio-typing, a libp2p dependency) shadow trio's own
    # inline types and lack trio.TaskStatus.
    from trio_typing import TaskStatus

__all__ = [
    "CANCELLED",
    "Access",
    "Opened",
    "ProviderConn",
    "ProviderGone",
    "Unavailable",
]

log = logging.getLogger(__name__)

# A whole 1 MiB block per read when it has arrived (compat.yamux_io joins
# the frames it holds); with 0.8.1's stock stream 64 KiB reads were fastest
READ_BYTES = 1024 * 1024 + 1024
HELLO_TIMEOUT_S = 10.0
OPEN_TIMEOUT_S = 20.0


# What opens a share on a provider: its access signing key (a key holder),
# or a grant's bytes (a seed keeping a replica; see format/grant.py).
Access = SigningKey | bytes

CANCELLED = object()  # what a withdrawn request's waiter resolves to


@dataclass(frozen=True, slots=True)
class Unavailable:
    """What a request resolves to when the provider said it cannot serve
    the share at all (``missing`` with a ``code``, e.g. ``source_changed``)."""

    code: str


class ProviderGone(TransferError):
    """The provider's stream ended or it broke the protocol."""

    code = "provider_gone"


@dataclass(slots=True)
class Opened:
    sid: int
    envelope: bytes
    have: bytes | None
    column: int | None = None


@dataclass(slots=True)
class Waiter:
    event: trio.Event = field(default_factory=trio.Event)
    value: object = None
    error: BaseException | None = None

    def resolve(self, value: object = None, error: BaseException | None = None) -> None:
        if not self.event.is_set():
            self.value, self.error = value, error
            self.event.set()


class ProviderConn:
    """A live transfer stream to one provider."""

    def __init__(
        self,
        stream: LibP2PStream,
        *,
        local_peer: bytes,
        name: str,
        traffic: Counter[bytes] | None = None,
    ) -> None:
        self.stream = stream
        self.traffic = traffic  # the node's bytes received per peer, if it counts
        self.name = name  # short peer id, for logs and the scheduler
        self.remote_peer = stream.remote_peer_bytes
        self.conn = ClientConnection(
            local_peer=local_peer, remote_peer=self.remote_peer
        )
        self.dead = False
        self.relay_note: str | None = None  # why a limited relay cut it, if so
        self.closing = False  # a goodbye was built: no more requests
        self.bytes_received = 0
        self._lock = trio.Lock()
        self._ready = Waiter()
        self._opens: dict[int, Waiter] = {}
        self._reqs: dict[int, Waiter] = {}
        self._sids = itertools.count(1)
        self._req_ids = itertools.count(1)

    async def serve(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Read until the stream ends; signals started once ``Hello`` came."""
        started = False
        try:
            while True:
                data = await self.stream.receive_some(READ_BYTES)
                self.bytes_received += len(data)
                if self.traffic is not None:
                    self.traffic[self.remote_peer] += len(data)
                self.conn.receive_data(data)
                for event in self.conn.events():
                    self._dispatch(event)
                if not started and self._ready.event.is_set():
                    task_status.started()
                    started = True
                if not data:
                    break
        except RemoteProtocolError as exc:
            log.warning("provider %s: protocol error: %s", self.name, exc.reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("provider %s: stream lost", self.name)
        finally:
            self._die()
            if not started:
                task_status.started()
            await self.stream.aclose()

    def _dispatch(self, event: object) -> None:
        if isinstance(event, Ready):
            self._ready.resolve()
        elif isinstance(event, ShareOpened):
            w = self._opens.pop(event.sid, None)
            if w is not None:
                w.resolve(Opened(event.sid, event.envelope, event.have, event.column))
        elif isinstance(event, ShareRefused):
            w = self._opens.pop(event.sid, None)
            if w is not None:
                err: Exception = (
                    AccessDenied(f"provider {self.name}: {event.reason}")
                    if event.code == "access_denied"
                    else NotFoundError(f"provider {self.name}: {event.reason}")
                )
                w.resolve(error=err)
        elif isinstance(event, BlockReceived):
            w = self._reqs.pop(event.req, None)
            if w is not None:
                w.resolve(event.data)
        elif isinstance(event, BlockMissing):
            w = self._reqs.pop(event.req, None)
            if w is not None:
                w.resolve(None if event.code is None else Unavailable(event.code))
        elif isinstance(event, Closed):
            self._die()

    def _die(self) -> None:
        self.dead = True
        gone = ProviderGone(f"provider {self.name}: connection lost")
        self._ready.resolve(error=gone)
        for w in [*self._opens.values(), *self._reqs.values()]:
            w.resolve(error=gone)
        self._opens.clear()
        self._reqs.clear()

    def _frame(self, build: Callable[[], bytes]) -> bytes:
        """A frame from the machine, or ``ProviderGone`` once the connection
        is closing or closed: a banned provider is gone for every caller
        (a want racing the ban's goodbye used to raise LocalProtocolError
        and abort the whole download)."""
        if self.dead or self.closing:
            raise ProviderGone(f"provider {self.name}: connection closed")
        try:
            return build()
        except LocalProtocolError as exc:  # the machine already left READY
            raise ProviderGone(f"provider {self.name}: connection closed") from exc

    async def _send(self, data: bytes) -> None:
        try:
            async with self._lock:
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._die()
            raise ProviderGone(f"provider {self.name}: connection lost") from exc

    async def open(
        self, root: bytes, access: Access, ticket: bytes | None = None
    ) -> Opened:
        """Prove we hold the key for ``root`` (``access`` is its access signing
        key) or present a grant (``access`` is the grant's bytes); returns
        the envelope and chunk map.

        Raises:
            AccessDenied / NotFoundError: the provider refused.
            ProviderGone: the connection died.
        """
        with trio.fail_after(HELLO_TIMEOUT_S):
            await self._ready.event.wait()
        if self._ready.error is not None:
            raise self._ready.error
        sid = next(self._sids)
        if isinstance(access, SigningKey):
            frame = self._frame(
                lambda: self.conn.open(sid, root, access, ticket=ticket)
            )
        else:
            frame = self._frame(lambda: self.conn.open(sid, root, grant=access))
        waiter = Waiter()
        self._opens[sid] = waiter
        await self._send(frame)
        with trio.fail_after(OPEN_TIMEOUT_S):
            await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        assert isinstance(waiter.value, Opened)
        return waiter.value

    async def want(self, sid: int, kind: Kind, index: int) -> tuple[int, Waiter]:
        """Send a request; returns its id and the waiter to await.

        Raises:
            ProviderGone: the connection is closing or closed.
        """
        req = next(self._req_ids)
        frame = self._frame(lambda: self.conn.want(sid, req, kind, index))
        waiter = Waiter()
        self._reqs[req] = waiter
        await self._send(frame)
        return req, waiter

    async def fetch(self, sid: int, kind: Kind, index: int) -> bytes | None:
        """Request and wait; None when the provider does not have it."""
        _req, waiter = await self.want(sid, kind, index)
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.value if isinstance(waiter.value, bytes) else None

    async def cancel(self, req: int) -> None:
        """Withdraw a request; its waiter resolves to ``CANCELLED``."""
        w = self._reqs.pop(req, None)
        if w is None or self.dead or self.closing:
            return
        w.resolve(CANCELLED)
        await self._send(self._frame(lambda: self.conn.cancel(req)))

    async def aclose(self) -> None:
        if not self.dead and not self.closing:
            bye = self._frame(lambda: self.conn.goodbye("done"))
            self.closing = True
            with trio.move_on_after(1), contextlib.suppress(ProviderGone):
                await self._send(bye)
        self._die()
        await self.stream.aclose()
