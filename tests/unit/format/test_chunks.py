"""Chunk geometry, sealing and ids (p2pshare/format/chunks.py)."""

import hashlib

import pytest

from p2pshare.errors import FormatError, IntegrityError
from p2pshare.format.aead import AuthenticationFailed
from p2pshare.format.chunks import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_COUNT,
    MAX_CHUNK_SIZE,
    PAD_BYTES,
    TAG_BYTES,
    Geometry,
    block_id,
    open_chunk,
    seal_chunk,
)
from p2pshare.format.keys import FileKeys

KEY = FileKeys.from_key(bytes(range(32))).chunk
OTHER_KEY = FileKeys.from_key(bytes(range(1, 33))).chunk
KiB = 1024


# (chunk size n, file size, count, padded tail, real bytes in the last chunk)
# The boundary matrix 0, 1, n-1, n, n+1, k*n (and k*n plus a bit), at the
# smallest chunk size, at a larger one where the padded tail can be shorter
# than a chunk, and at the default 1 MiB.
MATRIX = [
    (4 * KiB, 0, 1, 4 * KiB, 0),
    (4 * KiB, 1, 1, 4 * KiB, 1),
    (4 * KiB, 4 * KiB - 1, 1, 4 * KiB, 4 * KiB - 1),
    (4 * KiB, 4 * KiB, 1, 4 * KiB, 4 * KiB),
    (4 * KiB, 4 * KiB + 1, 2, 4 * KiB, 1),
    (4 * KiB, 5 * 4 * KiB, 5, 4 * KiB, 4 * KiB),
    (16 * KiB, 0, 1, 4 * KiB, 0),
    (16 * KiB, 1, 1, 4 * KiB, 1),
    (16 * KiB, 16 * KiB - 1, 1, 16 * KiB, 16 * KiB - 1),
    (16 * KiB, 16 * KiB, 1, 16 * KiB, 16 * KiB),
    (16 * KiB, 16 * KiB + 1, 2, 4 * KiB, 1),
    (16 * KiB, 3 * 16 * KiB, 3, 16 * KiB, 16 * KiB),
    (16 * KiB, 3 * 16 * KiB + 4 * KiB + 1, 4, 8 * KiB, 4 * KiB + 1),
    (16 * KiB, 3 * 16 * KiB + 12 * KiB, 4, 12 * KiB, 12 * KiB),
    (DEFAULT_CHUNK_SIZE, 0, 1, 4 * KiB, 0),
    (DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE - 1, 1, DEFAULT_CHUNK_SIZE, 2**20 - 1),
    (DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1, 2, 4 * KiB, 1),
    (DEFAULT_CHUNK_SIZE, 7 * DEFAULT_CHUNK_SIZE, 7, DEFAULT_CHUNK_SIZE, 2**20),
]


@pytest.mark.parametrize(("n", "size", "count", "tail", "last_plain"), MATRIX)
def test_geometry_matrix(n, size, count, tail, last_plain):
    geo = Geometry(size, n)
    assert (geo.size, geo.chunk_size) == (size, n)
    assert geo.count == count
    assert geo.tail_padded == tail
    last = count - 1
    assert geo.plain_len(last) == last_plain
    assert geo.padded_len(last) == tail
    assert geo.cipher_len(last) == tail + TAG_BYTES
    for i in range(last):
        assert geo.offset(i) == i * n
        assert geo.plain_len(i) == geo.padded_len(i) == n
        assert geo.cipher_len(i) == n + TAG_BYTES
    assert geo.offset(last) == last * n


@pytest.mark.parametrize("n", [4 * KiB, 16 * KiB, DEFAULT_CHUNK_SIZE])
def test_geometry_invariants(n):
    sizes = {0, 1, n - 1, n, n + 1, 2 * n, 5 * n - 1, 5 * n + 4095, 5 * n + 4097}
    for size in sizes:
        geo = Geometry(size, n)
        plain = [geo.plain_len(i) for i in range(geo.count)]
        padded = [geo.padded_len(i) for i in range(geo.count)]
        assert sum(plain) == size
        assert all(0 <= p <= q <= n for p, q in zip(plain, padded, strict=True))
        assert all(q % PAD_BYTES == 0 and q >= PAD_BYTES for q in padded)
        # Padding adds less than 4 KiB (or exactly 4 KiB for an empty file).
        assert 0 <= sum(padded) - size < PAD_BYTES or size == 0
        assert geo.tail_padded == padded[-1]


def test_geometry_default_chunk_size_is_1_mib():
    assert DEFAULT_CHUNK_SIZE == 1 << 20
    assert Geometry(10).chunk_size == DEFAULT_CHUNK_SIZE


@pytest.mark.parametrize("index", [-1, 3, 100])
def test_geometry_index_out_of_range(index):
    geo = Geometry(3 * 4096, 4096)
    with pytest.raises(IndexError):
        geo.plain_len(index)
    with pytest.raises(IndexError):
        geo.padded_len(index)
    with pytest.raises(IndexError):
        geo.cipher_len(index)


