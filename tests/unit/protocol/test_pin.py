"""``/p2pshare/pin/1``: messages, frames, the reader, storage proofs, unpin auth."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied, LocalProtocolError, RemoteProtocolError
from p2pshare.format.grant import make_grant
from p2pshare.format.keys import FileKeys
from p2pshare.format.voucher import ED25519_PEER_PREFIX, Voucher, issue_voucher
from p2pshare.protocol import pin
from p2pshare.protocol.framing import encode_frame
from p2pshare.protocol.pin import (
    MAX_HINT_CHARS,
    MAX_HINTS,
    MAX_LEASE_S,
    MAX_PIN_FRAME_BYTES,
    MAX_PIN_TEXT_CHARS,
    MAX_PROVE_INDICES,
    MAX_VOUCHER_BYTES,
    REFUSE_CODES,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    UNPIN_SKEW_S,
    Balance,
    BalanceRequest,
    Info,
    InfoRequest,
    PinMessage,
    PinRefused,
    PinRequest,
    PinStatus,
    PolicyKept,
    PolicyRequest,
    ProveRequest,
    ProveResponse,
    RedeemRequest,
    StatusRequest,
    Unpinned,
    UnpinRequest,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    make_unpin_auth,
    request_reader,
    response_reader,
    storage_digest,
    unpin_message,
    verify_unpin_auth,
)

from .pairs import CLIENT_PEER, SERVER_PEER, SPLITTERS, Splitter

KEYS = FileKeys.from_key(bytes(range(32)))
ROOT = bytes(range(100, 132))
GRANT = make_grant(KEYS.signing_key, ROOT, SERVER_PEER, 1_800_000_000).to_bytes()
HINT = (
    "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
)
NONCE = bytes(range(32, 64))
NOW = 1_700_000_000
SEED_KEY = SigningKey(bytes(range(64, 96)))
SEED_PEER = ED25519_PEER_PREFIX + bytes(SEED_KEY.verify_key)
VOUCHER = issue_voucher(
    SEED_KEY, SEED_PEER, ("/ip4/203.0.113.7/tcp/4001",), 2**30, NOW + 3600, NONCE[:16]
)

REQUESTS: list[PinMessage] = [
    PinRequest(root=ROOT, grant=GRANT, lease_s=3600, size=0),
    PinRequest(
        root=ROOT,
        grant=b"g" * 512,
        lease_s=MAX_LEASE_S,
        size=2**63 - 1,
        hints=(HINT,) * MAX_HINTS,
        top=False,
        voucher=b"v" * MAX_VOUCHER_BYTES,
    ),
    PinRequest(root=ROOT, grant=b"g", lease_s=1, size=5, hints=("/x" * 256,)),
    StatusRequest(root=ROOT),
    ProveRequest(root=ROOT, nonce=NONCE, indices=(0,)),
    ProveRequest(root=ROOT, nonce=NONCE, indices=tuple(range(2**32 - 64, 2**32))),
    UnpinRequest(root=ROOT, at=NOW, auth=b"a" * 64),
    InfoRequest(),
    RedeemRequest(voucher=VOUCHER.to_bytes()),
    RedeemRequest(voucher=b"v"),
    RedeemRequest(voucher=b"v" * MAX_VOUCHER_BYTES),
    BalanceRequest(),
    PinRequest(
        root=ROOT, grant=b"g", lease_s=1, size=5, erasure=bytes((3, 5, 4)) + ROOT
    ),
    PolicyRequest(policy=b"p"),
]
RESPONSES: list[PinMessage] = [
    PolicyKept(root=ROOT, seq=2**63 - 1),
    PinStatus(root=ROOT, state="none", have=0, count=0),
    PinStatus(root=ROOT, state="fetching", have=3, count=10, lease_expires=NOW),
    PinStatus(
        root=ROOT, state="failed", have=0, count=1, error="e" * MAX_PIN_TEXT_CHARS
    ),
    PinStatus(root=ROOT, state="complete", have=2**63 - 1, count=2**63 - 1),
    ProveResponse(root=ROOT, digest=bytes(32)),
    Unpinned(root=ROOT),
    Info(region="eu-west", free_bytes=1, used_bytes=0, admission="open", version="0.1"),
    Info(
        region="", free_bytes=0, used_bytes=2**63 - 1, admission="voucher", version=""
    ),
    Balance(quota=0, used=0, vouchers=0),
    Balance(quota=0, used=5, vouchers=0),  # pins outlived their vouchers
    Balance(quota=2**30, used=12345, vouchers=1, expires=NOW),
    Balance(quota=2**63 - 1, used=2**63 - 1, vouchers=2**63 - 1, expires=2**63 - 1),
    Balance(quota=0, used=0, vouchers=2, expires=0),
    Balance(quota=1, used=0, vouchers=1, expires=NOW, relayed=8 << 20),
    *(PinRefused(code=code, message="no room") for code in REFUSE_CODES),
    PinRefused(code="quota", message="é" * MAX_PIN_TEXT_CHARS),
    PinRefused(code="unavailable"),
]
EXAMPLES = REQUESTS + RESPONSES


def encode(message: PinMessage) -> bytes:
    if type(message) in REQUEST_TYPES.values():
        return encode_request(message)  # type: ignore[arg-type]
    return encode_response(message)  # type: ignore[arg-type]


def decode(message: PinMessage, data: bytes) -> PinMessage:
    if type(message) in REQUEST_TYPES.values():
        return decode_request(data)
    return decode_response(data)


def read(message: PinMessage, data: bytes, split: Splitter) -> PinMessage:
    reader: pin.PinReader[Any] = (
        request_reader()
        if type(message) in REQUEST_TYPES.values()
        else response_reader()
    )
    got = []
    for piece in split(data):
        reader.receive_data(piece)
        if (m := reader.next_message()) is not None:
            got.append(m)
    reader.receive_data(b"")
    assert reader.next_message() is None
    assert reader.done
    (only,) = got
    return only  # type: ignore[no-any-return]


@pytest.fixture(params=sorted(SPLITTERS))
def split(request: pytest.FixtureRequest) -> Splitter:
    return SPLITTERS[request.param]


# -- round trips --------------------------------------------------------------
@pytest.mark.parametrize("message", EXAMPLES, ids=repr)
def test_round_trip_whole(message: PinMessage) -> None:
    data = encode(message)
    assert len(data) <= 4 + MAX_PIN_FRAME_BYTES
    assert decode(message, data) == message
    assert type(message).from_wire(message.to_wire()) == message


@pytest.mark.parametrize("message", EXAMPLES, ids=repr)
def test_round_trip_through_the_reader(message: PinMessage, split: Splitter) -> None:
    assert read(message, encode(message), split) == message


def test_wire_form() -> None:
    req = PinRequest(root=ROOT, grant=b"g", lease_s=60, size=9, hints=("/a", "/b"))
    assert req.to_wire() == {
        "t": "pin",
        "root": ROOT,
        "grant": b"g",
        "lease_s": 60,
        "size": 9,
        "hints": "/a\n/b",
    }
    wire = dataclasses.replace(req, hints=(), top=False, voucher=b"v").to_wire()
    assert wire["top"] is False
    assert wire["voucher"] == b"v"
    assert "hints" not in wire
    assert ProveRequest(root=ROOT, nonce=NONCE, indices=(1, 2**32 - 1)).to_wire()[
        "indices"
    ] == bytes.fromhex("00000001ffffffff")
    assert InfoRequest().to_wire() == {"t": "info"}
    assert BalanceRequest().to_wire() == {"t": "balance"}
    assert RedeemRequest(voucher=b"v").to_wire() == {"t": "redeem", "voucher": b"v"}
    assert Balance(quota=1, used=2, vouchers=0).to_wire() == {
        "t": "credit",
        "quota": 1,
        "used": 2,
        "vouchers": 0,
    }
    assert Balance(quota=1, used=0, vouchers=1, expires=9).to_wire()["expires"] == 9
    assert PinRefused(code="voucher").to_wire() == {"t": "refused", "code": "voucher"}
    assert PinRefused(code="quota").to_wire() == {"t": "refused", "code": "quota"}
    assert PinStatus(root=ROOT, state="none", have=0, count=0).to_wire() == {
        "t": "pin_status",
        "root": ROOT,
        "state": "none",
        "have": 0,
        "count": 0,
    }


def test_explicit_defaults_decode_too() -> None:
    body = {"t": "pin", "root": ROOT, "grant": b"g", "lease_s": 1, "size": 0}
    assert PinRequest.from_wire({**body, "top": True}) == PinRequest.from_wire(body)
    assert PinRefused.from_wire({"t": "refused", "code": "quota", "message": ""}) == (
        PinRefused(code="quota")
    )


@pytest.mark.parametrize("message", EXAMPLES, ids=repr)
def test_unknown_missing_and_nil_fields(message: PinMessage) -> None:
    wire = message.to_wire()
    with pytest.raises(RemoteProtocolError, match="unknown field"):
        type(message).from_wire({**wire, "extra": 1})
    for field in dataclasses.fields(message):  # type: ignore[arg-type]
        with pytest.raises(RemoteProtocolError, match="is nil"):
            type(message).from_wire({**wire, field.name: None})
        if field.default is not dataclasses.MISSING:
            continue  # optional: absence is valid
        partial = {k: v for k, v in wire.items() if k != field.name}
        with pytest.raises(RemoteProtocolError, match="missing field"):
            type(message).from_wire(partial)


def test_requests_and_responses_do_not_mix() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown message type"):
        decode_request(encode_response(Unpinned(root=ROOT)))
    with pytest.raises(RemoteProtocolError, match="unknown message type"):
        decode_response(encode_request(StatusRequest(root=ROOT)))
    with pytest.raises(LocalProtocolError, match="wrong way"):
        encode_request(Unpinned(root=ROOT))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="wrong way"):
        encode_response(InfoRequest())  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError, match="wrong message tag"):
        StatusRequest.from_wire({"t": "unpin", "root": ROOT})


def test_tags_are_distinct() -> None:
    assert not set(REQUEST_TYPES) & set(RESPONSE_TYPES)


def test_repr_keeps_grants_and_auth_out() -> None:
    text = repr(REQUESTS[1])
    assert "6767" not in text  # b"g" grant bytes
    assert "7676" not in text  # voucher
    assert "6161" not in repr(UnpinRequest(root=ROOT, at=1, auth=b"a" * 64))
    redeem = RedeemRequest(voucher=VOUCHER.to_bytes())
    assert VOUCHER.signature[:4].hex() not in repr(redeem)
    assert "7676" not in repr(RedeemRequest(voucher=b"v" * 8))
    assert repr(redeem) == f"RedeemRequest(voucher={len(VOUCHER.to_bytes())} bytes)"


def test_max_voucher_bytes_is_the_formats() -> None:
    from p2pshare.format import voucher

    assert MAX_VOUCHER_BYTES == voucher.MAX_VOUCHER_BYTES == 1024
    assert "voucher" in REFUSE_CODES and "quota" in REFUSE_CODES


def test_redeem_carries_a_voucher_end_to_end() -> None:
    got = decode_request(encode_request(RedeemRequest(voucher=VOUCHER.to_bytes())))
    assert isinstance(got, RedeemRequest)
    decoded = Voucher.from_bytes(got.voucher)
    assert decoded == VOUCHER
    decoded.verify(seed=SEED_PEER, now=NOW)  # the seed's side
    with pytest.raises(AccessDenied, match="issued by another seed"):
        decoded.verify(seed=SERVER_PEER, now=NOW)
    answer = Balance(quota=decoded.quota, used=0, vouchers=1, expires=decoded.expires)
    assert decode_response(encode_response(answer)) == answer
    refused = PinRefused(code="voucher", message="voucher: expired")
    assert decode_response(encode_response(refused)) == refused
    # The same bytes travel in a PinRequest (admission on a pin).
    pin_req = PinRequest(
        root=ROOT, grant=GRANT, lease_s=60, size=1, voucher=VOUCHER.to_bytes()
    )
    assert decode_request(encode_request(pin_req)) == pin_req


# -- validation ---------------------------------------------------------------
PIN = {"t": "pin", "root": ROOT, "grant": b"g", "lease_s": 1, "size": 0}
PROVE = {"t": "prove", "root": ROOT, "nonce": NONCE, "indices": b"\x00\x00\x00\x01"}
STATUS = {"t": "pin_status", "root": ROOT, "state": "fetching", "have": 0, "count": 1}
CREDIT = {"t": "credit", "quota": 1, "used": 0, "vouchers": 1, "expires": NOW}
INFO = {
    "t": "seed_info",
    "region": "eu",
    "free_bytes": 0,
    "used_bytes": 0,
    "admission": "open",
    "version": "1",
}


@pytest.mark.parametrize(
    "wire",
    [
        {**PIN, "root": ROOT[:31]},
        {**PIN, "root": ROOT + b"x"},
        {**PIN, "root": ROOT.hex()},
        {**PIN, "grant": b""},
        {**PIN, "grant": b"g" * 513},
        {**PIN, "grant": "g"},
        {**PIN, "lease_s": 0},
        {**PIN, "lease_s": MAX_LEASE_S + 1},
        {**PIN, "lease_s": True},
        {**PIN, "lease_s": 1.0},
        {**PIN, "size": -1},
        {**PIN, "size": 2**63},
        {**PIN, "hints": ""},
        {**PIN, "hints": "/a\n"},
        {**PIN, "hints": "/a\n\n/b"},
        {**PIN, "hints": "/a b"},
        {**PIN, "hints": "/é"},
        {**PIN, "hints": "/a\t"},
        {**PIN, "hints": "x" * (MAX_HINT_CHARS + 1)},
        {**PIN, "hints": "\n".join(["/a"] * (MAX_HINTS + 1))},
        {**PIN, "hints": b"/a"},
        {**PIN, "top": 1},
        {**PIN, "top": "yes"},
        {**PIN, "voucher": b""},
        {**PIN, "voucher": b"v" * (MAX_VOUCHER_BYTES + 1)},
        {**PIN, "voucher": "v"},
        {"t": "status", "root": b""},
        {**PROVE, "nonce": NONCE[:31]},
        {**PROVE, "indices": b""},
        {**PROVE, "indices": b"\x00\x00\x01"},
        {**PROVE, "indices": bytes(4 * (MAX_PROVE_INDICES + 1))},
        {**PROVE, "indices": 1},
        {"t": "unpin", "root": ROOT, "at": -1, "auth": bytes(64)},
        {"t": "unpin", "root": ROOT, "at": 1, "auth": bytes(63)},
        {"t": "unpin", "root": ROOT, "at": 2**63, "auth": bytes(64)},
        {**STATUS, "state": "done"},
        {**STATUS, "state": b"fetching"},
        {**STATUS, "have": 2},
        {**STATUS, "have": -1},
        {**STATUS, "count": 2**63},
        {**STATUS, "lease_expires": -1},
        {**STATUS, "lease_expires": False},
        {**STATUS, "error": "x" * (MAX_PIN_TEXT_CHARS + 1)},
        {**STATUS, "error": "line\nbreak"},
        {**STATUS, "error": b"err"},
        {"t": "proved", "root": ROOT, "digest": bytes(31)},
        {"t": "unpinned", "root": None},
        {**INFO, "region": "r" * 65},
        {**INFO, "region": "\x1b[31m"},
        {**INFO, "version": "v" * 65},
        {**INFO, "free_bytes": -1},
        {**INFO, "used_bytes": 2**63},
        {**INFO, "admission": "closed"},
        {"t": "redeem"},
        {"t": "redeem", "voucher": b""},
        {"t": "redeem", "voucher": b"v" * (MAX_VOUCHER_BYTES + 1)},
        {"t": "redeem", "voucher": "v"},
        {"t": "redeem", "voucher": 1},
        {"t": "balance", "voucher": b"v"},
        {**CREDIT, "quota": -1},
        {**CREDIT, "quota": 2**63},
        {**CREDIT, "quota": True},
        {**CREDIT, "used": -1},
        {**CREDIT, "used": 1.0},
        {**CREDIT, "vouchers": -1},
        {**CREDIT, "vouchers": b"\x01"},
        {**CREDIT, "expires": -1},
        {**CREDIT, "expires": 2**63},
        {**CREDIT, "expires": "soon"},
        {**CREDIT, "vouchers": 0},  # expires without vouchers
        {k: v for k, v in CREDIT.items() if k != "expires"},  # vouchers, no expiry
        {"t": "credit", "quota": 0, "used": 0},
        {"t": "refused", "code": "nope", "message": ""},
        {"t": "refused", "code": "", "message": ""},
        {"t": "refused", "code": "quota", "message": "m" * 1001},
        {"t": "refused", "code": "quota", "message": "\x00"},
        {**PIN, "erasure": bytes((5, 3, 0)) + bytes(32)},  # k >= n
        {**PIN, "erasure": bytes((3, 5, 5)) + bytes(32)},  # column >= n
        {**PIN, "erasure": bytes((3, 5, 0)) + bytes(31)},
        {"t": "policy", "policy": b""},
        {"t": "policy", "policy": "text"},
        {"t": "policy_kept", "root": bytes(32), "seq": -1},
    ],
    ids=lambda w: f"{w['t']}-{sorted(w.items())!r:.70}",
)
def test_invalid_values_are_remote_errors(wire: dict[str, Any]) -> None:
    types = REQUEST_TYPES if wire["t"] in REQUEST_TYPES else RESPONSE_TYPES
    with pytest.raises(RemoteProtocolError):
        types[wire["t"]].from_wire(wire)
    data = encode_frame(wire, max_frame=MAX_PIN_FRAME_BYTES)
    decoder = decode_request if types is REQUEST_TYPES else decode_response
    with pytest.raises(RemoteProtocolError):
        decoder(data)


def test_building_invalid_messages_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        PinRequest(root=ROOT, grant=b"g", lease_s=1, size=0, hints=["/a"])  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        PinRequest(root=ROOT, grant=b"g", lease_s=1, size=0, hints=("",))
    with pytest.raises(LocalProtocolError):
        ProveRequest(root=ROOT, nonce=NONCE, indices=())
    with pytest.raises(LocalProtocolError):
        ProveRequest(root=ROOT, nonce=NONCE, indices=(2**32,))
    with pytest.raises(LocalProtocolError):
        ProveRequest(root=ROOT, nonce=NONCE, indices=(True,))
    with pytest.raises(LocalProtocolError):
        ProveRequest(root=ROOT, nonce=NONCE, indices=[1])  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        PinRefused(code="storage full")
    with pytest.raises(LocalProtocolError, match="voucher: empty"):
        RedeemRequest(voucher=b"")
    with pytest.raises(LocalProtocolError):
        RedeemRequest(voucher=bytearray(b"v"))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="exactly when vouchers is 0"):
        Balance(quota=0, used=0, vouchers=0, expires=NOW)
    with pytest.raises(LocalProtocolError, match="exactly when vouchers is 0"):
        Balance(quota=1, used=0, vouchers=1)
    with pytest.raises(LocalProtocolError):
        Balance(quota=-1, used=0, vouchers=0)
    with pytest.raises(LocalProtocolError, match="wrong way"):
        encode_response(BalanceRequest())  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="wrong way"):
        encode_request(Balance(quota=0, used=0, vouchers=0))  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        StatusRequest(root=ROOT).root = bytes(32)  # type: ignore[misc]


# -- the reader ---------------------------------------------------------------
def test_reader_waits_then_returns_one_message() -> None:
    data = encode_request(StatusRequest(root=ROOT))
    reader = request_reader()
    reader.receive_data(data[:10])
    assert reader.next_message() is None
    assert not reader.done
    reader.receive_data(data[10:])
    assert reader.next_message() == StatusRequest(root=ROOT)
    assert reader.next_message() is None
    reader.receive_data(b"")  # EOF after the message is the normal end
    assert reader.next_message() is None


def test_trailing_bytes_in_the_same_read() -> None:
    data = encode_request(InfoRequest())
    with pytest.raises(RemoteProtocolError, match="bytes after the message"):
        decode_request(data + b"\x00")
    with pytest.raises(RemoteProtocolError, match="bytes after the message"):
        decode_request(data + data)


def test_trailing_bytes_in_a_later_read() -> None:
    reader = response_reader()
    reader.receive_data(encode_response(Unpinned(root=ROOT)))
    assert reader.next_message() == Unpinned(root=ROOT)
    reader.receive_data(b"x")
    with pytest.raises(RemoteProtocolError, match="bytes after the message"):
        reader.next_message()


def test_oversized_prefix_is_refused_after_four_bytes() -> None:
    reader = request_reader()
    reader.receive_data(struct.pack(">I", MAX_PIN_FRAME_BYTES + 1)[:3])
    assert reader.next_message() is None
    reader.receive_data(struct.pack(">I", MAX_PIN_FRAME_BYTES + 1)[3:])
    with pytest.raises(RemoteProtocolError, match="exceeds limit"):
        reader.next_message()


def test_frames_up_to_the_limit_pass_the_size_check() -> None:
    body = {"t": "info", "pad": b"x" * (MAX_PIN_FRAME_BYTES - 15)}
    data = encode_frame(body, max_frame=MAX_PIN_FRAME_BYTES)
    assert len(data) == 4 + MAX_PIN_FRAME_BYTES
    with pytest.raises(RemoteProtocolError, match="unknown field"):
        decode_request(data)  # refused on content, not on size


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x00\x00",
        b"\x00\x00\x00\x05\x81",
        b"\x00\x00\x00\x01\xc1",
        b"\x00\x00\x00\x01\x90",
        b"\x00\x00\x00\x01\x80",
        b"\x00\x00\x00\x02\x81\xa1",
    ],
)
def test_malformed_frames(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_request(data)
    with pytest.raises(RemoteProtocolError):
        decode_response(data)


def test_eof_before_any_message() -> None:
    reader = response_reader()
    reader.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed before a message"):
        reader.next_message()


def test_data_after_eof_is_a_local_error() -> None:
    reader = request_reader()
    reader.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        reader.receive_data(b"x")


# -- storage proofs -----------------------------------------------------------
BLOCKS = [(0, b"alpha"), (7, b"beta" * 100), (2**32 - 1, b"")]


def test_storage_digest_definition() -> None:
    h = hashlib.blake2b(digest_size=32, key=NONCE)
    for index, block in BLOCKS:
        h.update(index.to_bytes(4, "big") + len(block).to_bytes(4, "big") + block)
    assert storage_digest(NONCE, BLOCKS) == h.digest()
    assert len(storage_digest(NONCE, [])) == 32


def test_storage_digest_depends_on_everything() -> None:
    base = storage_digest(NONCE, BLOCKS)
    seen = {base}
    for i, (index, block) in enumerate(BLOCKS):
        for pos in range(len(block)):  # every byte of every block
            altered = bytearray(block)
            altered[pos] ^= 0x01
            blocks = list(BLOCKS)
            blocks[i] = (index, bytes(altered))
            seen.add(storage_digest(NONCE, blocks))
        blocks = list(BLOCKS)
        blocks[i] = (index ^ 1, block)  # another index
        seen.add(storage_digest(NONCE, blocks))
        blocks[i] = (index, block + b"\x00")  # a longer block
        seen.add(storage_digest(NONCE, blocks))
    for perm in itertools.permutations(BLOCKS):  # every other order
        seen.add(storage_digest(NONCE, list(perm)))
    seen.add(storage_digest(bytes(32), BLOCKS))  # another nonce
    seen.add(storage_digest(NONCE, BLOCKS[:-1]))  # a block fewer
    expected = 1 + sum(len(b) + 2 for _, b in BLOCKS) + 5 + 1 + 1
    assert len(seen) == expected


def test_storage_digest_framing_is_injective() -> None:
    # Moving bytes across a block boundary changes the digest.
    assert storage_digest(NONCE, [(0, b"ab"), (1, b"c")]) != storage_digest(
        NONCE, [(0, b"a"), (1, b"bc")]
    )


def test_storage_digest_local_errors() -> None:
    with pytest.raises(ValueError, match="nonce"):
        storage_digest(NONCE[:31], BLOCKS)
    with pytest.raises(ValueError, match="u32"):
        storage_digest(NONCE, [(2**32, b"")])
    with pytest.raises(ValueError, match="u32"):
        storage_digest(NONCE, [(-1, b"")])


def test_prove_round_trip_with_digest() -> None:
    req = ProveRequest(root=ROOT, nonce=NONCE, indices=(7, 0))
    got = decode_request(encode_request(req))
    assert isinstance(got, ProveRequest)
    stored = dict(BLOCKS)
    digest = storage_digest(got.nonce, [(i, stored[i]) for i in got.indices])
    answer = decode_response(encode_response(ProveResponse(root=ROOT, digest=digest)))
    assert isinstance(answer, ProveResponse)
    assert answer.digest == storage_digest(NONCE, [(7, stored[7]), (0, stored[0])])


# -- unpin authorisation ------------------------------------------------------
OTHER_KEYS = FileKeys.from_key(bytes(range(1, 33)))


def check(auth: bytes, **kw: Any) -> None:
    args: dict[str, Any] = {
        "root": ROOT,
        "seed_peer": SERVER_PEER,
        "client_peer": CLIENT_PEER,
        "at": NOW,
        "now": NOW,
    } | kw
    verify_unpin_auth(KEYS.access_public, auth, **args)


def test_unpin_auth() -> None:
    auth = make_unpin_auth(KEYS.signing_key, ROOT, SERVER_PEER, CLIENT_PEER, NOW)
    assert len(auth) == 64
    check(auth)
    check(auth, now=NOW + UNPIN_SKEW_S)
    check(auth, now=NOW - UNPIN_SKEW_S)
    assert unpin_message(ROOT, SERVER_PEER, CLIENT_PEER, NOW) == (
        b"p2pshare/pin/1/unpin\x00"
        + ROOT
        + len(SERVER_PEER).to_bytes(2, "big")
        + SERVER_PEER
        + len(CLIENT_PEER).to_bytes(2, "big")
        + CLIENT_PEER
        + NOW.to_bytes(8, "big")
    )
    req = UnpinRequest(root=ROOT, at=NOW, auth=auth)
    assert decode_request(encode_request(req)) == req


@pytest.mark.parametrize(
    "changes",
    [
        {"root": bytes(32)},
        {"seed_peer": CLIENT_PEER},
        {"client_peer": SERVER_PEER},
        {"at": NOW + 1},
    ],
    ids=repr,
)
def test_unpin_auth_is_bound_to_everything(changes: dict[str, Any]) -> None:
    auth = make_unpin_auth(KEYS.signing_key, ROOT, SERVER_PEER, CLIENT_PEER, NOW)
    with pytest.raises(AccessDenied, match="unpin: bad signature"):
        check(auth, **changes)


def test_unpin_auth_refusals() -> None:
    auth = make_unpin_auth(KEYS.signing_key, ROOT, SERVER_PEER, CLIENT_PEER, NOW)
    with pytest.raises(AccessDenied, match="too old or in the future"):
        check(auth, now=NOW + UNPIN_SKEW_S + 1)
    with pytest.raises(AccessDenied, match="too old or in the future"):
        check(auth, now=NOW - UNPIN_SKEW_S - 1)
    forged = make_unpin_auth(
        OTHER_KEYS.signing_key, ROOT, SERVER_PEER, CLIENT_PEER, NOW
    )
    with pytest.raises(AccessDenied, match="bad signature"):
        check(forged)
    with pytest.raises(AccessDenied, match="bad signature"):
        check(auth[:63])
    with pytest.raises(AccessDenied, match="bad signature"):
        check(bytes([auth[0] ^ 1]) + auth[1:])
    with pytest.raises(ValueError, match="access public key"):
        verify_unpin_auth(b"short", auth, ROOT, SERVER_PEER, CLIENT_PEER, NOW, now=NOW)
    with pytest.raises(ValueError, match="peer id"):
        make_unpin_auth(KEYS.signing_key, ROOT, b"", CLIENT_PEER, NOW)
    with pytest.raises(ValueError, match="root"):
        make_unpin_auth(KEYS.signing_key, ROOT[:5], SERVER_PEER, CLIENT_PEER, NOW)


# -- hypothesis ---------------------------------------------------------------
roots = st.binary(min_size=32, max_size=32)
u63 = st.integers(0, 2**63 - 1)
hint = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)
printable = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
    | st.just(" "),
    max_size=64,
)


@st.composite
def statuses(draw: st.DrawFn) -> PinStatus:
    count = draw(u63)
    return PinStatus(
        root=draw(roots),
        state=draw(st.sampled_from(pin.PIN_STATES)),
        have=draw(st.integers(0, count)),
        count=count,
        lease_expires=draw(st.none() | u63),
        error=draw(st.none() | printable),
    )


requests = st.one_of(
    st.builds(
        PinRequest,
        root=roots,
        grant=st.binary(min_size=1, max_size=512),
        lease_s=st.integers(1, MAX_LEASE_S),
        size=u63,
        hints=st.lists(hint, max_size=MAX_HINTS).map(tuple),
        top=st.booleans(),
        voucher=st.none() | st.binary(min_size=1, max_size=MAX_VOUCHER_BYTES),
    ),
    st.builds(StatusRequest, root=roots),
    st.builds(
        ProveRequest,
        root=roots,
        nonce=roots,
        indices=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=64).map(tuple),
    ),
    st.builds(
        UnpinRequest,
        root=roots,
        at=u63,
        auth=st.binary(min_size=64, max_size=64),
    ),
    st.just(InfoRequest()),
    st.builds(RedeemRequest, voucher=st.binary(min_size=1, max_size=MAX_VOUCHER_BYTES)),
    st.just(BalanceRequest()),
)


@st.composite
def balances(draw: st.DrawFn) -> Balance:
    vouchers = draw(u63)
    return Balance(
        quota=draw(u63),
        used=draw(u63),
        vouchers=vouchers,
        expires=None if vouchers == 0 else draw(u63),
    )


responses = st.one_of(
    statuses(),
    st.builds(ProveResponse, root=roots, digest=roots),
    st.builds(Unpinned, root=roots),
    st.builds(
        Info,
        region=printable,
        free_bytes=u63,
        used_bytes=u63,
        admission=st.sampled_from(pin.ADMISSIONS),
        version=printable,
    ),
    balances(),
    st.builds(PinRefused, code=st.sampled_from(REFUSE_CODES), message=printable),
)


@given(requests, st.data())
def test_requests_round_trip(message: Any, data: st.DataObject) -> None:
    frame = encode_request(message)
    assert decode_request(frame) == message
    cut = data.draw(st.integers(1, len(frame)))
    reader = request_reader()
    reader.receive_data(frame[:cut])
    first = reader.next_message()
    if cut < len(frame):
        assert first is None
        reader.receive_data(frame[cut:])
        first = reader.next_message()
    assert first == message


@given(responses)
def test_responses_round_trip(message: Any) -> None:
    assert decode_response(encode_response(message)) == message


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_remote_errors(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_request(data)
    with contextlib.suppress(RemoteProtocolError):
        decode_response(data)
    reader = request_reader()
    with contextlib.suppress(RemoteProtocolError):
        reader.receive_data(data)
        reader.next_message()
        reader.receive_data(b"")
        reader.next_message()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=70),
    st.sampled_from(["open", "none", "quota", "voucher", "/a\n/b", ""]),
    st.sampled_from([0, 1, 2**32, b"\x00\x00\x00\x01", ROOT, b"g" * 64]),
)
field_names = st.sampled_from(
    [
        *("root", "grant", "lease_s", "size", "hints", "top", "voucher", "nonce"),
        *("indices", "at", "auth", "state", "have", "count", "lease_expires"),
        *("error", "digest", "region", "free_bytes", "used_bytes", "admission"),
        *("version", "code", "message", "quota", "used", "vouchers", "expires"),
        "bogus",
    ]
)
tags = st.sampled_from([*REQUEST_TYPES, *RESPONSE_TYPES, "nope"])


@settings(max_examples=400)
@given(st.dictionaries(field_names, scalars, max_size=7), tags, st.booleans())
def test_arbitrary_bodies_raise_only_remote_errors(
    body: dict[str, Any], tag: str, trailing: bool
) -> None:
    data = encode_frame({**body, "t": tag}, max_frame=MAX_PIN_FRAME_BYTES)
    if trailing:
        data += b"\x00"
    with contextlib.suppress(RemoteProtocolError):
        decode_request(data)
    with contextlib.suppress(RemoteProtocolError):
        decode_response(data)
