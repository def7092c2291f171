r"""The two ends of ``/p2pshare/xfer/1``: server and client state machines.

Theory of operation
-------------------
Both machines are :class:`~p2pshare.protocol.connection.Connection`\ s (see
there for the driver loop, the state diagram and how closing works); this
module adds each role's transition table and its bookkeeping of share slots
(sids) and requests (reqs). The server's challenge is a constructor
argument: nothing here draws random numbers.

Access control (DESIGN.md, "Access control on the wire"): the server
reports an ``Open`` as :class:`OpenRequested`; the driver verifies its proof
(:meth:`ServerConnection.verify`) or, for a seed holding no key, its grant
(:meth:`ServerConnection.verify_grant`: signed by the root's access key for
the peer id Noise authenticated, not expired) and answers
:meth:`~ServerConnection.accept` or :meth:`~ServerConnection.refuse`. Wants
are accepted only for accepted sids, and a Block or Missing can only be sent
for an outstanding want, so the machine itself guarantees that nothing about
a root leaves the server before its proof or grant verified.

Requests: ids belong to the connection, not to a sid. The client must not
reuse one while it is outstanding or recently cancelled. The server ignores
a Cancel for a req it already answered; the client drops an answer to a
want it cancelled (the two crossed on the wire), remembering the last
``max_cancelled`` cancelled reqs for that. Every other answer must match an
outstanding want. Chunk hashes are checked by the driver, which knows the
ids; the machine only moves bytes.

The transition tables, spelled out (``bye`` and EOF as in ``connection.py``)::

    state          server sends             server receives
    IDLE           hello                    -
    READY          opened refused           open want cancel
                   block missing
    state          client sends             client receives
    IDLE           -                        hello
    READY          open want cancel         opened refused block missing

Limits are constructor arguments; the defaults and the reasons for them are
next to the constants below.
"""

from __future__ import annotations

from nacl.signing import SigningKey

from p2pshare.errors import (
    AccessDenied,
    FormatError,
    LocalProtocolError,
    RemoteProtocolError,
)
from p2pshare.format.grant import Grant
from p2pshare.protocol.connection import (
    BlockMissing,
    BlockReceived,
    BlockWanted,
    Cancelled,
    Connection,
    Event,
    OpenRequested,
    Ready,
    ShareOpened,
    ShareRefused,
    State,
    transition_table,
)
from p2pshare.protocol.framing import MAX_FRAME_BYTES
from p2pshare.protocol.messages import (
    PROTOCOL_VERSION,
    Block,
    Cancel,
    Hello,
    Kind,
    Message,
    Missing,
    Open,
    Opened,
    Refused,
    Want,
)
from p2pshare.protocol.proof import make_proof, verify_proof

__all__ = [
    "CLIENT_TRANSITIONS",
    "DEFAULT_MAX_CANCELLED",
    "DEFAULT_MAX_OPEN",
    "DEFAULT_MAX_OUTSTANDING",
    "MAX_CLIENT_FRAME_BYTES",
    "SERVER_TRANSITIONS",
    "ClientConnection",
    "ServerConnection",
]


# Wants a client may have unanswered. Enough to keep a fast link busy (64
# chunks of 1 MiB in flight) while bounding what one peer can queue on a
# server. A client that respects it never trips the server's check.
DEFAULT_MAX_OUTSTANDING = 64
# Share slots per connection (pending or open). A folder download opens its
# entries one after another; 16 covers pipelining, and each open costs the
# server an envelope lookup and a signature check.
DEFAULT_MAX_OPEN = 16
# Recently cancelled requests the client remembers to drop late answers.
DEFAULT_MAX_CANCELLED = 1024
# Client frames are small (the largest is an Open with a grant, under 600
# bytes), so the server refuses anything near
# the chunk-sized limit the client needs.
MAX_CLIENT_FRAME_BYTES = 64 * 1024


SERVER_TRANSITIONS = transition_table(
    handshake="send hello",
    sends=("opened", "refused", "block", "missing"),
    recvs=("open", "want", "cancel"),
)
CLIENT_TRANSITIONS = transition_table(
    handshake="recv hello",
    sends=("open", "want", "cancel"),
    recvs=("opened", "refused", "block", "missing"),
)
# A client that said Bye before Hello arrived still has to parse the Hello.
CLIENT_TRANSITIONS[State.LOCAL_CLOSED]["recv hello"] = State.LOCAL_CLOSED


