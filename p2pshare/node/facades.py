"""The node's store, one facade per concern: shares, pins, vouchers.

Modules of ``node/`` and the control server do not reach through the node
into its store (``node.store.catalog.…``): each takes the facade of its
concern. A facade method is one store operation, run in a worker thread
under the node's store limiter (at most two at a time) and typed, so

* the seed side (``seed.py``, ``seed_fetch.py``) works through
  :class:`Pins` — the replicas this node keeps of others' shares, and the
  vouchers it admits them with;
* the owner side (``replicate.py``, ``replica_check.py``, the control
  server) through :class:`Shares` — this node's shares and the seeds that
  keep replicas of them — and :class:`Vouchers` — the vouchers this home
  redeemed;
* downloads through ``DownloadManager`` (``downloads.py``), which owns the
  partial-file side.

A seed never writes a share row through these, and an owner never a pin.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, TypeVarTuple

import trio

from p2pshare.errors import AccessDenied, BlockMissing, IntegrityError
from p2pshare.format import FileKeys, block_id
from p2pshare.format.envelope import Envelope
from p2pshare.format.erasure import ErasureMap, Stripes, encode_parity
from p2pshare.node.seed_policy import Refused, replica_bytes
from p2pshare.protocol import pin as pinproto
from p2pshare.protocol.pin.messages import MAX_PROVE_INDICES
from p2pshare.records import ShareListing
from p2pshare.store import LocalStore, OpenShare, open_share
from p2pshare.store.catalog_erasure import ErasureRow
from p2pshare.store.listing import describe_shares
from p2pshare.store.schema import PinRow, ReplicaRow, ShareRow

__all__ = ["Pins", "RootEntry", "Shares", "StoreAccess", "Vouchers"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

PROVE_CHUNKS = 4  # chunks per storage proof (a check of one root)


@dataclass(frozen=True, slots=True)
class RootEntry:
    """A share of a replicated tree: its key and what a replica takes."""

    root: bytes
    key: bytes
    size: int  # replica bytes
    top: bool


class StoreAccess:
    """The node's store, one call at a time in a worker thread."""

    def __init__(self, store: LocalStore, limiter: trio.CapacityLimiter) -> None:
        self._store = store
        self._limiter = limiter

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """``fn(*args)`` in a worker thread (at most two store calls at once)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)


class Shares(StoreAccess):
    """This node's shares, and the seeds that keep replicas of them."""

    async def get(self, root: bytes) -> ShareRow:
        """Raises: NotFoundError: no such share in this home."""
        return await self.run(self._store.catalog.get_share, root)

    async def listing(self) -> list[ShareListing]:
        """The top-level shares as ``ls`` shows them."""
        return await self.run(describe_shares, self._store)

    async def count(self) -> int:
        return await self.run(lambda: len(self._store.catalog.top_shares()))

    async def announced(self, root: bytes) -> bool:
        """Whether this node announces ``root`` (serves it to the network)."""
        return await self.run(
            lambda: root in set(self._store.catalog.announced_roots())
        )

    async def replicas(self, root: bytes | None = None) -> list[ReplicaRow]:
        """The replicas recorded for ``root``, or for every share."""
        return await self.run(self._store.catalog.replicas, root)

    async def record_replica(self, row: ReplicaRow) -> None:
        await self.run(self._store.catalog.put_replica, row)

    async def drop_replica(self, root: bytes, seed: str) -> None:
        await self.run(self._store.catalog.drop_replica, root, seed)

    async def record_column(self, root: bytes, seed: str, column: int | None) -> None:
        """The erasure column ``seed`` keeps of ``root`` (None: a full copy)."""
        await self.run(self._store.catalog.put_replica_col, root, seed, column)

    async def columns(self, root: bytes) -> dict[str, int]:
        """Seed → the erasure column it keeps of ``root``."""
        return await self.run(self._store.catalog.replica_cols, root)

    async def erasure(self, root: bytes) -> ErasureRow | None:
        return await self.run(self._store.catalog.erasure_of, root)

    async def tree(self, root: bytes) -> list[RootEntry]:
        """The share and, for a folder, every member share below it.

        Raises:
            AccessDenied: this home holds no key for one of them.
        """
        return await self.run(self._tree, root)

    def _tree(self, root: bytes) -> list[RootEntry]:
        catalog = self._store.catalog
        out: list[RootEntry] = []
        seen: set[bytes] = set()
        stack = [(root, True)]
        while stack:
            r, top = stack.pop()
            if r in seen:
                continue
            seen.add(r)
            row = catalog.get_share(r)
            if row.key is None:
                raise AccessDenied("share: this home holds no key for it")
            with open_share(self._store, r) as share:
                size = replica_bytes(share.envelope, len(share.envelope_bytes))
            out.append(RootEntry(r, row.key, size, top))
            stack.extend((c, False) for c in catalog.children_of(r))
        return out

    async def proof(
        self, root: bytes, nonce: bytes, column: int | None = None
    ) -> tuple[tuple[int, ...], bytes]:
        """A storage challenge over our own copy of ``root``: random chunk
        indices and the digest a seed holding them must answer. For a seed
        keeping erasure ``column``: every unit of that column (up to the
        protocol's 64; sampled beyond), parity computed from our chunks."""

        def expected() -> tuple[tuple[int, ...], bytes]:
            with open_share(self._store, root) as share:
                count = share.envelope.count
                er = share.erasure
                if column is not None and er is not None:
                    return _column_proof(share, er.k, er.n, column, nonce)
                k = min(PROVE_CHUNKS, count)
                indices: list[int] = []
                while len(indices) < k:
                    i = secrets.randbelow(count)
                    if i not in indices:
                        indices.append(i)
                blocks = [(i, share.cipher(i, share.chunk_id(i))) for i in indices]
            return tuple(indices), pinproto.storage_digest(nonce, blocks)

        return await self.run(expected)

    async def erasure_map(self, root: bytes, k: int, n: int) -> tuple[bytes, int]:
        """Make (or reuse) the signed erasure map of ``root`` coded ``k/n``,
        kept as a block of the share: returns (its block id, its size)."""
        return await self.run(self._erasure_map, root, k, n)

    def _erasure_map(self, root: bytes, k: int, n: int) -> tuple[bytes, int]:
        catalog = self._store.catalog
        old = catalog.erasure_of(root)
        if old is not None and (old.k, old.n) == (k, n):
            with contextlib.suppress(BlockMissing, IntegrityError):
                return old.emap, len(self._store.blocks.get(old.emap))
        row = catalog.get_share(root)
        if row.key is None:
            raise AccessDenied("share: this home holds no key for it")
        with open_share(self._store, root) as share:
            geo = Stripes.of(share.envelope, k, n)
            ids = []
            for s in range(geo.stripes):
                chunks = [share.cipher(i, share.chunk_id(i)) for i in geo.chunks(s)]
                ids += [block_id(p) for p in encode_parity(geo, s, chunks)]
        emap = ErasureMap.make(FileKeys.from_key(row.key).signing_key, root, geo, ids)
        data = emap.to_bytes()
        with self._store.writing():
            bid = self._store.blocks.put(data)
            catalog.keep_blocks(root, [bid])
            catalog.put_erasure(ErasureRow(root, bid, k, n, None))
        return bid, len(data)

    async def column_size(
        self, root: bytes, k: int, n: int, column: int, map_size: int
    ) -> int:
        """What a seed keeping erasure ``column`` of ``root`` stores: the
        envelope and index, the column's chunks or parity, and the map."""

        def size() -> int:
            with open_share(self._store, root) as share:
                full = replica_bytes(share.envelope, len(share.envelope_bytes))
                geo = Stripes.of(share.envelope, k, n)
                return geo.column_replica_bytes(full, column, map_size)

        return await self.run(size)


