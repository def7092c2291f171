"""Benchmark p2pshare over real sockets: throughput, DHT lookups, peak RSS.

Every measurement runs real processes on loopback (127.0.0.1 only), started
and stopped by this script (SIGINT, then SIGKILL after a grace period; also
on failure or Ctrl-C). Targets are checked and printed as PASS/FAIL.

(a) Single source. One ``share`` (no rate limit) serves a SIZE random file
    and a 1-byte file; ``get`` (a fresh process and home each time, with the
    sharer's peer hint) downloads each. The baseline is a raw py-libp2p
    stream of SIZE bytes between two processes built with the same
    ``open_host`` (``scripts/bench_raw_stream.py``: 1 MiB writes, 64 KiB
    reads, timed from stream open to the last byte). Ratio = raw seconds /
    get seconds, with the get timed around the whole process, and again
    with the time of the 1-byte get (interpreter, imports, host start-up,
    dial, DHT announce, shutdown) subtracted: the transfer part. Target
    >= 0.9. One warm-up 1-byte get runs first, then 1-byte and big gets
    alternate (see ``paired_gets``: the first get of a session is faster).
(b) Four providers. ``add --copy`` once, the home copied to 4 homes (each
    with its own identity), a ``node --max-upload-rate R`` on each; one
    ``get`` whose link names all 4. Achieved rate (SIZE_B over the transfer
    part, as in (a)) against 4*R. Target >= 0.9. The upload limiter is a
    token bucket that starts empty, so no provider sends faster than R.
(c) DHT. 30 nodes in 3 worker processes x 10 (``bench_net.py _dht-worker``),
    all DHT servers; node 0 of process 0 is the bootstrap of every other
    node. After a routing-table refresh, one node provides a random root id
    and every other node runs ``find_providers(count=1)`` (10 s timeout),
    in turn within each process, processes in parallel. Targets: 100 %
    success, p50 < 1 s (failed lookups count with their elapsed time).
(d) Peak RSS of ``get`` of a 1 GiB file from one ``share``: the child's own
    ru_maxrss from ``os.wait4`` in a minimal spawning helper (the technique
    of scripts/bench.py). Target < 150 MiB.
(e) ``first_chunk_s`` of ``get --stats-json`` with a peer hint (from (a)'s
    gets, else from its own small share). Target < 1 s.

Every download is checked byte for byte against its source. Exits 0 whatever
the verdicts; 1 if a step could not run (its error is shown, the other steps
still run); 130 if interrupted.

Usage: .venv/bin/python scripts/bench_net.py [--size 256M] [--only a,b,c,d,e]
[--json]; see --help.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import queue
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

# scripts/bench.py, the offline benchmark: this script's directory is on
# sys.path when it is run as a script.
from bench import (
    DISK_MARGIN,
    BenchError,
    KiB,
    MiB,
    check_output,
    describe_exit,
    fmt_size,
    maxrss_bytes,
    mib,
    p2pshare,
    parse_size,
    positive_int,
    verdict,
    write_random_file,
)

# Benchmark nodes run on loopback: they must not announce themselves on the LAN.
os.environ.setdefault("P2PSHARE_MDNS", "0")

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()
RAW_STREAM = THIS.parent / "bench_raw_stream.py"
PY = sys.executable

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
STEPS = "abcde"

RATIO_TARGET = 0.9
RSS_LIMIT_MIB = 150.0
FIRST_CHUNK_TARGET_S = 1.0
DHT_P50_TARGET_S = 1.0
DHT_PROCS = 3
DHT_NODES_PER_PROC = 10
DHT_LOOKUP_TIMEOUT_S = 10.0
DHT_REFRESH_TIMEOUT_S = 15.0
DHT_PROVIDE_TIMEOUT_S = 30.0
DHT_PROVIDER = (1, 0)  # (process, node): not in the bootstrap's process

E_FALLBACK_SIZE = 4 * MiB  # (e) without (a): a file of this size
GET_TIMEOUT_S = 60  # ``get --timeout``: waiting for a first provider
READY_TIMEOUT_S = 600.0  # a sharer hashes its file before printing the link
COMMAND_TIMEOUT_S = 1800.0  # any foreground command
STOP_GRACE_S = 20.0  # SIGINT -> SIGKILL (a host's shutdown is bounded to 15 s)
STDERR_SHOWN = 6000  # characters of a failing process's stderr to print

# Run by a fresh ``python -I -S``: spawn argv[2:], reap it with os.wait4 and
# write "<ru_maxrss> <exit code> <wall seconds>" to argv[1]. As in
# scripts/bench.py (which explains why: Linux starts a child's ru_maxrss at
# its spawner's peak), plus the wall time.
_SPAWN_HELPER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {wall}")
"""


def progress(message: str) -> None:
    print(f"[bench_net] {message}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"}


def tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").rstrip()
    except OSError:
        return "(unreadable)"
    if len(text) > STDERR_SHOWN:
        text = "[...]\n" + text[-STDERR_SHOWN:]
    return text or "(empty)"


def failure(cmd: list[str], what: str, err: Path, out: str = "") -> BenchError:
    lines = [f"command failed ({what}):", f"  {shlex.join(cmd)}"]
    lines += ["--- stderr ---", tail(err)]
    if out.strip():
        lines += ["--- stdout ---", out.rstrip()[-STDERR_SHOWN:]]
    return BenchError("\n".join(lines))


# --- work directory --------------------------------------------------------


