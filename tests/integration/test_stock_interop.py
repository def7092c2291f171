"""The stream patches (compat.secure_io, compat.yamux_io) stay wire-compatible:
a stock py-libp2p 0.8.1 peer, in its own process with no p2pshare code,
connects to a patched host and transfers both ways, byte-exact, in both
dial directions."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from p2pshare.node.compat.secure_io import BufferedNoiseSession, stock_stream
from p2pshare.node.compat.yamux_io import BufferedYamux
from p2pshare.node.host_start import open_host
from p2pshare.node.streams import LibP2PStream
from tests.helpers.nodes import LOOPBACK_ANY_PORT
from tests.helpers.stock_peer import PROTOCOL, payload

pytestmark = pytest.mark.integration

STOCK_PEER = Path(__file__).parents[1] / "helpers" / "stock_peer.py"
SIZE = 8 * 1024 * 1024 + 12345  # many frames, window growth, a ragged tail


def patched(stream: LibP2PStream) -> bool:
    """Whether this stream runs over the patched Noise session and Yamux."""
    muxed = stream.net_stream.muxed_conn
    return isinstance(muxed, BufferedYamux) and isinstance(
        muxed.secured_conn, BufferedNoiseSession
    )


async def receive_all(stream: LibP2PStream) -> bytes:
    out = bytearray()
    while data := await stream.receive_some(256 * 1024):
        out += data
    return bytes(out)


async def receive_exactly(stream: LibP2PStream, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = await stream.receive_some(n - len(out))
        assert data, f"end of stream after {len(out)} of {n} bytes"
        out += data
    return bytes(out)


@asynccontextmanager
async def stock_process(*args: str) -> AsyncIterator[trio.Process]:
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(STOCK_PEER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        proc.kill()
        await proc.wait()


async def read_line(proc: trio.Process) -> str:
    assert proc.stdout is not None
    buf = b""
    with trio.fail_after(60):
        while b"\n" not in buf:
            data = await proc.stdout.receive_some(4096)
            if not data:
                assert proc.stderr is not None
                err = await proc.stderr.receive_some(65536)
                raise AssertionError(
                    f"stock peer ended: {err.decode(errors='replace')}"
                )
            buf += data
    return buf.split(b"\n", 1)[0].decode()


@pytest.mark.trio
async def test_patches_are_on_by_default() -> None:
    assert not stock_stream()


@pytest.mark.trio
async def test_patched_host_dials_a_stock_peer_and_both_directions_verify(
    tmp_path: Path,
) -> None:
    async with stock_process("serve") as proc:
        addr = await read_line(proc)
        async with open_host(
            home_dir=tmp_path, listen=[LOOPBACK_ANY_PORT], dht_mode="client"
        ) as nh:
            with trio.fail_after(60):
                peer = await nh.connect(addr)
                stream = await nh.open_stream(peer, PROTOCOL)
                async with stream:
                    assert patched(stream)
                    sent = payload(b"request", SIZE)
                    await stream.send_all(SIZE.to_bytes(8, "big"))
                    view = memoryview(sent)
                    for at in range(0, SIZE, 1 << 20):  # 1 MiB writes, as bulk senders
                        await stream.send_all(view[at : at + (1 << 20)])
                    await stream.send_eof()
                    digest = await receive_exactly(stream, 32)
                    reply = await receive_all(stream)
    assert digest == hashlib.sha256(sent).digest()
    assert len(reply) == SIZE
    assert reply == payload(b"reply", SIZE)


@pytest.mark.trio
async def test_stock_peer_dials_a_patched_host_and_both_directions_verify(
    tmp_path: Path,
) -> None:
    seen: list[bool] = []

    async def handler(stream: LibP2PStream) -> None:
        seen.append(patched(stream))
        size = int.from_bytes(await receive_exactly(stream, 8), "big")
        got = await receive_exactly(stream, size)
        await stream.send_all(hashlib.sha256(got).digest())
        await stream.send_all(payload(b"reply", size))

    async with open_host(
        home_dir=tmp_path, listen=[LOOPBACK_ANY_PORT], dht_mode="server"
    ) as nh:
        nh.set_handler(str(PROTOCOL), handler)
        addr = next(a for a in nh.addrs() if a.startswith("/ip4/127.0.0.1/"))
        async with stock_process("dial", addr, str(SIZE)) as proc:
            result = json.loads(await read_line(proc))
    assert seen == [True]
    assert result == {"digest_ok": True, "reply_ok": True, "reply_bytes": SIZE}
