"""Reading local shares: envelopes, index blocks and chunks, all verified.

Theory of operation
-------------------
Whatever a node sends or rebuilds from its own store is checked first:

* the envelope block must hash to the root id (the block store verifies
  every block against its name on read);
* an index block must hash to the id the envelope lists for it;
* a chunk's ciphertext must hash to its chunk id. In copy mode the
  ciphertext is a block. In reference mode it is re-made from the source
  file (deterministic sealing, see ``format/chunks.py``); if the source no
  longer has the size and mtime recorded at ``add``, or a re-sealed chunk
  does not match its id, the chunk is refused with
  :class:`~p2pshare.errors.SourceChangedError`, never served.

``OpenShare.plain`` is the fast path for rebuilding locally: for a
reference share the plaintext read from the source *is* the answer once its
re-sealed ciphertext matched the id, so it is not decrypted again.

Thread safety: ``cipher`` and ``plain`` may run in worker threads (they use
``os.pread`` and whole-file reads); ``chunk_id`` loads index blocks lazily and
must be called from one thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Self

from p2pshare.errors import (
    BlockMissing,
    IntegrityError,
    SourceChangedError,
    StoreError,
)
from p2pshare.format import Envelope, FileKeys, block_id, open_chunk, seal_chunk
from p2pshare.format.chunks import ID_BYTES
from p2pshare.format.envelope import IDS_PER_INDEX_BLOCK
from p2pshare.format.erasure import ErasureMap
from p2pshare.store.catalog import ShareRow
from p2pshare.store.catalog_erasure import ErasureRow
from p2pshare.store.local import LocalStore

__all__ = ["OpenShare", "open_share"]


def open_share(store: LocalStore, root: bytes) -> OpenShare:
    """Open a share this home holds.

    Raises:
        NotFoundError: the home does not hold ``root``.
        IntegrityError: its envelope block is corrupt.
    """
    row = store.catalog.get_share(root)
    data = store.blocks.get(root, what="envelope")
    env = Envelope.verify_and_decode(root, data)
    return OpenShare(
        store=store,
        row=row,
        envelope_bytes=data,
        envelope=env,
        erasure=store.catalog.erasure_of(root),
        policy=store.catalog.policy_of(root),
    )


@dataclass(slots=True, kw_only=True)
class OpenShare:
    store: LocalStore
    row: ShareRow
    envelope_bytes: bytes
    envelope: Envelope
    erasure: ErasureRow | None = None
    policy: bytes | None = None  # the share's link-control policy (ticket.py)
    _index: dict[int, bytes] = field(default_factory=dict)
    _emap: ErasureMap | None = None
    _fd: int | None = None
    _keys: FileKeys | None = None

    @property
    def root(self) -> bytes:
        return self.row.root

    def index_block(self, j: int) -> bytes:
        if j not in self._index:
            data = self.store.blocks.get(
                self.envelope.index_block_id(j), what=f"index block {j}"
            )
            self.envelope.check_index_block(j, data)
            self._index = {j: data}  # keep one: bounded memory for huge files
        return self._index[j]

    def chunk_id(self, i: int) -> bytes:
        env = self.envelope
        if env.chunk_ids is not None:
            if not 0 <= i < env.count:
                raise IndexError(i)
            return env.chunk_ids[i * ID_BYTES : (i + 1) * ID_BYTES]
        j, k = divmod(i, IDS_PER_INDEX_BLOCK)
        return self.index_block(j)[k * ID_BYTES : (k + 1) * ID_BYTES]

    @property
    def column(self) -> int | None:
        """The erasure column this node keeps of the share (a seed), if any."""
        return None if self.erasure is None else self.erasure.col

    def emap_bytes(self) -> bytes:
        """The share's signed erasure map.

        Raises:
            BlockMissing: the share is not erasure coded here.
        """
        if self.erasure is None:
            raise BlockMissing("erasure map: the share is not erasure coded here")
        return self.store.blocks.get(self.erasure.emap, what="erasure map")

    def fragment(self, s: int) -> bytes:
        """Parity fragment ``s`` of the column this seed keeps, verified.

        Raises:
            BlockMissing: this node keeps no parity column of the share.
            IndexError: no stripe ``s``.
        """
        col = self.column
        if self.erasure is None or col is None or col < self.erasure.k:
            raise BlockMissing(f"fragment {s}: no parity column kept here")
        if self._emap is None:
            self._emap = ErasureMap.from_bytes(self.emap_bytes())
        return self.store.blocks.get(self._emap.parity_id(s, col), what=f"fragment {s}")

    def have(self) -> bytes | None:
        """Bitmap of the chunks this node can serve; None means all."""
        col = self.column
        if self.erasure is not None and col is not None:
            bitmap = bytearray(-(-self.envelope.count // 8))
            if col < self.erasure.k:  # a parity column holds no chunk
                for i in range(col, self.envelope.count, self.erasure.k):
                    bitmap[i >> 3] |= 1 << (i & 7)
            return bytes(bitmap)
        if self.row.storage != "partial":
            return None
        dl = self.store.catalog.download_of(self.root)
        return dl.bitmap if dl is not None else bytes(-(-self.envelope.count // 8))

    def cipher(self, i: int, chunk_id: bytes) -> bytes:
        """Chunk ``i``'s ciphertext, verified against ``chunk_id``.

        Raises:
            BlockMissing: a partial download does not have chunk ``i`` yet.
            IntegrityError: the stored or re-made chunk does not match.
        """
        if self.row.storage == "copy":
            return self.store.blocks.get(chunk_id, what=f"chunk {i}")
        if self.row.storage == "partial":
            return self._reseal_partial(i, chunk_id)
        return self._reseal(i, chunk_id)[1]

    def _reseal_partial(self, i: int, chunk_id: bytes) -> bytes:
        dl = self.store.catalog.download_of(self.root)
        if dl is None or not dl.bitmap[i >> 3] & (1 << (i & 7)) or self.row.key is None:
            raise BlockMissing(f"chunk {i}: not downloaded yet")
        keys = FileKeys.from_key(self.row.key)
        env = self.envelope
        padded_len = env.cipher_len(i) - 16
        try:
            with open(dl.partial, "rb", buffering=0) as f:
                data = os.pread(f.fileno(), padded_len, i * env.chunk_size)
        except OSError as exc:
            raise BlockMissing(f"chunk {i}: partial file unreadable") from exc
        cipher = seal_chunk(
            keys.chunk, i, env.count, data + bytes(padded_len - len(data))
        )
        if block_id(cipher) != chunk_id:
            raise IntegrityError(f"chunk {i}: partial download does not match")
        return cipher

    def plain(self, i: int, chunk_id: bytes, keys: FileKeys) -> bytes:
        """Chunk ``i``'s padded plaintext, verified against ``chunk_id``."""
        if self.row.storage == "copy":
            cipher = self.store.blocks.get(chunk_id, what=f"chunk {i}")
            return open_chunk(keys.chunk, i, self.envelope.count, cipher)
        return self._reseal(i, chunk_id)[0]

    # -- reference mode ---------------------------------------------------------
    def _source_fd(self) -> int:
        if self._fd is None:
            row = self.row
            if row.source is None or row.key is None:
                raise StoreError("share: reference share without source or key")
            try:
                fd = os.open(row.source, os.O_RDONLY)
            except FileNotFoundError as exc:
                raise SourceChangedError(
                    f"{row.source}: source changed since it was added (it is gone);"
                    " add it again to share its current content"
                ) from exc
            except OSError as exc:
                raise StoreError(f"{row.source}: cannot read ({exc.strerror})") from exc
            st = os.fstat(fd)
            if (st.st_size, st.st_mtime_ns) != (row.source_size, row.source_mtime_ns):
                os.close(fd)
                raise _changed(row.source)
            self._fd = fd
            self._keys = FileKeys.from_key(row.key)
        return self._fd

    def _reseal(self, i: int, chunk_id: bytes) -> tuple[bytes, bytes]:
        fd = self._source_fd()
        assert self._keys is not None
        env = self.envelope
        padded_len = env.cipher_len(i) - 16
        try:
            data = os.pread(
                fd,
                env.chunk_size if i < env.count - 1 else padded_len,
                i * env.chunk_size,
            )
        except OSError as exc:
            raise StoreError(
                f"{self.row.source}: cannot read ({exc.strerror})"
            ) from exc
        padded = (
            data + bytes(padded_len - len(data)) if len(data) <= padded_len else b""
        )
        cipher = seal_chunk(self._keys.chunk, i, env.count, padded) if padded else b""
        if not cipher or block_id(cipher) != chunk_id:
            raise _changed(self.row.source or "?", i)
        return padded, cipher

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _changed(source: str, index: int | None = None) -> IntegrityError:
    where = "" if index is None else f" (chunk {index} differs)"
    return SourceChangedError(
        f"{source}: source changed since it was added{where};"
        " add it again to share its current content"
    )
