"""Streaming reads: a file's plaintext in order, each chunk verified first.

Theory of operation
-------------------
``cat`` (and, later, the HTTP gateway) reads a byte range of a file share
while it downloads. The file is opened on every provider found (the
link's hints, the LAN, the DHT) like any download, and the usual
:class:`~p2pshare.node.fill.Fill` fetches its chunks from all of them at
once, with two differences:

* the sink (:class:`StreamSink`) keeps verified plaintext chunks in memory
  instead of writing a partial file, and only the chunks the range covers
  are wanted (so ``--range`` of the last MiB fetches one or two chunks);
* the scheduler's **horizon** (``protocol/scheduler.py``) lets it assign
  only chunks below ``next + WINDOW``, in index order, where ``next`` is the
  chunk the reader waits for. The reader writes each chunk as soon as it
  and every chunk before it verified, frees it, and moves the horizon. So
  at most :data:`WINDOW` chunks are in flight or waiting (16 MiB at the
  default chunk size) whatever the file size, and the first byte goes out
  as soon as the first chunk verified.

Every byte written was verified against its chunk id and authenticated
before (the same checks as a download; a provider that sends a bad chunk
is banned and its chunk fetched elsewhere).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from p2pshare.errors import BlockMissing, IntegrityError, NotFoundError, UsageError
from p2pshare.format import FileKeys, Geometry, Meta, ShareLink, block_id, open_chunk
from p2pshare.format.chunks import TAG_BYTES, seal_chunk
from p2pshare.format.folder import Entry, decode_listing
from p2pshare.node.fetch import NetworkSource, drive
from p2pshare.node.fill import Fill, NetShare
from p2pshare.store.walk import Open, ReadAll, Walk, open_folder

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = [
    "WINDOW",
    "ByteRange",
    "StreamSink",
    "Target",
    "find_file",
    "open_target",
    "stream_file",
]

WINDOW = 16  # chunks fetched ahead of the reader (in flight or waiting)

Send = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start``..``end`` of a file, both included (as HTTP Range);
    ``end`` None: to the end."""

    start: int = 0
    end: int | None = None

    @classmethod
    def parse(cls, text: str) -> ByteRange:
        """``A-B``, ``A-`` or ``-N`` (the last N bytes).

        Raises:
            UsageError: anything else.
        """
        first, dash, last = text.strip().partition("-")
        try:
            if not dash or (not first and not last):
                raise ValueError
            if not first:
                n = int(last)
                if n <= 0:
                    raise ValueError
                return cls(start=-n)
            start = int(first)
            end = int(last) if last else None
        except ValueError:
            raise UsageError(
                f"--range: {text!r:.40} is not A-B, A- or -N (byte offsets)"
            ) from None
        if start < 0 or (end is not None and end < start):
            raise UsageError(f"--range: {text!r:.40} is empty or backwards")
        return cls(start=start, end=end)

    def within(self, size: int) -> tuple[int, int] | None:
        """(first, last) byte offsets in a file of ``size`` bytes, or None
        when the range holds no byte of it.

        Raises:
            UsageError: it starts beyond the end (HTTP's 416).
        """
        start = max(0, size + self.start) if self.start < 0 else self.start
        if size == 0:
            return None
        if start >= size:
            raise UsageError(f"--range: starts at {start}, the file has {size} bytes")
        end = size - 1 if self.end is None else min(self.end, size - 1)
        return start, end


class StreamSink:
    """Verified plaintext chunks kept for the reader (see the module
    docstring); ``verify_write`` runs in a worker thread."""

    def __init__(
        self, share: NetShare, keys: FileKeys, size: int, wanted: range
    ) -> None:
        self.share = share
        self.keys = keys
        self.wanted = wanted
        self.geometry = Geometry(size, share.envelope.chunk_size)
        self._lock = threading.Lock()
        self._ready: dict[int, bytes] = {}
        self._done: set[int] = set()

    def missing(self) -> list[int]:
        return [i for i in self.wanted if i not in self._done]

    def has(self, i: int) -> bool:
        return i in self._done

    def amount(self, i: int) -> int:
        return self.geometry.plain_len(i)

    def verify_write(self, i: int, data: bytes) -> bool:
        if block_id(data) != self.share.chunk_id(i):
            return False
        try:
            plain = open_chunk(self.keys.chunk, i, self.share.envelope.count, data)
        except IntegrityError:
            return False
        with self._lock:
            self._ready[i] = plain
            self._done.add(i)
        return True

    def take(self, i: int) -> bytes | None:
        with self._lock:
            return self._ready.pop(i, None)

    def cipher(self, i: int) -> bytes:
        """A chunk not yet read, sealed again (deterministic); one the
        reader took is gone (BlockMissing: recovery cannot use it)."""
        with self._lock:
            plain = self._ready.get(i)
        if plain is None:
            raise BlockMissing(f"chunk {i}: already read")
        env = self.share.envelope
        padded = env.cipher_len(i) - TAG_BYTES
        return seal_chunk(
            self.keys.chunk, i, env.count, plain + bytes(padded - len(plain))
        )


