"""The control API's two state machines, sans-IO (spec: ``p2pshare.control``).

Theory of operation
-------------------
:class:`ServerWire` (inside the node) and :class:`ClientWire` (CLI, TUI)
never touch a socket or a clock. The driver feeds what a read returned to
``receive_data`` (``b""`` at EOF), drains ``events()`` (the received
messages, decoded lazily, one frame per message) and writes the bytes the
send methods return. Each role has one transition table,
``{state: {"send <t>" | "recv <t>": next state}}``; an input with no entry
is a :class:`RemoteProtocolError` when received and a
:class:`LocalProtocolError` when sent::

    server                            client
    IDLE ─recv hello─▶ GREETED        IDLE ─send hello─▶ GREETING
    GREETED ─send hello─▶ READY       GREETING ─recv hello─▶ READY
    (any) ─send error─▶ CLOSED        (any) ─recv error / EOF─▶ CLOSED
    (any) ─RemoteProtocolError─▶ ERROR

Rules beyond the tables:

* Ids: the client sends an id only if it is not in flight; the server
  refuses a request whose id is in flight. Every ``res``/``err`` answers an
  in-flight id and retires it; an ``event`` names an in-flight id (its
  subscription ends with the ``res``). The server answers in any order.
* The server accepts requests once the client's hello arrived, but answers
  them only after its own hello. A hello whose ``v`` is not
  ``PROTOCOL_VERSION`` is refused before its other keys are looked at (a
  newer client may send more), and :meth:`ServerWire.fatal_for` then sends
  the code ``version``.
* EOF between frames is a clean close: the client can send nothing more;
  the server may still answer what is in flight (a half-closed client can
  read). EOF inside a frame is a :class:`RemoteProtocolError`.
* In ``ERROR`` every call raises :class:`LocalProtocolError`, except the
  server's one ``fatal``/``fatal_for`` so the driver can say why before it
  closes. After ``fatal`` the server ignores whatever still arrives.
* A send that raises :class:`LocalProtocolError` changed nothing, so a
  server whose ``respond`` refused an unencodable result can still answer
  that id with ``error``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any

from p2pshare.control.errors_map import error_code, exception_for
from p2pshare.control.framing import (
    MAX_REQUEST_BYTES,
    MAX_REQUEST_ELEMENTS,
    MAX_RESPONSE_BYTES,
    MAX_RESPONSE_ELEMENTS,
    FrameDecoder,
    encode_frame,
)
from p2pshare.control.messages import (
    CLIENT_MESSAGES,
    MAX_MESSAGE_CHARS,
    PROTOCOL_VERSION,
    SERVER_MESSAGES,
    ErrorResponse,
    Event,
    Fatal,
    Hello,
    Message,
    Request,
    Response,
    ServerHello,
    decode_message,
    printable,
)
from p2pshare.errors import LocalProtocolError, P2PShareError, RemoteProtocolError
from p2pshare.protocol.codec import transition

__all__ = [
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_ELEMENTS",
    "MAX_RESPONSE_BYTES",
    "MAX_RESPONSE_ELEMENTS",
    "ClientWire",
    "ErrorResponse",
    "Event",
    "Fatal",
    "Hello",
    "Message",
    "Request",
    "Response",
    "ServerHello",
    "ServerWire",
    "State",
    "exception_for",
]


class State(Enum):
    """A wire's state; see the module docstring for the diagram."""

    IDLE = "idle"
    GREETED = "greeted"  # server: the client's hello arrived
    GREETING = "greeting"  # client: our hello is sent
    READY = "ready"
    CLOSED = "closed"
    ERROR = "error"


_S = State
# Tags: hello, req (client → server); hello, res, err, event, error
# (server → client). "error" is the connection-level Fatal.
_ANSWERS = {"send res": _S.READY, "send err": _S.READY, "send event": _S.READY}
_SERVER: dict[State, dict[str, State]] = {
    _S.IDLE: {"recv hello": _S.GREETED, "send error": _S.CLOSED},
    _S.GREETED: {
        "recv req": _S.GREETED,
        "send hello": _S.READY,
        "send error": _S.CLOSED,
    },
    _S.READY: {"recv req": _S.READY, **_ANSWERS, "send error": _S.CLOSED},
    _S.ERROR: {"send error": _S.CLOSED},
    _S.CLOSED: {},
}
_REPLIES = {"recv res": _S.READY, "recv err": _S.READY, "recv event": _S.READY}
_CLIENT: dict[State, dict[str, State]] = {
    _S.IDLE: {"send hello": _S.GREETING, "recv error": _S.CLOSED},
    _S.GREETING: {"recv hello": _S.READY, "recv error": _S.CLOSED},
    _S.READY: {"send req": _S.READY, **_REPLIES, "recv error": _S.CLOSED},
    _S.ERROR: {},
    _S.CLOSED: {},
}


