"""A seed keeping one column of an erasure-coded share (format/erasure.py).

The owner's pin names K, N, the column and the block id of the signed
erasure map. The seed fetches the map from the share's providers (checked
against that id, then its signature against the envelope's access key:
nothing unverified is kept), then fills its column like any replica:

* a **systematic** column (``< K``) is every K-th chunk: a
  :class:`~p2pshare.node.seed_fetch.CipherSink` that wants only those;
* a **parity** column is computed here: :class:`ParitySink` takes every
  chunk of a stripe (verified against its id, held in memory only until the
  stripe is whole), encodes the stripe, checks the column's fragment
  against its id in the map and keeps only that fragment.

Either way a chunk nobody serves any more is rebuilt from the other
columns (``recovery.py``), so a column is repaired from any K others with
the owner offline. The seed stores ``1/K`` of the share (plus the map), and
that is what its pin reserves and its quota is charged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2pshare.errors import BlockMissing, IntegrityError, NoProviders
from p2pshare.format import block_id
from p2pshare.format.erasure import ErasureMap, Stripes, encode_parity
from p2pshare.node.fill import NetShare
from p2pshare.node.provider import ProviderGone
from p2pshare.store.catalog_erasure import ErasureRow
from p2pshare.store.local import LocalStore

if TYPE_CHECKING:
    from p2pshare.node.fetch import NetworkSource

__all__ = ["Column", "ParitySink", "fetch_map"]


@dataclass(frozen=True)
class Column:
    """The column a seed keeps, with the verified map."""

    emap: ErasureMap
    emap_bytes: bytes
    geo: Stripes
    col: int

    def replica_bytes(self, full: int) -> int:
        """What the column takes, from what a full replica would."""
        return self.geo.column_replica_bytes(full, self.col, len(self.emap_bytes))


async def fetch_map(source: NetworkSource, share: NetShare, row: ErasureRow) -> Column:
    """The share's signed map from any of its providers (see the module
    docstring).

    Raises:
        NoProviders: no provider sent a map with the pinned id.
        IntegrityError: the map with that id is not the owner's.
    """
    assert row.col is not None
    for sess in list(share.sessions.values()):
        try:
            data = await sess.pc.fetch(sess.sid, "emap", 0)
        except ProviderGone:
            continue
        if data is None or block_id(data) != row.emap:
            continue
        emap = ErasureMap.open(data, share.envelope, share.root)
        if (emap.k, emap.n) != (row.k, row.n):
            raise IntegrityError("erasure map: not the code the pin asked for")
        return Column(emap, data, Stripes.of(share.envelope, emap.k, emap.n), row.col)
    raise NoProviders("erasure map: no provider sent it")


class ParitySink:
    """Compute and keep one parity column (see the module docstring);
    ``verify_write`` runs in the fill's writer thread."""

    def __init__(self, store: LocalStore, share: NetShare, column: Column) -> None:
        self.store = store
        self.share = share
        self.column = column
        self.geo = column.geo
        self._lock = threading.Lock()
        self._pending: dict[int, dict[int, bytes]] = {}  # stripe -> chunk -> bytes
        self.done: set[int] = set()  # chunks of stripes whose fragment is kept
        for s in range(self.geo.stripes):  # resume: fragments kept earlier
            if store.blocks.has(self._frag_id(s)):
                self.done.update(self.geo.chunks(s))

    def _frag_id(self, s: int) -> bytes:
        return self.column.emap.parity_id(s, self.column.col)

    def missing(self) -> list[int]:
        return [i for i in range(self.geo.count) if i not in self.done]

    def has(self, i: int) -> bool:
        with self._lock:
            return i in self.done or i in self._pending.get(self.geo.stripe_of(i), {})

    def amount(self, i: int) -> int:
        return self.geo.cipher_len(i)

    def cipher(self, i: int) -> bytes:
        with self._lock:
            data = self._pending.get(self.geo.stripe_of(i), {}).get(i)
        if data is None:
            raise BlockMissing(f"chunk {i}: its stripe is encoded already")
        return data

    def verify_write(self, i: int, data: bytes) -> bool:
        if block_id(data) != self.share.chunk_id(i):
            return False
        s = self.geo.stripe_of(i)
        with self._lock:
            stripe = self._pending.setdefault(s, {})
            stripe[i] = data
            if len(stripe) < len(self.geo.chunks(s)):
                return True
            del self._pending[s]
        parity = encode_parity(self.geo, s, [stripe[j] for j in self.geo.chunks(s)])
        frag = parity[self.column.col - self.geo.k]
        if block_id(frag) != self._frag_id(s):
            raise IntegrityError(
                f"stripe {s}: the fragment computed from verified chunks is not"
                " the map's (the owner's map is wrong)"
            )
        with self.store.writing():
            kept = self.store.blocks.put(frag)
            self.store.catalog.keep_blocks(self.share.root, [kept])
        with self._lock:
            self.done.update(self.geo.chunks(s))
        return True