def test_geometry_rejects_negative_size():
    with pytest.raises(ValueError, match="size"):
        Geometry(-1, 4096)


def test_geometry_chunk_count_limit():
    assert Geometry(MAX_CHUNK_COUNT * 4096, 4096).count == MAX_CHUNK_COUNT
    with pytest.raises(FormatError, match="too large"):
        Geometry(MAX_CHUNK_COUNT * 4096 + 1, 4096)


@pytest.mark.parametrize(
    "chunk_size",
    [0, 1, -4096, 4095, 4097, 6144, 3 * 4096 + 1, MAX_CHUNK_SIZE + 4096, 32 << 20],
)
def test_bad_chunk_sizes_rejected(chunk_size):
    with pytest.raises(FormatError, match="chunk size"):
        Geometry(100, chunk_size)


@pytest.mark.parametrize("chunk_size", [4096, 8192, 3 * 4096, 1 << 20, MAX_CHUNK_SIZE])
def test_good_chunk_sizes_accepted(chunk_size):
    assert Geometry(100, chunk_size).chunk_size == chunk_size


def test_geometry_repr():
    assert repr(Geometry(5, 4096)) == "Geometry(size=5, chunk_size=4096)"


# -- sealing ------------------------------------------------------------------


def _chunks(data, chunk_size):
    geo = Geometry(len(data), chunk_size)
    out = []
    for i in range(geo.count):
        chunk = data[geo.offset(i) : geo.offset(i) + geo.plain_len(i)]
        out.append(chunk + bytes(geo.padded_len(i) - len(chunk)))
    return geo, out


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 8192 + 5])
def test_seal_open_round_trip(size):
    data = bytes(i % 253 for i in range(size))
    geo, chunks = _chunks(data, 8192)
    opened = []
    for i, chunk in enumerate(chunks):
        cipher = seal_chunk(KEY, i, geo.count, chunk)
        assert len(cipher) == geo.cipher_len(i) == len(chunk) + TAG_BYTES
        # Deterministic: a node can re-create the ciphertext from plaintext.
        assert seal_chunk(KEY, i, geo.count, chunk) == cipher
        opened.append(open_chunk(KEY, i, geo.count, cipher))
    assert opened == chunks
    assert b"".join(opened)[:size] == data


def test_same_plaintext_at_other_index_seals_differently():
    chunk = bytes(4096)
    sealed = {seal_chunk(KEY, i, 4, chunk) for i in range(4)}
    assert len(sealed) == 4
    assert seal_chunk(KEY, 0, 4, chunk) != seal_chunk(KEY, 0, 5, chunk)
    assert seal_chunk(KEY, 0, 4, chunk) != seal_chunk(OTHER_KEY, 0, 4, chunk)


CHUNK = bytes(range(256)) * 16
CIPHER = seal_chunk(KEY, 2, 5, CHUNK)


def _assert_integrity_error(key, index, count, cipher):
    with pytest.raises(IntegrityError, match=f"chunk {index}: authentication failed"):
        open_chunk(key, index, count, cipher)


def test_open_chunk_ok():
    assert open_chunk(KEY, 2, 5, CIPHER) == CHUNK


@pytest.mark.parametrize("index", [0, 1, 3, 4, 2**32 + 2])
def test_open_fails_on_wrong_index(index):
    _assert_integrity_error(KEY, index, 5, CIPHER)


@pytest.mark.parametrize("count", [3, 4, 6, 2**40])
def test_open_fails_on_wrong_count(count):
    _assert_integrity_error(KEY, 2, count, CIPHER)


@pytest.mark.parametrize(
    "pos", [0, 1, 100, len(CHUNK) - 1, len(CHUNK), len(CIPHER) - 1]
)
@pytest.mark.parametrize("bit", [0, 7])
def test_open_fails_on_flipped_bit(pos, bit):
    bad = bytearray(CIPHER)
    bad[pos] ^= 1 << bit
    _assert_integrity_error(KEY, 2, 5, bytes(bad))


def test_open_fails_on_wrong_key():
    _assert_integrity_error(OTHER_KEY, 2, 5, CIPHER)


@pytest.mark.parametrize(
    "cipher",
    [b"", CIPHER[:TAG_BYTES], CIPHER[:-1], CIPHER + b"\x00", CIPHER[1:]],
    ids=["empty", "tag-only", "truncated", "extended", "shifted"],
)
def test_open_fails_on_wrong_length(cipher):
    _assert_integrity_error(KEY, 2, 5, cipher)


def test_integrity_error_chains_the_crypto_error():
    with pytest.raises(IntegrityError) as info:
        open_chunk(OTHER_KEY, 2, 5, CIPHER)
    assert isinstance(info.value.__cause__, AuthenticationFailed)
    assert isinstance(info.value, FormatError)
    assert info.value.code == "integrity"


def test_block_id_is_blake2b_256():
    for data in (b"", b"x", CIPHER):
        assert block_id(data) == hashlib.blake2b(data, digest_size=32).digest()
    assert len(block_id(b"")) == 32
