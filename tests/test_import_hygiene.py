"""The layering of DESIGN.md, checked in a fresh interpreter.

``format`` and ``store`` must not pull in trio, libp2p or textual; the CLI
must not import libp2p for commands that never touch the network, nor to
talk to a running node over the control socket.
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


def _imported_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport sys\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    return set(out.split(","))


def test_cli_calls_to_a_running_node_do_not_import_libp2p() -> None:
    # what `status`, `ls`, `stop`, … load to talk to the node (importing
    # libp2p costs ~0.6 s, which every such command would pay)
    seen = _imported_after(
        "import p2pshare.cli, p2pshare.cli.runtime, p2pshare.control.client\n"
        "from p2pshare.groups import single_error"
    )
    assert "libp2p" not in seen
    assert "textual" not in seen


def test_a_node_does_not_load_zfec_until_it_codes() -> None:
    # zfec's package import costs ~10 ms (it loads its command-line tools):
    # only erasure coding and decoding load it, never a node's start
    seen = _imported_after("import p2pshare.node.service, p2pshare.cli.get")
    assert "zfec" not in seen
