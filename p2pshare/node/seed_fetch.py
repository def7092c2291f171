"""A seed fetching a replica: ciphertext only, verified, into its store.

The seed opens the share on its providers with the owner's grant instead
of a key (``fetch.NetworkSource.open_sessions``), checks the grant against
the envelope, reserves what the replica really takes, keeps the envelope
and index blocks, then fills :class:`CipherSink` with every chunk verified
against its id (``fill.Fill``), exactly as a downloader does, but keeping
ciphertext it cannot read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from p2pshare.format import ShareLink, block_id
from p2pshare.format.chunks import ID_BYTES
from p2pshare.format.envelope import IDS_PER_INDEX_BLOCK
from p2pshare.format.grant import Grant
from p2pshare.node.fill import Fill, NetShare
from p2pshare.node.seed_column import Column, ParitySink, fetch_map
from p2pshare.node.seed_policy import (
    FETCH_TIMEOUT_S,
    Refused,
    SeedPolicy,
    mib,
    replica_bytes,
)
from p2pshare.store.catalog import ShareRow
from p2pshare.store.local import LocalStore

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = ["CipherSink", "Fetching", "fetch_replica"]


@dataclass
class Fetching:
    """A replica being fetched: its hints and progress (``pin status``)."""

    hints: tuple[str, ...]
    have: int = 0
    count: int = 0
    scope: trio.CancelScope | None = None


class CipherSink:
    """Keep verified chunk ciphertext as blocks (a seed's replica): every
    chunk, or only ``wanted`` (a systematic erasure column)."""

    def __init__(
        self, store: LocalStore, share: NetShare, wanted: Sequence[int] | None = None
    ) -> None:
        self.store = store
        self.share = share
        self.wanted = range(share.envelope.count) if wanted is None else wanted
        self.done: set[int] = set()
        for i in self.wanted:  # resume: blocks kept earlier
            if self.store.blocks.has(share.chunk_id(i)):
                self.done.add(i)

    def missing(self) -> list[int]:
        return [i for i in self.wanted if i not in self.done]

    def has(self, i: int) -> bool:
        return i in self.done

    def amount(self, i: int) -> int:
        return self.share.envelope.cipher_len(i)

    def cipher(self, i: int) -> bytes:
        return self.store.blocks.get(self.share.chunk_id(i), what=f"chunk {i}")

    def verify_write(self, i: int, data: bytes) -> bool:
        chunk_id = self.share.chunk_id(i)
        if block_id(data) != chunk_id:
            return False
        with self.store.writing():
            self.store.blocks.put(data)
            self.store.catalog.keep_blocks(self.share.root, [chunk_id])
        self.done.add(i)
        return True


def _column_sink(
    store: LocalStore, share: NetShare, column: Column
) -> CipherSink | ParitySink:
    if column.col < column.geo.k:
        return CipherSink(store, share, column.geo.column_chunks(column.col))
    return ParitySink(store, share, column)


async def fetch_replica(
    node: Node, policy: SeedPolicy, root: bytes, f: Fetching, now: Callable[[], float]
) -> None:
    """Fetch the pinned replica of ``root`` (see the module docstring).

    Raises:
        Refused: the replica is larger than the pin reserved.
        AccessDenied: the grant does not open this share for us.
        NoProviders, TransferTimeout, …: as a download.
    """
    pins = node.pins
    pin = await pins.get(root)
    if pin is None:
        return
    erasure = await pins.erasure(root)
    link = ShareLink(root_id=root, key=None, peers=f.hints)
    async with node.source(
        link, timeout_s=FETCH_TIMEOUT_S, stall_s=policy.fetch_stall_s
    ) as source:
        share = await source.open_sessions(root, pin.grant)
        env = share.envelope
        Grant.from_bytes(pin.grant).verify(
            env.access_public,
            root=root,
            peer=node.host.peer_id_bytes,
            now=now(),
        )
        need = replica_bytes(env, len(share.envelope_bytes))
        column: Column | None = None
        if erasure is not None:
            column = await fetch_map(source, share, erasure)
            need = column.replica_bytes(need)
        if need > pin.size:
            raise Refused(
                "storage_full",
                f"replica needs {mib(need)}, more than the {mib(pin.size)} reserved",
            )
        # reserve what it really takes (an owner may have declared more)
        await pins.set_size(root, need)
        f.count = env.count

        meta = [share.envelope_bytes]
        if env.index_ids is not None:
            step = IDS_PER_INDEX_BLOCK * ID_BYTES
            meta += [share.ids[o : o + step] for o in range(0, len(share.ids), step)]
        await pins.keep(root, meta)
        sink: CipherSink | ParitySink
        if column is None:
            sink = await pins.run(CipherSink, pins.store, share)
        else:
            await pins.keep(root, [column.emap_bytes])
            sink = await pins.run(_column_sink, pins.store, share, column)
        f.count = len(sink.missing()) + len(sink.done)
        f.have = len(sink.done)

        def progress(_n: int) -> None:
            f.have = len(sink.done)

        await Fill(source, share, pin.grant, sink, progress).run()
        f.have = len(sink.done)
    await pins.complete(
        ShareRow(
            root=root,
            key=None,
            storage="copy",
            mode="copy",
            top=pin.top,
            source=None,
            source_size=None,
            source_mtime_ns=None,
            tree_size=None,
            added_at=time.time_ns(),
        ),
    )
