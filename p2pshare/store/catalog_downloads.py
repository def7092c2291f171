"""The catalog's downloads: partial files and their durable bitmaps."""

from __future__ import annotations

import time

from p2pshare.errors import StoreCorrupt
from p2pshare.store.schema import DownloadRow, Tables, locked

__all__ = ["DownloadTables"]


class DownloadTables(Tables):
    # -- downloads ------------------------------------------------------------
    @locked
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

    @locked
    def save_bitmap(self, download_id: int, bitmap: bytes) -> None:
        self._db.execute(
            "UPDATE downloads SET bitmap = ? WHERE id = ?", (bitmap, download_id)
        )

    @locked
    def finish_download(self, download_id: int) -> None:
        self._db.execute("DELETE FROM downloads WHERE id = ?", (download_id,))

    @locked
    def forget_downloads(self, dest: str) -> int:
        """Forget downloads into ``dest`` and below it (``dest/...``): what a
        crash left behind a file or folder that is in place since."""
        below = dest.rstrip("/") + "/"
        cur = self._db.execute(
            "DELETE FROM downloads WHERE dest = ? OR substr(dest, 1, ?) = ?",
            (dest, len(below), below),
        )
        return cur.rowcount

    @locked
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

    @locked
    def complete_share(
        self, root: bytes, source: str, size: int, mtime_ns: int
    ) -> None:
        """A downloaded share is complete: serve it by reference from now on."""
        self._db.execute(
            "UPDATE shares SET storage = 'ref', source = ?, source_size = ?,"
            " source_mtime_ns = ? WHERE root = ? AND storage = 'partial'",
            (source, size, mtime_ns, root),
        )

    @locked
    def announced_roots(self) -> list[bytes]:
        """Roots this node announces: what the user shares, and downloads in
        progress (their verified chunks are served). Folder members need no
        record of their own: the folder's providers serve them."""
        rows = self._db.execute(
            "SELECT root FROM shares WHERE top = 1 OR storage = 'partial'"
            " ORDER BY added_at"
        ).fetchall()
        return [r[0] for r in rows]

    @locked
    def set_storage(self, root: bytes, storage: str) -> None:
        self._db.execute(
            "UPDATE shares SET storage = ? WHERE root = ?", (storage, root)
        )

    @locked
    def set_tree_size(self, root: bytes, size: int) -> None:
        """A folder's total (a downloaded folder knew only its listing's)."""
        self._db.execute("UPDATE shares SET tree_size = ? WHERE root = ?", (size, root))

    @locked
    def set_top(self, root: bytes) -> None:
        """Show a (downloaded) share in ``ls`` and keep it until ``rm``."""
        self._db.execute("UPDATE shares SET top = 1 WHERE root = ?", (root,))

    @locked
    def rebase_sources(self, old_prefix: str, new_prefix: str) -> None:
        """Sources under ``old_prefix`` moved (a finished folder download)."""
        n = len(old_prefix)
        self._db.execute(
            "UPDATE shares SET source = ? || substr(source, ?)"
            " WHERE substr(source, 1, ?) = ?",
            (new_prefix, n + 1, n, old_prefix),
        )

    @locked
    def downloads(self) -> list[DownloadRow]:
        rows = self._db.execute(
            "SELECT id, root, dest, partial, count, bitmap, state FROM downloads"
            " ORDER BY id"
        ).fetchall()
        return [DownloadRow(*r) for r in rows]
