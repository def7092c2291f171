"""40 000 raw Yamux stream opens on one connection, no protocol negotiated
(issue 13): the node's memory stays bounded and a legitimate download
during the flood completes byte-exact.

The victim is a real ``share`` process; the attacker is a real py-libp2p
host in this process that writes SYN frames straight onto its muxed
connection, as a hostile peer would. RSS is read from ``/proc``. The get
times with and without the flood are printed (``-s``), not asserted: a
timing assertion would fail on a loaded machine.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pshare.format import parse_link
from p2pshare.node.host_start import open_host
from tests.helpers.procs import running, share

pytestmark = pytest.mark.integration

SYNS = 40_000
RSS_BOUND = 20 << 20


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _get(home: Path, link: str, out: Path) -> float:
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "p2pshare", "--home", str(home), "get", link,
         "-o", str(out), "--timeout", "30"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return time.monotonic() - t0


async def _flood(addr: str, home: Path, syns: int) -> None:
    from libp2p.stream_muxer.yamux.yamux import (
        FLAG_SYN,
        TYPE_PING,
        TYPE_WINDOW_UPDATE,
        YAMUX_HEADER_FORMAT,
    )

    async with open_host(
        home_dir=home, listen=["/ip4/127.0.0.1/tcp/0"], dht_mode="client"
    ) as attacker:
        peer = await attacker.connect(addr)
        (conn,) = attacker.host.get_network().get_connections(peer)[:1]
        muxed: Any = conn.muxed_conn
        write = muxed._write_frame

        async def no_pongs(data: bytes) -> None:
            # a hostile peer need not answer pings; and this one must not:
            # its reader would wait for the write lock the flood holds
            if data[1] != TYPE_PING:
                await write(data)

        muxed._write_frame = no_pongs
        sid = muxed.next_stream_id + 2 * 1000  # clear of the attacker's own
        batch = bytearray()
        for n in range(syns):
            batch += struct.pack(
                YAMUX_HEADER_FORMAT, 0, TYPE_WINDOW_UPDATE, FLAG_SYN, sid + 2 * n, 0
            )
            if len(batch) >= 12 * 500:
                await write(bytes(batch))
                batch.clear()
        if batch:
            await write(bytes(batch))
        await trio.sleep(1.0)  # let the victim read what is in flight


def test_a_stream_flood_costs_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(16 << 20))
    proc, [link] = share(tmp_path / "victim", src)
    with running(proc):
        addr = parse_link(link).peers[0]
        quiet = _get(tmp_path / "g0", link, tmp_path / "out0")  # also warms up
        (tmp_path / "attacker").mkdir()
        before = _rss(proc.popen.pid)
        during: list[float] = []

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_flood, addr, tmp_path / "attacker", SYNS)
                await trio.sleep(0.5)  # the flood is under way
                during.append(
                    await trio.to_thread.run_sync(
                        _get, tmp_path / "g1", link, tmp_path / "out1"
                    )
                )

        trio.run(main)
        time.sleep(1.0)
        grown = _rss(proc.popen.pid) - before
        assert proc.popen.poll() is None, proc.err  # the node is up
        print(
            f"\nflood of {SYNS} SYNs: victim RSS +{grown / 2**20:.1f} MiB;"
            f" get {quiet:.2f} s quiet, {during[0]:.2f} s during the flood"
            f" ({during[0] / quiet:.2f}x)"
        )
        assert grown < RSS_BOUND, f"RSS grew {grown / 2**20:.1f} MiB"
        assert (tmp_path / "out1" / "f.bin").read_bytes() == src.read_bytes()
        assert "too many inbound streams" in proc.err  # the cap did the work
