"""Message validation and the strict wire mapping."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol.messages import (
    MAX_BLOCK_BYTES,
    MAX_GRANT_BYTES,
    MAX_HAVE_BYTES,
    MAX_REQ,
    MAX_SID,
    Block,
    Bye,
    Cancel,
    Hello,
    Message,
    Missing,
    Open,
    Opened,
    Refused,
    Want,
    decode_message,
)

EXAMPLES: list[Message] = [
    Hello(challenge=bytes(range(32))),
    Open(sid=MAX_SID, root=b"r" * 32, proof=b"p" * 64),
    Open(sid=0, root=b"r" * 32, grant=b"g"),
    Open(sid=1, root=b"r" * 32, grant=b"g" * MAX_GRANT_BYTES),
    Open(sid=2, root=b"r" * 32, proof=b"p" * 64, ticket=b"t" * 88),
    Opened(sid=0, envelope=b"env", have=b"\x05"),
    Opened(sid=0, envelope=b"env", have=b"", column=31),
    Opened(sid=1, envelope=b"env"),
    Refused(sid=2, code="access_denied", reason="bad proof"),
    Want(sid=3, req=MAX_REQ, kind="chunk", index=2**23 - 1),
    Want(sid=3, req=0, kind="index", index=1023),
    Want(sid=3, req=1, kind="frag", index=2**23 - 1),
    Want(sid=3, req=2, kind="emap", index=0),
    Block(req=4, data=b""),
    Missing(req=5),
    Cancel(req=6),
    Bye(),
    Bye(reason="done"),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=repr)
def test_round_trip(message: Message) -> None:
    wire = message.to_wire()
    assert wire["t"] == message.TAG
    assert decode_message(wire) == message
    assert type(message).from_wire(wire) == message


def test_wire_keys_are_field_names_and_none_is_absent() -> None:
    assert Opened(sid=1, envelope=b"e").to_wire() == {
        "t": "opened",
        "sid": 1,
        "envelope": b"e",
    }
    assert Hello(challenge=bytes(32)).to_wire() == {
        "t": "hello",
        "version": 1,
        "challenge": bytes(32),
    }


@pytest.mark.parametrize("message", EXAMPLES, ids=repr)
def test_unknown_and_missing_and_nil_fields(message: Message) -> None:
    wire = message.to_wire()
    with pytest.raises(RemoteProtocolError, match="unknown field"):
        decode_message({**wire, "extra": 1})
    for field in dataclasses.fields(message):  # type: ignore[arg-type]
        if field.name not in wire:
            continue
        with pytest.raises(RemoteProtocolError, match="is nil"):
            decode_message({**wire, field.name: None})
        if field.default is None:
            continue  # optional: absence is valid
        partial = {k: v for k, v in wire.items() if k != field.name}
        with pytest.raises(RemoteProtocolError, match="missing field"):
            decode_message(partial)


def test_optional_field_absent_means_none() -> None:
    assert decode_message({"t": "opened", "sid": 1, "envelope": b"e"}) == Opened(
        sid=1, envelope=b"e", have=None
    )


@pytest.mark.parametrize(
    "wire",
    [
        {"t": "want", "sid": True, "req": 1, "kind": "chunk", "index": 0},  # bool
        {"t": "want", "sid": 1, "req": 1.0, "kind": "chunk", "index": 0},  # float
        {"t": "want", "sid": 1, "req": 1, "kind": b"chunk", "index": 0},
        {"t": "want", "sid": 1, "req": 1, "kind": "blob", "index": 0},
        {"t": "want", "sid": 1, "req": 1, "kind": "chunk", "index": -1},
        {"t": "want", "sid": 1, "req": 1, "kind": "chunk", "index": 2**23},
        {"t": "want", "sid": 1, "req": 1, "kind": "index", "index": 1024},
        {"t": "want", "sid": MAX_SID + 1, "req": 1, "kind": "chunk", "index": 0},
        {"t": "want", "sid": 1, "req": MAX_REQ + 1, "kind": "chunk", "index": 0},
        {"t": "open", "sid": 1, "root": "r" * 32, "proof": b"p" * 64},  # str
        {"t": "open", "sid": 1, "root": b"r" * 31, "proof": b"p" * 64},
        {"t": "open", "sid": 1, "root": b"r" * 32, "proof": b"p" * 65},
        {"t": "open", "sid": 1, "root": b"r" * 32},  # neither proof nor grant
        {"t": "open", "sid": 1, "root": b"r" * 32, "proof": b"p" * 64, "grant": b"g"},
        {"t": "open", "sid": 1, "root": b"r" * 32, "grant": b""},
        {"t": "open", "sid": 1, "root": b"r" * 32, "grant": "g"},
        {"t": "open", "sid": 1, "root": b"r" * 32, "grant": b"g", "ticket": b"t" * 88},
        {"t": "open", "sid": 1, "root": b"r" * 32, "proof": b"p" * 64, "ticket": b"t"},
        {"t": "opened", "sid": 1, "envelope": b"e", "column": 32},
        {"t": "opened", "sid": 1, "envelope": b"e", "column": True},
        {"t": "want", "sid": 1, "req": 1, "kind": "emap", "index": 1},
        {"t": "want", "sid": 1, "req": 1, "kind": "frag", "index": 2**23},
        {"t": "open", "sid": 1, "root": b"r" * 32, "grant": bytes(MAX_GRANT_BYTES + 1)},
        {"t": "hello", "version": 1, "challenge": bytes(31)},
        {"t": "hello", "version": -1, "challenge": bytes(32)},
        {"t": "hello", "version": False, "challenge": bytes(32)},
        {"t": "opened", "sid": 1, "envelope": b""},
        {"t": "opened", "sid": 1, "envelope": bytes(48 * 1024 + 1)},
        {"t": "opened", "sid": 1, "envelope": b"e", "have": bytes(MAX_HAVE_BYTES + 1)},
        {"t": "opened", "sid": 1, "envelope": b"e", "have": "all"},
        {"t": "refused", "sid": 1, "code": "", "reason": ""},
        {"t": "refused", "sid": 1, "code": "Access Denied", "reason": ""},
        {"t": "refused", "sid": 1, "code": "x" * 41, "reason": ""},
        {"t": "refused", "sid": 1, "code": "x", "reason": "r" * 201},
        {"t": "refused", "sid": 1, "code": "x", "reason": b"bytes"},
        {"t": "bye", "reason": "line\nbreak"},
        {"t": "bye", "reason": "\x1b[31mred"},
        {"t": "block", "req": 1, "data": "text"},
        {"t": "block", "req": 1, "data": bytes(MAX_BLOCK_BYTES + 1)},
        {"t": "missing", "req": -1},
        {"t": "cancel", "req": "1"},
    ],
    ids=lambda w: f"{w['t']}-{sorted(w.items())!r:.60}",
)
def test_invalid_values_are_remote_errors(wire: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(wire)
    assert isinstance(info.value.__cause__, LocalProtocolError)


def test_open_with_a_grant_wire_form() -> None:
    assert Open(sid=2, root=bytes(32), grant=b"g").to_wire() == {
        "t": "open",
        "sid": 2,
        "root": bytes(32),
        "grant": b"g",
    }


def test_open_needs_exactly_one_credential() -> None:
    with pytest.raises(LocalProtocolError, match="exactly one"):
        Open(sid=1, root=bytes(32))
    with pytest.raises(LocalProtocolError, match="exactly one"):
        Open(sid=1, root=bytes(32), proof=bytes(64), grant=b"g")


def test_building_an_invalid_message_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Want(sid=1, req=1, kind="chunk", index=True)
    with pytest.raises(LocalProtocolError):
        Block(req=1, data=bytearray(b"x"))  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Cancel(req=1).req = 2  # type: ignore[misc]


def test_block_of_the_largest_chunk_is_valid() -> None:
    assert len(Block(req=1, data=bytes(MAX_BLOCK_BYTES)).data) == MAX_BLOCK_BYTES


@pytest.mark.parametrize("tag", ["nope", "", "Hello", None, 1])
def test_unknown_type(tag: object) -> None:
    with pytest.raises(RemoteProtocolError, match="unknown message type"):
        decode_message({"t": tag})


def test_from_wire_checks_the_tag() -> None:
    with pytest.raises(RemoteProtocolError, match="wrong message tag"):
        Cancel.from_wire({"t": "missing", "req": 1})


def test_repr_keeps_secrets_and_payloads_out() -> None:
    text = repr(Open(sid=1, root=bytes(32), proof=b"\xab" * 64))
    assert "ab" * 8 not in text
    assert "cdcd" not in repr(Open(sid=1, root=bytes(32), grant=b"\xcd" * 100))
    assert "abab" not in repr(Block(req=1, data=b"\xab" * 100))
    assert "11" * 8 not in repr(Hello(challenge=b"\x11" * 32))
