"""Cheaper Yamux stream buffers and larger sent frames, wire-compatible (F2).

F2: 0.8.1 keeps each Yamux stream's received data in one ``bytearray``:
every DATA frame is ``extend``-ed onto it and every read takes
``bytes(buffer[:n])`` (two copies) then ``del buffer[:n]``. When the
reader lags by a window (up to 16 MiB), each growth of a buffer whose front
was deleted copies all of its live bytes to a new allocation, so a bulk
receiver copies the data many times over (~0.4 CPU-s of 2 per 256 MiB in
the profile in ``docs/network.md``). :class:`ChunkBuffer` keeps the frames
as they arrived, in a deque: appending is free, a read joins only the
frames it returns. It offers exactly the operations 0.8.1's ``yamux.py``
(and ``compat.stream_io``) use on a stream buffer: ``len``, truth,
``extend``, ``buffer[:n]``, ``del buffer[:n]``, ``bytes(buffer)`` and
``clear``. :class:`BufferedYamux` is 0.8.1's ``Yamux`` whose stream
buffers are chunk buffers.

:func:`tune_yamux` batches window updates as go-yamux does and raises the
size of the frames we *send* to :data:`YAMUX_SEND_FRAME` (each still
bounded by the receiver's window, as the spec requires; a 0.8.1 receiver
accepts any frame within its window),
so a 1 MiB write crosses the muxer and Noise as four frames, not sixteen
frames split into 32 Noise messages (a 64 KiB frame plus its 12-byte header
does not fit in one 65 519-byte Noise message).

Neither changes a byte's meaning on the wire; both are skipped when
``P2PSHARE_STOCK_STREAM=1`` (see ``compat.secure_io.stock_stream``).

Remove when: upstream Yamux buffers received frames without copying (e.g. a
deque of frames, as go-yamux's ``segmentedBuffer``) and sends larger frames.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice
from typing import Any, Final, SupportsIndex

from libp2p.stream_muxer.yamux.yamux import Yamux

from p2pshare.node.compat.secure_io import BufferedNoiseSession

__all__ = ["YAMUX_SEND_FRAME", "BufferedYamux", "ChunkBuffer", "tune_yamux"]

YAMUX_SEND_FRAME: Final = 256 * 1024  # the largest Yamux frame payload we send


class ChunkBuffer:
    """A byte queue of received frames (see the module docstring)."""

    __slots__ = ("_chunks", "_head", "_size")

    def __init__(self, data: bytes | bytearray = b"") -> None:
        self._chunks: deque[bytes] = deque()
        self._head = 0  # bytes of _chunks[0] already taken
        self._size = 0
        if data:
            self.extend(data)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __bytes__(self) -> bytes:
        return self._peek(self._size)

    def extend(self, data: bytes | bytearray | memoryview | Iterable[int]) -> None:
        """Append ``data`` (kept as one chunk, not copied when it is ``bytes``)."""
        chunk = data if isinstance(data, bytes) else bytes(data)
        if chunk:
            self._chunks.append(chunk)
            self._size += len(chunk)

    def clear(self) -> None:
        self._chunks.clear()
        self._head = 0
        self._size = 0

    def __getitem__(self, key: slice) -> bytes:
        return self._peek(self._prefix(key))

    def __delitem__(self, key: slice) -> None:
        n = self._prefix(key)
        chunks = self._chunks
        head = self._head
        self._size -= n
        while n:
            left = len(chunks[0]) - head
            if left > n:
                head += n
                break
            chunks.popleft()
            head = 0
            n -= left
        self._head = head

    def _prefix(self, key: Any) -> int:
        """The length of the prefix ``key`` (``[:n]`` or ``[0:n]``) names."""
        prefix = isinstance(key, slice) and key.start in (None, 0)
        if not prefix or key.step not in (None, 1):
            raise TypeError("a ChunkBuffer supports only prefix slices [:n]")
        stop: SupportsIndex | None = key.stop
        if stop is None:
            return self._size
        n = int(stop)
        return max(0, min(n if n >= 0 else self._size + n, self._size))

    def _peek(self, n: int) -> bytes:
        """The first ``n`` bytes (``n`` at most the size), not consumed."""
        if not n:
            return b""
        chunks = self._chunks
        head = self._head
        first = chunks[0]
        if len(first) - head >= n:
            return first if head == 0 and len(first) == n else first[head : head + n]
        parts = [first[head:]]
        got = len(parts[0])
        for chunk in islice(chunks, 1, None):
            take = n - got
            parts.append(chunk if len(chunk) <= take else chunk[:take])
            got += len(parts[-1])
            if got == n:
                break
        return b"".join(parts)


class _Buffers(dict[int, Any]):
    """``Yamux.stream_buffers``: a new stream's ``bytearray()`` becomes a
    :class:`ChunkBuffer`."""

    def __setitem__(self, key: int, value: Any) -> None:
        if isinstance(value, bytearray):
            value = ChunkBuffer(value)
        super().__setitem__(key, value)


class BufferedYamux(Yamux):
    """0.8.1's Yamux whose stream buffers are :class:`ChunkBuffer` s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream_buffers = _Buffers()


