"""Rebuilding a share on disk: the walk of ``get`` (steps: ``walk.py``).

Theory of operation
-------------------
1. Open the envelope (verified against the root id), check that the
   link's key derives the envelope's access key (else ``AccessDenied``).
2. A file is written chunk by chunk into a :class:`PartialFile` by the
   :class:`FillFile` step; the bitmap makes a killed ``get`` resume.
3. A folder is rebuilt inside a hidden partial directory next to the
   destination. Its listing is decoded and every entry validated
   (``format/folder.py``); each path is additionally checked to stay inside
   the partial directory. The whole tree is counted before anything is
   written (``FolderLimits``). A finished member file is renamed to its
   name inside the partial directory, so a resumed folder get skips it.
   Directory mtimes are set bottom-up, then the partial directory is
   renamed into place.

Nothing appears under the destination name until everything verified.
When verification fails (tampered data, wrong key, unsafe listing) the
partial data is deleted: resuming cannot fix it. Any other interruption
leaves the partial data for the next run.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from p2pshare.errors import (
    AccessDenied,
    FolderListingError,
    FormatError,
    NotFoundError,
    OutputExistsError,
    P2PShareError,
    StoreError,
    UsageError,
)
from p2pshare.format import FileKeys, Geometry, Meta, ShareLink, decode_listing
from p2pshare.format.folder import Entry
from p2pshare.store.catalog import Catalog
from p2pshare.store.partial import PartialFile, partial_name, place, umask
from p2pshare.store.walk import (
    DEFAULT_LIMITS,
    FillFile,
    Finished,
    FolderLimits,
    GetResult,
    Open,
    OpenedShare,
    Progress,
    ReadAll,
    Selection,
    Walk,
    no_progress,
    open_folder,
)

__all__ = ["get_walk"]


def get_walk(
    catalog: Catalog,
    link: ShareLink,
    out_dir: Path,
    *,
    progress: Progress = no_progress,
    on_total: Progress = no_progress,
    select: Selection | None = None,
    on_name: Callable[[str], None] = lambda _name: None,
    limits: FolderLimits = DEFAULT_LIMITS,
) -> Walk[GetResult]:
    """Rebuild the share of ``link`` into ``out_dir``.

    ``on_total`` is told the number of bytes to expect as soon as it is
    known (after the envelope of a file, the top listing of a folder; with
    ``select``, it grows as selected entries are found). ``select`` (from
    :func:`parse_selection`) limits a folder to some of its files and
    folders; the result is the folder with only those inside.
    ``on_name`` is told the share's name once its meta is open. A folder
    whose tree holds more than ``limits.entries`` files and folders in all,
    or nests deeper than ``limits.depth``, is refused
    (``FolderListingError``) before anything is written.

    Raises:
        AccessDenied: the link has no key, or the wrong one.
        IntegrityError: data failed verification (message names it).
        FolderListingError: a folder entry is unsafe.
        OutputExistsError: ``out_dir/<name>`` exists.
        NotFoundError: a selected path is not in the folder.
        StoreError: local I/O failed.
        Whatever the source raises (NotFoundError, NoProviders, …).
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
    opened, keys, meta = yield Open(link.root_id, link.key)
    try:
        on_name(meta.name)
        dest = out_dir / meta.name
        if dest.exists() or dest.is_symlink():
            raise OutputExistsError(f"{dest}: already exists")
        result = GetResult(path=dest, kind=meta.kind, size=meta.size)
        job = _Job(catalog, result, progress, on_total, limits)
        if meta.kind == "file":
            if select:
                raise UsageError("paths: this share is a file, not a folder")
            on_total(meta.size)
            yield from job.file(opened, keys, meta, dest)
        else:
            yield from job.folder(opened, keys, meta, dest, select or None)
            result.size = result.file_bytes
    finally:
        opened.close()
    return result


