"""The control codec: messages, frames, both state machines and error codes."""

from __future__ import annotations

import struct
import subprocess
import sys
from typing import Any

import msgpack
import pytest

from p2pshare import errors
from p2pshare.control import (
    MAX_DEPTH,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_ELEMENTS,
    MAX_RESPONSE_BYTES,
    ClientWire,
    ErrorResponse,
    Event,
    Fatal,
    Hello,
    Message,
    Request,
    Response,
    ServerHello,
    ServerWire,
    State,
    error_classes,
    error_code,
    errors_map,
    exception_for,
)
from p2pshare.control.framing import count_elements, encode_frame
from p2pshare.control.messages import CLIENT_MESSAGES, SERVER_MESSAGES, decode_message
from p2pshare.errors import (
    InternalError,
    LocalProtocolError,
    NotFoundError,
    P2PShareError,
    RemoteCallError,
    RemoteProtocolError,
)


def prefixed(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def packed(body: Any) -> bytes:
    return prefixed(msgpack.packb(body, use_bin_type=True))


def feed(wire: ServerWire | ClientWire, data: bytes) -> list[Message]:
    wire.receive_data(data)
    return list(wire.events())


def greeted() -> tuple[ServerWire, ClientWire]:
    server, client = ServerWire(), ClientWire("test")
    assert feed(server, client.hello()) == [Hello(client="test")]
    assert feed(client, server.hello("12D3KooWnode")) == [
        ServerHello(node="12D3KooWnode")
    ]
    assert server.state is client.state is State.READY
    return server, client


def with_request(method: str = "events") -> tuple[ServerWire, ClientWire]:
    server, client = greeted()
    assert feed(server, client.request(7, method, {})) == [
        Request(id=7, method=method, params={})
    ]
    return server, client


# -- messages --------------------------------------------------------------------
EXAMPLES: list[Message] = [
    Hello(client="p2pshare-cli"),
    Hello(v=2, client=""),
    ServerHello(node="12D3KooWabc"),
    Request(id=1, method="status", params={}),
    Request(id=2**53, method="download.pause", params={"id": 3, "x": [1.5, None]}),
    Response(id=1, result=None),
    Response(id=2, result=[{"a": b"\x00", "b": True, "c": -(2**63), "d": 2**64 - 1}]),
    ErrorResponse(id=3, code="not_found", message="share: no such root"),
    Event(sub=4, event={"kind": "download.progress", "done": 10, "rate": 0.5}),
    Fatal(code="remote_protocol", message="frame: zero length"),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=repr)
def test_round_trip(message: Message) -> None:
    body = message.to_wire()
    assert body["t"] == message.TAG
    assert type(message).from_wire(body) == message
    table = CLIENT_MESSAGES if type(message) in (Hello, Request) else SERVER_MESSAGES
    decoded = msgpack.unpackb(
        encode_frame(body, max_frame=1 << 20, max_elements=99)[4:]
    )
    assert decode_message(decoded, table) == message


def test_wire_keys_are_exactly_the_spec() -> None:
    assert Hello(client="c").to_wire() == {"t": "hello", "v": 1, "client": "c"}
    assert ServerHello(node="n").to_wire() == {"t": "hello", "v": 1, "node": "n"}
    assert Request(id=1, method="ls", params={}).to_wire() == {
        "t": "req", "id": 1, "method": "ls", "params": {}
    }  # fmt: skip
    assert Response(id=1, result=None).to_wire() == {
        "t": "res",
        "id": 1,
        "result": None,
    }
    assert set(ErrorResponse(id=1, code="c", message="m").to_wire()) == {
        "t", "id", "code", "message"
    }  # fmt: skip
    assert Event(sub=1, event={}).to_wire() == {"t": "event", "sub": 1, "event": {}}
    assert Fatal(code="c", message="m").to_wire() == {
        "t": "error",
        "code": "c",
        "message": "m",
    }


def test_values_stay_out_of_repr() -> None:
    secret = "p2pshare://x#KEYMATERIAL"
    for message in (
        Request(id=1, method="get", params={"link": secret}),
        Response(id=1, result=[secret]),
        Event(sub=1, event={"link": secret}),
    ):
        assert "KEYMATERIAL" not in repr(message)


REQ = {"t": "req", "id": 1, "method": "ls", "params": {}}


@pytest.mark.parametrize(
    ("cls", "body", "reason"),
    [
        (Request, {**REQ, "extra": 1}, "unknown field 'extra'"),
        (Request, {k: v for k, v in REQ.items() if k != "params"}, "missing field"),
        (Request, {**REQ, "t": "res"}, "wrong message tag"),
        (Request, {**REQ, "id": True}, "expected int, got bool"),
        (Request, {**REQ, "id": 1.0}, "expected int"),
        (Request, {**REQ, "id": 0}, "out of range"),
        (Request, {**REQ, "id": 2**53 + 1}, "out of range"),
        (Request, {**REQ, "method": "Status"}, "does not match"),
        (Request, {**REQ, "method": "st4tus"}, "does not match"),
        (Request, {**REQ, "method": ""}, "does not match"),
        (Request, {**REQ, "method": "a" * 65}, "longer than 64"),
        (Request, {**REQ, "method": b"ls"}, "expected str"),
        (Request, {**REQ, "params": []}, "expected a map"),
        (Request, {**REQ, "params": None}, "expected a map"),
        (Request, {**REQ, "params": {"f": float("nan")}}, "not finite"),
        (Hello, {"t": "hello", "v": False, "client": "c"}, "expected int"),
        (Hello, {"t": "hello", "v": 1, "client": "a\x1b[2J"}, "non-printable"),
        (Hello, {"t": "hello", "v": 1, "client": "c" * 129}, "longer than 128"),
        (ServerHello, {"t": "hello", "v": 1}, "missing field 'node'"),
        (Response, {"t": "res", "id": 1}, "missing field 'result'"),
        (ErrorResponse, {"t": "err", "id": 1, "code": "Bad", "message": ""}, "code"),
        (ErrorResponse, {"t": "err", "id": 1, "code": "x" * 41, "message": ""}, "40"),
        (
            ErrorResponse,
            {"t": "err", "id": 1, "code": "c", "message": "m" * 1001},
            "1000",
        ),
        (ErrorResponse, {"t": "err", "id": 1, "code": "c", "message": "a\nb"}, "print"),
        (Event, {"t": "event", "sub": 1, "event": "x"}, "expected a map"),
        (Fatal, {"t": "error", "code": "", "message": ""}, "does not match"),
    ],
)
def test_from_wire_is_strict(
    cls: type[Message], body: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        cls.from_wire(body)
    assert reason in info.value.reason


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "result",
    [
        (1, 2),  # tuples would come back as lists
        {1, 2},
        {1: "non-str key"},
        2**64,
        -(2**63) - 1,
        float("inf"),
        "\ud800",  # a lone surrogate is not UTF-8
        "x" * (64 * 1024 + 1),
        nested(MAX_DEPTH),  # the body is level 1
        object(),
    ],
    ids=repr,
)
def test_invalid_values_cannot_be_built(result: Any) -> None:
    with pytest.raises(LocalProtocolError):
        Response(id=1, result=result)


def test_deepest_value_and_longest_str_are_allowed() -> None:
    Response(id=1, result=nested(MAX_DEPTH - 1))
    Response(id=1, result="é" * (32 * 1024))


# -- frames ------------------------------------------------------------------------
def test_stream_fed_whole_bytewise_and_ragged() -> None:
    server, client = greeted()
    for i in range(1, 6):
        feed(server, client.request(i, "ls", {"i": i}))
    stream = b"".join(
        [
            server.event(1, {"kind": "x", "n": "é" * 300}),
            server.respond(3, {"rows": [1, 2.5, None, b"\xff"]}),
            server.error(2, "not_found", "gone"),
            server.respond(1, None),
            server.event(4, {}),
        ]
    )
    expected = [
        Event(sub=1, event={"kind": "x", "n": "é" * 300}),
        Response(id=3, result={"rows": [1, 2.5, None, b"\xff"]}),
        ErrorResponse(id=2, code="not_found", message="gone"),
        Response(id=1, result=None),
        Event(sub=4, event={}),
    ]
    for step in (len(stream), 1, 7, 333):
        _, client = greeted()
        for i in range(1, 6):
            client.request(i, "ls", {"i": i})
        got = []
        for pos in range(0, len(stream), step):
            got += feed(client, stream[pos : pos + step])
        assert got == expected
        assert client.in_flight == {4, 5}


def test_oversize_prefix_is_refused_after_four_bytes() -> None:
    server = ServerWire()
    with pytest.raises(RemoteProtocolError, match="exceeds limit 1048576"):
        feed(server, struct.pack(">I", MAX_REQUEST_BYTES + 1))
    assert server.state is State.ERROR
    client = ClientWire("c")
    client.hello()
    with pytest.raises(RemoteProtocolError, match="exceeds limit"):
        feed(client, struct.pack(">I", MAX_RESPONSE_BYTES + 1))
    small = ServerWire(max_request_bytes=100)
    with pytest.raises(RemoteProtocolError, match="exceeds limit 100"):
        feed(small, packed({"t": "hello", "v": 1, "client": "x" * 100}))


def test_frame_limits_on_send() -> None:
    server, _ = with_request()
    tight = ServerWire(max_response_bytes=64)
    feed(tight, packed({"t": "hello", "v": 1, "client": "c"}))
    tight.hello("n")
    feed(tight, packed(REQ))
    with pytest.raises(LocalProtocolError, match="bytes exceeds 64"):
        tight.respond(1, "x" * 100)
    assert tight.in_flight == {1}  # a refused send changed nothing
    tight.error(1, "internal", "result too large")
    assert tight.in_flight == frozenset()
    with pytest.raises(LocalProtocolError, match="not JSON-like"):
        server.respond(7, {"when": object()})
    assert server.in_flight == {7}


def test_zero_length_frame() -> None:
    with pytest.raises(RemoteProtocolError, match="zero length"):
        feed(ServerWire(), b"\x00\x00\x00\x00")


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 12])
def test_truncated_frame_at_eof(cut: int) -> None:
    server = ServerWire()
    assert feed(server, ClientWire("c").hello()[:cut]) == []
    with pytest.raises(RemoteProtocolError, match="truncated"):
        feed(server, b"")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb("t"), "not a map"),
        (msgpack.packb({"x": 1}), '"t"'),
        (msgpack.packb({"t": 1}), '"t"'),
        (msgpack.packb({"t": b"req"}), '"t"'),
        (msgpack.packb({"t": "nope"}), "unexpected message type 'nope'"),
        (msgpack.packb({"t": "res", "id": 1, "result": 1}), "unexpected message type"),
        (msgpack.packb({"t": "x", "e": msgpack.ExtType(1, b"ab")}), "malformed"),
        (msgpack.packb({1: "x"}), "malformed"),  # strict_map_key
        (msgpack.packb({"t": "x", "m": {b"k": 1}}, use_bin_type=True), "not a str"),
        (b"\x82\xa1t\xa1x\xa1t\xa1y", "duplicate map key"),
        (b"\x81\xa1t\xa2\xc3\x28", "malformed"),  # invalid UTF-8
        (msgpack.packb({"t": "x"}) + b"\x00", "malformed"),  # extra data
        (b"\x81\xa1t", "malformed"),
        (b"\xc1", "malformed"),
        (msgpack.packb({"t": "x", "s": "x" * (64 * 1024 + 1)}), "malformed"),
    ],
)
def test_strict_body(body: bytes, reason: str) -> None:
    server = ServerWire()
    with pytest.raises(RemoteProtocolError, match=reason):
        feed(server, prefixed(body))
    assert server.state is State.ERROR


