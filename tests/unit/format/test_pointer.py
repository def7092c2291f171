"""Pointer records of live shares: known answers, and everything a DHT
server, a seed or a getter must refuse (forged, replayed, oversized,
filed under another key, expired, opened with the wrong read key)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied, FormatError, IntegrityError
from p2pshare.format import signed
from p2pshare.format.pointer import (
    MAX_POINTER_BYTES,
    PointerRecord,
    dht_key,
    goes_back,
    make_pointer,
    newest,
    pointer_message,
    validate,
)

VECTORS = Path(__file__).parents[2] / "data" / "vectors" / "pointer-v1.json"
NOW = 1_700_000_000
KEY = SigningKey(bytes(range(32)))
PUB = bytes(KEY.verify_key)
READ = bytes(range(100, 132))
ROOT = bytes(range(200, 232))
FILE_KEY = bytes(range(50, 82))


def record(seq: int = 1, expires: int = NOW + 3600) -> PointerRecord:
    return make_pointer(KEY, READ, seq=seq, root=ROOT, key=FILE_KEY, expires=expires)


def test_vectors() -> None:
    data = json.loads(VECTORS.read_text())
    key = SigningKey(bytes.fromhex(data["signing_key_seed"]))
    pub = bytes.fromhex(data["pub"])
    read = bytes.fromhex(data["read_key"])
    assert bytes(key.verify_key) == pub
    assert dht_key(pub).hex() == data["dht_key"]
    assert dht_key(pub).startswith(b"/p2pshare-ptr/")
    for v in data["records"]:
        nonce: bytes = bytes.fromhex(v["box_nonce"])

        def rng(n: int, nonce: bytes = nonce) -> bytes:
            return nonce

        rec = make_pointer(
            key, read, seq=v["seq"], root=bytes.fromhex(v["root"]),
            key=bytes.fromhex(v["file_key"]), expires=v["expires"], rng=rng,
        )  # fmt: skip
        assert rec.box.hex() == v["box"]
        assert rec.message().hex() == v["message"]
        assert rec.signature.hex() == v["signature"]
        assert rec.to_bytes().hex() == v["record"]
        decoded = validate(dht_key(pub), bytes.fromhex(v["record"]), now=NOW)
        assert decoded == rec
        assert decoded.open(read) == (
            bytes.fromhex(v["root"]),
            bytes.fromhex(v["file_key"]),
        )
        assert len(rec.to_bytes()) <= MAX_POINTER_BYTES


def test_roundtrip_and_root_hidden() -> None:
    rec = record()
    data = rec.to_bytes()
    assert ROOT not in data  # only link holders learn the root and its key
    assert FILE_KEY not in data and READ not in data
    got = validate(dht_key(PUB), data, now=NOW)
    assert got.open(READ) == (ROOT, FILE_KEY)
    assert "box" not in repr(got) and got.signature.hex() not in repr(got)


def test_forged_by_another_key_refused() -> None:
    other = SigningKey(bytes(32))
    forged = make_pointer(
        other, READ, seq=99, root=os.urandom(32), key=FILE_KEY, expires=NOW + 60
    )
    # claims the victim's pub, keeps the forger's signature
    claim = PointerRecord(PUB, forged.seq, forged.expires, forged.box, forged.signature)
    with pytest.raises(AccessDenied, match="bad signature"):
        validate(dht_key(PUB), claim.to_bytes(), now=NOW)
    # its own pub is fine, but not under the victim's key
    with pytest.raises(AccessDenied, match="another pointer's key"):
        validate(dht_key(PUB), forged.to_bytes(), now=NOW)
    with pytest.raises(AccessDenied, match="another pointer"):
        forged.verify(now=NOW, pub=PUB)


@pytest.mark.parametrize("field", ["seq", "expires", "box"])
def test_altered_field_refused(field: str) -> None:
    rec = record(seq=5)
    seq, expires, box = rec.seq, rec.expires, rec.box
    if field == "seq":
        seq += 1
    elif field == "expires":
        expires += 1
    else:
        box = box[:-1] + bytes([box[-1] ^ 1])
    bad = PointerRecord(PUB, seq, expires, box, rec.signature)
    with pytest.raises(AccessDenied, match="bad signature"):
        validate(dht_key(PUB), bad.to_bytes(), now=NOW)


def test_expired_refused_and_forged_named_first() -> None:
    old = record(expires=NOW - 1)
    with pytest.raises(AccessDenied, match="expired"):
        validate(dht_key(PUB), old.to_bytes(), now=NOW)
    bad = PointerRecord(PUB, old.seq, old.expires, old.box, bytes(64))
    with pytest.raises(AccessDenied, match="bad signature"):
        validate(dht_key(PUB), bad.to_bytes(), now=NOW)


def test_oversized_refused_before_decoding() -> None:
    data = record().to_bytes()
    with pytest.raises(FormatError, match="exceeds 256"):
        validate(dht_key(PUB), data + bytes(MAX_POINTER_BYTES), now=NOW)
    padded = msgpack.packb({"v": 1, "pad": bytes(300)})
    with pytest.raises(FormatError, match="exceeds"):
        PointerRecord.from_bytes(padded)


def test_strict_decoding() -> None:
    rec = record()
    good = {
        "v": 1, "pub": rec.pub, "seq": rec.seq, "exp": rec.expires,
        "box": rec.box, "sig": rec.signature,
    }  # fmt: skip
    cases = [
        good | {"v": 2},
        good | {"seq": True},
        good | {"seq": -1},
        good | {"box": rec.box[:-1]},
        good | {"pub": rec.pub + b"x"},
        good | {"extra": 1},
        {k: v for k, v in good.items() if k != "sig"},
    ]
    for value in cases:
        with pytest.raises(FormatError):
            PointerRecord.from_bytes(msgpack.packb(value))
    with pytest.raises(FormatError, match="canonical"):
        # the same map, keys in a non-canonical order
        PointerRecord.from_bytes(msgpack.packb(dict(reversed(list(good.items())))))
    with pytest.raises(FormatError):
        PointerRecord.from_bytes("not bytes")


def test_wrong_read_key_and_moved_box() -> None:
    rec = record(seq=1)
    with pytest.raises(IntegrityError, match="read key"):
        rec.open(bytes(32))
    # the owner's own box from version 1, signed again as version 2: the box
    # is bound to its seq and expiry, so it does not open there
    moved_sig = signed.sign(KEY, pointer_message(PUB, 2, rec.expires, rec.box))
    moved = PointerRecord(PUB, 2, rec.expires, rec.box, moved_sig)
    moved.verify(now=NOW)
    with pytest.raises(IntegrityError):
        moved.open(READ)


def test_newest_and_replay() -> None:
    recs = [record(seq=s) for s in (3, 9, 4)]
    assert newest(recs) == 1
    twins = [record(seq=9), record(seq=9)]
    pick = newest(twins)
    assert pick == newest(list(reversed(twins))) ^ 1  # same record either order
    assert twins[pick].to_bytes() == max(t.to_bytes() for t in twins)
    assert goes_back(recs[0], 4)
    assert not goes_back(recs[0], 3)  # the same version again is no news
    assert not goes_back(recs[0], None)
    with pytest.raises(ValueError, match="no records"):
        newest([])


def test_bad_arguments() -> None:
    with pytest.raises(FormatError):
        make_pointer(KEY, READ, seq=1, root=b"short", key=FILE_KEY, expires=NOW)
    with pytest.raises(FormatError):
        make_pointer(KEY, READ, seq=1, root=ROOT, key=b"short", expires=NOW)
    with pytest.raises(FormatError):
        make_pointer(KEY, READ, seq=-1, root=ROOT, key=FILE_KEY, expires=NOW)
    with pytest.raises(ValueError, match="read key"):
        make_pointer(KEY, b"short", seq=1, root=ROOT, key=FILE_KEY, expires=NOW)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_typed_errors(data: bytes) -> None:
    with pytest.raises((FormatError, AccessDenied)):
        validate(dht_key(PUB), data, now=NOW)
