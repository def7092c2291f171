"""The wire of ``/p2pshare/pin/1``: frames, and one request and one
response per stream (spec: ``p2pshare.protocol.pin``).

Theory of operation
-------------------
:class:`PinStream` is one stream's state machine, sans-IO like xfer's
``Connection``: the driver writes what :meth:`~PinStream.send` returns and
feeds what it read to :meth:`~PinStream.receive_data`. Each role has one
transition table, ``{state: {"send <kind>" | "recv <kind>": next}}``; an
input with no entry is a :class:`RemoteProtocolError` when received (the
stream is then in ``ERROR``) and a :class:`LocalProtocolError` when sent::

    client (owner, checker)              seed
    IDLE ──send request──▶ ASKED         IDLE ──recv request──▶ ASKED
    ASKED ─recv response─▶ DONE          ASKED ─send response─▶ DONE
    (any) ─RemoteProtocolError─▶ ERROR   (any) ─RemoteProtocolError─▶ ERROR

A stream carries exactly one message each way: a byte after the frame, or
EOF before a whole one, is a :class:`RemoteProtocolError` (the reader's
rule), and so is a request sent to a client or a response to a seed (the
message tables of each reader).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Generic, Literal

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol.codec import transition
from p2pshare.protocol.framing import FrameDecoder, encode_frame
from p2pshare.protocol.pin.messages import (
    MAX_PIN_FRAME_BYTES,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    M,
    PinMessage,
    Request,
    Response,
)

__all__ = [
    "PinReader",
    "PinStream",
    "StreamState",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "request_reader",
    "response_reader",
]


# -- frames ----------------------------------------------------------------------
class PinReader(Generic[M]):
    """Sans-IO reader of the one message a pin stream carries.

    Feed what the stream returns to :meth:`receive_data` (``b""`` at EOF) and
    call :meth:`next_message` after each read: it returns the message once
    its frame is complete, then None. The length prefix is checked as soon
    as four bytes arrived; any byte after the frame, and EOF before it, is a
    :class:`RemoteProtocolError`.

    Args:
        types: ``REQUEST_TYPES`` (a seed) or ``RESPONSE_TYPES`` (a client);
            see :func:`request_reader` and :func:`response_reader`.
        max_frame: the largest body accepted.
    """

    __slots__ = ("_decoder", "_done", "_types")

    def __init__(
        self, types: Mapping[str, type[M]], *, max_frame: int = MAX_PIN_FRAME_BYTES
    ) -> None:
        # str fields are bounded by the frame; the messages bound them further.
        self._decoder = FrameDecoder(max_frame, max_str_bytes=max_frame)
        self._types = types
        self._done = False

    @property
    def done(self) -> bool:
        """True once the message was returned."""
        return self._done

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the stream; ``b""`` means EOF.

        Raises:
            LocalProtocolError: data fed after EOF.
        """
        self._decoder.receive_data(data)

    def next_message(self) -> M | None:
        """The message, once complete; None before (more bytes needed) and after.

        Raises:
            RemoteProtocolError: bad length prefix, malformed or unknown
                message, bytes after the frame, or EOF before a whole frame.
        """
        if self._done:
            if self._decoder.buffered:
                raise RemoteProtocolError("pin: bytes after the message")
            return None
        body = self._decoder.next_frame()
        if body is None:
            if self._decoder.at_eof:
                raise RemoteProtocolError("pin: stream closed before a message")
            return None
        self._done = True
        if self._decoder.buffered:
            raise RemoteProtocolError("pin: bytes after the message")
        tag = body["t"]
        cls = self._types.get(tag)
        if cls is None:
            raise RemoteProtocolError(f"pin: unknown message type {tag!r:.40}")
        return cls.from_wire(body)


def request_reader() -> PinReader[Request]:
    """A :class:`PinReader` for the seed's side: it reads one request."""
    return PinReader(REQUEST_TYPES)


def response_reader() -> PinReader[Response]:
    """A :class:`PinReader` for the client's side: it reads one response."""
    return PinReader(RESPONSE_TYPES)


