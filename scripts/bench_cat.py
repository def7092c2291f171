"""Streaming reads: `cat` of a share from two providers, beside `get`.

Two node processes on loopback serve the same share (one home copied, a
new identity each). For each run this measures, with the two providers'
addresses as hints in the link:

* ``cat LINK``: the time from start to the first byte on its stdout and to
  the last, its peak RSS (``wait4``), and that the bytes are exact (BLAKE2b
  of the stream against the file's);
* ``get LINK``: wall time of the same file into a fresh home (the
  baseline, same run);
* ``cat --range -1048576``: the last MiB, and how many bytes the providers
  sent for it (their ``status``).

Prints medians and the ratio cat/get of the whole-file time. Targets (from
issue 17): first byte <= 1.0 s, peak RSS < 150 MiB at 256 MiB, the last
MiB fetches at most 2 chunks.

Usage: .venv/bin/python scripts/bench_cat.py [--size 256M] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import MiB, maxrss_bytes, p2pshare, parse_sizes
from bench_net import LOOPBACK, Procs, Source, Work, child_env, progress

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from p2pshare.format import ShareLink, parse_link  # noqa: E402

READ = 1 << 20


def sent(homes: list[Path]) -> int:
    """Chunk bytes the providers sent so far (their ``status``)."""
    total = 0
    for h in homes:
        out = subprocess.run(
            p2pshare(h, "status", "--json"),
            check=True, capture_output=True, text=True, env=child_env(),
        ).stdout  # fmt: skip
        total += int(json.loads(out)["bytes_sent"])
    return total


def cat_once(
    work: Work, homes: list[Path], link: str, digest: bytes, *extra: str
) -> dict[str, float]:
    home = work.fresh("cat")
    cmd = p2pshare(home, "cat", link, "--listen", LOOPBACK, *extra)
    before = sent(homes)
    errors = work.log("cat.stderr")
    start = time.perf_counter()
    with errors.open("wb") as err_file:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err_file, env=child_env()
        )
    assert proc.stdout is not None
    h = hashlib.blake2b(digest_size=32)
    first = None
    while data := proc.stdout.read1(READ):  # type: ignore[attr-defined]
        if first is None:
            first = time.perf_counter() - start
        h.update(data)
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"cat failed: {errors.read_text()[-2000:]}")
    if digest and h.digest() != digest:
        raise SystemExit("cat: the bytes differ from the file's")
    return {
        "first_s": first or total,
        "total_s": total,
        "rss_mib": maxrss_bytes(usage.ru_maxrss) / MiB,
        "sent_mib": (sent(homes) - before) / MiB,
    }


def get_once(work: Work, link: str) -> float:
    home, out = work.fresh("get-home"), work.fresh("get-out")
    cmd = p2pshare(home, "get", link, "-o", str(out), "--listen", LOOPBACK)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=child_env())
    took = time.perf_counter() - start
    shutil.rmtree(home)
    shutil.rmtree(out)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256M")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    (size,) = parse_sizes(args.size)
    os.environ.setdefault("P2PSHARE_MDNS", "0")
    with tempfile.TemporaryDirectory(prefix="bench-cat-") as tmp:
        work = Work(Path(tmp))
        src = Source.create(work.root / "talk.bin", size)
        first = work.fresh("h0")
        out = subprocess.run(
            p2pshare(first, "add", "--copy", str(src.path)),
            check=True, capture_output=True, text=True, env=child_env(),
        ).stdout.strip()  # fmt: skip
        homes: list[Path] = []
        for i in range(2):
            h = work.root / f"p{i}"
            shutil.copytree(first, h)
            (h / "identity.key").unlink(missing_ok=True)
            homes.append(h)
        with Procs(work) as procs:
            addrs = []
            for i, h in enumerate(homes):
                proc = procs.start(
                    f"node{i}", p2pshare(h, "node", "--listen", LOOPBACK)
                )
                addrs.append(proc.read_line(60, "its address"))
            parsed = parse_link(out)
            link = str(ShareLink(parsed.root_id, parsed.key, tuple(addrs)))
            # (never read the file into this process: a child's peak RSS
            # counts the pages it shares with this process before its exec)
            digest = src.digest
            cats, gets, tails = [], [], []
            for r in range(args.repeat):
                cats.append(cat_once(work, homes, link, digest))
                gets.append(get_once(work, link))
                last = ("--range", f"-{MiB}")
                tails.append(cat_once(work, homes, link, b"", *last))
                progress(
                    f"run {r + 1}: cat first byte {cats[-1]['first_s']:.2f} s, "
                    f"all {cats[-1]['total_s']:.2f} s, get {gets[-1]:.2f} s"
                )
    first_s = statistics.median(c["first_s"] for c in cats)
    total_s = statistics.median(c["total_s"] for c in cats)
    rss = max(c["rss_mib"] for c in cats)
    get_s = statistics.median(gets)
    tail_mib = max(t["sent_mib"] for t in tails)
    print(f"\ncat of {size // MiB} MiB from 2 providers ({args.repeat} runs, medians)")
    print(f"first byte            {first_s:6.2f} s")
    print(f"whole file            {total_s:6.2f} s   ({size / total_s / 1e6:.0f} MB/s)")
    print(f"get, same file        {get_s:6.2f} s   ({size / get_s / 1e6:.0f} MB/s)")
    print(f"  ratio cat/get time  {total_s / get_s:6.2f}")
    print(f"peak RSS of cat       {rss:6.0f} MiB")
    print(f"--range -1MiB sent    {tail_mib:6.2f} MiB (by the providers)")
    checks = [
        ("first byte s <= 1.0", first_s <= 1.0),
        ("peak RSS MiB < 150", rss < 150),
        ("last MiB: providers send <= 2 chunks", 0 < tail_mib <= 2.1),
    ]
    for what, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
