"""The layer contracts (``scripts/layers.py``) hold, and catch a wrong import."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _layers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layers", ROOT / "scripts/layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tree_keeps_every_contract() -> None:
    assert _layers().check(ROOT) == []


def test_an_upward_import_breaks_a_contract(tmp_path: Path) -> None:
    for top in ("p2pshare", "tui"):
        shutil.copytree(ROOT / top, tmp_path / top)
    bad = tmp_path / "p2pshare/store/bad.py"
    bad.write_text("def f() -> None:\n    from p2pshare.node import service\n")
    tui_bad = tmp_path / "tui/bad.py"
    tui_bad.write_text("from p2pshare.store.local import LocalStore\n")
    client_bad = tmp_path / "p2pshare/control/bad.py"
    client_bad.write_text("import trio\nfrom p2pshare.node.fill import Fill\n")
    pure_bad = tmp_path / "p2pshare/format/bad.py"
    pure_bad.write_text("import trio\n")
    errors = _layers().check(tmp_path)
    assert errors == [
        "p2pshare/control/bad.py:2: the client side of control may not import"
        " p2pshare.node.fill",
        "p2pshare/format/bad.py:1: p2pshare.format is pure but imports trio",
        "p2pshare/store/bad.py:2: p2pshare.store may not import p2pshare.node",
        "p2pshare/store/bad.py:2: p2pshare.store may not import p2pshare.node.service",
        "tui/bad.py:1: tui may not import p2pshare.store.local",
    ]
