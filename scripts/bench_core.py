"""Per-core cost of a transfer, the way two machines would see it.

The sharer (sender) is pinned to CPU 0 and the getter (receiver) to CPU 1
(``taskset``), so each side has one core of its own, as on two machines; the
raw py-libp2p stream baseline (``scripts/bench_raw_stream.py``: the same
``open_host``, 1 MiB writes, 64 KiB reads) is pinned the same way, in the
same run. For each size it measures, medians of --repeat runs:

* **raw stock**: the stream as py-libp2p 0.8.1 ships it
  (``P2PSHARE_STOCK_STREAM=1``: without ``compat.secure_io`` and
  ``compat.yamux_io``), and **raw patched**: the stream p2pshare runs. Each
  side reports its own CPU seconds (user + system) for the stream.
* **p2pshare**: one ``share`` of the file and of a 4 KiB file; per run a
  4 KiB ``get`` and a big ``get`` (fresh process and home each, with the
  sharer's peer hint). Getter CPU: the child's rusage (``os.wait4``);
  sharer CPU: ``/proc/PID/stat`` before and after each get. The 4 KiB get's
  wall time and CPU on both sides are subtracted (start-up, dial,
  shutdown): what remains is the transfer part.

Figures per GiB moved (CPU-s/GiB) and MB/s (1e6 bytes/s of the transfer
part); ratios against the stock raw stream. With --unpinned the 256 MiB
figures are measured again without ``taskset``. The getter's peak RSS
(ru_maxrss) is shown for every size (target < 150 MiB at 1 GiB), and the
wall time of 5 gets of a 4 KiB share (median; target <= 1.0 s).

With --wormhole VENV (a venv with magic-wormhole 0.24.0,
magic-wormhole-mailbox-server 0.8.0 and magic-wormhole-transit-relay 0.5.0)
the same file also goes through ``wormhole send`` / ``wormhole receive``,
pinned the same way, with a local mailbox and transit relay on 127.0.0.1;
its direct hints are limited to 127.0.0.1 (``wormhole.ipaddrs.
find_addresses`` replaced before its CLI starts). Its CPU and wall time of
a 4 KiB transfer are subtracted the same way.

Every download is checked byte for byte. Loopback only; the processes are
stopped on exit, failure or Ctrl-C.

Usage: .venv/bin/python scripts/bench_core.py [--sizes 64M,256M,1G]
[--repeat 3] [--unpinned] [--wormhole VENV] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import (
    BenchError,
    GiB,
    MiB,
    check_output,
    describe_exit,
    fmt_size,
    maxrss_bytes,
    p2pshare,
    parse_sizes,
)
from bench_net import (
    COMMAND_TIMEOUT_S,
    LOOPBACK,
    PY,
    RAW_STREAM,
    READY_TIMEOUT_S,
    ROOT,
    Procs,
    Source,
    Work,
    child_env,
    failure,
    progress,
)

STOCK_ENV = "P2PSHARE_STOCK_STREAM"
SENDER_CPU, RECEIVER_CPU = 0, 1
TINY = 4096
TINY_GETS = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "getter CPU-s/GiB (pinned, 256 MiB)": ("<=", 5.0),
    "sharer CPU-s/GiB (pinned, 256 MiB)": ("<=", 4.5),
    "get MB/s / stock raw MB/s (pinned, 256 MiB)": (">=", 0.9),
    "patched raw MB/s / stock raw MB/s (pinned, 256 MiB)": (">=", 1.5),
    "get MB/s / stock raw MB/s (unpinned, 256 MiB)": (">=", 0.9),
    "getter peak RSS MiB (1 GiB)": ("<", 150.0),
    "get of a 4 KiB share, wall s (median of 5)": ("<=", 1.0),
}


@dataclass
class Side:
    """Median figures of one kind of transfer at one size."""

    mb_s: float  # 1e6 bytes per second, transfer part
    receiver_cpu_gib: float  # CPU-s per GiB, getter / stream reader
    sender_cpu_gib: float  # CPU-s per GiB, sharer / stream writer
    peak_rss_mib: float | None = None


def pin(cpu: int | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else cmd


@contextlib.contextmanager
def stock(on: bool) -> Iterator[None]:
    """Children started inside run the stock stream (or not)."""
    old = os.environ.get(STOCK_ENV)
    os.environ[STOCK_ENV] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(STOCK_ENV, None)
        else:
            os.environ[STOCK_ENV] = old


def run_rusage(work: Work, name: str, cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall s, CPU s, peak RSS bytes, stdout) of a foreground command."""
    out_path, err_path = work.log(f"{name}.stdout"), work.log(f"{name}.stderr")
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=ROOT,
            env=child_env(),
        )  # fmt: skip
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise failure(cmd, describe_exit(proc.returncode), err_path)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, maxrss_bytes(usage.ru_maxrss), out_path.read_text()


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def per_gib(cpu_s: float, size: int) -> float:
    return cpu_s * GiB / size


