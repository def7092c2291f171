"""The messages of ``/p2pshare/xfer/1`` and their wire form.

Theory of operation
-------------------
Each message is a frozen, slotted, keyword-only dataclass that validates
itself in ``__post_init__``: types (an ``int`` is never a ``bool``, ``bytes``
is exactly ``bytes``), byte lengths and ranges. An invalid message therefore
cannot exist, whichever side built it.

The wire form (spec: ``p2pshare.protocol``, "Messages") is a flat msgpack map
whose ``"t"`` is the message's ``TAG`` and whose other keys are the field
names. One generic rule maps fields to keys, so adding a field is one line:

* a field whose value is ``None`` is left out of the map; a key absent from
  the map takes the field's default, which is allowed only for fields whose
  default is ``None`` (optional fields);
* every other field is required on the wire;
* nil is never a valid value on the wire (absent is the only encoding of
  "none"), unknown keys are refused, and so are missing required keys.

Errors: building an invalid message raises :class:`LocalProtocolError` (we
tried to send it: a bug). :meth:`Message.from_wire` and :func:`decode_message`
turn every problem with received data into :class:`RemoteProtocolError`,
chaining the local error, because that is the receive boundary.

Bounds come from the format: a block is at most one chunk of the largest
chunk size plus its tag, an envelope at most ``MAX_ENVELOPE_BYTES``, a grant
at most ``MAX_GRANT_BYTES``, a chunk
index below ``MAX_CHUNK_COUNT``, an index-block index below
``MAX_INDEX_BLOCKS``, a have-bitmap one bit per possible chunk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.format.chunks import ID_BYTES, MAX_CHUNK_COUNT, MAX_CHUNK_SIZE, TAG_BYTES
from p2pshare.format.envelope import MAX_ENVELOPE_BYTES, MAX_INDEX_BLOCKS
from p2pshare.format.grant import MAX_GRANT_BYTES

__all__ = [
    "CHALLENGE_BYTES",
    "MAX_BLOCK_BYTES",
    "MAX_CODE_CHARS",
    "MAX_GRANT_BYTES",
    "MAX_HAVE_BYTES",
    "MAX_REASON_CHARS",
    "MAX_REQ",
    "MAX_SID",
    "MESSAGE_TYPES",
    "PROOF_BYTES",
    "PROTOCOL_VERSION",
    "Block",
    "Bye",
    "Cancel",
    "Hello",
    "Kind",
    "Message",
    "Missing",
    "Open",
    "Opened",
    "Refused",
    "Want",
    "decode_message",
]

PROTOCOL_VERSION = 1
CHALLENGE_BYTES = 32
PROOF_BYTES = 64  # an Ed25519 signature
MAX_SID = 2**16 - 1  # share slots per connection are few (see max_open)
MAX_REQ = 2**32 - 1  # request ids wrap around; 4 Gi in flight is plenty
MAX_BLOCK_BYTES = MAX_CHUNK_SIZE + TAG_BYTES
MAX_HAVE_BYTES = MAX_CHUNK_COUNT // 8  # one bit per possible chunk: 1 MiB
MAX_CODE_CHARS = 40
MAX_REASON_CHARS = 200

Kind = Literal["chunk", "index"]
KINDS: tuple[Kind, ...] = ("chunk", "index")
_CODE_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


# -- field checks (raise LocalProtocolError; from_wire converts) -------------
def _uint(name: str, value: object, maximum: int) -> None:
    if type(value) is not int:  # exactly int: bool is an int subclass
        raise LocalProtocolError(f"{name}: expected int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise LocalProtocolError(f"{name}: {value} out of range 0..{maximum}")


def _bytes(name: str, value: object, *, exact: int = -1, maximum: int = -1) -> None:
    if type(value) is not bytes:
        raise LocalProtocolError(f"{name}: expected bytes, got {type(value).__name__}")
    if exact >= 0 and len(value) != exact:
        raise LocalProtocolError(f"{name}: expected {exact} bytes, got {len(value)}")
    if maximum >= 0 and len(value) > maximum:
        raise LocalProtocolError(f"{name}: {len(value)} bytes exceeds {maximum}")


def _code(value: object) -> None:
    """A stable machine-readable code: ``[a-z0-9_]{1,40}``."""
    _text("code", value, MAX_CODE_CHARS)
    assert isinstance(value, str)
    if not value or not set(value) <= _CODE_ALPHABET:
        raise LocalProtocolError("code: expected [a-z0-9_]+")


def _text(name: str, value: object, maximum: int) -> None:
    if type(value) is not str:
        raise LocalProtocolError(f"{name}: expected str, got {type(value).__name__}")
    if len(value) > maximum:
        raise LocalProtocolError(f"{name}: longer than {maximum} characters")
    # Remote text ends up in logs and the UI: no control characters.
    if not value.isprintable():
        raise LocalProtocolError(f"{name}: contains non-printable characters")


class Message:
    """Base of every xfer message: the generic wire mapping."""

    __slots__ = ()
    TAG: ClassVar[str]

    def to_wire(self) -> dict[str, Any]:
        """The frame body: ``{"t": TAG, field: value, ...}``, None fields left out."""
        body: dict[str, Any] = {"t": self.TAG}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is not None:
                body[field.name] = value
        return body

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Self:
        """Build a message from a frame body, strictly.

        Raises:
            RemoteProtocolError: wrong tag, unknown, missing or nil keys, or
                a field that fails validation.
        """
        if body.get("t") != cls.TAG:
            raise RemoteProtocolError(f"{cls.TAG}: wrong message tag")
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = [k for k in body if k != "t" and k not in known]
        if unknown:
            raise RemoteProtocolError(f"{cls.TAG}: unknown field {unknown[0]!r:.40}")
        kwargs: dict[str, Any] = {}
        for name, field in known.items():
            if name in body:
                if body[name] is None:
                    raise RemoteProtocolError(f"{cls.TAG}: field {name!r} is nil")
                kwargs[name] = body[name]
            elif field.default is not None:  # MISSING or a non-None default
                raise RemoteProtocolError(f"{cls.TAG}: missing field {name!r}")
        try:
            return cls(**kwargs)
        except LocalProtocolError as exc:
            raise RemoteProtocolError(f"{cls.TAG}: {exc}") from exc


# -- the messages (spec: p2pshare.protocol, "Messages") ----------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Server → client, first frame: the challenge the proof must sign."""

    TAG: ClassVar[str] = "hello"
    version: int = PROTOCOL_VERSION
    challenge: bytes

    def __post_init__(self) -> None:
        _uint("version", self.version, 2**16 - 1)
        _bytes("challenge", self.challenge, exact=CHALLENGE_BYTES)

    def __repr__(self) -> str:
        return f"Hello(version={self.version})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Open(Message):
    """Client → server: open share slot ``sid`` for ``root``.

    Exactly one of ``proof`` (an access proof: the client holds the key) and
    ``grant`` (the encoded :class:`~p2pshare.format.grant.Grant` of a seed
    that holds no key) is present. Only its size is checked here; the
    server's driver decodes and verifies it.
    """

    TAG: ClassVar[str] = "open"
    sid: int
    root: bytes
    proof: bytes | None = None  # declared before grant: proof opens encode as v1
    grant: bytes | None = None

    def __post_init__(self) -> None:
        _uint("sid", self.sid, MAX_SID)
        _bytes("root", self.root, exact=ID_BYTES)
        if (self.proof is None) == (self.grant is None):
            raise LocalProtocolError("open: expected exactly one of proof and grant")
        if self.proof is not None:
            _bytes("proof", self.proof, exact=PROOF_BYTES)
        if self.grant is not None:
            _bytes("grant", self.grant, maximum=MAX_GRANT_BYTES)
            if not self.grant:
                raise LocalProtocolError("grant: empty")

    def __repr__(self) -> str:  # proofs and grants stay out of logs
        how = "proof" if self.grant is None else "grant"
        return f"Open(sid={self.sid}, root={self.root[:4].hex()}…, {how})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened(Message):
    """Server → client: the root's envelope and which chunks the server has.

    ``have`` is a bitmap (bit *i* is bit ``i & 7`` of byte ``i >> 3``, least
    significant first) or None, meaning "every chunk".
    """

    TAG: ClassVar[str] = "opened"
    sid: int
    envelope: bytes
    have: bytes | None = None

    def __post_init__(self) -> None:
        _uint("sid", self.sid, MAX_SID)
        _bytes("envelope", self.envelope, maximum=MAX_ENVELOPE_BYTES)
        if not self.envelope:
            raise LocalProtocolError("envelope: empty")
        if self.have is not None:
            _bytes("have", self.have, maximum=MAX_HAVE_BYTES)

    def __repr__(self) -> str:
        have = "all" if self.have is None else f"{len(self.have)}B"
        return f"Opened(sid={self.sid}, envelope={len(self.envelope)}B, have={have})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused(Message):
    """Server → client: ``sid`` will not open (``code`` is stable, e.g.
    ``access_denied``, ``not_found``; ``reason`` is for humans)."""

    TAG: ClassVar[str] = "refused"
    sid: int
    code: str
    reason: str = ""

    def __post_init__(self) -> None:
        _uint("sid", self.sid, MAX_SID)
        _code(self.code)
        _text("reason", self.reason, MAX_REASON_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Want(Message):
    """Client → server: request ``req`` for chunk or index block ``index``."""

    TAG: ClassVar[str] = "want"
    sid: int
    req: int
    kind: Kind
    index: int

    def __post_init__(self) -> None:
        _uint("sid", self.sid, MAX_SID)
        _uint("req", self.req, MAX_REQ)
        if self.kind not in KINDS:
            raise LocalProtocolError(f"kind: expected one of {KINDS}")
        limit = MAX_CHUNK_COUNT if self.kind == "chunk" else MAX_INDEX_BLOCKS
        _uint("index", self.index, limit - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Block(Message):
    """Server → client: the bytes answering ``req`` (not yet verified)."""

    TAG: ClassVar[str] = "block"
    req: int
    data: bytes

    def __post_init__(self) -> None:
        _uint("req", self.req, MAX_REQ)
        _bytes("data", self.data, maximum=MAX_BLOCK_BYTES)

    def __repr__(self) -> str:
        return f"Block(req={self.req}, data={len(self.data)}B)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Missing(Message):
    """Server → client: the server does not have what ``req`` asked for.

    ``code`` (optional, ``[a-z0-9_]+``) says why when the server knows it
    cannot serve this share at all, so the client stops asking it:
    ``source_changed`` (a file shared by reference changed since it was
    added), ``unavailable`` (any other lasting failure). Absent: only this
    block is missing (a partial provider)."""

    TAG: ClassVar[str] = "missing"
    req: int
    code: str | None = None

    def __post_init__(self) -> None:
        _uint("req", self.req, MAX_REQ)
        if self.code is not None:
            _code(self.code)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Message):
    """Client → server: ``req`` is no longer wanted."""

    TAG: ClassVar[str] = "cancel"
    req: int

    def __post_init__(self) -> None:
        _uint("req", self.req, MAX_REQ)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye(Message):
    """Either way: the sender's last frame."""

    TAG: ClassVar[str] = "bye"
    reason: str = ""

    def __post_init__(self) -> None:
        _text("reason", self.reason, MAX_REASON_CHARS)


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TAG: cls
    for cls in (Hello, Open, Opened, Refused, Want, Block, Missing, Cancel, Bye)
}


def decode_message(body: Mapping[str, Any]) -> Message:
    """Turn a frame body (from :class:`FrameDecoder`) into a message.

    Raises:
        RemoteProtocolError: unknown ``"t"`` or an invalid message.
    """
    tag = body.get("t")
    cls = MESSAGE_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise RemoteProtocolError(f"frame: unknown message type {tag!r:.40}")
    return cls.from_wire(body)
