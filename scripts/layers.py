"""Check the layer contracts of DESIGN.md on every import in the tree.

Every ``import`` and ``from … import`` is read from the source (at module
level, inside functions and under ``TYPE_CHECKING`` alike: a lazy import
is still a dependency) and checked against the rules below. Run by
``scripts/check``; prints each broken contract and exits 1.

    python scripts/layers.py [ROOT]
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

# Each package of p2pshare, and the packages of p2pshare it may import.
# Data flows top to bottom and imports only point down; ``format``,
# ``protocol`` and ``store`` are pure (no trio, libp2p or textual).
BASE = {
    "p2pshare",
    "p2pshare.errors",
    "p2pshare.groups",
    "p2pshare.malloc",
    "p2pshare.records",
}
ALLOWED: dict[str, set[str]] = {
    "p2pshare.errors": set(),
    "p2pshare.groups": {"p2pshare.errors"},
    "p2pshare.malloc": set(),
    "p2pshare.records": {"p2pshare.errors"},
    "p2pshare.config": BASE,
    "p2pshare.format": BASE,
    "p2pshare.protocol": BASE | {"p2pshare.format"},
    "p2pshare.store": BASE | {"p2pshare.format", "p2pshare.config"},
    "p2pshare.node": BASE
    | {"p2pshare.format", "p2pshare.protocol", "p2pshare.store", "p2pshare.config"},
    "p2pshare.daemon": BASE | {"p2pshare.config"},
    "p2pshare.logs": BASE | {"p2pshare.config"},
    "p2pshare.control": BASE
    | {
        "p2pshare.format",
        "p2pshare.protocol",
        "p2pshare.store",
        "p2pshare.config",
        "p2pshare.node",
        "p2pshare.daemon",
        "p2pshare.logs",
    },
    "p2pshare.cli": BASE
    | {
        "p2pshare.format",
        "p2pshare.protocol",
        "p2pshare.store",
        "p2pshare.config",
        "p2pshare.node",
        "p2pshare.daemon",
        "p2pshare.control",
        "p2pshare.logs",
        "p2pshare.cli",
    },
    "p2pshare.__main__": {"p2pshare.cli"},
    # the terminal UI talks to a node only through the control API's client
    # side; it may use the pure helpers of format/ (names, links) and config
    "tui": BASE | {"p2pshare.config", "p2pshare.format", "p2pshare.control"},
}
# modules of control/ that run in the node (the server side): the client
# side (client, wire, messages, framing, launch …) must not reach the node,
# or every CLI call and the TUI would load libp2p
CONTROL_NODE_SIDE = {"p2pshare.control.server"}
# third-party packages a pure layer must not import
HEAVY = {"trio", "libp2p", "textual", "anyio"}
PURE = {"p2pshare.format", "p2pshare.protocol", "p2pshare.store", "p2pshare.config"}


def layer(module: str) -> str | None:
    """The key of ``ALLOWED`` a module belongs to."""
    parts = module.split(".")
    if parts[0] == "tui":
        return "tui"
    if parts[0] != "p2pshare":
        return None
    if len(parts) == 1:
        return "p2pshare"
    return f"p2pshare.{parts[1]}"


def imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # "from p2pshare import node": a module
                sub = root.joinpath(*node.module.split("."), alias.name)
                if sub.is_dir() or sub.with_suffix(".py").is_file():
                    yield node.lineno, f"{node.module}.{alias.name}"


def check(root: Path) -> list[str]:
    errors = []
    files = sorted((root / "p2pshare").rglob("*.py")) + sorted(
        (root / "tui").rglob("*.py")
    )
    for path in files:
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        src = layer(module)
        assert src is not None
        allowed = ALLOWED.get(src, BASE) | {src}
        for line, target in imports(root, path):
            dst = layer(target)
            where = f"{path.relative_to(root)}:{line}"
            if dst is None:
                if src in PURE and target.split(".")[0] in HEAVY:
                    errors.append(f"{where}: {src} is pure but imports {target}")
                continue
            if dst not in allowed:
                errors.append(f"{where}: {src} may not import {target}")
            elif (
                src == "p2pshare.control"
                and module not in CONTROL_NODE_SIDE
                and dst == "p2pshare.node"
            ):
                errors.append(
                    f"{where}: the client side of control may not import {target}"
                )
    return errors


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent)
    errors = check(root)
    for line in errors:
        print(line)
    if errors:
        print(f"layers: {len(errors)} import(s) break the contracts")
        return 1
    print("layers: every import keeps the contracts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
