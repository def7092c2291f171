"""Erasure-coded seed storage with real seed processes (issue 18).

Five ``seed`` processes in three regions keep a file coded 3/5: together
they store ~5/3 of it, no region keeps more than 2 parts, and with the owner
offline any 2 seeds may go (here the two that keep whole chunks, so every
stripe has to be rebuilt from parity). A third loss is a clear error; a
repair with the owner back places the missing parts on new seeds; a
tampered part on one seed is rejected by the getter and flagged by check.
The same suite-sized scenario runs at 64 MiB, with the throughput against
full replicas, in ``scripts/bench_erasure.py``; ERASURE_TEST_CHUNKS and
ERASURE_TEST_CHUNK_KIB run this test at another size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.cli import Result, ok, p2pshare
from tests.helpers.procs import LOOPBACK, Proc, running
from tests.helpers.procs import seed as _seed

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REGIONS = ["eu-west", "eu-west", "us-east", "us-east", "ap-south"]


def _stored(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "blocks").rglob("*") if p.is_file())


def _reserved(home: Path) -> int:
    import sqlite3

    db = sqlite3.connect(home / "p2pshare.db")
    try:
        return int(db.execute("SELECT coalesce(sum(size), 0) FROM pins").fetchone()[0])
    finally:
        db.close()


def _get(home: Path, link: str, out: Path, boot: str) -> Result:
    return p2pshare(
        home, "get", link, "-o", out, "--listen", LOOPBACK,
        "--bootstrap", boot, "--timeout", "20", "--stall-timeout", "20",
    )  # fmt: skip


def test_erasure_3_of_5_survives_two_losses_and_repairs(tmp_path: Path) -> None:
    src = tmp_path / "film.bin"
    chunks = int(os.environ.get("ERASURE_TEST_CHUNKS", "15"))  # 15: 5 stripes
    csize = int(os.environ.get("ERASURE_TEST_CHUNK_KIB", "256"))
    src.write_bytes(os.urandom(chunks * (csize << 10) - 1000))
    size = src.stat().st_size
    procs: dict[str, Proc] = {}
    addrs: list[str] = []
    s0, a0 = _seed(tmp_path / "s0", REGIONS[0])
    procs[a0], homes = s0, {a0: tmp_path / "s0"}
    addrs.append(a0)
    with running(s0):
        for i, region in enumerate(REGIONS[1:], 1):
            p, a = _seed(tmp_path / f"s{i}", region, "--bootstrap", a0)
            procs[a], homes[a] = p, tmp_path / f"s{i}"
            addrs.append(a)
        owner = tmp_path / "owner"
        with running(*procs.values()):
            res = p2pshare(
                owner, "node", "--background", "--listen", LOOPBACK, "--bootstrap", a0
            )
            assert res.code == 0, res.err
            try:
                seed_args = [x for a in addrs for x in ("--seed", a)]
                link = ok(
                    owner, "add", "--erasure", "3/5", "--chunk-size", f"{csize}K",
                    *seed_args, src,
                ).strip()  # fmt: skip
                report = json.loads(ok(owner, "check", link, "--json"))
            finally:
                p2pshare(owner, "stop")
            assert report["erasure"] == {"k": 3, "n": 5, "columns": 5, "survives": 2}
            cols = {p["seed"]: p["column"] for p in report["providers"]}
            assert sorted(cols.values()) == [0, 1, 2, 3, 4]
            per_region: dict[str, int] = {}
            for p in report["providers"]:
                per_region[p["region"]] = per_region.get(p["region"], 0) + 1
            assert max(per_region.values()) <= 2, per_region  # N-K per region
            stored = sum(_stored(h) for h in homes.values())
            assert stored <= 1.75 * size, (stored, size)
            # what each seed reserved (and would charge a voucher) is its part
            reserved = [_reserved(h) for h in homes.values()]
            assert all(r < 0.4 * size for r in reserved), (reserved, size)
            assert sum(reserved) <= 1.75 * size

            def seed_of(col: int) -> str:
                return next(a for a in addrs if a.endswith(f"/p2p/{_peer(cols, col)}"))

            # owner offline; the two seeds keeping whole chunks (columns 0, 1) go
            for col in (0, 1):
                procs[seed_of(col)].kill()
            boot = seed_of(3)
            res = _get(tmp_path / "g1", link, tmp_path / "out1", boot)
            assert res.code == 0, res.err
            assert (tmp_path / "out1" / src.name).read_bytes() == src.read_bytes()
            # a third loss: only two parts of each stripe are left
            procs[seed_of(2)].kill()
            res = _get(tmp_path / "g2", link, tmp_path / "out2", boot)
            assert res.code == 3, res.err
            assert "not enough fragments (2 of 3 needed)" in res.err, res.err
            assert "Traceback" not in res.err
            # column 2's seed comes back with its data; two new seeds join;
            # the owner repairs: every column is kept again
            back, _ = _seed(homes[seed_of(2)], REGIONS[addrs.index(seed_of(2))],
                            "--bootstrap", boot)  # fmt: skip
            n1, b1 = _seed(tmp_path / "n1", "eu-west", "--bootstrap", boot)
            n2, b2 = _seed(tmp_path / "n2", "ap-south", "--bootstrap", boot)
            with running(back, n1, n2):
                res = p2pshare(owner, "repair", link, "--seed", b1, "--seed", b2,
                               "--bootstrap", boot, timeout=180)  # fmt: skip
                assert res.code == 0, res.err
                res = p2pshare(owner, "check", link, "--bootstrap", boot)
                assert "survives 2 more losses" in res.out, res.out + res.err
                assert res.code == 0, res.err
                after = json.loads(
                    ok(owner, "check", link, "--json", "--bootstrap", boot)
                )
                cols = {
                    p["seed"]: p["column"] for p in after["providers"] if p["replica"]
                }
                assert sorted(cols.values()) == [0, 1, 2, 3, 4]
                # a tampered chunk on the seed now keeping column 0
                new_homes = {b1: tmp_path / "n1", b2: tmp_path / "n2"}
                tampered = next(h for a, h in new_homes.items()
                                if a.endswith(f"/p2p/{_peer(cols, 0)}"))  # fmt: skip
                victim = max(
                    (p for p in (tampered / "blocks").rglob("*") if p.is_file()),
                    key=lambda p: p.stat().st_size,
                )
                data = bytearray(victim.read_bytes())
                data[100] ^= 0xFF
                victim.write_bytes(bytes(data))
                res = p2pshare(owner, "check", link, "--bootstrap", boot)
                assert res.code == 4, res.out + res.err
                flagged = [ln for ln in res.out.splitlines() if ln.startswith("FAILED")]
                assert len(flagged) == 1 and "column 0" in flagged[0], res.out
                assert _peer(cols, 0) in flagged[0]
                # a getter still gets it byte-exact (the owner is offline)
                res = _get(tmp_path / "g3", link, tmp_path / "out3", b1)
                assert res.code == 0, res.err
                assert (tmp_path / "out3" / src.name).read_bytes() == src.read_bytes()


def _peer(cols: dict[str, int], col: int) -> str:
    return next(seed for seed, c in cols.items() if c == col)


def test_erasure_usage_errors_and_too_few_seeds(tmp_path: Path) -> None:
    """A bad K/N and --replicas with --erasure are one line and exit 2;
    fewer seeds than N is exit 7 naming how many columns were placed, and
    the background node stays up."""
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(100_000))
    home = tmp_path / "owner"
    for args, why in [
        (("--erasure", "5/3"), "--erasure"),
        (("--erasure", "x"), "--erasure"),
        (("--erasure", "3/5", "--replicas", "2"), "choose one"),
    ]:
        res = p2pshare(home, "add", *args, src)
        assert res.code == 2 and why in res.err, res.err
        assert len(res.err.strip().splitlines()) == 1
    s0, a0 = _seed(tmp_path / "s0", "eu-west")
    with running(s0):
        res = p2pshare(home, "node", "--background", "--listen", LOOPBACK)
        assert res.code == 0, res.err
        try:
            res = p2pshare(home, "add", "--erasure", "2/3", "--seed", a0, src)
            assert res.code == 7, res.err
            assert "1 of 3 erasure columns" in res.err, res.err
            assert "Traceback" not in res.err
            assert json.loads(ok(home, "status", "--json"))["peer_id"]
        finally:
            p2pshare(home, "stop")
