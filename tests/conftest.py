"""Suite-wide fixtures.

Policy: tests never touch the user's real home (``P2PSHARE_HOME`` is pointed
at a temporary directory for every test), never sleep to wait for
something, and use only loopback for the network (or network namespaces
they make and remove). LAN discovery (mDNS) is off in every node a test
starts, in this process and in the processes it spawns, unless the test
turns it on: nodes of unrelated tests on one machine must not find each
other. Coroutine tests are
marked for trio here (``trio_mode`` stays off so that a future asyncio-based
TUI suite can coexist).
"""

from __future__ import annotations

import inspect
import os
import signal
from pathlib import Path

import pytest

os.environ["P2PSHARE_MDNS"] = "0"  # see the policy above

# A shell starts a background job with SIGINT ignored (scripts/test runs two
# of its lanes that way), and an ignored signal stays ignored in every
# program started from there: a CLI under test would then shrug off Ctrl-C.
# Handled here, it is back to the default in the processes tests spawn.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TUI_TESTS = Path(__file__).parent / "tui"  # asyncio (Textual): never marked trio


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        func = getattr(item, "function", None)
        is_coroutine = func is not None and inspect.iscoroutinefunction(func)
        if is_coroutine and TUI_TESTS not in item.path.parents:
            item.add_marker(pytest.mark.trio)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "default-home"
    monkeypatch.setenv("P2PSHARE_HOME", str(home))
    return home