class Work:
    """The temporary directory of a run: inputs, homes, outputs, logs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir()
        self._serial = 0

    def fresh(self, prefix: str) -> Path:
        self._serial += 1
        path = self.root / f"{prefix}-{self._serial}"
        path.mkdir(mode=0o700)
        return path

    def log(self, name: str) -> Path:
        self._serial += 1
        return self.logs / f"{self._serial:03d}-{name}"

    def check_disk(self, need: int, what: str) -> None:
        free = shutil.disk_usage(self.root).free
        if free < need:
            raise BenchError(
                f"{what}: not enough free disk space in {self.root}: need about "
                f"{fmt_size(need)}, only {fmt_size(free)} free; "
                "pass --workdir on a bigger disk"
            )


# --- processes ------------------------------------------------------------


class Proc:
    """A background process whose stdout is read line by line.

    stderr goes to a log file (nothing has to drain it). Readiness always
    comes from the process's own output, never from a sleep.
    """

    def __init__(
        self, name: str, cmd: list[str], err_path: Path, *, stdin: bool
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.err_path = err_path
        with err_path.open("wb") as err:
            self.popen = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=ROOT,
                env=child_env(),
            )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def read_line(self, timeout: float, what: str) -> str:
        """The next stdout line; BenchError if the process ends or is slow."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise failure(
                self.cmd, f"no {what} on stdout within {timeout:g} s", self.err_path
            ) from None
        if line is None:
            self._lines.put(None)  # stay at end of file
            self.popen.wait()
            raise failure(
                self.cmd,
                f"{describe_exit(self.popen.returncode)} before printing {what}",
                self.err_path,
            )
        return line

    def read_json(self, timeout: float, what: str) -> dict[str, Any]:
        line = self.read_line(timeout, what)
        try:
            value = json.loads(line)
        except ValueError:
            raise failure(self.cmd, f"not JSON: {line!r}", self.err_path) from None
        if not isinstance(value, dict):
            raise failure(self.cmd, f"not a JSON object: {line!r}", self.err_path)
        if "error" in value:
            raise failure(self.cmd, f"reported: {value['error']}", self.err_path)
        return value

    def send(self, message: dict[str, Any]) -> None:
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(json.dumps(message) + "\n")
            self.popen.stdin.flush()
        except OSError as exc:
            raise failure(
                self.cmd, f"cannot write to it: {exc}", self.err_path
            ) from None

    def vm_hwm(self) -> int | None:
        """Peak RSS of the running process (Linux ``VmHWM``), in bytes."""
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{self.popen.pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * KiB
        return None

    def interrupt(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGINT)

    def reap(self, deadline: float) -> int:
        """Wait until ``deadline`` (monotonic), then SIGKILL; exit code."""
        try:
            self.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            progress(f"{self.name} ignored SIGINT for {STOP_GRACE_S:g} s: killing it")
            self.popen.kill()
            self.popen.wait()
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return self.popen.returncode


class Procs:
    """Background processes of one step; all stopped when the block exits."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.running: list[Proc] = []

    def start(self, name: str, cmd: list[str], *, stdin: bool = False) -> Proc:
        proc = Proc(name, cmd, self.work.log(f"{name}.stderr"), stdin=stdin)
        self.running.append(proc)
        return proc

    def stop_all(self) -> None:
        """SIGINT to every process at once, then SIGKILL the laggards."""
        for proc in self.running:
            proc.interrupt()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.running:
            proc.reap(deadline)
        self.running.clear()

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def run_timed(work: Work, name: str, cmd: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a foreground command; BenchError if it fails.

    ``wait`` blocks and a timer kills: ``wait(timeout)`` would poll in up
    to 50 ms steps and round every timing up (as in scripts/bench.py).
    """
    out_path, err_path = work.log(f"{name}.stdout"), work.log(f"{name}.stderr")
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=ROOT,
            env=child_env(),
        )
        timer = threading.Timer(COMMAND_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - start
    stdout = out_path.read_text(errors="replace")
    if elapsed >= COMMAND_TIMEOUT_S:
        raise failure(cmd, f"timed out after {COMMAND_TIMEOUT_S:g} s", err_path)
    if proc.returncode != 0:
        raise failure(cmd, describe_exit(proc.returncode), err_path, stdout)
    return elapsed, stdout


def run_peak_rss(work: Work, name: str, cmd: list[str]) -> tuple[int, float]:
    """(peak RSS bytes, wall seconds) of ``cmd``, from its own rusage."""
    rusage = work.log(f"{name}.rusage")
    err_path = work.log(f"{name}.stderr")
    argv = [PY, "-I", "-S", "-c", _SPAWN_HELPER, str(rusage), *cmd]
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
            env=child_env(),
            start_new_session=True,  # so a timeout or Ctrl-C kills cmd too
        )
        try:
            proc.wait(timeout=COMMAND_TIMEOUT_S)
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise failure(
                    cmd, f"timed out after {COMMAND_TIMEOUT_S:g} s", err_path
                ) from None
            raise
    try:
        maxrss, code, wall = rusage.read_text().split()
        returncode = int(code)
    except (OSError, ValueError):
        raise failure(
            cmd, f"could not be spawned ({describe_exit(proc.returncode)})", err_path
        ) from None
    if returncode != 0:
        raise failure(cmd, describe_exit(returncode), err_path)
    return maxrss_bytes(int(maxrss)), float(wall)


# --- p2pshare commands ----------------------------------------------------


@dataclass
class Source:
    """A random input file and its BLAKE2b-256."""

    path: Path
    size: int
    digest: bytes

    @classmethod
    def create(cls, path: Path, size: int) -> Source:
        progress(f"writing {fmt_size(size)} of random data to {path.name}")
        return cls(path, size, write_random_file(path, size))


@dataclass
class GetRun:
    seconds: float
    stats: dict[str, Any]

    @property
    def first_chunk_s(self) -> float | None:
        value = self.stats.get("first_chunk_s")
        return float(value) if isinstance(value, int | float) else None


