"""``p2pshare demo --no-tui``: a real local swarm whose links really work.

The demo runs as a subprocess with ``TMPDIR`` pointed at a private, short
directory (control sockets must fit in 107 bytes), so its temporary homes
are the only thing in there: while it runs we find them, and after it has
been signalled we check that they are gone and its nodes too.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pshare.control.process import wait_for_exit
from p2pshare.format import parse_link
from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import kill_left_over
from tests.helpers.procs import LOOPBACK, Proc, running
from tui.demo import SAMPLE_FILE_NAME, SAMPLE_FOLDER_NAME, TEMP_PREFIX, sample_bytes

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EXIT_WAIT_S = 60.0


@pytest.fixture
def demo_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private TMPDIR for the demo (and every CLI call of the test)."""
    path = Path(tempfile.mkdtemp(prefix="p2pt-", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(path))
    yield path
    # a failed test kills the demo with SIGKILL: its nodes (own sessions)
    # would outlive it
    for lock in path.glob("*/*/node.lock"):
        kill_left_over(lock.parent)
    shutil.rmtree(path, ignore_errors=True)


def _pid(home: Path) -> int:
    return int(json.loads((home / "node.lock").read_text())["pid"])


def _demo_root(tmp: Path) -> Path:
    roots = list(tmp.iterdir())
    assert len(roots) == 1, roots
    assert roots[0].name.startswith(TEMP_PREFIX)
    return roots[0]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _signal_and_wait(proc: Proc, sig: signal.Signals) -> int:
    proc.popen.send_signal(sig)
    try:
        return proc.popen.wait(EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"demo ignored {sig.name}: {proc.err}") from None


def _assert_stopped(pids: list[int], homes: list[Path]) -> None:
    for pid in pids:
        assert wait_for_exit(pid, EXIT_WAIT_S), f"node {pid} still runs"
    for home in homes:
        res = p2pshare(home, "status")
        assert res.code != 0
        assert "no node is running" in res.err


def test_demo_links_download_from_a_third_home_then_all_is_removed(
    tmp_path: Path, demo_tmp: Path
) -> None:
    demo = Proc(tmp_path / "unused-home", "demo", "--no-tui")
    with running(demo):
        file_link, folder_link = demo.read_lines(2, timeout=120)
        root = _demo_root(demo_tmp)
        sharer, you = root / "sharer", root / "you"
        pids = [_pid(sharer), _pid(you)]
        assert all(
            parse_link(link).peers
            and all(p.startswith("/ip4/127.0.0.1/") for p in parse_link(link).peers)
            for link in (file_link, folder_link)
        )

        # "you" joined the sharer (bootstrap), before any download
        st = json.loads(ok(you, "status", "--json"))
        assert st["connected_peers"] >= 1
        assert all(a.startswith("/ip4/127.0.0.1/") for a in st["addrs"])

        third, out = tmp_path / "third", tmp_path / "out"
        for link in (file_link, folder_link):
            res = p2pshare(third, "get", link, "-o", out, "--listen", LOOPBACK)
            assert res.code == 0, res.err
        assert (out / SAMPLE_FILE_NAME).read_bytes() == sample_bytes()
        got = _tree(out / SAMPLE_FOLDER_NAME)
        assert got == _tree(root / "samples" / SAMPLE_FOLDER_NAME)
        assert len(got) >= 5
        assert any(not name.isascii() for name in got)
        assert any("/" in name for name in got)  # nested

        assert _signal_and_wait(demo, signal.SIGINT) == 0, demo.err
    assert list(demo_tmp.iterdir()) == [], "the demo left its homes behind"
    _assert_stopped(pids, [sharer, you])


def test_demo_keep_on_sigterm_stops_the_nodes_and_keeps_the_homes(
    tmp_path: Path, demo_tmp: Path
) -> None:
    demo = Proc(tmp_path / "unused-home", "demo", "--no-tui", "--keep")
    with running(demo):
        demo.read_lines(2, timeout=120)
        root = _demo_root(demo_tmp)
        sharer, you = root / "sharer", root / "you"
        pids = [_pid(sharer), _pid(you)]
        assert _signal_and_wait(demo, signal.SIGTERM) == 0, demo.err
    assert f"kept the homes in {root}" in demo.err
    assert (root / "samples" / SAMPLE_FILE_NAME).read_bytes() == sample_bytes()
    assert (sharer / "p2pshare.db").is_file()
    _assert_stopped(pids, [sharer, you])


def test_demo_refuses_in_one_line_and_cleans_up_when_a_node_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a TMPDIR so deep that the control socket's path cannot fit
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setenv("TMPDIR", str(deep))
    res = subprocess.run(
        [sys.executable, "-m", "p2pshare", "demo", "--no-tui"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode != 0
    assert res.stdout == ""
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("p2pshare: error: sharer: p2pshare node failed: ")
    assert "path too long" in last
    assert list(deep.iterdir()) == []
