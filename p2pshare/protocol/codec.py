"""The one strict message codec of p2pshare: frames and messages.

Theory of operation
-------------------
Every protocol of p2pshare — ``/p2pshare/xfer/1``, ``/p2pshare/pin/1``,
``/p2pshare/reach/1`` and the local control API — carries length-prefixed
msgpack frames, and every frame body is a map naming its message in
``"t"``. This module holds what they share:

* :class:`FrameDecoder` — sans-IO: push what a read returned with
  :meth:`~FrameDecoder.receive_data`, pull whole bodies with
  :meth:`~FrameDecoder.next_frame`. The u32be length prefix is checked
  against ``max_frame`` *before* the body is buffered (zero is refused:
  every body is a non-empty map); input accumulates in one ``bytearray``
  and a whole frame is decoded from a ``memoryview`` of it, then deleted
  from the front — linear in the input, whatever the read sizes. EOF
  between frames is clean, inside one a :class:`RemoteProtocolError`;
  data after EOF is our own bug (:class:`LocalProtocolError`). What a body
  may hold is the protocol's *body rule*, a function passed in: peer
  protocols take flat maps of scalars (``framing.py``), the control API
  bounded nested values (``control/framing.py``).
* :class:`WireMessage` — the base of every message: a frozen, slotted,
  keyword-only dataclass that validates itself in ``__post_init__`` (so an
  invalid message cannot exist, whichever side built it), mapped to and
  from a body by one generic rule. ``OMIT`` says which fields may be left
  out: ``"none"`` (a field holding None is left out, and only fields whose
  default is None may be absent: xfer), ``"default"`` (a field equal to
  its default is left out, and any field with a default may be absent:
  pin), ``"never"`` (every field is on the wire: control). Nil is never a
  valid value where absence encodes "none"; unknown and missing keys are
  refused. ``CODECS`` maps a field to its wire form and back (a list
  field in a flat map). Building an invalid message raises
  :class:`LocalProtocolError`; :meth:`WireMessage.from_wire` turns every
  problem with received data into :class:`RemoteProtocolError`.
* The field checks shared by the messages (:func:`check_uint`,
  :func:`check_bytes`, :func:`check_text`, :func:`check_code`).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Self, TypeVar

from p2pshare.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CODE_ALPHABET",
    "PREFIX_BYTES",
    "BodyRule",
    "FrameDecoder",
    "WireMessage",
    "check_bytes",
    "check_code",
    "check_text",
    "check_uint",
    "prefixed",
    "transition",
]

PREFIX_BYTES = 4
PREFIX = struct.Struct(">I")
CODE_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")

# what a frame body may hold: decode it from raw bytes or raise
# RemoteProtocolError (it is a msgpack map with a str "t" on return)
BodyRule = Callable[[memoryview], dict[str, Any]]
Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]
Omit = Literal["none", "default", "never"]
S = TypeVar("S")


def prefixed(packed: bytes, *, max_frame: int) -> bytes:
    """A packed body with its length prefix.

    Raises:
        LocalProtocolError: the body is empty or over ``max_frame`` bytes
            (a message bigger than the peer accepts is our bug).
    """
    if not 0 < len(packed) <= max_frame:
        raise LocalProtocolError(
            f"frame: body of {len(packed)} bytes exceeds {max_frame}"
        )
    return PREFIX.pack(len(packed)) + packed


def check_body(body: object) -> dict[str, Any]:
    """A decoded body is a map with a str ``"t"``."""
    if not isinstance(body, dict):
        raise RemoteProtocolError("frame: body is not a map")
    if not isinstance(body.get("t"), str):
        raise RemoteProtocolError('frame: body has no str "t"')
    return body


class FrameDecoder:
    """Incremental, strict decoder of length-prefixed frames.

    Args:
        max_frame: the largest body accepted, in bytes; checked against the
            length prefix before the body is buffered.
        rule: decodes and checks one body (see the module docstring).
    """

    __slots__ = ("_buf", "_eof", "_need", "_rule", "max_frame")

    def __init__(self, max_frame: int, rule: BodyRule) -> None:
        if not 0 < max_frame < 1 << 32:
            raise ValueError("max_frame must be in 1..2**32-1")
        self.max_frame = max_frame
        self._rule = rule
        self._buf = bytearray()
        self._eof = False
        self._need: int | None = None  # body length of the frame in progress

    @property
    def at_eof(self) -> bool:
        """True once EOF was received and every buffered byte consumed."""
        return self._eof and not self._buf

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf)

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the stream; ``b""`` means EOF.

        Raises:
            LocalProtocolError: data was fed after EOF.
        """
        if self._eof:
            if data:
                raise LocalProtocolError("frame: data received after EOF")
        elif data:
            self._buf += data
        else:
            self._eof = True

    def next_frame(self) -> dict[str, Any] | None:
        """Return the next whole frame's body, or None if more bytes are needed.

        Raises:
            RemoteProtocolError: bad length prefix, malformed body, or a frame
                cut short by EOF.
        """
        buf = self._buf
        if self._need is None:
            if len(buf) < PREFIX_BYTES:
                if self._eof and buf:
                    raise RemoteProtocolError("frame: truncated length prefix at EOF")
                return None
            (length,) = PREFIX.unpack_from(buf)
            if length == 0:
                raise RemoteProtocolError("frame: zero length")
            if length > self.max_frame:
                raise RemoteProtocolError(
                    f"frame: length {length} exceeds limit {self.max_frame}"
                )
            self._need = length
        end = PREFIX_BYTES + self._need
        if len(buf) < end:
            if self._eof:
                raise RemoteProtocolError("frame: truncated body at EOF")
            return None
        self._need = None
        try:
            with memoryview(buf) as view, view[PREFIX_BYTES:end] as raw:
                return self._rule(raw)
        finally:
            del buf[:end]  # consumed even when malformed