def _column_proof(
    share: OpenShare, k: int, n: int, column: int, nonce: bytes
) -> tuple[tuple[int, ...], bytes]:
    """The challenge for a seed keeping ``column`` (see ``Shares.proof``)."""
    geo = Stripes.of(share.envelope, k, n)
    units = geo.column_chunks(column) if column < k else list(range(geo.stripes))
    if len(units) > MAX_PROVE_INDICES:
        units = sorted(units[j] for j in _sample_indices(len(units), MAX_PROVE_INDICES))
    if not units:
        return (), b""
    blocks = []
    for u in units:
        if column < k:
            blocks.append((u, share.cipher(u, share.chunk_id(u))))
        else:
            chunks = [share.cipher(i, share.chunk_id(i)) for i in geo.chunks(u)]
            blocks.append((u, encode_parity(geo, u, chunks)[column - k]))
    return tuple(units), pinproto.storage_digest(nonce, blocks)


def _sample_indices(total: int, want: int) -> list[int]:
    picked: set[int] = set()
    while len(picked) < want:
        picked.add(secrets.randbelow(total))
    return sorted(picked)


class Vouchers(StoreAccess):
    """The vouchers this home redeemed at seeds."""

    async def add(
        self, serial: bytes, seed: str, code: str, quota: int, expires: int, at: int
    ) -> None:
        await self.run(
            self._store.catalog.add_my_voucher, serial, seed, code, quota, expires, at
        )

    async def mine(self) -> list[tuple[str, str, int, int]]:
        """``(seed, code, quota, expires)`` of each voucher redeemed here."""
        return await self.run(self._store.catalog.my_vouchers)