# --- the raw stream ---------------------------------------------------------


def raw(
    work: Work, size: int, repeat: int, *, stock_stream: bool, pinned: bool
) -> Side:
    name = "raw-stock" if stock_stream else "raw-patched"
    with stock(stock_stream), Procs(work) as procs:
        server_cmd = [PY, str(RAW_STREAM), "server", "--home", str(work.fresh(name))]
        server_cmd += ["--size", str(size)]
        server = procs.start(
            f"{name}-server", pin(SENDER_CPU if pinned else None, server_cmd)
        )
        addr = server.read_line(READY_TIMEOUT_S, "its address")
        client_cmd = [PY, str(RAW_STREAM), "client", "--home", str(work.fresh(name))]
        client_cmd += ["--connect", addr, "--repeat", str(repeat)]
        _, _, _, out = run_rusage(
            work, f"{name}-client", pin(RECEIVER_CPU if pinned else None, client_cmd)
        )
        result = json.loads(out.strip().splitlines()[-1])
        sent: list[float] = []
        while len(sent) < repeat:
            line = server.read_line(COMMAND_TIMEOUT_S, "a stream's CPU")
            if line.startswith("{"):
                sent.append(float(json.loads(line)["cpu_s"]))
    if any(int(b) != size for b in result["bytes"]):
        raise BenchError(f"{name}: delivered {result['bytes']} bytes, expected {size}")
    return Side(
        mb_s=size / statistics.median(result["runs_s"]) / 1e6,
        receiver_cpu_gib=per_gib(statistics.median(result["cpu_s"]), size),
        sender_cpu_gib=per_gib(statistics.median(sent), size),
    )


# --- p2pshare share / get ---------------------------------------------------


@dataclass
class GetCost:
    wall: float
    getter_cpu: float
    sharer_cpu: float
    peak_rss: int


def one_get(
    work: Work, sharer_pid: int, link: str, src: Source, cpu: int | None
) -> GetCost:
    home, out = work.fresh("get-home"), work.fresh("get-out")
    cmd = p2pshare(home, "get", link, "-o", str(out), "--listen", LOOPBACK)
    before = proc_cpu(sharer_pid)
    wall, cpu_s, rss, _ = run_rusage(work, "get", pin(cpu, cmd))
    sharer = proc_cpu(sharer_pid) - before
    check_output(out, src.path, src.digest)
    shutil.rmtree(home)
    shutil.rmtree(out)
    return GetCost(wall, cpu_s, sharer, rss)


@contextlib.contextmanager
def sharing(
    work: Work, sources: list[Source], pinned: bool
) -> Iterator[tuple[int, list[str]]]:
    """A ``share`` of ``sources``: (its pid, its links)."""
    with Procs(work) as procs:
        cmd = p2pshare(work.fresh("share-home"), "share", "--listen", LOOPBACK)
        cmd += [str(s.path) for s in sources]
        sharer = procs.start("share", pin(SENDER_CPU if pinned else None, cmd))
        links = [sharer.read_line(READY_TIMEOUT_S, "a link") for _ in sources]
        yield sharer.popen.pid, links


def p2p(work: Work, big: Source, tiny: Source, repeat: int, *, pinned: bool) -> Side:
    cpu = RECEIVER_CPU if pinned else None
    with sharing(work, [big, tiny], pinned) as (pid, (big_link, tiny_link)):
        one_get(work, pid, tiny_link, tiny, cpu)  # warm-up
        pairs = []
        for i in range(repeat):
            small = one_get(work, pid, tiny_link, tiny, cpu)
            large = one_get(work, pid, big_link, big, cpu)
            progress(
                f"  get {fmt_size(big.size)} run {i + 1}: {large.wall:.2f} s "
                f"(4 KiB get {small.wall:.2f} s)"
            )
            pairs.append((small, large))
    return _side(big.size, pairs)


