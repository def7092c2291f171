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
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from p2pshare.errors import NotFoundError, StoreCorrupt, StoreError
from p2pshare.store.catalog_downloads import DownloadTables
from p2pshare.store.catalog_erasure import ErasureTables
from p2pshare.store.catalog_pointers import PointerTables
from p2pshare.store.catalog_seed import SeedTables
from p2pshare.store.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    SHARE_COLS,
    DownloadRow,
    PinRow,
    ReplicaRow,
    ShareRow,
    forget_share,
    locked,
    share_row,
)

__all__ = ["Catalog", "DownloadRow", "PinRow", "ReplicaRow", "ShareRow"]


class Catalog(DownloadTables, SeedTables, PointerTables, ErasureTables):
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
                    for statement in SCHEMA.split(";"):
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

    @locked
    def close(self) -> None:
        self._db.close()

    # -- shares -------------------------------------------------------------
    @locked
    def put_share(
        self,
        row: ShareRow,
        blocks: Sequence[bytes],
        children: Sequence[bytes] = (),
    ) -> None:
        """Insert or replace a share with the blocks it keeps (one transaction)."""
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO shares ({SHARE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)"  # noqa: S608
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

    @locked
    def get_share(self, root: bytes) -> ShareRow:
        """Raises NotFoundError when this home holds no such share."""
        cur = self._db.execute(
            f"SELECT {SHARE_COLS} FROM shares WHERE root = ?",  # noqa: S608
            (root,),
        )
        found = cur.fetchone()
        if found is None:
            raise NotFoundError("share: not in the local store")
        return share_row(found)

    @locked
    def has_share(self, root: bytes) -> bool:
        return (
            self._db.execute("SELECT 1 FROM shares WHERE root = ?", (root,)).fetchone()
            is not None
        )

    @locked
    def top_shares(self) -> list[ShareRow]:
        """The user's shares (not the keyless replicas a seed keeps)."""
        rows = self._db.execute(
            f"SELECT {SHARE_COLS} FROM shares WHERE top = 1 AND key IS NOT NULL"  # noqa: S608
            " ORDER BY added_at, root"
        ).fetchall()
        return [share_row(r) for r in rows]

    @locked
    def shares_by_source(
        self, source: str, *, top_only: bool = False
    ) -> list[ShareRow]:
        rows = self._db.execute(
            f"SELECT {SHARE_COLS} FROM shares WHERE source = ? AND top >= ?",  # noqa: S608
            (source, int(top_only)),
        ).fetchall()
        return [share_row(r) for r in rows]

    @locked
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
                forget_share(db, r)
            return sorted(b for b in candidates if not self.is_block_kept(b))

    @locked
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

    @locked
    def share_by_fingerprint(self, fingerprint: bytes) -> ShareRow | None:
        """The share an unchanged source became, if this home still has it
        (with its key)."""
        found = self._db.execute(
            f"SELECT {SHARE_COLS} FROM shares WHERE key IS NOT NULL"  # noqa: S608
            " AND storage IN ('ref', 'copy')"
            " AND root = (SELECT root FROM fingerprints WHERE fingerprint = ?)",
            (fingerprint,),
        ).fetchone()
        return None if found is None else share_row(found)

    @locked
    def put_fingerprint(self, fingerprint: bytes, root: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO fingerprints (fingerprint, root) VALUES (?, ?)",
            (fingerprint, root),
        )

    @locked
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
                forget_share(db, r)
            return len(gone)

    @locked
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

    @locked
    def children_of(self, root: bytes) -> list[bytes]:
        """The member shares of a folder share (none for a file)."""
        rows = self._db.execute(
            "SELECT child FROM children WHERE parent = ? ORDER BY child", (root,)
        ).fetchall()
        return [r[0] for r in rows]
