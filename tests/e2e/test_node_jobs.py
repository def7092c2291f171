"""A long-running node never dies from one job, and the CLI over it is honest.

The run of issue 12, as a user types it: two background nodes, a ``get``
that cannot succeed, then one that must. Each ``get`` path that failed
through a node before (no provider, a path not in the folder, an output
that exists, the node going away, Ctrl-C) is driven through a real node
and checked for its exit code, its one line, and a node that still answers
with the same pid.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from p2pshare.format import parse_link
from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import pid_of, slow_get, start, wait_for
from tests.helpers.procs import LOOPBACK, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]

UNKNOWN = (
    "p2pshare://bafk2bzacecvd5ksbmwb2gfukyh6mvprsdjgtvpfjzilqbsyzcveclwyfxp7ay"
    "#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)


def _alive(home: Path, pid: int) -> None:
    st = json.loads(ok(home, "status", "--json"))
    assert st["peer_id"]
    assert pid_of(home) == pid


def test_failed_download_leaves_the_node_up_and_exit_codes_honest(
    tmp_path: Path, homes
) -> None:
    a, b = homes("a"), homes("b")
    start(a)
    start(b)
    pid = pid_of(b)
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(1 << 20))
    link = ok(a, "add", src).strip()
    # a node serves what it adds: the link says where
    assert parse_link(link).peers, link

    t0 = time.monotonic()
    res = p2pshare(b, "get", UNKNOWN, "-o", tmp_path / "none", "--timeout", "3")
    took = time.monotonic() - t0
    assert res.code == 3, res.err
    assert "no provider" in res.err
    assert took < 20, took  # not the default 60 s: --timeout reached the node
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
    _alive(b, pid)
    failed = json.loads(ok(b, "downloads", "--json"))
    assert failed[0]["state"] == "failed"
    assert failed[0]["error_code"] == "no_providers"
    st = json.loads(ok(b, "status", "--json"))
    assert st["jobs_failed"] == 1
    assert st["recent_failures"] == [
        {"job": "download", "what": "1", "code": "no_providers"}
    ]

    out = tmp_path / "out"
    res = p2pshare(b, "get", link, "-o", out)
    assert res.code == 0, res.err
    assert (out / "f.bin").read_bytes() == src.read_bytes()
    _alive(b, pid)

    # a third home with no node and no bootstrap: the link's hints suffice
    c = homes("c")
    res = p2pshare(c, "get", link, "-o", tmp_path / "c-out", "--timeout", "30")
    assert res.code == 0, res.err
    assert (tmp_path / "c-out" / "f.bin").read_bytes() == src.read_bytes()

    # the output exists: exit 6 as without a node, and the node stays up
    res = p2pshare(b, "get", link, "-o", out)
    assert res.code == 6, res.err
    assert "exists" in res.err
    _alive(b, pid)

    # `link` through the node carries hints too; --no-hints is the bare form
    root = parse_link(link).root_cid
    again = ok(a, "link", root[:14]).strip()
    assert parse_link(again).peers and parse_link(again).key == parse_link(link).key
    bare = ok(a, "link", "--no-hints", "f.bin").strip()
    assert parse_link(bare).peers == () and parse_link(bare).key is not None


def test_get_path_not_in_folder_through_node(tmp_path: Path, homes) -> None:
    a, b = homes("a"), homes("b")
    start(a)
    start(b)
    pid = pid_of(b)
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("x")
    link = ok(a, "add", folder).strip()
    res = p2pshare(b, "get", link, "-o", tmp_path / "o", "--path", "nope/x")
    assert res.code == 3, res.err
    assert "nope/x" in res.err
    _alive(b, pid)
    res = p2pshare(b, "get", link, "-o", tmp_path / "o", "--path", "../etc")
    assert res.code == 2, res.err
    _alive(b, pid)


@pytest.mark.parametrize("value", ["-1", "nan", "x"])
def test_bad_timeout_is_a_usage_error(tmp_path: Path, homes, value: str) -> None:
    a = homes("a")
    res = p2pshare(a, "get", UNKNOWN, "--timeout", value)
    assert res.code == 2, res.err
    assert "Traceback" not in res.err
    start(a)
    res = p2pshare(a, "get", UNKNOWN, "--timeout", value)
    assert res.code == 2, res.err


def test_zero_timeout_means_zero_seconds(tmp_path: Path, homes) -> None:
    a = homes("a")
    start(a)
    res = p2pshare(a, "get", UNKNOWN, "-o", tmp_path / "o", "--timeout", "0")
    assert res.code == 3, res.err
    assert "within 0 s" in res.err


def test_node_killed_mid_download_exits_7(tmp_path: Path, homes) -> None:
    b, _src, getter = slow_get(tmp_path, homes, 16 << 20)
    with running(getter):
        os.kill(pid_of(b), signal.SIGKILL)
        assert getter.popen.wait(30) == 7
        getter.stop()
        assert "node" in getter.err and "went away" in getter.err, getter.err


def test_ctrl_c_leaves_download_running_and_exits_0(tmp_path: Path, homes) -> None:
    b, src, getter = slow_get(tmp_path, homes, 8 << 20)
    with running(getter):
        getter.popen.send_signal(signal.SIGINT)
        assert getter.popen.wait(10) == 0
        getter.stop()
    assert "goes on in the node" in getter.err
    assert wait_for(
        lambda: json.loads(ok(b, "downloads", "--json"))[0]["state"] == "done", 60
    )
    assert (tmp_path / "out" / "slow.bin").read_bytes() == src.read_bytes()


def test_paused_by_another_client_is_not_success(tmp_path: Path, homes) -> None:
    b, _src, getter = slow_get(tmp_path, homes, 16 << 20)
    with running(getter):
        ok(b, "downloads", "pause", "1")
        assert getter.popen.wait(30) == 7
        getter.stop()
    assert "paused" in getter.err and "downloads resume 1" in getter.err


def test_readd_unchanged_returns_the_same_link(tmp_path: Path, homes) -> None:
    a = homes("a")
    src = tmp_path / "same.bin"
    src.write_bytes(os.urandom(3 << 20))
    folder = tmp_path / "dir"
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "f").write_bytes(b"folder member")
    for copy in ((), ("--copy",)):
        first = parse_link(ok(a, "add", *copy, src).strip())
        assert parse_link(ok(a, "add", *copy, src).strip()) == first
        fresh = parse_link(ok(a, "add", *copy, "--new", src).strip())
        assert fresh.root_id != first.root_id and fresh.key != first.key
        dir_first = parse_link(ok(a, "add", *copy, folder).strip())
        assert parse_link(ok(a, "add", *copy, folder).strip()) == dir_first
    start(a)  # and through the node: the same share, now with hints
    again = parse_link(ok(a, "add", "--copy", folder).strip())
    assert again.root_id == dir_first.root_id and again.peers
    (folder / "in" / "g").write_bytes(b"a new member")
    changed = parse_link(ok(a, "add", "--copy", folder).strip())
    assert changed.root_id != dir_first.root_id


def test_libp2p_lines_go_to_the_log_not_stderr(tmp_path: Path, homes) -> None:
    a = homes("a")
    dead = (
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWN3X4zPVUtVQMtBzgzvPmAJ2iRtv1g3xi55yMA7v984bD"
    )
    res = p2pshare(
        a, "get", UNKNOWN, "--bootstrap", dead, "--timeout", "2", "-o", tmp_path / "o"
    )
    assert res.code == 3, res.err
    lines = res.err.splitlines()
    assert lines and all(line.startswith("p2pshare: ") for line in lines), res.err
    assert "libp2p" in (a / "logs" / "node.log").read_text()
    res = p2pshare(a, "--debug", "get", UNKNOWN, "--bootstrap", dead, "--timeout", "1")
    assert "libp2p" in res.err  # --debug shows them


def _port(addrs: list[str]) -> int:
    return int(addrs[0].split("/tcp/")[1].split("/")[0])


def test_node_keeps_its_port_and_refuses_a_taken_one(tmp_path: Path, homes) -> None:
    a, b = homes("a"), homes("b")
    first = _port(start(a))
    ok(a, "stop")
    assert _port(start(a)) == first  # links printed before still point here
    taken = f"/ip4/127.0.0.1/tcp/{first}"
    for args in (
        ("node", "--background", "--listen", taken),
        ("node", "--listen", taken),
    ):
        res = p2pshare(b, *args, timeout=60)
        assert res.code == 2, res.err
        assert "already in use" in res.err and "Traceback" not in res.err
    assert json.loads(ok(a, "status", "--json"))["addrs"]


def test_fresh_hints_win_over_a_stale_peerstore(tmp_path: Path, homes) -> None:
    a, b = homes("a"), homes("b")
    old = _port(start(a))
    start(b)
    one = tmp_path / "one.bin"
    one.write_bytes(os.urandom(300_000))
    res = p2pshare(b, "get", ok(a, "add", one).strip(), "-o", tmp_path / "o1")
    assert res.code == 0, res.err  # B now remembers A at its old address
    ok(a, "stop")
    (a / "listen-port").unlink()  # A comes back elsewhere
    assert _port(start(a)) != old
    two = tmp_path / "two.bin"
    two.write_bytes(os.urandom(300_000))
    link = ok(a, "add", two).strip()
    res = p2pshare(b, "get", link, "-o", tmp_path / "o2", "--timeout", "20")
    assert res.code == 0, res.err
    assert (tmp_path / "o2" / "two.bin").read_bytes() == two.read_bytes()


def test_changed_source_fails_the_getter_with_exit_4(tmp_path: Path, homes) -> None:
    a, c = homes("a"), homes("c")
    start(a)
    src = tmp_path / "edited.bin"
    src.write_bytes(os.urandom(3 << 20))
    link = ok(a, "add", src).strip()  # by reference
    with src.open("r+b") as f:  # the sharer edits it in place
        f.write(b"edited")
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    res = p2pshare(c, "get", link, "-o", tmp_path / "o", "--timeout", "3")
    assert res.code == 4, res.err
    assert "changed" in res.err and "new link" in res.err
    assert not (tmp_path / "o" / "edited.bin").exists()
    listed = json.loads(ok(a, "ls", "--json"))
    assert "changed since it was added" in (listed[0]["error"] or "")
    assert "changed since it was added" in ok(a, "ls")
    # the same through a node on the getter's side
    start(c)
    res = p2pshare(c, "get", link, "-o", tmp_path / "o2", "--timeout", "3")
    assert res.code == 4, res.err
    assert json.loads(ok(c, "status", "--json"))["peer_id"]


def test_ls_shows_a_downloaded_folders_real_size(tmp_path: Path, homes) -> None:
    a, b = homes("a"), homes("b")
    start(a)
    start(b)
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.bin").write_bytes(os.urandom(700_000))
    res = p2pshare(b, "get", ok(a, "add", folder).strip(), "-o", tmp_path / "o")
    assert res.code == 0, res.err
    (item,) = json.loads(ok(b, "ls", "--json"))
    assert item["kind"] == "folder" and item["size"] == 2_100_000


def test_get_bootstrap_means_the_same_through_a_node(tmp_path: Path, homes) -> None:
    a, b = homes("a"), homes("b")
    a_addr = start(a)[0]
    start(b)
    src = tmp_path / "dht.bin"
    src.write_bytes(os.urandom(200_000))
    ok(a, "add", src)
    bare = ok(a, "link", "--no-hints", "dht.bin").strip()  # only the DHT can help
    res = p2pshare(b, "get", bare, "-o", tmp_path / "o", "--bootstrap", "/ip4/x")
    assert res.code == 2, res.err
    res = p2pshare(
        b, "get", bare, "-o", tmp_path / "o", "--bootstrap", a_addr, "--timeout", "30"
    )
    assert res.code == 0, res.err
    assert (tmp_path / "o" / "dht.bin").read_bytes() == src.read_bytes()


def test_a_node_that_cannot_run_says_why_and_exits_non_zero(
    tmp_path: Path, homes
) -> None:
    a = homes("a")
    a.mkdir(mode=0o700)
    (a / "p2pshare.db").write_bytes(b"this is not an SQLite database" * 100)
    res = p2pshare(a, "node", "--background", "--listen", "/ip4/127.0.0.1/tcp/0")
    assert res.code != 0
    assert "catalog unreadable" in res.err
    last = (a / "logs" / "node.log").read_text().splitlines()[-1]
    assert "CRITICAL" in last and "node stopped" in last and "catalog" in last
    res = p2pshare(a, "node", "--listen", "/ip4/127.0.0.1/tcp/0")
    assert res.code == 6 and "catalog unreadable" in res.err, res.err


def test_same_exit_codes_with_and_without_a_node(tmp_path: Path, homes) -> None:
    missing = str(tmp_path / "not-there")
    root = UNKNOWN.split("#")[0].removeprefix("p2pshare://")
    out = tmp_path / "exists"
    out.mkdir()
    cases: list[tuple[tuple[str, ...], int]] = [
        (("add", missing), 3),
        (("share", missing), 3),
        (("rm", "nothing-by-that-name"), 3),
        (("rm", root), 3),
        (("link", root), 3),
        (("get", UNKNOWN, "-o", str(out), "--timeout", "1"), 3),
        (("get", "p2pshare://nope", "-o", str(out)), 2),
        (("get", UNKNOWN, "--timeout", "-1"), 2),
        (("check", root), 3),
    ]
    a = homes("a")
    without = {args: p2pshare(a, *args).code for args, _ in cases}
    start(a)
    pid = pid_of(a)
    with_node = {args: p2pshare(a, *args).code for args, _ in cases}
    for args, want in cases:
        assert (without[args], with_node[args]) == (want, want), args
    _alive(a, pid)


def test_the_node_log_names_no_file_and_no_path(tmp_path: Path, homes) -> None:
    """A --debug node's log carries download ids, never the names of what
    is shared or the paths it lands in, also when a download fails."""
    secret = f"secret-{os.urandom(4).hex()}"
    a, b = homes("a"), homes("b")
    start(a)
    res = p2pshare(b, "--debug", "node", "--background", "--listen", LOOPBACK)
    assert res.code == 0, res.err
    src = tmp_path / f"{secret}-name.bin"
    src.write_bytes(os.urandom(1 << 20))
    link = ok(a, "add", src).strip()
    out = tmp_path / f"{secret}-out"
    assert p2pshare(b, "get", link, "-o", out).code == 0
    # the same again: the output exists, a store error naming the path
    res = p2pshare(b, "get", link, "-o", out)
    assert res.code == 6, res.err
    assert secret in res.err  # the user is told where
    log = (b / "logs" / "node.log").read_text()
    assert "download 2 failed: output_exists" in log, log[-2000:]
    assert "event download.done" in log  # the debug lines are there...
    assert secret not in log  # ...without a name or a path
