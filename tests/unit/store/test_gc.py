"""Garbage collection of the block store: what it removes, what it never
touches, and how it stays out of a writer's way."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from p2pshare.config import Home
from p2pshare.errors import StoreError
from p2pshare.format import ShareLink
from p2pshare.store import LocalStore, add_path, get_offline
from p2pshare.store.gc import collect

CS = 4096


def _block_files(store: LocalStore) -> set[str]:
    return {p.name for p, _bid in store.blocks.ids()}


def _referenced(store: LocalStore) -> set[str]:
    rows = store.catalog._db.execute("SELECT DISTINCT block FROM share_blocks")
    return {bytes(b).hex() for (b,) in rows}


def test_collects_garbage_and_keeps_every_share(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(5 * CS + 7))
    with LocalStore(home) as store:
        kept = add_path(store, src, copy=True, chunk_size=CS)
        gone = add_path(store, tmp_path, copy=True, chunk_size=CS, new=True)
        # rm's own deletions are skipped, as if it crashed before them
        store.catalog.remove_top(gone.root)
        orphan = store.blocks.path(b"\x01" * 32)
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(b"left by a killed add --copy")
        (store.blocks.tmp / "x.999999.1.0").write_bytes(b"temp of a dead writer")
        assert _block_files(store) > _referenced(store)

        report = collect(store)

        assert report.blocks > 1 and report.temp_files == 1
        assert _block_files(store) == _referenced(store)
        assert list(store.blocks.tmp.iterdir()) == []
        out = tmp_path / "out"
        got = get_offline(store, ShareLink(root_id=kept.root, key=kept.key), out)
        assert got.path.read_bytes() == src.read_bytes()
        assert collect(store).blocks == 0  # nothing left to do


def test_stale_partial_share_is_dropped(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with LocalStore(home) as store:
        added = add_path(store, tmp_path / "home", copy=True, chunk_size=CS)
        store.catalog.remove_top(added.root)
        env = store.blocks.put(b"an envelope of a cancelled download")
        store.catalog._db.execute(
            "INSERT INTO shares (root, key, storage, mode, top, added_at)"
            " VALUES (?, NULL, 'partial', 'ref', 0, 0)",
            (env,),
        )
        store.catalog.keep_blocks(env, [env])
        assert collect(store).partial_shares == 1
        assert not store.blocks.has(env)


def test_another_process_with_the_store_open_postpones_gc(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with LocalStore(home) as store, LocalStore(home) as other:
        orphan = store.blocks.put(b"orphan")
        with pytest.raises(StoreError, match="another p2pshare process"):
            collect(store)
        assert store.blocks.has(orphan)  # nothing was removed
        other.close()
        assert collect(store).blocks == 1


def test_gc_waits_for_a_writer_between_write_and_commit(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with LocalStore(home) as store:
        written = threading.Event()
        release = threading.Event()
        bid: list[bytes] = []

        def writer() -> None:
            with store.writing():
                bid.append(store.blocks.put(b"about to be referenced"))
                written.set()
                release.wait(10)
                store.catalog.keep_blocks(b"\x02" * 32, bid)

        t = threading.Thread(target=writer)
        t.start()
        assert written.wait(10)
        with pytest.raises(StoreError, match="busy"):
            collect(store, wait_s=0.2)
        result: list[object] = []
        gc = threading.Thread(target=lambda: result.append(collect(store, wait_s=10)))
        gc.start()
        release.set()
        t.join(10)
        gc.join(10)
        assert store.blocks.has(bid[0])  # referenced before gc could run


def test_block_store_is_private_under_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with LocalStore(Home(tmp_path / "home")) as store:
            for d in (store.blocks.root, store.blocks.tmp):
                assert stat.S_IMODE(d.stat().st_mode) == 0o700
    finally:
        os.umask(old)
