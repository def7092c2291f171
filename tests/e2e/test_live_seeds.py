"""A live share outlives its owner on seeds: the owner publishes a new
version (replicated to the seeds that kept the last one, its record pushed
to them), goes offline, and a fresh getter still gets the newest version."""

from __future__ import annotations

import filecmp
import os
import re
import time
from pathlib import Path

import pytest

from tests.helpers.cli import p2pshare
from tests.helpers.procs import LOOPBACK, Proc, running
from tests.helpers.procs import seed as _seed

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_newest_version_from_seeds_with_the_owner_offline(tmp_path: Path) -> None:
    src = tmp_path / "notes"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(100_000))
    (src / "b.txt").write_text("version one\n")
    s0, a0 = _seed(tmp_path / "s0", "eu-west")
    with running(s0):
        s1, _a1 = _seed(tmp_path / "s1", "us-east", "--bootstrap", a0)
        with running(s1):
            owner = Proc(
                tmp_path / "owner", "share", "--live", "--replicas", "2",
                "--listen", LOOPBACK, "--bootstrap", a0, src,
            )  # fmt: skip
            with running(owner):
                (link,) = owner.read_lines(1, timeout=120)
                assert link.startswith("p2pshare://live.")
                (src / "b.txt").write_text("version two, longer\n")
                (src / "c.txt").write_text("new in two\n")
                res = p2pshare(tmp_path / "owner", "publish", src, timeout=180)
                assert res.code == 0, res.err
                # (the node's rescan may have published it a moment before)
                assert re.search(r"(new|unchanged, still) version 2", res.err)
                # the new snapshot is on both seeds before publish returns
                done = re.findall(r"replica on \S+ \([^)]*\): complete", owner.err)
                assert len(done) >= 2, owner.err
            assert owner.popen.poll() is not None  # the owner is gone
            started = time.monotonic()
            res = p2pshare(
                tmp_path / "getter", "get", link, "-o", tmp_path / "out",
                "--timeout", "30", "--bootstrap", a0,
            )  # fmt: skip
            assert res.code == 0, res.err
            got = tmp_path / "out" / "notes"
            assert (got / "b.txt").read_text() == "version two, longer\n"
            assert (got / "c.txt").read_text() == "new in two\n"
            assert filecmp.cmp(src / "a.bin", got / "a.bin", shallow=False)
            assert time.monotonic() - started < 60
