"""The public envelope, its index blocks and the sealed meta (envelope.py)."""

import hashlib

import msgpack
import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt
from nacl.exceptions import CryptoError

from p2pshare.errors import FolderListingError, FormatError, IntegrityError
from p2pshare.format import canonical
from p2pshare.format.chunks import MAX_CHUNK_COUNT, Geometry, block_id
from p2pshare.format.envelope import (
    IDS_PER_INDEX_BLOCK,
    INLINE_MAX_IDS,
    MAX_ENVELOPE_BYTES,
    MAX_INDEX_BLOCKS,
    MAX_MIME_LEN,
    Envelope,
    Meta,
    build_envelope,
    open_meta,
    seal_meta,
)
from p2pshare.format.keys import FileKeys

KEYS = FileKeys.from_key(bytes(range(32)))
OTHER = FileKeys.from_key(bytes(range(1, 33)))
NONCE = bytes(range(100, 124))
META = Meta(name="holiday.mkv", size=3 * 4096 + 5, mtime_ns=1_700_000_000, kind="file")
GiB = 1 << 30


def rng(n):
    assert n == 24
    return NONCE


SEALED = seal_meta(KEYS.meta, META, rng=rng)


def fake_ids(count):
    """Distinct 32-byte stand-ins for chunk ids (no need to encrypt)."""
    return [i.to_bytes(32, "big") for i in range(count)]


def envelope(count, *, chunk_size=4096, tail=4096):
    return build_envelope(
        chunk_size=chunk_size,
        tail=tail,
        chunk_ids=fake_ids(count),
        sealed_meta=SEALED,
        access_public=KEYS.access_public,
    )


def wire_of(env):
    """The envelope as a plain dict, for crafting bad variants."""
    return canonical.unpack(env.encode(), max_len=MAX_ENVELOPE_BYTES)


# -- build, encode, decode ----------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, INLINE_MAX_IDS])
def test_inline_round_trip(count):
    env, blocks = envelope(count)
    assert blocks == []
    assert env.count == count
    assert env.chunk_ids == b"".join(fake_ids(count))
    assert env.index_ids is None
    assert env.index_block_count == 0
    data = env.encode()
    assert Envelope.decode(data) == env
    assert Envelope.decode(data).encode() == data
    assert set(wire_of(env)) == {"v", "cs", "n", "tail", "meta", "ak", "ids"}


