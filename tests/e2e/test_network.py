"""``share`` / ``node`` / ``get`` as separate processes on loopback."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2pshare.format import ShareLink, parse_link
from tests.helpers.cli import p2pshare
from tests.helpers.procs import LOOPBACK, Proc, node, running, share

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "vide").write_bytes(b"")
    (root / "sub" / "Grüße 日本.txt").write_text("non-ascii\n", "utf-8")
    (root / "sub" / "deeper" / "big.bin").write_bytes(os.urandom(3 * (1 << 20) + 17))
    (root / "top.txt").write_text("hello\n")
    for i, path in enumerate(sorted(root.rglob("*"), reverse=True)):
        t = 1_500_000_000_000_000_000 + i * 1_000_000_007
        os.utime(path, ns=(t, t))
    os.utime(root, ns=(1_400_000_000_000_000_000,) * 2)


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    out = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        data = None if path.is_dir() else path.read_bytes()
        out[str(path.relative_to(root))] = (st.st_mtime_ns, data)
    return out


def test_share_then_get_file_and_folder(tmp_path: Path) -> None:
    f = tmp_path / "report.pdf"
    f.write_bytes(os.urandom(5 * (1 << 20) + 3))
    os.utime(f, ns=(1_600_000_000_111_222_333,) * 2)
    d = tmp_path / "Dossier"
    d.mkdir()
    _tree(d)
    sharer, links = share(tmp_path / "a", f, d)
    with running(sharer):
        for link in links:
            assert parse_link(link).peers, "share prints links with peer hints"
        out = tmp_path / "out"
        for link in links:
            res = p2pshare(tmp_path / "b", "get", link, "-o", out, "--timeout", "30")
            assert res.code == 0, res.err + sharer.err
        assert (out / "report.pdf").read_bytes() == f.read_bytes()
        assert (out / "report.pdf").stat().st_mtime_ns == 1_600_000_000_111_222_333
        assert _snapshot(out / "Dossier") == _snapshot(d)
        assert sorted(os.listdir(out)) == ["Dossier", "report.pdf"]
        assert sharer.stop() == 0


def test_share_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_text("x")
    sharer, _ = share(tmp_path / "a", f)
    with running(sharer):
        start = time.monotonic()
        sharer.popen.send_signal(signal.SIGTERM)
        assert sharer.popen.wait(10) == 0
        assert time.monotonic() - start < 5


def test_dht_only_discovery_through_an_unrelated_node(tmp_path: Path) -> None:
    boot, (boot_addr,) = node(tmp_path / "boot")
    with running(boot):
        f = tmp_path / "dht.bin"
        f.write_bytes(os.urandom(300_000))
        sharer, (link,) = share(tmp_path / "a", f, extra=("--bootstrap", boot_addr))
        with running(sharer):
            parsed = parse_link(link)
            bare = str(ShareLink(root_id=parsed.root_id, key=parsed.key))
            assert "peer=" not in bare
            out = tmp_path / "out"
            res = p2pshare(
                tmp_path / "b",
                "get",
                bare,
                "-o",
                out,
                "--bootstrap",
                boot_addr,
                "--timeout",
                "60",
            )
            assert res.code == 0, res.err + sharer.err
            assert (out / "dht.bin").read_bytes() == f.read_bytes()


def test_no_provider_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_text("x")
    link = p2pshare(tmp_path / "a", "add", f).out.strip()
    res = p2pshare(
        tmp_path / "b", "get", link, "-o", tmp_path / "out", "--timeout", "2"
    )
    assert res.code == 3, res.err
    assert "no provider" in res.err
    assert "Traceback" not in res.err


def _bits(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT bitmap FROM downloads").fetchall()
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()
    return sum(bin(b).count("1") for r in rows for b in r[0])


def test_get_killed_midway_resumes(tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(40 << 20))
    sharer, (link,) = share(tmp_path / "a", f, extra=("--max-upload-rate", "10M"))
    with running(sharer):
        home = tmp_path / "b"
        out = tmp_path / "out"
        getter = Proc(home, "get", link, "-o", out, "--listen", LOOPBACK)
        with running(getter):
            deadline = time.monotonic() + 60
            while _bits(home / "p2pshare.db") < 10 and time.monotonic() < deadline:
                assert getter.popen.poll() is None, getter.err
                time.sleep(0.05)
            getter.popen.send_signal(signal.SIGKILL)
            getter.popen.wait()
        done = _bits(home / "p2pshare.db")
        assert 10 <= done < 40
        assert not (out / "big.bin").exists()
        res = p2pshare(home, "get", link, "-o", out, "--timeout", "30")
        assert res.code == 0, res.err
        m = re.search(r"resumed: (\d+) of 40 chunks", res.err)
        assert m and int(m[1]) >= done, res.err
        assert (out / "big.bin").read_bytes() == f.read_bytes()


def test_three_providers_one_killed_midway(tmp_path: Path) -> None:
    f = tmp_path / "many.bin"
    f.write_bytes(os.urandom(12 << 20))
    seed = tmp_path / "h0"
    link = p2pshare(seed, "add", "--copy", f).out.strip()
    homes = []
    for i in range(3):
        h = tmp_path / f"p{i}"
        shutil.copytree(seed, h)
        (h / "identity.key").unlink(missing_ok=True)  # each its own peer id
        homes.append(h)
    # 512 KiB/s each: the 12 MiB download takes about eight seconds, so the
    # bitmap (checkpointed every second) shows progress long before the end
    procs = [node(h, "--max-upload-rate", "512K") for h in homes]
    with running(*(p for p, _ in procs)):
        peers = tuple(addr for _, (addr,) in procs)
        parsed = parse_link(link)
        full = str(ShareLink(root_id=parsed.root_id, key=parsed.key, peers=peers))
        home = tmp_path / "dl"
        out = tmp_path / "out"
        getter = Proc(home, "--debug", "get", full, "-o", out, "--listen", LOOPBACK)
        with running(getter):
            deadline = time.monotonic() + 60
            while _bits(home / "p2pshare.db") < 1 and time.monotonic() < deadline:
                assert getter.popen.poll() is None, getter.err
                time.sleep(0.02)
            done = _bits(home / "p2pshare.db")
            assert 1 <= done < 12, "the provider must die mid-transfer"
            assert getter.popen.poll() is None
            procs[0][0].kill()  # one provider dies mid-transfer
            assert getter.popen.wait(120) == 0, getter.err
        assert (out / "many.bin").read_bytes() == f.read_bytes()
        # the download really used more than one provider
        m = re.search(r"chunks per provider: (.*)", getter.err)
        assert m, getter.err
        counts = [int(part.split("=")[1]) for part in m[1].split()]
        assert sum(1 for c in counts if c > 0) >= 2, m[0]


def test_debug_logs_never_show_keys_fragments_or_names(tmp_path: Path) -> None:
    name = f"very-secret-name-{os.urandom(4).hex()}.txt"
    f = tmp_path / name
    f.write_bytes(os.urandom(2 << 20))
    sharer, (link,) = share(tmp_path / "a", f, debug=True)
    with running(sharer):
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "p2pshare",
                "--home",
                str(tmp_path / "b"),
                "--debug",
                "get",
                link,
                "-o",
                str(tmp_path / "out"),
                "--listen",
                LOOPBACK,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"},
        )
        assert res.returncode == 0, res.stderr
        sharer.stop()
    # the one result line `get` prints for the user names the file: not a log
    result_lines = [ln for ln in res.stderr.splitlines() if "chunks fetched" in ln]
    assert len(result_lines) == 1
    logs = sharer.err + res.stderr.replace(result_lines[0], "")
    assert "DEBUG" in logs  # the logs really were at DEBUG
    key = parse_link(link).key
    assert key is not None
    fragment = link.split("#", 1)[1]
    for needle in (fragment, key.hex(), base64.b64encode(key).decode(), name):
        assert needle not in logs, f"{needle!r} leaked into the logs"


def test_a_deleted_download_is_fetched_again(tmp_path: Path) -> None:
    """The getter's home serves what it downloaded by reference; once the
    user deletes (or edits) that file, a new `get` fetches it from the
    network instead of failing on the missing local source."""
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(200_000))
    proc, [link] = share(tmp_path / "p", src)
    with running(proc):
        home = tmp_path / "g"
        for _ in range(2):
            res = p2pshare(home, "get", link, "-o", tmp_path / "out", "--timeout", "20")
            assert res.code == 0, res.err
            assert (tmp_path / "out" / "f.bin").read_bytes() == src.read_bytes()
            (tmp_path / "out" / "f.bin").unlink()
        # edited in place, not deleted: fetched again too
        res = p2pshare(home, "get", link, "-o", tmp_path / "out", "--timeout", "20")
        assert res.code == 0, res.err
        (tmp_path / "out" / "f.bin").write_bytes(b"edited")
        res = p2pshare(home, "get", link, "-o", tmp_path / "o2", "--timeout", "20")
        assert res.code == 0, res.err
        assert (tmp_path / "o2" / "f.bin").read_bytes() == src.read_bytes()
