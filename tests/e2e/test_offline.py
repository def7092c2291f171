"""``add`` / ``get --offline`` / ``ls`` / ``rm`` through the real CLI.

Every test runs ``python -m p2pshare`` in a subprocess against a real home
(SQLite catalog, block files) in a temporary directory.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from p2pshare.format import Envelope, parse_link
from p2pshare.format.chunks import ID_BYTES
from tests.helpers.cli import add, ok, p2pshare

pytestmark = pytest.mark.slow

CS = 64 * 1024  # small chunks: boundary cases stay cheap


def _data(n: int, seed: int = 0) -> bytes:
    # Incompressible-looking but reproducible bytes.
    import hashlib

    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.blake2b(f"{seed}:{counter}".encode(), digest_size=64).digest()
        counter += 1
    return bytes(out[:n])


@pytest.mark.parametrize("mode", ["ref", "copy"])
@pytest.mark.parametrize(
    "size", [0, 1, CS - 1, CS, CS + 1, 5 * CS + 123], ids=lambda s: f"size{s}"
)
def test_file_round_trip_is_byte_exact(tmp_path: Path, size: int, mode: str) -> None:
    src = tmp_path / "src" / "data.bin"
    src.parent.mkdir()
    src.write_bytes(_data(size, size))
    os.utime(src, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    home = tmp_path / "home"
    extra = ["--copy"] if mode == "copy" else []
    link = add(home, *extra, "--chunk-size", str(CS), src)
    out = tmp_path / "out"
    ok(home, "get", "--offline", link, "-o", out)
    got = out / "data.bin"
    assert got.read_bytes() == src.read_bytes()
    assert got.stat().st_mtime_ns == 1_600_000_000_123_456_789
    assert sorted(os.listdir(out)) == ["data.bin"]  # no partial left behind


def test_default_chunk_size_multi_chunk(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(_data(3 * (1 << 20) + 5))
    home = tmp_path / "home"
    link = add(home, "--copy", src)
    ok(home, "get", "--offline", link, "-o", tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == src.read_bytes()


def _make_tree(root: Path) -> None:
    (root / "sub" / "deeper" / "deepest").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "vide").write_bytes(b"")
    (root / "sub" / "empty").write_bytes(b"")
    (root / "sub" / "Grüße – 日本語 🎉.txt").write_text("non-ascii name\n", "utf-8")
    (root / "sub" / "deeper" / "chunks.bin").write_bytes(_data(3 * CS + 7, 9))
    (root / "sub" / "deeper" / "deepest" / "ü").write_bytes(b"x")
    (root / "top.txt").write_text("hello\n")
    for i, path in enumerate(sorted(root.rglob("*"), reverse=True)):
        t = 1_500_000_000_000_000_000 + i * 1_000_000_007
        os.utime(path, ns=(t, t))
    os.utime(root, ns=(1_400_000_000_000_000_000,) * 2)


def _snapshot(root: Path) -> dict[str, tuple[str, int, bytes | None]]:
    out: dict[str, tuple[str, int, bytes | None]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", st.st_mtime_ns, None)
        else:
            out[rel] = ("file", st.st_mtime_ns, path.read_bytes())
    return out


@pytest.mark.parametrize("mode", ["ref", "copy"])
def test_folder_round_trip_preserves_names_bytes_and_mtimes(
    tmp_path: Path, mode: str
) -> None:
    src = tmp_path / "Mon dossier ✓"
    src.mkdir()
    _make_tree(src)
    home = tmp_path / "home"
    extra = ["--copy"] if mode == "copy" else []
    link = add(home, *extra, "--chunk-size", str(CS), src)
    out = tmp_path / "out"
    ok(home, "get", "--offline", link, "-o", out)
    assert os.listdir(out) == [src.name]
    assert _snapshot(out / src.name) == _snapshot(src)

    listed = json.loads(ok(home, "ls", "--json"))
    assert [(i["name"], i["kind"], i["mode"]) for i in listed] == [
        (src.name, "folder", mode)
    ]
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert listed[0]["size"] == total
    assert listed[0]["root"] == parse_link(link).root_cid


def test_add_prints_one_link_per_path_and_ls_rm(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    b = tmp_path / "b"
    a.write_text("a")
    b.mkdir()
    home = tmp_path / "home"
    lines = ok(home, "add", a, b).splitlines()
    assert len(lines) == 2
    links = [parse_link(line) for line in lines]
    assert all(link.key is not None for link in links)
    table = ok(home, "ls")
    assert "a.txt" in table and links[0].root_cid in table
    res = p2pshare(home, "rm", links[0].root_cid)
    assert res.code == 0, res.err
    names = [i["name"] for i in json.loads(ok(home, "ls", "--json"))]
    assert names == ["b"]
    # rm by link works too; rm of an unknown share is "not found"
    assert p2pshare(home, "rm", lines[1]).code == 0
    assert json.loads(ok(home, "ls", "--json")) == []
    again = p2pshare(home, "rm", lines[1])
    assert again.code == 3 and "not in the local store" in again.err


def test_rm_deletes_copied_blocks(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(_data(4 * CS))
    home = tmp_path / "home"
    link = add(home, "--copy", "--chunk-size", str(CS), src)
    blocks = [p for p in (home / "blocks").rglob("*") if p.is_file()]
    assert len(blocks) == 5  # 4 chunks + envelope
    ok(home, "rm", link)
    assert [p for p in (home / "blocks").rglob("*") if p.is_file()] == []
    assert src.exists()


def test_nothing_readable_in_the_home(tmp_path: Path) -> None:
    marker = os.urandom(12).hex()
    name = f"secret-name-{os.urandom(6).hex()}.txt"
    folder = tmp_path / f"folder-{os.urandom(6).hex()}"
    folder.mkdir()
    content = (f"plaintext marker {marker}\n" * 5000).encode()
    (tmp_path / name).write_bytes(content)
    (folder / name).write_bytes(content)
    home = tmp_path / "home"
    link1 = add(home, "--copy", tmp_path / name)
    link2 = add(home, "--copy", folder)
    ok(home, "ls")  # reading must not write names anywhere either
    needles = [marker.encode(), name.encode(), folder.name.encode()]
    needles.append(parse_link(link1).key or b"?")  # the key itself is in the DB:
    files = [p for p in home.rglob("*") if p.is_file()]
    assert len(files) > 3
    for path in files:
        data = path.read_bytes()
        for needle in needles[:3]:
            assert needle not in data, f"{needle!r} found in {path}"
    assert parse_link(link2).key is not None
    # private files: home 0700, catalog 0600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for db in home.glob("p2pshare.db*"):
        assert stat.S_IMODE(db.stat().st_mode) == 0o600


# -- tampering ---------------------------------------------------------------


def _flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x10
    path.write_bytes(bytes(data))


def _block(home: Path, bid: bytes) -> Path:
    return home / "blocks" / bid.hex()[:2] / bid.hex()


# Reference shares keep no chunk blocks: their chunks are covered by the
# source-changed tests below.
@pytest.mark.parametrize(
    ("target", "mode"),
    [
        ("envelope", "ref"),
        ("envelope", "copy"),
        ("index block", "ref"),
        ("index block", "copy"),
        ("chunk", "copy"),
    ],
)
def test_flipped_bit_is_an_integrity_error(
    tmp_path: Path, target: str, mode: str
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(_data(1100 * 4096 + 5))  # > 1024 chunks: index blocks
    home = tmp_path / "home"
    extra = ["--copy"] if mode == "copy" else []
    link = add(home, *extra, "--chunk-size", "4096", src)
    root = parse_link(link).root_id
    env = Envelope.decode(_block(home, root).read_bytes())
    assert env.index_block_count == 1
    index_id = env.index_block_id(0)
    if target == "envelope":
        victim = _block(home, root)
    elif target == "index block":
        victim = _block(home, index_id)
    else:
        ids = _block(home, index_id).read_bytes()
        victim = _block(home, ids[700 * ID_BYTES : 701 * ID_BYTES])
    _flip_bit(victim, 1234)
    out = tmp_path / "out"
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 4, res.err
    assert target in res.err
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert not out.exists() or os.listdir(out) == []


def test_tampered_folder_member_names_the_path(tmp_path: Path) -> None:
    src = tmp_path / "tree"
    src.mkdir()
    _make_tree(src)
    home = tmp_path / "home"
    link = add(home, "--copy", "--chunk-size", str(CS), src)
    # corrupt every chunk block of the one multi-chunk member
    target = src / "sub" / "deeper" / "chunks.bin"
    before = {p: p.read_bytes() for p in (home / "blocks").rglob("*") if p.is_file()}
    for path, data in before.items():
        if len(data) == CS + 16:  # full chunks of chunks.bin only
            _flip_bit(path, 99)
    out = tmp_path / "out"
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 4, res.err
    assert str(Path("sub") / "deeper" / target.name) in res.err and "chunk" in res.err
    assert not out.exists() or os.listdir(out) == []


def test_wrong_key_and_corrupted_root(tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("hello")
    home = tmp_path / "home"
    link = add(home, src)
    out = tmp_path / "out"

    body, key = link.split("#")
    wrong = body + "#" + ("A" if key[0] != "A" else "B") + key[1:]
    res = p2pshare(home, "get", "--offline", wrong, "-o", out)
    assert res.code == 5 and "wrong key" in res.err
    assert key not in res.err and key[1:] not in res.err

    cid = parse_link(link).root_cid
    other = cid[:30] + ("a" if cid[30] != "a" else "b") + cid[31:]
    res = p2pshare(home, "get", "--offline", link.replace(cid, other), "-o", out)
    assert res.code == 3 and "not in the local store" in res.err

    res = p2pshare(home, "get", "--offline", link.replace(cid, cid[:-1]), "-o", out)
    assert res.code == 2 and "root id" in res.err

    res = p2pshare(home, "get", "--offline", body, "-o", out)
    assert res.code == 5 and "no key" in res.err
    assert not out.exists() or os.listdir(out) == []


def test_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("new")
    home = tmp_path / "home"
    link = add(home, src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.txt").write_text("precious")
    res = p2pshare(home, "get", "--offline", link, "-o", out)
    assert res.code == 6 and "already exists" in res.err
    assert (out / "f.txt").read_text() == "precious"


# -- reference mode: source changed -------------------------------------------


def test_source_changed_is_detected_and_add_again_refreshes(tmp_path: Path) -> None:
    src = tmp_path / "doc.txt"
    src.write_bytes(_data(3 * CS))
    home = tmp_path / "home"
    link = add(home, "--chunk-size", str(CS), src)
    assert add(home, "--chunk-size", str(CS), src) == link  # unchanged: same share

    changed = bytearray(src.read_bytes())
    changed[2 * CS + 1] ^= 1
    st = src.stat()
    src.write_bytes(bytes(changed))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    res = p2pshare(home, "get", "--offline", link, "-o", tmp_path / "out")
    assert res.code == 4 and "source changed" in res.err and "chunk 2" in res.err
    assert not (tmp_path / "out" / "doc.txt").exists()

    src.write_bytes(bytes(changed) + b"more")  # size and mtime change
    res = p2pshare(home, "get", "--offline", link, "-o", tmp_path / "out")
    assert res.code == 4 and "source changed" in res.err

    new_link = add(home, "--chunk-size", str(CS), src)
    assert new_link != link
    assert parse_link(new_link).key != parse_link(link).key  # fresh key, no reuse
    ok(home, "get", "--offline", new_link, "-o", tmp_path / "out2")
    assert (tmp_path / "out2" / "doc.txt").read_bytes() == src.read_bytes()
    listed = json.loads(ok(home, "ls", "--json"))
    assert [i["root"] for i in listed] == [parse_link(new_link).root_cid]


def test_source_deleted(tmp_path: Path) -> None:
    src = tmp_path / "gone.txt"
    src.write_text("x")
    home = tmp_path / "home"
    link = add(home, src)
    src.unlink()
    res = p2pshare(home, "get", "--offline", link, "-o", tmp_path / "out")
    assert res.code == 4 and "source changed" in res.err


# -- user mistakes: one line, non-zero exit ------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["get", "--offline", "https://example.com/x"], 2, "p2pshare://"),
        (["get", "--offline", "p2pshare://nope#abc"], 2, "link: the key"),
        (["get", "--offline", "p2pshare://nope"], 2, "root id"),
        (["add", "/definitely/not/here"], 3, "no such file"),
        (["rm", "not-a-root"], 3, "no share of this home has that root"),
        (["frobnicate"], 2, "No such command"),
    ],
)
def test_user_mistakes_get_one_clear_line(
    tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    res = p2pshare(tmp_path / "home", *args)
    assert res.code == code, res.err
    assert needle in res.err
    assert "Traceback" not in res.err
    assert res.out == ""


def test_version_and_help(tmp_path: Path) -> None:
    assert "p2pshare" in ok(tmp_path, "--version")
    text = ok(tmp_path, "--help")
    for command in ("add", "get", "ls", "rm"):
        assert command in text


def test_get_path_takes_only_the_selected_entries(tmp_path: Path) -> None:
    src = tmp_path / "Mon dossier ✓"
    src.mkdir()
    _make_tree(src)
    home = tmp_path / "home"
    link = add(home, "--chunk-size", str(CS), src)
    out = tmp_path / "out"
    ok(
        home,
        "get",
        "--offline",
        link,
        "-o",
        out,
        "--path",
        "sub/deeper",
        "--path",
        "top.txt",
    )
    got = _snapshot(out / src.name)
    want = _snapshot(src)
    assert {k for k, v in got.items() if v[0] == "file"} == {
        "top.txt",
        "sub/deeper/chunks.bin",
        "sub/deeper/deepest/ü",
    }
    for rel in ("top.txt", "sub/deeper/chunks.bin", "sub/deeper/deepest/ü"):
        assert got[rel] == want[rel]  # bytes and mtime
    # a path that is not in the folder, or not relative: one line, nothing left
    res = p2pshare(
        home, "get", "--offline", link, "-o", tmp_path / "o2", "--path", "nope"
    )
    assert res.code == 3, res.err
    assert "nope: not in this folder" in res.err
    assert not (tmp_path / "o2").exists() or os.listdir(tmp_path / "o2") == []
    res = p2pshare(
        home, "get", "--offline", link, "-o", tmp_path / "o3", "--path", "../x"
    )
    assert res.code == 2, res.err
    assert "Traceback" not in res.err
    # a file share has no paths
    f = tmp_path / "one.txt"
    f.write_text("x")
    res = p2pshare(
        home, "get", "--offline", add(home, f), "-o", tmp_path / "o4", "--path", "a"
    )
    assert res.code == 2, res.err
    assert "is a file" in res.err
