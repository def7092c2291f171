from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from p2pshare.errors import NotFoundError, StoreCorrupt
from p2pshare.store.catalog import Catalog, ShareRow


def _row(n: int, *, top: bool = True, source: str | None = None) -> ShareRow:
    return ShareRow(
        root=bytes([n]) * 32,
        key=bytes([n + 1]) * 32,
        storage="copy",
        mode="copy",
        top=top,
        source=source,
        source_size=None,
        source_mtime_ns=None,
        tree_size=n,
        added_at=n,
    )


def test_wal_and_private_mode(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "p.db")
    assert cat._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE((tmp_path / "p.db").stat().st_mode) == 0o600
    cat.close()


def test_remove_top_keeps_shared_members_and_reports_orphans(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "p.db")
    member, folder_a, folder_b = _row(1, top=False), _row(2), _row(3)
    cat.put_share(member, [b"m" * 32, b"s" * 32])
    cat.put_share(folder_a, [b"a" * 32, b"s" * 32], [member.root])
    cat.put_share(folder_b, [b"b" * 32], [member.root])
    assert [r.root for r in cat.top_shares()] == [folder_a.root, folder_b.root]

    orphans = cat.remove_top(folder_a.root)
    assert orphans == [b"a" * 32]  # member still reachable via folder_b
    assert cat.has_share(member.root)
    orphans = cat.remove_top(folder_b.root)
    assert sorted(orphans) == sorted([b"b" * 32, b"m" * 32, b"s" * 32])
    assert not cat.has_share(member.root)
    with pytest.raises(NotFoundError):
        cat.remove_top(folder_b.root)


def test_transaction_rolls_back(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "p.db")
    cat.put_share(_row(5), [])

    def fail() -> None:
        with cat.transaction() as db:
            db.execute("DELETE FROM shares")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    assert cat.has_share(_row(5).root)


def test_download_bitmap_persists(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "p.db")
    row = cat.open_download(b"r" * 32, "/x/dest", "/x/.part", 20)
    assert row.bitmap == bytes(3)
    cat.save_bitmap(row.id, b"\xff\x01\x00")
    cat.close()
    again = Catalog(tmp_path / "p.db").open_download(
        b"r" * 32, "/x/dest", "/x/.part", 20
    )
    assert (again.id, again.bitmap) == (row.id, b"\xff\x01\x00")
    with pytest.raises(StoreCorrupt):
        Catalog(tmp_path / "p.db").open_download(b"r" * 32, "/x/dest", "/x/.part", 99)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Catalog(tmp_path / "p.db").close()
    con = sqlite3.connect(tmp_path / "p.db")
    con.execute("PRAGMA user_version=99")
    con.close()
    with pytest.raises(StoreCorrupt, match="newer"):
        Catalog(tmp_path / "p.db")


def test_garbage_file_is_store_corrupt(tmp_path: Path) -> None:
    (tmp_path / "p.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorrupt):
        Catalog(tmp_path / "p.db")
