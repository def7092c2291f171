"""The catalog's seed tables: pins and vouchers (a seed), replicas and
redeemed vouchers (an owner)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from p2pshare.store.schema import (
    PIN_COLS,
    SHARE_COLS,
    PinRow,
    ReplicaRow,
    ShareRow,
    Tables,
    forget_share,
    locked,
    pin_row,
)

__all__ = ["SeedTables"]


class SeedTables(Tables):
    # -- pins (a seed) --------------------------------------------------------
    @locked
    def put_pin(self, pin: PinRow) -> None:
        """Record a pin (or renew one: a new grant, lease and size)."""
        self._db.execute(
            f"INSERT INTO pins ({PIN_COLS}) VALUES (?,?,?,?,?,?,?,?,?)"  # noqa: S608
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

    @locked
    def get_pin(self, root: bytes) -> PinRow | None:
        r = self._db.execute(
            f"SELECT {PIN_COLS} FROM pins WHERE root = ?",  # noqa: S608
            (root,),
        ).fetchone()
        return None if r is None else pin_row(r)

    @locked
    def pins(self) -> list[PinRow]:
        rows = self._db.execute(
            f"SELECT {PIN_COLS} FROM pins ORDER BY added_at, root"  # noqa: S608
        ).fetchall()
        return [pin_row(r) for r in rows]

    @locked
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

    @locked
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

    @locked
    def add_my_voucher(
        self, serial: bytes, seed: str, code: str, quota: int, expires: int, now: int
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO my_vouchers (serial, seed, code, quota, expires,"
            " redeemed_at) VALUES (?,?,?,?,?,?)",
            (serial, seed, code, quota, expires, now),
        )

    @locked
    def my_vouchers(self) -> list[tuple[str, str, int, int]]:
        """``(seed peer id, code, quota, expires)`` of every redeemed voucher."""
        rows = self._db.execute(
            "SELECT seed, code, quota, expires FROM my_vouchers ORDER BY redeemed_at"
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    @locked
    def pinned_bytes(self) -> int:
        """Ciphertext bytes reserved by pins that are not failed."""
        (total,) = self._db.execute(
            "SELECT coalesce(sum(size), 0) FROM pins WHERE state != 'failed'"
        ).fetchone()
        return int(total)

    @locked
    def fetching_pins(self, owner: bytes) -> int:
        """How many of ``owner``'s pins are still being fetched."""
        (n,) = self._db.execute(
            "SELECT count(*) FROM pins WHERE owner = ? AND state = 'fetching'",
            (owner,),
        ).fetchone()
        return int(n)

    @locked
    def set_pin_size(self, root: bytes, size: int) -> None:
        self._db.execute("UPDATE pins SET size = ? WHERE root = ?", (size, root))

    @locked
    def set_pin_state(self, root: bytes, state: str, error: str | None = None) -> None:
        self._db.execute(
            "UPDATE pins SET state = ?, error = ? WHERE root = ?", (state, error, root)
        )

    @locked
    def keep_blocks(self, root: bytes, blocks: Sequence[bytes]) -> None:
        """Blocks a replica being fetched keeps (so a failed pin finds them)."""
        self._db.executemany(
            "INSERT OR IGNORE INTO share_blocks (root, block) VALUES (?, ?)",
            [(root, b) for b in blocks],
        )

    @locked
    def complete_replica(self, row: ShareRow) -> None:
        """Every chunk of a pinned root is stored: serve it (no key)."""
        with self.transaction() as db:
            db.execute(
                f"INSERT OR IGNORE INTO shares ({SHARE_COLS})"  # noqa: S608
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

    @locked
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
            forget_share(db, root)
            return sorted(b for b in set(blocks) if not self.is_block_kept(b))

    @locked
    def expired_pins(self, now: int) -> list[bytes]:
        rows = self._db.execute(
            "SELECT root FROM pins WHERE lease_expires <= ?", (now,)
        ).fetchall()
        return [r[0] for r in rows]

    @locked
    def announced_pins(self) -> list[bytes]:
        """Complete top replicas (a seed announces them like shares)."""
        rows = self._db.execute(
            "SELECT root FROM pins WHERE state = 'complete' AND top = 1"
            " ORDER BY added_at"
        ).fetchall()
        return [r[0] for r in rows]

    # -- replicas (an owner) ----------------------------------------------------
    @locked
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

    @locked
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

    @locked
    def drop_replica(self, root: bytes, seed: str) -> None:
        self._db.execute(
            "DELETE FROM replicas WHERE root = ? AND seed = ?", (root, seed)
        )
        self._db.execute(
            "DELETE FROM replica_cols WHERE root = ? AND seed = ?", (root, seed)
        )
