"""Live shares end to end, real processes on loopback: one link follows a
changing folder through `publish`, with and without a background node on
either side; a getter never goes back; user mistakes get one line."""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from p2pshare.store.syncdir import STATE_DIR
from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import start
from tests.helpers.procs import Proc, running, share


def same_tree(a: Path, b: Path, skip: set[str] | None = None) -> bool:
    if not b.is_dir():
        return False
    cmp = filecmp.dircmp(a, b, ignore=sorted(skip or ()))
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def make_folder(root: Path) -> Path:
    folder = root / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "keep.bin").write_bytes(os.urandom(300_000))
    (folder / "change.txt").write_text("first\n")
    (folder / "sub" / "gone.txt").write_text("deleted upstream\n")
    return folder


def get_live(home: Path, link: str, out: Path, *extra: str) -> str:
    res = p2pshare(home, "get", link, "-o", out, "--timeout", "20", *extra)
    assert res.code == 0, res.err
    assert link.split("#")[1] not in res.err  # the read key never shows
    return res.err


def test_one_link_follows_publish(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    owner, getter = tmp_path / "a", tmp_path / "b"
    proc, [link] = share(owner, folder, extra=("--live",))
    with running(proc):
        assert link.startswith("p2pshare://live.")
        get_live(getter, link, tmp_path / "v1")
        assert same_tree(folder, tmp_path / "v1" / "docs")
        # A adds a file, changes one, deletes one, and publishes
        (folder / "new.txt").write_text("added\n")
        (folder / "change.txt").write_text("second, longer\n")
        (folder / "sub" / "gone.txt").unlink()
        res = p2pshare(owner, "publish", folder)
        assert res.code == 0, res.err
        assert res.out.strip() == link  # the same link
        # (the node's rescan may have published it a moment before)
        assert re.search(r"(new|unchanged, still) version 2", res.err), res.err
        get_live(getter, link, tmp_path / "v2")
        assert same_tree(folder, tmp_path / "v2" / "docs")
        # nothing changed: no new version
        res = p2pshare(owner, "publish", link)
        assert res.code == 0 and "unchanged, still version 2" in res.err
        # the getter deleted what it got: a get fetches it again (its home
        # served those files by reference; a gone source is not "local")
        shutil.rmtree(tmp_path / "v2")
        get_live(getter, link, tmp_path / "v2")
        assert same_tree(folder, tmp_path / "v2" / "docs")


def test_add_live_without_a_node_then_a_background_node(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    owner, getter = tmp_path / "a", tmp_path / "b"
    res = p2pshare(owner, "add", "--live", folder)  # no node: from the store
    assert res.code == 0, res.err
    link = res.out.strip()
    assert link.startswith("p2pshare://live.") and "/p2p/" not in link
    (folder / "change.txt").write_text("changed offline\n")
    res = p2pshare(owner, "publish", folder)  # still no node
    assert res.code == 0 and "new version 2" in res.err, res.err
    addrs = start(owner)  # publishes what it owns at start
    start(getter)
    try:
        # the offline link has no hints: pass the owner as bootstrap peer
        res = p2pshare(
            getter, "get", link, "-o", tmp_path / "out",
            "--timeout", "20", "--bootstrap", addrs[0],
        )  # fmt: skip
        assert res.code == 0, res.err
        assert same_tree(folder, tmp_path / "out" / "docs")
        # `link`-style output of publish through the node carries hints now
        res = p2pshare(owner, "publish", link)
        assert res.code == 0, res.err
        assert "/p2p/" in res.out
    finally:
        p2pshare(getter, "stop")
        p2pshare(owner, "stop")


def test_mistakes_get_one_line(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    home = tmp_path / "a"
    link = ok(home, "add", "--live", folder).strip()
    cases: list[tuple[tuple[str | Path, ...], int, str]] = [
        (("publish", tmp_path / "nothing-here"), 3, "owns no live share"),
        (("publish", "p2pshare://live.abc"), 2, "pointer key"),
        (("get", "--offline", link, "-o", tmp_path / "o"), 2, "needs the network"),
    ]
    for args, code, says in cases:
        res = p2pshare(home, *args)
        assert res.code == code, (args, res.code, res.err)
        assert says in res.err and "Traceback" not in res.err
        assert len(res.err.strip().splitlines()) == 1, res.err
        assert link.split("#")[1] not in res.err


def wait_until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held (polling); fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.2)
    return time.monotonic() - start


def test_sync_watch_follows_publish_fetching_only_changes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    owner, getter, mirror = tmp_path / "a", tmp_path / "b", tmp_path / "mirror"
    proc, [link] = share(owner, folder, extra=("--live",))
    with running(proc):
        follower = Proc(
            getter, "sync", link, mirror, "--watch", "--interval", "1", "--json"
        )
        with running(follower):
            first = json.loads(follower.read_lines(1, timeout=60)[0])
            assert first["version"] == 1 and first["fetched"] == 3
            assert same_tree(folder, mirror, skip={STATE_DIR})
            (folder / "new.txt").write_text("added\n")
            (folder / "change.txt").write_text("second, longer\n")
            (folder / "sub" / "gone.txt").unlink()
            res = p2pshare(owner, "publish", folder)
            assert res.code == 0, res.err
            wait_until(lambda: same_tree(folder, mirror, skip={STATE_DIR}), 10)
            rounds = [json.loads(line) for line in follower.read_lines(1, 30)]
            while rounds[-1]["version"] != 2:
                rounds += [json.loads(line) for line in follower.read_lines(1, 30)]
            changed = rounds[-1]
            assert (changed["fetched"], changed["removed"]) == (2, 1)
            assert changed["unchanged"] == 1
            # the 300 kB file did not cross the wire again: two small files
            # (4 KiB chunks) and nothing else
            assert changed["bytes"] <= 2 * 4096 + 1024, changed
        # the home lists the folder it keeps, at the version it holds
        synced = json.loads(ok(getter, "sync", "--list", "--json"))
        assert [(r["dir"], r["version"]) for r in synced] == [(str(mirror), 2)]
        assert link.split("#")[1] not in json.dumps(synced)
        # crash-safe and idempotent: a new run finds nothing to do
        res = p2pshare(getter, "sync", link, mirror, "--json")
        assert res.code == 0, res.err
        again = json.loads(res.out)
        assert (again["fetched"], again["removed"], again["version"]) == (0, 0, 2)
        # files the user adds to the mirror stay; a symlink upstream never
        # sees is left alone too
        (mirror / "mine.txt").write_text("local\n")
        res = p2pshare(getter, "sync", link, mirror, "--json")
        assert res.code == 0 and (mirror / "mine.txt").exists()


def test_editing_a_live_folder_is_enough(tmp_path: Path) -> None:
    """No `publish`: the owner's node notices the change (rescan) and a
    follower's mirror equals the folder again within 10 s."""
    folder = make_folder(tmp_path)
    owner, getter, mirror = tmp_path / "a", tmp_path / "b", tmp_path / "mirror"
    proc, [link] = share(owner, folder, extra=("--live",))
    with running(proc):
        follower = Proc(getter, "sync", link, mirror, "--watch", "--interval", "1")
        with running(follower):
            wait_until(lambda: same_tree(folder, mirror, skip={STATE_DIR}), 30)
            (folder / "change.txt").write_text("edited, not published\n")
            (folder / "sub" / "gone.txt").unlink()
            took = wait_until(lambda: same_tree(folder, mirror, skip={STATE_DIR}), 10)
        assert took < 10
