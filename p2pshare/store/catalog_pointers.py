"""The catalog's live-share pointers: the ones this home owns (their
signing seed, read key, source and latest signed record), the last version
this home accepted of anyone's (so a getter never goes back), and the
folders ``sync`` keeps (what it last made them equal to)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from p2pshare.store.schema import Tables, locked

__all__ = ["PointerRow", "PointerTables"]


@dataclass(frozen=True, slots=True)
class PointerRow:
    pub: bytes
    seed: bytes = field(repr=False)  # the pointer's Ed25519 signing seed
    read_key: bytes = field(repr=False)
    source: str = field(repr=False)
    seq: int
    root: bytes
    record: bytes = field(repr=False)  # the latest signed record


_COLS = "pub, seed, read_key, source, seq, root, record"


class PointerTables(Tables):
    @locked
    def put_pointer(self, row: PointerRow) -> None:
        """Record a new pointer, or its next version (``seq`` only grows)."""
        with self.transaction() as db:
            old = db.execute("SELECT seq FROM pointers WHERE pub = ?", (row.pub,))
            found = old.fetchone()
            if found is not None and found[0] >= row.seq:
                raise ValueError("pointer: a version must be newer than the last")
            db.execute(
                f"INSERT OR REPLACE INTO pointers ({_COLS}, updated_at)"  # noqa: S608
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    row.pub, row.seed, row.read_key, row.source, row.seq,
                    row.root, row.record, int(time.time()),
                ),
            )  # fmt: skip

    @locked
    def owned_pointer(self, pub: bytes) -> PointerRow | None:
        found = self._db.execute(
            f"SELECT {_COLS} FROM pointers WHERE pub = ?",  # noqa: S608
            (pub,),
        ).fetchone()
        return None if found is None else PointerRow(*found)

    @locked
    def owned_pointers(self) -> list[PointerRow]:
        rows = self._db.execute(f"SELECT {_COLS} FROM pointers ORDER BY updated_at")  # noqa: S608
        return [PointerRow(*r) for r in rows]

    @locked
    def owned_pointer_of(self, root: bytes) -> PointerRow | None:
        """The owned pointer whose current version is ``root``."""
        found = self._db.execute(
            f"SELECT {_COLS} FROM pointers WHERE root = ?",  # noqa: S608
            (root,),
        ).fetchone()
        return None if found is None else PointerRow(*found)

    @locked
    def seen_seq(self, pub: bytes) -> int | None:
        """The highest version of pointer ``pub`` this home accepted."""
        found = self._db.execute(
            "SELECT seq FROM pointers_seen WHERE pub = ?", (pub,)
        ).fetchone()
        return None if found is None else int(found[0])

    @locked
    def see_seq(self, pub: bytes, seq: int) -> None:
        """Remember version ``seq`` of ``pub`` (never lowers what is kept)."""
        self._db.execute(
            "INSERT INTO pointers_seen (pub, seq, seen_at) VALUES (?,?,?)"
            " ON CONFLICT(pub) DO UPDATE SET seq = max(seq, excluded.seq),"
            " seen_at = excluded.seen_at",
            (pub, seq, int(time.time())),
        )

    @locked
    def record_sync(self, folder: str, link: str, root: str, version: int) -> None:
        """``sync`` made ``folder`` equal to ``root`` (version ``version`` of
        ``link``: a link without its key)."""
        self._db.execute(
            "INSERT OR REPLACE INTO syncs (dir, link, root, version, updated_at)"
            " VALUES (?,?,?,?,?)",
            (folder, link, root, version, int(time.time())),
        )

    @locked
    def syncs(self) -> list[tuple[str, str, str, int, int]]:
        """(dir, link, root, version, updated_at) of every synced folder."""
        rows = self._db.execute(
            "SELECT dir, link, root, version, updated_at FROM syncs ORDER BY dir"
        )
        return [(str(a), str(b), str(c), int(d), int(e)) for a, b, c, d, e in rows]