@pytest.mark.parametrize(
    ("count", "block_sizes"),
    [
        (INLINE_MAX_IDS + 1, [INLINE_MAX_IDS + 1]),
        (IDS_PER_INDEX_BLOCK, [IDS_PER_INDEX_BLOCK]),
        (IDS_PER_INDEX_BLOCK + 1, [IDS_PER_INDEX_BLOCK, 1]),
        (3 * IDS_PER_INDEX_BLOCK - 7, [IDS_PER_INDEX_BLOCK] * 2 + [8185]),
    ],
)
def test_index_block_round_trip(count, block_sizes):
    env, blocks = envelope(count)
    ids = fake_ids(count)
    assert env.chunk_ids is None
    assert env.index_block_count == len(block_sizes) == len(blocks)
    assert [len(b) // 32 for b in blocks] == block_sizes
    assert b"".join(blocks) == b"".join(ids)  # block j holds ids 8192*j ..
    assert env.index_ids == b"".join(block_id(b) for b in blocks)
    for j, block in enumerate(blocks):
        assert env.index_block_id(j) == block_id(block)
        assert env.index_block_len(j) == len(block)
        env.check_index_block(j, block)
    data = env.encode()
    assert Envelope.decode(data) == env
    assert set(wire_of(env)) == {"v", "cs", "n", "tail", "meta", "ak", "idx"}


def test_check_index_block_rejects_wrong_bytes():
    env, blocks = envelope(IDS_PER_INDEX_BLOCK + 1)
    with pytest.raises(IntegrityError, match="index block 1"):
        env.check_index_block(1, blocks[0])
    with pytest.raises(IntegrityError, match="index block 0"):
        env.check_index_block(0, blocks[0][:-32])
    bad = bytearray(blocks[1])
    bad[5] ^= 1
    with pytest.raises(IntegrityError, match="index block 1"):
        env.check_index_block(1, bytes(bad))


def test_index_block_id_out_of_range():
    env, _ = envelope(IDS_PER_INDEX_BLOCK + 1)
    for j in (-1, 2):
        with pytest.raises(FormatError, match="out of range"):
            env.index_block_id(j)
    inline, _ = envelope(3)
    with pytest.raises(FormatError, match="out of range"):
        inline.index_block_id(0)


def test_root_id_is_blake2b_of_the_bytes():
    for count in (1, INLINE_MAX_IDS + 1):
        env, _ = envelope(count)
        data = env.encode()
        assert env.root_id == hashlib.blake2b(data, digest_size=32).digest()
        assert Envelope.verify_and_decode(env.root_id, data) == env


def test_root_id_commits_to_every_field():
    env, _ = envelope(3)
    other_meta = seal_meta(KEYS.meta, META, rng=lambda n: bytes(n))
    variants = [
        envelope(3, tail=8192, chunk_size=8192)[0],
        envelope(4)[0],
        build_envelope(
            chunk_size=4096,
            tail=4096,
            chunk_ids=fake_ids(3)[::-1],
            sealed_meta=SEALED,
            access_public=KEYS.access_public,
        )[0],
        build_envelope(
            chunk_size=4096,
            tail=4096,
            chunk_ids=fake_ids(3),
            sealed_meta=other_meta,
            access_public=KEYS.access_public,
        )[0],
        build_envelope(
            chunk_size=4096,
            tail=4096,
            chunk_ids=fake_ids(3),
            sealed_meta=SEALED,
            access_public=OTHER.access_public,
        )[0],
    ]
    roots = {v.root_id for v in variants} | {env.root_id}
    assert len(roots) == len(variants) + 1


@pytest.mark.parametrize("count", [3, INLINE_MAX_IDS + 1])
def test_verify_and_decode_detects_a_flipped_bit(count):
    env, _ = envelope(count)
    data = env.encode()
    for pos in (0, 1, len(data) // 2, len(data) - 1):
        for bit in (0, 3, 7):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            with pytest.raises(IntegrityError, match="does not match the root id"):
                Envelope.verify_and_decode(env.root_id, bytes(bad))


def test_verify_and_decode_wrong_root():
    env, _ = envelope(3)
    other, _ = envelope(4)
    with pytest.raises(IntegrityError):
        Envelope.verify_and_decode(other.root_id, env.encode())


def test_verify_and_decode_still_checks_the_format():
    # Bytes that hash to the root id asked for, but are no envelope.
    data = canonical.pack({"v": 1})
    with pytest.raises(FormatError) as info:
        Envelope.verify_and_decode(block_id(data), data)
    assert not isinstance(info.value, IntegrityError)


# -- strict decoding ------------------------------------------------------------

GOOD, _ = envelope(3)
GOOD_WIRE = wire_of(GOOD)
GOOD_INDEXED, _ = envelope(INLINE_MAX_IDS + 1)
GOOD_INDEXED_WIRE = wire_of(GOOD_INDEXED)


def decode_wire(wire):
    return Envelope.decode(canonical.pack(wire))


def test_extra_key_rejected():
    with pytest.raises(FormatError, match="wrong fields"):
        decode_wire({**GOOD_WIRE, "x": 1})


@pytest.mark.parametrize("key", sorted(GOOD_WIRE))
def test_missing_key_rejected(key):
    wire = dict(GOOD_WIRE)
    del wire[key]
    with pytest.raises(FormatError, match="wrong fields"):
        decode_wire(wire)


def test_both_ids_and_idx_rejected():
    with pytest.raises(FormatError, match="wrong fields"):
        decode_wire({**GOOD_WIRE, "idx": GOOD_INDEXED_WIRE["idx"]})


WRONG_TYPES = [
    # (field, value): every field, with values of other canonical types.
    ("v", "1"),
    ("v", b"\x01"),
    ("v", None),
    ("v", [1]),
    ("cs", "4096"),
    ("cs", None),
    ("cs", {"a": 1}),
    ("n", b"\x03"),
    ("n", None),
    ("tail", "4096"),
    ("tail", None),
    ("meta", "text, not bin"),
    ("meta", 5),
    ("meta", None),
    ("meta", [SEALED]),
    ("ak", None),
    ("ak", 0),
    ("ak", KEYS.access_public.hex()),
    ("ids", None),
    ("ids", [b"\x00" * 32] * 3),
    ("ids", "x" * 96),
]


@pytest.mark.parametrize(("key", "value"), WRONG_TYPES)
def test_wrong_type_rejected(key, value):
    # FormatError, never a TypeError from deeper down.
    with pytest.raises(FormatError):
        decode_wire({**GOOD_WIRE, key: value})


@pytest.mark.parametrize("value", [None, 7, "x", [b"\x00" * 32]])
def test_wrong_type_idx_rejected(value):
    with pytest.raises(FormatError):
        decode_wire({**GOOD_INDEXED_WIRE, "idx": value})


@pytest.mark.parametrize("key", ["v", "cs", "n", "tail"])
def test_bool_for_int_rejected(key):
    with pytest.raises(FormatError, match=f"{key}: expected int"):
        decode_wire({**GOOD_WIRE, key: True})


def test_not_a_map_rejected():
    with pytest.raises(FormatError, match="not a map"):
        Envelope.decode(canonical.pack([1, 2, 3]))


def raw_map(items):
    """A msgpack map with entries in exactly the order and encoding given."""
    assert len(items) < 16
    return bytes([0x80 | len(items)]) + b"".join(msgpack.packb(k) + v for k, v in items)


def packed_items(wire):
    return [(k, msgpack.packb(wire[k], use_bin_type=True)) for k in sorted(wire)]


def test_raw_map_helper_reproduces_the_canonical_bytes():
    assert raw_map(packed_items(GOOD_WIRE)) == GOOD.encode()


def test_unsorted_keys_rejected():
    items = packed_items(GOOD_WIRE)[::-1]
    with pytest.raises(FormatError, match="canonical"):
        Envelope.decode(raw_map(items))
    # msgpack itself keeps insertion order, so this is the same failure:
    unsorted = msgpack.packb(dict(reversed(GOOD_WIRE.items())), use_bin_type=True)
    with pytest.raises(FormatError, match="canonical"):
        Envelope.decode(unsorted)


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("v", b"\xcc\x01"),  # uint8 for a fixint
        ("v", b"\xcf" + (1).to_bytes(8, "big")),  # uint64
        ("v", b"\xd0\x01"),  # int8
        ("cs", b"\xce" + (4096).to_bytes(4, "big")),  # uint32 for a uint16
        ("n", b"\xd3" + (3).to_bytes(8, "big")),  # int64
        ("tail", b"\xcf" + (4096).to_bytes(8, "big")),
    ],
)
def test_long_form_int_rejected(key, encoded):
    items = [(k, encoded if k == key else v) for k, v in packed_items(GOOD_WIRE)]
    data = raw_map(items)
    assert msgpack.unpackb(data) == msgpack.unpackb(GOOD.encode())  # same value
    with pytest.raises(FormatError, match="canonical"):
        Envelope.decode(data)


