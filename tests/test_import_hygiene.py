"""The layering of DESIGN.md, checked in a fresh interpreter.

``format`` and ``store`` must not pull in trio, libp2p or textual; the CLI
must not import libp2p for commands that never touch the network.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("trio", "libp2p", "textual", "anyio")


@pytest.mark.parametrize(
    "module",
    ["p2pshare.format", "p2pshare.store", "p2pshare.errors", "p2pshare.config"],
)
def test_lower_layers_import_no_event_loop_or_network(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"{module} imported {out}"
