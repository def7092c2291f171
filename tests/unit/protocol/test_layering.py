"""The protocol layer is sans-IO: importing it pulls in no event loop or network."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("trio", "anyio", "libp2p", "textual")


def test_protocol_imports_no_io_modules() -> None:
    code = (
        "import sys, p2pshare.protocol\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"p2pshare.protocol imported {out}"
