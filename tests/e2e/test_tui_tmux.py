"""The real ``p2pshare tui`` in a real terminal (tmux): start, show, quit.

tmux runs on a private server socket (``-L``) with no config file; the
screen is read with ``capture-pane`` and polled until what we wait for
shows (or a deadline passes, and the test fails with the screen in the
message). The server is killed at the end, whatever happened.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from p2pshare.control.process import terminate, wait_for_exit
from p2pshare.daemon import read_owner
from tests.helpers.cli import p2pshare
from tests.helpers.procs import LOOPBACK

TMUX = shutil.which("tmux")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        TMUX is None, reason="tmux is not installed (.ci/run installs it)"
    ),
]

WIDTH, HEIGHT = 100, 30
DEADLINE_S = 60.0
# the quit dialog's buttons (tui/screens/modals.py, QuitModal)
QUIT_KEEP, QUIT_STOP = "Keep sharing", "Stop node"
POLL_S = 0.1


class Tmux:
    """One detached tmux session on a private server."""

    def __init__(self, tmux: str) -> None:
        self.tmux = tmux
        self.socket = f"p2pshare-test-{secrets.token_hex(4)}"
        self.session = "tui"

    def __call__(self, *args: str) -> str:
        res = subprocess.run(
            [self.tmux, "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert res.returncode == 0, f"tmux {args[0]}: {res.stderr}"
        return res.stdout

    def start(self, command: list[str], rc_file: Path) -> None:
        """Run ``command`` in a 100x30 pane; its exit status goes to ``rc_file``."""
        shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(rc_file))}"
        self(
            "new-session", "-d", "-s", self.session, "-x", str(WIDTH),
            "-y", str(HEIGHT), "sh", "-c", shell,
        )  # fmt: skip

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def wait_for(self, what: str, ok: Callable[[str], bool]) -> str:
        """Poll the screen until ``ok(screen)``; fail with the last screen."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            screen = self.screen()
            if ok(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}; the screen:\n{screen}")
            time.sleep(POLL_S)  # a poll interval, not a readiness signal

    def kill(self) -> None:
        subprocess.run(
            [self.tmux, "-L", self.socket, "kill-server"],
            capture_output=True,
            timeout=30,
            check=False,
        )


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    assert TMUX is not None
    t = Tmux(TMUX)
    try:
        yield t
    finally:
        t.kill()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory (a control socket path must fit in 107 bytes).

    A node still running for ``home`` in there (the test failed) is stopped.
    """
    path = Path(tempfile.mkdtemp(prefix="p2pt-", dir="/tmp"))
    try:
        yield path
    finally:
        owner = read_owner(path / "home") if (path / "home").exists() else None
        if owner is not None:
            terminate(owner.pid)
        shutil.rmtree(path, ignore_errors=True)


def _wait_file(path: Path, what: str, tmux: Tmux) -> str:
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}; the screen:\n{tmux.screen()}")
        time.sleep(POLL_S)
    return path.read_text().strip()


def _node_pid(home: Path, tmux: Tmux) -> int:
    raw = _wait_file(home / "node.lock", "the TUI started no node", tmux)
    return int(json.loads(raw)["pid"])


def test_tui_starts_shows_shares_and_quits_stopping_its_node(
    tmux: Tmux, short_tmp: Path
) -> None:
    home, rc_file = short_tmp / "home", short_tmp / "rc"
    cmd = [sys.executable, "-m", "p2pshare", "--home", str(home), "tui"]
    tmux.start([*cmd, "--listen", LOOPBACK], rc_file)

    tmux.wait_for("the Shares screen", lambda s: "Shares" in s)
    # connected: the status bar says the TUI started a node for this home
    tmux.wait_for("the node started", lambda s: "background node" in s)
    pid = _node_pid(home, tmux)
    assert p2pshare(home, "status").code == 0  # the TUI's node answers

    tmux.keys("q")
    tmux.wait_for("the quit dialog", lambda s: QUIT_STOP in s and QUIT_KEEP in s)
    # "s" answers "stop node" (k: keep sharing)
    tmux.keys("s")

    rc = _wait_file(rc_file, "the TUI did not exit", tmux)
    assert rc == "0"
    assert wait_for_exit(pid, DEADLINE_S), f"node {pid} still runs"
    res = p2pshare(home, "status")
    assert res.code != 0
    assert "no node is running" in res.err
