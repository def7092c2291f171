"""The walk of a share for ``get``, as a plan of steps (sans-IO).

Theory of operation
-------------------
A share is a tree: a file share is one envelope and its chunks, a folder
share a listing of member shares. Rebuilding it on disk interleaves two
kinds of work: *local* work on the destination (create the hidden partial
directory, check every path stays inside it, open partial files, rename
finished files, set modes and mtimes, place the result) and *source* work
(open a member share and check the key, read a folder listing, fill a
partial file with verified chunks).

The walk does the local work itself, synchronously, and *yields* each
piece of source work as a step (:class:`Open`, :class:`ReadAll`,
:class:`FillFile`, :class:`Finished`); whoever drives it does that step and
sends the answer back in (or throws the step's error in, so the walk's
``finally`` and ``except`` clauses clean up exactly as for a local error).
So the same walk serves two drivers without either calling the other:

* :func:`run_walk` here, synchronous, with a :class:`ShareSource` such as
  ``restore.LocalSource`` (``get --offline``, a share already held);
* the node's driver (``node/fetch.py::drive``), in trio: it runs each step of the
  walk in a worker thread and does the network steps itself.

``rebuild.py`` holds the walk of a ``get``; this module the steps, the
drivers' contract and the walk of ``inspect`` (:func:`tree_walk`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from p2pshare.config import MAX_DEPTH, MAX_ENTRIES
from p2pshare.errors import (
    AccessDenied,
    FolderListingError,
    FormatError,
    UsageError,
)
from p2pshare.format import (
    Envelope,
    FileKeys,
    Geometry,
    Meta,
    ShareLink,
    decode_listing,
    open_meta,
    root_to_cid,
)
from p2pshare.format.envelope import Kind
from p2pshare.format.folder import Entry
from p2pshare.records import Inspection, TreeEntry
from p2pshare.store.partial import PartialFile

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "FillFile",
    "Finished",
    "FolderLimits",
    "GetResult",
    "Open",
    "OpenedShare",
    "Progress",
    "ReadAll",
    "Selection",
    "ShareSource",
    "Step",
    "Walk",
    "check_key",
    "no_progress",
    "open_folder",
    "parse_selection",
    "run_walk",
    "tree_walk",
]

Progress = Callable[[int], None]
Selection = frozenset[tuple[str, ...]]
T = TypeVar("T")

MAX_TREE_ENTRIES = 50_000  # entries tree_walk returns (bounds a control reply)
MAX_TREE_TEXT = 8 << 20  # bytes of paths and names it returns (same reason)


@dataclass(frozen=True, slots=True)
class FolderLimits:
    """What a folder share may expand to on disk (``get --max-entries``,
    ``--max-depth``): files and folders in all, and levels of nesting."""

    entries: int = MAX_ENTRIES
    depth: int = MAX_DEPTH


DEFAULT_LIMITS = FolderLimits()


@dataclass(slots=True)
class GetResult:
    path: Path
    kind: Kind
    size: int
    chunks_total: int = 0
    chunks_resumed: int = 0
    files: int = 0
    file_bytes: int = 0


class OpenedShare(Protocol):
    """A share opened by some source: its verified envelope."""

    @property
    def root(self) -> bytes: ...

    @property
    def envelope(self) -> Envelope: ...

    def close(self) -> None: ...


# -- the steps a walk asks its driver for ------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """Open ``root``, verify its envelope, check ``key`` opens it.
    Answer: ``(OpenedShare, FileKeys, Meta)``."""

    root: bytes
    key: bytes


@dataclass(frozen=True, slots=True)
class ReadAll:
    """The whole (small) plaintext of an opened share: a folder listing.
    Answer: ``bytes``."""

    opened: OpenedShare
    keys: FileKeys
    meta: Meta


@dataclass(frozen=True, slots=True)
class FillFile:
    """Write every chunk ``part`` is missing, verified, calling ``progress``
    with the plaintext bytes of each. Answer: ``None``."""

    opened: OpenedShare
    keys: FileKeys
    part: PartialFile
    progress: Progress


@dataclass(frozen=True, slots=True)
class Finished:
    """``path`` now holds the complete, verified file. Answer: ``None``."""

    opened: OpenedShare
    path: str
    meta: Meta


Step = Open | ReadAll | FillFile | Finished
Walk = Generator[Step, Any, T]


class ShareSource(Protocol):
    """Does the steps of a walk synchronously, returning only verified data."""

    def open(self, root: bytes, key: bytes) -> tuple[OpenedShare, FileKeys, Meta]: ...

    def fill(
        self, opened: OpenedShare, keys: FileKeys, part: PartialFile, progress: Progress
    ) -> None: ...

    def read_all(self, opened: OpenedShare, keys: FileKeys, meta: Meta) -> bytes: ...

    def finished(self, opened: OpenedShare, path: str, meta: Meta) -> None: ...


def do_step(source: ShareSource, step: Step) -> Any:
    """One step done by a synchronous source."""
    match step:
        case Open(root, key):
            return source.open(root, key)
        case ReadAll(opened, keys, meta):
            return source.read_all(opened, keys, meta)
        case FillFile(opened, keys, part, progress):
            return source.fill(opened, keys, part, progress)
        case Finished(opened, path, meta):
            return source.finished(opened, path, meta)


def run_walk(walk: Walk[T], source: ShareSource) -> T:
    """Drive ``walk`` to its end with ``source`` (in this thread). An error
    of a step is thrown into the walk; an interrupt closes it."""
    answer: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = walk.throw(error) if error is not None else walk.send(answer)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                answer, error = do_step(source, step), None
            except Exception as exc:  # thrown into the walk
                answer, error = None, exc
    finally:
        walk.close()  # a no-op once it finished


# -- helpers ------------------------------------------------------------------------


def no_progress(_: int) -> None:
    """A progress callback that ignores progress."""


def check_key(envelope: Envelope, key: bytes) -> tuple[FileKeys, Meta]:
    """Check ``key`` opens a share with this (already verified) envelope.

    Raises:
        AccessDenied: ``key`` is not the share's key.
        IntegrityError / FormatError: the meta is bad or disagrees with the
            envelope's geometry.
    """
    keys = FileKeys.from_key(key)
    if keys.access_public != envelope.access_public:
        raise AccessDenied("link: the key does not open this share (wrong key)")
    meta = open_meta(keys.meta, envelope.sealed_meta)
    geo = Geometry(meta.size, envelope.chunk_size)
    if (geo.count, geo.tail_padded) != (envelope.count, envelope.tail):
        raise FormatError("envelope: the size in the meta does not match the chunks")
    return keys, meta


def parse_selection(paths: Iterable[str]) -> Selection:
    """Relative paths inside a folder share ("a/b.txt") as a selection.

    Raises:
        UsageError: a path is empty, absolute, or has "." / ".." parts.
    """
    out: set[tuple[str, ...]] = set()
    for raw in paths:
        parts = tuple(raw.split("/"))
        if not raw or raw.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise UsageError(f"paths: {raw!r} is not a relative path inside the share")
        out.add(parts)
    # a folder and something inside it: the folder already has it all
    return frozenset(
        p for p in out if not any(q != p and p[: len(q)] == q for q in out)
    )


def open_folder(entry: Entry, where: str) -> Walk[tuple[OpenedShare, FileKeys, Meta]]:
    """Open a member folder, checking it is one."""
    child, keys, meta = yield Open(entry.root, entry.key)
    if meta.kind != "folder":
        child.close()
        raise FormatError(f"{where}: listing entry does not match its share")
    return child, keys, meta


# -- what a link holds ---------------------------------------------------------------


def tree_walk(
    link: ShareLink, *, max_entries: int = MAX_TREE_ENTRIES
) -> Walk[Inspection]:
    """What a link holds, fetching only envelopes and folder listings.

    Returns ``{"root", "name", "kind", "size", "entries"}``. ``entries`` is
    the whole folder tree as a flat list in depth-first order (a tree would
    nest one level per folder; a flat list keeps every reply two levels
    deep whatever the tree): ``{"path", "name", "kind", "size"}`` with
    ``path`` relative to the share and "/"-separated, a folder's ``size``
    being the bytes of every file below it. A file share has no entries.

    Raises:
        AccessDenied: no key, or the wrong one.
        FolderListingError: a listing is unsafe, the tree is nested deeper
            than :data:`MAX_DEPTH` or has more than ``max_entries`` entries.
        Whatever the source raises (NotFoundError, NoProviders, …).
    """
    if link.key is None:
        raise AccessDenied("link: it carries no key (the part after '#')")
    out: list[TreeEntry] = []
    text = 0  # bytes of paths and names so far

    def walk(
        opened: OpenedShare, keys: FileKeys, meta: Meta, rel: tuple[str, ...]
    ) -> Walk[None]:
        nonlocal text
        if len(rel) >= MAX_DEPTH:
            raise FolderListingError(f"folder: nested deeper than {MAX_DEPTH} levels")
        for entry in decode_listing((yield ReadAll(opened, keys, meta))):
            if len(out) >= max_entries:
                raise FolderListingError(f"folder: more than {max_entries} entries")
            path = (*rel, entry.name)
            joined = "/".join(path)
            text += len(joined) + len(entry.name)
            if text > MAX_TREE_TEXT:
                raise FolderListingError("folder: the tree is too large to list")
            out.append(
                TreeEntry(
                    path=joined,
                    name=entry.name,
                    kind=entry.kind,
                    size=entry.size,
                    root=root_to_cid(entry.root),
                    mtime_ns=entry.mtime_ns,
                )
            )
            if entry.kind != "folder":
                continue
            child, ckeys, cmeta = yield from open_folder(entry, joined)
            try:
                yield from walk(child, ckeys, cmeta, path)
            finally:
                child.close()

    opened, keys, meta = yield Open(link.root_id, link.key)
    try:
        if meta.kind == "folder":
            yield from walk(opened, keys, meta, ())
    finally:
        opened.close()
    top = [e for e in out if "/" not in e["path"]]
    return Inspection(
        root=root_to_cid(link.root_id),
        name=meta.name,
        kind=meta.kind,
        size=sum(e["size"] for e in top) if meta.kind == "folder" else meta.size,
        entries=out,
    )