class _Job:
    def __init__(
        self,
        catalog: Catalog,
        result: GetResult,
        progress: Progress,
        on_total: Progress,
        limits: FolderLimits,
    ) -> None:
        self.catalog = catalog
        self.limits = limits
        self.entries = 0  # entries created or checked by this job so far
        self.result = result
        self.progress = progress
        self.on_total = on_total
        self.expected = 0  # bytes of the selected entries found so far
        # listings read while counting or checking a selection, kept for
        # the download walk (each is read once, from the network at most once)
        self._listings: dict[bytes, list[Entry]] = {}

    def _entries(
        self, share: OpenedShare, keys: FileKeys, meta: Meta, *, keep: bool = False
    ) -> Walk[list[Entry]]:
        """The decoded listing of a folder share; ``keep`` holds it for the
        next caller, which takes it (it is read once)."""
        entries = (
            self._listings.get(share.root)
            if keep
            else self._listings.pop(share.root, None)
        )
        if entries is None:
            entries = decode_listing((yield ReadAll(share, keys, meta)))
            if keep:
                self._listings[share.root] = entries
        return entries

    def file(
        self, share: OpenedShare, keys: FileKeys, meta: Meta, dest: Path
    ) -> Walk[None]:
        geo = Geometry(meta.size, share.envelope.chunk_size)
        part = PartialFile(self.catalog, share.root, dest, geo)
        self.result.chunks_total += geo.count
        self.result.chunks_resumed += part.resumed
        self.progress(sum(geo.plain_len(i) for i in range(geo.count) if part.has(i)))
        try:
            yield FillFile(share, keys, part, self.progress)
            part.finish(meta.mtime_ns)
            yield Finished(share, str(dest), meta)
        except (FormatError, AccessDenied):
            part.discard()  # the data is bad: nothing to resume
            raise
        finally:
            part.close()
        self.result.files += 1
        self.result.file_bytes += meta.size

    def folder(
        self,
        share: OpenedShare,
        keys: FileKeys,
        meta: Meta,
        dest: Path,
        select: Selection | None = None,
    ) -> Walk[None]:
        top = dest.with_name(partial_name(share.root))
        if select:
            yield from self._check_selection(share, keys, meta, select)
        else:
            yield from self._count(share, keys, meta, 0, {})
        try:
            found: set[tuple[str, ...]] = set()
            yield from self._folder_into(share, keys, meta, top, top, select, found)
            if select and found != select:  # the listings changed under us
                raise NotFoundError("paths: not all found in this folder")
            place(top, dest)
            self.catalog.forget_downloads(str(top))  # none left, unless a crash
        except (FormatError, AccessDenied):
            self._discard_tree(top)
            raise

    def _count(
        self,
        share: OpenedShare,
        keys: FileKeys,
        meta: Meta,
        depth: int,
        seen: dict[bytes, int],
    ) -> Walk[int]:
        """Entries in the tree of ``share``, counted before anything is
        written; each distinct folder is read once (``seen``: its count), so
        a folder named many times costs one listing, not one per name.

        Raises:
            FolderListingError: deeper than ``limits.depth`` or more than
                ``limits.entries`` entries in all.
        """
        self._check_depth(depth)
        total = 0
        for entry in (yield from self._entries(share, keys, meta, keep=True)):
            total += 1
            if entry.kind == "folder":
                if entry.root not in seen:
                    child, ckeys, cmeta = yield from open_folder(entry, entry.name)
                    try:
                        seen[entry.root] = yield from self._count(
                            child, ckeys, cmeta, depth + 1, seen
                        )
                    finally:
                        child.close()
                total += seen[entry.root]
            self._check_entries(total)
        return total

    def _check_depth(self, depth: int) -> None:
        if depth >= self.limits.depth:
            raise FolderListingError(
                f"folder: nested deeper than {self.limits.depth} levels;"
                " --max-depth raises it"
            )

    def _check_entries(self, n: int) -> None:
        if n > self.limits.entries:
            raise FolderListingError(
                f"folder: more than {self.limits.entries} files and folders in all"
                " (a folder named many times over?); --max-entries raises it"
            )

    def _check_selection(
        self, share: OpenedShare, keys: FileKeys, meta: Meta, select: Selection
    ) -> Walk[None]:
        """Fail before any download if a selected path is not in the folder
        (walks only the listings on the way to the selected paths)."""
        for path in sorted(select):
            opened: list[OpenedShare] = []
            try:
                here, here_keys, here_meta = share, keys, meta
                for depth, name in enumerate(path):
                    entries = yield from self._entries(
                        here, here_keys, here_meta, keep=True
                    )
                    entry = next((e for e in entries if e.name == name), None)
                    last = depth == len(path) - 1
                    if entry is None or (not last and entry.kind != "folder"):
                        raise NotFoundError(f"{'/'.join(path)}: not in this folder")
                    if last:
                        break
                    here, here_keys, here_meta = yield Open(entry.root, entry.key)
                    opened.append(here)
            finally:
                for o in opened:
                    o.close()

    def _folder_into(
        self,
        share: OpenedShare,
        keys: FileKeys,
        meta: Meta,
        here: Path,
        top: Path,
        select: Selection | None = None,
        found: set[tuple[str, ...]] | None = None,
    ) -> Walk[None]:
        """Rebuild one folder level; ``select`` (paths relative to ``top``)
        limits it to those entries and the folders leading to them; None
        means everything below ``here``."""
        self._check_depth(len(here.relative_to(top).parts))
        _mkdir_exclusive_ok(here)
        entries = yield from self._entries(share, keys, meta)
        if here == top and select is None:
            self.on_total(sum(e.size for e in entries))
        for entry in entries:
            self.entries += 1
            self._check_entries(self.entries)  # a selection, or a changed tree
            target = here / entry.name
            # Defence in depth: names were validated, but check the path too.
            if target.parent != here or not target.resolve().is_relative_to(
                top.resolve()
            ):
                raise FolderListingError("folder listing: entry escapes the folder")
            rel = target.relative_to(top)
            inner: Selection | None = None
            if select is not None:
                if rel.parts in select:
                    assert found is not None
                    found.add(rel.parts)
                    self.expected += entry.size
                    self.on_total(self.expected)
                elif entry.kind == "folder" and any(
                    p[: len(rel.parts)] == rel.parts for p in select
                ):
                    inner = select  # only the selected paths inside it
                else:
                    continue
            if entry.kind == "file" and _is_regular(target):
                # finished in an earlier, interrupted run (which may have
                # died between placing the file and forgetting its download)
                self.catalog.forget_downloads(str(target))
                self.progress(entry.size)
                continue
            try:
                child, ckeys, cmeta = yield Open(entry.root, entry.key)
            except NotFoundError as exc:
                raise NotFoundError(f"{rel}: member share not found ({exc})") from exc
            try:
                if cmeta.kind != entry.kind or (
                    entry.kind == "file" and cmeta.size != entry.size
                ):
                    raise FormatError(f"{rel}: listing entry does not match its share")
                if entry.kind == "file":
                    yield from self.file(child, ckeys, cmeta, target)
                else:
                    yield from self._folder_into(
                        child, ckeys, cmeta, target, top, inner, found
                    )
            except P2PShareError as exc:
                # Say where in the tree it failed, once (inner levels
                # already prefix the same relative path).
                if _plain_ctor(exc) and not str(exc).startswith(str(rel)):
                    raise type(exc)(f"{rel}: {exc}") from exc
                raise
            finally:
                child.close()
        try:
            here.chmod(0o777 & ~umask())
            os.utime(here, ns=(meta.mtime_ns, meta.mtime_ns), follow_symlinks=False)
        except OSError as exc:
            raise StoreError(
                f"{here}: cannot set mode or mtime ({exc.strerror})"
            ) from exc

    def _discard_tree(self, top: Path) -> None:
        prefix = str(top) + os.sep
        for row in self.catalog.downloads():
            if row.dest.startswith(prefix):
                self.catalog.finish_download(row.id)
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
