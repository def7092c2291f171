"""Vouchers through the CLI, with real processes: issue on a seed's home,
redeem on a user's, ``voucher ls``, and ``share --replicas`` using the seed
where the user has credit (no --seed needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.cli import ok, p2pshare
from tests.helpers.procs import LOOPBACK, Proc, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_issue_redeem_ls_and_share_with_credit(tmp_path: Path) -> None:
    seed_home = tmp_path / "seed"
    seed = Proc(seed_home, "seed", "--listen", LOOPBACK, "--region", "eu-west")
    with running(seed):
        (seed_addr,) = seed.read_lines(1)
        codes = ok(
            seed_home,
            "voucher",
            "issue",
            "--quota",
            "2M",
            "--expires",
            "30d",
            "--count",
            "2",
        ).split()
        assert len(codes) == 2
        assert all(c.startswith("p2pv1-") for c in codes)
        assert len(set(codes)) == 2

        owner = tmp_path / "owner"
        res = p2pshare(owner, "node", "--background", "--listen", LOOPBACK)
        assert res.code == 0, res.err
        try:
            # without a voucher the seed refuses, and the owner is told why
            f = tmp_path / "a.bin"
            f.write_bytes(os.urandom(300_000))
            res = p2pshare(owner, "share", "--replicas", "1", f)
            assert res.code == 7, res.err
            assert "no seed found: name one with --seed" in res.err
            res = p2pshare(owner, "share", "--replicas", "1", "--seed", seed_addr, f)
            assert res.code == 7, res.err
            assert "0 of 1 replicas" in res.err
            assert "admits by voucher and you have no credit there" in res.err
            assert "Traceback" not in res.err

            out = ok(owner, "voucher", "redeem", codes[0])
            assert "redeemed" in out
            (bal,) = json.loads(ok(owner, "voucher", "ls", "--json"))
            assert (bal["quota"], bal["used"], bal["vouchers"]) == (2 << 20, 0, 1)

            link = ok(owner, "share", "--replicas", "1", f).strip()
            assert link.startswith("p2pshare://")
            (bal,) = json.loads(ok(owner, "voucher", "ls", "--json"))
            assert 300_000 < bal["used"] < 400_000
            assert bal["remaining"] == bal["quota"] - bal["used"]

            # two replicas cannot be made with one seed: a clear error
            g = tmp_path / "b.bin"
            g.write_bytes(os.urandom(1000))
            res = p2pshare(owner, "share", "--replicas", "2", g)
            assert res.code == 7, res.err
            assert "1 of 2 replicas" in res.err
        finally:
            p2pshare(owner, "stop")

        # a second user cannot redeem the same code
        res = p2pshare(tmp_path / "other", "voucher", "redeem", codes[0])
        assert res.code == 5, res.err
        assert "already redeemed by another peer" in res.err
        # a mangled code is a usage error, one line
        res = p2pshare(tmp_path / "other", "voucher", "redeem", "p2pv1-!!!")
        assert res.code == 2, res.err
        assert "Traceback" not in res.err
