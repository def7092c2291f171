"""Background nodes for end-to-end tests: start, stop, find their pid, and a
slow provider whose download takes a few seconds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from p2pshare.daemon import read_owner
from tests.helpers.cli import ok, p2pshare
from tests.helpers.procs import LOOPBACK, Proc


def start(home: Path, *extra: str) -> list[str]:
    """``node --background`` on loopback; returns its addresses."""
    res = p2pshare(home, "node", "--background", "--listen", LOOPBACK, *extra)
    assert res.code == 0, res.err
    addrs = res.out.split()
    assert addrs and all("/p2p/" in a for a in addrs)
    return addrs


def pid_of(home: Path) -> int:
    return int(json.loads((home / "node.lock").read_text())["pid"])


def kill_left_over(home: Path) -> None:
    """SIGKILL the node of ``home`` if one still runs. Only a held home lock
    names a live node: the pid in a stale record (a node killed earlier) may
    by now belong to another test's node (pids wrap at 32768 here, threads
    included)."""
    with contextlib.suppress(OSError, ValueError):
        owner = read_owner(home)
        if owner is not None:
            os.kill(owner.pid, signal.SIGKILL)


def log_tail(home: Path, lines: int = 60) -> str:
    """The end of a background node's log, for a failed assertion to show
    why the node is gone (the test's own output cannot: it is another
    process)."""
    path = home / "logs" / "node.log"
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return f"--- {path} (last {lines} lines) ---\n" + "\n".join(
        text.splitlines()[-lines:]
    )


def wait_for(what: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def home_factory(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Homes under ``tmp_path``; every node still running is stopped after."""
    made: list[Path] = []

    def make(name: str) -> Path:
        home = tmp_path / name
        made.append(home)
        return home

    try:
        yield make
    finally:
        for home in made:
            if (home / "control.sock").exists():
                p2pshare(home, "stop")
            kill_left_over(home)


def slow_get(
    tmp_path: Path, homes: Callable[[str], Path], size: int, *get_args: str
) -> tuple[Path, Path, Proc]:
    """Node A shares a ``size`` file at 2 MiB/s; node B's CLI ``get``s it
    through B's node. Returns (B, the source, the getter once the download
    started in B's node)."""
    a, b = homes("a"), homes("b")
    start(a, "--max-upload-rate", "2M")
    start(b)
    src = tmp_path / "slow.bin"
    src.write_bytes(os.urandom(size))
    link = ok(a, "share", src).strip()
    getter = Proc(b, "get", link, "-o", tmp_path / "out", *get_args)
    assert wait_for(lambda: "started in the node" in getter.err), getter.err
    return b, src, getter
