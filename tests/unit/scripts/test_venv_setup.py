"""scripts/_venv.sh: a first run shows one progress line, not installer
noise, and a failed install shows the end of the installer's log."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# A stand-in for python3 that is as noisy as pip: `-m venv DIR` makes DIR
# with a bin/python that is this same script; `-m pip ...` prints 180 lines.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
i=0
while [ $i -lt 180 ]; do echo "WARNING: setuptools noise line $i" >&2; i=$((i+1)); done
[ -n "${FAIL_INSTALL:-}" ] && { echo "ERROR: no such package" >&2; exit 1; }
exit 0
"""


def _checkout(tmp_path: Path) -> Path:
    top = tmp_path / "checkout"
    (top / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "_venv.sh", top / "scripts")
    shutil.copy(ROOT / "pyproject.toml", top)
    (top / "scripts" / "probe").write_text(
        '#!/bin/sh\nset -eu\n. "$(dirname "$0")/_venv.sh"\necho ready\n'
    )
    (top / "scripts" / "probe").chmod(0o755)
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return top


def _run(top: Path, fake: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(top / "scripts" / "probe")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(fake), **env},
        check=False,
    )


def test_first_run_shows_one_line(tmp_path: Path) -> None:
    top = _checkout(tmp_path)
    res = _run(top, tmp_path / "python3")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "ready\n"
    assert res.stderr.count("\n") == 1, res.stderr
    assert "setting up" in res.stderr and res.stderr.endswith("done\n")
    assert "noise" in (top / ".venv" / "install.log").read_text()
    again = _run(top, tmp_path / "python3")  # set up: silent
    assert again.returncode == 0 and again.stderr == ""


def test_failed_install_shows_the_log_tail(tmp_path: Path) -> None:
    top = _checkout(tmp_path)
    res = _run(top, tmp_path / "python3", FAIL_INSTALL="1")
    assert res.returncode == 1
    assert "failed" in res.stderr and "ERROR: no such package" in res.stderr
    assert len(res.stderr.splitlines()) < 30
    assert "ready" not in res.stdout
