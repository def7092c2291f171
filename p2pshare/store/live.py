"""Live shares on the owner's side: a pointer per live source, its versions.

Theory of operation
-------------------
``add --live PATH`` adds PATH as usual (a snapshot: an ordinary share with
its own root and key) and then creates a *pointer* for it: a fresh Ed25519
signing seed and a fresh 32-byte read key, kept in the catalog (the
database is 0600, like the identity key; neither ever leaves the home
except the read key inside the live link the user shares). Version 1 of
the pointer names that snapshot. ``publish`` adds the source again (every
unchanged file keeps its share, so its chunks are reused; see
``adder.py``) and, when the snapshot changed, signs the next version.

Records are signed to expire after :data:`RECORD_TTL_S`; a node renews
(re-signs with the next sequence number, same snapshot) those that have
less than half of it left (:func:`renew_due`) and puts them in the DHT.
The sequence number is the version counter: it only grows
(``catalog_pointers.put_pointer`` refuses anything else), so a getter that
saw version *n* never accepts an older one.
"""

from __future__ import annotations

import time
from pathlib import Path

import nacl.utils
from nacl.signing import SigningKey

from p2pshare.errors import NotFoundError
from p2pshare.format.links import LiveLink
from p2pshare.format.pointer import PointerRecord, make_pointer
from p2pshare.store.adder import AddedShare, Progress, add_path
from p2pshare.store.catalog_pointers import PointerRow
from p2pshare.store.local import LocalStore
from p2pshare.store.walk import no_progress

__all__ = [
    "RECORD_TTL_S",
    "add_live",
    "create_pointer",
    "live_link",
    "next_version",
    "pointer_for",
    "pointer_named",
    "publish_source",
    "renew_due",
]

RECORD_TTL_S = 2 * 86400  # a record is valid this long; renewed at half


def _sign(
    store: LocalStore, seed: bytes, read_key: bytes, seq: int, root: bytes, now: float
) -> PointerRecord:
    row = store.catalog.get_share(root)
    if row.key is None:
        raise NotFoundError("live share: this home holds no key for the snapshot")
    return make_pointer(
        SigningKey(seed),
        read_key,
        seq=seq,
        root=root,
        key=row.key,
        expires=int(now) + RECORD_TTL_S,
    )


def create_pointer(
    store: LocalStore, source: str, root: bytes, *, now: float | None = None
) -> PointerRow:
    """A new pointer for ``source`` whose version 1 is snapshot ``root``."""
    now = time.time() if now is None else now
    seed, read_key = nacl.utils.random(32), nacl.utils.random(32)
    record = _sign(store, seed, read_key, 1, root, now)
    row = PointerRow(
        pub=record.pub,
        seed=seed,
        read_key=read_key,
        source=source,
        seq=1,
        root=root,
        record=record.to_bytes(),
    )
    store.catalog.put_pointer(row)
    return row


def next_version(
    store: LocalStore, row: PointerRow, root: bytes, *, now: float | None = None
) -> PointerRow:
    """Sign version ``row.seq + 1`` naming ``root`` (the same one renews)."""
    now = time.time() if now is None else now
    record = _sign(store, row.seed, row.read_key, row.seq + 1, root, now)
    new = PointerRow(
        pub=row.pub,
        seed=row.seed,
        read_key=row.read_key,
        source=row.source,
        seq=row.seq + 1,
        root=root,
        record=record.to_bytes(),
    )
    store.catalog.put_pointer(new)
    return new


def pointer_for(store: LocalStore, source: str) -> PointerRow | None:
    """The pointer this home keeps for ``source`` (an absolute path)."""
    for row in store.catalog.owned_pointers():
        if row.source == source:
            return row
    return None


def renew_due(store: LocalStore, *, now: float | None = None) -> list[PointerRow]:
    """Renew every owned pointer whose record has less than half its life
    left; returns every owned pointer, renewed or not (to publish)."""
    now = time.time() if now is None else now
    rows = []
    for row in store.catalog.owned_pointers():
        record = PointerRecord.from_bytes(row.record)
        if record.expires - now < RECORD_TTL_S / 2:
            row = next_version(store, row, row.root, now=now)
        rows.append(row)
    return rows


def live_link(row: PointerRow, peers: tuple[str, ...] = ()) -> LiveLink:
    return LiveLink(pub=row.pub, read_key=row.read_key, peers=peers)


def add_live(
    store: LocalStore,
    path: Path,
    *,
    copy: bool,
    new: bool = False,
    progress: Progress = no_progress,
) -> tuple[AddedShare, PointerRow]:
    """Add ``path`` and point its pointer at the snapshot: a new pointer the
    first time, the next version when the snapshot changed, the same
    version when it did not (adding a live source twice is not an error)."""
    added = add_path(store, path, copy=copy, new=new, progress=progress)
    source = str(path.absolute())
    row = pointer_for(store, source)
    if row is None:
        row = create_pointer(store, source, added.root)
    elif row.root != added.root:
        row = next_version(store, row, added.root)
    return added, row


def publish_source(
    store: LocalStore, pub: bytes, *, progress: Progress = no_progress
) -> tuple[PointerRow, bool]:
    """Add pointer ``pub``'s source again; sign the next version when the
    snapshot changed. Returns the pointer and whether it changed.

    Raises:
        NotFoundError: this home owns no such pointer.
    """
    row = store.catalog.owned_pointer(pub)
    if row is None:
        raise NotFoundError("live share: this home does not own that pointer")
    current = store.catalog.get_share(row.root)
    added = add_path(
        store, Path(row.source), copy=current.mode == "copy", progress=progress
    )
    if added.root == row.root:
        return row, False
    return next_version(store, row, added.root), True


def pointer_named(store: LocalStore, target: str) -> PointerRow:
    """The owned pointer ``target`` names: its live link, its name
    (``live.<…>``) or its source path.

    Raises:
        LinkError: a malformed link or name.
        NotFoundError: this home owns no such pointer.
    """
    from p2pshare.format.links import LIVE_PREFIX, SCHEME, parse_any_link

    text = target.strip()
    if text.startswith(LIVE_PREFIX):
        text = SCHEME + text
    if text.startswith(SCHEME):
        link = parse_any_link(text)
        if not isinstance(link, LiveLink):
            raise NotFoundError("publish: that is a snapshot link, not a live one")
        row = store.catalog.owned_pointer(link.pub)
    else:
        row = pointer_for(store, str(Path(text).absolute()))
    if row is None:
        raise NotFoundError(
            f"publish: this home owns no live share for {target!r:.80}"
            " (`p2pshare add --live PATH` makes one)"
        )
    return row
