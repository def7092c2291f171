"""A malicious folder listing never writes outside the output directory.

The share is built with the real store API (a member file share plus a
hand-packed listing that skips ``Entry`` validation, as an attacker's own
client would), then opened with the real CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pshare.config import Home
from p2pshare.format import ShareLink, canonical
from p2pshare.store import LocalStore
from p2pshare.store.adder import add_bytes
from tests.helpers.cli import p2pshare
from tests.helpers.daemon import start

pytestmark = pytest.mark.slow


def _entry(
    name: object, member: tuple[bytes, bytes], **over: object
) -> dict[str, object]:
    root, key = member
    entry: dict[str, object] = {
        "name": name,
        "kind": "file",
        "size": 5,
        "mtime_ns": 0,
        "root": root,
        "key": key,
    }
    entry.update(over)
    return entry


def _folder_link(home: Path, entries: list[dict[str, object]]) -> str:
    with LocalStore(Home(home)) as store:
        listing = canonical.pack({"v": 1, "entries": entries})
        added = add_bytes(store, listing, name="evil", kind="folder", mtime_ns=0)
        return str(ShareLink(root_id=added.root, key=added.key))


def _member(home: Path) -> tuple[bytes, bytes]:
    with LocalStore(Home(home)) as store:
        added = add_bytes(store, b"pwned", name="m", kind="file", mtime_ns=0, top=False)
        return added.root, added.key


BAD_NAMES = [
    ("..", "'..' is not allowed"),
    (".", "'.' is not allowed"),
    ("", "empty"),
    ("/etc/passwd", "path separator"),
    ("/tmp/abs", "path separator"),
    ("a/../../b", "path separator"),
    ("..\\..\\win", "path separator"),
    ("nul\x00byte", "NUL"),
    ("line\nbreak", "control character"),
    ("esc\x1b[31m", "control character"),
    ("del\x7f", "control character"),
    ("c1\x85", "control character"),
    ("x" * 10_000, "longer than 255 bytes"),
]


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES, ids=range(len(BAD_NAMES)))
def test_bad_entry_is_rejected_and_nothing_escapes(
    tmp_path: Path, name: str, reason: str
) -> None:
    home = tmp_path / "home"
    member = _member(home)
    link = _folder_link(home, [_entry("fine.txt", member), _entry(name, member)])
    sandbox = tmp_path / "sandbox"
    out = sandbox / "out"
    out.mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*") if "home" not in p.parts)
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 4, res.err
    assert "entry 1" in res.err and reason in res.err, res.err
    assert res.err.count("\n") == 1
    after = sorted(p for p in tmp_path.rglob("*") if "home" not in p.parts)
    assert after == before  # nothing written anywhere, not even a partial dir


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    home = tmp_path / "home"
    member = _member(home)
    link = _folder_link(home, [_entry("same", member), _entry("same", member)])
    out = tmp_path / "out"
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 4 and "duplicate name" in res.err
    assert os.listdir(out) == []


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"kind": "symlink"}, "unknown kind"),
        ({"size": -1}, "out of range"),
        ({"size": "5"}, "wrong type"),
        ({"root": b"short"}, "bad root id"),
        ({"extra": 1}, "wrong fields"),
    ],
)
def test_malformed_entries_are_rejected(
    tmp_path: Path, over: dict[str, object], reason: str
) -> None:
    home = tmp_path / "home"
    link = _folder_link(home, [_entry("f", _member(home), **over)])
    out = tmp_path / "out"
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 4 and reason in res.err, res.err
    assert os.listdir(out) == []


def test_size_mismatch_with_member_is_rejected(tmp_path: Path) -> None:
    home = tmp_path / "home"
    link = _folder_link(home, [_entry("f", _member(home), size=6)])
    out = tmp_path / "out"
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 4 and "does not match" in res.err
    assert os.listdir(out) == []


def test_good_listing_from_the_same_helpers_works(tmp_path: Path) -> None:
    """Control: the helpers build a valid share when the names are fine."""
    home = tmp_path / "home"
    member = _member(home)
    link = _folder_link(home, [_entry("a.txt", member), _entry("b.txt", member)])
    out = tmp_path / "out"
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 0, res.err
    assert (out / "evil" / "a.txt").read_bytes() == b"pwned"
    assert (out / "evil" / "b.txt").read_bytes() == b"pwned"


def _folder(
    home: Path, entries: list[dict[str, object]], name: str
) -> tuple[bytes, bytes]:
    with LocalStore(Home(home)) as store:
        listing = canonical.pack({"v": 1, "entries": entries})
        added = add_bytes(store, listing, name=name, kind="folder", mtime_ns=0)
        return added.root, added.key


def _repeated(home: Path, outer: int, inner: int) -> str:
    """A folder of ``outer`` entries that all name one folder of ``inner``
    entries that all name one 5-byte file: a few KiB that expand to
    ``outer * (inner + 1)`` files and folders."""
    member = _member(home)
    files = [_entry(f"f{i}", member) for i in range(inner)]
    sub = _folder(home, files, "sub")
    dirs = [_entry(f"d{i}", sub, kind="folder", size=5 * inner) for i in range(outer)]
    return _folder_link(home, dirs)


def test_a_folder_named_many_times_over_is_refused_before_writing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    link = _repeated(home, 400, 400)  # 160 400 entries, default cap 100 000
    out = tmp_path / "out"
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 4, res.err
    assert "more than 100000 files and folders" in res.err
    assert not out.exists() or not any(out.rglob("*"))  # nothing written


@pytest.mark.parametrize("how", ["offline", "node"])
def test_max_entries_and_depth_are_configurable(tmp_path: Path, how: str) -> None:
    """The same limits offline and through a running node (where the control
    API carries them)."""
    home = tmp_path / "home"
    link = _repeated(home, 5, 5)  # 30 entries, 2 levels
    offline = ("--offline",) if how == "offline" else ()
    if how == "node":
        start(home)
    try:
        for flags, code in [
            (("--max-entries", "29"), 4),
            (("--max-depth", "1"), 4),
            (("--max-entries", "30", "--max-depth", "2"), 0),
        ]:
            out = tmp_path / f"out-{'-'.join(flags)}"
            res = p2pshare(home, "get", *offline, link, "-o", out, *flags)
            assert res.code == code, (flags, res.err)
            if code:
                assert "--max-" in res.err
                assert not out.exists() or not any(out.rglob("*"))
            else:
                assert len(list((out / "evil").rglob("f*"))) == 25
    finally:
        if how == "node":
            p2pshare(home, "stop")


def test_invisible_and_reordering_characters_are_shown_escaped(tmp_path: Path) -> None:
    """Such names are legal (some scripts need them) but every listing shows
    them escaped: "invoice\\u202efdp.exe" cannot pass for "invoiceexe.pdf"."""
    home = tmp_path / "home"
    member = _member(home)
    tricky = "invoice\u202efdp.exe"
    with LocalStore(Home(home)) as store:
        listing = canonical.pack({"v": 1, "entries": [_entry("x", member)]})
        added = add_bytes(store, listing, name=tricky, kind="folder", mtime_ns=0)
    link = str(ShareLink(root_id=added.root, key=added.key))
    res = p2pshare(home, "ls")
    assert res.code == 0, res.err
    assert "invoice\\u202efdp.exe" in res.out
    assert "\u202e" not in res.out
    res = p2pshare(home, "get", "--offline", link, "-o", tmp_path / "out")
    assert res.code == 0, res.err
    assert (tmp_path / "out" / tricky / "x").read_bytes() == b"pwned"
    assert "\u202e" not in res.err and "invoice\\u202efdp.exe" in res.err