def _side(size: int, pairs: list[tuple[GetCost, GetCost]]) -> Side:
    """Medians of (4 KiB, big) pairs, the small one subtracted."""
    return Side(
        mb_s=statistics.median(size / (b.wall - s.wall) / 1e6 for s, b in pairs),
        receiver_cpu_gib=statistics.median(
            per_gib(b.getter_cpu - s.getter_cpu, size) for s, b in pairs
        ),
        sender_cpu_gib=statistics.median(
            per_gib(b.sharer_cpu - s.sharer_cpu, size) for s, b in pairs
        ),
        peak_rss_mib=max(b.peak_rss for _, b in pairs) / MiB,
    )


def tiny_gets(work: Work, tiny: Source) -> list[float]:
    with sharing(work, [tiny], pinned=False) as (pid, (link,)):
        one_get(work, pid, link, tiny, None)  # warm-up
        return [one_get(work, pid, link, tiny, None).wall for _ in range(TINY_GETS)]


# --- magic-wormhole, for comparison ------------------------------------------

_WORMHOLE_CLI = """
import sys
import wormhole.ipaddrs as ipaddrs
ipaddrs.find_addresses = lambda: ["127.0.0.1"]  # direct hints: loopback only
from wormhole.cli.cli import wormhole
sys.argv[0] = "wormhole"
wormhole()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            return
        time.sleep(0.1)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port}")


@contextlib.contextmanager
def wormhole_servers(work: Work, venv: Path) -> Iterator[list[str]]:
    """A mailbox server and a transit relay on loopback: the CLI's options."""
    twist = str(venv / "bin" / "twist")
    mailbox, relay = _free_port(), _free_port()
    with Procs(work) as procs:
        # its state database defaults to ./relay.sqlite: keep it in the work dir
        db = work.fresh("mailbox") / "channels.sqlite"
        procs.start(
            "mailbox",
            [
                twist,
                "wormhole-mailbox",
                f"--port=tcp:{mailbox}:interface=127.0.0.1",
                f"--channel-db={db}",
            ],
        )
        procs.start(
            "relay",
            [twist, "transitrelay", f"--port=tcp:{relay}:interface=127.0.0.1"],
        )
        _wait_listening(mailbox, "the wormhole mailbox server")
        _wait_listening(relay, "the wormhole transit relay")
        yield [
            f"--relay-url=ws://127.0.0.1:{mailbox}/v1",
            f"--transit-helper=tcp:127.0.0.1:{relay}",
        ]


def wormhole_once(
    work: Work, venv: Path, opts: list[str], src: Source, pinned: bool
) -> GetCost:
    cli = work.root / "wormhole_cli.py"
    cli.write_text(_WORMHOLE_CLI)
    py = str(venv / "bin" / "python")
    code = f"{secrets.randbelow(900) + 100}-bench-{secrets.token_hex(4)}"
    send = pin(SENDER_CPU if pinned else None, [py, str(cli), *opts, "send"])
    err = work.log("wormhole-send.stderr")
    with err.open("wb") as err_file:
        sender = subprocess.Popen(
            [*send, "--code", code, str(src.path)],
            stdin=subprocess.DEVNULL, stdout=err_file, stderr=err_file,
        )  # fmt: skip
    out = work.fresh("wormhole-out") / src.path.name
    receive = [py, str(cli), *opts, "receive", "--accept-file", "--output-file"]
    try:
        wall, cpu, rss, _ = run_rusage(
            work,
            "wormhole-receive",
            pin(RECEIVER_CPU if pinned else None, [*receive, str(out), code]),
        )
        _, status, usage = os.wait4(sender.pid, 0)
        sender.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if sender.returncode is None:
            sender.kill()
            sender.wait()
    if sender.returncode != 0:
        raise failure(send, describe_exit(sender.returncode), err)
    check_output(out.parent, src.path, src.digest)
    shutil.rmtree(out.parent)
    return GetCost(wall, cpu, usage.ru_utime + usage.ru_stime, rss)


def wormhole_side(
    work: Work, venv: Path, big: Source, tiny: Source, repeat: int, *, pinned: bool
) -> Side:
    with wormhole_servers(work, venv) as opts:
        wormhole_once(work, venv, opts, tiny, pinned)  # warm-up
        pairs = [
            (
                wormhole_once(work, venv, opts, tiny, pinned),
                wormhole_once(work, venv, opts, big, pinned),
            )
            for _ in range(repeat)
        ]
    return _side(big.size, pairs)


