"""Keeping a local folder equal to a live share's snapshot: the file side.

Theory of operation
-------------------
``p2pshare sync LINK DIR`` (``cli/sync.py``) asks the node what the live
link names now (``inspect``: every entry's path, kind, size and root id),
lets this module decide what to fetch, has the node download exactly those
files into a staging folder inside ``DIR``, and lets this module put them
in place and remove what upstream deleted. The state of the last round is
``DIR/.p2pshare-sync/state.json``: per file, the root id it was synced
from and the size and mtime it had when placed.

* **Fetch only what changed**: a file is fetched when its root id differs
  from the one it was synced from, or the local file is missing or not as
  it was placed (edited locally: upstream wins inside ``DIR``).
* **Atomic per file**: each fetched file is complete and verified in the
  staging folder (the same file system) before ``os.replace`` puts it at
  its path; a reader of ``DIR`` sees the old file or the new one.
* **Only inside DIR, never through links**: every path is checked to be
  relative, without ``..``; every parent folder on the way is created or
  must be a real folder (a symlink in the way is an error, not followed);
  removal takes only files this sync placed (listed in the state) and that
  upstream no longer has, unlinking a symlink itself, never its target;
  folders are removed only when empty. Files the user added stay.
* **Crash-safe**: the state is written (temp file, fsync, rename) after
  the files are in place; a crash between leaves files the next round sees
  as placed-but-unrecorded and fetches again (the download resumes), which
  converges.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from p2pshare.errors import UsageError

__all__ = [
    "STAGE",
    "STATE_DIR",
    "Plan",
    "SyncState",
    "apply",
    "load_state",
    "plan",
    "save_state",
]

STATE_DIR = ".p2pshare-sync"
STAGE = "stage"
_STATE = "state.json"


@dataclass(frozen=True, slots=True)
class Placed:
    root: str
    size: int
    mtime_ns: int


@dataclass(slots=True)
class SyncState:
    version: int
    files: dict[str, Placed]


@dataclass(frozen=True, slots=True)
class Plan:
    fetch: list[str]  # relative paths of files to download
    remove: list[str]  # relative paths this sync placed that upstream dropped
    folders: list[str]  # every folder upstream has (created if missing)
    files: dict[str, str]  # every file upstream has: path -> root id


def _safe(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or ".." in path.parts or rel != str(path):
        raise UsageError(f"sync: refusing an unsafe path {rel!r:.80}")
    if path.parts[0] == STATE_DIR:
        raise UsageError(f"sync: upstream uses the reserved name {STATE_DIR}")
    return path


def load_state(dest: Path) -> SyncState:
    """The last round's state (empty on the first)."""
    try:
        raw: Any = json.loads((dest / STATE_DIR / _STATE).read_text())
        files = {
            str(_safe(k)): Placed(str(v["root"]), int(v["size"]), int(v["mtime_ns"]))
            for k, v in raw["files"].items()
        }
        return SyncState(int(raw["version"]), files)
    except FileNotFoundError:
        return SyncState(0, {})
    except (ValueError, KeyError, TypeError, AttributeError, UsageError):
        # unreadable: start over (every file is fetched again, nothing lost)
        return SyncState(0, {})


def save_state(dest: Path, state: SyncState) -> None:
    folder = dest / STATE_DIR
    folder.mkdir(exist_ok=True)
    tmp = folder / (_STATE + ".tmp")
    body = {
        "version": state.version,
        "files": {
            k: {"root": v.root, "size": v.size, "mtime_ns": v.mtime_ns}
            for k, v in sorted(state.files.items())
        },
    }
    with open(tmp, "w") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / _STATE)


def _as_placed(path: Path, placed: Placed | None) -> bool:
    if placed is None:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == (
        placed.size,
        placed.mtime_ns,
    )


def plan(dest: Path, entries: Iterable[dict[str, Any]], state: SyncState) -> Plan:
    """What to fetch and what to remove so ``dest`` equals ``entries`` (the
    flat tree ``inspect`` reports: path, kind, root)."""
    files: dict[str, str] = {}
    folders: list[str] = []
    for e in entries:
        rel = str(_safe(e["path"]))
        if e["kind"] == "folder":
            folders.append(rel)
        else:
            files[rel] = str(e["root"])
    fetch = [
        rel
        for rel, root in files.items()
        if state.files.get(rel) is None
        or state.files[rel].root != root
        or not _as_placed(dest / rel, state.files[rel])
    ]
    remove = sorted(rel for rel in state.files if rel not in files)
    return Plan(fetch=sorted(fetch), remove=remove, folders=folders, files=files)


def _real_dir(dest: Path, rel: PurePosixPath) -> Path:
    """``dest/rel`` as a real folder inside ``dest``, created as needed; a
    symlink or file in the way is refused, never followed."""
    here = dest
    for part in rel.parts:
        here = here / part
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            here.mkdir()
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"sync: {here} is in the way (not a folder)")
    return here


def apply(
    dest: Path, staged: Path, p: Plan, state: SyncState, version: int
) -> SyncState:
    """Move the fetched files from ``staged`` into place, create upstream's
    folders, remove what upstream dropped; returns the new state (not yet
    saved)."""
    files = dict(state.files)
    for rel in p.folders:
        _real_dir(dest, _safe(rel))
    for rel in p.fetch:
        path = _safe(rel)
        parent = _real_dir(dest, path.parent) if path.parent.parts else dest
        target = parent / path.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # a folder became a file upstream
        os.replace(staged / rel, target)
        st = os.lstat(target)
        files[rel] = Placed(p.files[rel], st.st_size, st.st_mtime_ns)
    for rel in p.remove:
        gone = dest / _safe(rel)
        placed = files.pop(rel, None)
        if not _real_parents(dest, _safe(rel)):
            continue  # a symlink (or file) replaced a folder on the way
        try:
            st = os.lstat(gone)
        except FileNotFoundError:
            continue
        if _as_placed(gone, placed) or stat.S_ISLNK(st.st_mode):
            gone.unlink()  # a symlink itself, never its target
        _remove_empty_parents(dest, gone.parent, keep=set(p.folders))
    return SyncState(version, files)


def _real_parents(dest: Path, rel: PurePosixPath) -> bool:
    """Every folder between ``dest`` and ``rel`` is a real folder (nothing
    on the way leads out of ``dest``)."""
    here = dest
    for part in rel.parts[:-1]:
        here = here / part
        try:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                return False
        except OSError:
            return False
    return True


def _remove_empty_parents(dest: Path, folder: Path, *, keep: set[str]) -> None:
    """Remove ``folder`` and its parents up to ``dest`` while empty, except
    the folders upstream still has."""
    while folder != dest and dest in folder.parents:
        if folder.relative_to(dest).as_posix() in keep:
            return
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