class _Wire:
    """Framing, state and the in-flight ids, shared by both roles."""

    _TABLE: dict[State, dict[str, State]]
    _RECEIVES: Mapping[str, type[Message]]
    _DEAF_WHEN_CLOSED: bool  # CLOSED ignores input (else input is an error)

    def __init__(
        self,
        *,
        recv_bytes: int,
        recv_elements: int,
        send_bytes: int,
        send_elements: int,
    ) -> None:
        self._decoder = FrameDecoder(max_frame=recv_bytes, max_elements=recv_elements)
        self._send_bytes = send_bytes
        self._send_elements = send_elements
        self._state = State.IDLE
        self._eof = False
        self._in_flight: set[int] = set()

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    @property
    def in_flight(self) -> frozenset[int]:
        """Ids of requests sent (client) or received (server), not yet answered."""
        return frozenset(self._in_flight)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket; ``b""`` means EOF.

        Raises:
            LocalProtocolError: the wire is in ``ERROR``, or data after EOF.
        """
        self._check_usable()
        if not (self._state is State.CLOSED and self._DEAF_WHEN_CLOSED):
            self._decoder.receive_data(data)

    def events(self) -> Iterator[Message]:
        """Yield the received messages, until more bytes are needed.

        Raises:
            RemoteProtocolError: the peer broke the protocol; the wire is
                now in ``ERROR``.
            LocalProtocolError: called in ``ERROR``.
        """
        while True:
            self._check_usable()
            if self._state is State.CLOSED and self._DEAF_WHEN_CLOSED:
                return
            try:
                body = self._decoder.next_frame()
                if body is None:
                    if self._decoder.at_eof and not self._eof:
                        self._eof = True
                        self._got_eof()
                    return
                message = self._got_body(body)
            except RemoteProtocolError:
                self._state = State.ERROR
                raise
            yield message

    # -- helpers ----------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._state is State.ERROR:
            raise LocalProtocolError("control: the wire is in ERROR")

    def _step(self, direction: str, tag: str) -> State:
        return transition(
            self._TABLE, self._state, direction, tag, "control", shown=repr(tag)
        )

    def _send(self, message: Message) -> bytes:
        # Callers check their bookkeeping first and commit it only after
        # this returns: a refused send changes nothing.
        nxt = self._step("send", message.TAG)
        frame = encode_frame(
            message.to_wire(),
            max_frame=self._send_bytes,
            max_elements=self._send_elements,
        )
        self._state = nxt
        return frame

    def _got_body(self, body: dict[str, Any]) -> Message:
        message = decode_message(body, self._RECEIVES)
        self._state = self._step("recv", message.TAG)
        self._got(message)
        return message

    def _got(self, message: Message) -> None:
        raise NotImplementedError

    def _got_eof(self) -> None:
        raise NotImplementedError


class ServerWire(_Wire):
    """The node's end of one control connection.

    Args:
        max_request_bytes: the largest request frame accepted (checked on
            the length prefix).
        max_response_bytes: the largest frame we send; clients accept up to
            ``MAX_RESPONSE_BYTES``.
    """

    _TABLE = _SERVER
    _RECEIVES = CLIENT_MESSAGES
    _DEAF_WHEN_CLOSED = True  # after fatal, whatever still arrives

    def __init__(
        self,
        *,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(
            recv_bytes=max_request_bytes,
            recv_elements=MAX_REQUEST_ELEMENTS,
            send_bytes=max_response_bytes,
            send_elements=MAX_RESPONSE_ELEMENTS,
        )
        self.client: str | None = None  # the name in the client's hello
        self._version_error: RemoteProtocolError | None = None

    def hello(self, node_id: str) -> bytes:
        """Our hello, with the node's peer id; once, after the client's."""
        return self._send(ServerHello(node=node_id))

    def respond(self, id: int, result: Any) -> bytes:  # noqa: A002 (the wire key)
        """Answer in-flight request ``id`` with a JSON-like ``result``.

        Raises:
            LocalProtocolError: ``id`` is not in flight, ``result`` is not
                JSON-like or over the response limits, or out of turn.
        """
        return self._answer(id, Response(id=id, result=result))

    def error(self, id: int, code: str, message: str) -> bytes:  # noqa: A002
        """Fail in-flight request ``id`` with a stable ``code``.

        ``message`` is made printable and cut to 1000 characters.
        """
        text = printable(message, MAX_MESSAGE_CHARS)
        return self._answer(id, ErrorResponse(id=id, code=code, message=text))

    def event(self, sub: int, event: Mapping[str, object]) -> bytes:
        """One event of the subscription opened by in-flight request ``sub``."""
        if sub not in self._in_flight:
            raise LocalProtocolError(f"control: no request {sub} in flight")
        return self._send(Event(sub=sub, event=event))

    def fatal(self, code: str, message: str) -> bytes:
        """The connection-level error frame; the driver closes after it."""
        frame = self._send(
            Fatal(code=code, message=printable(message, MAX_MESSAGE_CHARS))
        )
        self._in_flight.clear()
        return frame

    def fatal_for(self, exc: P2PShareError) -> bytes:
        """:meth:`fatal` for ``exc``, typically the RemoteProtocolError that
        :meth:`events` raised (a version mismatch is sent as ``version``)."""
        code = "version" if exc is self._version_error else error_code(exc)
        return self.fatal(code, str(exc))

    def _answer(self, id: int, message: Message) -> bytes:  # noqa: A002
        if id not in self._in_flight:
            raise LocalProtocolError(f"control: no request {id} in flight")
        frame = self._send(message)
        self._in_flight.discard(id)
        return frame

    def _got_body(self, body: dict[str, Any]) -> Message:
        version = body.get("v")
        if (
            self._state is State.IDLE
            and body.get("t") == "hello"
            and type(version) is int
            and version != PROTOCOL_VERSION
        ):
            self._version_error = RemoteProtocolError(
                f"control: client speaks version {version}, node {PROTOCOL_VERSION}"
            )
            raise self._version_error
        return super()._got_body(body)

    def _got(self, message: Message) -> None:
        if isinstance(message, Hello):
            self.client = message.client
        elif isinstance(message, Request):
            if message.id in self._in_flight:
                raise RemoteProtocolError(f"control: request id {message.id} reused")
            self._in_flight.add(message.id)

    def _got_eof(self) -> None:
        pass  # in-flight requests may still be answered


class ClientWire(_Wire):
    """A client's end of a control connection.

    Args:
        client_name: sent in our hello, for the node's logs.
        max_request_bytes: the largest frame we send; nodes accept up to
            ``MAX_REQUEST_BYTES``.
        max_response_bytes: the largest frame accepted (checked on the
            length prefix).
    """

    _TABLE = _CLIENT
    _RECEIVES = SERVER_MESSAGES
    _DEAF_WHEN_CLOSED = False  # nothing may follow the node's error frame

    def __init__(
        self,
        client_name: str,
        *,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(
            recv_bytes=max_response_bytes,
            recv_elements=MAX_RESPONSE_ELEMENTS,
            send_bytes=max_request_bytes,
            send_elements=MAX_REQUEST_ELEMENTS,
        )
        self._hello = Hello(client=client_name)  # validates the name now
        self.node: str | None = None  # the peer id in the node's hello

    def hello(self) -> bytes:
        """Our hello: the first frame of the connection."""
        return self._send(self._hello)

    def request(self, id: int, method: str, params: dict[str, Any]) -> bytes:  # noqa: A002
        """Call ``method``; ``id`` must not be in flight.

        Raises:
            LocalProtocolError: before the node's hello, after the
                connection closed, a reused id, or invalid params.
        """
        if id in self._in_flight:
            raise LocalProtocolError(f"control: request id {id} is in flight")
        frame = self._send(Request(id=id, method=method, params=params))
        self._in_flight.add(id)
        return frame

    def _got(self, message: Message) -> None:
        if isinstance(message, ServerHello):
            if message.v != PROTOCOL_VERSION:
                raise RemoteProtocolError(
                    f"control: node speaks version {message.v}, not {PROTOCOL_VERSION}"
                )
            self.node = message.node
        elif isinstance(message, Response | ErrorResponse):
            if message.id not in self._in_flight:
                raise RemoteProtocolError(
                    f"control: answer to unknown request {message.id}"
                )
            self._in_flight.discard(message.id)
        elif isinstance(message, Event):
            if message.sub not in self._in_flight:
                raise RemoteProtocolError(
                    f"control: event for unknown request {message.sub}"
                )
        elif isinstance(message, Fatal):
            self._in_flight.clear()

    def _got_eof(self) -> None:
        self._state = State.CLOSED
        self._in_flight.clear()
