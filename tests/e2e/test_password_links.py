"""Password links end to end: the right password gets the file byte-exact
(with and without a background node); a wrong one is exit 5, one line, and
the provider serves no chunk for it; no password and no terminal is a
usage error; the password never shows."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import start
from tests.helpers.procs import running, share


def _sent(home: Path) -> int:
    return int(json.loads(ok(home, "status", "--json"))["bytes_sent"])


def test_password_link(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    data = os.urandom(300_000)
    src.write_bytes(data)
    (tmp_path / "pw").write_text("correct horse\n")
    (tmp_path / "bad").write_text("wrong horse\n")
    owner = tmp_path / "a"
    proc, [link] = share(owner, src, extra=("--password-file", str(tmp_path / "pw")))
    with running(proc):
        assert "#pw1." in link
        getter = tmp_path / "g"
        res = p2pshare(
            getter, "get", link, "-o", tmp_path / "x",
            "--password-file", tmp_path / "bad",
        )  # fmt: skip
        assert res.code == 5, res.err
        assert res.err.strip() == "p2pshare: error: link: wrong password"
        assert _sent(owner) == 0  # not a chunk served for it
        assert not (tmp_path / "x" / "f.bin").exists()
        res = p2pshare(getter, "get", link, "-o", tmp_path / "x")  # no terminal
        assert res.code == 2 and "--password-file" in res.err
        for with_node in (False, True):
            if with_node:
                start(getter)
            out = tmp_path / f"out-{with_node}"
            res = p2pshare(
                getter, "get", link, "-o", out, "--password-file", tmp_path / "pw"
            )
            assert res.code == 0, res.err
            assert (out / "f.bin").read_bytes() == data
            assert "horse" not in res.err
        p2pshare(getter, "stop")
        # cat takes the same option
        res = p2pshare(getter, "cat", link, "--password-file", tmp_path / "bad")
        assert res.code == 5
