"""A libp2p stream as a ``trio.abc.HalfCloseableStream``.

Theory of operation
-------------------
:class:`LibP2PStream` wraps one py-libp2p ``INetStream`` (always Yamux over
Noise over TCP, see ``compat``) so that the drivers above it see trio's stream
contract and nothing of libp2p. Every libp2p call runs inside one context
manager, :meth:`LibP2PStream._libp2p_call`, which is the only place library
exceptions are translated:

===========================  ==============================================
libp2p                       trio
===========================  ==============================================
``StreamEOF`` (peer's FIN)   end of stream: ``receive_some`` returns ``b""``
``StreamEOF`` (RST, lost     ``BrokenResourceError`` (``compat.stream_eof_
connection)                  clean`` tells the two apart, pitfall P10)
``StreamReset``              ``BrokenResourceError``
``StreamClosed``             ``ClosedResourceError``
any other libp2p error,      ``BrokenResourceError``
``OSError``
===========================  ==============================================

``trio.TooSlowError`` from a caller's ``fail_after`` is mapped to
``TransferTimeout`` by :func:`transfer_deadline`, which callers use instead
of a bare ``fail_after`` when the timeout means "the peer did not answer".

Closing follows TCP. :meth:`aclose` is graceful (a Yamux FIN: the peer reads
everything sent, then ``b""``) unless the stream is already broken or unread
data from the peer is still buffered (we are discarding what the peer sent,
so it must learn at once: RFC 1122 §4.2.2.13), in which case it resets. A
cancelled :meth:`aclose` resets too, shielded and bounded. :meth:`reset`
aborts explicitly; leaving ``async with stream:`` through an exception
resets. Note that in 0.8.1 a reset destroys data the peer has not read yet,
so a final message must be followed by a graceful close, never a reset.

Cancellation (compat N1): in 0.8.1 a cancel that lands inside a Yamux frame
write desynchronises the connection's Noise session and kills every stream on
it, and a cancelled read can lose the data it took. So every operation first
waits, cancellably and consuming nothing, until it cannot block on the peer
(data buffered, or flow-control credit granted), then calls libp2p inside a
shield with a deadline (``compat.SHIELDED_IO_LIMIT_S``; only TCP
backpressure can hold it up). Sends go out in pieces of at most the granted
credit (≤ 1 MiB), so a cancelled ``send_all`` stops between pieces: the
stream is then broken (the peer got part of the data), the connection is not.

Invariants: after :meth:`aclose` every operation raises
``ClosedResourceError``, and operations blocked in another task are woken
(their cancel scopes are cancelled) and raise it too; once a send was
cancelled half-way or the peer reset the stream, sends raise
``BrokenResourceError``; one task sends and one task receives at a time
(``BusyResourceError`` otherwise).

Limits: reads have no built-in timeout (Yamux has none either: a silent peer
blocks a read forever, pitfall P10), so callers put cancel scopes around
them. Throughput depends on write size (P15): give :meth:`send_all` at least
256 KiB at a time for bulk data (1 MiB writes reach ~170 MB/s, 4 KiB writes
~19 MB/s); read 64 KiB (the default) for messages and up to a whole
block for bulk data (``compat.yamux_io`` batches the window credit).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import trio
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.stream.exceptions import StreamClosed, StreamEOF

from p2pshare.errors import RemoteProtocolError, TransferTimeout
from p2pshare.node import compat

if TYPE_CHECKING:
    from libp2p.abc import INetStream
    from libp2p.peer.id import ID

__all__ = ["RECEIVE_SIZE_BYTES", "LibP2PStream", "read_frame", "transfer_deadline"]

# P15: with 0.8.1's stock stream 64 KiB reads measured fastest (larger reads
# batched window credit and stalled the sender); compat.yamux_io batches
# credit itself, so bulk readers may read a whole block at once.
RECEIVE_SIZE_BYTES: Final = 64 * 1024
# P15: 1 MiB writes measured fastest; bigger pieces only lengthen the
# shielded (uncancellable) part of a send (N1).
SEND_PIECE_MAX_BYTES: Final = 1024 * 1024


@contextmanager
def transfer_deadline(seconds: float, *, what: str) -> Iterator[None]:
    """``trio.fail_after(seconds)`` that raises ``TransferTimeout``.

    Args:
        seconds: the deadline, relative to now.
        what: the subject of the error message (e.g. ``"peer …Ab3x: chunk"``).

    Raises:
        TransferTimeout: the block did not finish in time (chained to the
            ``trio.TooSlowError``).
    """
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError as exc:
        raise TransferTimeout(f"{what}: no answer within {seconds:g} s") from exc


@contextmanager
def _shielded_io(
    limit_s: float = compat.SHIELDED_IO_LIMIT_S,
) -> Iterator[trio.CancelScope]:
    """A shield with a deadline, for libp2p I/O that must not be cut (N1)."""
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + limit_s
        yield scope


class _Exclusive:
    """Raise ``BusyResourceError`` on concurrent use (trio's ConflictDetector)."""

    def __init__(self, message: str) -> None:
        self._message = message
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._message)
        self._held = True

    def __exit__(self, *exc: object) -> None:
        self._held = False


