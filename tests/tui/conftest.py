"""TUI test fixtures.

Policy: TUI tests are asyncio (``@pytest.mark.asyncio``, strict mode) and
never marked trio (see the root conftest). Pilot tests against a real node
start background nodes with the real CLI on loopback and always stop them
in teardown. Nothing sleeps blindly: :func:`wait_for` polls a condition
through ``pilot.pause`` against a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from p2pshare.control.process import terminate
from p2pshare.daemon import read_owner
from tests.helpers.cli import p2pshare
from tests.helpers.procs import LOOPBACK


async def wait_for(
    pilot: Pilot[Any],
    predicate: Callable[[], object],
    within: float = 30.0,
    what: str = "a condition",
) -> None:
    """Let the app run until ``predicate()`` is true, or fail at the deadline."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            seen = getattr(pilot.app, "log_lines", [])
            raise AssertionError(
                f"timed out after {within} s waiting for {what}; log: {seen}"
            )
        await pilot.pause(0.05)


def notifications(app: object, severity: str | None = None) -> list[str]:
    """The messages of the app's live notifications."""
    found = list(getattr(app, "_notifications"))  # noqa: B009
    return [n.message for n in found if severity is None or n.severity == severity]


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "cursor_blink", False)


class NodeHomes:
    """Homes for real background nodes; every one is stopped in teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.homes: list[Path] = []

    def home(self, name: str) -> Path:
        home = self.root / name
        self.homes.append(home)
        return home

    def start(self, name: str, *extra: str) -> Path:
        home = self.home(name)
        res = p2pshare(home, "node", "--background", "--listen", LOOPBACK, *extra)
        assert res.code == 0, res.err
        return home

    def stop_all(self) -> None:
        for home in self.homes:
            if (home / "control.sock").exists():
                p2pshare(home, "stop", timeout=30)
            owner = read_owner(home) if home.exists() else None
            if owner is not None:  # ``stop`` did not work: end that node
                terminate(owner.pid)


@pytest.fixture
def node_homes(tmp_path: Path) -> Iterator[NodeHomes]:
    homes = NodeHomes(tmp_path)
    try:
        yield homes
    finally:
        homes.stop_all()
