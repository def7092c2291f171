"""The connection core shared by both ends of ``/p2pshare/xfer/1``.

Theory of operation
-------------------
A connection is sans-IO: it never touches a socket, a clock or a random
source. The driver (``p2pshare.node``) feeds what the stream returned to
:meth:`Connection.receive_data` (``b""`` at EOF), iterates
:meth:`Connection.events` until it is exhausted, and writes the bytes that
the send methods return. Frames are decoded by
:class:`~p2pshare.protocol.framing.FrameDecoder` lazily, one per event.

State, shared by both roles; each role's transition table (built by
:func:`transition_table`, instantiated in ``xfer.py``) says which frame may
be sent or received in which state::

                 server: start()
                 client: Hello received
        IDLE ─────────────────────────────▶ READY
          │                                 │    │
          │ send Bye               send Bye │    │ recv Bye / EOF
          ├─────────▶ LOCAL_CLOSED ◀────────┘    ▼
          │                │               REMOTE_CLOSED ◀── recv Bye / EOF
          │                │ recv Bye / EOF      │            (from IDLE)
          │                ▼                     │ send Bye
          │              CLOSED ◀────────────────┘

        any state ── RemoteProtocolError ──▶ ERROR

* A frame received in a state whose table has no entry for it is a
  :class:`RemoteProtocolError`; a send with no entry is a
  :class:`LocalProtocolError`.
* After we send Bye, frames the peer had already sent are still parsed (a
  malformed one is still an error) but produce no events; its Bye or EOF
  produces :class:`Closed`.
* After the peer's Bye we may only answer with our own Bye.
* EOF without Bye yields ``Closed(clean=False)``; EOF inside a frame is a
  :class:`RemoteProtocolError`.
* In ``ERROR`` every call raises :class:`LocalProtocolError`, except one
  :meth:`~Connection.goodbye`, so the driver can tell the peer why before
  resetting the stream.
* A send method that raises :class:`LocalProtocolError` had no effect.

Events are frozen, slotted, keyword-only dataclasses named as facts. They
are built only from messages that already validated (``messages.py``), so
they carry no checks of their own. Byte payloads are kept out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol.codec import transition
from p2pshare.protocol.framing import FrameDecoder, encode_frame
from p2pshare.protocol.messages import (
    MAX_REASON_CHARS,
    Bye,
    Kind,
    Message,
    decode_message,
)

__all__ = [
    "BlockMissing",
    "BlockReceived",
    "BlockWanted",
    "Cancelled",
    "Closed",
    "Connection",
    "Event",
    "OpenRequested",
    "Ready",
    "ShareOpened",
    "ShareRefused",
    "State",
    "Transitions",
    "transition_table",
]


class State(Enum):
    """Connection state; see the module docstring for the diagram."""

    IDLE = "idle"
    READY = "ready"
    LOCAL_CLOSED = "local_closed"
    REMOTE_CLOSED = "remote_closed"
    CLOSED = "closed"
    ERROR = "error"


# state -> {"send <tag>" | "recv <tag>" | "recv eof": next state}
Transitions = Mapping[State, Mapping[str, State]]


def transition_table(
    *, handshake: str, sends: tuple[str, ...], recvs: tuple[str, ...]
) -> dict[State, dict[str, State]]:
    """Build one role's table ``{state: {input: next state}}``.

    Inputs are ``"send <tag>"``, ``"recv <tag>"`` and ``"recv eof"``.

    Args:
        handshake: the input that takes IDLE to READY.
        sends: tags the role may send while READY, besides ``bye``.
        recvs: tags the role may receive while READY, besides ``bye``.
    """
    s = State
    ready = {f"send {t}": s.READY for t in sends}
    ready |= {f"recv {t}": s.READY for t in recvs}
    late = {f"recv {t}": s.LOCAL_CLOSED for t in recvs}  # parsed, dropped
    we_close = {"send bye": s.LOCAL_CLOSED}
    peer_closes = {"recv bye": s.REMOTE_CLOSED, "recv eof": s.REMOTE_CLOSED}
    return {
        s.IDLE: {handshake: s.READY} | we_close | peer_closes,
        s.READY: ready | we_close | peer_closes,
        s.LOCAL_CLOSED: late | {"recv bye": s.CLOSED, "recv eof": s.CLOSED},
        s.REMOTE_CLOSED: {"send bye": s.CLOSED, "recv eof": s.REMOTE_CLOSED},
        s.CLOSED: {"recv eof": s.CLOSED},
        s.ERROR: {"send bye": s.ERROR},  # once: see Connection.goodbye
    }


# -- events ------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of everything :meth:`events` yields."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(Event):
    """The peer finished: it said Bye (``clean``) or the stream hit EOF."""

    reason: str = ""
    clean: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRequested(Event):
    """Server: the client asks to open ``sid`` for ``root``.

    Exactly one of ``proof`` (check it with ``ServerConnection.verify``) and
    ``grant`` (``ServerConnection.verify_grant``) is set.
    """

    sid: int
    root: bytes
    proof: bytes | None = field(default=None, repr=False)
    grant: bytes | None = field(default=None, repr=False)
    ticket: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockWanted(Event):
    """Server: the client wants a chunk or index block of an accepted sid."""

    sid: int
    req: int
    kind: Kind
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled(Event):
    """Server: ``req`` is no longer outstanding; do not answer it."""

    req: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready(Event):
    """Client: the server's Hello arrived; shares may now be opened."""

    challenge: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareOpened(Event):
    """Client: ``sid`` is open; ``have`` is a chunk bitmap or None for all."""

    sid: int
    envelope: bytes = field(repr=False)
    have: bytes | None = field(repr=False)
    column: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareRefused(Event):
    """Client: the server will not open ``sid``."""

    sid: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockReceived(Event):
    """Client: the (unverified) answer to ``req``."""

    req: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockMissing(Event):
    """Client: the server does not have what ``req`` asked for (``code``:
    why, when it cannot serve the share at all; see ``Missing``)."""

    req: int
    code: str | None = None


