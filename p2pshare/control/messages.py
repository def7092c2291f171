"""The messages of the control API and the values they carry.

Theory of operation
-------------------
Each message is a frozen, slotted, keyword-only dataclass that validates
itself in ``__post_init__`` (spec: ``p2pshare.control``, §2 and §3), so an
invalid message cannot exist, whichever side built it. The wire form is a
msgpack map whose ``"t"`` is the class's ``TAG`` and whose other keys are
exactly the field names: every field is required (``None`` is a valid
*result*, so absence cannot mean "none"), unknown keys are refused, and an
``int`` is never a ``bool``.

Values (``params``, ``result``, ``event``) are JSON-like: None, bool, int
(-2**63..2**64-1, what msgpack carries), finite float, str, bytes, list and
dict with str keys, nested at most ``MAX_DEPTH - 1`` containers deep (the
frame body is the first level). They stay out of ``repr`` because they may
hold share links, whose fragment is a key.

Errors: building an invalid message raises :class:`LocalProtocolError` (we
tried to send it: a bug). :meth:`Message.from_wire` and :func:`decode_message`
turn every problem with received data into
:class:`RemoteProtocolError`, chaining the local error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from p2pshare.control.framing import MAX_DEPTH, MAX_STR_BYTES
from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol.codec import Omit, WireMessage, check_text, check_uint

__all__ = [
    "CLIENT_MESSAGES",
    "MAX_CODE_CHARS",
    "MAX_ID",
    "MAX_MESSAGE_CHARS",
    "MAX_METHOD_CHARS",
    "MAX_NAME_CHARS",
    "PROTOCOL_VERSION",
    "SERVER_MESSAGES",
    "ErrorResponse",
    "Event",
    "Fatal",
    "Hello",
    "Message",
    "Request",
    "Response",
    "ServerHello",
    "check_value",
    "decode_message",
    "printable",
]

PROTOCOL_VERSION = 1  # §2: the "v" of both hellos
MAX_ID = 2**53  # §3: ids survive a round trip through a JSON double
MAX_METHOD_CHARS = 64  # §3
MAX_CODE_CHARS = 40  # §3: the stable codes of p2pshare.errors are short
MAX_MESSAGE_CHARS = 1000  # §3: one line for a human, not a payload
MAX_NAME_CHARS = 128  # §2: a client name or a peer id (52 chars today)
MAX_INT = 2**64 - 1  # msgpack's integer range
MIN_INT = -(2**63)

_METHOD = re.compile(rf"[a-z_.]{{1,{MAX_METHOD_CHARS}}}")
_CODE = re.compile(rf"[a-z0-9_]{{1,{MAX_CODE_CHARS}}}")


# -- values ------------------------------------------------------------------
def check_value(value: object, *, max_depth: int = MAX_DEPTH - 1) -> None:
    """Check that ``value`` is JSON-like (module docstring).

    Raises:
        LocalProtocolError: a disallowed type, a non-str key, an int out of
            msgpack's range, a non-finite float, a str over
            ``MAX_STR_BYTES`` or not UTF-8 encodable, or containers nested
            more than ``max_depth`` deep.
    """
    if value is None or isinstance(value, bool | bytes):
        return
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise LocalProtocolError("value: int out of msgpack range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise LocalProtocolError("value: float is not finite")
    elif isinstance(value, str):
        _check_str(value)
    elif isinstance(value, list | dict):
        if max_depth <= 0:
            raise LocalProtocolError("value: nested too deeply")
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise LocalProtocolError("value: map key is not a str")
                _check_str(key)
            value = list(value.values())
        for item in value:
            check_value(item, max_depth=max_depth - 1)
    else:
        raise LocalProtocolError(f"value: {type(value).__name__} is not JSON-like")


def _check_str(value: str) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise LocalProtocolError("value: str is not valid UTF-8") from exc
    if size > MAX_STR_BYTES:
        raise LocalProtocolError(f"value: str of {size} bytes over {MAX_STR_BYTES}")


def printable(text: str, limit: int) -> str:
    """``text`` made fit for a human-facing field: control characters become
    ``?`` (whitespace ones a space) and it is cut to ``limit`` characters."""
    return "".join(
        c if c.isprintable() else " " if c in "\t\n\r" else "?" for c in text[:limit]
    )


# -- field checks (raise LocalProtocolError; from_wire converts) -------------
def _id(name: str, value: object) -> None:
    if type(value) is not int:  # exactly int: bool is an int subclass
        raise LocalProtocolError(f"{name}: expected int, got {type(value).__name__}")
    if not 1 <= value <= MAX_ID:
        raise LocalProtocolError(f"{name}: {value} out of range 1..2**53")


def _str(name: str, value: object, maximum: int) -> str:
    if type(value) is not str:
        raise LocalProtocolError(f"{name}: expected str, got {type(value).__name__}")
    if len(value) > maximum:
        raise LocalProtocolError(f"{name}: longer than {maximum} characters")
    return value


def _text(name: str, value: object, maximum: int) -> None:
    _check_str(check_text(name, value, maximum))


def _token(name: str, value: object, maximum: int, pattern: re.Pattern[str]) -> None:
    if not pattern.fullmatch(_str(name, value, maximum)):
        raise LocalProtocolError(f"{name}: does not match {pattern.pattern}")


def _version(value: object) -> None:
    check_uint("v", value, 2**16 - 1)


def _map(name: str, value: object) -> None:
    if not isinstance(value, dict):
        raise LocalProtocolError(f"{name}: expected a map, got {type(value).__name__}")
    try:
        check_value(value)
    except LocalProtocolError as exc:
        raise LocalProtocolError(f"{name}: {exc}") from exc


# -- messages (spec: p2pshare.control, §2 and §3) ------------------------------
class Message(WireMessage):
    """Base of every control message: every field is on the wire."""

    __slots__ = ()
    OMIT: ClassVar[Omit] = "never"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Client → server, first frame: protocol version ``v`` and a name."""

    TAG: ClassVar[str] = "hello"
    v: int = PROTOCOL_VERSION
    client: str

    def __post_init__(self) -> None:
        _version(self.v)
        _text("client", self.client, MAX_NAME_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerHello(Message):
    """Server → client, first frame: protocol version and the node's peer id."""

    TAG: ClassVar[str] = "hello"
    v: int = PROTOCOL_VERSION
    node: str

    def __post_init__(self) -> None:
        _version(self.v)
        _text("node", self.node, MAX_NAME_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(Message):
    """Client → server: call ``method`` with ``params``; ``id`` names the call."""

    TAG: ClassVar[str] = "req"
    id: int
    method: str
    params: dict[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        _id("id", self.id)
        _token("method", self.method, MAX_METHOD_CHARS, _METHOD)
        _map("params", self.params)


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Message):
    """Server → client: request ``id`` succeeded with ``result``."""

    TAG: ClassVar[str] = "res"
    id: int
    result: Any = field(repr=False)

    def __post_init__(self) -> None:
        _id("id", self.id)
        try:
            check_value(self.result)
        except LocalProtocolError as exc:
            raise LocalProtocolError(f"result: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorResponse(Message):
    """Server → client: request ``id`` failed; ``code`` is a stable error code."""

    TAG: ClassVar[str] = "err"
    id: int
    code: str
    message: str

    def __post_init__(self) -> None:
        _id("id", self.id)
        _token("code", self.code, MAX_CODE_CHARS, _CODE)
        _text("message", self.message, MAX_MESSAGE_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(Message):
    """Server → client: one ``event`` of the subscription opened by request ``sub``."""

    TAG: ClassVar[str] = "event"
    sub: int
    event: Mapping[str, object] = field(repr=False)

    def __post_init__(self) -> None:
        _id("sub", self.sub)
        _map("event", self.event)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fatal(Message):
    """Server → client: the connection failed (``code``); the server closes."""

    TAG: ClassVar[str] = "error"
    code: str
    message: str

    def __post_init__(self) -> None:
        _token("code", self.code, MAX_CODE_CHARS, _CODE)
        _text("message", self.message, MAX_MESSAGE_CHARS)


# What each side may receive, by tag.
CLIENT_MESSAGES: dict[str, type[Message]] = {"hello": Hello, "req": Request}
SERVER_MESSAGES: dict[str, type[Message]] = {
    cls.TAG: cls for cls in (ServerHello, Response, ErrorResponse, Event, Fatal)
}


def decode_message(
    body: Mapping[str, Any], table: Mapping[str, type[Message]]
) -> Message:
    """Turn a frame body into the message its ``"t"`` names in ``table``.

    Raises:
        RemoteProtocolError: a ``"t"`` not in ``table``, or an invalid message.
    """
    tag = body.get("t")
    cls = table.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise RemoteProtocolError(f"frame: unexpected message type {tag!r:.40}")
    return cls.from_wire(body)