def get_cmd(home: Path, link: str, out: Path, stats: Path | None) -> list[str]:
    args = ["get", link, "-o", str(out), "--listen", LOOPBACK]
    args += ["--timeout", str(GET_TIMEOUT_S)]
    if stats is not None:
        args += ["--stats-json", str(stats)]
    return p2pshare(home, *args)


def timed_get(work: Work, name: str, link: str, src: Source) -> GetRun:
    """One ``get`` in a fresh process, home and output dir; output checked."""
    home, out = work.fresh("get-home"), work.fresh("get-out")
    stats_path = home.parent / f"{home.name}.stats.json"
    seconds, _ = run_timed(work, name, get_cmd(home, link, out, stats_path))
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{name}: no usable --stats-json output: {exc}") from None
    check_output(out, src.path, src.digest)
    shutil.rmtree(home)
    shutil.rmtree(out)
    stats_path.unlink()
    return GetRun(seconds, stats)


def logged_get(work: Work, name: str, link: str, src: Source) -> GetRun:
    run = timed_get(work, name, link, src)
    first = run.first_chunk_s
    shown = "none" if first is None else f"{first:.3f} s"
    progress(f"{name}: {run.seconds:.3f} s (first chunk {shown})")
    return run


@dataclass
class Gets:
    warmup: GetRun
    tiny: list[GetRun]
    big: list[GetRun]


def paired_gets(
    work: Work,
    prefix: str,
    tiny: tuple[str, Source],
    big: tuple[str, Source],
    count: int,
) -> Gets:
    """A warm-up 1-byte get, then ``count`` x (1-byte get, big get).

    Why: every get leaves its client-mode peer in its providers' DHT tables;
    after it exits, the next get's DHT announce dials it in vain (and the
    download waits for that announce after its first chunk), so the first get
    of a session is faster than all later ones. The warm-up (reported, not
    used) puts every timed get in that steady state; alternating keeps the
    1-byte gets, whose time is taken off, in the same conditions as the big.
    """
    warmup = logged_get(work, f"{prefix}-1B-warmup", *tiny)
    tiny_runs, big_runs = [], []
    for n in range(1, count + 1):
        tiny_runs.append(logged_get(work, f"{prefix}-1B-{n}", *tiny))
        big_runs.append(logged_get(work, f"{prefix}-big-{n}", *big))
    return Gets(warmup, tiny_runs, big_runs)


def start_share(
    procs: Procs, work: Work, name: str, sources: list[Source], copy: bool
) -> tuple[Proc, list[str]]:
    """A ``share`` of ``sources`` (no rate limit); its links, in order."""
    cmd = p2pshare(work.fresh("share-home"), "share", "--listen", LOOPBACK)
    if copy:
        cmd.append("--copy")
    cmd += [str(s.path) for s in sources]
    sharer = procs.start(name, cmd)
    links = [sharer.read_line(READY_TIMEOUT_S, "a link") for _ in sources]
    from p2pshare.format import parse_link

    for link in links:
        if not parse_link(link).peers:
            raise BenchError(f"{name}: link without a peer hint: {link}")
    return sharer, links


# --- results --------------------------------------------------------------


@dataclass
class Check:
    """One summary line: a figure, its target and the verdict."""

    step: str
    label: str
    value: str
    target: str
    ok: bool | None  # None: could not be evaluated (n/a)


@dataclass
class Results:
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    first_chunks_from_a: list[float] = field(default_factory=list)


def ratio_check(step: str, label: str, ratio: float | None) -> Check:
    if ratio is None:
        return Check(step, label, "n/a", f">= {RATIO_TARGET}", None)
    return Check(
        step, label, f"{ratio:.3f}", f">= {RATIO_TARGET}", ratio >= RATIO_TARGET
    )


def best(runs: list[GetRun]) -> float:
    return min(r.seconds for r in runs)


