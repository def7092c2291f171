"""The p2pshare CLI as a hostile provider, for end-to-end tests.

``python -m tests.helpers.hostile --home H share F`` runs the real CLI with
its transfer server patched the way ``$P2PSHARE_HOSTILE`` says:

* ``liar``: every chunk it sends has one bit flipped;
* ``stall``: it opens shares (sends the envelope and chunk map) and then
  never answers a want;
* ``missing``: it answers ``missing`` for every chunk.

Everything else (the host, the DHT, the proof of key) is the real thing.
"""

from __future__ import annotations

import os
from typing import Any

from p2pshare.errors import BlockMissing
from p2pshare.node import xfer_server


def install(mode: str) -> None:
    read = xfer_server._read

    def lying_read(share: Any, kind: str, index: int) -> bytes:
        data = read(share, kind, index)
        if kind == "chunk":
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    def missing_read(share: Any, kind: str, index: int) -> bytes:
        if kind == "chunk":
            raise BlockMissing(f"chunk {index}: not here")
        return read(share, kind, index)

    async def stalling_send(session: Any) -> None:
        async for _want in session.wants_out:
            pass  # takes every want, never answers one

    if mode == "liar":
        xfer_server._read = lying_read
    elif mode == "missing":
        xfer_server._read = missing_read
    elif mode == "stall":
        xfer_server._Session._send_wanted = stalling_send  # type: ignore[method-assign,assignment]
    else:
        raise SystemExit(f"P2PSHARE_HOSTILE: unknown mode {mode!r}")


if __name__ == "__main__":
    install(os.environ["P2PSHARE_HOSTILE"])
    from p2pshare.cli import main

    main()
