"""Benchmark the p2pshare CLI against the raw cost of its crypto, and its peak RSS.

Run through the wrapper, ``scripts/bench [options]``, which sets up the venv.

1. Baseline: XChaCha20-Poly1305 seal + BLAKE2b-256 of every 1 MiB chunk of
   SIZE bytes, in-process, single thread, no I/O: the least work any
   ``add``/``get`` has to do. Best of 3.
2. ``p2pshare add PATH`` (reference mode), ``add --copy PATH`` and
   ``get --offline LINK -o DIR`` of a SIZE-byte random file, each as a real
   CLI subprocess with a fresh home, timed wall-clock around the whole
   process (interpreter start and imports included). Best of --repeat.
   ``p2pshare --version`` (best of 3) is timed too, as the start-up cost.
   Ratio = baseline / command, printed raw and with the start-up time taken
   off the command; the target is >= 0.85.
3. Peak RSS of ``add --copy`` and ``get --offline`` at each --rss-sizes size,
   read from that child's own rusage (``os.wait4``, from a minimal spawner
   process so this one's memory does not leak into the reading). Target:
   < 100 MiB and not growing with the file size.

Exits 0 whatever the verdicts, 1 if a command fails (its stderr is shown).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Benchmark nodes run on loopback: they must not announce themselves on the LAN.
os.environ.setdefault("P2PSHARE_MDNS", "0")

ROOT = Path(__file__).resolve().parent.parent

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
CHUNK = MiB  # p2pshare's default chunk size
PAD = 4096  # the last chunk is zero-padded to a multiple of this
RATIO_TARGET = 0.85
RSS_LIMIT_MIB = 100.0
RSS_GROWTH_TOLERANCE_MIB = 10.0  # smallest -> largest size still "not growing"
BASELINE_REPEAT = 3
STARTUP_REPEAT = 3
DISK_MARGIN = 64 * MiB
COMMAND_TIMEOUT = 3600.0  # seconds, per command
STDERR_SHOWN = 20_000  # characters of a failing command's stderr to print

# Same shape as the chunk AD in p2pshare/format/chunks.py (kept independent
# so the baseline runs even when the package does not import).
_AD = struct.Struct(">16sQQ")
_AD_TAG = b"p2pshare/chunk/1"

# Run by a fresh ``python -I -S``: spawn argv[2:], reap it with os.wait4 and
# write "<ru_maxrss> <exit code>" to argv[1]. See Runner.peak_rss.
_SPAWN_HELPER = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB}


class BenchError(Exception):
    """A command failed, or the benchmark cannot run here."""


# --- sizes ---------------------------------------------------------------


def parse_size(text: str) -> int:
    """``"256M"`` -> bytes. Binary units: K, M, G (KiB, MiB... also accepted)."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"bad size {text!r}: use a number with an optional K, M or G suffix"
        )
    size = int(match[1]) * _UNITS[match[2].lower()]
    if size <= 0:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: must be > 0")
    return size


