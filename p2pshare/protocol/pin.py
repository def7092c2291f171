r"""The pin protocol ``/p2pshare/pin/1``: ask a seed to keep a replica.

Theory of operation
-------------------
A seed is a headless node that keeps ciphertext replicas it cannot read
(DESIGN.md, "Capabilities", "Network"). It never receives a file key: the
owner gives it a **grant** (``p2pshare.format.grant``), signed with the
share's access key for the seed's own peer id, and the seed then fetches
the share over ``/p2pshare/xfer/1`` like any downloader, opening with the
grant instead of an access proof. Every pin stream carries exactly one
request and one response::

    client                                      seed
      [u32 len | request]       ──▶
                                ◀──      [u32 len | response]
                                          (the stream then closes)

Flows (the client is the owner's node, or a checker for ``prove``):

* **pin** — ``PinRequest(root, grant, lease_s, size, hints)``. The seed
  checks the grant (``Grant.verify`` with ``peer`` = its own id, the access
  key from the envelope once fetched; before that only its root, peer and
  expiry can be judged), its storage limit against ``size``, and answers
  ``PinStatus`` (``fetching``, or ``complete`` if it already holds every
  chunk) or ``PinRefused`` (``storage_full``, ``access_denied``, …). It then
  fetches in the background from the ``hints`` (multiaddrs of providers)
  and the DHT, verifying every chunk against its id, exactly as a
  downloader does; the grant travels in each xfer ``open``.
* **status** — ``StatusRequest(root)`` → ``PinStatus``: ``have`` of
  ``count`` blocks, the lease deadline, and ``error`` once ``failed``.
  ``none`` means the seed holds no pin for that root. Clients poll.
* **lease renewal** — a new ``PinRequest`` for the same root with a fresh
  grant and lease: the seed extends the pin (never shortens it below what
  it already granted) and answers ``PinStatus``. A pin whose lease expires
  is garbage-collected by the seed; owners renew well before.
* **prove** — a checker sends ``ProveRequest(root, nonce, indices)`` with a
  fresh random 32-byte nonce and randomly chosen chunk indices; the seed
  answers ``ProveResponse(root, digest)`` with :func:`storage_digest` over
  those ciphertext chunks, and the checker recomputes it from its own
  copy (or from chunks it fetched and verified against their ids). The
  nonce is the BLAKE2b key, so no digest can be precomputed, cached, or
  replayed from an earlier check: without the bytes of each chunk asked for,
  at this moment, the seed can only guess (2**-256). A seed that dropped or
  corrupted any one of the chosen chunks fails. No key or grant is needed
  (ciphertext is public to anyone holding the root id alone).
* **unpin** — ``UnpinRequest(root, at, auth)``: ``auth`` is an access-key
  signature (:func:`make_unpin_auth`) over the root, the seed's and the
  client's peer ids (both as Noise authenticated them) and the time
  ``at``; the seed accepts it within ``UNPIN_SKEW_S`` of its clock, drops
  the pin and answers ``Unpinned``. Only a key holder can unpin, and a
  captured request is useless against another seed or from another peer.
* **info** — ``InfoRequest()`` → ``Info``: region, free and used bytes,
  admission policy (``open`` or ``voucher``, issue 7) and software version,
  for choosing seeds in distinct regions.
* **redeem** (issue 7) — ``RedeemRequest(voucher)`` carries a voucher's
  ``Voucher.to_bytes()`` (``p2pshare.format.voucher``). The seed decodes it,
  runs ``Voucher.verify(seed=<its own id>, now=…)`` and binds its serial to
  the requester's peer id as Noise authenticated it (first redeemer wins;
  redeeming one's own voucher again changes nothing). It answers
  ``Balance`` (the requester's balance after redemption) or ``PinRefused``
  with ``voucher`` (undecodable, issued by another seed, bad signature,
  expired, or already redeemed by another peer; the message says which).
* **balance** (issue 7) — ``BalanceRequest()`` → ``Balance(quota, used,
  vouchers, expires)``: the requester's total unexpired voucher quota on
  this seed, the bytes its pins are charged, how many unexpired vouchers it
  redeemed there and the latest expiry among them (absent when
  ``vouchers`` is 0).
  In voucher mode a pin that would take ``used`` past ``quota`` is refused
  with ``quota``, the message naming the quota.

Frames are those of ``/p2pshare/xfer/1`` (``framing.py``: u32be length
checked before buffering, flat strict msgpack map with a str ``"t"``), with a
limit of ``MAX_PIN_FRAME_BYTES``. A flat map has no arrays, so the two list
fields travel as scalars: ``hints`` as one str of newline-joined multiaddrs
(each printable ASCII without whitespace, so the join is unambiguous) and
``indices`` as a bin of u32be. As in ``messages.py``: optional fields (those
with a default) are left out when they hold their default, and an absent
one takes its default; nil is never valid, unknown and missing keys are
errors, and validation lives in ``__post_init__`` (``LocalProtocolError``
when we build it, ``RemoteProtocolError`` when it arrived).

Messages
--------
==========  ========  =======================================================
``t``       from      fields (all required unless marked optional)
==========  ========  =======================================================
pin         client    ``root`` bin(32), ``grant`` bin(1..512),
                      ``lease_s`` int 1..90 days, ``size`` int 0..2**63-1,
                      ``hints`` str (≤ 8 hints of ≤ 512 chars, ``\n``-joined),
                      optional; ``top`` bool, optional (default true);
                      ``voucher`` bin(1..1024), optional
status      client    ``root`` bin(32)
prove       client    ``root`` bin(32), ``nonce`` bin(32),
                      ``indices`` bin(4..256: 1..64 u32be)
unpin       client    ``root`` bin(32), ``at`` int, ``auth`` bin(64)
info        client    (none)
redeem      client    ``voucher`` bin(1..1024)
balance     client    (none)
pin_status  seed      ``root``, ``state`` "fetching" | "complete" | "failed"
                      | "none", ``have`` int, ``count`` int (have ≤ count),
                      ``lease_expires`` int, optional; ``error`` str(≤ 1000),
                      optional
proved      seed      ``root`` bin(32), ``digest`` bin(32)
unpinned    seed      ``root`` bin(32)
seed_info   seed      ``region`` str(≤ 64), ``free_bytes`` int,
                      ``used_bytes`` int, ``admission`` "open" | "voucher",
                      ``version`` str(≤ 64)
credit      seed      ``quota`` int, ``used`` int, ``vouchers`` int,
                      ``expires`` int, optional (present exactly when
                      ``vouchers`` > 0)
refused     seed      ``code`` (one of ``REFUSE_CODES``), ``message``
                      str(≤ 1000), optional (default "")
==========  ========  =======================================================

``refused`` codes: ``storage_full`` (the pin does not fit ``--max-storage``),
``access_denied`` (bad grant or unpin auth), ``bad_request`` (valid frame,
unusable request), ``not_found`` (no such pin, or chunks asked for a proof
are not held), ``quota`` (this client's share of the seed is used up, or
it has no voucher credit on a seed in voucher mode), ``voucher`` (a
redeemed voucher was refused: see **redeem**), ``unavailable`` (shutting
down, overloaded: try later).

Nothing here does I/O, reads a clock or draws random numbers: ``now`` and
nonces are arguments.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from p2pshare.errors import AccessDenied, LocalProtocolError, RemoteProtocolError
from p2pshare.format.chunks import ID_BYTES
from p2pshare.format.grant import MAX_GRANT_BYTES, MAX_PEER_BYTES
from p2pshare.format.voucher import MAX_VOUCHER_BYTES
from p2pshare.protocol.codec import (
    Codec,
    Omit,
    WireMessage,
    check_bytes,
    check_text,
    check_uint,
)
from p2pshare.protocol.framing import FrameDecoder, encode_frame

__all__ = [
    "ADMISSIONS",
    "MAX_HINTS",
    "MAX_HINT_CHARS",
    "MAX_LEASE_S",
    "MAX_PIN_FRAME_BYTES",
    "MAX_PIN_TEXT_CHARS",
    "MAX_PROVE_INDICES",
    "MAX_REGION_CHARS",
    "MAX_VERSION_CHARS",
    "MAX_VOUCHER_BYTES",
    "NONCE_BYTES",
    "PIN_PROTOCOL_ID",
    "PIN_STATES",
    "REFUSE_CODES",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "UNPIN_SKEW_S",
    "UNPIN_TAG",
    "Admission",
    "Balance",
    "BalanceRequest",
    "Info",
    "InfoRequest",
    "PinMessage",
    "PinReader",
    "PinRefused",
    "PinRequest",
    "PinState",
    "PinStatus",
    "ProveRequest",
    "ProveResponse",
    "RedeemRequest",
    "RefuseCode",
    "Request",
    "Response",
    "StatusRequest",
    "UnpinRequest",
    "Unpinned",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "make_unpin_auth",
    "request_reader",
    "response_reader",
    "storage_digest",
    "unpin_message",
    "verify_unpin_auth",
]

PIN_PROTOCOL_ID = "/p2pshare/pin/1"
# Every pin message is small: the largest is a PinRequest with 8 hints of
# 512 chars, a 512-byte grant and a 1 KiB voucher (about 6 KiB). 16 KiB
# leaves room and bounds what a peer can make a seed buffer per stream.
MAX_PIN_FRAME_BYTES = 16 * 1024
# A lease longer than this would outlive most grants and make a dropped
# owner's data linger; owners renew instead.
MAX_LEASE_S = 90 * 24 * 3600
MAX_HINTS = 8  # a few providers to start from; the DHT finds the rest
MAX_HINT_CHARS = 512  # a multiaddr with /p2p/ and a DNS name fits easily
# MAX_VOUCHER_BYTES (1024) comes from p2pshare.format.voucher: a voucher's
# whole wire form, carried by PinRequest.voucher and RedeemRequest.voucher.
# One proof reads at most 64 chunks (64 MiB at 1 MiB chunks) on the seed;
# a checker repeats checks rather than asking for more at once.
MAX_PROVE_INDICES = 64
MAX_PIN_TEXT_CHARS = 1000
MAX_REGION_CHARS = 64
MAX_VERSION_CHARS = 64
MAX_U63 = 2**63 - 1  # msgpack's signed int range: sizes, times, counts
MAX_U32 = 2**32 - 1
NONCE_BYTES = 32
AUTH_BYTES = 64  # Ed25519 signature
UNPIN_TAG = b"p2pshare/pin/1/unpin\x00"
# Unpin requests carry the client's clock; five minutes absorbs ordinary
# clock skew while keeping a captured request short-lived.
UNPIN_SKEW_S = 300

PinState = Literal["fetching", "complete", "failed", "none"]
PIN_STATES: tuple[PinState, ...] = ("fetching", "complete", "failed", "none")
Admission = Literal["open", "voucher"]
ADMISSIONS: tuple[Admission, ...] = ("open", "voucher")
RefuseCode = Literal[
    "storage_full",
    "access_denied",
    "bad_request",
    "not_found",
    "quota",
    "voucher",
    "unavailable",
]
REFUSE_CODES: tuple[RefuseCode, ...] = (
    "storage_full",
    "access_denied",
    "bad_request",
    "not_found",
    "quota",
    "voucher",
    "unavailable",
)

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HINT_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))  # printable ASCII, no space


# -- field checks and list codecs (raise LocalProtocolError) -----------------
def _root(value: object) -> None:
    check_bytes("root", value, exact=ID_BYTES)


def _hints(value: object) -> None:
    if type(value) is not tuple:
        raise LocalProtocolError(f"hints: expected tuple, got {type(value).__name__}")
    if len(value) > MAX_HINTS:
        raise LocalProtocolError(f"hints: more than {MAX_HINTS}")
    for hint in value:
        if type(hint) is not str:
            raise LocalProtocolError("hints: expected str items")
        if not 0 < len(hint) <= MAX_HINT_CHARS:
            raise LocalProtocolError(f"hints: each must be 1..{MAX_HINT_CHARS} chars")
        if not set(hint) <= _HINT_CHARS:
            raise LocalProtocolError("hints: only printable ASCII without spaces")


def _indices(value: object) -> None:
    if type(value) is not tuple:
        raise LocalProtocolError(f"indices: expected tuple, got {type(value).__name__}")
    if not 0 < len(value) <= MAX_PROVE_INDICES:
        raise LocalProtocolError(f"indices: expected 1..{MAX_PROVE_INDICES}")
    for index in value:
        check_uint("indices item", index, MAX_U32)


def _hints_to_wire(value: Any) -> Any:
    return "\n".join(value)


def _hints_from_wire(value: Any) -> Any:
    if type(value) is not str:
        raise LocalProtocolError(f"hints: expected str, got {type(value).__name__}")
    if len(value) > MAX_HINTS * (MAX_HINT_CHARS + 1):  # bound the split
        raise LocalProtocolError("hints: too long")
    return tuple(value.split("\n"))


def _indices_to_wire(value: Any) -> Any:
    return b"".join(_U32.pack(i) for i in value)


def _indices_from_wire(value: Any) -> Any:
    if type(value) is not bytes:
        raise LocalProtocolError(f"indices: expected bytes, got {type(value).__name__}")
    if len(value) % 4 or len(value) > 4 * MAX_PROVE_INDICES:
        raise LocalProtocolError("indices: expected 1..64 u32be")
    return tuple(i for (i,) in _U32.iter_unpack(value))


class PinMessage(WireMessage):
    """Base of every pin message: a field equal to its default (None,
    ``()``, ``top=True``, an empty refusal message) is left out, and the
    two list fields have codecs."""

    __slots__ = ()
    OMIT: ClassVar[Omit] = "default"
    WHERE: ClassVar[str] = "pin "


# -- requests (client → seed) --------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class PinRequest(PinMessage):
    """Keep (or renew) a replica of ``root``: fetch it with ``grant``.

    ``size`` is the ciphertext the owner expects the replica to take, so the
    seed can refuse early with ``storage_full``; ``hints`` are multiaddrs of
    providers to try first; ``top`` is False for the members of a folder
    pinned along with it (kept and served, but only the folder's root is
    announced in the DHT); ``voucher`` is for admission control (issue 7).
    """

    TAG: ClassVar[str] = "pin"
    CODECS: ClassVar[Mapping[str, Codec]] = {
        "hints": (_hints_to_wire, _hints_from_wire)
    }
    root: bytes
    grant: bytes
    lease_s: int
    size: int
    hints: tuple[str, ...] = ()
    top: bool = True
    voucher: bytes | None = None

    def __post_init__(self) -> None:
        _root(self.root)
        check_bytes("grant", self.grant, maximum=MAX_GRANT_BYTES)
        if not self.grant:
            raise LocalProtocolError("grant: empty")
        check_uint("lease_s", self.lease_s, MAX_LEASE_S)
        if self.lease_s == 0:
            raise LocalProtocolError(f"lease_s: 0 out of range 1..{MAX_LEASE_S}")
        check_uint("size", self.size, MAX_U63)
        _hints(self.hints)
        if type(self.top) is not bool:
            raise LocalProtocolError(
                f"top: expected bool, got {type(self.top).__name__}"
            )
        if self.voucher is not None:
            check_bytes("voucher", self.voucher, maximum=MAX_VOUCHER_BYTES)
            if not self.voucher:
                raise LocalProtocolError("voucher: empty")

    def __repr__(self) -> str:  # grants and vouchers stay out of logs
        return (
            f"PinRequest(root={self.root[:4].hex()}…, lease_s={self.lease_s}, "
            f"size={self.size}, hints={len(self.hints)}, top={self.top})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRequest(PinMessage):
    """How far is the replica of ``root``? Answered with :class:`PinStatus`."""

    TAG: ClassVar[str] = "status"
    root: bytes

    def __post_init__(self) -> None:
        _root(self.root)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProveRequest(PinMessage):
    """Prove you hold chunks ``indices`` of ``root`` now (see
    :func:`storage_digest`); ``nonce`` must be fresh and random."""

    TAG: ClassVar[str] = "prove"
    CODECS: ClassVar[Mapping[str, Codec]] = {
        "indices": (_indices_to_wire, _indices_from_wire)
    }
    root: bytes
    nonce: bytes
    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        _root(self.root)
        check_bytes("nonce", self.nonce, exact=NONCE_BYTES)
        _indices(self.indices)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnpinRequest(PinMessage):
    """Drop the pin of ``root``; ``auth`` is :func:`make_unpin_auth` at ``at``."""

    TAG: ClassVar[str] = "unpin"
    root: bytes
    at: int
    auth: bytes

    def __post_init__(self) -> None:
        _root(self.root)
        check_uint("at", self.at, MAX_U63)
        check_bytes("auth", self.auth, exact=AUTH_BYTES)

    def __repr__(self) -> str:
        return f"UnpinRequest(root={self.root[:4].hex()}…, at={self.at})"


@dataclass(frozen=True, slots=True, kw_only=True)
class InfoRequest(PinMessage):
    """Describe yourself (region, space, admission): seed discovery."""

    TAG: ClassVar[str] = "info"


@dataclass(frozen=True, slots=True, kw_only=True)
class RedeemRequest(PinMessage):
    """Redeem a voucher on this seed (issue 7): ``voucher`` is its
    ``Voucher.to_bytes()``, decoded and verified by the seed. Answered with
    :class:`Balance` or ``PinRefused(code="voucher")``."""

    TAG: ClassVar[str] = "redeem"
    voucher: bytes

    def __post_init__(self) -> None:
        check_bytes("voucher", self.voucher, maximum=MAX_VOUCHER_BYTES)
        if not self.voucher:
            raise LocalProtocolError("voucher: empty")

    def __repr__(self) -> str:  # an unredeemed voucher is a bearer token
        return f"RedeemRequest(voucher={len(self.voucher)} bytes)"


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceRequest(PinMessage):
    """What is my voucher credit here? Answered with :class:`Balance`."""

    TAG: ClassVar[str] = "balance"


# -- responses (seed → client) -------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class PinStatus(PinMessage):
    """The state of the pin of ``root`` (answers Pin and Status).

    ``have`` of ``count`` blocks are stored and verified (0 and 0 while the
    envelope is not yet known, and for ``none``); ``lease_expires`` is unix
    seconds, absent when there is no pin; ``error`` says why it ``failed``.
    """

    TAG: ClassVar[str] = "pin_status"
    root: bytes
    state: PinState
    have: int
    count: int
    lease_expires: int | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        _root(self.root)
        if self.state not in PIN_STATES:
            raise LocalProtocolError(f"state: expected one of {PIN_STATES}")
        check_uint("have", self.have, MAX_U63)
        check_uint("count", self.count, MAX_U63)
        if self.have > self.count:
            raise LocalProtocolError("have: more than count")
        if self.lease_expires is not None:
            check_uint("lease_expires", self.lease_expires, MAX_U63)
        if self.error is not None:
            check_text("error", self.error, MAX_PIN_TEXT_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProveResponse(PinMessage):
    """The :func:`storage_digest` a :class:`ProveRequest` asked for."""

    TAG: ClassVar[str] = "proved"
    root: bytes
    digest: bytes

    def __post_init__(self) -> None:
        _root(self.root)
        check_bytes("digest", self.digest, exact=ID_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unpinned(PinMessage):
    """The pin of ``root`` is gone (also when there was none)."""

    TAG: ClassVar[str] = "unpinned"
    root: bytes

    def __post_init__(self) -> None:
        _root(self.root)


@dataclass(frozen=True, slots=True, kw_only=True)
class Info(PinMessage):
    """What a seed says about itself (answers :class:`InfoRequest`)."""

    TAG: ClassVar[str] = "seed_info"
    region: str
    free_bytes: int
    used_bytes: int
    admission: Admission
    version: str

    def __post_init__(self) -> None:
        check_text("region", self.region, MAX_REGION_CHARS)
        check_uint("free_bytes", self.free_bytes, MAX_U63)
        check_uint("used_bytes", self.used_bytes, MAX_U63)
        if self.admission not in ADMISSIONS:
            raise LocalProtocolError(f"admission: expected one of {ADMISSIONS}")
        check_text("version", self.version, MAX_VERSION_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance(PinMessage):
    """The requester's voucher credit on this seed (answers
    :class:`RedeemRequest` and :class:`BalanceRequest`).

    ``quota`` is the sum of its unexpired vouchers' quotas in bytes (a seed
    caps the sum at 2**63-1), ``used`` the bytes its pins are charged (it
    may exceed ``quota`` once a voucher expired), ``vouchers`` how many
    unexpired vouchers it redeemed here, ``expires`` the latest of their
    expiries in unix seconds, None exactly when ``vouchers`` is 0;
    ``relayed`` the bytes this seed relayed on circuits its vouchers
    admitted (since the seed started; absent when 0).
    """

    TAG: ClassVar[str] = "credit"
    quota: int
    used: int
    vouchers: int
    expires: int | None = None
    relayed: int | None = None

    def __post_init__(self) -> None:
        check_uint("quota", self.quota, MAX_U63)
        check_uint("used", self.used, MAX_U63)
        check_uint("vouchers", self.vouchers, MAX_U63)
        if self.relayed is not None:
            check_uint("relayed", self.relayed, MAX_U63)
        if self.expires is not None:
            check_uint("expires", self.expires, MAX_U63)
        if (self.expires is None) != (self.vouchers == 0):
            raise LocalProtocolError(
                "expires: must be absent exactly when vouchers is 0"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class PinRefused(PinMessage):
    """The request was refused: ``code`` is one of ``REFUSE_CODES`` (stable,
    for programs), ``message`` is for humans."""

    TAG: ClassVar[str] = "refused"
    code: str  # one of REFUSE_CODES (checked; typed str for drivers' mappings)
    message: str = ""

    def __post_init__(self) -> None:
        if self.code not in REFUSE_CODES:
            raise LocalProtocolError(f"code: expected one of {REFUSE_CODES}")
        check_text("message", self.message, MAX_PIN_TEXT_CHARS)


Request = (
    PinRequest
    | StatusRequest
    | ProveRequest
    | UnpinRequest
    | InfoRequest
    | RedeemRequest
    | BalanceRequest
)
Response = PinStatus | ProveResponse | Unpinned | Info | Balance | PinRefused

REQUEST_TYPES: dict[str, type[Request]] = {
    cls.TAG: cls
    for cls in (
        PinRequest,
        StatusRequest,
        ProveRequest,
        UnpinRequest,
        InfoRequest,
        RedeemRequest,
        BalanceRequest,
    )
}
RESPONSE_TYPES: dict[str, type[Response]] = {
    cls.TAG: cls
    for cls in (PinStatus, ProveResponse, Unpinned, Info, Balance, PinRefused)
}

M = TypeVar("M", bound=PinMessage)


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


# -- storage proof ----------------------------------------------------------------
def storage_digest(nonce: bytes, blocks: Sequence[tuple[int, bytes]]) -> bytes:
    """The answer to a :class:`ProveRequest`: keyed BLAKE2b-256 over the blocks.

    The hash is keyed with ``nonce`` and covers, for each ``(index, block)``
    in the order given (the request's order)::

        u32be index || u32be len(block) || block

    Both sides call it: the seed over the ciphertext chunks it stores, the
    checker over its own verified copy. Because the key is a fresh random
    nonce chosen by the checker, the seed cannot precompute or cache
    answers, nor keep only digests: it needs every byte of every chunk asked
    for at the moment it answers. The index and length prefixes make the
    input injective (no two block lists hash the same bytes).

    Args:
        nonce: the request's 32-byte nonce.
        blocks: ``(chunk index, ciphertext)`` pairs, in request order.

    Returns:
        The 32-byte digest.

    Raises:
        ValueError: ``nonce`` is not 32 bytes, or an index or block length
            does not fit in a u32.
    """
    if len(nonce) != NONCE_BYTES:
        raise ValueError("storage proof: nonce must be 32 bytes")
    h = hashlib.blake2b(digest_size=32, key=nonce)
    for index, block in blocks:
        if not 0 <= index <= MAX_U32 or len(block) > MAX_U32:
            raise ValueError("storage proof: index or block length exceeds u32")
        h.update(_U32.pack(index))
        h.update(_U32.pack(len(block)))
        h.update(block)
    return h.digest()


# -- unpin authorisation -----------------------------------------------------------
def _peer(name: str, peer: bytes) -> bytes:
    if not 0 < len(peer) <= MAX_PEER_BYTES:
        raise ValueError(f"{name}: peer id must be 1..{MAX_PEER_BYTES} bytes")
    return _U16.pack(len(peer)) + peer


def unpin_message(root: bytes, seed_peer: bytes, client_peer: bytes, at: int) -> bytes:
    """The bytes an unpin ``auth`` signs::

        b"p2pshare/pin/1/unpin\\x00" || root
            || u16be len || seed peer id || u16be len || client peer id
            || u64be at

    Raises:
        ValueError: an argument has the wrong size or range.
    """
    if len(root) != ID_BYTES:
        raise ValueError("root: expected 32 bytes")
    if not 0 <= at <= MAX_U63:
        raise ValueError("at: out of range")
    return b"".join(
        (
            UNPIN_TAG,
            root,
            _peer("seed", seed_peer),
            _peer("client", client_peer),
            _U64.pack(at),
        )
    )


def make_unpin_auth(
    signing_key: SigningKey, root: bytes, seed_peer: bytes, client_peer: bytes, at: int
) -> bytes:
    """Sign an unpin of ``root`` on ``seed_peer``, sent by ``client_peer`` at ``at``.

    Args:
        signing_key: the share's access key (``FileKeys.signing_key``).
        root: the share's root id.
        seed_peer: the seed's peer id (raw bytes).
        client_peer: our own peer id, the one the seed sees on the stream.
        at: current unix time in seconds.

    Returns:
        The 64-byte Ed25519 signature for :attr:`UnpinRequest.auth`.

    Raises:
        ValueError: an argument has the wrong size or range.
    """
    message = unpin_message(root, seed_peer, client_peer, at)
    return bytes(signing_key.sign(message).signature)


def verify_unpin_auth(
    access_public: bytes,
    auth: bytes,
    root: bytes,
    seed_peer: bytes,
    client_peer: bytes,
    at: int,
    now: float,
    skew_s: float = UNPIN_SKEW_S,
) -> None:
    """Check an unpin request's ``auth`` (seed side).

    Args:
        access_public: the access public key from the root's envelope.
        auth, at: from the :class:`UnpinRequest`.
        root: the root to unpin.
        seed_peer: our own peer id.
        client_peer: the requester's peer id, as Noise authenticated it.
        now: our current unix time in seconds.
        skew_s: how far ``at`` may be from ``now``, either way.

    Raises:
        AccessDenied: ``"unpin: request too old or in the future"`` or
            ``"unpin: bad signature"``.
        ValueError: a local argument has the wrong size.
    """
    if len(access_public) != 32:
        raise ValueError("access public key: expected 32 bytes")
    message = unpin_message(root, seed_peer, client_peer, at)
    if len(auth) != AUTH_BYTES:
        raise AccessDenied("unpin: bad signature")
    try:
        VerifyKey(access_public).verify(message, auth)
    except CryptoError as exc:
        raise AccessDenied("unpin: bad signature") from exc
    if abs(now - at) > skew_s:
        raise AccessDenied("unpin: request too old or in the future")
