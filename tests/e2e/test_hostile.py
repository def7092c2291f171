"""`get` against a provider process that misbehaves (issue 13), with and
without a background node: the download ends with the right exit code and
one line saying why; a background node stays up (same pid) and lists the
download as failed; nothing lands at the output path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import pid_of, start
from tests.helpers.procs import running, share

# (mode, exit code, what the error line says)
CASES = [
    ("liar", 3, "the only provider failed: 1 banned (bad chunk)"),
    ("stall", 7, "the only provider failed: 1 stalled (no data for 2 s)"),
    ("missing", 3, "the only provider failed: 1 lack the chunks still needed"),
]


@pytest.mark.parametrize("with_node", [False, True], ids=["foreground", "node"])
@pytest.mark.parametrize(("mode", "code", "why"), CASES, ids=[c[0] for c in CASES])
def test_get_from_a_hostile_only_provider_ends(
    tmp_path: Path, mode: str, code: int, why: str, with_node: bool
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3 << 20))
    proc, [link] = share(tmp_path / "p", src, hostile=mode)
    home = tmp_path / "g"
    out = tmp_path / "out"
    with running(proc):
        if with_node:
            start(home)
        try:
            pid = pid_of(home) if with_node else None
            res = p2pshare(
                home, "get", link, "-o", out,
                "--timeout", "20", "--stall-timeout", "2",
            )  # fmt: skip
            assert res.code == code, res.err
            last = res.err.strip().splitlines()[-1]
            assert why in last, res.err
            assert "Traceback" not in res.err
            assert link.split("#")[1] not in res.err  # the key never shows
            assert not (out / "f.bin").exists()
            if with_node:
                assert pid_of(home) == pid
                st = json.loads(ok(home, "status", "--json"))
                assert st["jobs_failed"] >= 1
                downloads = json.loads(ok(home, "downloads", "--json"))
                assert [d["state"] for d in downloads] == ["failed"]
        finally:
            if with_node:
                p2pshare(home, "stop")
