"""The public envelope of a share, its index blocks and its sealed meta.

Theory of operation
-------------------
The envelope is the one public description of a share. It is canonical
msgpack (see ``canonical.py``) of a map::

    v     format version (1)
    cs    chunk size in bytes
    n     chunk count
    tail  padded plaintext length of the last chunk (multiple of 4096)
    ids   n chunk ids, 32 bytes each, concatenated  -- when n <= 1024
    idx   index block ids, concatenated             -- when n >  1024
    meta  sealed meta (see below)
    ak    access public key (Ed25519, 32 bytes)

The **root id** of a share is BLAKE2b-256 of these bytes, so it commits to
every chunk id, the meta and the access key. Exactly one of ``ids``/``idx``
is present. An index block is the concatenation of up to 8192 chunk ids
(256 KiB); block *j* holds the ids of chunks ``8192*j ..``. Its id is its
BLAKE2b-256. So a 100 GiB file at 1 MiB chunks needs 13 index blocks and an
envelope of about 1.5 KiB, and the envelope is bounded by ``MAX_ENVELOPE_BYTES``
whatever the file size.

The **meta** is sealed with XChaCha20-Poly1305 under the meta subkey with a
random 24-byte nonce (prepended). Its plaintext is a 4-byte big-endian length,
canonical msgpack ``{kind, mime, mtime_ns, name, size}``, and zero padding
to a multiple of 1024 bytes. Every valid meta fits in 1024 bytes (at most
about 830: a 255-byte name, a 127-character media type, two 64-bit ints), so
every sealed meta has the same length and the envelope reveals neither the
length of the name nor that of the media type.

Decoding is strict: unknown or missing keys, wrong types, lengths that do
not add up, or a non-canonical encoding raise ``FormatError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import nacl.utils
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from p2pshare.errors import FormatError, IntegrityError
from p2pshare.format import canonical
from p2pshare.format.chunks import (
    ID_BYTES,
    MAX_CHUNK_COUNT,
    PAD_BYTES,
    TAG_BYTES,
    block_id,
    check_chunk_size,
)
from p2pshare.format.names import check_name

__all__ = [
    "FORMAT_VERSION",
    "IDS_PER_INDEX_BLOCK",
    "INLINE_MAX_IDS",
    "MAX_ENVELOPE_BYTES",
    "MAX_INDEX_BLOCKS",
    "Envelope",
    "Meta",
    "build_envelope",
    "open_meta",
    "seal_meta",
]

FORMAT_VERSION = 1
INLINE_MAX_IDS = 1024  # 32 KiB of ids inline; beyond that, index blocks
IDS_PER_INDEX_BLOCK = 8192  # 256 KiB per index block: one transfer frame
MAX_INDEX_BLOCKS = MAX_CHUNK_COUNT // IDS_PER_INDEX_BLOCK
MAX_META_PLAIN = 4096
MAX_SEALED_META = MAX_META_PLAIN + 24 + TAG_BYTES
# 32 KiB inline ids + meta + a few small fields, rounded up generously.
MAX_ENVELOPE_BYTES = 48 * 1024
META_PAD_BYTES = 1024  # one size for every valid meta: hides name length
MAX_MIME_LEN = 127

_META_AD = b"p2pshare/meta/1"
_NONCE_BYTES = 24
Kind = Literal["file", "folder"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Meta:
    """What the envelope hides: name, exact size, mtime, media type, kind."""

    name: str
    size: int
    mtime_ns: int
    kind: Kind
    mime: str = "application/octet-stream"

    def __post_init__(self) -> None:
        check_name(self.name, what="share name")
        if self.kind not in ("file", "folder"):
            raise FormatError(f"meta: unknown kind {self.kind!r}")
        if not 0 <= self.size < 1 << 63:
            raise FormatError("meta: size out of range")
        if not -(1 << 63) <= self.mtime_ns < 1 << 63:
            raise FormatError("meta: mtime out of range")
        if len(self.mime) > MAX_MIME_LEN or not self.mime.isprintable():
            raise FormatError("meta: invalid media type")

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mime": self.mime,
            "mtime_ns": self.mtime_ns,
            "name": self.name,
            "size": self.size,
        }

    def __repr__(self) -> str:  # names are private: keep them out of logs
        return f"Meta(kind={self.kind}, size={self.size})"


def seal_meta(
    meta_key: bytes, meta: Meta, *, rng: Callable[[int], bytes] = nacl.utils.random
) -> bytes:
    """Seal ``meta``: random nonce || XChaCha20-Poly1305(padded plaintext)."""
    body = canonical.pack(meta.to_wire())
    plain = len(body).to_bytes(4, "big") + body
    plain += bytes(-len(plain) % META_PAD_BYTES)
    if len(plain) > MAX_META_PLAIN:
        raise FormatError("meta: too large")
    nonce = rng(_NONCE_BYTES)
    sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(
        plain, _META_AD, nonce, meta_key
    )
    return bytes(nonce) + sealed


def open_meta(meta_key: bytes, sealed: bytes) -> Meta:
    """Open and validate sealed meta.

    Raises:
        IntegrityError: the meta does not authenticate under ``meta_key``.
        FormatError: it authenticates but is malformed.
    """
    if len(sealed) < _NONCE_BYTES + TAG_BYTES:
        raise FormatError("meta: too short")
    try:
        plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[_NONCE_BYTES:], _META_AD, sealed[:_NONCE_BYTES], meta_key
        )
    except CryptoError as exc:
        raise IntegrityError("meta: authentication failed") from exc
    length = int.from_bytes(plain[:4], "big")
    if len(plain) % META_PAD_BYTES or 4 + length > len(plain):
        raise FormatError("meta: bad padding")
    if any(plain[4 + length :]):
        raise FormatError("meta: non-zero padding")
    raw = canonical.unpack(plain[4 : 4 + length], max_len=MAX_META_PLAIN, max_items=8)
    if not isinstance(raw, dict) or set(raw) != {
        "kind",
        "mime",
        "mtime_ns",
        "name",
        "size",
    }:
        raise FormatError("meta: wrong fields")
    _want_types(
        raw, {"kind": str, "mime": str, "mtime_ns": int, "name": str, "size": int}
    )
    return Meta(**raw)


def _want_types(raw: dict[str, Any], types: dict[str, type]) -> None:
    for key, typ in types.items():
        if key not in raw:  # optional field absent (ids/idx); nil is a wrong type
            continue
        value = raw[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise FormatError(f"{key}: expected {typ.__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A decoded, validated envelope. Build with :func:`build_envelope`."""

    chunk_size: int
    count: int
    tail: int
    chunk_ids: bytes | None  # inline ids (count * 32 bytes), or None
    index_ids: bytes | None  # index block ids, or None
    sealed_meta: bytes
    access_public: bytes
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.version != FORMAT_VERSION:
            raise FormatError(f"envelope: unsupported format version {self.version}")
        check_chunk_size(self.chunk_size)
        if not 1 <= self.count <= MAX_CHUNK_COUNT:
            raise FormatError("envelope: chunk count out of range")
        if not (
            PAD_BYTES <= self.tail <= self.chunk_size and self.tail % PAD_BYTES == 0
        ):
            raise FormatError("envelope: bad tail length")
        if (self.chunk_ids is None) == (self.index_ids is None):
            raise FormatError("envelope: needs exactly one of ids and idx")
        if self.chunk_ids is not None:
            if (
                self.count > INLINE_MAX_IDS
                or len(self.chunk_ids) != self.count * ID_BYTES
            ):
                raise FormatError("envelope: inline ids do not match the chunk count")
        elif self.index_ids is not None and (
            self.count <= INLINE_MAX_IDS
            or len(self.index_ids) != self.index_block_count * ID_BYTES
        ):
            raise FormatError("envelope: index ids do not match the chunk count")
        if len(self.access_public) != 32:
            raise FormatError("envelope: bad access key")
        if not _NONCE_BYTES + TAG_BYTES <= len(self.sealed_meta) <= MAX_SEALED_META:
            raise FormatError("envelope: bad sealed meta length")

    # -- geometry visible without the key ------------------------------------
    def cipher_len(self, index: int) -> int:
        """Ciphertext length of chunk ``index``."""
        if not 0 <= index < self.count:
            raise FormatError(f"chunk {index} out of range")
        padded = self.tail if index == self.count - 1 else self.chunk_size
        return padded + TAG_BYTES

    @property
    def padded_size(self) -> int:
        """Plaintext size rounded up to 4 KiB: all the envelope reveals."""
        return (self.count - 1) * self.chunk_size + self.tail

    # -- index blocks --------------------------------------------------------
    @property
    def index_block_count(self) -> int:
        if self.count <= INLINE_MAX_IDS:
            return 0
        return -(-self.count // IDS_PER_INDEX_BLOCK)

    def index_block_id(self, j: int) -> bytes:
        if self.index_ids is None or not 0 <= j < self.index_block_count:
            raise FormatError(f"index block {j} out of range")
        return self.index_ids[j * ID_BYTES : (j + 1) * ID_BYTES]

    def index_block_len(self, j: int) -> int:
        """Expected byte length of index block ``j``."""
        first = j * IDS_PER_INDEX_BLOCK
        return min(IDS_PER_INDEX_BLOCK, self.count - first) * ID_BYTES

    def check_index_block(self, j: int, data: bytes) -> None:
        """Verify index block ``j`` against the envelope.

        Raises:
            IntegrityError: the bytes do not hash to the id the envelope lists.
        """
        if len(data) != self.index_block_len(j) or block_id(
            data
        ) != self.index_block_id(j):
            raise IntegrityError(f"index block {j}: does not match the envelope")

    # -- encoding ------------------------------------------------------------
    def encode(self) -> bytes:
        wire: dict[str, Any] = {
            "v": self.version,
            "cs": self.chunk_size,
            "n": self.count,
            "tail": self.tail,
            "meta": self.sealed_meta,
            "ak": self.access_public,
        }
        if self.chunk_ids is not None:
            wire["ids"] = self.chunk_ids
        else:
            wire["idx"] = self.index_ids
        return canonical.pack(wire)

    @property
    def root_id(self) -> bytes:
        return block_id(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """Strictly decode envelope bytes.

        Raises:
            FormatError: on any deviation from the canonical form.
        """
        raw = canonical.unpack(data, max_len=MAX_ENVELOPE_BYTES, max_items=16)
        if not isinstance(raw, dict):
            raise FormatError("envelope: not a map")
        base = {"v", "cs", "n", "tail", "meta", "ak"}
        if set(raw) not in (base | {"ids"}, base | {"idx"}):
            raise FormatError("envelope: wrong fields")
        _want_types(
            raw,
            {
                "v": int,
                "cs": int,
                "n": int,
                "tail": int,
                "meta": bytes,
                "ak": bytes,
                "ids": bytes,
                "idx": bytes,
            },
        )
        return cls(
            version=raw["v"],
            chunk_size=raw["cs"],
            count=raw["n"],
            tail=raw["tail"],
            chunk_ids=raw.get("ids"),
            index_ids=raw.get("idx"),
            sealed_meta=raw["meta"],
            access_public=raw["ak"],
        )

    @classmethod
    def verify_and_decode(cls, root_id: bytes, data: bytes) -> Envelope:
        """Check ``data`` hashes to ``root_id``, then decode it.

        Raises:
            IntegrityError: the bytes are not the envelope of ``root_id``.
            FormatError: they are, but malformed.
        """
        if block_id(data) != root_id:
            raise IntegrityError("envelope: does not match the root id")
        return cls.decode(data)


def build_envelope(
    *,
    chunk_size: int,
    tail: int,
    chunk_ids: Sequence[bytes],
    sealed_meta: bytes,
    access_public: bytes,
) -> tuple[Envelope, list[bytes]]:
    """Assemble an envelope from chunk ids; returns it and its index blocks."""
    count = len(chunk_ids)
    if count <= INLINE_MAX_IDS:
        env = Envelope(
            chunk_size=chunk_size,
            count=count,
            tail=tail,
            chunk_ids=b"".join(chunk_ids),
            index_ids=None,
            sealed_meta=sealed_meta,
            access_public=access_public,
        )
        return env, []
    blocks = [
        b"".join(chunk_ids[i : i + IDS_PER_INDEX_BLOCK])
        for i in range(0, count, IDS_PER_INDEX_BLOCK)
    ]
    env = Envelope(
        chunk_size=chunk_size,
        count=count,
        tail=tail,
        chunk_ids=None,
        index_ids=b"".join(block_id(b) for b in blocks),
        sealed_meta=sealed_meta,
        access_public=access_public,
    )
    return env, blocks