class LibP2PStream(trio.abc.HalfCloseableStream):
    """One libp2p stream with trio's ``HalfCloseableStream`` semantics.

    Args:
        net_stream: an open libp2p stream (from ``host.new_stream`` or a
            stream handler). This object takes ownership: close it with
            :meth:`aclose` (or ``async with``), or abort it with :meth:`reset`.
    """

    def __init__(self, net_stream: INetStream) -> None:
        self._net = net_stream
        self._closed = False  # aclose() or reset() was called
        self._broken = False  # peer reset it, or a send was cut short
        self._eof_received = False  # peer's FIN read: receive_some -> b""
        self._eof_sent = False
        self._send_guard = _Exclusive("another task is sending on this stream")
        self._receive_guard = _Exclusive("another task is receiving on this stream")
        self._op_scopes: set[trio.CancelScope] = set()

    # -- identity ---------------------------------------------------------

    @property
    def net_stream(self) -> INetStream:
        """The wrapped libp2p stream (for libp2p-level calls only)."""
        return self._net

    @property
    def remote_peer_id(self) -> ID:
        """The peer at the other end, authenticated by the Noise handshake."""
        return self._net.muxed_conn.peer_id

    @property
    def remote_peer_bytes(self) -> bytes:
        """The remote peer id as bytes (its multihash), e.g. to sign over."""
        return self._net.muxed_conn.peer_id.to_bytes()

    @property
    def protocol(self) -> str | None:
        """The protocol id negotiated for this stream."""
        proto = self._net.get_protocol()
        return None if proto is None else str(proto)

    def __repr__(self) -> str:
        return (
            f"<LibP2PStream {self.protocol} "
            f"peer={compat.short_peer_id(self.remote_peer_id)}>"
        )

    # -- receiving --------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive up to ``max_bytes`` (default 64 KiB); ``b""`` at end of stream.

        Cancellation: safe; a cancelled receive takes no data (see the
        module docstring).

        Raises:
            BrokenResourceError: the peer reset the stream or the connection
                was lost (a clean end of stream returns ``b""`` instead).
            ClosedResourceError: this stream was closed locally.
            BusyResourceError: another task is receiving.
        """
        if max_bytes is None:
            max_bytes = RECEIVE_SIZE_BYTES
        else:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        with self._receive_guard:
            await self._checkpoint_or_raise()
            if self._eof_received:
                return b""
            if self._broken:
                raise trio.BrokenResourceError("stream was reset")
            data = b""
            with self._libp2p_call():
                await compat.wait_readable(self._net)  # cancellable
                with _shielded_io() as shield:  # N1: never cancel mid-read
                    data = await self._net.read(max_bytes)
                if shield.cancelled_caught:
                    self._broken = True
                    raise trio.BrokenResourceError("read stalled on the connection")
            return data

    # -- sending ----------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``. For bulk data pass ≥256 KiB per call (P15).

        Cancellation: safe for the connection (see the module docstring); if
        cancelled after the first piece went out, the peer has part of
        ``data``, so the stream is marked broken (later sends raise
        ``BrokenResourceError``; :meth:`aclose` resets it).

        Raises:
            BrokenResourceError: the peer reset the stream, the connection was
                lost, or Yamux got no window credit for 5 s (P10).
            ClosedResourceError: closed locally, or :meth:`send_eof` was called.
            BusyResourceError: another task is sending.
        """
        with self._send_guard:
            await self._checkpoint_or_raise(sending=True)
            view = memoryview(data).cast("B")
            completed = False
            try:
                with self._libp2p_call():
                    while view:
                        view = view[await self._send_piece(view) :]
                completed = True
            finally:
                if not completed and not self._closed:
                    self._broken = True

    async def _send_piece(self, view: memoryview) -> int:
        # N1: wait for flow-control credit while nothing is in flight (safe
        # to cancel), then write no more than the credit, shielded, so a
        # cancel can never land inside a Yamux/Noise frame write.
        credit = await compat.wait_send_credit(
            self._net, limit_s=compat.SEND_CREDIT_WAIT_S
        )
        if credit <= 0:
            raise trio.BrokenResourceError(
                f"peer gave no flow-control credit for {compat.SEND_CREDIT_WAIT_S:g} s"
            )
        # a view, not a copy: Yamux copies it into its frames
        piece = view[: min(credit, SEND_PIECE_MAX_BYTES)]
        with _shielded_io() as shield:
            await self._net.write(piece)  # type: ignore[arg-type]  # any buffer
        if shield.cancelled_caught:
            raise trio.BrokenResourceError("write stalled on the connection")
        return len(piece)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the peer has granted flow-control credit (Yamux window).

        Raises:
            ClosedResourceError: closed locally, or after :meth:`send_eof`.
            BrokenResourceError: the stream is broken.
            BusyResourceError: a send is in progress.
        """
        with self._send_guard:
            await self._checkpoint_or_raise(sending=True)
            with self._libp2p_call():
                await compat.wait_send_credit(self._net, limit_s=None)

    async def send_eof(self) -> None:
        """Half-close: the peer reads ``b""`` after our data; we can still receive.

        Idempotent. Uses ``close_write()`` when the stream has it (on QUIC a
        plain ``close()`` would also close the read side).

        Raises:
            ClosedResourceError: closed locally.
            BrokenResourceError: the stream is broken.
            BusyResourceError: a send is in progress.
        """
        with self._send_guard:
            await self._checkpoint_or_raise()
            if self._eof_sent:
                return
            if self._broken:
                raise trio.BrokenResourceError("stream was reset")
            close_write: Callable[[], Any] | None = getattr(
                self._net, "close_write", None
            )
            with self._libp2p_call(), _shielded_io():  # N1
                await (close_write() if close_write else self._net.close())
            self._eof_sent = True

    # -- closing ----------------------------------------------------------

    async def aclose(self) -> None:
        """Close the stream: gracefully if possible, else by reset (see module doc).

        Idempotent. Wakes tasks blocked on this stream (they raise
        ``ClosedResourceError``). Cancellation: a cancelled close still closes,
        by a reset shielded for at most ``compat.STREAM_RESET_TIMEOUT_S``.
        Never raises a libp2p error.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._mark_closed()
        if self._broken or self._unread_data():
            await self._abort()
            return
        cancelled = trio.current_effective_deadline() == -math.inf
        if cancelled:  # aclose_forcefully(): no grace, and no wait either
            await self._abort()
            await trio.lowlevel.checkpoint()
            return
        try:
            with _shielded_io(compat.STREAM_RESET_TIMEOUT_S) as shield:  # N1
                await self._net.close()
        except (BaseLibp2pError, OSError, trio.BrokenResourceError):
            # The connection is gone: nothing left to close gracefully.
            await self._abort()
        else:
            if shield.cancelled_caught:
                await self._abort()
        await trio.lowlevel.checkpoint()

    async def reset(self) -> None:
        """Abort the stream: the peer's reads and writes fail at once.

        Data the peer has not read yet is lost. Idempotent; shielded and
        bounded like a cancelled :meth:`aclose`.
        """
        if not self._closed:
            self._mark_closed()
            await self._abort()
        await trio.lowlevel.checkpoint()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close on a normal exit; reset when leaving through an exception."""
        if exc_value is None:
            await self.aclose()
        else:
            await self.reset()

    # -- internals --------------------------------------------------------

    def _mark_closed(self) -> None:
        self._closed = True
        for scope in self._op_scopes:
            scope.cancel()

    async def _abort(self) -> None:
        with trio.CancelScope(shield=True):
            await compat.reset_quietly(self._net)

    def _unread_data(self) -> bool:
        return compat.unread_bytes(self._net) > 0

    async def _checkpoint_or_raise(self, *, sending: bool = False) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("stream was closed")
        if sending and self._eof_sent:
            raise trio.ClosedResourceError("send_eof() was called")
        if sending and self._broken:
            raise trio.BrokenResourceError("stream was reset")

    @contextmanager
    def _libp2p_call(self) -> Iterator[None]:
        """Run one libp2p call: interruptible by aclose, exceptions mapped."""
        scope = trio.CancelScope()
        self._op_scopes.add(scope)
        try:
            with scope:
                yield
        except StreamEOF as exc:
            if self._closed:
                raise trio.ClosedResourceError("stream was closed") from exc
            if not compat.stream_eof_clean(self._net):
                self._broken = True
                raise trio.BrokenResourceError(
                    "stream reset or connection lost"
                ) from exc
            self._eof_received = True
        except StreamClosed as exc:
            raise trio.ClosedResourceError("stream is closed") from exc
        except (BaseLibp2pError, OSError) as exc:
            # StreamReset, StreamError (NetStream's "unexpected error"),
            # muxer, security and raw-connection errors: the stream is dead.
            if self._closed:
                raise trio.ClosedResourceError("stream was closed") from exc
            self._broken = True
            raise trio.BrokenResourceError(f"stream broken: {exc!r}") from exc
        finally:
            self._op_scopes.discard(scope)
        if scope.cancelled_caught:  # only aclose()/reset() cancel this scope
            raise trio.ClosedResourceError("stream was closed")


async def read_frame(
    stream: trio.abc.ReceiveStream, max_bytes: int, what: str
) -> bytes:
    """One whole ``u32 length | body`` frame of a one-request protocol
    (pin, reach), prefix included; the length is checked against
    ``max_bytes`` before anything more is read.

    Raises:
        RemoteProtocolError: the stream ended early, or the length is 0 or
            over ``max_bytes``.
    """
    buf = bytearray()
    need = 4
    while len(buf) < need:
        data = await stream.receive_some(need - len(buf))
        if not data:
            raise RemoteProtocolError(f"{what}: stream ended inside a frame")
        buf += data
        if len(buf) == 4:
            size = int.from_bytes(buf, "big")
            if not 0 < size <= max_bytes:
                raise RemoteProtocolError(f"{what}: bad frame length")
            need = 4 + size
    return bytes(buf)
