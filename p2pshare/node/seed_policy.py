"""A seed's policy: its limits, what a replica costs, how it refuses.

Pure (no I/O): the seed service (``seed.py``) and its replica fetches
(``seed_fetch.py``) apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from p2pshare.errors import AccessDenied, FormatError, NotFoundError, P2PShareError
from p2pshare.format import Envelope
from p2pshare.format.chunks import ID_BYTES
from p2pshare.node.fill import STALL_TIMEOUT_S
from p2pshare.protocol import pin as pinproto

__all__ = [
    "FETCH_TIMEOUT_S",
    "GC_INTERVAL_S",
    "MAX_CONCURRENT_FETCHES",
    "MAX_FETCHES_PER_OWNER",
    "MAX_FETCHING_PER_PEER",
    "MAX_HINTS_KEPT",
    "MAX_PIN_BYTES",
    "REQUEST_TIMEOUT_S",
    "Refused",
    "SeedPolicy",
    "mib",
    "printable_error",
    "refuse_code",
    "replica_bytes",
]

REQUEST_TIMEOUT_S = 20.0  # to read a request or write a response
FETCH_TIMEOUT_S = 60.0  # to find a first provider for a pinned root
GC_INTERVAL_S = 30.0
MAX_HINTS_KEPT = 8
# Bounds on what one peer can make a seed do (open seeds with no storage
# limit included): the bytes one pin may reserve before the envelope gives
# the real size, the pins a peer may have fetching at once, and the fetches
# the seed runs at once (the others wait their turn, still "fetching"), and
# of those the ones a single owner may run: 8 owners that stall cannot hold
# every slot for long (a fetch with no verified byte for ``fetch_stall_s``
# fails, its blocks deleted and its reserved bytes credited back), and one
# owner with many pins cannot hold them at all.
MAX_PIN_BYTES = 1 << 50
MAX_FETCHING_PER_PEER = 64
MAX_CONCURRENT_FETCHES = 8
MAX_FETCHES_PER_OWNER = 2


@dataclass(frozen=True, slots=True)
class SeedPolicy:
    region: str = ""
    max_storage: int | None = None  # ciphertext bytes; None: no limit
    admission: Literal["open", "voucher"] = "voucher"
    gc_interval_s: float = GC_INTERVAL_S
    fetch_stall_s: float = STALL_TIMEOUT_S  # no verified byte: the fetch fails
    open_relay: bool = False  # relay bulk data for anyone, not only vouchers
    relay_rate: float | None = None  # bytes/s relayed in all
    relay_peer_rate: float | None = None  # bytes/s relayed for one peer


def replica_bytes(env: Envelope, envelope_bytes: int) -> int:
    """Bytes a replica of this envelope takes: envelope, index blocks, chunks."""
    chunks = (env.count - 1) * env.cipher_len(0) + env.cipher_len(env.count - 1)
    index = env.count * ID_BYTES if env.index_ids is not None else 0
    return envelope_bytes + index + chunks


class Refused(P2PShareError):
    """A pin refused with a protocol code (``PinRefused.code``)."""

    code = "pin_refused"
    exit_code = 7

    def __init__(self, pin_code: str, message: str) -> None:
        super().__init__(message)
        self.pin_code = pin_code


def refuse_code(exc: P2PShareError) -> str:
    if isinstance(exc, Refused):
        return exc.pin_code
    if isinstance(exc, AccessDenied):
        return "access_denied"
    if isinstance(exc, NotFoundError):
        return "not_found"
    if isinstance(exc, FormatError):
        return "bad_request"
    return "unavailable"


def printable_error(exc: BaseException) -> str:
    """An error as one line of printable text for the wire."""
    text = "".join(c if c.isprintable() else " " for c in str(exc))
    return text[: pinproto.MAX_PIN_TEXT_CHARS] or type(exc).__name__


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
