"""Property tests: hostile bytes raise only RemoteProtocolError; JSON-like
values and every message survive the wire unchanged."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pshare.control import (
    MAX_DEPTH,
    ClientWire,
    ErrorResponse,
    Event,
    Fatal,
    Message,
    Request,
    Response,
    ServerWire,
    State,
)
from p2pshare.control.messages import MAX_MESSAGE_CHARS, printable
from p2pshare.errors import LocalProtocolError, RemoteProtocolError

# -- JSON-like values ------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.binary(max_size=30),
)
keys = st.text(max_size=12)


def values(depth: int) -> st.SearchStrategy[Any]:
    """JSON-like values with containers nested at most ``depth`` deep."""
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    )


params = st.dictionaries(keys, values(MAX_DEPTH - 2), max_size=5)
ids = st.integers(1, 2**53)
codes = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=40)


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise([0, *points, len(stream)])]


def ready() -> tuple[ServerWire, ClientWire]:
    server, client = ServerWire(), ClientWire("fuzz")
    server.receive_data(client.hello())
    list(server.events())
    client.receive_data(server.hello("12D3KooWfuzz"))
    list(client.events())
    return server, client


@given(ids, st.from_regex(r"[a-z_.]{1,64}", fullmatch=True), params, st.data())
def test_requests_round_trip(
    id_: int, method: str, value: dict[str, Any], data: st.DataObject
) -> None:
    server, client = ready()
    stream = client.request(id_, method, value)
    got: list[Message] = []
    for piece in split(stream, data.draw(st.lists(st.integers(0, len(stream))))):
        server.receive_data(piece)
        got += server.events()
    assert got == [Request(id=id_, method=method, params=value)]


server_sends = st.one_of(
    st.tuples(st.just("respond"), values(MAX_DEPTH - 1)),
    st.tuples(st.just("error"), st.tuples(codes, st.text(max_size=50))),
    st.tuples(st.just("event"), st.dictionaries(keys, values(MAX_DEPTH - 2))),
)


@given(st.lists(server_sends, min_size=1, max_size=6), st.data())
def test_server_messages_round_trip(
    sends: list[tuple[str, Any]], data: st.DataObject
) -> None:
    server, client = ready()
    for i in range(1, len(sends) + 1):
        server.receive_data(client.request(i, "events", {}))
    assert len(list(server.events())) == len(sends)
    stream, expected = b"", list[Message]()
    for i, (kind, arg) in enumerate(sends, start=1):
        if kind == "respond":
            stream += server.respond(i, arg)
            expected.append(Response(id=i, result=arg))
        elif kind == "error":
            stream += server.error(i, *arg)
            message = printable(arg[1], MAX_MESSAGE_CHARS)  # what error() sends
            expected.append(ErrorResponse(id=i, code=arg[0], message=message))
        else:
            stream += server.event(i, arg)
            expected.append(Event(sub=i, event=arg))
    received: list[Message] = []
    for piece in split(stream, data.draw(st.lists(st.integers(0, len(stream))))):
        client.receive_data(piece)
        received += client.events()
    assert received == expected


def wrap(core: Any, layers: list[bool]) -> Any:
    for as_list in layers:
        core = [core] if as_list else {"k": core}
    return core


# Values around the depth limit: a shallow core under 0..MAX_DEPTH+1 layers.
deep_values = st.builds(
    wrap, values(2), st.lists(st.booleans(), max_size=MAX_DEPTH + 1)
)


@given(deep_values)
def test_what_the_server_may_send_the_client_accepts(value: Any) -> None:
    server, client = ready()
    server.receive_data(client.request(1, "x", {}))
    list(server.events())
    try:
        frame = server.respond(1, value)
    except LocalProtocolError:
        return  # too deep: refused before it reached the socket
    client.receive_data(frame)
    (message,) = client.events()
    assert message == Response(id=1, result=value)


# -- hostile input -------------------------------------------------------------
tags = st.sampled_from(["hello", "req", "res", "err", "event", "error", "nope"])
fields = st.sampled_from(
    [
        *("v", "client", "node", "id", "method", "params", "result", "code"),
        *("message", "sub", "event", "bogus"),
    ]
)
loose_values = st.one_of(
    values(2),
    st.sampled_from([0, 1, 2, 7, 2**53, "ls", "events", "not_found", {}]),
)


@st.composite
def random_bodies(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = draw(st.dictionaries(fields, loose_values, max_size=5))
    body["t"] = draw(tags)
    raw: bytes = msgpack.packb(body, use_bin_type=True)
    return struct.pack(">I", len(raw)) + raw


def _valid_frames() -> list[bytes]:
    server, client = ready()
    server.receive_data(client.request(7, "events", {}) + client.request(8, "ls", {}))
    list(server.events())
    greeter = ServerWire()
    greeter.receive_data(ClientWire("x").hello())
    list(greeter.events())
    return [
        ClientWire("fuzz").hello(),
        greeter.hello("12D3KooWfuzz"),
        client.request(9, "status", {"x": [1, None]}),
        server.event(7, {"kind": "x"}),
        server.respond(8, [1, "a"]),
        server.error(7, "not_found", "gone"),
        server.fatal("busy", "x"),
    ]


VALID_FRAMES = _valid_frames()
chunks = st.one_of(
    st.binary(min_size=1, max_size=60),
    random_bodies(),
    st.sampled_from(VALID_FRAMES),
    st.lists(st.sampled_from(VALID_FRAMES), min_size=1, max_size=4).map(b"".join),
)


def fresh() -> list[ServerWire | ClientWire]:
    """Wires in their interesting states: new, greeted, with a request in flight."""
    idle_client = ClientWire("fuzz")
    idle_client.hello()
    server, client = ready()
    busy_server, busy_client = ready()
    busy_server.receive_data(busy_client.request(7, "events", {}))
    list(busy_server.events())
    wires: list[ServerWire | ClientWire] = [ServerWire(), ClientWire("fuzz")]
    wires += [idle_client, server, client]
    return [*wires, busy_server, busy_client]


@settings(max_examples=300)
@given(st.lists(chunks, max_size=8), st.booleans())
def test_arbitrary_input_raises_only_remote_protocol_errors(
    pieces: list[bytes], eof: bool
) -> None:
    for wire in fresh():
        try:
            for piece in [*pieces, b""] if eof else pieces:
                wire.receive_data(piece)
                for message in wire.events():
                    assert isinstance(message, Message)
                    if isinstance(message, Fatal):
                        assert wire.state is State.CLOSED
        except RemoteProtocolError:
            assert wire.state is State.ERROR


@given(st.binary(max_size=300))
def test_arbitrary_bodies_decode_or_raise_remote_errors(raw: bytes) -> None:
    for wire in fresh():
        try:
            wire.receive_data(struct.pack(">I", len(raw)) + raw)
            list(wire.events())
        except RemoteProtocolError:
            assert wire.state is State.ERROR
