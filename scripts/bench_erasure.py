"""Benchmark erasure-coded seed storage against full replicas (issue 18).

Real processes on 127.0.0.1, started and stopped by this script:

1. Five open seeds in three regions (eu, eu, us, us, ap) and an owner's
   ``node --background``; the owner adds the file with ``--erasure 3/5``
   (the link E) and, as a separate share of the same bytes, with
   ``--replicas 5`` (the link R, a copy of the file) on the same seeds. Prints the
   storage all seeds use for each (the blocks they keep), as a multiple of
   the file: the target is <= 1.75 for 3/5.
2. The owner stops. Throughput, same run, alternating: a fresh home
   ``get``s E (5 erasure-coded seeds) and R (5 full replicas), REPEAT times
   each; the getter is pinned to one core and the seeds to the other
   (``taskset``) so both sides see what two machines would. Prints median
   MB/s and the ratio E/R (target >= 0.8).
3. The must-show sequence on the erasure share, owner offline: two seeds
   (the ones keeping whole chunks, so every stripe is rebuilt from parity)
   are killed -> ``get`` byte-exact and timed; a third -> ``get`` fails with
   "not enough fragments (2 of 3 needed)", exit 3; that seed restarts and
   two new seeds join; the owner (back) runs ``repair`` -> 5 parts held,
   and ``check`` reports "survives 2 more losses".

Every download is compared byte for byte with the source.

Usage: .venv/bin/python scripts/bench_erasure.py [--size 64M] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("P2PSHARE_MDNS", "0")

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
MiB = 1 << 20
REGIONS = ["eu-west", "eu-west", "us-east", "us-east", "ap-south"]
SEED_CPU, GETTER_CPU = "0", "1"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"}


def run(
    home: Path, *args: str, cpu: str | None = None
) -> subprocess.CompletedProcess[str]:
    pin = ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []
    cmd = [*pin, sys.executable, "-m", "p2pshare", "--home", str(home), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=1800, env=_env(), check=False
    )


def ok(home: Path, *args: str, cpu: str | None = None) -> str:
    res = run(home, *args, cpu=cpu)
    if res.returncode != 0:
        log = Path(tempfile.gettempdir()) / "bench-erasure-failed.log"
        log.write_text(res.stderr)
        raise SystemExit(
            f"p2pshare {' '.join(args[:2])} failed (whole stderr: {log}):"
            f" {res.stderr[-2000:]}"
        )
    return res.stdout


class Seed:
    def __init__(self, home: Path, region: str, boot: str | None) -> None:
        self.home, self.region = home, region
        extra = ["--bootstrap", boot] if boot else []
        pin = ["taskset", "-c", SEED_CPU] if shutil.which("taskset") else []
        self.proc = subprocess.Popen(
            [
                *pin, sys.executable, "-m", "p2pshare", "--home", str(home), "seed",
                "--listen", LOOPBACK, "--region", region, "--open", *extra,
            ],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(),
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.addr = self.proc.stdout.readline().strip()
        if not self.addr:
            raise SystemExit("a seed did not start")

    def peer(self) -> str:
        return self.addr.rsplit("/p2p/", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def stored(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "blocks").rglob("*") if p.is_file())


def timed_get(
    work: Path, name: str, link: str, src: Path, boot: str, as_name: str = ""
) -> float:
    home, out = work / f"get-{name}", work / f"out-{name}"
    t0 = time.perf_counter()
    ok(
        home, *os.environ.get("BENCH_DEBUG", "").split(), "get", link, "-o", str(out),
        "--listen", LOOPBACK,
        "--bootstrap", boot, "--timeout", "60", cpu=GETTER_CPU,
    )  # fmt: skip
    took = time.perf_counter() - t0
    if (out / (as_name or src.name)).read_bytes() != src.read_bytes():
        raise SystemExit(f"{name}: the download differs from the source")
    shutil.rmtree(home)
    shutil.rmtree(out)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="64M")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = int(float(args.size.rstrip("Mm")) * MiB)
    work = Path(tempfile.mkdtemp(prefix="bench-erasure-"))
    seeds: list[Seed] = []
    owner = work / "owner"
    try:
        src = work / "film.bin"
        with src.open("wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
        for i, region in enumerate(REGIONS):
            seeds.append(Seed(work / f"s{i}", region, seeds[0].addr if seeds else None))
        boot = seeds[0].addr
        ok(owner, "node", "--background", "--listen", LOOPBACK, "--bootstrap", boot)
        seed_args = [x for s in seeds for x in ("--seed", s.addr)]
        before = {s.home: stored(s.home) for s in seeds}
        t0 = time.perf_counter()
        coded = ok(owner, "add", "--erasure", "3/5", *seed_args, str(src)).strip()
        t_coded = time.perf_counter() - t0
        coded_bytes = sum(stored(s.home) - before[s.home] for s in seeds)
        report = json.loads(ok(owner, "check", coded, "--json"))
        cols = {p["seed"]: p["column"] for p in report["providers"] if p.get("replica")}
        regions: dict[str, int] = {}
        for p in report["providers"]:
            if p.get("replica"):
                regions[p["region"]] = regions.get(p["region"], 0) + 1
        before = {s.home: stored(s.home) for s in seeds}
        t0 = time.perf_counter()
        copy = work / "film-copy.bin"  # another source: the first share stays
        shutil.copyfile(src, copy)
        full = ok(owner, "add", "--replicas", "5", *seed_args, str(copy)).strip()
        t_full = time.perf_counter() - t0
        full_bytes = sum(stored(s.home) - before[s.home] for s in seeds)
        ok(owner, "stop")
        print(f"file: {size / MiB:.0f} MiB; seeds: 5 in {len(set(REGIONS))} regions")
        print(f"parts per region: {regions} (at most 2 = N-K)")
        print(
            f"storage, erasure 3/5: {coded_bytes / MiB:.1f} MiB = "
            f"{coded_bytes / size:.3f}x the file (target <= 1.75); placed in"
            f" {t_coded:.1f} s"
        )
        print(
            f"storage, 5 replicas:  {full_bytes / MiB:.1f} MiB = "
            f"{full_bytes / size:.3f}x the file; placed in {t_full:.1f} s"
        )
        e_times, r_times = [], []
        for n in range(args.repeat):
            e_times.append(timed_get(work, f"e{n}", coded, src, boot))
            r_times.append(timed_get(work, f"r{n}", full, src, boot, copy.name))
        e = size / statistics.median(e_times) / 1e6
        r = size / statistics.median(r_times) / 1e6
        print(
            f"get, owner offline (medians of {args.repeat}, getter and seeds"
            f" pinned apart): erasure {e:.1f} MB/s, replicas {r:.1f} MB/s,"
            f" ratio {e / r:.2f} (target >= 0.8)"
        )
        by_col = {c: next(s for s in seeds if s.peer() == p) for p, c in cols.items()}
        for col in (0, 1):
            by_col[col].stop()
        boot = by_col[3].addr
        t = timed_get(work, "two-lost", coded, src, boot)
        print(f"columns 0 and 1 killed: get byte-exact, {size / t / 1e6:.1f} MB/s")
        by_col[2].stop()
        res = run(
            work / "get-three", "get", coded, "-o", str(work / "out-three"),
            "--listen", LOOPBACK, "--bootstrap", boot, "--timeout", "20",
        )  # fmt: skip
        line = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""
        print(f"column 2 killed too: exit {res.returncode}: {line}")
        back = Seed(by_col[2].home, by_col[2].region, boot)
        new = [
            Seed(work / f"n{i}", r, boot) for i, r in enumerate(("eu-west", "ap-south"))
        ]
        seeds += [back, *new]
        ok(owner, "node", "--background", "--listen", LOOPBACK, "--bootstrap", boot)
        t0 = time.perf_counter()
        ok(owner, "repair", coded, *(x for s in new for x in ("--seed", s.addr)))
        t_repair = time.perf_counter() - t0
        check = run(owner, "check", coded)
        last = check.stdout.strip().splitlines()[-1]
        print(f"repair after restarting column 2: {t_repair:.1f} s; check: {last}")
        ok(owner, "stop")
        return 0
    finally:
        run(owner, "stop")
        for s in seeds:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