def parse_sizes(text: str) -> list[int]:
    """``"256M,1G"`` -> sorted, de-duplicated byte counts."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("no sizes given")
    return sorted({parse_size(p) for p in parts})


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def fmt_size(n: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit:
            value = n / unit
            return f"{value:.0f} {name}" if n % unit == 0 else f"{value:.1f} {name}"
    return f"{n} B"


def mib(n: int) -> float:
    return n / MiB


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- baseline ------------------------------------------------------------


def baseline_once(size: int, key: bytes, buf: bytes) -> float:
    """Seconds to seal + hash ``size`` bytes as 1 MiB chunks, like ``add``
    (with the XChaCha20-Poly1305 the store uses: ``format/aead.py``)."""
    count = max(1, -(-size // CHUNK))
    tail = size - (count - 1) * CHUNK
    tail_buf = buf[: max(PAD, -(-tail // PAD) * PAD)]
    last = count - 1
    # imported here: the rest of the script runs without the package
    from p2pshare.format.aead import xchacha_seal as encrypt

    blake2b = hashlib.blake2b
    pack = _AD.pack
    start = time.perf_counter()
    for i in range(count):
        ciphertext = encrypt(
            key,
            i.to_bytes(24, "big"),
            pack(_AD_TAG, i, count),
            tail_buf if i == last else buf,
        )
        blake2b(ciphertext, digest_size=32).digest()
    return time.perf_counter() - start


def measure_baseline(size: int) -> list[float]:
    key = os.urandom(32)
    buf = os.urandom(CHUNK)
    runs = []
    for n in range(1, BASELINE_REPEAT + 1):
        runs.append(baseline_once(size, key, buf))
        progress(f"baseline run {n}/{BASELINE_REPEAT}: {runs[-1]:.3f} s")
    return runs


def disk_once(path: Path, size: int, buf: bytes) -> float:
    """Seconds to write ``size`` bytes in 1 MiB writes and fsync them: what
    ``get --offline`` pays the disk on top of the crypto (for information:
    the target ratios stay against the crypto-only baseline)."""
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        left = size
        while left > 0:
            left -= os.write(fd, buf[: min(left, len(buf))])
        os.fsync(fd)
    finally:
        os.close(fd)
    took = time.perf_counter() - start
    path.unlink()
    return took


# --- running the CLI -----------------------------------------------------


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def p2pshare(home: Path | None, *args: str) -> list[str]:
    cmd = [sys.executable, "-m", "p2pshare"]
    if home is not None:
        cmd += ["--home", str(home)]
    return [*cmd, *args]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class Runner:
    """Runs CLI commands with output captured to files under ``workdir``.

    Files rather than pipes: nothing has to drain them while the child runs,
    even when it is not this process's own child (``peak_rss``).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._out = workdir / "stdout.log"
        self._err = workdir / "stderr.log"
        self._rss = workdir / "rusage.txt"
        self._serial = 0

    def fresh_dir(self, prefix: str) -> Path:
        self._serial += 1
        path = self.workdir / f"{prefix}-{self._serial}"
        path.mkdir(mode=0o700)
        return path

    def timed(self, cmd: list[str]) -> tuple[float, str]:
        """(wall seconds, stdout) of ``cmd``; raise BenchError if it fails.

        What ``subprocess.run`` does, except for the timeout: given one,
        ``wait`` polls in steps of up to 50 ms, which would round every
        timing up to the next step. Here ``wait`` blocks and a timer kills.
        """
        with self._out.open("wb") as out, self._err.open("wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=ROOT
            )
            timer = threading.Timer(COMMAND_TIMEOUT, proc.kill)
            timer.start()
            try:
                proc.wait()
            finally:
                timer.cancel()
            elapsed = time.perf_counter() - start
        if elapsed >= COMMAND_TIMEOUT:
            raise self._failure(cmd, f"timed out after {COMMAND_TIMEOUT:g} s")
        if proc.returncode != 0:
            raise self._failure(cmd, describe_exit(proc.returncode))
        return elapsed, self._out.read_text(errors="replace")

    def peak_rss(self, cmd: list[str]) -> tuple[int, str]:
        """(peak RSS in bytes, stdout) of ``cmd``, from its own rusage.

        Linux starts a child's ru_maxrss at the high-water RSS of the process
        that spawned it (kept across vfork/posix_spawn + exec), so ``cmd`` is
        spawned and reaped with ``os.wait4`` by a minimal ``python -I -S``
        helper rather than by this process, whose peak is larger and not
        what is being measured. The helper writes the rusage to a file.
        """
        argv = [sys.executable, "-I", "-S", "-c", _SPAWN_HELPER, str(self._rss)]
        argv += cmd
        self._rss.unlink(missing_ok=True)
        with self._out.open("wb") as out, self._err.open("wb") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=ROOT,
                start_new_session=True,  # so a timeout can kill cmd as well
            )
            try:
                proc.wait(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise self._failure(
                    cmd, f"timed out after {COMMAND_TIMEOUT:g} s"
                ) from None
        try:
            maxrss, returncode = map(int, self._rss.read_text().split())
        except (OSError, ValueError):
            raise self._failure(
                cmd, f"could not be spawned ({describe_exit(proc.returncode)})"
            ) from None
        if returncode != 0:
            raise self._failure(cmd, describe_exit(returncode))
        return maxrss_bytes(maxrss), self._out.read_text(errors="replace")

    def _failure(self, cmd: list[str], what: str) -> BenchError:
        stderr = self._err.read_text(errors="replace").rstrip()
        if len(stderr) > STDERR_SHOWN:
            stderr = "[...]\n" + stderr[-STDERR_SHOWN:]
        stdout = self._out.read_text(errors="replace").rstrip()
        lines = [f"command failed ({what}):", f"  {shlex.join(cmd)}"]
        lines += ["--- stderr ---", stderr or "(empty)"]
        if stdout:
            lines += ["--- stdout ---", stdout[-STDERR_SHOWN:]]
        return BenchError("\n".join(lines))


def maxrss_bytes(ru_maxrss: int) -> int:
    # KiB on Linux (and the BSDs); bytes on macOS.
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * KiB


def one_link(stdout: str, cmd: list[str]) -> str:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if len(lines) != 1:
        raise BenchError(
            f"expected exactly one link line on stdout, got {len(lines)}:\n"
            f"  {shlex.join(cmd)}\n--- stdout ---\n{stdout.rstrip() or '(empty)'}"
        )
    return lines[0]


# --- files ---------------------------------------------------------------


def disk_problem(where: Path, size: int) -> str | None:
    """Why ``size`` bytes' worth of runs would not fit under ``where``, if so.

    At most three copies live at once: the source file, a copy-mode store and
    the ``get`` output.
    """
    need = 3 * size + DISK_MARGIN
    free = shutil.disk_usage(where).free
    if free >= need:
        return None
    return (
        f"not enough free disk space for a {fmt_size(size)} file in {where}: "
        f"need about {fmt_size(need)} (source + store copy + get output), "
        f"only {fmt_size(free)} free; pass --workdir on a bigger disk"
    )


def write_random_file(path: Path, size: int) -> bytes:
    """Write ``size`` random bytes to ``path``; return their BLAKE2b-256."""
    digest = hashlib.blake2b(digest_size=32)
    with path.open("wb") as f:
        left = size
        while left:
            piece = os.urandom(min(CHUNK, left))
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.digest()


def file_digest(path: Path) -> bytes:
    digest = hashlib.blake2b(digest_size=32)
    with path.open("rb") as f:
        while piece := f.read(CHUNK):
            digest.update(piece)
    return digest.digest()


def check_output(outdir: Path, src: Path, digest: bytes) -> None:
    """The ``get`` wrote ``outdir/<src name>`` with ``src``'s exact bytes."""
    got = outdir / src.name
    if not got.is_file():
        found = sorted(p.name for p in outdir.iterdir())
        raise BenchError(f"get wrote no {got} (found: {found or 'nothing'})")
    if got.stat().st_size != src.stat().st_size:
        raise BenchError(
            f"get output {got} has {got.stat().st_size} bytes, "
            f"expected {src.stat().st_size}"
        )
    if file_digest(got) != digest:
        raise BenchError(f"get output {got} differs from the source file")


# --- measurements --------------------------------------------------------


@dataclass
class Timing:
    name: str
    command: str
    runs: list[float]

    @property
    def best(self) -> float:
        return min(self.runs)


def time_add(run: Runner, src: Path, copy: bool, repeat: int) -> list[float]:
    args = ["add", "--copy", str(src)] if copy else ["add", str(src)]
    runs = []
    for n in range(1, repeat + 1):
        home = run.fresh_dir("home")
        cmd = p2pshare(home, *args)
        seconds, stdout = run.timed(cmd)
        one_link(stdout, cmd)
        shutil.rmtree(home)
        runs.append(seconds)
        progress(f"{' '.join(args[:-1])} run {n}/{repeat}: {seconds:.3f} s")
    return runs


def add_copy(run: Runner, home: Path, src: Path) -> str:
    cmd = p2pshare(home, "add", "--copy", str(src))
    _, stdout = run.timed(cmd)
    return one_link(stdout, cmd)


def time_get(run: Runner, src: Path, digest: bytes, repeat: int) -> list[float]:
    runs = []
    for n in range(1, repeat + 1):
        home = run.fresh_dir("home")
        link = add_copy(run, home, src)
        outdir = run.fresh_dir("out")
        seconds, _ = run.timed(
            p2pshare(home, "get", "--offline", link, "-o", str(outdir))
        )
        check_output(outdir, src, digest)
        shutil.rmtree(outdir)
        shutil.rmtree(home)
        runs.append(seconds)
        progress(f"get --offline run {n}/{repeat}: {seconds:.3f} s")
    return runs


def time_startup(run: Runner) -> list[float]:
    runs = []
    for n in range(1, STARTUP_REPEAT + 1):
        seconds, _ = run.timed(p2pshare(None, "--version"))
        runs.append(seconds)
        progress(f"--version run {n}/{STARTUP_REPEAT}: {seconds:.3f} s")
    return runs


@dataclass
class RssRow:
    size: int
    add_copy: int | None = None  # bytes; None: skipped
    get: int | None = None
    skipped: str | None = None


def measure_rss(run: Runner, size: int) -> RssRow:
    problem = disk_problem(run.workdir, size)
    if problem is not None:
        progress(f"SKIPPING peak RSS at {fmt_size(size)}: {problem}")
        return RssRow(size, skipped=problem)
    src = run.workdir / f"rss-{size}.bin"
    progress(f"writing {fmt_size(size)} of random data to {src}")
    digest = write_random_file(src, size)
    home = run.fresh_dir("home")
    cmd = p2pshare(home, "add", "--copy", str(src))
    add_rss, stdout = run.peak_rss(cmd)
    link = one_link(stdout, cmd)
    progress(f"add --copy {fmt_size(size)}: peak RSS {mib(add_rss):.1f} MiB")
    outdir = run.fresh_dir("out")
    get_rss, _ = run.peak_rss(
        p2pshare(home, "get", "--offline", link, "-o", str(outdir))
    )
    progress(f"get --offline {fmt_size(size)}: peak RSS {mib(get_rss):.1f} MiB")
    check_output(outdir, src, digest)
    shutil.rmtree(outdir)
    shutil.rmtree(home)
    src.unlink()
    return RssRow(size, add_copy=add_rss, get=get_rss)


# --- report --------------------------------------------------------------


def ratios(baseline: float, command: float, startup: float) -> tuple[float, float]:
    """(raw, start-up corrected) baseline/command ratios."""
    raw = baseline / command
    net = command - startup
    return raw, (baseline / net if net > 0 else float("inf"))


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:5.3f} {verdict(ratio >= RATIO_TARGET)}"


