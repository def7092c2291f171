"""A stock py-libp2p 0.8.1 peer, for the interop test of the stream patches.

Imports nothing from p2pshare, so none of ``p2pshare.node.compat`` is
applied: the host is ``libp2p.new_host()`` as it ships (TCP, Noise, Yamux).
Run as a file, never imported by a test process that has a p2pshare host.

Protocol ``/p2pshare-test/interop/1``: the dialer sends an 8-byte
big-endian length N and N bytes, then half-closes; the listener answers
with the SHA-256 of what it received and then N bytes of its own
(:func:`payload` of ``b"reply"``), then closes.

    python tests/helpers/stock_peer.py serve        # prints its address
    python tests/helpers/stock_peer.py dial ADDR N  # prints a JSON result
"""

from __future__ import annotations

import hashlib
import json
import sys

import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr

PROTOCOL = TProtocol("/p2pshare-test/interop/1")
WRITE = 256 * 1024


def payload(seed: bytes, size: int) -> bytes:
    """Deterministic bytes both sides can compute."""
    return hashlib.shake_256(seed).digest(size)


async def read_exactly(stream: object, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        out += await stream.read(n - len(out))  # type: ignore[attr-defined]
    return bytes(out)


async def read_to_eof(stream: object) -> bytes:
    out = bytearray()
    while True:
        try:
            data = await stream.read(WRITE)  # type: ignore[attr-defined]
        except StreamEOF:
            return bytes(out)
        if not data:
            return bytes(out)
        out += data


async def send(stream: object, data: bytes) -> None:
    for at in range(0, len(data), WRITE):
        await stream.write(data[at : at + WRITE])  # type: ignore[attr-defined]


async def handler(stream: object) -> None:
    size = int.from_bytes(await read_exactly(stream, 8), "big")
    got = await read_exactly(stream, size)
    await stream.write(hashlib.sha256(got).digest())  # type: ignore[attr-defined]
    await send(stream, payload(b"reply", size))
    await stream.close()  # type: ignore[attr-defined]


async def serve() -> None:
    host = new_host(key_pair=create_new_key_pair())
    async with host.run(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        host.set_stream_handler(PROTOCOL, handler)
        for addr in host.get_addrs():
            text = str(addr)
            if "/p2p/" not in text:
                text += f"/p2p/{host.get_id()}"
            print(text, flush=True)
        await trio.sleep_forever()


async def dial(addr: str, size: int) -> None:
    host = new_host(key_pair=create_new_key_pair())
    info = info_from_p2p_addr(Multiaddr(addr))
    async with host.run(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        with trio.fail_after(60):
            await host.connect(info)
            stream = await host.new_stream(info.peer_id, [PROTOCOL])
            sent = payload(b"request", size)
            await stream.write(size.to_bytes(8, "big"))
            await send(stream, sent)
            await stream.close()  # half-close: Yamux FIN
            digest = await read_exactly(stream, 32)
            reply = await read_to_eof(stream)
        print(
            json.dumps(
                {
                    "digest_ok": digest == hashlib.sha256(sent).digest(),
                    "reply_ok": reply == payload(b"reply", size),
                    "reply_bytes": len(reply),
                }
            ),
            flush=True,
        )


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        trio.run(serve)
    elif argv[:1] == ["dial"] and len(argv) == 3:
        trio.run(dial, argv[1], int(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
