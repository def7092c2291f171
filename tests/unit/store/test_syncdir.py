"""The file side of `sync` (store/syncdir.py): what is fetched, what is
removed, and that nothing outside DIR is touched or followed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from p2pshare.errors import UsageError
from p2pshare.store.syncdir import (
    STATE_DIR,
    SyncState,
    apply,
    load_state,
    plan,
    save_state,
)


def entries(**files: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    folders = {str(Path(p).parent) for p in files} - {"."}
    out += [{"path": f, "kind": "folder", "root": "-"} for f in sorted(folders)]
    out += [{"path": p, "kind": "file", "root": r} for p, r in files.items()]
    return out


def stage_files(stage: Path, *paths: str) -> None:
    for p in paths:
        (stage / p).parent.mkdir(parents=True, exist_ok=True)
        (stage / p).write_text(f"content of {p}")


def test_first_round_then_only_changes(tmp_path: Path) -> None:
    dest, stage = tmp_path / "d", tmp_path / "s"
    dest.mkdir()
    ups = entries(**{"a.txt": "r1", "sub/b.txt": "r2"})
    p = plan(dest, ups, load_state(dest))
    assert p.fetch == ["a.txt", "sub/b.txt"] and p.remove == []
    stage_files(stage, *p.fetch)
    state = apply(dest, stage, p, load_state(dest), 1)
    save_state(dest, state)
    assert (dest / "sub" / "b.txt").read_text() == "content of sub/b.txt"
    # same upstream: nothing to do
    assert plan(dest, ups, load_state(dest)).fetch == []
    # b changed upstream, a deleted, c new
    p = plan(dest, entries(**{"sub/b.txt": "r3", "c.txt": "r4"}), load_state(dest))
    assert p.fetch == ["c.txt", "sub/b.txt"] and p.remove == ["a.txt"]
    # a local edit is overwritten by upstream's version
    (dest / "sub" / "b.txt").write_text("edited here")
    p = plan(dest, ups, load_state(dest))
    assert p.fetch == ["sub/b.txt"]


def test_removal_stays_inside_and_never_follows_links(tmp_path: Path) -> None:
    dest, stage, outside = tmp_path / "d", tmp_path / "s", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    p = plan(dest, entries(**{"x/y.txt": "r1", "z.txt": "r2"}), SyncState(0, {}))
    stage_files(stage, *p.fetch)
    state = apply(dest, stage, p, SyncState(0, {}), 1)
    # the user replaces x/ by a symlink to a folder outside holding a file
    # just like the one sync placed (same size and mtime), and adds a file
    shutil.copy2(dest / "x" / "y.txt", outside / "y.txt")
    (dest / "x" / "y.txt").unlink()
    (dest / "x").rmdir()
    (dest / "x").symlink_to(outside)
    (dest / "mine.txt").write_text("mine")
    p = plan(dest, entries(**{"z.txt": "r2"}), state)
    assert p.remove == ["x/y.txt"]
    apply(dest, stage, p, state, 2)
    assert (outside / "precious").read_text() == "keep me"
    assert (outside / "y.txt").exists()  # not removed through the symlink
    assert (dest / "mine.txt").exists()
    # upstream brings x/ back: the symlink in the way is refused
    p = plan(dest, entries(**{"x/new.txt": "r5"}), state)
    stage_files(stage, *p.fetch)
    with pytest.raises(UsageError, match="in the way"):
        apply(dest, stage, p, state, 3)
    assert not (outside / "new.txt").exists()


@pytest.mark.parametrize(
    "bad", ["../evil", "/etc/passwd", "a/../../b", f"{STATE_DIR}/state.json", ""]
)
def test_unsafe_upstream_paths_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UsageError):
        plan(tmp_path, [{"path": bad, "kind": "file", "root": "r"}], SyncState(0, {}))


def test_a_broken_state_starts_over(tmp_path: Path) -> None:
    (tmp_path / STATE_DIR).mkdir()
    for junk in ("{", '{"version": 1, "files": {"../x": {}}}', "[]"):
        (tmp_path / STATE_DIR / "state.json").write_text(junk)
        assert load_state(tmp_path) == SyncState(0, {})
    save_state(tmp_path, SyncState(4, {}))
    assert load_state(tmp_path).version == 4
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path / STATE_DIR))
