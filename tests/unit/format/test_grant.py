"""Grants: signing, strict decoding, every refusal reason, known answers."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import runpy
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pshare.errors import AccessDenied, FormatError
from p2pshare.format import canonical
from p2pshare.format.grant import (
    GRANT_TAG,
    MAX_EXPIRES,
    MAX_GRANT_BYTES,
    MAX_PEER_BYTES,
    Grant,
    grant_message,
    make_grant,
)
from p2pshare.format.keys import FileKeys

ROOT_DIR = Path(__file__).resolve().parents[3]
VECTORS = json.loads(
    (ROOT_DIR / "tests" / "data" / "vectors" / "grant-v1.json").read_text()
)
GENERATOR = ROOT_DIR / "scripts" / "gen-vectors"

KEYS = FileKeys.from_key(bytes(range(32)))
OTHER_KEYS = FileKeys.from_key(bytes(range(1, 33)))
ROOT = bytes(range(100, 132))
PEER = bytes.fromhex("002408011220") + bytes(range(32))
OTHER_PEER = bytes.fromhex("002408011220") + bytes(range(1, 33))
EXPIRES = 1_800_000_000
NOW = 1_700_000_000.0


def grant(**changes: Any) -> Grant:
    return dataclasses.replace(
        make_grant(KEYS.signing_key, ROOT, PEER, EXPIRES), **changes
    )


def verify(g: Grant, **kw: Any) -> None:
    args: dict[str, Any] = {"root": ROOT, "peer": PEER, "now": NOW} | kw
    g.verify(KEYS.access_public, **args)


# -- signing and round trips ---------------------------------------------------
def test_make_and_verify() -> None:
    g = make_grant(KEYS.signing_key, ROOT, PEER, EXPIRES)
    assert (g.root, g.peer, g.expires) == (ROOT, PEER, EXPIRES)
    assert len(g.signature) == 64
    verify(g)
    assert g.message() == (
        GRANT_TAG
        + ROOT
        + len(PEER).to_bytes(2, "big")
        + PEER
        + EXPIRES.to_bytes(8, "big")
    )


@pytest.mark.parametrize(
    ("peer", "expires"),
    [(b"\x01", 0), (PEER, EXPIRES), (b"p" * MAX_PEER_BYTES, MAX_EXPIRES)],
)
def test_round_trip(peer: bytes, expires: int) -> None:
    g = make_grant(KEYS.signing_key, ROOT, peer, expires)
    data = g.to_bytes()
    assert len(data) <= MAX_GRANT_BYTES
    assert Grant.from_bytes(data) == g
    assert Grant.from_bytes(bytearray(data)) == g  # type: ignore[arg-type]
    assert canonical.unpack(data, max_len=MAX_GRANT_BYTES) == {
        "v": 1,
        "root": ROOT,
        "peer": peer,
        "exp": expires,
        "sig": g.signature,
    }


def test_repr_hides_the_signature() -> None:
    g = grant(signature=b"\xab" * 64)
    assert "abab" not in repr(g)
    assert "signature" not in repr(g)
    assert str(EXPIRES) in repr(g)


# -- refusals --------------------------------------------------------------------
def test_other_root() -> None:
    with pytest.raises(AccessDenied, match="grant: for another share"):
        verify(grant(), root=bytes(32))


def test_other_peer() -> None:
    with pytest.raises(AccessDenied, match="grant: issued for another peer"):
        verify(grant(), peer=OTHER_PEER)


def test_expired() -> None:
    g = grant()
    verify(g, now=EXPIRES - 0.5)
    with pytest.raises(AccessDenied, match="grant: expired"):
        verify(g, now=EXPIRES)
    with pytest.raises(AccessDenied, match="grant: expired"):
        verify(g, now=EXPIRES + 10**6)


def test_forged_with_another_key() -> None:
    forged = make_grant(OTHER_KEYS.signing_key, ROOT, PEER, EXPIRES)
    with pytest.raises(AccessDenied, match="grant: bad signature"):
        verify(forged)


def test_forged_expired_grant_is_reported_as_forged() -> None:
    forged = make_grant(OTHER_KEYS.signing_key, ROOT, PEER, 1)
    with pytest.raises(AccessDenied, match="grant: bad signature"):
        verify(forged)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("bit", [0, 7, 100, 255])
def test_altered_root_fails(bit: int) -> None:
    # The verifier asks for the altered root: the signature no longer matches.
    altered = _flip(ROOT, bit)
    with pytest.raises(AccessDenied, match="grant: bad signature"):
        verify(grant(root=altered), root=altered)


@pytest.mark.parametrize("bit", [0, 9, 300])
def test_altered_peer_fails(bit: int) -> None:
    altered = _flip(PEER, bit)
    with pytest.raises(AccessDenied, match="grant: bad signature"):
        verify(grant(peer=altered), peer=altered)


@pytest.mark.parametrize("bit", [0, 1, 20, 40, 62])
def test_altered_expires_fails(bit: int) -> None:
    altered = EXPIRES ^ (1 << bit)
    with pytest.raises(AccessDenied, match="grant: bad signature"):
        verify(grant(expires=altered))


@pytest.mark.parametrize("bit", [0, 100, 256, 511])
def test_altered_signature_fails(bit: int) -> None:
    g = grant()
    with pytest.raises(AccessDenied, match="grant: bad signature"):
        verify(grant(signature=_flip(g.signature, bit)))


def test_altered_bytes_on_the_wire_never_verify() -> None:
    data = grant().to_bytes()
    for bit in range(len(data) * 8):
        try:
            g = Grant.from_bytes(_flip(data, bit))
        except FormatError:
            continue
        with pytest.raises(AccessDenied):
            verify(g, root=g.root, peer=g.peer)


def test_local_errors() -> None:
    with pytest.raises(ValueError, match="access public key"):
        grant().verify(b"short", root=ROOT, peer=PEER, now=NOW)
    for bad in (
        {"root": ROOT[:31]},
        {"peer": b""},
        {"peer": b"p" * (MAX_PEER_BYTES + 1)},
        {"expires": -1},
        {"expires": MAX_EXPIRES + 1},
        {"expires": True},
    ):
        args: dict[str, Any] = {"root": ROOT, "peer": PEER, "expires": EXPIRES} | bad
        with pytest.raises(FormatError):
            make_grant(KEYS.signing_key, **args)
        with pytest.raises(FormatError):
            grant_message(**args)


@pytest.mark.parametrize(
    "changes",
    [
        {"root": b"r" * 31},
        {"root": b"r" * 33},
        {"root": "r" * 32},
        {"peer": b""},
        {"peer": b"p" * 257},
        {"peer": bytearray(b"p")},
        {"expires": 1.0},
        {"expires": False},
        {"expires": -1},
        {"expires": 2**63},
        {"signature": b"s" * 63},
        {"signature": b"s" * 65},
        {"signature": None},
    ],
    ids=repr,
)
def test_invalid_fields_cannot_be_built(changes: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        grant(**changes)


# -- strict decoding ---------------------------------------------------------------
_DROP = object()


def _wire(**changes: Any) -> dict[str, Any]:
    g = grant()
    body: dict[str, Any] = {
        "v": 1,
        "root": g.root,
        "peer": g.peer,
        "exp": g.expires,
        "sig": g.signature,
    }
    for key, value in changes.items():
        if value is _DROP:
            del body[key]
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    "body",
    [
        _wire(v=2),
        _wire(v=0),
        _wire(v=True),
        _wire(v="1"),
        _wire(v=_DROP),
        _wire(root=_DROP),
        _wire(peer=_DROP),
        _wire(exp=_DROP),
        _wire(sig=_DROP),
        _wire(extra=1),
        _wire(root=b"r" * 31),
        _wire(root="r" * 32),
        _wire(peer=b""),
        _wire(peer=b"p" * 257),
        _wire(exp=-1),
        _wire(exp=2**63),
        _wire(exp=None),
        _wire(exp=[1]),
        _wire(sig=b"s" * 63),
        _wire(sig=b"s" * 65),
        _wire(sig=None),
        [1, 2],
        "grant",
        None,
        7,
    ],
    ids=lambda b: repr(b)[:50],
)
def test_from_bytes_refuses_bad_bodies(body: object) -> None:
    with pytest.raises(FormatError):
        Grant.from_bytes(canonical.pack(body))


def test_from_bytes_refuses_non_canonical_and_malformed() -> None:
    body = _wire()
    unsorted = msgpack.packb(dict(reversed(list(body.items()))), use_bin_type=True)
    with pytest.raises(FormatError, match="canonical"):
        Grant.from_bytes(unsorted)
    data = grant().to_bytes()
    with pytest.raises(FormatError):
        Grant.from_bytes(data + b"\x00")  # trailing byte
    with pytest.raises(FormatError):
        Grant.from_bytes(data[:-1])  # truncated
    with pytest.raises(FormatError):
        Grant.from_bytes(b"")
    with pytest.raises(FormatError):
        Grant.from_bytes("text")  # type: ignore[arg-type]


def test_size_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an oversized grant")

    monkeypatch.setattr(msgpack, "unpackb", boom)
    with pytest.raises(FormatError, match="exceeds"):
        Grant.from_bytes(bytes(MAX_GRANT_BYTES + 1))


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        Grant.from_bytes(data)


_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=300)
    | st.text(max_size=40)
)


@settings(max_examples=500)
@given(
    st.dictionaries(
        st.sampled_from(["v", "root", "peer", "exp", "sig", "x"]), _values, max_size=6
    )
)
def test_arbitrary_maps_raise_only_format_error(body: dict[str, Any]) -> None:
    with contextlib.suppress(FormatError):
        Grant.from_bytes(canonical.pack(body))


@settings(max_examples=200)
@given(
    root=st.binary(min_size=32, max_size=32),
    peer=st.binary(min_size=1, max_size=MAX_PEER_BYTES),
    expires=st.integers(0, MAX_EXPIRES),
)
def test_round_trip_property(root: bytes, peer: bytes, expires: int) -> None:
    g = make_grant(KEYS.signing_key, root, peer, expires)
    assert Grant.from_bytes(g.to_bytes()) == g
    g.verify(KEYS.access_public, root=root, peer=peer, now=expires - 1)


# -- known answers ---------------------------------------------------------------
def test_vectors_inputs() -> None:
    keys = FileKeys.from_key(bytes.fromhex(VECTORS["file_key"]))
    assert keys.access_public.hex() == VECTORS["access_public"]
    assert VECTORS["grant_version"] == 1
    assert len(VECTORS["grants"]) == 3


@pytest.mark.parametrize("vec", VECTORS["grants"], ids=lambda v: v["label"])
def test_vectors(vec: dict[str, Any]) -> None:
    keys = FileKeys.from_key(bytes.fromhex(VECTORS["file_key"]))
    root = bytes.fromhex(VECTORS["root"])
    peer = bytes.fromhex(vec["peer"])
    g = make_grant(keys.signing_key, root, peer, vec["expires"])
    assert g.message().hex() == vec["message"]
    assert g.signature.hex() == vec["signature"]
    assert g.to_bytes().hex() == vec["grant"]
    decoded = Grant.from_bytes(bytes.fromhex(vec["grant"]))
    assert decoded == g
    decoded.verify(
        bytes.fromhex(VECTORS["access_public"]),
        root=root,
        peer=peer,
        now=vec["expires"] - 1,
    )


def test_generator_reproduces_the_vectors() -> None:
    module = runpy.run_path(str(GENERATOR), run_name="gen_vectors")
    assert (
        module["render"](module["build_grants"]())
        == (ROOT_DIR / "tests" / "data" / "vectors" / "grant-v1.json").read_text()
    )