def print_timings(
    size: int,
    baseline: Timing,
    startup: Timing,
    commands: list[Timing],
    disk: Timing | None = None,
) -> None:
    print(f"\nThroughput, {fmt_size(size)} (best of each; times in seconds)")
    print(
        "  ratio = baseline / command   "
        "ratio-startup = baseline / (command - startup)   "
        f"target >= {RATIO_TARGET}"
    )
    print(
        "  (the baseline is one thread; the CLI may seal in a thread pool, so a "
        "ratio can exceed 1)"
    )
    head = f"{'measurement':<30} {'best s':>8} {'MiB/s':>8} {'ratio':>10} "
    head += f"{'ratio-startup':>14}  runs"
    print(head)
    print("-" * len(head))

    def runs(t: Timing) -> str:
        return " ".join(f"{r:.3f}" for r in t.runs)

    speed = mib(size) / baseline.best
    print(
        f"{'baseline (seal+hash 1 MiB)':<30} {baseline.best:8.3f} {speed:8.1f} "
        f"{'-':>10} {'-':>14}  {runs(baseline)}"
    )
    print(
        f"{'startup (--version)':<30} {startup.best:8.3f} {'-':>8} "
        f"{'-':>10} {'-':>14}  {runs(startup)}"
    )
    if disk is not None:
        print(
            f"{'disk (write+fsync, info)':<30} {disk.best:8.3f} "
            f"{mib(size) / disk.best:8.1f} {'-':>10} {'-':>14}  {runs(disk)}"
        )
    for t in commands:
        raw, net = ratios(baseline.best, t.best, startup.best)
        speed = mib(size) / t.best
        print(
            f"{t.name:<30} {t.best:8.3f} {speed:8.1f} {fmt_ratio(raw):>10} "
            f"{fmt_ratio(net):>14}  {runs(t)}"
        )