def test_depth_limit_is_exact() -> None:
    ok = {"t": "req", "id": 1, "method": "x", "params": {"a": nested(MAX_DEPTH - 2)}}
    server, _ = greeted()
    assert len(feed(server, packed(ok))) == 1
    deep = {**ok, "params": {"a": nested(MAX_DEPTH - 1)}}
    with pytest.raises(RemoteProtocolError, match="nested too deeply"):
        feed(ServerWire(), packed(deep))


def test_element_limit_is_exact_on_both_sides() -> None:
    base = {"t": "req", "id": 1, "method": "x", "params": {"a": []}}
    room = MAX_REQUEST_ELEMENTS - count_elements(base)
    _, client = greeted()
    frame = client.request(1, "x", {"a": [0] * room})
    server, _ = greeted()
    assert len(feed(server, frame)) == 1
    with pytest.raises(LocalProtocolError, match="elements exceeds"):
        client.request(2, "x", {"a": [0] * (room + 1)})
    over = {**base, "params": {"a": [0] * (room + 1)}}
    with pytest.raises(RemoteProtocolError, match="too many elements"):
        feed(ServerWire(), packed(over))


BOMBS = {
    # 16 MiB of "[[[[...": msgpack stops at its own depth limit.
    "nested arrays": b"\x81\xa1t" + b"\x91" * ((16 << 20) - 4) + b"\x90",
    # A header claiming 16 M entries: refused before allocating them.
    "wide array header": b"\x82\xa1t\xa3res\xa1r\xdd\x01\x00\x00\x00" + b"\x90" * 100,
    # Many sibling chains, each 8 deep: the element budget runs out.
    "sibling chains": b"\x82\xa1t\xa3res\xa1r\xdd\x00\x0f\x00\x00"
    + (b"\x91" * 6 + b"\x90") * ((16 << 20) // 8),
}


@pytest.mark.parametrize("bomb", BOMBS.values(), ids=BOMBS.keys())
def test_bombs_are_refused_cheaply(bomb: bytes) -> None:
    _, client = greeted()
    client.receive_data(prefixed(bomb))
    with pytest.raises(RemoteProtocolError):
        list(client.events())
    server = ServerWire()
    with pytest.raises(RemoteProtocolError):
        feed(server, prefixed(bomb[: 1 << 20]))


# -- conversation and state rules ------------------------------------------------------
def test_conversation_with_a_subscription_and_answers_in_any_order() -> None:
    server, client = greeted()
    got = feed(
        server, client.request(1, "events", {}) + client.request(2, "status", {})
    )
    assert got == [
        Request(id=1, method="events", params={}),
        Request(id=2, method="status", params={}),
    ]
    assert server.in_flight == client.in_flight == {1, 2}
    stream = server.event(1, {"kind": "share.added"}) + server.respond(2, {"up": 1})
    stream += server.event(1, {"kind": "share.removed"}) + server.respond(1, {})
    assert feed(client, stream) == [
        Event(sub=1, event={"kind": "share.added"}),
        Response(id=2, result={"up": 1}),
        Event(sub=1, event={"kind": "share.removed"}),
        Response(id=1, result={}),
    ]
    assert server.in_flight == client.in_flight == frozenset()
    feed(server, client.request(1, "ls", {}))  # an answered id may be reused
    assert server.client == "test" and client.node == "12D3KooWnode"


def test_requests_before_our_hello_are_queued_not_answered() -> None:
    server = ServerWire()
    got = feed(server, packed({"t": "hello", "v": 1, "client": "c"}) + packed(REQ))
    assert [type(m) for m in got] == [Hello, Request]
    with pytest.raises(LocalProtocolError, match="cannot send 'res'"):
        server.respond(1, None)
    server.hello("n")
    server.respond(1, None)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([REQ], "unexpected 'req' in state IDLE"),
        ([{"t": "hello", "v": 1, "client": "c"}] * 2, "unexpected 'hello' in state"),
        ([{"t": "hello", "v": 1, "client": "c"}, REQ, REQ], "request id 1 reused"),
        ([{"t": "hello", "v": 2, "client": "c", "new": 1}], "version 2"),
    ],
)
def test_server_refuses(frames: list[dict[str, Any]], reason: str) -> None:
    server = ServerWire()
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        feed(server, b"".join(packed(f) for f in frames))
    assert server.state.name == "ERROR"  # (not `is`: mypy would narrow it)
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"more")
    with pytest.raises(LocalProtocolError):
        list(server.events())
    with pytest.raises(LocalProtocolError):
        server.hello("n")
    fatal = Fatal.from_wire(msgpack.unpackb(server.fatal_for(info.value)[4:]))
    assert fatal.code == ("version" if "version" in reason else "remote_protocol")
    assert server.state is State.CLOSED
    assert feed(server, b"\xff" * 10) == []  # after fatal, input is ignored
    with pytest.raises(LocalProtocolError):
        server.fatal("x", "twice")