def tune_yamux() -> None:
    """Apply F2 to 0.8.1's ``yamux`` module.

    * Build every Yamux connection as a :class:`BufferedYamux`.
    * Send frames of up to :data:`YAMUX_SEND_FRAME` bytes (see the module
      docstring). 0.8.1 reads ``MAX_MESSAGE_SIZE`` only to size the frames
      it sends and the slices a stream's ``read(-1)`` returns.
    * Batch window updates as go-yamux does: credit goes back to the sender
      when half the window has been read, not after every read. 0.8.1's
      default (``PY_YAMUX_RELEASE_ON_READ=1``) sends a WINDOW_UPDATE frame
      (a Noise message and a ``send`` syscall) for every read the
      application makes: one per 64 KiB read, ~40 000 per GiB received.
    * Read the ``PY_YAMUX_*`` settings once: 0.8.1 looks each up in
      ``os.environ`` on every read and write.
    * ``yamux.read_exactly`` reads a :class:`BufferedNoiseSession` with one
      call (it always returns exactly the bytes asked for): 0.8.1's
      ``read_exactly`` copies each frame twice through a ``bytearray``.
    """
    from libp2p.stream_muxer import muxer_multistream
    from libp2p.stream_muxer.yamux import yamux

    # 0.8.1's muxer negotiation builds ``Yamux`` by name, whatever class
    # the muxer options give for the protocol
    muxer_multistream.Yamux = BufferedYamux  # type: ignore[attr-defined]
    yamux.MAX_MESSAGE_SIZE = YAMUX_SEND_FRAME
    for name, value in (
        ("_yamux_release_on_read", False),
        ("_perf_yamux_debug_enabled", yamux._perf_yamux_debug_enabled()),
        ("_yamux_disable_hysteresis", yamux._yamux_disable_hysteresis()),
        ("_yamux_batch_threshold_divisor", yamux._yamux_batch_threshold_divisor()),
    ):
        setattr(yamux, name, _constant(value))
    stock = yamux.read_exactly  # type: ignore[attr-defined]
    if not getattr(stock, "_p2pshare", False):
        yamux.read_exactly = _read_exactly(stock)  # type: ignore[attr-defined]


def _constant(value: object) -> Any:
    def get() -> object:
        return value

    return get


def _read_exactly(stock: Any) -> Any:
    async def read_exactly(reader: Any, n: int, *args: Any) -> bytes:
        if type(reader) is BufferedNoiseSession:
            return await reader.read(n)  # exactly n, or it raises
        return await stock(reader, n, *args)  # type: ignore[no-any-return]

    read_exactly._p2pshare = True  # type: ignore[attr-defined]
    return read_exactly
