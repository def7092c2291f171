"""The catalog's erasure tables (format/erasure.py): a share's signed map
and the column this home keeps of it (``erasure``), and, for an owner, the
column each replica seed keeps (``replica_cols``)."""

from __future__ import annotations

from dataclasses import dataclass

from p2pshare.store.schema import Tables, locked

__all__ = ["ErasureRow", "ErasureTables"]


@dataclass(frozen=True, slots=True)
class ErasureRow:
    root: bytes
    emap: bytes  # the signed map's block id (the map is a block of the share)
    k: int
    n: int
    col: int | None  # the column kept here (a seed); None: the owner's map


class ErasureTables(Tables):
    @locked
    def put_erasure(self, row: ErasureRow) -> None:
        self._db.execute(
            "INSERT INTO erasure (root, emap, k, n, col) VALUES (?,?,?,?,?)"
            " ON CONFLICT(root) DO UPDATE SET emap = excluded.emap, k = excluded.k,"
            " n = excluded.n, col = excluded.col",
            (row.root, row.emap, row.k, row.n, row.col),
        )

    @locked
    def erasure_of(self, root: bytes) -> ErasureRow | None:
        r = self._db.execute(
            "SELECT root, emap, k, n, col FROM erasure WHERE root = ?", (root,)
        ).fetchone()
        return None if r is None else ErasureRow(r[0], r[1], r[2], r[3], r[4])

    @locked
    def put_replica_col(self, root: bytes, seed: str, col: int | None) -> None:
        if col is None:
            self._db.execute(
                "DELETE FROM replica_cols WHERE root = ? AND seed = ?", (root, seed)
            )
            return
        self._db.execute(
            "INSERT INTO replica_cols (root, seed, col) VALUES (?,?,?)"
            " ON CONFLICT(root, seed) DO UPDATE SET col = excluded.col",
            (root, seed, col),
        )

    @locked
    def replica_cols(self, root: bytes) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT seed, col FROM replica_cols WHERE root = ?", (root,)
        ).fetchall()
        return dict(rows)
