"""The messages of ``/p2pshare/pin/1`` (spec: ``p2pshare.protocol.pin``)."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from p2pshare.errors import LocalProtocolError
from p2pshare.format.chunks import ID_BYTES
from p2pshare.format.grant import MAX_GRANT_BYTES
from p2pshare.format.ticket import MAX_POLICY_BYTES
from p2pshare.format.voucher import MAX_VOUCHER_BYTES
from p2pshare.protocol.codec import (
    Codec,
    Omit,
    WireMessage,
    check_bytes,
    check_text,
    check_uint,
)

__all__ = [
    "ADMISSIONS",
    "AUTH_BYTES",
    "MAX_HINTS",
    "MAX_HINT_CHARS",
    "MAX_LEASE_S",
    "MAX_PIN_FRAME_BYTES",
    "MAX_PIN_TEXT_CHARS",
    "MAX_PROVE_INDICES",
    "MAX_REGION_CHARS",
    "MAX_U32",
    "MAX_U63",
    "MAX_VERSION_CHARS",
    "MAX_VOUCHER_BYTES",
    "NONCE_BYTES",
    "PIN_PROTOCOL_ID",
    "PIN_STATES",
    "REFUSE_CODES",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "Admission",
    "Balance",
    "BalanceRequest",
    "Info",
    "InfoRequest",
    "M",
    "PinMessage",
    "PinRefused",
    "PinRequest",
    "PinState",
    "PinStatus",
    "PolicyKept",
    "PolicyRequest",
    "ProveRequest",
    "ProveResponse",
    "RedeemRequest",
    "RefuseCode",
    "Request",
    "Response",
    "StatusRequest",
    "UnpinRequest",
    "Unpinned",
    "erasure_field",
    "parse_erasure_field",
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

_U32 = struct.Struct(">I")
_HINT_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))  # printable ASCII, no space


# -- field checks and list codecs (raise LocalProtocolError) -----------------
def _root(value: object) -> None:
    check_bytes("root", value, exact=ID_BYTES)


def erasure_field(k: int, n: int, column: int, emap: bytes) -> bytes:
    """``PinRequest.erasure``: u8 k, u8 n, u8 column, the map's block id."""
    return bytes((k, n, column)) + emap


def parse_erasure_field(value: object) -> tuple[int, int, int, bytes]:
    """(k, n, column, map id) of a ``PinRequest.erasure``.

    Raises:
        LocalProtocolError: not 35 bytes, or not ``1 <= k < n <= 32`` and
            ``column < n``.
    """
    check_bytes("erasure", value, exact=3 + ID_BYTES)
    assert isinstance(value, bytes)
    k, n, column = value[0], value[1], value[2]
    if not 1 <= k < n <= 32 or column >= n:
        raise LocalProtocolError(f"erasure: bad k/n/column {k}/{n}/{column}")
    return k, n, column, value[3:]


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
    ``erasure`` asks for one column of an erasure-coded share instead of a
    full replica (``format/erasure.py``): :func:`erasure_field` of K, N,
    the column and the signed map's block id.
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
    erasure: bytes | None = None

    def __post_init__(self) -> None:
        _root(self.root)
        if self.erasure is not None:
            parse_erasure_field(self.erasure)
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
class PolicyRequest(PinMessage):
    """Keep this link-control policy of a share (format/ticket.py), signed
    by the share's owner: from the owner, or passed on by another seed."""

    TAG: ClassVar[str] = "policy"
    policy: bytes

    def __post_init__(self) -> None:
        check_bytes("policy", self.policy, maximum=MAX_POLICY_BYTES)
        if not self.policy:
            raise LocalProtocolError("policy: empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyKept(PinMessage):
    """The seed keeps the policy of ``root`` with ``seq`` (the one sent, or a
    newer one it had already)."""

    TAG: ClassVar[str] = "policy_kept"
    root: bytes
    seq: int

    def __post_init__(self) -> None:
        _root(self.root)
        check_uint("seq", self.seq, MAX_U63)


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
    | PolicyRequest
)
Response = (
    PinStatus | ProveResponse | Unpinned | Info | Balance | PinRefused | PolicyKept
)

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
        PolicyRequest,
    )
}
RESPONSE_TYPES: dict[str, type[Response]] = {
    cls.TAG: cls
    for cls in (
        PinStatus,
        ProveResponse,
        Unpinned,
        Info,
        Balance,
        PinRefused,
        PolicyKept,
    )
}

M = TypeVar("M", bound=PinMessage)