def test_long_form_bin_rejected():
    ak = KEYS.access_public
    items = [
        (k, b"\xc5\x00\x20" + ak if k == "ak" else v)  # bin16 for a bin8
        for k, v in packed_items(GOOD_WIRE)
    ]
    with pytest.raises(FormatError, match="canonical"):
        Envelope.decode(raw_map(items))


def test_long_form_map_header_rejected():
    data = GOOD.encode()
    assert data[0] == 0x87  # fixmap of 7
    with pytest.raises(FormatError, match="canonical"):
        Envelope.decode(b"\xde\x00\x07" + data[1:])  # map16


def test_duplicate_key_rejected():
    items = packed_items(GOOD_WIRE)
    items.insert(1, items[0])
    with pytest.raises(FormatError):
        Envelope.decode(raw_map(items))


def test_trailing_bytes_rejected():
    with pytest.raises(FormatError):
        Envelope.decode(GOOD.encode() + b"\x00")


def test_truncated_rejected():
    data = GOOD.encode()
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError):
            Envelope.decode(data[:cut])


def test_oversize_rejected_before_decoding():
    with pytest.raises(FormatError, match="exceeds"):
        Envelope.decode(bytes(MAX_ENVELOPE_BYTES + 1))


BAD_VALUES = [
    ("v", 0, "version"),
    ("v", 2, "version"),
    ("cs", 0, "chunk size"),
    ("cs", 4095, "chunk size"),
    ("cs", 4097, "chunk size"),
    ("cs", 2**64 - 1, "chunk size"),
    ("n", 0, "chunk count"),
    ("n", 2, "inline ids"),
    ("n", 4, "inline ids"),
    ("n", MAX_CHUNK_COUNT + 1, "chunk count"),
    ("n", -1, "chunk count"),
    ("tail", 0, "tail"),
    ("tail", 100, "tail"),
    ("tail", 8192, "tail"),  # longer than the chunk size
    ("ids", b"\x00" * 95, "inline ids"),
    ("ids", b"", "inline ids"),
    ("ak", b"\x00" * 31, "access key"),
    ("ak", b"\x00" * 33, "access key"),
    ("meta", b"\x00" * 39, "sealed meta"),
    ("meta", b"\x00" * 5000, "sealed meta"),
]


