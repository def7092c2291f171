"""`cat`: a file's plaintext on stdout, in order, from every provider at
once; `--range` fetches only the chunks it covers; mistakes get one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from p2pshare.format import ShareLink, parse_link
from tests.helpers.cli import p2pshare
from tests.helpers.procs import LOOPBACK, node, running

MiB = 1 << 20


def providers(tmp_path: Path, data: bytes, n: int) -> tuple[Path, list[Path]]:
    """``n`` homes holding the same share (copied), each its own peer id."""
    f = tmp_path / "talk.bin"
    f.write_bytes(data)
    first = tmp_path / "h0"
    res = p2pshare(first, "add", "--copy", f)
    assert res.code == 0, res.err
    (tmp_path / "link").write_text(res.out.strip())
    homes = []
    for i in range(n):
        h = tmp_path / f"p{i}"
        shutil.copytree(first, h)
        (h / "identity.key").unlink(missing_ok=True)
        homes.append(h)
    return f, homes


def chunks_per_provider(err: str) -> list[int]:
    m = re.search(r"chunks per provider: (.*)", err)
    assert m, err
    return [int(part.split("=")[1]) for part in m[1].split()]


def cat(home: Path, link: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "p2pshare", "--home", str(home), "--debug", "cat"]
    env = {k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"}
    return subprocess.run(
        [*cmd, link, "--listen", LOOPBACK, *args],
        capture_output=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_cat_from_two_providers_and_ranges(tmp_path: Path) -> None:
    data = os.urandom(12 * MiB + 12345)  # 13 chunks, the last one short
    src, homes = providers(tmp_path, data, 2)
    procs = [node(h) for h in homes]
    with running(*(p for p, _ in procs)):
        parsed = parse_link((tmp_path / "link").read_text())
        peers = tuple(addr for _, (addr,) in procs)
        link = str(ShareLink(root_id=parsed.root_id, key=parsed.key, peers=peers))
        res = cat(tmp_path / "g", link)
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        assert res.stdout == data  # byte-exact, in order
        err = res.stderr.decode()
        assert parsed.key is not None
        counts = chunks_per_provider(err)
        assert sum(counts) == 13 and all(c > 0 for c in counts), counts
        # the last MiB: only the chunks it covers cross the wire
        res = cat(tmp_path / "g", link, "--range", f"-{MiB}")
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        assert res.stdout == data[-MiB:]
        assert sum(chunks_per_provider(res.stderr.decode())) == 2  # 11 and 12
        # a range inside one chunk, and one crossing a chunk boundary
        for lo, hi in ((5, 9), (3 * MiB - 7, 3 * MiB + 7), (0, 0)):
            res = cat(tmp_path / "g", link, "--range", f"{lo}-{hi}")
            assert res.returncode == 0, res.stderr.decode()[-2000:]
            assert res.stdout == data[lo : hi + 1]
        # a reader that stops early (`| head`) ends it quietly
        with subprocess.Popen(
            [sys.executable, "-m", "p2pshare", "--home", str(tmp_path / "g"),
             "cat", link, "--listen", LOOPBACK],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ) as proc:  # fmt: skip
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.read(1000) == data[:1000]
            proc.stdout.close()
            assert proc.wait(60) == 0
            assert b"Traceback" not in proc.stderr.read()
    assert src.read_bytes() == data


def test_cat_mistakes_get_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("hello\n")
    owner = tmp_path / "a"
    link = p2pshare(owner, "add", folder).out.strip()
    proc, _ = node(owner)
    with running(proc):
        res = p2pshare(owner, "link", link)
        full = res.out.strip()
        ok = cat(tmp_path / "g", full, "--path", "a.txt")
        assert ok.returncode == 0 and ok.stdout == b"hello\n", ok.stderr
        for args, code, says in [
            ((), 2, "that is a folder"),
            (("--path", "nope.txt"), 3, "is not in the share"),
            (("--path", "a.txt", "--range", "9-1"), 2, "backwards"),
            (("--path", "a.txt", "--range", "100-"), 2, "the file has 6 bytes"),
            (("--path", "../x"), 2, "not a relative path"),
        ]:
            bad = p2pshare(tmp_path / "g", "cat", full, "--listen", LOOPBACK, *args)
            assert bad.code == code, (args, bad.err)
            assert says in bad.err and "Traceback" not in bad.err
            assert len(bad.err.strip().splitlines()) == 1, bad.err
            assert full.split("#")[1] not in bad.err
