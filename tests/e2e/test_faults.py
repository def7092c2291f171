"""Fault injection: every job kind of a node, made to fail on purpose.

One background node B (the node under test) and a sharer A run for the
whole module. Each test injects one fault into one kind of job B runs —
with real processes, sockets and files: a small tmpfs for a full disk, a
read-only tmpfs for an unwritable output, ``kill -9`` for a peer that
vanishes, an edited file for a changed source, flipped bytes in a stored
block, garbage on the control socket — and then asserts three things:

1. the job reported the right error code (the CLI's exit code matches a
   run without a node);
2. B still answers ``status`` with the same pid;
3. B still serves a share it had to a fresh getter (a new home, no node).

Each outcome is recorded; the module prints the table (``-s`` shows it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from p2pshare.format import parse_link
from tests.helpers.cli import Result, ok, p2pshare
from tests.helpers.daemon import (
    home_factory,
    kill_left_over,
    log_tail,
    pid_of,
    start,
    wait_for,
)
from tests.helpers.procs import LOOPBACK, Proc, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]

UNKNOWN = (
    "p2pshare://bafk2bzacecvd5ksbmwb2gfukyh6mvprsdjgtvpfjzilqbsyzcveclwyfxp7ay"
    "#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)
TABLE: list[tuple[str, str, str, str]] = []


@dataclass
class Swarm:
    tmp: Path
    homes: Callable[[str], Path]
    a: Path  # a sharer
    b: Path  # the node under test
    b_pid: int
    b_link: str  # a share B serves
    b_bytes: bytes
    n: int = 0

    def path(self, name: str) -> Path:
        """``name`` in a directory of its own (so names stay as given)."""
        self.n += 1
        where = self.tmp / f"p{self.n}"
        where.mkdir()
        return where / name

    def survived(self) -> None:
        res = p2pshare(self.b, "status", "--json")
        assert res.code == 0, f"B is gone: {res.err}\n{log_tail(self.b)}"
        st = json.loads(res.out)
        assert st["peer_id"] and pid_of(self.b) == self.b_pid, log_tail(self.b)
        fresh = self.homes(f"fresh-{self.n}")
        out = self.path("fresh-out")
        res = p2pshare(fresh, "get", self.b_link, "-o", out, "--timeout", "30")
        assert res.code == 0, res.err
        assert (out / "b-own.bin").read_bytes() == self.b_bytes

    def last_download(self) -> dict[str, Any]:
        items: list[dict[str, Any]] = json.loads(ok(self.b, "downloads", "--json"))
        return items[-1]

    def record(self, job: str, fault: str, code: str) -> None:
        self.survived()
        TABLE.append((job, fault, "yes", code))


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    tmp = tmp_path_factory.mktemp("faults")
    with home_factory(tmp) as homes:
        a, b = homes("a"), homes("b")
        start(a)
        start(b)
        own = os.urandom(700_000)
        (tmp / "b-own.bin").write_bytes(own)
        link = ok(b, "add", "--copy", tmp / "b-own.bin").strip()
        yield Swarm(tmp, homes, a, b, pid_of(b), link, own)
    print("\n| job | fault | node survived | error code |")
    print("|---|---|---|---|")
    for job, fault, alive, code in TABLE:
        print(f"| {job} | {fault} | {alive} | {code} |")


@contextlib.contextmanager
def tmpfs(where: Path, *options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` (root only), unmounted on the way out."""
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join(("size=1m", *options))
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _get(s: Swarm, link: str, out: Path, *extra: str) -> Result:
    return p2pshare(s.b, "get", link, "-o", out, "--timeout", "3", *extra)


def _failed_as(s: Swarm, res: Result, exit_code: int, code: str) -> None:
    assert res.code == exit_code, res.err
    assert len(res.err.strip().splitlines()) >= 1 and "Traceback" not in res.err
    dl = s.last_download()
    assert dl["state"] == "failed" and dl["error_code"] == code, dl


# -- downloads ---------------------------------------------------------------------
def test_download_no_provider(swarm: Swarm) -> None:
    res = _get(swarm, UNKNOWN, swarm.path("o"))
    _failed_as(swarm, res, 3, "no_providers")
    swarm.record("download", "no provider", "no_providers (exit 3)")