def transition(
    table: Mapping[Any, Mapping[str, S]],
    state: S,
    direction: str,
    what: str,
    where: str,
    *,
    shown: str | None = None,
) -> S:
    """The next state of a protocol state machine: ``table[state]`` maps
    ``"<send|recv> <what>"`` to it. A missing entry is the peer's error
    when received (:class:`RemoteProtocolError`) and ours when sent
    (:class:`LocalProtocolError`); ``where`` prefixes the message."""
    nxt = table[state].get(f"{direction} {what}")
    if nxt is not None:
        return nxt
    name = getattr(state, "name", state)
    shown = what if shown is None else shown
    if direction == "recv":
        raise RemoteProtocolError(f"{where}: unexpected {shown} in state {name}")
    raise LocalProtocolError(f"{where}: cannot send {shown} in state {name}")


# -- messages ------------------------------------------------------------------------
_FIELDS: dict[type, tuple[tuple[dataclasses.Field[Any], ...], frozenset[str]]] = {}


def _shape(cls: type) -> tuple[tuple[dataclasses.Field[Any], ...], frozenset[str]]:
    """A message class's fields and their names (computed once per class)."""
    shape = _FIELDS.get(cls)
    if shape is None:
        fields = dataclasses.fields(cls)
        shape = _FIELDS[cls] = (fields, frozenset(f.name for f in fields))
    return shape


def _may_be_absent(omit: Omit, field: dataclasses.Field[Any]) -> bool:
    if omit == "none":
        return field.default is None
    if omit == "default":
        return field.default is not dataclasses.MISSING
    return False


class WireMessage:
    """Base of every message: the strict wire mapping (module docstring)."""

    __slots__ = ()
    TAG: ClassVar[str]
    OMIT: ClassVar[Omit] = "none"
    WHERE: ClassVar[str] = ""  # prefix of error messages, e.g. "pin "
    CODECS: ClassVar[Mapping[str, Codec]] = {}

    def to_wire(self) -> dict[str, Any]:
        """The frame body: ``{"t": TAG, field: value, ...}``."""
        body: dict[str, Any] = {"t": self.TAG}
        omit = self.OMIT
        codecs = self.CODECS
        for field in _shape(type(self))[0]:
            value = getattr(self, field.name)
            if (omit == "none" and value is None) or (
                omit == "default"
                and field.default is not dataclasses.MISSING
                and value == field.default
            ):
                continue
            codec = codecs.get(field.name)
            body[field.name] = value if codec is None else codec[0](value)
        return body

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Self:
        """Build a message from a frame body, strictly.

        Raises:
            RemoteProtocolError: wrong tag, unknown, missing or nil keys, or
                a field that fails validation.
        """
        where = f"{cls.WHERE}{cls.TAG}"
        if body.get("t") != cls.TAG:
            raise RemoteProtocolError(f"{where}: wrong message tag")
        fields, names = _shape(cls)
        unknown = [k for k in body if k != "t" and k not in names]
        if unknown:
            raise RemoteProtocolError(f"{where}: unknown field {unknown[0]!r:.40}")
        kwargs: dict[str, Any] = {}
        try:
            for field in fields:
                name = field.name
                if name in body:
                    value = body[name]
                    if value is None and cls.OMIT != "never":
                        raise RemoteProtocolError(f"{where}: field {name!r} is nil")
                    codec = cls.CODECS.get(name)
                    kwargs[name] = value if codec is None else codec[1](value)
                elif not _may_be_absent(cls.OMIT, field):
                    raise RemoteProtocolError(f"{where}: missing field {name!r}")
            return cls(**kwargs)
        except LocalProtocolError as exc:
            raise RemoteProtocolError(f"{where}: {exc}") from exc


# -- field checks (raise LocalProtocolError; from_wire converts) -------------------
def check_uint(name: str, value: object, maximum: int) -> None:
    if type(value) is not int:  # exactly int: bool is an int subclass
        raise LocalProtocolError(f"{name}: expected int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise LocalProtocolError(f"{name}: {value} out of range 0..{maximum}")


def check_bytes(
    name: str, value: object, *, exact: int = -1, maximum: int = -1
) -> None:
    if type(value) is not bytes:
        raise LocalProtocolError(f"{name}: expected bytes, got {type(value).__name__}")
    if exact >= 0 and len(value) != exact:
        raise LocalProtocolError(f"{name}: expected {exact} bytes, got {len(value)}")
    if maximum >= 0 and len(value) > maximum:
        raise LocalProtocolError(f"{name}: {len(value)} bytes exceeds {maximum}")


def check_text(name: str, value: object, maximum: int) -> str:
    """A str of at most ``maximum`` characters, none of them control
    characters (remote text ends up in logs and on terminals)."""
    if type(value) is not str:
        raise LocalProtocolError(f"{name}: expected str, got {type(value).__name__}")
    if len(value) > maximum:
        raise LocalProtocolError(f"{name}: longer than {maximum} characters")
    if not value.isprintable():
        raise LocalProtocolError(f"{name}: contains non-printable characters")
    return value


def check_code(value: object, maximum: int) -> None:
    """A stable machine-readable code: ``[a-z0-9_]{1,maximum}``."""
    text = check_text("code", value, maximum)
    if not text or not set(text) <= CODE_ALPHABET:
        raise LocalProtocolError("code: expected [a-z0-9_]+")