class ServerConnection(Connection):
    """The serving end of one xfer stream.

    Args:
        local_peer: our peer id (raw bytes).
        remote_peer: the client's peer id, as Noise authenticated it.
        challenge: 32 fresh random bytes, drawn by the driver.
        max_outstanding: wants the client may have unanswered.
        max_open: share slots the client may have pending or open.
        max_frame: largest client frame accepted, in bytes.
    """

    _TRANSITIONS = SERVER_TRANSITIONS

    def __init__(
        self,
        *,
        local_peer: bytes,
        remote_peer: bytes,
        challenge: bytes,
        max_outstanding: int = DEFAULT_MAX_OUTSTANDING,
        max_open: int = DEFAULT_MAX_OPEN,
        max_frame: int = MAX_CLIENT_FRAME_BYTES,
    ) -> None:
        super().__init__(
            local_peer=local_peer, remote_peer=remote_peer, max_frame=max_frame
        )
        self._hello = Hello(challenge=challenge)  # validates the challenge
        self.challenge = challenge
        self.max_outstanding = max_outstanding
        self.max_open = max_open
        self._pending: set[int] = set()  # sids asked for, not yet answered
        self._accepted: set[int] = set()
        self._outstanding: dict[int, int] = {}  # req -> sid

    def start(self) -> bytes:
        """Return the Hello frame; call once, before feeding any data."""
        return self._send(self._hello)

    def receive_data(self, data: bytes) -> None:
        if self._state is State.IDLE:
            raise LocalProtocolError("xfer: call start() before receive_data()")
        super().receive_data(data)

    def verify(self, access_public: bytes, proof: bytes | None, root: bytes) -> None:
        """Check ``proof`` (from :class:`OpenRequested`) for ``root`` on this
        connection.

        Raises:
            AccessDenied: the proof does not verify under ``access_public``,
                or is None (the open carried a grant: see :meth:`verify_grant`).
        """
        if proof is None:
            raise AccessDenied("access proof: missing (the open carries a grant)")
        verify_proof(
            access_public,
            proof,
            root,
            self.remote_peer,
            self.local_peer,
            self.challenge,
        )

    def verify_grant(
        self, access_public: bytes, grant: bytes, root: bytes, now: float
    ) -> None:
        """Check ``grant`` (from :class:`OpenRequested`) for ``root``.

        The grant must be signed by ``access_public`` (from the root's
        envelope), name ``root`` and this connection's remote peer id (the
        one Noise authenticated), and not be expired at ``now``.

        Args:
            access_public: the 32-byte access public key of the envelope.
            grant: the grant bytes the client sent in ``Open``.
            root: the root being opened.
            now: current unix time in seconds (the driver reads the clock).

        Raises:
            AccessDenied: ``"grant: malformed"`` if it does not decode,
                otherwise the reason from :meth:`Grant.verify` (another
                share, another peer, bad signature, expired).
        """
        try:
            decoded = Grant.from_bytes(grant)
        except FormatError as exc:
            raise AccessDenied("grant: malformed") from exc
        decoded.verify(access_public, root=root, peer=self.remote_peer, now=now)

    def accept(
        self,
        sid: int,
        envelope: bytes,
        have: bytes | None = None,
        column: int | None = None,
    ) -> bytes:
        """Open ``sid`` (its proof or grant verified): return the Opened frame.

        Args:
            sid: a sid reported by :class:`OpenRequested` and not yet answered.
            envelope: the root's envelope bytes.
            have: bitmap of the chunks we hold (§2), or None for all of them.
            column: the erasure column we keep, if we keep one.

        Raises:
            LocalProtocolError: ``sid`` has no pending open, or a bad argument.
        """
        message = Opened(sid=sid, envelope=envelope, have=have, column=column)
        if sid not in self._pending:
            raise LocalProtocolError(f"xfer: sid {sid} has no pending open")
        frame = self._send(message)
        self._pending.discard(sid)
        self._accepted.add(sid)
        return frame

    def refuse(self, sid: int, code: str, reason: str = "") -> bytes:
        """Refuse the pending open of ``sid``: return the Refused frame."""
        message = Refused(sid=sid, code=code, reason=reason)
        if sid not in self._pending:
            raise LocalProtocolError(f"xfer: sid {sid} has no pending open")
        frame = self._send(message)
        self._pending.discard(sid)
        return frame

    def send_block(self, req: int, data: bytes) -> bytes:
        """Answer the outstanding want ``req`` with ``data``."""
        return self._answer(Block(req=req, data=data))

    def send_missing(self, req: int, code: str | None = None) -> bytes:
        """Answer the outstanding want ``req``: we do not have it (``code``:
        we cannot serve this share at all, and why)."""
        return self._answer(Missing(req=req, code=code))

    @property
    def outstanding(self) -> frozenset[int]:
        """Request ids wanted and not yet answered or cancelled."""
        return frozenset(self._outstanding)

    def _answer(self, message: Block | Missing) -> bytes:
        if message.req not in self._outstanding:
            raise LocalProtocolError(f"xfer: req {message.req} is not outstanding")
        frame = self._send(message)
        del self._outstanding[message.req]
        return frame

    def _got_message(self, message: Message) -> Event | None:
        match message:
            case Open(sid=sid):
                if sid in self._pending or sid in self._accepted:
                    raise RemoteProtocolError(f"xfer: duplicate sid {sid}")
                if len(self._pending) + len(self._accepted) >= self.max_open:
                    raise RemoteProtocolError(
                        f"xfer: more than {self.max_open} open sids"
                    )
                self._pending.add(sid)
                return OpenRequested(
                    sid=sid,
                    root=message.root,
                    proof=message.proof,
                    grant=message.grant,
                    ticket=message.ticket,
                )
            case Want(sid=sid, req=req):
                if sid not in self._accepted:
                    raise RemoteProtocolError(f"xfer: want for sid {sid}, not open")
                if req in self._outstanding:
                    raise RemoteProtocolError(f"xfer: duplicate req {req}")
                if len(self._outstanding) >= self.max_outstanding:
                    raise RemoteProtocolError(
                        f"xfer: more than {self.max_outstanding} outstanding wants"
                    )
                self._outstanding[req] = sid
                return BlockWanted(
                    sid=sid, req=req, kind=message.kind, index=message.index
                )
            case Cancel(req=req):
                # Unknown reqs are ignored: the answer may have crossed the Cancel.
                if self._outstanding.pop(req, None) is None:
                    return None
                return Cancelled(req=req)
        raise AssertionError(f"unreachable: {message.TAG} passed the transition table")