def test_download_provider_vanishes_mid_transfer(swarm: Swarm) -> None:
    sharer = swarm.homes("vanishing")
    start(sharer, "--max-upload-rate", "1M")
    src = swarm.path("big.bin")
    src.write_bytes(os.urandom(12 << 20))
    link = ok(sharer, "add", src).strip()
    getter = Proc(swarm.b, "get", link, "-o", swarm.path("o"), "--timeout", "3")
    with running(getter):
        assert wait_for(lambda: int(swarm.last_download()["done"] or 0) > 0, 30)
        os.kill(pid_of(sharer), signal.SIGKILL)
        assert getter.popen.wait(60) == 3, getter.err
    dl = swarm.last_download()
    assert dl["error_code"] == "no_providers", dl
    swarm.record("download", "the only provider killed mid-transfer", "no_providers")


def test_download_unwritable_output(swarm: Swarm) -> None:
    src = swarm.path("ro.bin")
    src.write_bytes(os.urandom(100_000))
    link = ok(swarm.a, "add", src).strip()
    with tmpfs(swarm.path("ro"), "ro") as out:
        res = _get(swarm, link, out)
    _failed_as(swarm, res, 6, "store")
    swarm.record("download", "read-only output dir (EROFS)", "store (exit 6)")


def test_download_disk_full(swarm: Swarm) -> None:
    src = swarm.path("3m.bin")
    src.write_bytes(os.urandom(3 << 20))
    link = ok(swarm.a, "add", src).strip()
    with tmpfs(swarm.path("full")) as out:
        res = _get(swarm, link, out)
        left = [p.name for p in out.iterdir()]
    _failed_as(swarm, res, 6, "store")
    assert "no space" in res.err.lower()
    assert "3m.bin" not in left  # nothing under the final name
    swarm.record("download", "disk full (1 MiB tmpfs)", "store (exit 6)")


def test_download_output_exists(swarm: Swarm) -> None:
    src = swarm.path("exists.bin")
    src.write_bytes(b"x" * 1000)
    link = ok(swarm.a, "add", src).strip()
    out = swarm.path("o")
    out.mkdir()
    (out / src.name).write_bytes(b"mine")
    _failed_as(swarm, _get(swarm, link, out), 6, "output_exists")
    assert (out / src.name).read_bytes() == b"mine"
    swarm.record("download", "output already exists", "output_exists (exit 6)")


def test_download_path_not_in_folder(swarm: Swarm) -> None:
    folder = swarm.path("folder")
    (folder / "d").mkdir(parents=True)
    (folder / "d" / "f").write_bytes(b"f")
    link = ok(swarm.a, "add", folder).strip()
    res = _get(swarm, link, swarm.path("o"), "--path", "nope/x")
    _failed_as(swarm, res, 3, "not_found")
    swarm.record("download", "--path not in the folder", "not_found (exit 3)")


def test_download_source_changed(swarm: Swarm) -> None:
    src = swarm.path("changing.bin")
    src.write_bytes(os.urandom(2 << 20))
    link = ok(swarm.a, "add", src).strip()
    with src.open("r+b") as f:
        f.write(b"changed")
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    _failed_as(swarm, _get(swarm, link, swarm.path("o")), 4, "source_changed")
    swarm.record("download", "provider's source file changed", "source_changed (4)")


def test_download_cancel_while_searching(swarm: Swarm) -> None:
    getter = Proc(swarm.b, "get", UNKNOWN, "-o", swarm.path("o"), "--timeout", "60")
    with running(getter):
        assert wait_for(lambda: "started in the node" in getter.err)
        did = swarm.last_download()["id"]
        ok(swarm.b, "downloads", "cancel", str(did))
        assert getter.popen.wait(30) == 7, getter.err
    assert "cancelled" in getter.err
    assert swarm.last_download()["state"] == "cancelled"
    swarm.record("download", "cancel while finding providers", "cancelled (exit 7)")


