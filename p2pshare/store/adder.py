"""Adding files and folders to the local store (``p2pshare add``).

Theory of operation
-------------------
A file becomes a share in one pass: read chunk *i*, pad, seal, hash (in a
worker pool, see ``pipeline.py``), and in copy mode write the ciphertext as
a block. Then the meta is sealed, the envelope (plus index blocks) built,
and envelope and index blocks stored as blocks. Only then is the share
committed to the catalog, in one transaction; a crash before that leaves at
most orphan blocks, never a share that refers to missing data.

Reference mode keeps no chunk: it records the source path, size and mtime,
and the server re-encrypts on demand (see ``reader.py``). Re-adding an
unchanged source returns the existing share (same link); re-adding a
changed one draws a **new** key (re-using a key for other content would
reuse XChaCha20 nonces) and replaces the old share.

A folder is walked depth first, names sorted; each file is added as a
member share, each directory becomes a listing share (``format/folder.py``)
stored as blocks, and the top listing is the share the user gets a link
for. Symlinks are followed, with a cycle check; sockets, FIFOs and devices
are skipped with a warning. A file that changes while it is read makes the
add fail rather than publish a torn share.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import mimetypes
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from p2pshare.errors import NotFoundError, SourceChangedError, StoreError, UsageError
from p2pshare.format import (
    DEFAULT_CHUNK_SIZE,
    Entry,
    FileKeys,
    Geometry,
    Meta,
    block_id,
    build_envelope,
    canonical,
    encode_listing,
    new_file_key,
    seal_chunk,
    seal_meta,
)
from p2pshare.format.envelope import Kind
from p2pshare.format.names import check_name
from p2pshare.store.blocks import Batch, BlockHandle
from p2pshare.store.catalog import ShareRow
from p2pshare.store.local import LocalStore
from p2pshare.store.pipeline import ordered_map

__all__ = ["AddedShare", "add_bytes", "add_path", "scan_size"]

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
FOLDER_MIME = "inode/directory"


@dataclass(frozen=True, slots=True)
class AddedShare:
    """What ``add`` produced. ``key`` is secret: never log it."""

    root: bytes
    key: bytes
    kind: Kind
    size: int
    reused: bool = False

    def __repr__(self) -> str:
        return f"AddedShare(root={self.root.hex()[:12]}, kind={self.kind})"


def _no_progress(_: int) -> None:
    pass


def scan_size(path: Path) -> int:
    """Total bytes of the regular files under ``path`` (for progress bars)."""
    try:
        st = path.stat()
    except OSError:
        return 0
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path, followlinks=True):
        for name in files:
            try:
                fst = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(fst.st_mode):
                total += fst.st_size
    return total


def add_path(
    store: LocalStore,
    path: Path,
    *,
    copy: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress = _no_progress,
    new: bool = False,
) -> AddedShare:
    """Add a file or folder as one share; returns its root and key.

    An unchanged file or folder already shared comes back as that share
    (``reused``), unless ``new``.

    Raises:
        NotFoundError: ``path`` does not exist.
        UsageError: ``path`` is neither a regular file nor a directory.
        SourceChangedError: a file changed while it was being read.
        StoreError: the store or the file system failed.
    """
    path = path.absolute()
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise NotFoundError(f"{path}: no such file or directory") from exc
    except OSError as exc:
        raise StoreError(f"{path}: cannot read ({exc.strerror})") from exc
    name = path.resolve().name if path.name in ("", ".", "..") else path.name
    check_name(name, what=f"{path}: name")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise UsageError(f"{path}: not a regular file or directory")
    with store.writing():  # gc waits until the catalog refers to our blocks
        adder = _Adder(
            store, copy=copy, chunk_size=chunk_size, progress=progress, new=new
        )
        if stat.S_ISREG(st.st_mode):
            return adder.add_file(path, name, top=True)
        return adder.add_folder(path, name, ancestors=frozenset(), top=True)


def add_bytes(
    store: LocalStore,
    data: bytes,
    *,
    name: str,
    kind: Kind,
    mtime_ns: int,
    mode: str = "copy",
    top: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    tree_size: int | None = None,
    children: list[bytes] | None = None,
    source: str | None = None,
    commit: Callable[[ShareRow, list[bytes], list[bytes]], None] | None = None,
) -> AddedShare:
    """Store in-memory plaintext as a share (chunks as blocks).

    Used for folder listings, which exist only in memory; ``mode`` is what
    ``ls`` shows, the chunks are always stored.
    """
    with store.writing():
        return _add_bytes(
            store,
            data,
            name=name,
            kind=kind,
            mtime_ns=mtime_ns,
            mode=mode,
            top=top,
            chunk_size=chunk_size,
            tree_size=tree_size,
            children=children,
            source=source,
            commit=commit,
        )


def _add_bytes(
    store: LocalStore,
    data: bytes,
    *,
    name: str,
    kind: Kind,
    mtime_ns: int,
    mode: str,
    top: bool,
    chunk_size: int,
    tree_size: int | None,
    children: list[bytes] | None,
    source: str | None,
    commit: Callable[[ShareRow, list[bytes], list[bytes]], None] | None,
) -> AddedShare:
    key = new_file_key()
    keys = FileKeys.from_key(key)
    geo = Geometry(len(data), chunk_size)
    ids: list[bytes] = []
    with store.blocks.batch() as batch:
        for i in range(geo.count):
            part = data[geo.offset(i) : geo.offset(i) + geo.plain_len(i)]
            padded = part + bytes(geo.padded_len(i) - len(part))
            ids.append(batch.add(seal_chunk(keys.chunk, i, geo.count, padded)))
        mime = FOLDER_MIME if kind == "folder" else "application/octet-stream"
        meta = Meta(name=name, size=geo.size, mtime_ns=mtime_ns, kind=kind, mime=mime)
        blocks = _store_envelope(batch, keys, meta, geo, ids)
    row = ShareRow(
        root=blocks[0],
        key=key,
        storage="copy",
        mode=mode,
        top=top,
        source=source,
        source_size=None,
        source_mtime_ns=None,
        tree_size=geo.size if tree_size is None else tree_size,
        added_at=time.time_ns(),
    )
    if commit is None:
        store.catalog.put_share(row, blocks + ids, children or [])
    else:
        commit(row, blocks + ids, children or [])
    size = geo.size if tree_size is None else tree_size
    return AddedShare(root=row.root, key=key, kind=kind, size=size)


def _store_envelope(
    batch: Batch, keys: FileKeys, meta: Meta, geo: Geometry, ids: list[bytes]
) -> list[bytes]:
    """Seal the meta, build the envelope; store it and its index blocks."""
    env, index_blocks = build_envelope(
        chunk_size=geo.chunk_size,
        tail=geo.tail_padded,
        chunk_ids=ids,
        sealed_meta=seal_meta(keys.meta, meta),
        access_public=keys.access_public,
    )
    root = batch.add(env.encode())
    return [root, *(batch.add(b) for b in index_blocks)]


class _Adder:
    def __init__(
        self,
        store: LocalStore,
        *,
        copy: bool,
        chunk_size: int,
        progress: Progress,
        new: bool,
    ) -> None:
        self.store = store
        self.copy = copy
        self.mode = "copy" if copy else "ref"
        self.chunk_size = chunk_size
        self.progress = progress
        self.new = new
        self._secret = b"" if new else store.catalog.secret("fingerprint")

    def _fingerprint(self, *parts: object) -> bytes:
        data = canonical.pack([self.mode, self.chunk_size, *parts])
        return hashlib.blake2b(data, key=self._secret, digest_size=32).digest()

    def _reuse_fingerprint(self, fp: bytes, *, top: bool) -> AddedShare | None:
        row = self.store.catalog.share_by_fingerprint(fp)
        if row is None or row.mode != self.mode:
            return None
        kind: Kind = "folder" if self.store.catalog.children_of(row.root) else "file"
        return self._reused(row, kind, row.tree_size or 0, top=top)

    def _reused(self, row: ShareRow, kind: Kind, size: int, *, top: bool) -> AddedShare:
        """``row`` is what this add would make: keep it (shown in ``ls``
        when added at the top)."""
        assert row.key is not None  # the catalog queries ask for a key
        if top and not row.top:
            self._commit(dataclasses.replace(row, top=True), [], [])
        return AddedShare(root=row.root, key=row.key, kind=kind, size=size, reused=True)

    # -- files --------------------------------------------------------------
    def add_file(self, path: Path, name: str, *, top: bool) -> AddedShare:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise StoreError(f"{path}: cannot read ({exc.strerror})") from exc
        with os.fdopen(fd, "rb", buffering=0) as src:
            before = os.fstat(fd)
            fp = b""
            if not self.new:
                if self.copy:
                    fp = self._fingerprint(
                        "file",
                        str(path),
                        name,
                        before.st_size,
                        before.st_mtime_ns,
                        before.st_dev,
                        before.st_ino,
                    )
                    reused = self._reuse_fingerprint(fp, top=top)
                else:
                    reused = self._reuse(str(path), before, top=top)
                if reused is not None:
                    self.progress(before.st_size)
                    return reused
            key = new_file_key()
            keys = FileKeys.from_key(key)
            geo = Geometry(before.st_size, self.chunk_size)
            with self.store.blocks.batch() as batch:
                ids = self._seal_all(src, path, keys, geo, batch if self.copy else None)
                after = os.fstat(fd)
                if (after.st_size, after.st_mtime_ns) != (
                    before.st_size,
                    before.st_mtime_ns,
                ):
                    raise SourceChangedError(
                        f"{path}: changed while it was being added"
                    )
                mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
                meta = Meta(
                    name=name,
                    size=geo.size,
                    mtime_ns=before.st_mtime_ns,
                    kind="file",
                    mime=mime,
                )
                blocks = _store_envelope(batch, keys, meta, geo, ids)
            if self.copy:
                blocks.extend(ids)
            row = ShareRow(
                root=blocks[0],
                key=key,
                storage=self.mode,
                mode=self.mode,
                top=top,
                source=None if self.copy else str(path),
                source_size=None if self.copy else before.st_size,
                source_mtime_ns=None if self.copy else before.st_mtime_ns,
                tree_size=geo.size,
                added_at=time.time_ns(),
            )
            self._commit(row, blocks, [])
            if fp:
                self.store.catalog.put_fingerprint(fp, row.root)
        return AddedShare(root=row.root, key=key, kind="file", size=geo.size)

    def _seal_all(
        self,
        src: object,
        path: Path,
        keys: FileKeys,
        geo: Geometry,
        batch: Batch | None,
    ) -> list[bytes]:
        def chunks() -> Iterator[tuple[int, bytes]]:
            for i in range(geo.count):
                want = geo.plain_len(i)
                data = src.read(want)  # type: ignore[attr-defined]
                if len(data) != want:
                    raise SourceChangedError(
                        f"{path}: changed while it was being added"
                    )
                yield i, data

        def seal(item: tuple[int, bytes]) -> tuple[int, bytes, BlockHandle | None]:
            # sealing, hashing and writing the block all release the GIL: do
            # them in the worker; the caller adopts blocks in chunk order
            i, data = item
            padded = data + bytes(geo.padded_len(i) - len(data))
            cipher = seal_chunk(keys.chunk, i, geo.count, padded)
            bid = block_id(cipher)
            handle = batch.write_temp(cipher, bid) if batch is not None else None
            return len(data), bid, handle

        ids: list[bytes] = []
        try:
            for n, bid, handle in ordered_map(seal, chunks()):
                if batch is not None:
                    batch.adopt(handle)
                ids.append(bid)
                self.progress(n)
        except OSError as exc:
            raise StoreError(f"{path}: cannot read ({exc.strerror})") from exc
        return ids

    def _reuse(
        self, source: str, st: os.stat_result, *, top: bool
    ) -> AddedShare | None:
        """An unchanged source already shared by reference keeps its share."""
        for row in self.store.catalog.shares_by_source(source):
            if (
                row.storage == "ref"
                and row.key is not None
                and (row.source_size, row.source_mtime_ns)
                == (st.st_size, st.st_mtime_ns)
            ):
                return self._reused(row, "file", st.st_size, top=top)
        return None

    # -- folders --------------------------------------------------------------
    def add_folder(
        self, path: Path, name: str, *, ancestors: frozenset[tuple[int, int]], top: bool
    ) -> AddedShare:
        st = path.stat()
        ident = (st.st_dev, st.st_ino)
        if ident in ancestors:
            raise UsageError(f"{path}: symlink loop")
        entries: list[Entry] = []
        total = 0
        for child, child_name, kind in self._children(path):
            if kind == "file":
                added = self.add_file(child, child_name, top=False)
            else:
                added = self.add_folder(
                    child, child_name, ancestors=ancestors | {ident}, top=False
                )
            mtime = child.stat().st_mtime_ns
            entries.append(
                Entry(
                    name=child_name,
                    kind=kind,
                    size=added.size,
                    mtime_ns=mtime,
                    root=added.root,
                    key=added.key,
                )
            )
            total += added.size
        listing = encode_listing(entries)
        fp = b""
        if not self.new:
            fp = self._fingerprint("folder", str(path), name, st.st_mtime_ns, listing)
            reused = self._reuse_fingerprint(fp, top=top)
            if reused is not None:
                return reused
        added = add_bytes(
            self.store,
            listing,
            name=name,
            kind="folder",
            mtime_ns=st.st_mtime_ns,
            mode=self.mode,
            top=top,
            chunk_size=self.chunk_size,
            tree_size=total,
            children=[e.root for e in entries],
            source=str(path) if top and not self.copy else None,
            commit=self._commit,
        )
        if fp:
            self.store.catalog.put_fingerprint(fp, added.root)
        return added

    def _children(self, path: Path) -> Iterator[tuple[Path, str, Kind]]:
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise StoreError(f"{path}: cannot list ({exc.strerror})") from exc
        for child_name in names:
            child = path / child_name
            try:
                cst = child.stat()
            except OSError:
                log.warning("%s: skipped (broken link or unreadable)", child)
                continue
            if stat.S_ISREG(cst.st_mode):
                yield child, check_name(child_name, what=f"{child}: name"), "file"
            elif stat.S_ISDIR(cst.st_mode):
                yield child, check_name(child_name, what=f"{child}: name"), "folder"
            else:
                log.warning("%s: skipped (not a regular file or directory)", child)

    def _commit(
        self, row: ShareRow, blocks: list[bytes], children: list[bytes]
    ) -> None:
        self.store.catalog.put_share(row, blocks, children)
        if row.top and row.source is not None:
            # A changed source was re-added: the old share cannot be served
            # any more (its chunks no longer re-encrypt to their ids).
            for old in self.store.catalog.shares_by_source(row.source, top_only=True):
                if old.root != row.root:
                    for bid in self.store.catalog.remove_top(old.root):
                        self.store.blocks.delete(bid)
