"""Seeds as real processes: replicas survive the owner and a seed going away.

Three ``seed`` processes in distinct regions, an owner running ``share
--replicas 2``; then the owner stops, one replica's seed is killed, and a
fresh home still downloads the file byte-exact. No seed home holds the
file's plaintext or its name.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from p2pshare.format import parse_link
from tests.helpers.cli import ok, p2pshare
from tests.helpers.procs import LOOPBACK, Proc, running
from tests.helpers.procs import seed as _seed

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {n!r}" for n in needles if n in data]
        if any(n.decode() in path.name for n in needles):
            hits.append(f"file name {path}")
    return hits


def test_two_replicas_survive_the_owner_and_one_seed(tmp_path: Path) -> None:
    marker = f"PLAINTEXT-MARKER-{os.urandom(8).hex()}".encode()
    name = f"secret-name-{os.urandom(4).hex()}.bin"
    src = tmp_path / name
    src.write_bytes((marker + os.urandom(4000)) * 1000)  # ~4 MiB, marker everywhere
    s0, a0 = _seed(tmp_path / "s0", "eu-west")
    with running(s0):
        s1, a1 = _seed(tmp_path / "s1", "us-east", "--bootstrap", a0)
        s2, a2 = _seed(tmp_path / "s2", "ap-south", "--bootstrap", a0)
        seeds = {a0: s0, a1: s1, a2: s2}
        with running(s1, s2):
            # the owner finds the seeds through the DHT (bootstrapped to one)
            owner = Proc(
                tmp_path / "owner",
                "share",
                "--replicas",
                "2",
                "--listen",
                LOOPBACK,
                "--bootstrap",
                a0,
                src,
            )
            with running(owner):
                (link,) = owner.read_lines(1, timeout=120)
                # stderr is read by another thread: its last lines may trail
                pattern = r"replica on \S+ \(([^)]*)\): complete"
                deadline = time.monotonic() + 10
                while (
                    len(re.findall(pattern, owner.err)) < 2
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.05)
                done = re.findall(pattern, owner.err)
                assert len(done) == 2, owner.err
                assert len(set(done)) == 2, "replicas must be in distinct regions"
                assert owner.stop() == 0
            # the link names both seeds that keep a replica
            hinted = [p for p in parse_link(link).peers if p in seeds]
            assert len(hinted) == 2, link
            for home in ("s0", "s1", "s2"):
                hits = _files_containing(tmp_path / home, [marker, name.encode()])
                assert hits == [], hits
            seeds[hinted[0]].kill()  # one of the two replicas is gone
            survivor = hinted[1]
            spare = next(a for a in seeds if a not in hinted)
            out = tmp_path / "out"
            fresh = tmp_path / "fresh"
            res = p2pshare(
                fresh,
                "get",
                link,
                "-o",
                out,
                "--listen",
                LOOPBACK,
                "--bootstrap",
                spare,  # a seed without the file: the DHT and hints must do
                "--timeout",
                "60",
            )
            assert res.code == 0, res.err
            assert (out / name).read_bytes() == src.read_bytes()
            # what the surviving seed reports about itself
            assert survivor


def test_status_shows_seed_and_replicas(tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_bytes(os.urandom(100_000))
    s0, a0 = _seed(tmp_path / "s0", "eu-west", "--max-storage", "10M")
    with running(s0):
        # a background owner node; add --replicas goes through it
        res = p2pshare(tmp_path / "owner", "node", "--background", "--listen", LOOPBACK)
        assert res.code == 0, res.err
        try:
            link = ok(tmp_path / "owner", "add", "--replicas", "1", "--seed", a0, src)
            assert a0 in parse_link(link.strip()).peers
            st = json.loads(ok(tmp_path / "owner", "status", "--json"))
            assert [s["region"] for s in st["seeds"]] == ["eu-west"]
            check = json.loads(ok(tmp_path / "owner", "check", link.strip(), "--json"))
            assert [p["ok"] for p in check["providers"]] == [True]
        finally:
            p2pshare(tmp_path / "owner", "stop")


def test_owner_node_killed_mid_replication(tmp_path: Path) -> None:
    """The owner's node dies while a seed fetches from it: `share --replicas`
    says the node went away (exit 7, one line, no traceback), and the seed
    fails the pin after its stall bound, deleting what it fetched."""
    import sqlite3

    from tests.helpers.daemon import pid_of

    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(4 << 20))
    s0, a0 = _seed(tmp_path / "s0", "eu-west", "--stall-timeout", "2")
    owner = tmp_path / "owner"
    with running(s0):
        res = p2pshare(
            owner, "node", "--background", "--listen", LOOPBACK,
            "--max-upload-rate", "512K",
        )  # fmt: skip
        assert res.code == 0, res.err
        try:
            cli = Proc(owner, "share", "--replicas", "1", "--seed", a0, src)
            with running(cli):
                deadline = time.monotonic() + 60
                while "replica on" not in cli.err and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert "replica on" in cli.err, cli.err
                os.kill(pid_of(owner), signal.SIGKILL)
                assert cli.popen.wait(30) == 7, cli.err
            assert "Traceback" not in cli.err
            assert "node" in cli.err.splitlines()[-1], cli.err
            db = sqlite3.connect(tmp_path / "s0" / "p2pshare.db")
            deadline = time.monotonic() + 30
            states: list[str] = []
            while time.monotonic() < deadline:
                states = [r[0] for r in db.execute("SELECT state FROM pins")]
                if states == ["failed"]:
                    break
                time.sleep(0.2)
            assert states == ["failed"], states
            kept = db.execute("SELECT count(*) FROM share_blocks").fetchone()[0]
            db.close()
            assert kept == 0
        finally:
            p2pshare(owner, "stop")


def test_interrupted_share_replicas_goes_on_in_the_node(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(4 << 20))
    s0, a0 = _seed(tmp_path / "s0", "eu-west")
    owner = tmp_path / "owner"
    with running(s0):
        # a slow owner: the seed needs about four seconds to fetch the file
        res = p2pshare(
            owner,
            "node",
            "--background",
            "--listen",
            LOOPBACK,
            "--max-upload-rate",
            "1M",
        )
        assert res.code == 0, res.err
        try:
            cli = Proc(owner, "share", "--replicas", "1", "--seed", a0, src)
            with running(cli):
                deadline = time.monotonic() + 60
                while "replica on" not in cli.err and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert "replica on" in cli.err, cli.err
                cli.popen.send_signal(signal.SIGINT)
                assert cli.popen.wait(10) == 130, cli.err
            # the node finishes the replication without the CLI
            deadline = time.monotonic() + 60
            listed = json.loads(ok(owner, "ls", "--json"))
            while listed[0]["replicas"] < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
                listed = json.loads(ok(owner, "ls", "--json"))
            assert listed[0]["replicas"] == 1, listed
            check = json.loads(ok(owner, "check", listed[0]["root"], "--json"))
            assert [p["ok"] for p in check["providers"]] == [True]
        finally:
            p2pshare(owner, "stop")
