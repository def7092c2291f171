"""Content-addressed block files.

Theory of operation
-------------------
A block is an immutable byte string named by its BLAKE2b-256 id: chunk
ciphertext (copy mode), index blocks and envelopes. It lives at
``blocks/<2 hex>/<64 hex>``. A block is written to ``blocks/tmp/``, fsynced,
renamed into place, and its directory fsynced, so after a crash a block
file is either complete or absent, never torn. A ``Batch`` defers the
fsyncs of many blocks to one commit (fsync every file, rename every file,
fsync each directory once), which is what lets ``add --copy`` run at disk
speed; nothing refers to a batched block until :meth:`Batch.commit`
returned.

Every read verifies the bytes against the id before returning them, so bit
rot or tampering surfaces as :class:`~p2pshare.errors.IntegrityError`; the
caller adds what the block was (``envelope``, ``chunk 7``, …) to the
message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from p2pshare.errors import BlockMissing, IntegrityError, StoreError
from p2pshare.format.chunks import block_id

__all__ = ["Batch", "BlockStore", "fsync_dir"]


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
        except OSError as exc:
            raise StoreError(
                f"{root}: cannot create block store ({exc.strerror})"
            ) from exc

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
        """Remove temp files a crashed writer left behind."""
        for leftover in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()


class Batch:
    """Blocks written now and made durable and visible together.

    At most ``MAX_OPEN`` blocks wait at once (each holds a file descriptor);
    past that the batch flushes early. That is safe: a block nobody refers
    to yet is harmless, and orphans are collected by ``Catalog.gc``.
    """

    MAX_OPEN = 64

    def __init__(self, store: BlockStore) -> None:
        self._store = store
        self._pending: list[tuple[Path, Path]] = []  # (temp file, final path)
        self._fds: list[int] = []

    def add(self, data: bytes) -> bytes:
        if len(self._pending) >= self.MAX_OPEN:
            self.commit()
        bid = block_id(data)
        final = self._store.path(bid)
        if final.exists():
            return bid  # content-addressed: same id, same bytes
        tmp = (
            self._store.tmp
            / f"{bid.hex()}.{os.getpid()}.{id(self)}.{len(self._pending)}"
        )
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StoreError(f"block store: cannot write ({exc.strerror})") from exc
        self._fds.append(fd)
        self._pending.append((tmp, final))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise StoreError(f"block store: cannot write ({exc.strerror})") from exc
        return bid

    def commit(self) -> None:
        try:
            for fd in self._fds:
                os.fsync(fd)
            self._close()
            dirs: set[Path] = set()
            for tmp, final in self._pending:
                final.parent.mkdir(mode=0o700, exist_ok=True)
                os.replace(tmp, final)
                dirs.add(final.parent)
            if self._pending:
                dirs.add(self._store.root)
            for d in dirs:
                fsync_dir(d)
        except OSError as exc:
            self.abort()
            raise StoreError(f"block store: cannot commit ({exc.strerror})") from exc
        self._pending.clear()

    def abort(self) -> None:
        self._close()
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._pending.clear()

    def _close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