def test_server_misuse_is_local() -> None:
    server, _ = with_request()
    with pytest.raises(LocalProtocolError, match="no request 8"):
        server.respond(8, None)
    with pytest.raises(LocalProtocolError, match="no request 8"):
        server.event(8, {})
    with pytest.raises(LocalProtocolError, match="cannot send 'hello'"):
        server.hello("again")
    with pytest.raises(LocalProtocolError, match="code"):
        server.error(7, "Not A Code", "m")
    server.respond(7, None)
    with pytest.raises(LocalProtocolError, match="no request 7"):
        server.error(7, "not_found", "twice")


def test_server_eof_lets_in_flight_requests_be_answered() -> None:
    server, _ = with_request()
    assert feed(server, b"") == []
    server.respond(7, [])
    assert feed(server, b"") == []


def test_error_messages_are_made_printable() -> None:
    server, client = with_request()
    got = feed(client, server.error(7, "store", "disk:\nfull\x1b[2J" + "x" * 2000))
    assert isinstance(got[0], ErrorResponse)
    assert got[0].message.startswith("disk: full?[2J") and len(got[0].message) == 1000


def test_client_misuse_is_local() -> None:
    client = ClientWire("c")
    with pytest.raises(LocalProtocolError, match="cannot send 'req' in state IDLE"):
        client.request(1, "ls", {})
    client.hello()
    with pytest.raises(LocalProtocolError, match="cannot send 'hello'"):
        client.hello()
    with pytest.raises(LocalProtocolError, match="GREETING"):
        client.request(1, "ls", {})
    _, client = with_request()
    with pytest.raises(LocalProtocolError, match="in flight"):
        client.request(7, "ls", {})
    with pytest.raises(LocalProtocolError, match="method"):
        client.request(8, "LS", {})
    with pytest.raises(LocalProtocolError, match="params"):
        client.request(8, "ls", {"t": {1, 2}})
    with pytest.raises(LocalProtocolError, match="client"):
        ClientWire("bad\x00name")