@pytest.mark.parametrize(("key", "value", "problem"), BAD_VALUES)
def test_bad_values_rejected(key, value, problem):
    with pytest.raises(FormatError, match=problem):
        decode_wire({**GOOD_WIRE, key: value})


def test_inline_ids_beyond_the_limit_rejected():
    count = INLINE_MAX_IDS + 1
    wire = {**GOOD_WIRE, "n": count, "ids": b"\x00" * 32 * count}
    with pytest.raises(FormatError, match="inline ids"):
        decode_wire(wire)


@pytest.mark.parametrize(
    ("n", "idx_len"),
    [(INLINE_MAX_IDS, 1), (INLINE_MAX_IDS + 1, 0), (INLINE_MAX_IDS + 1, 2)],
)
def test_index_ids_must_match_the_count(n, idx_len):
    wire = {**GOOD_INDEXED_WIRE, "n": n, "idx": b"\x01" * 32 * idx_len}
    with pytest.raises(FormatError, match="index ids"):
        decode_wire(wire)


def test_build_rejects_empty_file_without_chunks():
    with pytest.raises(FormatError, match="chunk count"):
        envelope(0)


# -- size and geometry ---------------------------------------------------------


def test_100_gib_file_at_1_mib_has_an_envelope_under_2_kib():
    geo = Geometry(100 * GiB, 1 << 20)
    assert geo.count == 102_400
    env, blocks = build_envelope(
        chunk_size=geo.chunk_size,
        tail=geo.tail_padded,
        chunk_ids=fake_ids(geo.count),
        sealed_meta=SEALED,
        access_public=KEYS.access_public,
    )
    assert len(blocks) == env.index_block_count == 13
    assert len(env.encode()) < 2048
    assert env.padded_size == 100 * GiB


