"""Erasure coding of a share's ciphertext: stripes, fragments, the signed map.

Theory of operation
-------------------
A share kept as full replicas costs one copy per seed. Kept *erasure coded*
``K/N``, it costs N/K: every **stripe** of K consecutive ciphertext chunks
(stripe *s* holds chunks ``s*K .. s*K+K-1``) becomes N **fragments** of one
chunk each, and any K fragments of a stripe rebuild its chunks. Seed *j*
keeps **column** *j*: fragment *j* of every stripe.

The code is systematic (zfec, a Reed-Solomon code over GF(2^8)):
fragments ``0..K-1`` *are* the stripe's chunks, so the seeds of those
columns hold ordinary ciphertext chunks that anyone can fetch and verify
against their chunk ids; only columns ``K..N-1`` hold **parity**. Before
encoding, every chunk of a stripe is padded with zero bytes to the length
of the stripe's first chunk (only the file's last chunk is shorter), and a
last stripe of fewer than K chunks is completed with all-zero chunks that
are never stored or sent. Ciphertext is encoded, never plaintext: a seed
keeps and serves bytes it cannot read.

A parity fragment is not covered by the root id (the root was fixed
before anyone chose an erasure code), so its id is published in the
**erasure map**, signed with the share's access key (the Ed25519 key
derived from the file key; its public half is in the public envelope), so
anybody holding the envelope (a getter, a keyless seed) verifies it. The
signed bytes::

    b"p2pshare/emap/1\\x00"   domain tag
    root                    32 bytes
    u8 k || u8 n
    ids                     (n-k) ids of 32 bytes per stripe, stripe-major:
                            the id of parity column c of stripe s is at
                            ((s * (n-k)) + (c - k)) * 32

Wire form: canonical msgpack ``{"v": 1, "root", "k", "n", "ids", "sig"}``,
at most :data:`MAX_MAP_BYTES` (a map for ~768 GiB at 3/5 and 1 MiB chunks);
a larger share is refused erasure coding and keeps full replicas.
:meth:`ErasureMap.from_bytes` is strict; :meth:`ErasureMap.verify` checks the
signature, the root and that the ids cover exactly the envelope's stripes.
Known answers: ``tests/data/vectors/emap-v1.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied, FormatError, IntegrityError
from p2pshare.format import canonical, signed
from p2pshare.format.chunks import ID_BYTES
from p2pshare.format.envelope import Envelope
from p2pshare.format.signed import SIGNATURE_BYTES

__all__ = [
    "EMAP_TAG",
    "MAX_MAP_BYTES",
    "MAX_N",
    "ErasureMap",
    "Stripes",
    "decode_stripe",
    "encode_parity",
    "parse_erasure",
]

EMAP_TAG = b"p2pshare/emap/1\x00"
EMAP_VERSION = 1
MAX_N = 32  # fragments per stripe: more seeds than anyone runs for one share
MAX_MAP_BYTES = (16 << 20) - 4096  # ids; the encoded map fits one transfer block
_KEYS = frozenset({"v", "root", "k", "n", "ids", "sig"})


def parse_erasure(text: str) -> tuple[int, int]:
    """``"3/5"`` → ``(3, 5)``: any 3 of 5 fragments rebuild a stripe.

    Raises:
        FormatError: not ``K/N`` with ``1 <= K < N <= MAX_N``.
    """
    k_text, sep, n_text = text.strip().partition("/")
    if not sep or not k_text.isdigit() or not n_text.isdigit():
        raise FormatError(f"erasure {text!r:.20}: expected K/N, such as 3/5")
    k, n = int(k_text), int(n_text)
    if not 1 <= k < n <= MAX_N:
        raise FormatError(
            f"erasure {text!r:.20}: need 1 <= K < N <= {MAX_N} (K of N rebuild)"
        )
    return k, n


@dataclass(frozen=True, slots=True)
class Stripes:
    """Stripe geometry of one share: ``count`` chunks coded ``k/n``.

    ``cipher_len(i)`` is chunk *i*'s ciphertext length (the envelope's).
    """

    k: int
    n: int
    count: int
    chunk_cipher: int  # every chunk but the last
    last_cipher: int

    @classmethod
    def of(cls, env: Envelope, k: int, n: int) -> Stripes:
        """The geometry of the share ``env`` describes, coded ``k/n``."""
        return cls(k, n, env.count, env.cipher_len(0), env.cipher_len(env.count - 1))

    @property
    def chunk_bytes(self) -> int:
        """The ciphertext of every chunk, all columns together."""
        return (self.count - 1) * self.chunk_cipher + self.last_cipher

    def column_replica_bytes(self, full: int, column: int, map_size: int) -> int:
        """What a seed keeping ``column`` stores, from what a full replica
        (``full``: envelope, index, chunks) takes: the column and the map
        in place of the chunks."""
        return full - self.chunk_bytes + self.column_bytes(column) + map_size

    @property
    def stripes(self) -> int:
        return -(-self.count // self.k)

    @property
    def parity(self) -> int:
        return self.n - self.k

    def chunks(self, s: int) -> range:
        """The chunk indices of stripe ``s`` (fewer than k in the last)."""
        return range(s * self.k, min(s * self.k + self.k, self.count))

    def stripe_of(self, i: int) -> int:
        return i // self.k

    def cipher_len(self, i: int) -> int:
        return self.last_cipher if i == self.count - 1 else self.chunk_cipher

    def frag_len(self, s: int) -> int:
        """Every fragment of stripe ``s`` is as long as its first chunk."""
        return self.cipher_len(s * self.k)

    def column_chunks(self, column: int) -> list[int]:
        """The chunks a systematic column (``< k``) holds."""
        return list(range(column, self.count, self.k)) if column < self.k else []

    def column_bytes(self, column: int) -> int:
        """What column ``column`` stores: its chunks, or its parity."""
        if column < self.k:
            return sum(self.cipher_len(i) for i in self.column_chunks(column))
        return sum(self.frag_len(s) for s in range(self.stripes))


def _pad(data: bytes, size: int) -> bytes:
    return data if len(data) == size else data + bytes(size - len(data))


def encode_parity(geo: Stripes, s: int, chunks: Sequence[bytes]) -> list[bytes]:
    """The parity fragments (columns k..n-1) of stripe ``s`` from its chunks'
    ciphertext, in chunk order (the stripe's real chunks only)."""
    size = geo.frag_len(s)
    blocks = [_pad(c, size) for c in chunks]
    blocks += [bytes(size)] * (geo.k - len(blocks))
    import zfec  # here: its package import costs ~10 ms every node start

    out = zfec.Encoder(geo.k, geo.n).encode(tuple(blocks), tuple(range(geo.k, geo.n)))
    return [bytes(b) for b in out]


def decode_stripe(geo: Stripes, s: int, frags: Mapping[int, bytes]) -> list[bytes]:
    """Stripe ``s``'s chunk ciphertexts from any k fragments (column →
    bytes); real chunks only, each cut to its length. The caller verifies
    each against its chunk id.

    Raises:
        IntegrityError: fewer than k fragments, or one of the wrong length.
    """
    size = geo.frag_len(s)
    real = len(geo.chunks(s))
    have = dict(frags)
    for c in range(real, geo.k):  # the zero chunks completing a last stripe
        have.setdefault(c, bytes(size))
    cols = sorted(have)[: geo.k]
    if len(cols) < geo.k:
        raise IntegrityError(
            f"stripe {s}: not enough fragments ({len(cols)} of {geo.k} needed)"
        )
    if any(len(have[c]) != size for c in cols):
        raise IntegrityError(f"stripe {s}: a fragment has the wrong length")
    if cols == list(range(geo.k)):
        primary = [have[c] for c in cols]
    else:
        import zfec  # see encode_parity

        primary = [
            bytes(b)
            for b in zfec.Decoder(geo.k, geo.n).decode(
                tuple(have[c] for c in cols), tuple(cols)
            )
        ]
    return [primary[j][: geo.cipher_len(i)] for j, i in enumerate(geo.chunks(s))]


def map_message(root: bytes, k: int, n: int, ids: bytes) -> bytes:
    """The exact bytes an erasure map signs (see the module docstring)."""
    return b"".join((EMAP_TAG, root, bytes((k, n)), ids))


@dataclass(frozen=True, slots=True)
class ErasureMap:
    """The signed ids of one share's parity fragments.

    Raises:
        FormatError: a field has the wrong type or size.
    """

    root: bytes
    k: int
    n: int
    ids: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        signed.check_bytes("erasure map", "root", self.root, ID_BYTES, ID_BYTES)
        signed.check_int("erasure map", "n", self.n, 2, MAX_N)
        signed.check_int("erasure map", "k", self.k, 1, self.n - 1)
        signed.check_bytes("erasure map", "ids", self.ids, 0, MAX_MAP_BYTES)
        if len(self.ids) % ((self.n - self.k) * ID_BYTES):
            raise FormatError("erasure map: ids do not fill whole stripes")
        signed.check_bytes(
            "erasure map", "signature", self.signature, SIGNATURE_BYTES, SIGNATURE_BYTES
        )

    @property
    def stripes(self) -> int:
        return len(self.ids) // ((self.n - self.k) * ID_BYTES)

    def parity_id(self, s: int, column: int) -> bytes:
        if not 0 <= s < self.stripes or not self.k <= column < self.n:
            raise IndexError((s, column))
        at = (s * (self.n - self.k) + column - self.k) * ID_BYTES
        return self.ids[at : at + ID_BYTES]

    def message(self) -> bytes:
        return map_message(self.root, self.k, self.n, self.ids)

    def to_bytes(self) -> bytes:
        return canonical.pack(
            {
                "v": EMAP_VERSION,
                "root": self.root,
                "k": self.k,
                "n": self.n,
                "ids": self.ids,
                "sig": self.signature,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ErasureMap:
        """Decode strictly (the signature is checked by :meth:`verify`).

        Raises:
            FormatError: oversized (checked first), malformed, non-canonical,
                wrong keys, version, types or sizes.
        """
        value = canonical.unpack_record(
            data,
            what="erasure map",
            keys=_KEYS,
            version=EMAP_VERSION,
            max_len=MAX_MAP_BYTES + 256,
        )
        return cls(
            root=value["root"],
            k=value["k"],
            n=value["n"],
            ids=value["ids"],
            signature=value["sig"],
        )

    def verify(self, access_public: bytes, *, root: bytes, count: int) -> None:
        """Check that this map is the owner's, for ``root`` of ``count`` chunks.

        Raises:
            IntegrityError: another root, the wrong number of stripes, or a
                bad signature.
        """
        if self.root != root:
            raise IntegrityError("erasure map: for another share")
        if self.stripes != -(-count // self.k):
            raise IntegrityError("erasure map: does not cover the share's stripes")
        try:
            signed.check_signature(
                "erasure map",
                access_public,
                self.message(),
                self.signature,
                expires=1,
                now=0,
            )
        except AccessDenied as exc:
            raise IntegrityError(str(exc)) from None

    @classmethod
    def open(cls, data: bytes, env: Envelope, root: bytes) -> ErasureMap:
        """Decode a map a provider sent and check it is the owner's, for
        ``root`` whose envelope is ``env``.

        Raises:
            IntegrityError: malformed, or not the owner's map of this share.
        """
        try:
            emap = cls.from_bytes(data)
        except FormatError as exc:
            raise IntegrityError(f"erasure map: {exc}") from None
        emap.verify(env.access_public, root=root, count=env.count)
        return emap

    @classmethod
    def make(
        cls,
        signing_key: SigningKey,
        root: bytes,
        geo: Stripes,
        parity_ids: Sequence[bytes],
    ) -> ErasureMap:
        """Sign the map of ``parity_ids`` (stripe-major, as the docstring)."""
        ids = b"".join(parity_ids)
        if len(ids) > MAX_MAP_BYTES:
            raise FormatError(
                "erasure map: the share has too many chunks to erasure code;"
                " keep it with --replicas"
            )
        sig = signed.sign(signing_key, map_message(root, geo.k, geo.n, ids))
        return cls(root=root, k=geo.k, n=geo.n, ids=ids, signature=sig)