def test_download_cancel_and_pause_mid_transfer(swarm: Swarm) -> None:
    sharer = swarm.homes("slow")
    start(sharer, "--max-upload-rate", "1M")
    src = swarm.path("slow.bin")
    src.write_bytes(os.urandom(6 << 20))
    link = ok(sharer, "add", src).strip()
    out = swarm.path("o")
    getter = Proc(swarm.b, "get", link, "-o", out)
    with running(getter):
        assert wait_for(lambda: int(swarm.last_download()["done"] or 0) > 0, 30)
        did = str(swarm.last_download()["id"])
        ok(swarm.b, "downloads", "pause", did)
        assert getter.popen.wait(30) == 7  # paused is not done
        ok(swarm.b, "downloads", "resume", did)
        assert wait_for(lambda: swarm.last_download()["state"] == "done", 60)
    assert (out / "slow.bin").read_bytes() == src.read_bytes()
    src2 = swarm.path("slow2.bin")
    src2.write_bytes(os.urandom(6 << 20))
    link2 = ok(sharer, "add", src2).strip()
    getter = Proc(swarm.b, "get", link2, "-o", out)
    with running(getter):
        assert wait_for(lambda: int(swarm.last_download()["done"] or 0) > 0, 30)
        ok(swarm.b, "downloads", "cancel", str(swarm.last_download()["id"]))
        assert getter.popen.wait(30) == 7
    assert swarm.last_download()["state"] == "cancelled"
    assert not (out / "slow2.bin").exists()
    assert [p.name for p in out.iterdir()] == ["slow.bin"]  # partial data gone
    swarm.record(
        "download", "pause + resume, then cancel mid-transfer", "done / cancelled"
    )


# -- adds ----------------------------------------------------------------------------
def test_add_missing_path(swarm: Swarm) -> None:
    res = p2pshare(swarm.b, "add", swarm.path("nothing-here"))
    assert res.code == 3 and "no such file" in res.err, res.err
    swarm.record("add", "no such path", "not_found (exit 3)")


def test_add_copy_disk_full(swarm: Swarm) -> None:
    with tmpfs(swarm.path("small-home"), "size=6m", "mode=0700") as home:
        start(home)
        pid = pid_of(home)
        try:
            _add_copy_disk_full(swarm, home, pid)
        finally:
            kill_left_over(home)
    swarm.record("add --copy", "disk full (6 MiB tmpfs home)", "store (exit 6)")


def _add_copy_disk_full(swarm: Swarm, home: Path, pid: int) -> None:
    keep = swarm.path("keep.txt")
    keep.write_bytes(b"shared before the disk filled")
    kept = ok(home, "add", "--copy", keep).strip()
    big = swarm.path("big.bin")
    big.write_bytes(os.urandom(12 << 20))
    res = p2pshare(home, "add", "--copy", big)
    assert res.code == 6 and "no space" in res.err.lower(), res.err
    assert pid_of(home) == pid and json.loads(ok(home, "status", "--json"))
    fresh = swarm.homes("fresh-small")
    out = swarm.path("o")
    got = p2pshare(fresh, "get", kept, "-o", out, "--timeout", "30")
    assert got.code == 0, got.err
    assert (out / "keep.txt").read_bytes() == keep.read_bytes()
    ok(home, "stop")


def test_add_client_killed_mid_call(swarm: Swarm) -> None:
    big = swarm.path("bigdir")
    big.mkdir()
    for i in range(48):
        (big / f"{i}.bin").write_bytes(os.urandom(1 << 20))
    ok(swarm.b, "gc")  # what earlier tests left: only this add counts below
    before = len(_block_files(swarm.b))
    adder = Proc(swarm.b, "add", "--copy", big)
    tmp = swarm.b / "blocks" / "tmp"

    def adding() -> bool:  # blocks being written (or, rarely, all done)
        return (
            any(tmp.iterdir())
            or len(_block_files(swarm.b)) > before
            or adder.popen.poll() is not None
        )

    with running(adder):
        assert wait_for(adding, 30)
        adder.kill()
    # the node finishes the add it started (the work is not the client's)
    names = lambda: [i["name"] for i in json.loads(ok(swarm.b, "ls", "--json"))]  # noqa: E731
    assert wait_for(lambda: "bigdir" in names(), 60)
    report = json.loads(ok(swarm.b, "gc", "--json"))
    assert report["blocks"] == 0 and report["temp_files"] == 0, report
    swarm.record("add (control)", "client killed mid-call", "- (node finishes it)")


# -- serving ---------------------------------------------------------------------------
def _block_files(home: Path) -> set[Path]:
    top = home / "blocks"
    return {p for d in top.iterdir() if len(d.name) == 2 for p in d.iterdir()}