def test_largest_envelopes_fit_the_decoder_limit():
    # The most ids inline, and the most index blocks (2**23 chunks): both
    # decode, so anything build_envelope makes, decode accepts.
    biggest_meta = seal_meta(
        KEYS.meta,
        Meta(
            name="\U0001f600" * 63 + "abc",
            size=2**63 - 1,
            mtime_ns=-(2**63),
            kind="folder",
            mime="\U0001f600" * MAX_MIME_LEN,
        ),
        rng=rng,
    )
    assert len(biggest_meta) == len(SEALED)
    inline = Envelope(
        chunk_size=16 << 20,
        count=INLINE_MAX_IDS,
        tail=16 << 20,
        chunk_ids=bytes(32 * INLINE_MAX_IDS),
        index_ids=None,
        sealed_meta=biggest_meta,
        access_public=KEYS.access_public,
    )
    indexed = Envelope(
        chunk_size=16 << 20,
        count=MAX_CHUNK_COUNT,
        tail=16 << 20,
        chunk_ids=None,
        index_ids=bytes(32 * MAX_INDEX_BLOCKS),
        sealed_meta=biggest_meta,
        access_public=KEYS.access_public,
    )
    assert indexed.index_block_count == MAX_INDEX_BLOCKS == 1024
    for env in (inline, indexed):
        data = env.encode()
        assert len(data) <= MAX_ENVELOPE_BYTES
        assert Envelope.decode(data) == env


def test_cipher_len_and_padded_size():
    env, _ = envelope(3, chunk_size=16384, tail=8192)
    assert [env.cipher_len(i) for i in range(3)] == [16400, 16400, 8208]
    assert env.padded_size == 2 * 16384 + 8192
    for i in (-1, 3):
        with pytest.raises(FormatError, match="out of range"):
            env.cipher_len(i)


# -- sealed meta ----------------------------------------------------------------

METAS = [
    META,
    Meta(name="a", size=0, mtime_ns=0, kind="file"),
    Meta(name="Fotos 2024 \u00e9\u00e8", size=12, mtime_ns=-5, kind="folder"),
    Meta(name="x" * 255, size=2**63 - 1, mtime_ns=2**63 - 1, kind="file"),
    Meta(name="song.ogg", size=1, mtime_ns=1, kind="file", mime="audio/ogg"),
]


@pytest.mark.parametrize("meta", METAS)
def test_meta_round_trip(meta):
    sealed = seal_meta(KEYS.meta, meta, rng=rng)
    assert sealed.startswith(NONCE)
    assert open_meta(KEYS.meta, sealed) == meta


def test_meta_default_rng_draws_a_fresh_nonce():
    a = seal_meta(KEYS.meta, META)
    b = seal_meta(KEYS.meta, META)
    assert a != b
    assert open_meta(KEYS.meta, a) == open_meta(KEYS.meta, b) == META


def test_meta_wrong_key():
    with pytest.raises(IntegrityError, match="meta: authentication failed") as info:
        open_meta(OTHER.meta, SEALED)
    assert isinstance(info.value.__cause__, CryptoError)
    # Sealed under another purpose's subkey: also refused.
    with pytest.raises(IntegrityError):
        open_meta(KEYS.chunk, SEALED)


@pytest.mark.parametrize("pos", [0, 23, 24, 100, -1])
def test_meta_flipped_bit(pos):
    bad = bytearray(SEALED)
    bad[pos] ^= 0x10
    with pytest.raises(IntegrityError):
        open_meta(KEYS.meta, bytes(bad))


@pytest.mark.parametrize("length", [0, 1, 39])
def test_meta_too_short(length):
    with pytest.raises(FormatError, match="too short"):
        open_meta(KEYS.meta, SEALED[:length])


def test_meta_hides_the_name_length():
    lengths = {
        len(seal_meta(KEYS.meta, Meta(name="n" * k, size=1, mtime_ns=1, kind="file")))
        for k in (1, 100, 200, 255)
    }
    assert len(lengths) == 1
    one = seal_meta(KEYS.meta, Meta(name="a", size=1, mtime_ns=1, kind="file"))
    long = seal_meta(KEYS.meta, Meta(name="a" * 200, size=1, mtime_ns=1, kind="file"))
    assert len(one) == len(long)
    # ... and of the media type, and whatever else varies.
    others = {len(seal_meta(KEYS.meta, m)) for m in METAS}
    assert others == lengths