class Pins(StoreAccess):
    """A seed's pins: the replicas it keeps of others' shares, and the
    vouchers that admit them."""

    @property
    def store(self) -> LocalStore:
        """For the replica being fetched (``seed_fetch.py``), which writes
        blocks as they verify, in its own batches."""
        return self._store

    async def all(self) -> list[PinRow]:
        return await self.run(self._store.catalog.pins)

    def announced(self) -> list[bytes]:
        """The pins a seed announces (call from a worker thread)."""
        return self._store.catalog.announced_pins()

    async def get(self, root: bytes) -> PinRow | None:
        return await self.run(self._store.catalog.get_pin, root)

    async def put(self, row: PinRow) -> None:
        await self.run(self._store.catalog.put_pin, row)

    async def expired(self, now: int) -> list[bytes]:
        return await self.run(self._store.catalog.expired_pins, now)

    async def used_bytes(self) -> int:
        return await self.run(self._store.catalog.pinned_bytes)

    async def fetching_by(self, owner: bytes) -> int:
        """How many of ``owner``'s pins are still fetching."""
        return await self.run(self._store.catalog.fetching_pins, owner)

    async def set_state(
        self, root: bytes, state: str, error: str | None = None
    ) -> None:
        await self.run(self._store.catalog.set_pin_state, root, state, error)

    async def set_size(self, root: bytes, size: int) -> None:
        await self.run(self._store.catalog.set_pin_size, root, size)

    async def drop(self, root: bytes, *, keep_pin: bool = False) -> None:
        """Forget the pin (unless ``keep_pin``: a failed one stays, to say
        why) and delete the blocks only it kept."""

        def drop() -> None:
            for b in self._store.catalog.drop_pin(root, keep_pin=keep_pin):
                self._store.blocks.delete(b)

        await self.run(drop)

    async def keep(self, root: bytes, blocks: Sequence[bytes]) -> None:
        """Store ``blocks`` (verified by the caller) for the pin of ``root``."""

        def keep() -> None:
            with self._store.writing():
                kept = [self._store.blocks.put(b) for b in blocks]
                self._store.catalog.keep_blocks(root, kept)

        await self.run(keep)

    async def complete(self, row: ShareRow) -> None:
        """The replica is whole: record its share row (no key: a seed
        cannot read it)."""
        await self.run(self._store.catalog.complete_replica, row)

    async def chunk_count(self, root: bytes) -> int:
        def count() -> int:
            with open_share(self._store, root) as share:
                return share.envelope.count

        return await self.run(count)

    async def prove(self, root: bytes, nonce: bytes, indices: Sequence[int]) -> bytes:
        """The storage digest of our replica's chunks at ``indices`` (of a
        parity column: its fragments of those stripes).

        Raises:
            Refused: an index beyond the share.
        """

        def digest() -> bytes:
            with open_share(self._store, root) as share:
                er = share.erasure
                if er is not None and er.col is not None and er.col >= er.k:
                    stripes = Stripes.of(share.envelope, er.k, er.n).stripes
                    if any(s >= stripes for s in indices):
                        raise Refused("bad_request", "prove: stripe out of range")
                    return pinproto.storage_digest(
                        nonce, [(s, share.fragment(s)) for s in indices]
                    )
                if any(i >= share.envelope.count for i in indices):
                    raise Refused("bad_request", "prove: chunk index out of range")
                blocks = [(i, share.cipher(i, share.chunk_id(i))) for i in indices]
            return pinproto.storage_digest(nonce, blocks)

        return await self.run(digest)

    async def erasure(self, root: bytes) -> ErasureRow | None:
        return await self.run(self._store.catalog.erasure_of, root)

    async def set_erasure(self, row: ErasureRow) -> None:
        await self.run(self._store.catalog.put_erasure, row)

    async def access_public(self, root: bytes) -> bytes:
        """The share's access key (public half) from its verified envelope.

        Raises:
            NotFoundError, StoreError: no envelope of ``root`` here.
        """

        def read() -> bytes:
            data = self._store.blocks.get(root, what="envelope")
            return Envelope.verify_and_decode(root, data).access_public

        return await self.run(read)

    async def redeem_voucher(
        self, serial: bytes, peer: bytes, quota: int, expires: int, now: int
    ) -> bool:
        """Bind a voucher to ``peer``; false when another peer holds it."""
        return await self.run(
            self._store.catalog.redeem_voucher, serial, peer, quota, expires, now
        )

    async def balance(self, peer: bytes, now: int) -> tuple[int, int, int, int | None]:
        """``(quota, used, vouchers, latest expiry)`` of ``peer`` here."""
        return await self.run(self._store.catalog.balance, peer, now)
