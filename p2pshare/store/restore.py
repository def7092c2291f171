"""Rebuilding a share from the local store (``p2pshare get --offline``).

Theory of operation
-------------------
1. Open the envelope (verified against the root id), check that the link's
   key derives the envelope's access key (else ``AccessDenied``), open the
   meta and check it agrees with the envelope's geometry.
2. A file is written chunk by chunk into a :class:`PartialFile`; every chunk
   is verified against its id and authenticated before it is written, and
   the bitmap makes a killed ``get`` resume where it stopped.
3. A folder is rebuilt inside a hidden partial directory next to the
   destination. Its listing is decoded and every entry validated
   (``format/folder.py``); each path is additionally checked to stay inside
   the partial directory, and files are created exclusively without
   following symlinks. A finished member file is renamed to its name inside
   the partial directory, so a resumed folder get skips it. Directory mtimes
   are set bottom-up, then the partial directory is renamed into place.

Nothing appears under the destination name until everything verified.
When verification fails (tampered data, wrong key, unsafe listing) the
partial data is deleted: resuming cannot fix it. Any other interruption
leaves the partial data for the next run.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from p2pshare.errors import (
    AccessDenied,
    FolderListingError,
    FormatError,
    NotFoundError,
    OutputExistsError,
    P2PShareError,
    StoreError,
)
from p2pshare.format import (
    FileKeys,
    Geometry,
    Meta,
    ShareLink,
    decode_listing,
    open_meta,
)
from p2pshare.format.envelope import Kind
from p2pshare.format.folder import MAX_LISTING_BYTES
from p2pshare.store.local import LocalStore
from p2pshare.store.partial import PartialFile, partial_name, place, umask
from p2pshare.store.pipeline import ordered_map
from p2pshare.store.reader import OpenShare, open_share

__all__ = ["GetResult", "get_offline", "inspect_share"]

Progress = Callable[[int], None]


@dataclass(slots=True)
class GetResult:
    path: Path
    kind: Kind
    size: int
    chunks_total: int = 0
    chunks_resumed: int = 0
    files: int = 0
    file_bytes: int = 0


def _no_progress(_: int) -> None:
    pass


def inspect_share(
    store: LocalStore, root: bytes, key: bytes
) -> tuple[OpenShare, FileKeys, Meta]:
    """Open a local share and check ``key`` opens it.

    Raises:
        NotFoundError: the home does not hold the share.
        AccessDenied: ``key`` is not this share's key.
        IntegrityError / FormatError: the envelope or meta is bad.
    """
    share = open_share(store, root)
    keys = FileKeys.from_key(key)
    if keys.access_public != share.envelope.access_public:
        share.close()
        raise AccessDenied("link: the key does not open this share (wrong key)")
    try:
        meta = open_meta(keys.meta, share.envelope.sealed_meta)
        geo = Geometry(meta.size, share.envelope.chunk_size)
        if (geo.count, geo.tail_padded) != (share.envelope.count, share.envelope.tail):
            raise FormatError(
                "envelope: the size in the meta does not match the chunks"
            )
    except BaseException:
        share.close()
        raise
    return share, keys, meta


def get_offline(
    store: LocalStore,
    link: ShareLink,
    out_dir: Path,
    *,
    progress: Progress = _no_progress,
) -> GetResult:
    """Rebuild the share of ``link`` from this home into ``out_dir``.

    Raises:
        AccessDenied: the link has no key, or the wrong one.
        NotFoundError: the share is not in this home.
        IntegrityError: stored data failed verification (message names it).
        FolderListingError: a folder entry is unsafe.
        OutputExistsError: ``out_dir/<name>`` exists.
        StoreError: local I/O failed.
    """
    if link.key is None:
        raise AccessDenied("link: it carries no key (the part after '#')")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"{out_dir}: cannot create output directory ({exc.strerror})"
        ) from exc
    if not out_dir.is_dir():
        raise StoreError(f"{out_dir}: not a directory")
    try:
        share, keys, meta = inspect_share(store, link.root_id, link.key)
    except NotFoundError as exc:
        raise NotFoundError(
            "share: not in the local store (run `get` without --offline to fetch it)"
        ) from exc
    dest = out_dir / meta.name
    if dest.exists() or dest.is_symlink():
        share.close()
        raise OutputExistsError(f"{dest}: already exists")
    result = GetResult(path=dest, kind=meta.kind, size=meta.size)
    job = _Job(store, result, progress)
    with share:
        if meta.kind == "file":
            job.file(share, keys, meta, dest)
        else:
            job.folder(share, keys, meta, dest)
            result.size = result.file_bytes
    return result


class _Job:
    def __init__(
        self, store: LocalStore, result: GetResult, progress: Progress
    ) -> None:
        self.store = store
        self.result = result
        self.progress = progress

    def file(self, share: OpenShare, keys: FileKeys, meta: Meta, dest: Path) -> None:
        geo = Geometry(meta.size, share.envelope.chunk_size)
        part = PartialFile(self.store.catalog, share.root, dest, geo)
        self.result.chunks_total += geo.count
        self.result.chunks_resumed += part.resumed
        self.progress(sum(geo.plain_len(i) for i in range(geo.count) if part.has(i)))
        try:
            todo = part.missing()

            def ids() -> Iterator[tuple[int, bytes]]:
                for i in todo:
                    yield i, share.chunk_id(i)

            def work(item: tuple[int, bytes]) -> tuple[int, bytes]:
                i, chunk_id = item
                return i, share.plain(i, chunk_id, keys)

            for i, plain in ordered_map(work, ids()):
                part.write(i, plain)
                self.progress(geo.plain_len(i))
            part.finish(meta.mtime_ns)
        except (FormatError, AccessDenied):
            part.discard()  # the data is bad: nothing to resume
            raise
        finally:
            part.close()
        self.result.files += 1
        self.result.file_bytes += meta.size

    def read_all(self, share: OpenShare, keys: FileKeys, meta: Meta) -> bytes:
        if meta.size > MAX_LISTING_BYTES:
            raise FormatError("folder listing: too large")
        geo = Geometry(meta.size, share.envelope.chunk_size)
        out = bytearray()
        for i in range(geo.count):
            out += share.plain(i, share.chunk_id(i), keys)[: geo.plain_len(i)]
        return bytes(out)

    def folder(self, share: OpenShare, keys: FileKeys, meta: Meta, dest: Path) -> None:
        top = dest.with_name(partial_name(share.root))
        try:
            self._folder_into(share, keys, meta, top, top)
            place(top, dest)
        except (FormatError, AccessDenied):
            self._discard_tree(top)
            raise

    def _folder_into(
        self, share: OpenShare, keys: FileKeys, meta: Meta, here: Path, top: Path
    ) -> None:
        _mkdir_exclusive_ok(here)
        entries = decode_listing(self.read_all(share, keys, meta))
        for entry in entries:
            target = here / entry.name
            # Defence in depth: names were validated, but check the path too.
            if target.parent != here or not target.resolve().is_relative_to(
                top.resolve()
            ):
                raise FolderListingError("folder listing: entry escapes the folder")
            rel = target.relative_to(top)
            try:
                child, ckeys, cmeta = inspect_share(self.store, entry.root, entry.key)
            except NotFoundError as exc:
                raise NotFoundError(
                    f"{rel}: member share is not in the local store"
                ) from exc
            with child:
                if cmeta.kind != entry.kind or (
                    entry.kind == "file" and cmeta.size != entry.size
                ):
                    raise FormatError(f"{rel}: listing entry does not match its share")
                try:
                    if entry.kind == "file":
                        if _is_regular(target):
                            continue  # finished in an earlier, interrupted run
                        self.file(child, ckeys, cmeta, target)
                    else:
                        self._folder_into(child, ckeys, cmeta, target, top)
                except P2PShareError as exc:
                    # Say where in the tree it failed, once (inner levels
                    # already prefix the same relative path).
                    if _plain_ctor(exc) and not str(exc).startswith(str(rel)):
                        raise type(exc)(f"{rel}: {exc}") from exc
                    raise
        try:
            here.chmod(0o777 & ~umask())
            os.utime(here, ns=(meta.mtime_ns, meta.mtime_ns), follow_symlinks=False)
        except OSError as exc:
            raise StoreError(
                f"{here}: cannot set mode or mtime ({exc.strerror})"
            ) from exc

    def _discard_tree(self, top: Path) -> None:
        prefix = str(top) + os.sep
        for row in self.store.catalog.downloads():
            if row.dest.startswith(prefix):
                self.store.catalog.finish_download(row.id)
        shutil.rmtree(top, ignore_errors=True)


def _plain_ctor(exc: P2PShareError) -> bool:
    """Whether ``type(exc)(message)`` rebuilds it (not for multi-arg errors)."""
    return type(exc).__init__ in (P2PShareError.__init__, Exception.__init__)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _mkdir_exclusive_ok(path: Path) -> None:
    """Create a directory; an existing real directory (a resume) is fine."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not stat.S_ISDIR(path.lstat().st_mode):
            raise OutputExistsError(f"{path}: exists and is not a directory") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot create ({exc.strerror})") from exc
