"""Content-addressed block files.

Theory of operation
-------------------
A block is an immutable byte string named by its BLAKE2b-256 id: chunk
ciphertext (copy mode), index blocks and envelopes. It lives at
``blocks/<2 hex>/<64 hex>``. A block is written to ``blocks/tmp/``, fsynced,
renamed into place, and its directory fsynced, so after a crash a block
file is either complete or absent, never torn. A ``Batch`` defers the
fsyncs of many blocks to a background thread and fsyncs each directory once
at commit, which is what lets ``add --copy`` run at disk speed; nothing
refers to a batched block until :meth:`Batch.commit` returned.

Every read verifies the bytes against the id before returning them, so bit
rot or tampering surfaces as :class:`~p2pshare.errors.IntegrityError`; the
caller adds what the block was (``envelope``, ``chunk 7``, …) to the
message.

**Garbage collection** (``gc.py``) deletes block files no share refers to.
A block becomes referenced only when the catalog commits the share (or pin)
that keeps it, *after* the file was written, so a collector must never run
between the two. :class:`WriteGuard` orders them: writers (an add, a
download registering its envelope, a seed storing a replica chunk) hold it
shared from the first block they write until the catalog commit; the
collector holds it exclusive. Across processes the same holds through
``blocks.lock`` beside ``blocks/``: every open block store keeps a shared
``flock`` on it for its lifetime, and the collector converts its own to
exclusive without waiting, so it runs only when no other process has the
store open (else it is skipped, never blocking).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from p2pshare.errors import BlockMissing, IntegrityError, StoreError
from p2pshare.format.chunks import block_id

__all__ = ["Batch", "BlockHandle", "BlockStore", "WriteGuard", "fsync_dir"]

LOCK_SUFFIX = ".lock"

# A block written to a temp file and not yet adopted: (temp file, final path).
BlockHandle = tuple[Path, Path]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlockStore:
    """Blocks on disk under ``root``, verified on every read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        try:
            self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
            for made in (root, self.tmp):  # a umask never loosens the store
                if made.stat().st_mode & 0o077:
                    made.chmod(0o700)
        except OSError as exc:
            raise StoreError(
                f"{root}: cannot create block store ({exc.strerror})"
            ) from exc
        # beside the directory, not in it: nothing in blocks/ but blocks
        self.guard = WriteGuard(root.with_name(root.name + LOCK_SUFFIX))

    def close(self) -> None:
        self.guard.close()

    def ids(self) -> Iterator[tuple[Path, bytes]]:
        """Every block file and its id (from its name); other files are
        skipped. For the collector."""
        for sub in self.root.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for path in sub.iterdir():
                try:
                    bid = bytes.fromhex(path.name)
                except ValueError:
                    continue
                if len(bid) == 32 and path.name.startswith(sub.name):
                    yield path, bid

    def path(self, bid: bytes) -> Path:
        h = bid.hex()
        return self.root / h[:2] / h

    def has(self, bid: bytes) -> bool:
        return self.path(bid).is_file()

    def get(self, bid: bytes, *, what: str = "block") -> bytes:
        """Read a block and verify it against its id.

        Raises:
            BlockMissing: no such block file.
            IntegrityError: the file's bytes do not hash to ``bid``.
        """
        try:
            data = self.path(bid).read_bytes()
        except FileNotFoundError as exc:
            raise BlockMissing(f"{what}: block {bid.hex()[:12]} is missing") from exc
        except OSError as exc:
            raise StoreError(f"{what}: cannot read block ({exc.strerror})") from exc
        if block_id(data) != bid:
            raise IntegrityError(f"{what}: stored block {bid.hex()[:12]} is corrupt")
        return data

    def put(self, data: bytes) -> bytes:
        """Store one block durably; returns its id."""
        with self.batch() as batch:
            bid = batch.add(data)
        return bid

    @contextlib.contextmanager
    def batch(self) -> Iterator[Batch]:
        """Group block writes under one commit; aborted on exception."""
        batch = Batch(self)
        try:
            yield batch
        except BaseException:
            batch.abort()
            raise
        batch.commit()

    def delete(self, bid: bytes) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(bid).unlink()

    def clean_tmp(self) -> None:
        """Remove temp files that writers which no longer run left behind.

        Temp names carry the writer's pid; files of live processes are kept,
        so two processes sharing a home never delete each other's writes.
        """
        for leftover in self.tmp.iterdir():
            parts = leftover.name.split(".")
            pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0
            if pid and _alive(pid):
                continue
            with contextlib.suppress(OSError):
                leftover.unlink()


