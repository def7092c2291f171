"""Run the real CLI in a subprocess, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str


def p2pshare(
    home: Path,
    *args: str | Path,
    timeout: float = 120,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Result:
    """``p2pshare --home HOME ARGS``; ``prefix`` runs it through another
    command (``ip netns exec NS``); ``env`` adds to the environment."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"},
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "p2pshare", "--home", str(home), *map(str, args)]
    proc = subprocess.run(
        [*prefix, *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def ok(home: Path, *args: str | Path) -> str:
    res = p2pshare(home, *args)
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res.out


def add(home: Path, *args: str | Path) -> str:
    """``add`` one path; returns its link (the only stdout line)."""
    lines = ok(home, "add", *args).splitlines()
    assert len(lines) == 1, lines
    return lines[0]