HELLO = {"t": "hello", "v": 1, "node": "n"}


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([HELLO, {"t": "res", "id": 9, "result": 1}], "unknown request 9"),
        (
            [HELLO, {"t": "err", "id": 9, "code": "x", "message": ""}],
            "unknown request 9",
        ),
        ([HELLO, {"t": "event", "sub": 9, "event": {}}], "event for unknown request 9"),
        ([HELLO, HELLO], "unexpected 'hello' in state READY"),
        ([{**HELLO, "v": 2}], "version 2"),
        ([{"t": "res", "id": 1, "result": 1}], "in state GREETING"),
        (
            [{"t": "req", "id": 1, "method": "x", "params": {}}],
            "unexpected message type",
        ),
        ([{"t": "error", "code": "x", "message": ""}, HELLO], "in state CLOSED"),
    ],
)
def test_client_refuses(frames: list[dict[str, Any]], reason: str) -> None:
    client = ClientWire("c")
    client.hello()
    with pytest.raises(RemoteProtocolError, match=reason):
        feed(client, b"".join(packed(f) for f in frames))
    assert client.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        client.request(1, "ls", {})


def test_client_refuses_a_hello_before_its_own() -> None:
    with pytest.raises(RemoteProtocolError, match="in state IDLE"):
        feed(ClientWire("c"), packed(HELLO))