class Connection:
    """Framing, state and closing, shared by the server and the client."""

    _TRANSITIONS: ClassVar[Transitions]

    def __init__(
        self, *, local_peer: bytes, remote_peer: bytes, max_frame: int
    ) -> None:
        self.local_peer = local_peer
        self.remote_peer = remote_peer
        self._decoder = FrameDecoder(max_frame)
        self._state = State.IDLE
        self._said_bye = False
        self._eof_seen = False

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the stream; ``b""`` means EOF.

        Raises:
            LocalProtocolError: the machine is in ``ERROR``, or data after EOF.
        """
        self._check_usable()
        self._decoder.receive_data(data)

    def events(self) -> Iterator[Event]:
        """Yield the events in the received bytes, until more are needed.

        Raises:
            RemoteProtocolError: the peer broke the protocol; the machine is
                now in ``ERROR``.
            LocalProtocolError: called in ``ERROR``.
        """
        while True:
            self._check_usable()
            try:
                body = self._decoder.next_frame()
                if body is None:
                    if not self._decoder.at_eof or self._eof_seen:
                        return
                    self._eof_seen = True
                    event = self._got_eof()
                else:
                    event = self._got_frame(decode_message(body))
            except RemoteProtocolError:
                self._state = State.ERROR
                raise
            if event is not None:
                yield event

    def goodbye(self, reason: str = "") -> bytes:
        """Return our Bye frame; nothing may be sent after it.

        Allowed once, also in ``ERROR`` (to tell the peer what went wrong).
        ``reason`` is cut to 200 printable characters.
        """
        if self._said_bye:
            raise LocalProtocolError("xfer: Bye already sent")
        text = "".join(c if c.isprintable() else "?" for c in reason)
        frame = self._send(Bye(reason=text[:MAX_REASON_CHARS]))
        self._said_bye = True
        return frame

    # -- helpers for subclasses -----------------------------------------------
    def _check_usable(self) -> None:
        if self._state is State.ERROR:
            raise LocalProtocolError("xfer: connection is in ERROR")

    def _next_state(self, direction: str, tag: str) -> State:
        return transition(self._TRANSITIONS, self._state, direction, tag, "xfer")

    def _send(self, message: Message) -> bytes:
        # Callers check their bookkeeping first, then commit it after this
        # returns: a refused send changes nothing.
        nxt = self._next_state("send", message.TAG)
        frame = encode_frame(message.to_wire())
        self._state = nxt
        return frame

    def _got_eof(self) -> Event | None:
        before = self._state
        self._state = self._next_state("recv", "eof")
        if before in (State.REMOTE_CLOSED, State.CLOSED):
            return None  # EOF after Bye: the expected end
        return Closed(reason="", clean=False)

    def _got_frame(self, message: Message) -> Event | None:
        before = self._state
        self._state = self._next_state("recv", message.TAG)
        if isinstance(message, Bye):
            return Closed(reason=message.reason)
        if before is State.LOCAL_CLOSED:
            return None  # we said Bye: late frames are parsed, then dropped
        return self._got_message(message)

    def _got_message(self, message: Message) -> Event | None:
        raise NotImplementedError
