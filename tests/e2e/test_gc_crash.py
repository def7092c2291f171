"""kill -9 of a node during ``add --copy`` of a large folder and during
``gc``, ten trials each: afterwards every share still lists, ``get
--offline`` of each is byte-exact, and the next start leaves no orphan."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from functools import partial
from pathlib import Path

import pytest

from p2pshare.format import parse_link
from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import pid_of, start, wait_for
from tests.helpers.procs import Proc, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TRIALS = 5  # each kill lands at a random point; the suite has a 15-minute budget


def _orphans(home: Path) -> tuple[set[str], list[Path]]:
    """Block files no share keeps, and leftover temp files."""
    db = sqlite3.connect(f"file:{home / 'p2pshare.db'}?mode=ro", uri=True)
    try:
        kept = {bytes(b).hex() for (b,) in db.execute("SELECT block FROM share_blocks")}
    finally:
        db.close()
    files = {
        p.name
        for d in (home / "blocks").iterdir()
        if len(d.name) == 2
        for p in d.iterdir()
    }
    return files - kept, list((home / "blocks" / "tmp").iterdir())


def _check_every_share(home: Path, sources: dict[str, Path], out: Path) -> None:
    listed = {i["name"]: i["root"] for i in _ls(home)}
    for name, src in sources.items():
        assert name in listed, (name, listed)
        link = ok(home, "link", "--no-hints", listed[name]).strip()
        dest = out / f"{name}.{time.monotonic_ns()}"
        ok(home, "get", "--offline", link, "-o", dest)
        got = dest / name
        if src.is_dir():
            for f in src.rglob("*"):
                if f.is_file():
                    assert (got / f.relative_to(src)).read_bytes() == f.read_bytes()
        else:
            assert got.read_bytes() == src.read_bytes()


def _ls(home: Path) -> list[dict[str, str]]:
    items: list[dict[str, str]] = json.loads(ok(home, "ls", "--json"))
    return items


def _adding(tmp: Path, adder: Proc) -> bool:
    return any(tmp.iterdir()) or adder.popen.poll() is not None


def _collecting(sample: list[Path]) -> bool:
    return not all(p.exists() for p in sample)


def _restart_after_kill(home: Path) -> None:
    os.kill(pid_of(home), signal.SIGKILL)
    assert wait_for(lambda: p2pshare(home, "status").code == 8, 10)
    start(home)  # collects at start


def test_kill_during_add_copy_of_a_large_folder(tmp_path: Path, homes) -> None:
    home = homes("a")
    small = tmp_path / "small.txt"
    small.write_bytes(b"shared before the trials")
    big = tmp_path / "big"
    for d in range(4):
        (big / f"d{d}").mkdir(parents=True)
        for f in range(12):
            (big / f"d{d}" / f"f{f}.bin").write_bytes(os.urandom(1 << 20))
    start(home)
    ok(home, "add", "--copy", small)
    sources = {"small.txt": small}
    landed = 0
    for trial in range(TRIALS):
        adder = Proc(home, "add", "--copy", "--new", big)
        with running(adder):
            # once the node writes blocks for it, spread the kill over the add
            assert wait_for(partial(_adding, home / "blocks" / "tmp", adder))
            time.sleep(0.03 * trial)
            _restart_after_kill(home)
            code = adder.popen.wait(30)
        if code == 0:
            sources["big"] = big
        else:
            landed += 1
            assert code == 7, adder.err  # the node went away mid-call
            assert "went away" in adder.err or "lost" in adder.err, adder.err
        orphans, temps = _orphans(home)
        assert not orphans and not temps, (trial, len(orphans), temps)
        _check_every_share(home, sources, tmp_path / "out")
    print(f"kills that landed mid-add: {landed} of {TRIALS}")
    assert landed >= 1  # the kill did land mid-add (9 of 10 in practice)


def test_kill_during_gc(tmp_path: Path, homes) -> None:
    home = homes("a")
    src = tmp_path / "keep"
    src.mkdir()
    for f in range(20):
        (src / f"{f}.bin").write_bytes(os.urandom(256 << 10))
    start(home)
    link = ok(home, "add", "--copy", src).strip()
    assert parse_link(link).key is not None
    sources = {"keep": src}
    landed = 0
    for _trial in range(TRIALS):
        garbage = []
        for _ in range(8000):  # garbage a killed add --copy would leave
            name = os.urandom(32).hex()
            (home / "blocks" / name[:2]).mkdir(exist_ok=True)
            garbage.append(home / "blocks" / name[:2] / name)
            garbage[-1].write_bytes(b"x" * 100)
        collector = Proc(home, "gc")
        with running(collector):
            # kill the moment the collection is under way
            sample = garbage[:: len(garbage) // 64]
            assert wait_for(partial(_collecting, sample), 30)
            _restart_after_kill(home)
            if collector.popen.wait(30) != 0:
                landed += 1
        orphans, temps = _orphans(home)
        assert not orphans and not temps, (_trial, len(orphans), temps)
        _check_every_share(home, sources, tmp_path / "out")
    print(f"kills that landed mid-gc: {landed} of {TRIALS}")
    assert landed >= TRIALS // 2  # the kills did land inside a collection