def fmt_runs(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``values`` non-empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def print_table(title: str, notes: list[str], rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}")
    for note in notes:
        print(f"  {note}")
    head = f"{'measurement':<38} {'best s':>8} {'MiB/s':>8}  runs"
    print(head)
    print("-" * len(head))
    for name, seconds, speed, runs in rows:
        print(f"{name:<38} {seconds:>8} {speed:>8}  {runs}")


def speed(size: int, seconds: float) -> str:
    return f"{mib(size) / seconds:.1f}" if seconds > 0 else "inf"


# --- (a) single source vs raw stream -----------------------------------------


def step_a(work: Work, args: argparse.Namespace, results: Results) -> None:
    size: int = args.size
    work.check_disk((3 if args.copy else 2) * size + DISK_MARGIN, "(a)")
    big = Source.create(work.root / "a-big.bin", size)
    tiny = Source.create(work.root / "a-tiny.bin", 1)

    progress(f"(a) raw libp2p stream, {fmt_size(size)} x {args.repeat}")
    with Procs(work) as procs:
        server_cmd = [PY, str(RAW_STREAM), "server", "--home", str(work.fresh("raw"))]
        server = procs.start("a-raw-server", [*server_cmd, "--size", str(size)])
        addr = server.read_line(READY_TIMEOUT_S, "its address")
        client_cmd = [PY, str(RAW_STREAM), "client", "--home", str(work.fresh("raw"))]
        client_cmd += ["--connect", addr, "--repeat", str(args.repeat)]
        _, out = run_timed(work, "a-raw-client", client_cmd)
    try:
        raw = json.loads(out.strip().splitlines()[-1])
        raw_runs = [float(s) for s in raw["runs_s"]]
        raw_bytes = [int(b) for b in raw["bytes"]]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BenchError(f"bench_raw_stream client: bad output {out!r}") from None
    if any(b != size for b in raw_bytes) or not raw_runs:
        raise BenchError(f"raw stream delivered {raw_bytes} bytes, expected {size}")
    progress(f"(a) raw stream runs: {fmt_runs(raw_runs)} s")

    progress(f"(a) share + get, {fmt_size(size)} x {args.repeat}")
    with Procs(work) as procs:
        _, (big_link, tiny_link) = start_share(
            procs, work, "a-share", [big, tiny], args.copy
        )
        gets = paired_gets(
            work, "a-get", (tiny_link, tiny), (big_link, big), args.repeat
        )
    big.path.unlink()
    tiny.path.unlink()

    tiny_runs, big_runs = gets.tiny, gets.big
    raw_s, get_s, tiny_s = min(raw_runs), best(big_runs), best(tiny_runs)
    transfer_s = get_s - tiny_s
    whole = raw_s / get_s
    transfer = raw_s / transfer_s if transfer_s > 0 else None
    results.first_chunks_from_a = [
        r.first_chunk_s for r in big_runs if r.first_chunk_s is not None
    ]
    if len(results.first_chunks_from_a) != len(big_runs):
        results.first_chunks_from_a = []  # (e) then reports it missing

    print_table(
        f"(a) single source: get vs raw libp2p stream, {fmt_size(size)} "
        f"(best of each; seconds)",
        [
            f"sharer: `share` {'--copy' if args.copy else '(reference mode)'}, "
            "no rate limit; get: new process + home each run, peer hint in link",
            "transfer part = get - (get of a 1-byte file from the same sharer: "
            "interpreter, imports, host start, dial, DHT announce, shutdown)",
            "order: one warm-up 1-byte get, then 1-byte and big gets alternate "
            "(the first get of a session is faster: see paired_gets)",
            f"ratio = raw / get, target >= {RATIO_TARGET}",
        ],
        [
            (
                "raw stream (bench_raw_stream.py)",
                f"{raw_s:.3f}",
                speed(size, raw_s),
                fmt_runs(raw_runs),
            ),
            (
                "get 1 B, warm-up (not used)",
                f"{gets.warmup.seconds:.3f}",
                "-",
                "-",
            ),
            (
                "get 1 B (fixed cost)",
                f"{tiny_s:.3f}",
                "-",
                fmt_runs([r.seconds for r in tiny_runs]),
            ),
            (
                f"get {fmt_size(size)}, whole process",
                f"{get_s:.3f}",
                speed(size, get_s),
                fmt_runs([r.seconds for r in big_runs]),
            ),
            (
                f"get {fmt_size(size)}, transfer part",
                f"{transfer_s:.3f}",
                speed(size, transfer_s),
                "-",
            ),
        ],
    )
    print(
        f"  ratio raw/get (whole process): {whole:.3f} {verdict(whole >= RATIO_TARGET)}"
    )
    if transfer is not None:
        print(
            f"  ratio raw/get (transfer part): {transfer:.3f} "
            f"{verdict(transfer >= RATIO_TARGET)}"
        )
    results.checks += [
        ratio_check("a", "raw/get ratio, whole get process", whole),
        ratio_check("a", "raw/get ratio, transfer part", transfer),
    ]
    results.steps["a"] = {
        "size": size,
        "share_copy": args.copy,
        "raw_runs_s": raw_runs,
        "raw_connect_s": raw.get("connect_s"),
        "get_1b_warmup_s": gets.warmup.seconds,
        "get_1b_runs_s": [r.seconds for r in tiny_runs],
        "get_runs_s": [r.seconds for r in big_runs],
        "get_stats": [r.stats for r in big_runs],
        "raw_s": raw_s,
        "get_s": get_s,
        "get_1b_s": tiny_s,
        "transfer_s": transfer_s,
        "raw_mib_per_s": mib(size) / raw_s,
        "get_transfer_mib_per_s": mib(size) / transfer_s if transfer_s > 0 else None,
        "ratio_whole": whole,
        "ratio_transfer": transfer,
        "target": RATIO_TARGET,
    }


# --- (b) four rate-limited providers -----------------------------------------


def step_b(work: Work, args: argparse.Namespace, results: Results) -> None:
    size: int = args.size_b
    rate: int = args.rate
    providers = 4
    # source + store copy + 4 home copies + get output
    work.check_disk((providers + 3) * size + DISK_MARGIN, "(b)")
    big = Source.create(work.root / "b-big.bin", size)
    tiny = Source.create(work.root / "b-tiny.bin", 1)
    seed = work.fresh("b-seed")
    cmd = p2pshare(seed, "add", "--copy", str(big.path), str(tiny.path))
    _, out = run_timed(work, "b-add", cmd)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if len(lines) != 2:
        raise BenchError(f"(b) add printed {len(lines)} lines, expected 2:\n{out}")
    homes = []
    for n in range(providers):
        home = work.root / f"b-node-{n}"
        shutil.copytree(seed, home)
        (home / "identity.key").unlink(missing_ok=True)  # a peer id of its own
        homes.append(home)
    shutil.rmtree(seed)

    from p2pshare.format import ShareLink, parse_link

    progress(f"(b) {providers} nodes at {fmt_size(rate)}/s each, {fmt_size(size)}")
    with Procs(work) as procs:
        nodes = []
        for n, home in enumerate(homes):
            node_cmd = p2pshare(home, "node", "--listen", LOOPBACK)
            node_cmd += ["--max-upload-rate", str(rate)]
            nodes.append(procs.start(f"b-node-{n}", node_cmd))
        addrs = [node.read_line(READY_TIMEOUT_S, "its address") for node in nodes]
        links = []
        for text in lines:
            parsed = parse_link(text)
            peers = tuple(addrs)
            links.append(str(ShareLink(parsed.root_id, parsed.key, peers)))
        gets = paired_gets(
            work, "b-get", (links[1], tiny), (links[0], big), args.repeat
        )
    big.path.unlink()
    tiny.path.unlink()
    for home in homes:
        shutil.rmtree(home)

    tiny_runs, big_runs = gets.tiny, gets.big
    get_s, tiny_s = best(big_runs), best(tiny_runs)
    transfer_s = get_s - tiny_s
    target_rate = providers * rate
    achieved = size / transfer_s if transfer_s > 0 else math.inf
    ratio = achieved / target_rate
    ratio_whole = (size / get_s) / target_rate

    print_table(
        f"(b) {providers} providers x --max-upload-rate {fmt_size(rate)}/s, "
        f"{fmt_size(size)} (best of each; seconds)",
        [
            f"one get, all {providers} node addresses in the link; "
            "transfer part and order as in (a)",
            f"target rate 4 x R = {mib(target_rate):.1f} MiB/s; "
            f"ratio = achieved / (4 x R), target >= {RATIO_TARGET}",
            "each limiter's bucket starts empty (no free burst): a perfect get"
            f" takes {size / target_rate:.3f} s",
        ],
        [
            (
                "get 1 B, warm-up (not used)",
                f"{gets.warmup.seconds:.3f}",
                "-",
                "-",
            ),
            (
                "get 1 B (fixed cost)",
                f"{tiny_s:.3f}",
                "-",
                fmt_runs([r.seconds for r in tiny_runs]),
            ),
            (
                f"get {fmt_size(size)}, whole process",
                f"{get_s:.3f}",
                speed(size, get_s),
                fmt_runs([r.seconds for r in big_runs]),
            ),
            (
                f"get {fmt_size(size)}, transfer part",
                f"{transfer_s:.3f}",
                speed(size, transfer_s),
                "-",
            ),
        ],
    )
    print(
        f"  achieved/(4R), transfer part: {ratio:.3f} {verdict(ratio >= RATIO_TARGET)}"
        f"   whole process: {ratio_whole:.3f} "
        f"{verdict(ratio_whole >= RATIO_TARGET)}"
    )
    results.checks += [
        ratio_check("b", "achieved/(4R), transfer part", ratio),
        ratio_check("b", "achieved/(4R), whole get process", ratio_whole),
    ]
    results.steps["b"] = {
        "size": size,
        "providers": providers,
        "rate_bytes_per_s": rate,
        "get_1b_warmup_s": gets.warmup.seconds,
        "get_1b_runs_s": [r.seconds for r in tiny_runs],
        "get_runs_s": [r.seconds for r in big_runs],
        "get_stats": [r.stats for r in big_runs],
        "get_s": get_s,
        "get_1b_s": tiny_s,
        "transfer_s": transfer_s,
        "achieved_mib_per_s": achieved / MiB if transfer_s > 0 else None,
        "target_mib_per_s": mib(target_rate),
        "ratio_transfer": ratio,
        "ratio_whole": ratio_whole,
        "target": RATIO_TARGET,
    }


# --- (c) DHT -----------------------------------------------------------------


def step_c(work: Work, args: argparse.Namespace, results: Results) -> None:
    del args
    start = time.monotonic()
    base = work.fresh("dht")
    worker = [PY, str(THIS), "_dht-worker", "--nodes", str(DHT_NODES_PER_PROC)]
    nodes_total = DHT_PROCS * DHT_NODES_PER_PROC
    progress(f"(c) {nodes_total} DHT nodes in {DHT_PROCS} processes")
    with Procs(work) as procs:
        first = procs.start(
            "c-dht-0",
            [*worker, "--index", "0", "--workdir", str(base)],
            stdin=True,
        )
        ready = [first.read_json(120, "its ready line")]
        boot = ready[0]["addrs"][0]
        worker_cmd = [*worker, "--workdir", str(base), "--bootstrap", boot]
        workers = [first]
        workers += [
            procs.start(f"c-dht-{p}", [*worker_cmd, "--index", str(p)], stdin=True)
            for p in range(1, DHT_PROCS)
        ]
        ready += [w.read_json(120, "its ready line") for w in workers[1:]]
        joined_s = time.monotonic() - start
        join_times = [t for r in ready for t in r["join_s"]]
        progress(f"(c) all nodes up in {joined_s:.1f} s; refreshing routing tables")

        t0 = time.monotonic()
        for w in workers:
            w.send({"cmd": "refresh"})
        refreshed = [
            w.read_json(DHT_REFRESH_TIMEOUT_S + 30, "refresh result") for w in workers
        ]
        refresh_s = time.monotonic() - t0
        tables = [size for r in refreshed for size in r["tables"]]

        root = os.urandom(32)
        prov_proc, prov_node = DHT_PROVIDER
        provider_id = ready[prov_proc]["peer_ids"][prov_node]
        workers[prov_proc].send(
            {"cmd": "provide", "node": prov_node, "root": root.hex()}
        )
        provided = workers[prov_proc].read_json(DHT_PROVIDE_TIMEOUT_S + 30, "provide")
        progress(f"(c) provide: {provided['s']:.3f} s (sent: {provided['sent']})")

        for p, w in enumerate(workers):
            skip = [prov_node] if p == prov_proc else []
            w.send(
                {
                    "cmd": "find",
                    "root": root.hex(),
                    "provider": provider_id,
                    "skip": skip,
                    "timeout": DHT_LOOKUP_TIMEOUT_S,
                }
            )
        budget = DHT_NODES_PER_PROC * (DHT_LOOKUP_TIMEOUT_S + 5) + 30
        lookups = [
            {"proc": p, **item}
            for p, w in enumerate(workers)
            for item in w.read_json(budget, "lookup results")["results"]
        ]
        for w in workers:
            w.send({"cmd": "quit"})
        deadline = time.monotonic() + STOP_GRACE_S
        codes = [w.reap(deadline) for w in workers]
    total_s = time.monotonic() - start
    if any(codes):
        progress(f"(c) worker exit codes: {codes} (logs: see the error, if any)")

    ok = [item for item in lookups if item["ok"]]
    latencies = [float(item["s"]) for item in lookups]
    success = len(ok) / len(lookups) if lookups else 0.0
    p50 = percentile(latencies, 50) if latencies else math.inf
    p95 = percentile(latencies, 95) if latencies else math.inf
    local = sum(1 for item in lookups if item["local"])
    failures = [item for item in lookups if not item["ok"]]

    print(
        f"\n(c) DHT: {nodes_total} nodes = {DHT_PROCS} processes x "
        f"{DHT_NODES_PER_PROC}, all DHT servers, loopback"
    )
    print(
        "  node 0 of process 0 bootstraps everyone; provider = node "
        f"{prov_node} of process {prov_proc}; find_providers(count=1), "
        f"{DHT_LOOKUP_TIMEOUT_S:g} s timeout, in turn per process"
    )
    print(
        f"  join (open_host: bootstrap + refresh) per node: "
        f"p50 {statistics.median(join_times):.3f} s, max {max(join_times):.3f} s; "
        f"all up after {joined_s:.1f} s"
    )
    print(
        f"  second refresh (all nodes at once): {refresh_s:.3f} s; routing tables "
        f"min {min(tables)} / median {statistics.median(tables):g} / max "
        f"{max(tables)} of {nodes_total - 1}"
    )
    print(
        f"  provide: {provided['s']:.3f} s, sent to a remote peer: {provided['sent']}"
    )
    print(
        f"  lookups: {len(ok)}/{len(lookups)} found the provider "
        f"({100 * success:.1f} %), {local} by nodes already holding the record"
    )
    if latencies:
        print(
            f"  latency (all lookups): p50 {p50:.3f} s, p95 {p95:.3f} s, "
            f"max {max(latencies):.3f} s"
        )
    for item in failures:
        print(
            f"  FAILED: process {item['proc']} node {item['node']}: "
            f"{item['error'] or 'provider not in the answer'} ({item['s']:.3f} s)"
        )
    print(f"  whole step: {total_s:.1f} s")
    results.checks += [
        Check(
            "c",
            "DHT lookup success",
            f"{len(ok)}/{len(lookups)}",
            "100 %",
            bool(lookups) and len(ok) == len(lookups),
        ),
        Check(
            "c",
            "DHT lookup p50",
            f"{p50:.3f} s",
            f"< {DHT_P50_TARGET_S:g} s",
            p50 < DHT_P50_TARGET_S,
        ),
    ]
    results.steps["c"] = {
        "nodes": nodes_total,
        "processes": DHT_PROCS,
        "join_s": join_times,
        "all_joined_s": joined_s,
        "refresh_s": refresh_s,
        "routing_tables": tables,
        "provide_s": provided["s"],
        "provide_sent": provided["sent"],
        "lookups": lookups,
        "success_rate": success,
        "p50_s": p50,
        "p95_s": p95,
        "max_s": max(latencies) if latencies else None,
        "local_hits": local,
        "step_s": total_s,
        "worker_exit_codes": codes,
    }


def dht_worker(argv: list[str]) -> int:
    """``bench_net.py _dht-worker``: N DHT server nodes in this process.

    Prints one JSON line when every node is up, then obeys JSON commands on
    stdin (refresh / provide / find / quit), answering each with one line.
    """
    parser = argparse.ArgumentParser(prog="bench_net.py _dht-worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--nodes", type=positive_int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--bootstrap", action="append", default=[])
    args = parser.parse_args(argv)

    import logging

    import trio

    from p2pshare.node import dht as dhtmod
    from p2pshare.node.compat import configure_libp2p_logging
    from p2pshare.node.host import NodeHost
    from p2pshare.node.host_start import open_host

    logging.basicConfig(
        level=logging.WARNING,
        format=f"dht-worker {args.index}: %(name)s %(levelname)s: %(message)s",
    )
    configure_libp2p_logging(logging.getLogger().handlers)

    def emit(message: dict[str, Any]) -> None:
        print(json.dumps(message), flush=True)

    nodes: dict[int, NodeHost] = {}
    join_s: dict[int, float] = {}
    stop = trio.Event()

    async def run_node(
        i: int,
        bootstrap: list[str],
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,  # trio-stubs lack TaskStatus
    ) -> None:
        started = trio.current_time()
        home = args.workdir / f"p{args.index}-n{i}"
        async with open_host(
            home_dir=home, listen=[LOOPBACK], bootstrap=bootstrap, dht_mode="server"
        ) as nh:
            join_s[i] = trio.current_time() - started
            nodes[i] = nh
            task_status.started()
            await stop.wait()

    async def refresh(nh: NodeHost) -> None:
        with trio.move_on_after(DHT_REFRESH_TIMEOUT_S):
            await nh.dht.refresh_routing_table()

    async def find(message: dict[str, Any]) -> list[dict[str, Any]]:
        root = bytes.fromhex(message["root"])
        key = dhtmod.dht_key(root)
        out = []
        for i in sorted(nodes):
            if i in message["skip"]:
                continue
            nh = nodes[i]
            local = bool(nh.dht.provider_store.get_providers(key))
            error = None
            found: list[str] = []
            started = time.perf_counter()
            with trio.move_on_after(float(message["timeout"])) as scope:
                try:
                    infos = await dhtmod.find_providers(nh.dht, root, count=1)
                    found = [str(info.peer_id) for info in infos]
                except Exception as exc:  # a benchmark records, never dies
                    error = f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            if scope.cancelled_caught:
                error = f"timed out after {message['timeout']:g} s"
            out.append(
                {
                    "node": i,
                    "ok": message["provider"] in found,
                    "s": elapsed,
                    "local": local,
                    "error": error,
                }
            )
        return out

    async def serve(nursery: trio.Nursery) -> None:
        bootstrap = list(args.bootstrap)
        first = 0
        if not bootstrap:
            await nursery.start(run_node, 0, [])
            bootstrap = [nodes[0].addrs()[0]]
            first = 1
        async with trio.open_nursery() as starters:
            for i in range(first, args.nodes):
                starters.start_soon(nursery.start, run_node, i, bootstrap)
        order = sorted(nodes)
        emit(
            {
                "addrs": [nodes[i].addrs()[0] for i in order],
                "peer_ids": [str(nodes[i].peer_id) for i in order],
                "join_s": [join_s[i] for i in order],
            }
        )
        while True:
            line = await trio.to_thread.run_sync(
                sys.stdin.readline,
                abandon_on_cancel=True,  # type: ignore[call-arg]  # old trio-stubs
            )
            if not line:
                break
            message = json.loads(line)
            command = message["cmd"]
            if command == "quit":
                break
            try:
                await run_command(command, message, order)
            except Exception as exc:  # reported to the parent, which fails (c)
                emit({"error": f"{command}: {type(exc).__name__}: {exc}"})
        stop.set()

    async def run_command(
        command: str, message: dict[str, Any], order: list[int]
    ) -> None:
        if command == "refresh":
            async with trio.open_nursery() as group:
                for nh in nodes.values():
                    group.start_soon(refresh, nh)
            emit({"tables": [nodes[i].dht.get_routing_table_size() for i in order]})
        elif command == "provide":
            nh = nodes[int(message["node"])]
            started = time.perf_counter()
            with trio.fail_after(DHT_PROVIDE_TIMEOUT_S):
                sent = await dhtmod.provide(nh.dht, bytes.fromhex(message["root"]))
            emit({"s": time.perf_counter() - started, "sent": sent})
        elif command == "find":
            emit({"results": await find(message)})
        else:
            emit({"error": f"unknown command {command!r}"})

    async def on_signal(scope: trio.CancelScope) -> None:
        # SIGINT/SIGTERM stop every node (also when SIGINT was inherited as
        # ignored, which would disable trio's KeyboardInterrupt).
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                scope.cancel()
                return

    async def main() -> None:
        async with trio.open_nursery() as outer:
            outer.start_soon(on_signal, outer.cancel_scope)
            async with trio.open_nursery() as nursery:
                await serve(nursery)
            outer.cancel_scope.cancel()

    trio.run(main)
    return 0


# --- (d) peak RSS --------------------------------------------------------------


def step_d(work: Work, args: argparse.Namespace, results: Results) -> None:
    size: int = args.rss_size
    work.check_disk((3 if args.copy else 2) * size + DISK_MARGIN, "(d)")
    src = Source.create(work.root / "d-big.bin", size)
    floor, _ = run_peak_rss(work, "d-floor", [shutil.which("true") or "/bin/true"])
    progress(f"(d) peak RSS of get, {fmt_size(size)}")
    with Procs(work) as procs:
        sharer, (link,) = start_share(procs, work, "d-share", [src], args.copy)
        home, out = work.fresh("get-home"), work.fresh("get-out")
        rss, wall = run_peak_rss(work, "d-get", get_cmd(home, link, out, None))
        sharer_hwm = sharer.vm_hwm()
    progress(f"(d) get: peak RSS {mib(rss):.1f} MiB, {wall:.3f} s; checking output")
    check_output(out, src.path, src.digest)
    shutil.rmtree(out)
    shutil.rmtree(home)
    src.path.unlink()

    ok = mib(rss) < RSS_LIMIT_MIB
    print(f"\n(d) peak RSS of get, {fmt_size(size)} from one share (MiB)")
    print(
        "  the get's own ru_maxrss via os.wait4 in a minimal spawning helper; "
        f"target < {RSS_LIMIT_MIB:.0f} MiB"
    )
    print(f"  get {fmt_size(size)}: {mib(rss):.1f} MiB {verdict(ok)}")
    print(
        f"  (get took {wall:.3f} s, {speed(size, wall)} MiB/s whole process; "
        f"floor: the helper's own {mib(floor):.1f} MiB is included in any reading)"
    )
    if sharer_hwm is not None:
        print(f"  sharer peak RSS (VmHWM, for information): {mib(sharer_hwm):.1f} MiB")
    results.checks.append(
        Check(
            "d",
            f"get peak RSS, {fmt_size(size)}",
            f"{mib(rss):.1f} MiB",
            f"< {RSS_LIMIT_MIB:.0f} MiB",
            ok,
        )
    )
    results.steps["d"] = {
        "size": size,
        "get_peak_rss_mib": mib(rss),
        "get_wall_s": wall,
        "floor_mib": mib(floor),
        "sharer_vmhwm_mib": mib(sharer_hwm) if sharer_hwm is not None else None,
        "limit_mib": RSS_LIMIT_MIB,
    }


# --- (e) time to first chunk ---------------------------------------------------


def step_e(work: Work, args: argparse.Namespace, results: Results) -> None:
    values = list(results.first_chunks_from_a)
    origin = f"(a)'s {fmt_size(args.size)} gets"
    if not values:
        origin = f"own {fmt_size(E_FALLBACK_SIZE)} share, {args.repeat} get(s)"
        progress(f"(e) {origin}")
        work.check_disk(3 * E_FALLBACK_SIZE + DISK_MARGIN, "(e)")
        src = Source.create(work.root / "e-file.bin", E_FALLBACK_SIZE)
        with Procs(work) as procs:
            _, (link,) = start_share(procs, work, "e-share", [src], args.copy)
            runs = [
                logged_get(work, f"e-get-{n}", link, src)
                for n in range(1, args.repeat + 1)
            ]
        src.path.unlink()
        values = [r.first_chunk_s for r in runs if r.first_chunk_s is not None]
        if len(values) != len(runs):
            raise BenchError("(e) get --stats-json reported no first_chunk_s")
    worst = max(values)
    ok = worst < FIRST_CHUNK_TARGET_S
    print(f"\n(e) time to first verified chunk (get --stats-json), from {origin}")
    print("  from the start of the download (provider discovery), peer hint in link")
    print(f"  first_chunk_s: {fmt_runs(values)}; worst {worst:.3f} s {verdict(ok)}")
    results.checks.append(
        Check(
            "e",
            "first_chunk_s (worst run)",
            f"{worst:.3f} s",
            f"< {FIRST_CHUNK_TARGET_S:g} s",
            ok,
        )
    )
    results.steps["e"] = {
        "from": origin,
        "first_chunk_s": values,
        "worst_s": worst,
        "target_s": FIRST_CHUNK_TARGET_S,
    }


# --- main ----------------------------------------------------------------------

STEP_FUNCS: dict[str, Callable[[Work, argparse.Namespace, Results], None]] = {
    "a": step_a,
    "b": step_b,
    "c": step_c,
    "d": step_d,
    "e": step_e,
}
STEP_NAMES = {
    "a": "single-source get vs raw stream",
    "b": "4 rate-limited providers",
    "c": "30-node DHT",
    "d": "peak RSS of get",
    "e": "time to first chunk",
}


def parse_only(text: str) -> str:
    steps = {s.strip().lower() for s in text.split(",") if s.strip()}
    bad = steps - set(STEPS)
    if not steps or bad:
        raise argparse.ArgumentTypeError(
            f"--only takes a comma-separated subset of {','.join(STEPS)}"
        )
    return "".join(s for s in STEPS if s in steps)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench_net.py",
        description=(
            "Benchmark p2pshare over loopback: get vs raw libp2p stream (a), "
            "4 rate-limited providers (b), a 30-node DHT (c), peak RSS of get "
            "(d), time to first chunk (e)."
        ),
        epilog="Sizes and rates take K, M or G (binary) suffixes.",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("256M"),
        help="file size for (a) (default 256M)",
    )
    parser.add_argument(
        "--size-b",
        type=parse_size,
        default=parse_size("96M"),
        help="file size for (b) (default 96M)",
    )
    parser.add_argument(
        "--rate",
        type=parse_size,
        default=parse_size("8M"),
        help="--max-upload-rate of each (b) provider, bytes/s (default 8M)",
    )
    parser.add_argument(
        "--rss-size",
        type=parse_size,
        default=parse_size("1G"),
        help="file size for (d) (default 1G)",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=3,
        help="runs of each big get and of the raw stream, best kept (default 3)",
    )
    parser.add_argument(
        "--only",
        type=parse_only,
        default=",".join(STEPS),
        metavar="STEPS",
        help="comma-separated steps to run, of a,b,c,d,e (default all)",
    )
    parser.add_argument(
        "--copy",
        action="store_true",
        help="sharers in (a), (d), (e) use `share --copy` (default: reference mode)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to put the temporary directory (default: system temp)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print the results as one JSON object on the last line",
    )
    return parser.parse_args(argv)


def print_summary(results: Results, steps: str) -> None:
    print("\nSummary")
    for check in results.checks:
        print(
            f"  ({check.step}) {check.label:<38} {check.value:>12}  "
            f"target {check.target:<10} "
            f"{'n/a' if check.ok is None else verdict(check.ok)}"
        )
    for step in steps:
        if step in results.errors:
            print(f"  ({step}) {STEP_NAMES[step]:<38} {'ERROR':>12}  (did not run)")


def as_json(results: Results, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "steps_run": args.only,
        "results": results.steps,
        "summary": [asdict(c) for c in results.checks],
        "errors": results.errors,
    }


def _sigterm(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["_dht-worker"]:
        return dht_worker(args_list[1:])
    args = parse_args(args_list)
    # Clean up on SIGTERM as on Ctrl-C; SIGINT too when started with it
    # ignored (e.g. in the background of a non-interactive shell).
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, _sigterm)
    base: Path | None = args.workdir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="p2pshare-bench-net-", dir=base))
    results = Results()
    print(
        f"p2pshare bench_net: steps {','.join(args.only)}, Python "
        f"{platform.python_version()} ({PY}), {os.cpu_count()} CPUs, "
        f"workdir {root}, loopback only",
        flush=True,
    )
    try:
        work = Work(root)
        for step in args.only:
            started = time.monotonic()
            progress(f"--- ({step}) {STEP_NAMES[step]}")
            try:
                STEP_FUNCS[step](work, args, results)
            except BenchError as exc:
                results.errors[step] = str(exc)
                print(f"\n({step}) ERROR: {exc}", file=sys.stderr, flush=True)
                print(f"\n({step}) {STEP_NAMES[step]}: ERROR (see stderr)", flush=True)
            sys.stdout.flush()
            progress(f"({step}) took {time.monotonic() - started:.1f} s")
        print_summary(results, args.only)
    except KeyboardInterrupt:
        print("\nbench_net: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(as_json(results, args)))
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
