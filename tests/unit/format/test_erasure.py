"""Erasure coding of ciphertext stripes and the signed erasure map."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from p2pshare.errors import FormatError, IntegrityError
from p2pshare.format import block_id, canonical
from p2pshare.format.erasure import (
    MAX_N,
    ErasureMap,
    Stripes,
    decode_stripe,
    encode_parity,
    parse_erasure,
)


@pytest.mark.parametrize("text", ["3/5", " 1/2 ", "10/32"])
def test_parse_erasure_accepts(text: str) -> None:
    k, n = parse_erasure(text)
    assert 1 <= k < n <= MAX_N


@pytest.mark.parametrize(
    "text", ["", "3", "5/3", "3/3", "0/2", "3/33", "a/b", "3/5/7", "-1/2"]
)
def test_parse_erasure_refuses(text: str) -> None:
    with pytest.raises(FormatError):
        parse_erasure(text)


def _stripe_set(geo: Stripes) -> list[bytes]:
    return [os.urandom(geo.cipher_len(i)) for i in range(geo.count)]


def _columns(geo: Stripes, chunks: list[bytes], s: int) -> dict[int, bytes]:
    real = [chunks[i] for i in geo.chunks(s)]
    size = geo.frag_len(s)
    out = {j: c + bytes(size - len(c)) for j, c in enumerate(real)}
    out.update({geo.k + p: f for p, f in enumerate(encode_parity(geo, s, real))})
    return out


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 4),
    extra=st.integers(1, 3),
    count=st.integers(1, 11),
    last=st.integers(17, 300),
)
def test_any_k_columns_rebuild_every_stripe(
    k: int, extra: int, count: int, last: int
) -> None:
    geo = Stripes(k, k + extra, count, 300, min(last, 300))
    chunks = _stripe_set(geo)
    for s in range(geo.stripes):
        cols = _columns(geo, chunks, s)
        for pick in itertools.combinations(sorted(cols), min(k, len(cols))):
            got = decode_stripe(geo, s, {c: cols[c] for c in pick})
            assert got == [chunks[i] for i in geo.chunks(s)]


def test_too_few_or_bad_fragments_are_an_integrity_error() -> None:
    geo = Stripes(3, 5, 6, 64, 40)
    cols = _columns(geo, _stripe_set(geo), 0)
    with pytest.raises(IntegrityError, match="2 of 3 needed"):
        decode_stripe(geo, 0, {3: cols[3], 4: cols[4]})
    with pytest.raises(IntegrityError, match="wrong length"):
        decode_stripe(geo, 0, {0: cols[0], 3: cols[3], 4: cols[4][:-1]})


def test_geometry_of_columns() -> None:
    geo = Stripes(3, 5, 7, 100, 10)  # stripes: 0-2, 3-5, 6
    assert geo.stripes == 3
    assert geo.column_chunks(0) == [0, 3, 6]
    assert geo.column_chunks(2) == [2, 5]
    assert geo.column_chunks(4) == []
    assert geo.column_bytes(0) == 210
    assert geo.column_bytes(3) == 100 + 100 + 10  # the last stripe's is short
    assert sum(geo.column_bytes(c) for c in range(3)) == 610


def _map(count: int = 7) -> tuple[SigningKey, ErasureMap, Stripes, list[bytes]]:
    key = SigningKey(bytes(range(32)))
    geo = Stripes(3, 5, count, 64, 20)
    chunks = _stripe_set(geo)
    ids = []
    for s in range(geo.stripes):
        real = [chunks[i] for i in geo.chunks(s)]
        ids += [block_id(p) for p in encode_parity(geo, s, real)]
    return key, ErasureMap.make(key, b"r" * 32, geo, ids), geo, chunks


def test_map_round_trips_and_verifies() -> None:
    key, emap, geo, chunks = _map()
    back = ErasureMap.from_bytes(emap.to_bytes())
    assert back == emap
    back.verify(bytes(key.verify_key), root=b"r" * 32, count=7)
    real = [chunks[i] for i in geo.chunks(1)]
    assert back.parity_id(1, 4) == block_id(encode_parity(geo, 1, real)[1])
    with pytest.raises(IndexError):
        back.parity_id(3, 3)
    with pytest.raises(IndexError):
        back.parity_id(0, 2)  # a systematic column has no parity id


def test_map_verify_refuses_what_is_not_the_owners() -> None:
    key, emap, _geo, _chunks = _map()
    public = bytes(key.verify_key)
    with pytest.raises(IntegrityError, match="another share"):
        emap.verify(public, root=b"x" * 32, count=7)
    with pytest.raises(IntegrityError, match="stripes"):
        emap.verify(public, root=b"r" * 32, count=10)
    forged = ErasureMap(
        root=emap.root,
        k=emap.k,
        n=emap.n,
        ids=bytes(len(emap.ids)),
        signature=emap.signature,
    )
    with pytest.raises(IntegrityError, match="bad signature"):
        forged.verify(public, root=b"r" * 32, count=7)
    other = bytes(SigningKey(bytes(32)).verify_key)
    with pytest.raises(IntegrityError, match="bad signature"):
        emap.verify(other, root=b"r" * 32, count=7)


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"k": 5},
        {"k": 0},
        {"n": 33},
        {"k": True},
        {"ids": b"\x00" * 33},
        {"sig": b"\x00" * 63},
        {"root": b"\x00" * 31},
        {"v": 2},
    ],
)
def test_map_decoding_is_strict(change: dict[str, object]) -> None:
    _key, emap, _geo, _chunks = _map()
    value = canonical.unpack(emap.to_bytes(), max_len=1 << 20)
    value.update(change)
    with pytest.raises(FormatError):
        ErasureMap.from_bytes(canonical.pack(value))


def test_map_size_is_checked_before_decoding() -> None:
    with pytest.raises(FormatError, match="exceeds"):
        ErasureMap.from_bytes(b"\x00" * (17 << 20))


def test_vectors() -> None:
    import json
    from pathlib import Path

    from p2pshare.format import FileKeys

    v = json.loads(
        (Path(__file__).parents[2] / "data" / "vectors" / "emap-v1.json").read_text()
    )
    chunks = [bytes.fromhex(c) for c in v["chunks"]]
    geo = Stripes(v["k"], v["n"], len(chunks), len(chunks[0]), len(chunks[-1]))
    parity = []
    for s in range(geo.stripes):
        parity += encode_parity(geo, s, [chunks[i] for i in geo.chunks(s)])
    assert [p.hex() for p in parity] == v["parity"]
    emap = ErasureMap.from_bytes(bytes.fromhex(v["map"]))
    assert emap.message().hex() == v["message"]
    keys = FileKeys.from_key(bytes.fromhex(v["file_key"]))
    emap.verify(keys.access_public, root=bytes.fromhex(v["root"]), count=len(chunks))
    for s in range(geo.stripes):
        for c in range(geo.k, geo.n):
            frag = parity[s * geo.parity + c - geo.k]
            assert emap.parity_id(s, c) == block_id(frag)