def test_meta_repr_hides_the_name():
    assert "holiday" not in repr(META)
    assert repr(META) == f"Meta(kind=file, size={META.size})"


@pytest.mark.parametrize(
    ("kwargs", "error", "problem"),
    [
        ({"name": ".."}, FolderListingError, "not allowed"),
        ({"name": "a/b"}, FolderListingError, "path separator"),
        ({"name": ""}, FolderListingError, "empty"),
        ({"kind": "symlink"}, FormatError, "unknown kind"),
        ({"size": -1}, FormatError, "size"),
        ({"size": 2**63}, FormatError, "size"),
        ({"mtime_ns": 2**63}, FormatError, "mtime"),
        ({"mtime_ns": -(2**63) - 1}, FormatError, "mtime"),
        ({"mime": "x" * (MAX_MIME_LEN + 1)}, FormatError, "media type"),
        ({"mime": "text/plain\n"}, FormatError, "media type"),
    ],
)
def test_meta_validation(kwargs, error, problem):
    fields = {"name": "a", "size": 1, "mtime_ns": 1, "kind": "file", **kwargs}
    with pytest.raises(error, match=problem):
        Meta(**fields)


def seal_raw(plain, key=KEYS.meta):
    """Seal arbitrary meta plaintext, as a malicious sharer (who has the key)
    could: it authenticates, so only the format checks stand in the way."""
    return NONCE + crypto_aead_xchacha20poly1305_ietf_encrypt(
        plain, b"p2pshare/meta/1", NONCE, key
    )


def framed(body, pad_to=1024):
    plain = len(body).to_bytes(4, "big") + body
    return plain + bytes(-len(plain) % pad_to)


def test_seal_raw_helper_matches_seal_meta():
    assert seal_raw(framed(canonical.pack(META.to_wire()))) == SEALED


GOOD_META_WIRE = META.to_wire()


@pytest.mark.parametrize(
    ("plain", "problem"),
    [
        (b"", "bad padding"),
        (framed(canonical.pack(GOOD_META_WIRE), pad_to=256), "bad padding"),
        (framed(canonical.pack(GOOD_META_WIRE))[:-1], "bad padding"),
        (b"\x00\x00\x04\x00" + bytes(1020), "bad padding"),  # length too big
        (framed(canonical.pack(GOOD_META_WIRE))[:-1] + b"\x01", "non-zero padding"),
        (framed(canonical.pack({**GOOD_META_WIRE, "x": 1})), "wrong fields"),
        (framed(canonical.pack({"name": "a"})), "wrong fields"),
        (framed(canonical.pack([1, 2])), "wrong fields"),
        (framed(canonical.pack({**GOOD_META_WIRE, "size": None})), "size"),
        (framed(canonical.pack({**GOOD_META_WIRE, "size": True})), "size"),
        (framed(canonical.pack({**GOOD_META_WIRE, "size": "1"})), "size"),
        (framed(canonical.pack({**GOOD_META_WIRE, "mtime_ns": None})), "mtime"),
        (framed(canonical.pack({**GOOD_META_WIRE, "name": None})), "name"),
        (framed(canonical.pack({**GOOD_META_WIRE, "name": b"a"})), "name"),
        (framed(canonical.pack({**GOOD_META_WIRE, "name": ".."})), "not allowed"),
        (framed(canonical.pack({**GOOD_META_WIRE, "kind": None})), "kind"),
        (framed(canonical.pack({**GOOD_META_WIRE, "kind": "dir"})), "kind"),
        (framed(canonical.pack({**GOOD_META_WIRE, "mime": None})), "mime"),
        (framed(b"\xc0\xc0"), "canonical msgpack"),  # trailing bytes
        (framed(msgpack.packb(dict(reversed(GOOD_META_WIRE.items())))), "canonical"),
    ],
)
def test_meta_authenticated_but_malformed(plain, problem):
    with pytest.raises(FormatError, match=problem):
        open_meta(KEYS.meta, seal_raw(plain))
