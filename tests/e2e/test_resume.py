"""A ``get`` killed with SIGKILL halfway resumes without redoing chunks."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import add, p2pshare

pytestmark = pytest.mark.slow

CS = 64 * 1024
SIZE = 192 << 20  # 3072 chunks: several seconds of work even on a fast box


def _bits(db: Path) -> tuple[int, int] | None:
    """(verified chunks, chunk count) of the one download, read independently."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT bitmap, count FROM downloads").fetchone()
    except sqlite3.OperationalError:
        return None  # table not created yet
    finally:
        con.close()
    if row is None:
        return None
    return sum(bin(b).count("1") for b in row[0]), row[1]


def test_sigkill_midway_then_resume(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        for i in range(SIZE >> 20):
            f.write(os.urandom(1 << 20) if i % 16 == 0 else bytes([i]) * (1 << 20))
    home = tmp_path / "home"
    link = add(home, "--copy", "--chunk-size", str(CS), src)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "p2pshare",
            "--home",
            str(home),
            "get",
            "--offline",
            link,
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    killed_at = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        seen = _bits(home / "p2pshare.db")
        if seen and seen[1] // 4 <= seen[0] <= 3 * seen[1] // 4:
            proc.send_signal(signal.SIGKILL)
            killed_at = seen[0]
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    proc.stderr.close()  # type: ignore[union-attr]
    assert killed_at is not None, "get finished before it could be killed halfway"
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "big.bin").exists()
    partials = [p.name for p in out.iterdir()]
    assert len(partials) == 1 and partials[0].endswith(".part")

    state = _bits(home / "p2pshare.db")
    assert state is not None
    durable, count = state
    assert killed_at <= durable < count

    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 0, res.err
    m = re.search(r"resumed: (\d+) of (\d+) chunks", res.err)
    assert m, res.err
    assert (int(m[1]), int(m[2])) == (durable, count)
    assert f"{count - durable} chunks fetched" in res.err
    assert (out / "big.bin").read_bytes() == src.read_bytes()
    assert os.listdir(out) == ["big.bin"]
    assert _bits(home / "p2pshare.db") is None  # the download row is gone
