"""The catalog's schema and row types (see ``catalog.py`` for the tables).

Shared by the table families of the catalog (``catalog.py`` shares,
``catalog_downloads.py``, ``catalog_seed.py`` pins, vouchers, replicas),
which are mixins of one :class:`~p2pshare.store.catalog.Catalog` over one
connection and one lock.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from p2pshare.records import ReplicaRecord

__all__ = [
    "PIN_COLS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SHARE_COLS",
    "DownloadRow",
    "PinRow",
    "ReplicaRow",
    "ShareRow",
    "Tables",
    "forget_share",
    "locked",
    "pin_row",
    "share_row",
]

# 2: pins and replicas (seeds); 3: vouchers; 4: fingerprints and the home
# secret (re-adding an unchanged source); 5: live shares' pointers (owned,
# and the last version seen of others'); 6: folders kept in sync; 7: erasure
# coding (a share's signed map and the column kept here; an owner's column
# per replica seed), and link control (a share's signed policy; the tickets
# an owner issued). Every
# statement is idempotent, so an older catalog is upgraded by running them
# all again.
SCHEMA_VERSION = 7

SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    root BLOB PRIMARY KEY CHECK (length(root) = 32),
    key BLOB CHECK (key IS NULL OR length(key) = 32),
    storage TEXT NOT NULL CHECK (storage IN ('ref', 'copy', 'partial')),
    mode TEXT NOT NULL CHECK (mode IN ('ref', 'copy')),
    top INTEGER NOT NULL DEFAULT 0,
    source TEXT,
    source_size INTEGER,
    source_mtime_ns INTEGER,
    tree_size INTEGER,
    added_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS shares_source ON shares(source) WHERE source IS NOT NULL;
CREATE TABLE IF NOT EXISTS children (
    parent BLOB NOT NULL,
    child BLOB NOT NULL,
    PRIMARY KEY (parent, child)
);
CREATE TABLE IF NOT EXISTS share_blocks (
    root BLOB NOT NULL,
    block BLOB NOT NULL,
    PRIMARY KEY (root, block)
);
CREATE INDEX IF NOT EXISTS share_blocks_block ON share_blocks(block);
CREATE TABLE IF NOT EXISTS downloads (
    id INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    dest TEXT NOT NULL,
    partial TEXT NOT NULL,
    count INTEGER NOT NULL,
    bitmap BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL,
    UNIQUE (root, dest)
);
CREATE TABLE IF NOT EXISTS pins (
    root BLOB PRIMARY KEY CHECK (length(root) = 32),
    owner BLOB NOT NULL,
    grant_bytes BLOB NOT NULL,
    size INTEGER NOT NULL,
    lease_expires INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('fetching', 'complete', 'failed')),
    error TEXT,
    top INTEGER NOT NULL DEFAULT 1,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seed_vouchers (
    serial BLOB PRIMARY KEY CHECK (length(serial) = 16),
    peer BLOB NOT NULL,
    quota INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    redeemed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS seed_vouchers_peer ON seed_vouchers(peer);
CREATE TABLE IF NOT EXISTS my_vouchers (
    serial BLOB PRIMARY KEY CHECK (length(serial) = 16),
    seed TEXT NOT NULL,
    code TEXT NOT NULL,
    quota INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    redeemed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    root BLOB NOT NULL,
    seed TEXT NOT NULL,
    addrs TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    lease_expires INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (root, seed)
);
CREATE TABLE IF NOT EXISTS fingerprints (
    fingerprint BLOB PRIMARY KEY CHECK (length(fingerprint) = 32),
    root BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS pointers (
    pub BLOB PRIMARY KEY CHECK (length(pub) = 32),
    seed BLOB NOT NULL CHECK (length(seed) = 32),
    read_key BLOB NOT NULL CHECK (length(read_key) = 32),
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    root BLOB NOT NULL CHECK (length(root) = 32),
    record BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS syncs (
    dir TEXT PRIMARY KEY,
    link TEXT NOT NULL,
    root TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS erasure (
    root BLOB PRIMARY KEY CHECK (length(root) = 32),
    emap BLOB NOT NULL CHECK (length(emap) = 32),
    k INTEGER NOT NULL,
    n INTEGER NOT NULL,
    col INTEGER
);
CREATE TABLE IF NOT EXISTS replica_cols (
    root BLOB NOT NULL,
    seed TEXT NOT NULL,
    col INTEGER NOT NULL,
    PRIMARY KEY (root, seed)
);
CREATE TABLE IF NOT EXISTS policies (
    root BLOB PRIMARY KEY CHECK (length(root) = 32),
    seq INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    root BLOB NOT NULL CHECK (length(root) = 32),
    expires INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_root ON tickets(root);
CREATE TABLE IF NOT EXISTS pointers_seen (
    pub BLOB PRIMARY KEY CHECK (length(pub) = 32),
    seq INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
);
"""


