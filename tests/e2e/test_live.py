"""Live shares end to end, real processes on loopback: one link follows a
changing folder through `publish`, with and without a background node on
either side; a getter never goes back; user mistakes get one line."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import start
from tests.helpers.procs import running, share


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
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
        assert "new version 2" in res.err
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