# --- report -----------------------------------------------------------------


def line(label: str, side: Side) -> str:
    rss = "" if side.peak_rss_mib is None else f", peak RSS {side.peak_rss_mib:.0f} MiB"
    return (
        f"{label:<34} {side.mb_s:7.1f} MB/s   receiver {side.receiver_cpu_gib:5.2f}"
        f"   sender {side.sender_cpu_gib:5.2f} CPU-s/GiB{rss}"
    )


def verdicts(figures: dict[str, float]) -> list[str]:
    out = []
    for label, (op, target) in TARGETS.items():
        if label not in figures:
            continue
        value = figures[label]
        ok = {"<=": value <= target, ">=": value >= target, "<": value < target}[op]
        out.append(f"{'PASS' if ok else 'FAIL'}  {label}: {value:.3g} ({op} {target})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench_core.py", description=__doc__)
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("64M,256M,1G"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--unpinned", action="store_true", help="also unpinned, 256 MiB"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--wormhole",
        type=Path,
        default=None,
        metavar="VENV",
        help="a venv with magic-wormhole 0.24.0 and its mailbox server and relay",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        print("bench_core: needs taskset and 2 CPUs", file=sys.stderr)
        return 1
    results: dict[str, Any] = {}
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-core-", dir=args.workdir) as tmp:
        work = Work(Path(tmp))
        tiny = Source.create(work.root / "tiny.bin", TINY)
        runs = [(size, True) for size in args.sizes]
        if args.unpinned:
            runs.append((256 * MiB, False))
        for size, pinned in runs:
            how = "pinned" if pinned else "unpinned"
            key = f"{fmt_size(size)} {how}"
            progress(f"{key}: raw stock, raw patched, p2pshare")
            big = Source.create(work.root / f"big-{size}.bin", size)
            sides = {
                "raw stock": raw(
                    work, size, args.repeat, stock_stream=True, pinned=pinned
                ),
                "raw patched": raw(
                    work, size, args.repeat, stock_stream=False, pinned=pinned
                ),
                "p2pshare share/get": p2p(work, big, tiny, args.repeat, pinned=pinned),
            }
            if args.wormhole is not None:
                sides["magic-wormhole send/receive"] = wormhole_side(
                    work, args.wormhole, big, tiny, args.repeat, pinned=pinned
                )
            big.path.unlink()
            results[key] = {k: asdict(v) for k, v in sides.items()}
            print(f"\n{key} ({args.repeat} runs, medians)")
            for label, side in sides.items():
                print(line(label, side))
            base = sides["raw stock"].mb_s
            get = sides["p2pshare share/get"]
            patched = sides["raw patched"].mb_s / base
            print(
                f"  ratios to raw stock MB/s: patched {patched:.2f}, "
                f"p2pshare {get.mb_s / base:.2f}"
            )
            if "magic-wormhole send/receive" in sides:
                worm = sides["magic-wormhole send/receive"]
                print(f"  p2pshare / magic-wormhole MB/s: {get.mb_s / worm.mb_s:.2f}")
            if size == 256 * MiB:
                figures[f"get MB/s / stock raw MB/s ({how}, 256 MiB)"] = get.mb_s / base
                if pinned:
                    figures["getter CPU-s/GiB (pinned, 256 MiB)"] = get.receiver_cpu_gib
                    figures["sharer CPU-s/GiB (pinned, 256 MiB)"] = get.sender_cpu_gib
                    figures["patched raw MB/s / stock raw MB/s (pinned, 256 MiB)"] = (
                        sides["raw patched"].mb_s / base
                    )
            if size == GiB and get.peak_rss_mib is not None:
                figures["getter peak RSS MiB (1 GiB)"] = get.peak_rss_mib
        walls = tiny_gets(work, tiny)
        figures["get of a 4 KiB share, wall s (median of 5)"] = statistics.median(walls)
        shown = ", ".join(f"{w:.2f}" for w in walls)
        print(f"\nget of a 4 KiB share (with a hint): {shown} s")
    print()
    for text in verdicts(figures):
        print(text)
    if args.json:
        print(json.dumps({"results": results, "figures": figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