# Every table that records a share by its root (constants: hence noqa: S608).
SHARE_TABLES = (
    ("share_blocks", "root"),
    ("erasure", "root"),
    ("policies", "root"),
    ("children", "parent"),
    ("fingerprints", "root"),
    ("shares", "root"),
)


def forget_share(db: sqlite3.Connection, root: bytes) -> None:
    """Delete every row of share ``root`` (inside the caller's transaction)."""
    for table, column in SHARE_TABLES:
        db.execute(f"DELETE FROM {table} WHERE {column} = ?", (root,))  # noqa: S608


# Constant column list; queries interpolate only this (hence noqa: S608).
SHARE_COLS = (
    "root, key, storage, mode, top, source, source_size, source_mtime_ns,"
    " tree_size, added_at"
)


@dataclass(frozen=True, slots=True)
class ShareRow:
    root: bytes
    key: bytes | None
    storage: str
    mode: str
    top: bool
    source: str | None
    source_size: int | None
    source_mtime_ns: int | None
    tree_size: int | None
    added_at: int

    def __repr__(self) -> str:  # no key, no path
        return f"ShareRow(root={self.root.hex()[:12]}, storage={self.storage})"


@dataclass(frozen=True, slots=True)
class PinRow:
    root: bytes
    owner: bytes
    grant: bytes
    size: int
    lease_expires: int
    state: str
    error: str | None
    top: bool
    added_at: int

    def __repr__(self) -> str:  # no grant
        return f"PinRow(root={self.root.hex()[:12]}, state={self.state})"


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    root: bytes
    seed: str
    addrs: tuple[str, ...]
    region: str
    state: str
    lease_expires: int | None
    updated_at: int

    def to_wire(self) -> ReplicaRecord:
        """As the control API and ``--json`` show it (docs/control.md)."""
        return ReplicaRecord(
            seed=self.seed,
            region=self.region,
            state=self.state,
            addrs=list(self.addrs),
            lease_expires=self.lease_expires,
        )


PIN_COLS = "root, owner, grant_bytes, size, lease_expires, state, error, top, added_at"


F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: Tables, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def share_row(r: tuple[Any, ...]) -> ShareRow:
    return ShareRow(
        root=r[0],
        key=r[1],
        storage=r[2],
        mode=r[3],
        top=bool(r[4]),
        source=r[5],
        source_size=r[6],
        source_mtime_ns=r[7],
        tree_size=r[8],
        added_at=r[9],
    )


@dataclass(frozen=True, slots=True)
class DownloadRow:
    id: int
    root: bytes
    dest: str
    partial: str
    count: int
    bitmap: bytes
    state: str


def pin_row(r: tuple[Any, ...]) -> PinRow:
    return PinRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8])


class Tables:
    """What every table family of the catalog works with: one connection,
    one re-entrant lock, and immediate transactions."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @locked
    def is_block_kept(self, block: bytes) -> bool:
        """Whether some share still lists ``block``."""
        return (
            self._db.execute(
                "SELECT 1 FROM share_blocks WHERE block = ? LIMIT 1", (block,)
            ).fetchone()
            is not None
        )