def rss_growth(rows: list[RssRow], pick: str) -> float | None:
    """MiB more at the largest measured size than at the smallest."""
    values = [getattr(r, pick) for r in rows if getattr(r, pick) is not None]
    if len(values) < 2:
        return None
    return mib(values[-1] - values[0])


def fmt_rss(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{mib(value):7.1f} {verdict(mib(value) < RSS_LIMIT_MIB)}"


def fmt_growth(growth: float | None) -> str:
    if growth is None:
        return "n/a"
    return f"{growth:+7.1f} {verdict(growth <= RSS_GROWTH_TOLERANCE_MIB)}"


def print_rss(rows: list[RssRow], version_rss: int, floor: int) -> None:
    print(
        f"\nPeak RSS in MiB (each child's own ru_maxrss via os.wait4; "
        f"target < {RSS_LIMIT_MIB:.0f} MiB)"
    )
    head = f"{'file size':<12} {'add --copy':>14} {'get --offline':>14}"
    print(head)
    print("-" * len(head))
    print(
        f"{'(--version)':<12} {mib(version_rss):9.1f}       (start-up + imports only)"
    )
    for row in rows:
        if row.skipped:
            print(f"{fmt_size(row.size):<12} SKIPPED: {row.skipped}")
        else:
            add, get = fmt_rss(row.add_copy), fmt_rss(row.get)
            print(f"{fmt_size(row.size):<12} {add:>14} {get:>14}")
    print(
        f"{'growth':<12} {fmt_growth(rss_growth(rows, 'add_copy')):>14} "
        f"{fmt_growth(rss_growth(rows, 'get')):>14}"
        f"   (largest minus smallest size; "
        f"tolerance {RSS_GROWTH_TOLERANCE_MIB:.0f} MiB)"
    )
    print(
        f"  floor: readings include the spawning helper's own {mib(floor):.1f} MiB "
        f"(Linux carries it into the child), so none can be lower than that."
    )


def print_summary(
    baseline: Timing,
    startup: Timing,
    commands: list[Timing],
    rows: list[RssRow] | None,
) -> None:
    print(
        f"\nSummary (targets: ratio >= {RATIO_TARGET}; peak RSS < "
        f"{RSS_LIMIT_MIB:.0f} MiB and not growing with file size)"
    )
    for t in commands:
        raw, net = ratios(baseline.best, t.best, startup.best)
        print(
            f"  {t.name:<16} ratio {raw:.3f} {verdict(raw >= RATIO_TARGET)} (raw), "
            f"{net:.3f} {verdict(net >= RATIO_TARGET)} (start-up "
            f"{startup.best:.3f} s taken off)"
        )
    if rows is None:
        print("  peak RSS         skipped (--skip-rss)")
        return
    for pick, name in (("add_copy", "add --copy"), ("get", "get --offline")):
        values = [getattr(r, pick) for r in rows if getattr(r, pick) is not None]
        if not values:
            print(f"  {name:<16} peak RSS not measured")
            continue
        peak = mib(max(values))
        growth = rss_growth(rows, pick)
        line = (
            f"  {name:<16} peak RSS max {peak:.1f} MiB {verdict(peak < RSS_LIMIT_MIB)}"
        )
        line += f", growth {fmt_growth(growth).strip()}"
        print(line)
    for row in rows:
        if row.skipped:
            print(f"  SKIPPED {fmt_size(row.size)}: {row.skipped}")


def as_json(
    size: int,
    repeat: int,
    baseline: Timing,
    startup: Timing,
    commands: list[Timing],
    rows: list[RssRow] | None,
    version_rss: int | None,
    floor: int,
) -> dict[str, Any]:
    timings: dict[str, Any] = {}
    for t in commands:
        raw, net = ratios(baseline.best, t.best, startup.best)
        timings[t.name] = {
            "command": t.command,
            "best_s": t.best,
            "runs_s": t.runs,
            "mib_per_s": mib(size) / t.best,
            "ratio": raw,
            "ratio_pass": raw >= RATIO_TARGET,
            "ratio_startup_corrected": net if net != float("inf") else None,
            "ratio_startup_corrected_pass": net >= RATIO_TARGET,
        }
    rss: dict[str, Any] | None = None
    if rows is not None:
        rss = {
            "limit_mib": RSS_LIMIT_MIB,
            "growth_tolerance_mib": RSS_GROWTH_TOLERANCE_MIB,
            "version_mib": mib(version_rss) if version_rss is not None else None,
            "floor_mib": mib(floor),
            "sizes": [
                {
                    "size": r.size,
                    "add_copy_mib": mib(r.add_copy) if r.add_copy is not None else None,
                    "get_mib": mib(r.get) if r.get is not None else None,
                    "skipped": r.skipped,
                }
                for r in rows
            ],
            "growth_mib": {
                "add_copy": rss_growth(rows, "add_copy"),
                "get": rss_growth(rows, "get"),
            },
        }
    return {
        "size": size,
        "repeat": repeat,
        "chunk_size": CHUNK,
        "ratio_target": RATIO_TARGET,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "baseline": {
            "best_s": baseline.best,
            "runs_s": baseline.runs,
            "mib_per_s": mib(size) / baseline.best,
        },
        "startup": {"best_s": startup.best, "runs_s": startup.runs},
        "timings": timings,
        "rss": rss,
    }


# --- main ----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=(
            "Time p2pshare add / add --copy / get --offline against a raw "
            "XChaCha20-Poly1305 + BLAKE2b baseline, and measure peak RSS."
        ),
        epilog=f"Sizes take K, M or G (binary) suffixes. Ratio target {RATIO_TARGET}.",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("256M"),
        help="file size for the timings (default 256M)",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=3,
        help="runs per CLI timing, best one kept (default 3)",
    )
    parser.add_argument(
        "--rss-sizes",
        type=parse_sizes,
        default=parse_sizes("256M,1G"),
        metavar="SIZES",
        help="comma-separated file sizes for peak RSS (default 256M,1G)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to put the temporary directory (default: system temp, /tmp)",
    )
    parser.add_argument(
        "--skip-rss", action="store_true", help="skip the peak RSS measurements"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print the results as one JSON object on the last line",
    )
    return parser.parse_args(argv)


