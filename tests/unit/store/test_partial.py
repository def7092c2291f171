from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pshare.errors import OutputExistsError, StoreError
from p2pshare.format import Geometry
from p2pshare.store.catalog import Catalog
from p2pshare.store.partial import PartialFile, partial_name

CS = 4096


def _padded(geo: Geometry, i: int, fill: int) -> bytes:
    return bytes([fill]) * geo.plain_len(i) + bytes(
        geo.padded_len(i) - geo.plain_len(i)
    )


def test_bits_only_after_checkpoint_and_resume(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "p.db")
    geo = Geometry(10 * CS + 5, CS)
    dest = tmp_path / "out" / "f"
    dest.parent.mkdir()
    part = PartialFile(cat, b"r" * 32, dest, geo)
    part.write(0, _padded(geo, 0, 1))
    part.write(3, _padded(geo, 3, 4))
    # not yet checkpointed: a crash now must not claim the chunks
    assert Catalog(tmp_path / "p.db").downloads()[0].bitmap == bytes(2)
    part.checkpoint()
    assert Catalog(tmp_path / "p.db").downloads()[0].bitmap == bytes([0b1001, 0])
    os.close(part._fd)  # simulated crash: no finish, no discard
    part._fd = -1

    again = PartialFile(Catalog(tmp_path / "p.db"), b"r" * 32, dest, geo)
    assert again.resumed == 2
    assert again.missing() == [1, 2, 4, 5, 6, 7, 8, 9, 10]
    for i in again.missing():
        again.write(i, _padded(geo, i, i + 1))
    again.finish(123_000_000_000)
    data = dest.read_bytes()
    assert len(data) == geo.size
    assert data[:CS] == b"\x01" * CS and data[3 * CS : 4 * CS] == b"\x04" * CS
    assert dest.stat().st_mtime_ns == 123_000_000_000
    assert os.listdir(dest.parent) == ["f"]
    assert Catalog(tmp_path / "p.db").downloads() == []


def test_lost_partial_file_resets_bitmap(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "p.db")
    geo = Geometry(3 * CS, CS)
    dest = tmp_path / "f"
    part = PartialFile(cat, b"r" * 32, dest, geo)
    part.write(0, _padded(geo, 0, 1))
    part.close()
    part.path.unlink()
    again = PartialFile(cat, b"r" * 32, dest, geo)
    assert again.resumed == 0 and again.missing() == [0, 1, 2]
    again.discard()


def test_finish_never_replaces_existing_dest(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "p.db")
    geo = Geometry(1, CS)
    dest = tmp_path / "f"
    part = PartialFile(cat, b"r" * 32, dest, geo)
    part.write(0, _padded(geo, 0, 7))
    dest.write_text("precious")
    with pytest.raises(OutputExistsError):
        part.finish(0)
    assert dest.read_text() == "precious"


def test_partial_does_not_follow_symlinks(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "p.db")
    geo = Geometry(1, CS)
    dest = tmp_path / "f"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / partial_name(b"r" * 32)).symlink_to(victim)
    with pytest.raises(StoreError, match="cannot create"):
        PartialFile(cat, b"r" * 32, dest, geo)
    assert victim.read_text() == "keep"