def test_events_end_with_the_subscription() -> None:
    server, client = with_request()
    assert len(feed(client, server.event(7, {}) + server.respond(7, None))) == 2
    with pytest.raises(RemoteProtocolError, match="unknown request 7"):
        feed(client, packed({"t": "event", "sub": 7, "event": {}}))


def test_client_close_by_fatal_or_eof() -> None:
    server, client = with_request()
    got = feed(client, server.fatal("busy", "too many clients"))
    assert got == [Fatal(code="busy", message="too many clients")]
    assert client.state is State.CLOSED and client.in_flight == frozenset()
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        client.request(8, "ls", {})
    _, client = with_request()
    assert feed(client, b"") == []
    assert client.state is State.CLOSED and client.in_flight == frozenset()
    with pytest.raises(LocalProtocolError):
        client.request(8, "ls", {})
    with pytest.raises(LocalProtocolError, match="after EOF"):
        client.receive_data(b"x")


def test_version_mismatch_end_to_end() -> None:
    server = ServerWire()
    new_client = packed({"t": "hello", "v": 2, "client": "future", "caps": ["x"]})
    with pytest.raises(RemoteProtocolError) as info:
        feed(server, new_client)
    client = ClientWire("c")
    client.hello()
    (fatal,) = feed(client, server.fatal_for(info.value))
    assert isinstance(fatal, Fatal) and fatal.code == "version"
    exc = exception_for(fatal.code, fatal.message)
    assert isinstance(exc, RemoteCallError) and exc.remote_code == "version"