def run_bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    size: int = args.size
    run = Runner(workdir)
    print(
        f"p2pshare bench: {fmt_size(size)} file, best of {args.repeat}, "
        f"Python {platform.python_version()} ({sys.executable}), "
        f"{os.cpu_count()} CPUs, workdir {workdir}",
        flush=True,
    )

    progress(f"baseline: seal + hash {fmt_size(size)} in 1 MiB chunks")
    baseline = Timing("baseline", "in-process", measure_baseline(size))
    startup = Timing(
        "startup", shlex.join(p2pshare(None, "--version")), time_startup(run)
    )

    problem = disk_problem(workdir, size)
    if problem is not None:
        raise BenchError(problem)
    src = workdir / f"bench-{size}.bin"
    progress(f"writing {fmt_size(size)} of random data to {src}")
    digest = write_random_file(src, size)
    progress(f"disk: write + fsync {fmt_size(size)} in {workdir}")
    buf = os.urandom(CHUNK)
    disk = Timing(
        "disk",
        "in-process",
        [disk_once(workdir / "disk-probe.bin", size, buf) for _ in range(args.repeat)],
    )
    commands = [
        Timing(
            "add (reference)",
            shlex.join(p2pshare(Path("HOME"), "add", "PATH")),
            time_add(run, src, copy=False, repeat=args.repeat),
        ),
        Timing(
            "add --copy",
            shlex.join(p2pshare(Path("HOME"), "add", "--copy", "PATH")),
            time_add(run, src, copy=True, repeat=args.repeat),
        ),
        Timing(
            "get --offline",
            shlex.join(p2pshare(Path("HOME"), "get", "--offline", "LINK", "-o", "DIR")),
            time_get(run, src, digest, args.repeat),
        ),
    ]
    src.unlink()

    rows: list[RssRow] | None = None
    version_rss: int | None = None
    floor = 0
    if not args.skip_rss:
        # What the helper itself leaves in any reading: no value can be lower.
        floor, _ = run.peak_rss([shutil.which("true") or "/bin/true"])
        version_rss, _ = run.peak_rss(p2pshare(None, "--version"))
        rows = [measure_rss(run, s) for s in args.rss_sizes]

    print_timings(size, baseline, startup, commands, disk)
    if rows is not None and version_rss is not None:
        print_rss(rows, version_rss, floor)
    print_summary(baseline, startup, commands, rows)
    return as_json(
        size, args.repeat, baseline, startup, commands, rows, version_rss, floor
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base: Path | None = args.workdir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="p2pshare-bench-", dir=base))
    try:
        result = run_bench(args, workdir)
    except BenchError as e:
        print(f"\nbench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
