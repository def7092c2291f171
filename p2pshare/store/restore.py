"""Rebuilding a share from this home's store (``p2pshare get --offline``).

:class:`LocalSource` does the steps of a share walk (``store/walk.py``)
from the local store: the envelope and meta are verified on open, and every
chunk is verified against its id and authenticated before it is written
(``reader.OpenShare.plain``), decrypting in worker threads
(``pipeline.ordered_map``) while this thread writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from p2pshare.errors import FormatError, NotFoundError
from p2pshare.format import FileKeys, Geometry, Meta, ShareLink
from p2pshare.format.folder import MAX_LISTING_BYTES
from p2pshare.store.local import LocalStore
from p2pshare.store.partial import PartialFile
from p2pshare.store.pipeline import ordered_map
from p2pshare.store.reader import OpenShare, open_share
from p2pshare.store.rebuild import get_walk
from p2pshare.store.walk import (
    DEFAULT_LIMITS,
    FolderLimits,
    GetResult,
    OpenedShare,
    Progress,
    Selection,
    check_key,
    no_progress,
    run_walk,
)

__all__ = ["LocalSource", "get_offline", "inspect_share"]


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
    try:
        keys, meta = check_key(share.envelope, key)
    except BaseException:
        share.close()
        raise
    return share, keys, meta


class LocalSource:
    """The steps of a walk from this home's store (a ``ShareSource``)."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def open(self, root: bytes, key: bytes) -> tuple[OpenedShare, FileKeys, Meta]:
        return inspect_share(self.store, root, key)

    def fill(
        self, opened: OpenedShare, keys: FileKeys, part: PartialFile, progress: Progress
    ) -> None:
        assert isinstance(opened, OpenShare)
        share = opened
        geo = part.geometry

        def ids() -> Iterator[tuple[int, bytes]]:
            for i in part.missing():
                yield i, share.chunk_id(i)

        def work(item: tuple[int, bytes]) -> int:
            # read, verify, decrypt and write in the worker: the crypto and
            # the copy into the page cache both release the GIL
            i, chunk_id = item
            part.write_data(i, share.plain(i, chunk_id, keys))
            return i

        for i in ordered_map(work, ids()):
            part.mark(i)
            progress(geo.plain_len(i))

    def finished(self, opened: OpenedShare, path: str, meta: Meta) -> None:
        pass

    def read_all(self, opened: OpenedShare, keys: FileKeys, meta: Meta) -> bytes:
        assert isinstance(opened, OpenShare)
        if meta.size > MAX_LISTING_BYTES:
            raise FormatError("folder listing: too large")
        geo = Geometry(meta.size, opened.envelope.chunk_size)
        out = bytearray()
        for i in range(geo.count):
            out += opened.plain(i, opened.chunk_id(i), keys)[: geo.plain_len(i)]
        return bytes(out)


def get_offline(
    store: LocalStore,
    link: ShareLink,
    out_dir: Path,
    *,
    progress: Progress = no_progress,
    on_total: Progress = no_progress,
    select: Selection | None = None,
    limits: FolderLimits = DEFAULT_LIMITS,
) -> GetResult:
    """Rebuild the share of ``link`` from this home into ``out_dir``
    (``on_total``, ``select`` and ``limits`` as in ``rebuild.get_walk``).

    Raises:
        AccessDenied: the link has no key, or the wrong one.
        NotFoundError: the share is not in this home.
        IntegrityError: stored data failed verification (message names it).
        FolderListingError: a folder entry is unsafe.
        OutputExistsError: ``out_dir/<name>`` exists.
        StoreError: local I/O failed.
    """
    walk = get_walk(
        store.catalog,
        link,
        out_dir,
        progress=progress,
        on_total=on_total,
        select=select,
        limits=limits,
    )
    try:
        return run_walk(walk, LocalSource(store))
    except NotFoundError as exc:
        if str(exc).startswith("share:"):
            raise NotFoundError(
                "share: not in the local store"
                " (run `get` without --offline to fetch it)"
            ) from exc
        raise