class WriteGuard:
    """Block writers share it; the garbage collector holds it alone (see the
    module docstring). Thread-safe; one per open block store."""

    def __init__(self, path: Path) -> None:
        self._cond = threading.Condition()
        self._writers = 0
        self._collecting = False
        try:
            self._fd: int | None = os.open(
                path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            fcntl.flock(self._fd, fcntl.LOCK_SH)
        except OSError as exc:
            raise StoreError(f"{path}: cannot lock ({exc.strerror})") from exc

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while writing blocks until the catalog refers to them.
        Re-entrant; waits only while a collection runs."""
        with self._cond:
            self._cond.wait_for(lambda: not self._collecting)
            self._writers += 1
        try:
            yield
        finally:
            with self._cond:
                self._writers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def collecting(self, wait_s: float) -> Iterator[None]:
        """Exclusive: no writer in this process, none in any other.

        Raises:
            StoreError: writers of this process did not finish within
                ``wait_s``, or another process has the block store open.
        """
        with self._cond:
            idle = self._cond.wait_for(
                lambda: self._writers == 0 and not self._collecting, wait_s
            )
            if not idle:
                raise StoreError("block store: busy writing; try gc again later")
            self._collecting = True
        try:
            assert self._fd is not None
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fcntl.flock(self._fd, fcntl.LOCK_SH)
                raise StoreError(
                    "block store: another p2pshare process has this home open"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_SH)
        finally:
            with self._cond:
                self._collecting = False
                self._cond.notify_all()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Batch:
    """Blocks written now and made durable and visible together.

    A block's temp file is written by :meth:`write_temp`, which is safe to
    call from worker threads (``add --copy`` writes from its sealing
    threads), then handed in, in order, by :meth:`adopt` from the caller's
    thread (:meth:`add` does both). Adopted blocks are flushed (fsync,
    rename) in groups of ``GROUP`` by one background thread, so the disk
    works while the caller seals the next chunks; at most two groups are in
    flight. ``commit`` waits for every group, then fsyncs each touched
    directory once. Temp files are closed once written (a group reopens
    them to fsync), so no descriptor outlives a call, and ``abort`` deletes
    every temp file this batch made, adopted or not. A block that became
    visible before a failed commit is merely an orphan that no share refers
    to, which is harmless.
    """

    GROUP = 32

    def __init__(self, store: BlockStore) -> None:
        self._store = store
        self._group: list[BlockHandle] = []
        self._dirs: set[Path] = set()
        self._flusher: ThreadPoolExecutor | None = None
        self._inflight: Future[None] | None = None
        self._lock = threading.Lock()  # guards the two below
        self._serial = itertools.count()
        self._created: set[Path] = set()  # temp files not yet renamed

    def add(self, data: bytes, bid: bytes | None = None) -> bytes:
        """Write ``data`` as a block; ``bid`` is its id if the caller has
        already hashed it. Returns the id."""
        if bid is None:
            bid = block_id(data)
        self.adopt(self.write_temp(data, bid))
        return bid

    def write_temp(self, data: bytes, bid: bytes) -> BlockHandle | None:
        """Write ``data`` (whose id is ``bid``) to a temp file; thread-safe.
        Returns the handle to :meth:`adopt`, or None if the block exists."""
        final = self._store.path(bid)
        if final.exists():
            return None  # content-addressed: same id, same bytes
        with self._lock:
            n = next(self._serial)
        tmp = self._store.tmp / f"{bid.hex()}.{os.getpid()}.{id(self)}.{n}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StoreError(f"block store: cannot write ({exc.strerror})") from exc
        with self._lock:
            self._created.add(tmp)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise StoreError(f"block store: cannot write ({exc.strerror})") from exc
        finally:
            os.close(fd)
        return tmp, final

    def adopt(self, handle: BlockHandle | None) -> None:
        """Queue a written temp file for the next commit (caller's thread)."""
        if handle is None:
            return
        self._group.append(handle)
        if len(self._group) >= self.GROUP:
            self._hand_off()

    def _hand_off(self) -> None:
        self._wait_inflight()
        group, self._group = self._group, []
        if self._flusher is None:
            self._flusher = ThreadPoolExecutor(1, thread_name_prefix="p2pshare-fsync")
        self._inflight = self._flusher.submit(self._flush, group)

    def _flush(self, group: list[BlockHandle]) -> None:
        for tmp, _ in group:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for tmp, final in group:
            final.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(tmp, final)
            self._dirs.add(final.parent)
            with self._lock:
                self._created.discard(tmp)

    def _wait_inflight(self) -> None:
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            try:
                inflight.result()
            except OSError as exc:
                self.abort()
                raise StoreError(
                    f"block store: cannot commit ({exc.strerror})"
                ) from exc

    def commit(self) -> None:
        """Make every added block durable and visible."""
        try:
            self._wait_inflight()
            group, self._group = self._group, []
            self._flush(group)
            if self._dirs:
                self._dirs.add(self._store.root)
            for d in self._dirs:
                fsync_dir(d)
            self._dirs.clear()
        except OSError as exc:
            self.abort()
            raise StoreError(f"block store: cannot commit ({exc.strerror})") from exc
        finally:
            self._shutdown()
        self._discard_created()  # written but never adopted (none normally)

    def abort(self) -> None:
        """Drop every block not yet renamed into place (its temp file)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            with contextlib.suppress(OSError):
                inflight.result()
        self._group.clear()
        self._discard_created()
        self._shutdown()

    def _discard_created(self) -> None:
        with self._lock:
            created, self._created = self._created, set()
        for tmp in created:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _shutdown(self) -> None:
        if self._flusher is not None:
            self._flusher.shutdown(wait=True)
            self._flusher = None
