from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pshare.errors import BlockMissing, IntegrityError, StoreError
from p2pshare.format import block_id
from p2pshare.store.blocks import BlockStore


def test_put_get_verifies(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    bid = store.put(b"hello")
    assert bid == block_id(b"hello")
    assert store.get(bid) == b"hello"
    assert oct(store.path(bid).stat().st_mode & 0o777) == "0o600"
    store.path(bid).write_bytes(b"hellp")
    with pytest.raises(IntegrityError, match="chunk 3: stored block"):
        store.get(bid, what="chunk 3")
    with pytest.raises(BlockMissing, match="envelope"):
        store.get(block_id(b"nope"), what="envelope")


def test_crash_between_write_and_rename_leaves_no_block(tmp_path: Path) -> None:
    """A batch that never commits (the process died) exposes nothing."""
    store = BlockStore(tmp_path / "blocks")
    batch_cm = store.batch()
    batch = batch_cm.__enter__()
    bid = batch.add(b"x" * 10_000)
    # "crash": the temp file is written but neither fsynced nor renamed
    assert not store.has(bid)
    assert len(list(store.tmp.iterdir())) == 1
    # a live writer's temp file is never touched by another process...
    BlockStore(tmp_path / "blocks").clean_tmp()
    [leftover] = list(store.tmp.iterdir())
    # ...but once its writer is dead (pid field rewritten to one that cannot
    # exist), the next process removes it; the block never appeared.
    parts = leftover.name.split(".")
    parts[1] = str(2**31 - 1)
    leftover.rename(leftover.with_name(".".join(parts)))
    fresh = BlockStore(tmp_path / "blocks")
    fresh.clean_tmp()
    assert list(fresh.tmp.iterdir()) == []
    assert not fresh.has(bid)
    with pytest.raises(BlockMissing):
        fresh.get(bid)
    batch.abort()


def test_batch_aborts_on_exception(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    bid = block_id(b"data")

    def fail() -> None:
        with store.batch() as batch:
            batch.add(b"data")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert not store.has(bid)
    assert list(store.tmp.iterdir()) == []


def test_batch_flushes_early_and_dedups(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    items = [os.urandom(100) for _ in range(150)]  # > GROUP: background flushes
    with store.batch() as batch:
        ids = [batch.add(d) for d in items]
        assert batch.add(items[0]) == ids[0]
    assert all(store.get(i) == d for i, d in zip(ids, items, strict=True))
    assert list(store.tmp.iterdir()) == []


def test_unwritable_store_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(StoreError):
        BlockStore(tmp_path / "file" / "blocks")


def test_batch_written_from_threads_adopted_in_order(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = BlockStore(tmp_path / "blocks")
    datas = [os.urandom(1000 + i) for i in range(70)]  # over two groups
    with store.batch() as batch, ThreadPoolExecutor(4) as pool:
        handles = list(pool.map(lambda d: batch.write_temp(d, block_id(d)), datas))
        for h in handles:
            batch.adopt(h)
        batch.adopt(batch.write_temp(datas[0], block_id(datas[0])))  # a duplicate
    assert all(store.get(block_id(d)) == d for d in datas)
    assert list(store.tmp.iterdir()) == []


def test_batch_abort_deletes_temp_files_adopted_or_not(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    a, b = os.urandom(100), os.urandom(200)

    def failing_add() -> None:
        with store.batch() as batch:
            batch.adopt(batch.write_temp(a, block_id(a)))
            batch.write_temp(b, block_id(b))  # written, never adopted
            raise RuntimeError("the add failed")

    with pytest.raises(RuntimeError):
        failing_add()
    assert list(store.tmp.iterdir()) == []
    assert not store.has(block_id(a))
    assert not store.has(block_id(b))
