"""Raw py-libp2p stream throughput between two processes: the baseline for
``scripts/bench_net.py`` (a).

Both ends are built with ``p2pshare.node.host.open_host``, so the transport,
security and muxer (TCP + Noise + Yamux), the DHT service and every compat
workaround are exactly those of ``share`` and ``get``; only the p2pshare
protocol, crypto and disk are left out.

``server``: serves ``/p2pshare-bench/raw/1``; each stream it accepts gets
SIZE bytes in writes of --write-size (default 1 MiB, as bulk senders should,
LIBP2P-NOTES §2.2), then a graceful close (Yamux FIN). It prints its
multiaddrs (with ``/p2p/<id>``), one per line, then serves until SIGINT or
SIGTERM. DHT in server mode, like ``share``.

``client``: connects to --connect, then --repeat times opens a stream and
reads until end of stream in --read-size reads (default 64 KiB), timing from
just before the stream is opened (negotiation included) to the last byte.
Prints one JSON object: ``{"bytes": [...], "runs_s": [...], "cpu_s": [...],
"connect_s": x}`` (``cpu_s``: this process's user + system CPU seconds per
run). The server prints ``{"sent": n, "cpu_s": x}`` after each stream.
``P2PSHARE_STOCK_STREAM=1`` in the environment of both runs the stock
py-libp2p stream (without ``compat.secure_io`` and ``compat.yamux_io``).
DHT in client mode, like ``get``.

Run by bench_net.py; by hand, e.g.::

    .venv/bin/python scripts/bench_raw_stream.py server --home /tmp/s \\
        --size 268435456
    .venv/bin/python scripts/bench_raw_stream.py client --home /tmp/c \\
        --connect /ip4/127.0.0.1/tcp/PORT/p2p/ID
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2pshare.node.compat import configure_libp2p_logging
from p2pshare.node.host_start import open_host

if TYPE_CHECKING:
    from p2pshare.node.streams import LibP2PStream

PROTOCOL = "/p2pshare-bench/raw/1"
LOOPBACK = "/ip4/127.0.0.1/tcp/0"
MiB = 1 << 20
KiB = 1 << 10


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far."""
    times = os.times()
    return times.user + times.system


async def _until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


async def serve(home: Path, listen: str, size: int, write_size: int) -> None:
    block = bytes(range(256)) * (write_size // 256) + bytes(write_size % 256)

    async def handler(stream: LibP2PStream) -> None:
        view = memoryview(block)
        left = size
        cpu = cpu_s()
        while left >= write_size:
            await stream.send_all(view)
            left -= write_size
        if left:
            await stream.send_all(view[:left])
        await stream.aclose()  # graceful: FIN after the last byte
        print(json.dumps({"sent": size, "cpu_s": cpu_s() - cpu}), flush=True)

    async with open_host(home_dir=home, listen=[listen], dht_mode="server") as nh:
        nh.set_handler(PROTOCOL, handler)
        for addr in nh.addrs():
            print(addr)
        sys.stdout.flush()
        await _until_signal()


async def fetch(
    home: Path, listen: str, connect: str, repeat: int, read_size: int
) -> dict[str, object]:
    runs: list[float] = []
    cpus: list[float] = []
    counts: list[int] = []
    async with open_host(home_dir=home, listen=[listen], dht_mode="client") as nh:
        start = time.perf_counter()
        with trio.fail_after(30):
            peer = await nh.connect(connect)
        connect_s = time.perf_counter() - start
        for _ in range(repeat):
            received = 0
            start = time.perf_counter()
            cpu = cpu_s()
            with trio.fail_after(600):
                async with await nh.open_stream(peer, PROTOCOL) as stream:
                    while data := await stream.receive_some(read_size):
                        received += len(data)
            runs.append(time.perf_counter() - start)
            cpus.append(cpu_s() - cpu)
            counts.append(received)
    return {"bytes": counts, "runs_s": runs, "cpu_s": cpus, "connect_s": connect_s}


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench_raw_stream.py",
        description="Raw libp2p stream throughput (the baseline of bench_net.py).",
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("server", help="send SIZE bytes on every stream")
    server.add_argument("--size", type=positive, required=True, help="bytes")
    server.add_argument("--write-size", type=positive, default=MiB)
    client = sub.add_parser("client", help="read streams from a server, timed")
    client.add_argument("--connect", required=True, metavar="MADDR")
    client.add_argument("--repeat", type=positive, default=1)
    client.add_argument("--read-size", type=positive, default=64 * KiB)
    for p in (server, client):
        p.add_argument("--home", type=Path, required=True, help="identity dir")
        p.add_argument("--listen", default=LOOPBACK, metavar="MADDR")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="bench_raw_stream: %(levelname)s: %(message)s"
    )
    configure_libp2p_logging(logging.getLogger().handlers)
    args.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if args.mode == "server":
        trio.run(serve, args.home, args.listen, args.size, args.write_size)
        return 0
    result = trio.run(
        fetch, args.home, args.listen, args.connect, args.repeat, args.read_size
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
