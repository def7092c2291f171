"""Partial download files with a crash-safe chunk bitmap.

Theory of operation
-------------------
A download of one file writes decrypted chunks at their offsets into a
partial file next to its destination, named ``.p2pshare-<root>.part`` (no
plaintext name, bounded length), created 0600 without following symlinks.
The catalog keeps a bitmap of the chunks that are **verified and durable**:

1. ``write(i, plain)`` writes the chunk (it was verified against its chunk
   id and authenticated by the caller) and marks it pending;
2. ``checkpoint()`` fsyncs the file, then stores the bitmap with the
   pending bits set. Bits are only set after the bytes are on disk, so
   after a crash every set bit is true; unset bits are re-fetched. During
   a download the fsync runs in a background thread and its bits are
   recorded at the following checkpoint, so the disk flushes while the
   next chunks are verified.

``finish(mtime_ns)`` truncates to the exact size, fsyncs, sets the mtime
and moves the file into place with ``link``+``unlink`` (which, unlike
``rename``, refuses to replace an existing file), then drops the catalog
row. If the partial file vanished while its row remained, the bitmap is
reset rather than trusted.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from p2pshare.errors import OutputExistsError, StoreError
from p2pshare.format import Geometry
from p2pshare.store.blocks import fsync_dir
from p2pshare.store.catalog import Catalog

__all__ = [
    "CHECKPOINT_CHUNKS",
    "CHECKPOINT_S",
    "PartialFile",
    "partial_name",
    "place",
    "umask",
]

CHECKPOINT_CHUNKS = 64  # fsync + bitmap commit at most every 64 chunks...
CHECKPOINT_S = 1.0  # ...or every second, whichever comes first
DIRECT_ALIGN = 4096  # O_DIRECT: offsets, lengths and buffers aligned to this

_aligned = threading.local()  # one page-aligned buffer per writing thread


def _aligned_buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer of at least ``size`` bytes for this thread."""
    buf: mmap.mmap | None = getattr(_aligned, "buf", None)
    if buf is None or len(buf) < size:
        buf = mmap.mmap(-1, -(-size // DIRECT_ALIGN) * DIRECT_ALIGN)
        _aligned.buf = buf
    return buf


def partial_name(root: bytes) -> str:
    return f".p2pshare-{root.hex()[:24]}.part"


class PartialFile:
    """One file being downloaded; see the module docstring."""

    def __init__(
        self, catalog: Catalog, root: bytes, dest: Path, geometry: Geometry
    ) -> None:
        self.catalog = catalog
        self.root = root
        self.dest = dest
        self.geometry = geometry
        self.path = dest.with_name(partial_name(root))
        row = catalog.open_download(root, str(dest), str(self.path), geometry.count)
        self.download_id = row.id
        self._bits = bytearray(row.bitmap)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        existed = self.path.exists()
        try:
            self._fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create ({exc.strerror})") from exc
        self._direct_fd = self._open_direct()
        self._direct_ok = True  # cleared (never set again) if a write is refused
        if not existed and any(self._bits):
            self._bits = bytearray(len(self._bits))  # file lost: trust nothing
            catalog.save_bitmap(self.download_id, bytes(self._bits))
        self.resumed = self.done_count()
        self._pending: list[int] = []
        self._last_checkpoint = time.monotonic()
        self._syncer: ThreadPoolExecutor | None = None
        self._sync: tuple[Future[None], list[int]] | None = None

    def has(self, i: int) -> bool:
        return bool(self._bits[i >> 3] & (1 << (i & 7)))

    def done_count(self) -> int:
        return sum(bin(b).count("1") for b in self._bits)

    def missing(self) -> list[int]:
        return [i for i in range(self.geometry.count) if not self.has(i)]

    def read(self, i: int) -> bytes:
        """Chunk ``i``'s plaintext as written (without padding)."""
        geo = self.geometry
        try:
            return os.pread(self._fd, geo.plain_len(i), geo.offset(i))
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read ({exc.strerror})") from exc

    def write(self, i: int, padded_plain: bytes) -> None:
        """Write verified plaintext of chunk ``i`` (padding is dropped)."""
        self.write_data(i, padded_plain)
        self.mark(i)

    def _open_direct(self) -> int | None:
        """A second descriptor with ``O_DIRECT``, or None where unsupported.

        Chunks are written through it, past the page cache: on the machine
        of the benchmarks, buffered writes of new file data cost ~2.2
        CPU-seconds per GiB in the kernel (page allocation and accounting;
        ``docs/network.md``), direct ones 0.1, and a download writes every
        byte once and does not read it back. Durability is unchanged:
        :meth:`checkpoint` fsyncs the file before it records any chunk.
        """
        flag = getattr(os, "O_DIRECT", 0)
        if not flag:
            return None
        flags = os.O_WRONLY | flag | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags)
        except OSError:  # e.g. tmpfs: EINVAL
            return None

    def write_data(self, i: int, padded_plain: bytes) -> None:
        """Only the ``pwrite`` of :meth:`write`: safe to call from several
        threads at once (distinct chunks); :meth:`mark` must follow, from
        the one thread that owns this file."""
        geo = self.geometry
        size = geo.plain_len(i)
        data = memoryview(padded_plain)[:size]
        offset = geo.offset(i)
        fd = self._fd
        direct = self._direct_fd
        aligned = not (offset | size) % DIRECT_ALIGN
        if direct is not None and self._direct_ok and aligned and size:
            buf = _aligned_buffer(size)
            buf[:size] = data
            data, fd = memoryview(buf)[:size], direct
        try:
            while data:
                n = os.pwrite(fd, data, offset)
                data, offset = data[n:], offset + n
        except OSError as exc:
            if fd == direct and exc.errno == errno.EINVAL:
                self._direct_ok = False  # alignment refused: write buffered
                self.write_data(i, padded_plain)
                return
            raise StoreError(f"{self.path}: cannot write ({exc.strerror})") from exc

    def mark(self, i: int) -> None:
        """Chunk ``i`` was written: it is recorded at the next checkpoint."""
        self._pending.append(i)
        if (
            len(self._pending) >= CHECKPOINT_CHUNKS
            or time.monotonic() - self._last_checkpoint >= CHECKPOINT_S
        ):
            self.checkpoint(wait=False)

    def checkpoint(self, *, wait: bool = True) -> None:
        """Make written chunks durable, then record them in the bitmap.

        With ``wait=False`` the fsync runs in a background thread and its
        chunks are recorded at the next checkpoint, so writing goes on while
        the disk flushes (the bitmap then lags one interval behind, which a
        crash only turns into a little re-fetching).
        """
        self._record_sync()
        if not self._pending:
            return
        covers, self._pending = self._pending, []
        if wait:
            self._fsync()
            self._set_bits(covers)
        else:
            if self._syncer is None:
                self._syncer = ThreadPoolExecutor(
                    1, thread_name_prefix="p2pshare-fsync"
                )
            self._sync = (self._syncer.submit(self._fsync), covers)
        self._last_checkpoint = time.monotonic()

    def _fsync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot sync ({exc.strerror})") from exc

    def _record_sync(self) -> None:
        if self._sync is not None:
            future, covers = self._sync
            self._sync = None
            future.result()
            self._set_bits(covers)

    def _set_bits(self, covers: list[int]) -> None:
        for i in covers:
            self._bits[i >> 3] |= 1 << (i & 7)
        self.catalog.save_bitmap(self.download_id, bytes(self._bits))

    def finish(self, mtime_ns: int) -> None:
        """Move the complete file into place.

        Raises:
            OutputExistsError: the destination appeared meanwhile.
        """
        self.checkpoint()
        if self.done_count() != self.geometry.count:
            raise StoreError(f"{self.dest}: download incomplete")
        try:
            os.ftruncate(self._fd, self.geometry.size)
            os.fsync(self._fd)
            os.utime(self._fd, ns=(mtime_ns, mtime_ns))
            os.fchmod(self._fd, 0o666 & ~umask())
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot finish ({exc.strerror})") from exc
        self.close()
        place(self.path, self.dest)
        self.catalog.finish_download(self.download_id)

    def discard(self) -> None:
        """Delete the partial file and forget the download."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.catalog.finish_download(self.download_id)

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(StoreError):
                self.checkpoint()
            if self._syncer is not None:
                self._syncer.shutdown(wait=True)
                self._syncer = None
            if self._direct_fd is not None:
                os.close(self._direct_fd)
                self._direct_fd = None
            os.close(self._fd)
            self._fd = -1


def place(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest`` without ever replacing an existing ``dest``."""
    try:
        if src.is_dir():
            if dest.exists() or dest.is_symlink():
                raise FileExistsError(errno.EEXIST, "exists")
            os.rename(src, dest)
        else:
            try:
                os.link(src, dest, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                    raise
                if dest.exists() or dest.is_symlink():  # FS without hard links
                    raise FileExistsError(errno.EEXIST, "exists") from exc
                os.rename(src, dest)
            else:
                src.unlink()
        fsync_dir(dest.parent)
    except FileExistsError as exc:
        raise OutputExistsError(f"{dest}: already exists") from exc
    except OSError as exc:
        raise StoreError(f"{dest}: cannot move into place ({exc.strerror})") from exc


def umask() -> int:
    """The process umask (read without changing it for long)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