def test_serve_corrupt_stored_block(swarm: Swarm) -> None:
    src = swarm.path("rot.bin")
    src.write_bytes(os.urandom(3 << 20))
    before = _block_files(swarm.b)
    link = ok(swarm.b, "add", "--copy", src).strip()
    mine = sorted(_block_files(swarm.b) - before, key=lambda p: p.stat().st_size)
    victim = mine[-1]  # one of its 1 MiB chunks (the envelope is small)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    try:
        fresh = swarm.homes("fresh-rot")
        res = p2pshare(fresh, "get", link, "-o", swarm.path("o"), "--timeout", "3")
        assert res.code == 3, res.err  # nobody else can serve that chunk
        log = (swarm.b / "logs" / "node.log").read_text()
        assert "corrupt" in log
    finally:
        data[100] ^= 0xFF
        victim.write_bytes(bytes(data))
    swarm.record(
        "serve (xfer stream)", "corrupt stored block", "getter: no_providers (3)"
    )


# -- seeds -------------------------------------------------------------------------
def test_replicate_seed_refuses(swarm: Swarm) -> None:
    not_a_seed = json.loads(ok(swarm.a, "status", "--json"))["addrs"][0]
    src = swarm.path("repl.bin")
    src.write_bytes(b"r" * 5000)
    res = p2pshare(
        swarm.b, "share", "--replicas", "1", "--seed", not_a_seed, src, timeout=180
    )
    assert res.code == 7 and "replica" in res.err, res.err
    swarm.record(
        "replicate", "the seed is not a seed (protocol refused)", "replication (7)"
    )


def test_replicate_seed_full_and_check_repair(swarm: Swarm) -> None:
    seed_home = swarm.homes("seed")
    seed = Proc(
        seed_home, "seed", "--listen", LOOPBACK, "--open", "--max-storage", "4K"
    )
    with running(seed):
        (addr,) = seed.read_lines(1)
        src = swarm.path("too-big.bin")
        src.write_bytes(os.urandom(200_000))
        res = p2pshare(
            swarm.b, "share", "--replicas", "1", "--seed", addr, src, timeout=180
        )
        assert res.code == 7, res.err
        root = parse_link(ok(swarm.b, "link", "too-big.bin").strip()).root_cid
        swarm.record("replicate", "seed storage full", "replication (7)")
        res = p2pshare(swarm.b, "repair", root, "--replicas", "1", "--seed", addr)
        assert res.code == 7, res.err
        swarm.record("repair", "seed storage full", "replication (7)")
        res = p2pshare(swarm.b, "check", UNKNOWN)
        assert res.code == 3, res.err
        swarm.record("check", "unknown share", "not_found (exit 3)")
        seed.stop()


def test_voucher_redeem_faults(swarm: Swarm) -> None:
    res = p2pshare(swarm.b, "voucher", "redeem", "p2pv1-not-a-voucher")
    assert res.code in (2, 4), res.err
    assert "Traceback" not in res.err
    swarm.record("voucher redeem", "malformed code", f"exit {res.code}")


# -- the control socket ----------------------------------------------------------------
def test_control_malformed_frames(swarm: Swarm) -> None:
    for junk in (b"\xff" * 64, b"\x00\x00\x00\x05hello", b"\x7f\xff\xff\xff" + b"x"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(swarm.b / "control.sock"))
            sock.sendall(junk)
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass
    swarm.record("control connection", "malformed frames", "connection closed")


def test_control_client_gone_mid_get(swarm: Swarm) -> None:
    sharer = swarm.homes("slow3")
    start(sharer, "--max-upload-rate", "2M")
    src = swarm.path("follow.bin")
    src.write_bytes(os.urandom(4 << 20))
    link = ok(sharer, "add", src).strip()
    out = swarm.path("o")
    getter = Proc(swarm.b, "get", link, "-o", out)
    with running(getter):
        assert wait_for(lambda: "started in the node" in getter.err)
        getter.kill()
    assert wait_for(lambda: swarm.last_download()["state"] == "done", 60)
    assert (out / "follow.bin").read_bytes() == src.read_bytes()
    swarm.record("control (get)", "client killed while following", "- (download done)")
