"""The SQLite catalog of a node home (``p2pshare.db``).

Theory of operation
-------------------
SQLite in WAL mode with ``synchronous=FULL``: a committed transaction
survives a crash or power loss, and readers never block the writer. The
file is created 0600 (it holds file keys). Schema version lives in
``PRAGMA user_version``; a newer schema than this code knows is refused.

Tables:

``shares``
    one row per share this node holds: root id, file key (NULL for a
    ciphertext-only replica), ``storage`` (``ref``: chunks re-encrypted
    from ``source`` on demand; ``copy``: chunk ciphertext in the block
    store; ``partial``: being downloaded, verified chunks re-encrypted from
    the partial file of its ``downloads`` row), the ``mode`` the user
    chose, ``top`` (1 when the user added it; folder members have 0), for
    ``ref`` the source's size and mtime when it was added, and
    ``tree_size`` (a file's size, a folder's total) for listings. No
    plaintext name is stored: ``ls`` opens the sealed meta with the key.
    (A ``ref`` share's ``source`` path is necessarily plaintext; ``--copy``
    keeps none.)
``children``
    folder → member edges, so removing a folder finds its members.
``share_blocks``
    which blocks each share keeps (envelope, index blocks, and for ``copy``
    the chunks). A block is deleted when no share keeps it.
``downloads``
    one row per (root, destination) download: the partial file, and a
    bitmap of the chunks that are verified **and** durable in it. The
    bitmap is only ever updated after the partial file was fsynced, so a
    set bit is never a lie after a crash.
``pins`` (a seed)
    one row per root a peer asked this seed to keep: the owner's peer id,
    the grant that lets this seed fetch it, the ciphertext bytes reserved,
    the lease, and the state. The replica itself is a ``shares`` row with
    no key and ``copy`` storage, created once every chunk is stored; while
    fetching, the stored blocks are listed in ``share_blocks`` so a failed
    pin deletes them.
``seed_vouchers`` (a seed)
    the ledger of redeemed vouchers: serial, the peer that redeemed it
    first (it is bound to that peer), quota, expiry. A peer's balance is
    the quota of its unexpired vouchers minus the bytes reserved by its
    pins that are not failed, so unpinning or a lease expiry credits it
    back with no bookkeeping to get wrong.
``my_vouchers`` (a user)
    vouchers this home redeemed: the seed's peer id, the code, quota and
    expiry.
``fingerprints``
    a keyed hash of what was added (path, size, mtime, inode, mode, chunk
    size; for a folder its listing) → the share it became, so re-adding an
    unchanged source returns the same share and link. Keyed with the home's
    ``secrets`` row ``fingerprint``, so the table names no path. A row
    whose share is gone is ignored (and dropped with the share).
``replicas`` (an owner)
    which seeds were asked to keep which root, their addresses and region,
    the last known state and lease (renewed by the owner's node).

All methods are synchronous; the node calls them from a worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from p2pshare.errors import NotFoundError, StoreCorrupt, StoreError

__all__ = ["Catalog", "DownloadRow", "PinRow", "ReplicaRow", "ShareRow"]

# 2: pins and replicas (seeds); 3: vouchers; 4: fingerprints and the home
# secret (re-adding an unchanged source). Every statement is idempotent,
# so an older catalog is upgraded by running them all again.
SCHEMA_VERSION = 4

_SCHEMA = """
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
"""


# Every table that records a share by its root (constants: hence noqa: S608).
_SHARE_TABLES = (
    ("share_blocks", "root"),
    ("children", "parent"),
    ("fingerprints", "root"),
    ("shares", "root"),
)


def _forget_share(db: sqlite3.Connection, root: bytes) -> None:
    """Delete every row of share ``root`` (inside the caller's transaction)."""
    for table, column in _SHARE_TABLES:
        db.execute(f"DELETE FROM {table} WHERE {column} = ?", (root,))  # noqa: S608


# Constant column list; queries interpolate only this (hence noqa: S608).
_SHARE_COLS = (
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

    def to_wire(self) -> dict[str, Any]:
        """As the control API and ``--json`` show it (docs/control.md)."""
        return {
            "seed": self.seed,
            "region": self.region,
            "state": self.state,
            "addrs": list(self.addrs),
            "lease_expires": self.lease_expires,
        }


_PIN_COLS = "root, owner, grant_bytes, size, lease_expires, state, error, top, added_at"


F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _share_row(r: tuple[Any, ...]) -> ShareRow:
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


class Catalog:
    """One connection to a home's catalog.

    Thread-safe: every public method holds one re-entrant lock, so the node
    may call it from worker threads (``trio.to_thread``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            # Create the file 0600 ourselves so it is never world-readable,
            # not even for the instant before a chmod.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(
                path, isolation_level=None, timeout=30, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreCorrupt(
                    f"{path}: catalog schema {version} is newer than this p2pshare"
                )
            if version < SCHEMA_VERSION:
                with self.transaction() as db:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(f"{path}: catalog unreadable ({exc})") from exc
        except OSError as exc:
            raise StoreError(f"{path}: cannot open catalog ({exc.strerror})") from exc
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(f"{path}{suffix}", 0o600)

    @_locked
    def close(self) -> None:
        self._db.close()

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

    # -- shares -------------------------------------------------------------
    @_locked
    def put_share(
        self,
        row: ShareRow,
        blocks: Sequence[bytes],
        children: Sequence[bytes] = (),
    ) -> None:
        """Insert or replace a share with the blocks it keeps (one transaction)."""
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO shares ({_SHARE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)"  # noqa: S608
                " ON CONFLICT(root) DO UPDATE SET top = max(top, excluded.top),"
                " key = coalesce(key, excluded.key)",
                (
                    row.root,
                    row.key,
                    row.storage,
                    row.mode,
                    int(row.top),
                    row.source,
                    row.source_size,
                    row.source_mtime_ns,
                    row.tree_size,
                    row.added_at,
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO share_blocks (root, block) VALUES (?, ?)",
                [(row.root, b) for b in blocks],
            )
            db.executemany(
                "INSERT OR IGNORE INTO children (parent, child) VALUES (?, ?)",
                [(row.root, c) for c in children],
            )

    @_locked
    def get_share(self, root: bytes) -> ShareRow:
        """Raises NotFoundError when this home holds no such share."""
        cur = self._db.execute(
            f"SELECT {_SHARE_COLS} FROM shares WHERE root = ?",  # noqa: S608
            (root,),
        )
        found = cur.fetchone()
        if found is None:
            raise NotFoundError("share: not in the local store")
        return _share_row(found)

    @_locked
    def has_share(self, root: bytes) -> bool:
        return (
            self._db.execute("SELECT 1 FROM shares WHERE root = ?", (root,)).fetchone()
            is not None
        )

    @_locked
    def top_shares(self) -> list[ShareRow]:
        """The user's shares (not the keyless replicas a seed keeps)."""
        rows = self._db.execute(
            f"SELECT {_SHARE_COLS} FROM shares WHERE top = 1 AND key IS NOT NULL"  # noqa: S608
            " ORDER BY added_at, root"
        ).fetchall()
        return [_share_row(r) for r in rows]

    @_locked
    def shares_by_source(
        self, source: str, *, top_only: bool = False
    ) -> list[ShareRow]:
        rows = self._db.execute(
            f"SELECT {_SHARE_COLS} FROM shares WHERE source = ? AND top >= ?",  # noqa: S608
            (source, int(top_only)),
        ).fetchall()
        return [_share_row(r) for r in rows]

    @_locked
    def remove_top(self, root: bytes) -> list[bytes]:
        """Un-top ``root`` and drop every share no longer reachable from a
        top share (downloads in progress and pinned replicas stay). Returns
        the ids of blocks that no share keeps any more; the caller deletes
        those files after this returns (a crash in between leaves orphans,
        which are harmless).

        Raises:
            NotFoundError: ``root`` is not a share the user added.
        """
        with self.transaction() as db:
            if (
                db.execute(
                    "UPDATE shares SET top = 0 WHERE root = ? AND top = 1", (root,)
                ).rowcount
                == 0
            ):
                raise NotFoundError("share: not in the local store")
            gone = [
                r
                for (r,) in db.execute(
                    """
                WITH RECURSIVE keep(root) AS (
                    SELECT root FROM shares WHERE top = 1
                    UNION SELECT c.child FROM children c
                    JOIN keep k ON c.parent = k.root
                )
                SELECT root FROM shares WHERE root NOT IN (SELECT root FROM keep)
                AND storage != 'partial' AND root NOT IN (SELECT root FROM pins)
                """
                )
            ]
            candidates: set[bytes] = set()
            for r in gone:
                candidates.update(
                    b
                    for (b,) in db.execute(
                        "SELECT block FROM share_blocks WHERE root = ?", (r,)
                    )
                )
                _forget_share(db, r)
            return sorted(b for b in candidates if not self.is_block_kept(b))

    @_locked
    def secret(self, name: str) -> bytes:
        """A 32-byte random secret of this home, made on first use."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT value FROM secrets WHERE name = ?", (name,)
            ).fetchone()
            if row is not None:
                return bytes(row[0])
            value = os.urandom(32)
            db.execute("INSERT INTO secrets (name, value) VALUES (?, ?)", (name, value))
            return value

    @_locked
    def share_by_fingerprint(self, fingerprint: bytes) -> ShareRow | None:
        """The share an unchanged source became, if this home still has it
        (with its key)."""
        found = self._db.execute(
            f"SELECT {_SHARE_COLS} FROM shares WHERE key IS NOT NULL"  # noqa: S608
            " AND storage IN ('ref', 'copy')"
            " AND root = (SELECT root FROM fingerprints WHERE fingerprint = ?)",
            (fingerprint,),
        ).fetchone()
        return None if found is None else _share_row(found)

    @_locked
    def put_fingerprint(self, fingerprint: bytes, root: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO fingerprints (fingerprint, root) VALUES (?, ?)",
            (fingerprint, root),
        )

    @_locked
    def drop_orphan_partials(self) -> int:
        """Forget partial shares that no download and no share needs any more
        (a cancelled or superseded download); their blocks become garbage.
        Returns how many were dropped."""
        with self.transaction() as db:
            gone = [
                r
                for (r,) in db.execute(
                    """
                WITH RECURSIVE keep(root) AS (
                    SELECT root FROM shares WHERE top = 1
                    UNION SELECT root FROM downloads
                    UNION SELECT root FROM pins
                    UNION SELECT c.child FROM children c
                    JOIN keep k ON c.parent = k.root
                )
                SELECT root FROM shares WHERE storage = 'partial'
                AND root NOT IN (SELECT root FROM keep)
                """
                )
            ]
            for r in gone:
                _forget_share(db, r)
            return len(gone)

    @_locked
    def kept_of(self, blocks: Sequence[bytes]) -> set[bytes]:
        """Which of ``blocks`` some share or pin keeps (one query)."""
        found: set[bytes] = set()
        for o in range(0, len(blocks), 500):  # SQLite's parameter limit
            part = blocks[o : o + 500]
            marks = ",".join("?" * len(part))
            found.update(
                bytes(b)
                for (b,) in self._db.execute(
                    f"SELECT DISTINCT block FROM share_blocks WHERE block IN ({marks})",  # noqa: S608
                    part,
                )
            )
        return found

    @_locked
    def children_of(self, root: bytes) -> list[bytes]:
        """The member shares of a folder share (none for a file)."""
        rows = self._db.execute(
            "SELECT child FROM children WHERE parent = ? ORDER BY child", (root,)
        ).fetchall()
        return [r[0] for r in rows]

    @_locked
    def is_block_kept(self, block: bytes) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM share_blocks WHERE block = ? LIMIT 1", (block,)
            ).fetchone()
            is not None
        )

    # -- downloads ------------------------------------------------------------
    @_locked
    def open_download(
        self, root: bytes, dest: str, partial: str, count: int
    ) -> DownloadRow:
        """Return the download of ``root`` into ``dest``, creating it if new."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO downloads (root, dest, partial, count, bitmap,"
                " created_at) VALUES (?,?,?,?,?,?)",
                (root, dest, partial, count, bytes(-(-count // 8)), int(time.time())),
            )
            found = db.execute(
                "SELECT id, root, dest, partial, count, bitmap, state FROM downloads"
                " WHERE root = ? AND dest = ?",
                (root, dest),
            ).fetchone()
        row = DownloadRow(*found)
        if row.count != count or len(row.bitmap) != -(-count // 8):
            raise StoreCorrupt("download: bitmap does not match the share")
        return row

    @_locked
    def save_bitmap(self, download_id: int, bitmap: bytes) -> None:
        self._db.execute(
            "UPDATE downloads SET bitmap = ? WHERE id = ?", (bitmap, download_id)
        )

    @_locked
    def finish_download(self, download_id: int) -> None:
        self._db.execute("DELETE FROM downloads WHERE id = ?", (download_id,))

    @_locked
    def download_of(self, root: bytes) -> DownloadRow | None:
        """The most advanced download of ``root`` (for serving it partially)."""
        rows = self._db.execute(
            "SELECT id, root, dest, partial, count, bitmap, state FROM downloads"
            " WHERE root = ?",
            (root,),
        ).fetchall()
        if not rows:
            return None
        return max((DownloadRow(*r) for r in rows), key=lambda d: sum(d.bitmap))

    @_locked
    def complete_share(
        self, root: bytes, source: str, size: int, mtime_ns: int
    ) -> None:
        """A downloaded share is complete: serve it by reference from now on."""
        self._db.execute(
            "UPDATE shares SET storage = 'ref', source = ?, source_size = ?,"
            " source_mtime_ns = ? WHERE root = ? AND storage = 'partial'",
            (source, size, mtime_ns, root),
        )

    @_locked
    def announced_roots(self) -> list[bytes]:
        """Roots this node announces: what the user shares, and downloads in
        progress (their verified chunks are served). Folder members need no
        record of their own: the folder's providers serve them."""
        rows = self._db.execute(
            "SELECT root FROM shares WHERE top = 1 OR storage = 'partial'"
            " ORDER BY added_at"
        ).fetchall()
        return [r[0] for r in rows]

    @_locked
    def set_storage(self, root: bytes, storage: str) -> None:
        self._db.execute(
            "UPDATE shares SET storage = ? WHERE root = ?", (storage, root)
        )

    @_locked
    def set_tree_size(self, root: bytes, size: int) -> None:
        """A folder's total (a downloaded folder knew only its listing's)."""
        self._db.execute("UPDATE shares SET tree_size = ? WHERE root = ?", (size, root))

    @_locked
    def set_top(self, root: bytes) -> None:
        """Show a (downloaded) share in ``ls`` and keep it until ``rm``."""
        self._db.execute("UPDATE shares SET top = 1 WHERE root = ?", (root,))

    @_locked
    def rebase_sources(self, old_prefix: str, new_prefix: str) -> None:
        """Sources under ``old_prefix`` moved (a finished folder download)."""
        n = len(old_prefix)
        self._db.execute(
            "UPDATE shares SET source = ? || substr(source, ?)"
            " WHERE substr(source, 1, ?) = ?",
            (new_prefix, n + 1, n, old_prefix),
        )

    @_locked
    def downloads(self) -> list[DownloadRow]:
        rows = self._db.execute(
            "SELECT id, root, dest, partial, count, bitmap, state FROM downloads"
            " ORDER BY id"
        ).fetchall()
        return [DownloadRow(*r) for r in rows]

    # -- pins (a seed) --------------------------------------------------------
    @_locked
    def put_pin(self, pin: PinRow) -> None:
        """Record a pin (or renew one: a new grant, lease and size)."""
        self._db.execute(
            f"INSERT INTO pins ({_PIN_COLS}) VALUES (?,?,?,?,?,?,?,?,?)"  # noqa: S608
            " ON CONFLICT(root) DO UPDATE SET grant_bytes = excluded.grant_bytes,"
            " lease_expires = max(lease_expires, excluded.lease_expires),"
            " top = max(top, excluded.top)",
            (
                pin.root,
                pin.owner,
                pin.grant,
                pin.size,
                pin.lease_expires,
                pin.state,
                pin.error,
                int(pin.top),
                pin.added_at,
            ),
        )

    @_locked
    def get_pin(self, root: bytes) -> PinRow | None:
        r = self._db.execute(
            f"SELECT {_PIN_COLS} FROM pins WHERE root = ?",  # noqa: S608
            (root,),
        ).fetchone()
        return None if r is None else _pin_row(r)

    @_locked
    def pins(self) -> list[PinRow]:
        rows = self._db.execute(
            f"SELECT {_PIN_COLS} FROM pins ORDER BY added_at, root"  # noqa: S608
        ).fetchall()
        return [_pin_row(r) for r in rows]

    @_locked
    def redeem_voucher(
        self, serial: bytes, peer: bytes, quota: int, expires: int, now: int
    ) -> bool:
        """Bind a voucher to ``peer`` (first redeemer wins). Returns False
        when another peer redeemed it already; redeeming again is fine."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT peer FROM seed_vouchers WHERE serial = ?", (serial,)
            ).fetchone()
            if row is not None:
                return bytes(row[0]) == peer
            db.execute(
                "INSERT INTO seed_vouchers (serial, peer, quota, expires,"
                " redeemed_at) VALUES (?,?,?,?,?)",
                (serial, peer, quota, expires, now),
            )
            return True

    @_locked
    def balance(self, peer: bytes, now: int) -> tuple[int, int, int, int | None]:
        """``(quota, used, vouchers, latest expiry)`` of ``peer`` on this seed."""
        quota, count, latest = self._db.execute(
            "SELECT coalesce(sum(quota), 0), count(*), max(expires)"
            " FROM seed_vouchers WHERE peer = ? AND expires > ?",
            (peer, now),
        ).fetchone()
        (used,) = self._db.execute(
            "SELECT coalesce(sum(size), 0) FROM pins WHERE owner = ?"
            " AND state != 'failed'",
            (peer,),
        ).fetchone()
        return min(int(quota), (1 << 63) - 1), int(used), int(count), latest

    @_locked
    def add_my_voucher(
        self, serial: bytes, seed: str, code: str, quota: int, expires: int, now: int
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO my_vouchers (serial, seed, code, quota, expires,"
            " redeemed_at) VALUES (?,?,?,?,?,?)",
            (serial, seed, code, quota, expires, now),
        )

    @_locked
    def my_vouchers(self) -> list[tuple[str, str, int, int]]:
        """``(seed peer id, code, quota, expires)`` of every redeemed voucher."""
        rows = self._db.execute(
            "SELECT seed, code, quota, expires FROM my_vouchers ORDER BY redeemed_at"
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    @_locked
    def pinned_bytes(self) -> int:
        """Ciphertext bytes reserved by pins that are not failed."""
        (total,) = self._db.execute(
            "SELECT coalesce(sum(size), 0) FROM pins WHERE state != 'failed'"
        ).fetchone()
        return int(total)

    @_locked
    def fetching_pins(self, owner: bytes) -> int:
        """How many of ``owner``'s pins are still being fetched."""
        (n,) = self._db.execute(
            "SELECT count(*) FROM pins WHERE owner = ? AND state = 'fetching'",
            (owner,),
        ).fetchone()
        return int(n)

    @_locked
    def set_pin_size(self, root: bytes, size: int) -> None:
        self._db.execute("UPDATE pins SET size = ? WHERE root = ?", (size, root))

    @_locked
    def set_pin_state(self, root: bytes, state: str, error: str | None = None) -> None:
        self._db.execute(
            "UPDATE pins SET state = ?, error = ? WHERE root = ?", (state, error, root)
        )

    @_locked
    def keep_blocks(self, root: bytes, blocks: Sequence[bytes]) -> None:
        """Blocks a replica being fetched keeps (so a failed pin finds them)."""
        self._db.executemany(
            "INSERT OR IGNORE INTO share_blocks (root, block) VALUES (?, ?)",
            [(root, b) for b in blocks],
        )

    @_locked
    def complete_replica(self, row: ShareRow) -> None:
        """Every chunk of a pinned root is stored: serve it (no key)."""
        with self.transaction() as db:
            db.execute(
                f"INSERT OR IGNORE INTO shares ({_SHARE_COLS})"  # noqa: S608
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    row.root,
                    None,
                    "copy",
                    "copy",
                    int(row.top),
                    None,
                    None,
                    None,
                    row.tree_size,
                    row.added_at,
                ),
            )
            db.execute(
                "UPDATE pins SET state = 'complete', error = NULL WHERE root = ?",
                (row.root,),
            )

    @_locked
    def drop_pin(self, root: bytes, *, keep_pin: bool = False) -> list[bytes]:
        """Forget a pin and its replica; returns the blocks no share keeps
        any more (the caller deletes their files). A share this node holds
        for itself (with a key) is kept, only the pin goes. With
        ``keep_pin`` only the replica goes and the pin row stays (a failed
        pin, whose owner should see why)."""
        with self.transaction() as db:
            if not keep_pin:
                db.execute("DELETE FROM pins WHERE root = ?", (root,))
            mine = db.execute(
                "SELECT 1 FROM shares WHERE root = ? AND key IS NOT NULL", (root,)
            ).fetchone()
            if mine is not None:
                return []
            blocks = [
                b
                for (b,) in db.execute(
                    "SELECT block FROM share_blocks WHERE root = ?", (root,)
                )
            ]
            _forget_share(db, root)
            return sorted(b for b in set(blocks) if not self.is_block_kept(b))

    @_locked
    def expired_pins(self, now: int) -> list[bytes]:
        rows = self._db.execute(
            "SELECT root FROM pins WHERE lease_expires <= ?", (now,)
        ).fetchall()
        return [r[0] for r in rows]

    @_locked
    def announced_pins(self) -> list[bytes]:
        """Complete top replicas (a seed announces them like shares)."""
        rows = self._db.execute(
            "SELECT root FROM pins WHERE state = 'complete' AND top = 1"
            " ORDER BY added_at"
        ).fetchall()
        return [r[0] for r in rows]

    # -- replicas (an owner) ----------------------------------------------------
    @_locked
    def put_replica(self, rep: ReplicaRow) -> None:
        self._db.execute(
            "INSERT INTO replicas (root, seed, addrs, region, state, lease_expires,"
            " updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(root, seed) DO UPDATE"
            " SET addrs = excluded.addrs, region = excluded.region,"
            " state = excluded.state, lease_expires = excluded.lease_expires,"
            " updated_at = excluded.updated_at",
            (
                rep.root,
                rep.seed,
                "\n".join(rep.addrs),
                rep.region,
                rep.state,
                rep.lease_expires,
                rep.updated_at,
            ),
        )

    @_locked
    def replicas(self, root: bytes | None = None) -> list[ReplicaRow]:
        sql = (
            "SELECT root, seed, addrs, region, state, lease_expires, updated_at"
            " FROM replicas"
        )
        args: tuple[Any, ...] = ()
        if root is not None:
            sql += " WHERE root = ?"
            args = (root,)
        rows = self._db.execute(sql + " ORDER BY root, seed", args).fetchall()
        return [
            ReplicaRow(
                r[0],
                r[1],
                tuple(a for a in r[2].split("\n") if a),
                r[3],
                r[4],
                r[5],
                r[6],
            )
            for r in rows
        ]

    @_locked
    def drop_replica(self, root: bytes, seed: str) -> None:
        self._db.execute(
            "DELETE FROM replicas WHERE root = ? AND seed = ?", (root, seed)
        )


def _pin_row(r: tuple[Any, ...]) -> PinRow:
    return PinRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8])
