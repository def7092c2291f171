"""The catalog's erasure tables (format/erasure.py): a share's signed map
and the column this home keeps of it (``erasure``), and, for an owner, the
column each replica seed keeps (``replica_cols``); and the link-control
tables (format/ticket.py): a share's newest signed policy (``policies``, an
owner's and a seed's) and the tickets an owner issued (``tickets``)."""

from __future__ import annotations

from dataclasses import dataclass

from p2pshare.store.schema import Tables, locked

__all__ = ["ErasureRow", "ErasureTables", "TicketRow"]


@dataclass(frozen=True, slots=True)
class TicketRow:
    link_id: bytes
    root: bytes
    expires: int  # 0: none
    revoked: bool
    created_at: int


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

    # -- link control ---------------------------------------------------------------
    @locked
    def put_policy(self, root: bytes, seq: int, record: bytes) -> bool:
        """Keep ``record`` if its ``seq`` is newer than the one kept; True
        when it was."""
        cur = self._db.execute(
            "INSERT INTO policies (root, seq, record) VALUES (?,?,?)"
            " ON CONFLICT(root) DO UPDATE SET seq = excluded.seq,"
            " record = excluded.record WHERE excluded.seq > policies.seq",
            (root, seq, record),
        )
        return cur.rowcount > 0

    @locked
    def policy_of(self, root: bytes) -> bytes | None:
        r = self._db.execute(
            "SELECT record FROM policies WHERE root = ?", (root,)
        ).fetchone()
        return None if r is None else bytes(r[0])

    @locked
    def put_ticket(self, row: TicketRow) -> None:
        self._db.execute(
            "INSERT INTO tickets (id, root, expires, revoked, created_at)"
            " VALUES (?,?,?,?,?)",
            (row.link_id, row.root, row.expires, int(row.revoked), row.created_at),
        )

    @locked
    def tickets(self, root: bytes | None = None) -> list[TicketRow]:
        sql = "SELECT id, root, expires, revoked, created_at FROM tickets"
        args: tuple[bytes, ...] = ()
        if root is not None:
            sql += " WHERE root = ?"
            args = (root,)
        rows = self._db.execute(sql + " ORDER BY created_at, id", args).fetchall()
        return [TicketRow(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    @locked
    def revoke_tickets(self, root: bytes, ids: list[bytes] | None) -> int:
        """Mark ``ids`` (None: every ticket of ``root``) revoked; returns
        how many were not revoked before."""
        if ids is None:
            cur = self._db.execute(
                "UPDATE tickets SET revoked = 1 WHERE root = ? AND revoked = 0",
                (root,),
            )
            return cur.rowcount
        n = 0
        for i in ids:
            cur = self._db.execute(
                "UPDATE tickets SET revoked = 1 WHERE root = ? AND id = ?"
                " AND revoked = 0",
                (root, i),
            )
            n += cur.rowcount
        return n