# -- error codes -----------------------------------------------------------------------
def test_every_error_class_comes_back_as_itself() -> None:
    table = error_classes()
    defined = {c for c in vars(errors).values() if isinstance(c, type)}
    assert set(table.values()) == {c for c in defined if issubclass(c, P2PShareError)}
    for code, cls in table.items():
        assert cls.code == code
        exc = exception_for(code, "share: it failed")
        assert type(exc) is cls and str(exc) == "share: it failed"
        assert exc.exit_code == cls.exit_code
        assert type(exception_for(error_code(exc), str(exc))) is cls


def test_error_codes_of_special_classes() -> None:
    remote = exception_for("remote_protocol", "frame: zero length")
    assert (
        isinstance(remote, RemoteProtocolError)
        and remote.reason == "frame: zero length"
    )
    relayed = RemoteCallError("not_found", "share: unknown")
    assert error_code(relayed) == "not_found"
    assert type(exception_for(error_code(relayed), str(relayed))) is NotFoundError
    internal = exception_for("internal", "internal error: KeyError")
    assert type(internal) is InternalError and internal.exit_code == 1
    unknown = exception_for("from_the_future", "m")
    assert (
        isinstance(unknown, RemoteCallError)
        and unknown.remote_code == "from_the_future"
    )


class _NeedsPath(NotFoundError):
    code = "needs_path"

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: not found")


class _Keyword(NotFoundError):
    code = "keyword"

    def __init__(self, message: str, *, limit: int = 0) -> None:
        super().__init__(message)
        self.limit = limit


def test_classes_with_their_own_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(errors_map._CLASSES, "needs_path", _NeedsPath)
    monkeypatch.setitem(errors_map._CLASSES, "keyword", _Keyword)
    fallback = exception_for("needs_path", "m")
    assert type(fallback) is RemoteCallError and fallback.remote_code == "needs_path"
    built = exception_for("keyword", "m")
    assert type(built) is _Keyword and str(built) == "m" and built.limit == 0


def test_wire_imports_no_event_loop() -> None:
    heavy = ("trio", "anyio", "libp2p", "textual")
    code = (
        "import sys, p2pshare.control, p2pshare.control.wire\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