class ClientConnection(Connection):
    """The downloading end of one xfer stream.

    Args:
        local_peer: our peer id (raw bytes).
        remote_peer: the server's peer id, as Noise authenticated it.
        max_frame: largest server frame accepted (a Block holds a chunk).
        max_open: share slots we keep pending or open (the server's limit).
        max_outstanding: wants we keep unanswered (the server's limit).
        max_cancelled: cancelled reqs remembered to drop late answers.
    """

    _TRANSITIONS = CLIENT_TRANSITIONS

    def __init__(
        self,
        *,
        local_peer: bytes,
        remote_peer: bytes,
        max_frame: int = MAX_FRAME_BYTES,
        max_open: int = DEFAULT_MAX_OPEN,
        max_outstanding: int = DEFAULT_MAX_OUTSTANDING,
        max_cancelled: int = DEFAULT_MAX_CANCELLED,
    ) -> None:
        super().__init__(
            local_peer=local_peer, remote_peer=remote_peer, max_frame=max_frame
        )
        self.challenge: bytes | None = None
        self.max_open = max_open
        self.max_outstanding = max_outstanding
        self.max_cancelled = max_cancelled
        self._opening: set[int] = set()
        self._opened: set[int] = set()
        self._outstanding: dict[int, int] = {}  # req -> sid
        self._cancelled: dict[int, None] = {}  # insertion-ordered set, FIFO

    def open(
        self,
        sid: int,
        root: bytes,
        signing_key: SigningKey | None = None,
        *,
        grant: bytes | None = None,
        ticket: bytes | None = None,
    ) -> bytes:
        """Ask to open ``root`` as ``sid``.

        Args:
            sid: a share slot not in use on this connection.
            root: the root id to open.
            signing_key: the share's access key; we send an access proof
                bound to this connection.
            grant: instead of a key, an encoded grant for our peer id (a
                seed). It is sent as is; the server verifies it.
            ticket: with a key, the link's ticket (format/ticket.py).

        Raises:
            LocalProtocolError: not exactly one of ``signing_key`` and
                ``grant``, no Hello yet, ``sid`` in use, too many sids, or a
                malformed argument.
        """
        if (signing_key is None) == (grant is None):
            raise LocalProtocolError("xfer: open needs exactly one of key and grant")
        if self.challenge is None:
            raise LocalProtocolError("xfer: cannot open before the server's Hello")
        if sid in self._opening or sid in self._opened:
            raise LocalProtocolError(f"xfer: sid {sid} is in use")
        if len(self._opening) + len(self._opened) >= self.max_open:
            raise LocalProtocolError(f"xfer: more than {self.max_open} open sids")
        if signing_key is None:
            message = Open(sid=sid, root=root, grant=grant)
        else:
            try:
                proof = make_proof(
                    signing_key, root, self.local_peer, self.remote_peer, self.challenge
                )
            except ValueError as exc:  # a root or peer id of the wrong length
                raise LocalProtocolError(f"xfer: cannot open sid {sid}: {exc}") from exc
            message = Open(sid=sid, root=root, proof=proof, ticket=ticket)
        frame = self._send(message)
        self._opening.add(sid)
        return frame

    def want(self, sid: int, req: int, kind: Kind, index: int) -> bytes:
        """Request chunk or index block ``index`` of open ``sid`` as ``req``."""
        message = Want(sid=sid, req=req, kind=kind, index=index)
        if sid not in self._opened:
            raise LocalProtocolError(f"xfer: sid {sid} is not open")
        if req in self._outstanding or req in self._cancelled:
            raise LocalProtocolError(f"xfer: req {req} is still in use")
        if len(self._outstanding) >= self.max_outstanding:
            raise LocalProtocolError(f"xfer: more than {self.max_outstanding} wants")
        frame = self._send(message)
        self._outstanding[req] = sid
        return frame

    def cancel(self, req: int) -> bytes:
        """Withdraw the outstanding want ``req``; a late answer is dropped."""
        message = Cancel(req=req)
        if req not in self._outstanding:
            raise LocalProtocolError(f"xfer: req {req} is not outstanding")
        frame = self._send(message)
        del self._outstanding[req]
        self._cancelled[req] = None
        if len(self._cancelled) > self.max_cancelled:
            del self._cancelled[next(iter(self._cancelled))]
        return frame

    @property
    def outstanding(self) -> frozenset[int]:
        """Request ids wanted and not yet answered or cancelled."""
        return frozenset(self._outstanding)

    def _got_message(self, message: Message) -> Event | None:
        match message:
            case Hello(version=version, challenge=challenge):
                if version != PROTOCOL_VERSION:
                    raise RemoteProtocolError(f"xfer: unsupported version {version}")
                self.challenge = challenge
                return Ready(challenge=challenge)
            case Opened(sid=sid) | Refused(sid=sid) if sid not in self._opening:
                raise RemoteProtocolError(
                    f"xfer: {message.TAG} for sid {sid}, not asked"
                )
            case Opened(sid=sid):
                self._opening.discard(sid)
                self._opened.add(sid)
                return ShareOpened(
                    sid=sid,
                    envelope=message.envelope,
                    have=message.have,
                    column=message.column,
                )
            case Refused(sid=sid):
                self._opening.discard(sid)
                return ShareRefused(sid=sid, code=message.code, reason=message.reason)
            case Block(req=req) | Missing(req=req):
                if self._outstanding.pop(req, None) is None:
                    if req not in self._cancelled:
                        raise RemoteProtocolError(
                            f"xfer: unsolicited answer to req {req}"
                        )
                    del self._cancelled[req]  # crossed our Cancel on the wire
                    return None
                if isinstance(message, Block):
                    return BlockReceived(req=req, data=message.data)
                assert isinstance(message, Missing)
                return BlockMissing(req=req, code=message.code)
        raise AssertionError(f"unreachable: {message.TAG} passed the transition table")
