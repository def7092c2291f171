"""Test helpers: a real tiny share and two xfer machines wired back to back.

:class:`XferPair` delivers the bytes one machine returns to the other through
a *splitter* (whole, byte by byte, or ragged pseudo-random pieces), drains
the events after every piece, as a driver would after every read, and
returns them so tests can assert exact event lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from p2pshare.format.chunks import block_id, seal_chunk
from p2pshare.format.envelope import Envelope, Meta, build_envelope, seal_meta
from p2pshare.format.keys import FileKeys
from p2pshare.protocol import (
    ClientConnection,
    Event,
    OpenRequested,
    Ready,
    ServerConnection,
    ShareOpened,
)

# Raw peer ids shaped like libp2p's (identity multihash of an Ed25519 key).
SERVER_PEER = bytes.fromhex("002408011220") + bytes(range(32))
CLIENT_PEER = bytes.fromhex("002408011220") + bytes(range(32, 64))
CHALLENGE = hashlib.blake2b(b"challenge", digest_size=32).digest()
FILE_KEY = bytes(range(100, 132))
CHUNK_SIZE = 4096

Splitter = Callable[[bytes], Iterator[bytes]]


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def ragged(data: bytes) -> Iterator[bytes]:
    """Deterministic pseudo-random pieces of 1..600 bytes (seeded by the data)."""
    seed = hashlib.blake2b(data[:64], digest_size=16).digest()
    pos = counter = 0
    while pos < len(data):
        draw = hashlib.blake2b(seed + counter.to_bytes(8, "big"), digest_size=2)
        size = 1 + int.from_bytes(draw.digest(), "big") % 600
        yield data[pos : pos + size]
        pos += size
        counter += 1


SPLITTERS: dict[str, Splitter] = {
    "whole": whole,
    "bytewise": bytewise,
    "ragged": ragged,
}


@dataclass(frozen=True)
class Share:
    """A real three-chunk share: keys, envelope bytes, root id and chunks."""

    keys: FileKeys
    envelope: Envelope
    envelope_bytes: bytes
    root: bytes
    chunks: list[bytes]


def make_share(file_key: bytes = FILE_KEY, chunks: int = 3) -> Share:
    keys = FileKeys.from_key(file_key)
    sealed = [
        seal_chunk(keys.chunk, i, chunks, bytes([i]) * CHUNK_SIZE)
        for i in range(chunks)
    ]
    meta = Meta(name="a.bin", size=chunks * CHUNK_SIZE, mtime_ns=0, kind="file")
    envelope, _ = build_envelope(
        chunk_size=CHUNK_SIZE,
        tail=CHUNK_SIZE,
        chunk_ids=[block_id(c) for c in sealed],
        sealed_meta=seal_meta(keys.meta, meta, rng=bytes),
        access_public=keys.access_public,
    )
    data = envelope.encode()
    return Share(keys, envelope, data, block_id(data), sealed)


class XferPair:
    """A server and a client machine connected back to back."""

    def __init__(
        self,
        split: Splitter = whole,
        *,
        server: dict[str, Any] | None = None,
        client: dict[str, Any] | None = None,
    ) -> None:
        self.split = split
        self.server = ServerConnection(
            local_peer=SERVER_PEER,
            remote_peer=CLIENT_PEER,
            challenge=CHALLENGE,
            **(server or {}),
        )
        self.client = ClientConnection(
            local_peer=CLIENT_PEER, remote_peer=SERVER_PEER, **(client or {})
        )

    @staticmethod
    def _deliver(
        conn: ServerConnection | ClientConnection, data: bytes, split: Splitter
    ) -> list[Event]:
        if not data:  # EOF
            conn.receive_data(b"")
            return list(conn.events())
        events: list[Event] = []
        for piece in split(data):
            conn.receive_data(piece)
            events.extend(conn.events())
        return events

    def to_server(self, data: bytes) -> list[Event]:
        return self._deliver(self.server, data, self.split)

    def to_client(self, data: bytes) -> list[Event]:
        return self._deliver(self.client, data, self.split)

    def handshake(self) -> None:
        assert self.to_client(self.server.start()) == [Ready(challenge=CHALLENGE)]

    def open_share(self, share: Share, sid: int = 1) -> None:
        """Handshake (if needed), open ``share`` as ``sid`` and accept it."""
        if self.client.challenge is None:
            self.handshake()
        opening = self.client.open(sid, share.root, share.keys.signing_key)
        (request,) = self.to_server(opening)
        assert isinstance(request, OpenRequested)
        self.server.verify(share.keys.access_public, request.proof, share.root)
        (opened,) = self.to_client(self.server.accept(sid, share.envelope_bytes))
        assert opened == ShareOpened(sid=sid, envelope=share.envelope_bytes, have=None)
