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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.format.chunks import ID_BYTES, MAX_CHUNK_COUNT, MAX_CHUNK_SIZE, TAG_BYTES
from p2pshare.format.envelope import MAX_ENVELOPE_BYTES, MAX_INDEX_BLOCKS
from p2pshare.format.grant import MAX_GRANT_BYTES
from p2pshare.format.ticket import TICKET_BYTES
from p2pshare.protocol.codec import (
    Omit,
    WireMessage,
    check_bytes,
    check_code,
    check_text,
    check_uint,
)

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

# "frag": parity fragment of stripe ``index`` in the server's column;
# "emap": the share's signed erasure map (index 0) (format/erasure.py)
Kind = Literal["chunk", "index", "frag", "emap"]
KINDS: tuple[Kind, ...] = ("chunk", "index", "frag", "emap")
MAX_COLUMN = 31  # format.erasure.MAX_N - 1


class Message(WireMessage):
    """Base of every xfer message: a field holding None is left out."""

    __slots__ = ()
    OMIT: ClassVar[Omit] = "none"


# -- the messages (spec: p2pshare.protocol, "Messages") ----------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Server → client, first frame: the challenge the proof must sign."""

    TAG: ClassVar[str] = "hello"
    version: int = PROTOCOL_VERSION
    challenge: bytes

    def __post_init__(self) -> None:
        check_uint("version", self.version, 2**16 - 1)
        check_bytes("challenge", self.challenge, exact=CHALLENGE_BYTES)

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
    ticket: bytes | None = None  # the link's ticket (format/ticket.py), with a proof

    def __post_init__(self) -> None:
        check_uint("sid", self.sid, MAX_SID)
        check_bytes("root", self.root, exact=ID_BYTES)
        if (self.proof is None) == (self.grant is None):
            raise LocalProtocolError("open: expected exactly one of proof and grant")
        if self.proof is not None:
            check_bytes("proof", self.proof, exact=PROOF_BYTES)
        if self.grant is not None:
            check_bytes("grant", self.grant, maximum=MAX_GRANT_BYTES)
            if not self.grant:
                raise LocalProtocolError("grant: empty")
        if self.ticket is not None:
            if self.proof is None:
                raise LocalProtocolError("open: a ticket goes with a proof")
            check_bytes("ticket", self.ticket, exact=TICKET_BYTES)

    def __repr__(self) -> str:  # proofs and grants stay out of logs
        how = "proof" if self.grant is None else "grant"
        return f"Open(sid={self.sid}, root={self.root[:4].hex()}…, {how})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened(Message):
    """Server → client: the root's envelope and which chunks the server has.

    ``have`` is a bitmap (bit *i* is bit ``i & 7`` of byte ``i >> 3``, least
    significant first) or None, meaning "every chunk". ``column`` is set by
    a seed keeping one column of an erasure-coded share (format/erasure.py):
    it serves that column's chunks (in ``have``) or parity fragments
    (``frag``), and the signed map (``emap``).
    """

    TAG: ClassVar[str] = "opened"
    sid: int
    envelope: bytes
    have: bytes | None = None
    column: int | None = None

    def __post_init__(self) -> None:
        check_uint("sid", self.sid, MAX_SID)
        check_bytes("envelope", self.envelope, maximum=MAX_ENVELOPE_BYTES)
        if not self.envelope:
            raise LocalProtocolError("envelope: empty")
        if self.have is not None:
            check_bytes("have", self.have, maximum=MAX_HAVE_BYTES)
        if self.column is not None:
            check_uint("column", self.column, MAX_COLUMN)

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
        check_uint("sid", self.sid, MAX_SID)
        check_code(self.code, MAX_CODE_CHARS)
        check_text("reason", self.reason, MAX_REASON_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Want(Message):
    """Client → server: request ``req`` for chunk or index block ``index``."""

    TAG: ClassVar[str] = "want"
    sid: int
    req: int
    kind: Kind
    index: int

    def __post_init__(self) -> None:
        check_uint("sid", self.sid, MAX_SID)
        check_uint("req", self.req, MAX_REQ)
        if self.kind not in KINDS:
            raise LocalProtocolError(f"kind: expected one of {KINDS}")
        limit = {"index": MAX_INDEX_BLOCKS, "emap": 1}.get(self.kind, MAX_CHUNK_COUNT)
        check_uint("index", self.index, limit - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Block(Message):
    """Server → client: the bytes answering ``req`` (not yet verified)."""

    TAG: ClassVar[str] = "block"
    req: int
    data: bytes

    def __post_init__(self) -> None:
        check_uint("req", self.req, MAX_REQ)
        check_bytes("data", self.data, maximum=MAX_BLOCK_BYTES)

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
        check_uint("req", self.req, MAX_REQ)
        if self.code is not None:
            check_code(self.code, MAX_CODE_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Message):
    """Client → server: ``req`` is no longer wanted."""

    TAG: ClassVar[str] = "cancel"
    req: int

    def __post_init__(self) -> None:
        check_uint("req", self.req, MAX_REQ)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye(Message):
    """Either way: the sender's last frame."""

    TAG: ClassVar[str] = "bye"
    reason: str = ""

    def __post_init__(self) -> None:
        check_text("reason", self.reason, MAX_REASON_CHARS)


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
