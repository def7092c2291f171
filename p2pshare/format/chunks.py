"""Chunk geometry, sealing and ids (format version 1).

Theory of operation
-------------------
A file of ``size`` bytes is cut into ``count`` chunks of ``chunk_size``
plaintext bytes; the last one is zero-padded up to a multiple of
``PAD_BYTES`` (4 KiB). An empty file is one chunk of 4 KiB of zeros. So the
ciphertext reveals only the size rounded up to 4 KiB; the exact size lives
in the sealed meta.

Chunk *i* is sealed with XChaCha20-Poly1305-IETF under the share's chunk
subkey (computed with OpenSSL, byte for byte libsodium's: ``aead.py``). The
nonce is *i* (big-endian) padded to 24 bytes: a (key, nonce) pair is used
for exactly one plaintext, because the key is unique per share and never
reused for other content (re-adding a changed file draws a new key). The
associated data binds the format version, *i* and ``count``, so chunks
cannot be reordered, moved between shares of other lengths, or the file
truncated. Sealing is deterministic, which lets a node holding only the
plaintext re-create the exact ciphertext and check it against the chunk id.
That check is not optional where the plaintext is a file that may change
(``store/reader.py``): a chunk re-sealed from changed content would reuse
its (key, nonce) pair, and anyone holding both ciphertexts (a seed, say)
would learn the XOR of the two plaintexts.

A chunk id is BLAKE2b-256 of the ciphertext: anyone can check a chunk
without the key.

Limits: ``chunk_size`` is a multiple of 4 KiB between 4 KiB and 16 MiB (a
chunk must fit in one transfer frame); ``count`` is at most 2**23 (the envelope
holds at most 1024 index blocks of 8192 ids each).
"""

from __future__ import annotations

import hashlib
import struct

from p2pshare.errors import FormatError, IntegrityError
from p2pshare.format.aead import AuthenticationFailed, xchacha_open, xchacha_seal

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ID_BYTES",
    "MAX_CHUNK_COUNT",
    "MAX_CHUNK_SIZE",
    "PAD_BYTES",
    "TAG_BYTES",
    "Geometry",
    "block_id",
    "open_chunk",
    "seal_chunk",
]

PAD_BYTES = 4096
DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB: large writes are what libp2p moves fast
MAX_CHUNK_SIZE = 16 << 20
MAX_CHUNK_COUNT = 1 << 23  # 8 Mi chunks: 8 TiB at 1 MiB, see envelope.py
TAG_BYTES = 16  # Poly1305 tag appended to every ciphertext
ID_BYTES = 32

_AD = struct.Struct(">16sQQ")
_AD_TAG = b"p2pshare/chunk/1"


def block_id(data: bytes) -> bytes:
    """BLAKE2b-256 of ``data``: the id of a chunk, index block or envelope."""
    return hashlib.blake2b(data, digest_size=ID_BYTES).digest()


class Geometry:
    """Where each chunk of a file lies, from ``size`` and ``chunk_size``.

    Pure arithmetic, shared by the adder, the downloader and the server.
    """

    __slots__ = ("chunk_size", "count", "size", "tail_padded")

    def __init__(self, size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        check_chunk_size(chunk_size)
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        self.chunk_size = chunk_size
        self.count = max(1, -(-size // chunk_size))
        if self.count > MAX_CHUNK_COUNT:
            raise FormatError("file too large for this chunk size")
        tail = size - (self.count - 1) * chunk_size
        self.tail_padded = max(PAD_BYTES, -(-tail // PAD_BYTES) * PAD_BYTES)

    def offset(self, index: int) -> int:
        """Plaintext offset of chunk ``index``."""
        return index * self.chunk_size

    def plain_len(self, index: int) -> int:
        """Real (unpadded) plaintext bytes in chunk ``index``."""
        self._check(index)
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def padded_len(self, index: int) -> int:
        """Plaintext bytes sealed for chunk ``index`` (with padding)."""
        self._check(index)
        return self.tail_padded if index == self.count - 1 else self.chunk_size

    def cipher_len(self, index: int) -> int:
        """Ciphertext bytes of chunk ``index``."""
        return self.padded_len(index) + TAG_BYTES

    def _check(self, index: int) -> None:
        if not 0 <= index < self.count:
            raise IndexError(f"chunk {index} out of range 0..{self.count - 1}")

    def __repr__(self) -> str:
        return f"Geometry(size={self.size}, chunk_size={self.chunk_size})"


def check_chunk_size(chunk_size: int) -> None:
    if not (PAD_BYTES <= chunk_size <= MAX_CHUNK_SIZE and chunk_size % PAD_BYTES == 0):
        raise FormatError(
            f"chunk size: {chunk_size} is not a multiple of 4096 in 4 KiB..16 MiB"
        )


def _nonce(index: int) -> bytes:
    return index.to_bytes(8, "big") + bytes(16)


def _ad(index: int, count: int) -> bytes:
    return _AD.pack(_AD_TAG, index, count)


def seal_chunk(chunk_key: bytes, index: int, count: int, padded_plain: bytes) -> bytes:
    """Seal one (already padded) plaintext chunk. Deterministic."""
    return xchacha_seal(chunk_key, _nonce(index), _ad(index, count), padded_plain)


def open_chunk(chunk_key: bytes, index: int, count: int, cipher: bytes) -> bytes:
    """Open one chunk; returns the padded plaintext.

    Raises:
        IntegrityError: the ciphertext, index or count does not authenticate.
    """
    if len(cipher) < TAG_BYTES:
        raise IntegrityError(f"chunk {index}: authentication failed (too short)")
    try:
        return xchacha_open(chunk_key, _nonce(index), _ad(index, count), cipher)
    except AuthenticationFailed as exc:
        raise IntegrityError(f"chunk {index}: authentication failed") from exc