def _encode(message: PinMessage, types: Mapping[str, type[PinMessage]]) -> bytes:
    if types.get(message.TAG) is not type(message):
        raise LocalProtocolError(f"pin: {type(message).__name__} sent the wrong way")
    return encode_frame(message.to_wire(), max_frame=MAX_PIN_FRAME_BYTES)


def _decode(data: bytes, reader: PinReader[M]) -> M:
    if data:
        reader.receive_data(data)
    reader.receive_data(b"")
    message = reader.next_message()
    if message is None:  # unreachable: EOF before a message raises
        raise RemoteProtocolError("pin: no message")
    return message


def encode_request(message: Request) -> bytes:
    """One whole request frame (length prefix and body).

    Raises:
        LocalProtocolError: ``message`` is not a request (a bug).
    """
    return _encode(message, REQUEST_TYPES)


def encode_response(message: Response) -> bytes:
    """One whole response frame (length prefix and body).

    Raises:
        LocalProtocolError: ``message`` is not a response (a bug).
    """
    return _encode(message, RESPONSE_TYPES)


def decode_request(data: bytes) -> Request:
    """Decode exactly one whole request frame.

    Raises:
        RemoteProtocolError: anything but exactly one valid request frame.
    """
    return _decode(data, request_reader())


def decode_response(data: bytes) -> Response:
    """Decode exactly one whole response frame.

    Raises:
        RemoteProtocolError: anything but exactly one valid response frame.
    """
    return _decode(data, response_reader())


# -- one stream's state machine ---------------------------------------------------
class StreamState(Enum):
    """A pin stream's state; see the module docstring for the diagram."""

    IDLE = "idle"
    ASKED = "asked"
    DONE = "done"
    ERROR = "error"


_S = StreamState
_TABLES: dict[str, dict[StreamState, dict[str, StreamState]]] = {
    "client": {
        _S.IDLE: {"send request": _S.ASKED},
        _S.ASKED: {"recv response": _S.DONE},
    },
    "seed": {
        _S.IDLE: {"recv request": _S.ASKED},
        _S.ASKED: {"send response": _S.DONE},
    },
}


class PinStream:
    """One end of a pin stream: ``role`` is ``"client"`` or ``"seed"``."""

    __slots__ = ("_reader", "_role", "_state")

    def __init__(self, role: Literal["client", "seed"]) -> None:
        self._role = role
        self._state = StreamState.IDLE
        self._reader: PinReader[Request] | PinReader[Response] = (
            request_reader() if role == "seed" else response_reader()
        )

    @property
    def state(self) -> StreamState:
        return self._state

    def send(self, message: Request | Response) -> bytes:
        """The frame of our one message.

        Raises:
            LocalProtocolError: out of turn, or the wrong kind for the role.
        """
        kind = "request" if self._role == "client" else "response"
        nxt = self._step("send", kind)
        types = REQUEST_TYPES if kind == "request" else RESPONSE_TYPES
        frame = _encode(message, types)
        self._state = nxt
        return frame

    def receive_data(self, data: bytes) -> Request | Response | None:
        """Feed what a read returned (``b""`` at EOF); the peer's message
        once its frame is complete, else None.

        Raises:
            RemoteProtocolError: a bad frame or message, bytes after it, EOF
                before it, or a message out of turn (the stream is in ERROR).
            LocalProtocolError: the stream is in ERROR.
        """
        if self._state is StreamState.ERROR:
            raise LocalProtocolError("pin: the stream is in ERROR")
        try:
            self._reader.receive_data(data)
            message = self._reader.next_message()
            if message is not None:
                kind = "response" if self._role == "client" else "request"
                self._state = self._step("recv", kind)
        except RemoteProtocolError:
            self._state = StreamState.ERROR
            raise
        return message

    def receive_frame(self, frame: bytes) -> Request | Response:
        """The peer's message from its whole frame (what ``read_frame``
        returned), the stream then at EOF.

        Raises:
            RemoteProtocolError: anything but exactly one valid message.
        """
        message = self.receive_data(frame)
        if self.receive_data(b"") is not None or message is None:
            self._state = StreamState.ERROR
            raise RemoteProtocolError("pin: not exactly one message")
        return message

    def _step(self, direction: str, kind: str) -> StreamState:
        return transition(_TABLES[self._role], self._state, direction, kind, "pin")
