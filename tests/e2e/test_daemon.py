"""The background node and the CLI driving it over the control socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from p2pshare.control.process import wait_for_exit
from p2pshare.format import parse_link
from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import pid_of as _pid
from tests.helpers.daemon import slow_get as _slow_get
from tests.helpers.daemon import start as _start
from tests.helpers.procs import LOOPBACK, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_two_background_nodes_share_and_get(tmp_path: Path, homes) -> None:
    a, b = homes("a"), homes("b")
    _start(a)
    _start(b)
    assert stat.S_IMODE((a / "control.sock").stat().st_mode) == 0o600
    assert stat.S_IMODE(a.stat().st_mode) == 0o700
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(3 << 20))
    link = ok(a, "share", src).strip()
    assert parse_link(link).peers  # a node's share link carries its addresses
    listed = json.loads(ok(a, "ls", "--json"))
    assert [i["name"] for i in listed] == ["data.bin"]

    out = tmp_path / "out"
    res = p2pshare(b, "get", link, "-o", out)
    assert res.code == 0, res.err
    assert (out / "data.bin").read_bytes() == src.read_bytes()

    st = json.loads(ok(b, "status", "--json"))
    assert st["peer_id"] and st["addrs"] and st["connected_peers"] >= 1
    assert isinstance(st["dht_routing_table"], int | None)
    dls = json.loads(ok(b, "downloads", "--json"))
    assert [(d["name"], d["state"], d["done"], d["total"]) for d in dls] == [
        ("data.bin", "done", 3 << 20, 3 << 20)
    ]
    peers = json.loads(ok(b, "peers", "--json"))
    st_a = json.loads(ok(a, "status", "--json"))
    assert any(p["peer_id"] == st_a["peer_id"] for p in peers)
    assert st_a["shares"] == 1

    # the same client runs on asyncio (the TUI's loop) as on trio (the CLI's)
    import anyio

    from p2pshare.config import Home
    from p2pshare.control.client import open_client

    async def ask() -> Any:
        async with open_client(Home(a), name="asyncio-test") as client:
            return await client.call("status")

    assert anyio.run(ask, backend="asyncio")["peer_id"] == st_a["peer_id"]


def test_interrupted_cli_leaves_the_download_running(tmp_path: Path, homes) -> None:
    # a slow provider: the download takes a few seconds
    b, src, getter = _slow_get(tmp_path, homes, 8 << 20)
    out = tmp_path / "out"
    with running(getter):
        getter.popen.send_signal(signal.SIGINT)
        # the download goes on, so this is no failure: exit 0, and say so
        assert getter.popen.wait(10) == 0
        getter.stop()
        assert "goes on in the node" in getter.err
        assert "error" not in getter.err
    dl = json.loads(ok(b, "downloads", "--json"))
    assert dl[0]["state"] == "active"
    deadline = time.monotonic() + 60
    while dl[0]["state"] == "active" and time.monotonic() < deadline:
        time.sleep(0.2)
        dl = json.loads(ok(b, "downloads", "--json"))
    assert dl[0]["state"] == "done", dl
    assert (out / "slow.bin").read_bytes() == src.read_bytes()


def test_stop_lock_and_stale_lock(tmp_path: Path, homes) -> None:
    a = homes("a")
    _start(a)
    # a second node on the same home is refused, naming the running one
    res = p2pshare(a, "node", "--listen", LOOPBACK)
    assert res.code != 0
    assert "already running" in res.err and str(_pid(a)) in res.err
    res = p2pshare(a, "node", "--background", "--listen", LOOPBACK)
    assert res.code != 0 and "already running" in res.err

    pid = _pid(a)
    start = time.monotonic()
    res = p2pshare(a, "stop")
    assert res.code == 0, res.err
    assert time.monotonic() - start < 5
    assert wait_for_exit(pid, 0)  # gone (or a zombie nobody reaps: also gone)
    assert p2pshare(a, "status").code == 8

    # a killed node leaves a stale lock (and socket); the next start recovers
    _start(a)
    os.kill(_pid(a), signal.SIGKILL)
    time.sleep(0.2)  # let the kernel reap it
    _start(a)
    assert json.loads(ok(a, "status", "--json"))["peer_id"]


def _garbage(home: Path) -> None:
    """A client that sends junk: the node closes its connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(home / "control.sock"))
    sock.sendall(b"\x00\x00\x00\x05hello" + os.urandom(200))
    sock.settimeout(5)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        pytest.fail("the node kept a garbage connection open")
    finally:
        sock.close()


def test_garbage_client_does_not_disturb_others(tmp_path: Path, homes) -> None:
    # a client following a transfer in b's node (a serves it over ~3 s)
    b, src, getter = _slow_get(tmp_path, homes, 6 << 20)
    a = tmp_path / "a"
    out = tmp_path / "out"
    with running(getter):
        for _ in range(3):
            _garbage(b)
            _garbage(a)
        assert getter.popen.poll() is None, "the transfer must still be running"
        # the following client and the transfer are undisturbed
        assert getter.popen.wait(60) == 0, getter.err
    assert (out / "slow.bin").read_bytes() == src.read_bytes()
    # other clients and the nodes are fine
    assert json.loads(ok(b, "status", "--json"))["peer_id"]
    src2 = tmp_path / "y"
    src2.write_text("y")
    assert ok(a, "add", src2).startswith("p2pshare://")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
def test_other_uid_is_refused(homes) -> None:
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="p2ps-uid-", dir="/tmp"))
    try:
        a = base / "a"
        homes_made = homes  # the fixture stops nodes it made; register this one
        del homes_made
        _start(a)
        try:
            # open the file modes so only the SO_PEERCRED check stands in the way
            os.chmod(base, 0o755)
            os.chmod(a, 0o755)
            os.chmod(a / "control.sock", 0o777)
            code = (
                "import socket\n"
                "s=socket.socket(socket.AF_UNIX)\n"
                f"s.connect({str(a / 'control.sock')!r})\n"
                "s.settimeout(5)\n"
                "try:\n"
                " s.sendall(b'hello')\n"
                " print(len(s.recv(100)))\n"
                "except (ConnectionResetError, BrokenPipeError):\n"
                " print(0)\n"
            )
            # the venv's interpreter lives under root's home; the system one
            # is reachable by any user
            python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
            res = subprocess.run(
                [python, "-c", code],
                capture_output=True,
                text=True,
                timeout=30,
                user=65534,
                check=False,
                cwd="/",
            )
            assert res.returncode == 0, res.stderr
            assert res.stdout.strip() == "0"  # closed without a byte of answer
            log = (a / "logs" / "node.log").read_text()
            assert "refused a connection from uid 65534" in log
            assert json.loads(ok(a, "status", "--json"))["peer_id"]
        finally:
            p2pshare(a, "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