def find_file(
    link: ShareLink, path: str | None
) -> Walk[tuple[bytes, bytes, list[Entry] | None]]:
    """The (root id, key) of what ``path`` names in the share (the share
    itself without a path), and the entries of the folder when it is one,
    fetching only envelopes and listings.

    Raises:
        UsageError: a bad path.
        NotFoundError: the path is not in the folder.
    """
    assert link.key is not None
    parts = [] if not path else path.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"--path: {path!r:.80} is not a relative path in the share")
    opened, keys, meta = yield Open(link.root_id, link.key)
    root, key = link.root_id, link.key
    try:
        for depth, name in enumerate(parts):
            if meta.kind != "folder":
                raise NotFoundError(f"--path: {'/'.join(parts[:depth])} is a file")
            listing = decode_listing((yield ReadAll(opened, keys, meta)))
            entry = next((e for e in listing if e.name == name), None)
            where = "/".join(parts[: depth + 1])
            if entry is None:
                raise NotFoundError(f"--path: {where} is not in the share")
            root, key = entry.root, entry.key
            if entry.kind == "file":
                if depth != len(parts) - 1:
                    raise NotFoundError(f"--path: {where} is a file")
                return root, key, None
            child = yield from open_folder(entry, where)
            opened.close()
            opened, keys, meta = child
        if meta.kind == "folder":
            return root, key, decode_listing((yield ReadAll(opened, keys, meta)))
        return root, key, None
    finally:
        opened.close()


@dataclass
class Target:
    """What a link and path name, opened: a file (``meta``; :meth:`pump`
    sends a byte range of it) or a folder (``entries``)."""

    name: str
    entries: list[Entry] | None
    meta: Meta | None
    _pump: Callable[[tuple[int, int], Send], Awaitable[int]] | None = None

    async def pump(self, span: tuple[int, int], send: Send) -> int:
        """Send bytes ``span`` (both included) in order; returns how many."""
        assert self._pump is not None
        return await self._pump(span, send)


@asynccontextmanager
async def open_target(
    node: Node,
    link: ShareLink,
    *,
    path: str | None,
    timeout_s: float,
    stall_s: float,
) -> AsyncIterator[Target]:
    """Open what ``link`` and ``path`` name, on every provider found (or
    from this home, when it holds the share).

    Raises:
        UsageError, NotFoundError: see :func:`find_file`.
        NoProviders, TransferTimeout, IntegrityError: as a download.
    """
    async with node.source(link, timeout_s=timeout_s, stall_s=stall_s) as net:
        net.announce = None  # a read keeps nothing this node could serve
        root, key, entries = await drive(find_file(link, path), net)
        name = path.strip("/").rsplit("/", 1)[-1] if path else ""
        if entries is not None:
            yield Target(name=name, entries=entries, meta=None)
            return
        share, keys, meta = await net.step(Open(root, key))
        try:
            if isinstance(share, NetShare):
                yield Target(
                    name=meta.name,
                    entries=None,
                    meta=meta,
                    _pump=lambda span, send: _pump(net, share, keys, meta, span, send),
                )
            else:  # held here: read (and verify) it from this home
                yield Target(
                    name=meta.name,
                    entries=None,
                    meta=meta,
                    _pump=lambda span, send: _local(share, keys, meta, span, send),
                )
        finally:
            share.close()


async def stream_file(
    node: Node,
    link: ShareLink,
    *,
    path: str | None,
    byte_range: ByteRange,
    write: Callable[[bytes], None],
    timeout_s: float,
    stall_s: float,
) -> int:
    """Write the plaintext of ``byte_range`` of the file ``link`` (and
    ``path``) names through ``write`` (blocking; run in a worker thread), in
    order, each chunk verified first. Returns the bytes written.

    Raises:
        UsageError, NotFoundError: a folder, see :func:`find_file` and
            :meth:`ByteRange.within`.
        NoProviders, TransferTimeout, IntegrityError: as a download.
    """
    async with open_target(
        node, link, path=path, timeout_s=timeout_s, stall_s=stall_s
    ) as target:
        if target.meta is None:
            raise UsageError("cat: that is a folder: name a file with --path")
        span = byte_range.within(target.meta.size)
        if span is None:
            return 0

        async def send(data: bytes) -> None:
            await trio.to_thread.run_sync(write, data)

        return await target.pump(span, send)


def _within(i: int, span: tuple[int, int], cs: int) -> tuple[int, int]:
    """The part of chunk ``i`` (``cs`` bytes a chunk) inside ``span``."""
    start, end = span
    return max(start - i * cs, 0), min(end - i * cs + 1, cs)


async def _local(
    share: Any, keys: FileKeys, meta: Meta, span: tuple[int, int], send: Send
) -> int:
    start, end = span
    cs = share.envelope.chunk_size
    sent = 0
    for i in range(start // cs, end // cs + 1):
        plain = await trio.to_thread.run_sync(share.plain, i, share.chunk_id(i), keys)
        lo, hi = _within(i, span, cs)
        await send(plain[lo:hi])
        sent += hi - lo
    return sent


async def _pump(
    net: NetworkSource,
    share: NetShare,
    keys: FileKeys,
    meta: Meta,
    span: tuple[int, int],
    send: Send,
) -> int:
    start, end = span
    cs = share.envelope.chunk_size
    first, last = start // cs, end // cs
    sink = StreamSink(share, keys, meta.size, range(first, last + 1))
    arrived = trio.Event()

    def progress(_n: int) -> None:
        arrived.set()

    fill = Fill(net, share, keys.signing_key, sink, progress)
    fill.sched.horizon = first + WINDOW
    written = 0

    async def reader() -> None:
        nonlocal arrived, written
        for i in range(first, last + 1):
            while (plain := sink.take(i)) is None:
                await arrived.wait()
                arrived = trio.Event()
            lo, hi = _within(i, span, cs)
            await send(plain[lo:hi])
            written += hi - lo
            fill.sched.horizon = i + 1 + WINDOW
            fill._poke()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await fill.run()
    return written
