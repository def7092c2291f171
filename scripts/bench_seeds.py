"""Benchmark seeds on loopback: time to N replicas, download from seeds only.

Real processes on 127.0.0.1, started and stopped by this script:

1. Two open seeds (regions a, b) and an owner's ``node --background``.
2. Baseline, same run: a fresh home ``get``s the file from the owner alone
   (one source). Its wall time is B.
3. ``add --replicas 2 --seed A --seed B`` through the owner's node: wall
   time R until both replicas are complete (each seed fetched the whole
   file from the owner, both at once). Printed as seconds and as R / B:
   about 1 means a replica costs what one download costs.
4. The owner stops; a fresh home ``get``s the link (its hints name the two
   seeds): wall time S and rate SIZE / S, and S / B (two sources vs one).

Every download is compared byte for byte with the source. Times are whole
CLI processes (start-up included), so B, R and S are comparable.

Usage: .venv/bin/python scripts/bench_seeds.py [--size 256M]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Benchmark nodes run on loopback: they must not announce themselves on the LAN.
os.environ.setdefault("P2PSHARE_MDNS", "0")

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
MiB = 1 << 20


def cli(home: Path, *args: str, timeout: float = 1800) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"}
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "p2pshare", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    took = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"p2pshare {' '.join(args[:2])} failed: {res.stderr[-2000:]}")
    return took, res.stdout


def seed(home: Path, region: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"}
    p = subprocess.Popen(
        [
            *(sys.executable, "-m", "p2pshare", "--home", str(home), "seed"),
            *("--listen", LOOPBACK, "--region", region, "--open"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert p.stdout is not None
    addr = p.stdout.readline().strip()
    if not addr:
        raise SystemExit("a seed did not start")
    return p, addr


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.upper().rstrip("B").rstrip("I")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="256M")
    args = ap.parse_args()
    size = parse_size(args.size)
    tmp = Path(tempfile.mkdtemp(prefix="p2ps-bench-seeds-"))
    procs: list[subprocess.Popen[str]] = []
    owner = tmp / "owner"
    try:
        src = tmp / "big.bin"
        with src.open("wb") as f:
            for _ in range(0, size, MiB):
                f.write(os.urandom(min(MiB, size)))
            f.truncate(size)
        sa, a = seed(tmp / "sa", "a")
        sb, b = seed(tmp / "sb", "b")
        procs += [sa, sb]
        cli(owner, "node", "--background", "--listen", LOOPBACK)
        _, out = cli(owner, "share", str(src))
        plain_link = out.strip()

        base, _ = cli(tmp / "g0", "get", plain_link, "-o", str(tmp / "o0"))
        assert (tmp / "o0" / src.name).read_bytes() == src.read_bytes()

        rep, out = cli(
            owner, "add", "--replicas", "2", "--seed", a, "--seed", b, str(src)
        )
        link = out.strip()
        cli(owner, "stop")

        seeds_only, _ = cli(
            tmp / "g1", "get", link, "-o", str(tmp / "o1"), "--listen", LOOPBACK
        )
        assert (tmp / "o1" / src.name).read_bytes() == src.read_bytes()

        print(f"file: {size / MiB:.0f} MiB, 2 seeds, loopback, 2 cores")
        print(
            f"baseline get from the owner alone: {base:6.2f} s "
            f"({size / MiB / base:6.1f} MiB/s)"
        )
        print(
            f"2 complete replicas (add --replicas 2): {rep:6.2f} s  "
            f"ratio to baseline {rep / base:.2f}"
        )
        print(
            f"get from the 2 seeds only (owner offline): {seeds_only:6.2f} s "
            f"({size / MiB / seeds_only:6.1f} MiB/s)  ratio to baseline "
            f"{seeds_only / base:.2f}"
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "p2pshare", "--home", str(owner), "stop"],
            capture_output=True,
            check=False,
        )
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
