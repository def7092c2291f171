"""The xfer state machines, back to back (no sockets, no event loop)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pshare.errors import AccessDenied, LocalProtocolError, RemoteProtocolError
from p2pshare.format.envelope import Envelope
from p2pshare.format.grant import MAX_GRANT_BYTES, make_grant
from p2pshare.format.keys import FileKeys
from p2pshare.protocol import (
    BlockMissing,
    BlockReceived,
    BlockWanted,
    Cancelled,
    ClientConnection,
    Closed,
    FrameDecoder,
    OpenRequested,
    Ready,
    ServerConnection,
    ShareOpened,
    ShareRefused,
    State,
    decode_message,
    encode_frame,
)
from p2pshare.protocol.messages import (
    Block,
    Bye,
    Cancel,
    Hello,
    Message,
    Open,
    Opened,
    Refused,
    Want,
)

from .pairs import (
    CHALLENGE,
    CLIENT_PEER,
    SERVER_PEER,
    SPLITTERS,
    Splitter,
    XferPair,
    make_share,
)

SHARE = make_share()
OTHER = make_share(bytes(32))


@pytest.fixture(params=sorted(SPLITTERS))
def split(request: pytest.FixtureRequest) -> Splitter:
    return SPLITTERS[request.param]


def state_of(conn: ServerConnection | ClientConnection) -> State:
    return conn.state  # a call, so mypy does not narrow across assertions


def frame(message: Message) -> bytes:
    return encode_frame(message.to_wire())


def ready_pair(
    *, server: dict[str, int] | None = None, client: dict[str, int] | None = None
) -> XferPair:
    pair = XferPair(server=server, client=client)
    pair.open_share(SHARE)
    return pair


# -- the happy path ----------------------------------------------------------
def test_full_transfer(split: Splitter) -> None:
    full_transfer(XferPair(split))


@settings(max_examples=60)
@given(data=st.data())
def test_full_transfer_in_random_splits(data: st.DataObject) -> None:
    def split(buf: bytes) -> Iterator[bytes]:
        cuts = data.draw(st.lists(st.integers(1, len(buf)), max_size=12), label="cuts")
        bounds = [0, *sorted(set(cuts)), len(buf)]
        for start, end in itertools.pairwise(bounds):
            if end > start:
                yield buf[start:end]

    full_transfer(XferPair(split))


def full_transfer(pair: XferPair) -> None:
    assert pair.to_client(pair.server.start()) == [Ready(challenge=CHALLENGE)]
    assert state_of(pair.client) is State.READY

    opening = pair.client.open(1, SHARE.root, SHARE.keys.signing_key)
    (request,) = pair.to_server(opening)
    assert isinstance(request, OpenRequested)
    assert (request.sid, request.root) == (1, SHARE.root)
    # The driver looks the root up, takes the access key from its envelope.
    access = Envelope.decode(SHARE.envelope_bytes).access_public
    pair.server.verify(access, request.proof, request.root)
    have = bytes([0b101])  # chunks 0 and 2
    assert pair.to_client(pair.server.accept(1, SHARE.envelope_bytes, have)) == [
        ShareOpened(sid=1, envelope=SHARE.envelope_bytes, have=have)
    ]

    wants = b"".join(
        [
            pair.client.want(1, 10, "chunk", 0),
            pair.client.want(1, 11, "chunk", 2),
            pair.client.want(1, 12, "index", 0),
            pair.client.want(1, 13, "chunk", 1),
        ]
    )
    assert pair.to_server(wants) == [
        BlockWanted(sid=1, req=10, kind="chunk", index=0),
        BlockWanted(sid=1, req=11, kind="chunk", index=2),
        BlockWanted(sid=1, req=12, kind="index", index=0),
        BlockWanted(sid=1, req=13, kind="chunk", index=1),
    ]
    # Answers come in any order.
    answers = pair.server.send_block(11, SHARE.chunks[2]) + pair.server.send_missing(12)
    assert pair.to_client(answers) == [
        BlockReceived(req=11, data=SHARE.chunks[2]),
        BlockMissing(req=12),
    ]
    assert pair.to_server(pair.client.cancel(13)) == [Cancelled(req=13)]
    assert pair.server.outstanding == {10}
    assert pair.to_client(pair.server.send_block(10, SHARE.chunks[0])) == [
        BlockReceived(req=10, data=SHARE.chunks[0])
    ]
    assert pair.client.outstanding == frozenset()

    assert pair.to_server(pair.client.goodbye("done")) == [Closed(reason="done")]
    assert state_of(pair.server) is State.REMOTE_CLOSED
    assert pair.to_client(pair.server.goodbye()) == [Closed(reason="")]
    assert state_of(pair.client) is state_of(pair.server) is State.CLOSED
    assert pair.to_server(b"") == []
    assert pair.to_client(b"") == []


def test_trailing_partial_frame_waits_for_the_rest() -> None:
    pair = ready_pair()
    data = pair.client.want(1, 1, "chunk", 0) + pair.client.want(1, 2, "chunk", 1)
    cut = len(data) - 3
    assert pair.to_server(data[:cut]) == [
        BlockWanted(sid=1, req=1, kind="chunk", index=0)
    ]
    assert pair.to_server(data[cut:]) == [
        BlockWanted(sid=1, req=2, kind="chunk", index=1)
    ]


def test_answer_crossing_a_cancel_is_dropped() -> None:
    pair = ready_pair()
    pair.to_server(pair.client.want(1, 5, "chunk", 0))
    in_flight = pair.server.send_block(5, SHARE.chunks[0])
    assert pair.to_server(pair.client.cancel(5)) == []  # already answered
    with pytest.raises(LocalProtocolError):  # its answer may still come
        pair.client.want(1, 5, "chunk", 0)
    assert pair.to_client(in_flight) == []
    pair.client.want(1, 5, "chunk", 0)  # the late answer freed it


def test_refused_share_can_be_reopened() -> None:
    pair = XferPair()
    pair.handshake()
    (request,) = pair.to_server(pair.client.open(3, SHARE.root, OTHER.keys.signing_key))
    assert isinstance(request, OpenRequested)
    with pytest.raises(AccessDenied):
        pair.server.verify(SHARE.keys.access_public, request.proof, SHARE.root)
    refused = pair.server.refuse(3, "access_denied", "bad proof")
    assert pair.to_client(refused) == [
        ShareRefused(sid=3, code="access_denied", reason="bad proof")
    ]
    with pytest.raises(LocalProtocolError):
        pair.client.want(3, 1, "chunk", 0)
    pair.open_share(SHARE, sid=3)


# -- access control invariants ----------------------------------------------
@pytest.mark.parametrize("accepted", [False, True])
def test_want_for_a_sid_not_accepted_is_a_remote_error(accepted: bool) -> None:
    pair = XferPair()
    pair.handshake()
    pair.to_server(pair.client.open(1, SHARE.root, SHARE.keys.signing_key))
    if accepted:
        pair.server.accept(1, SHARE.envelope_bytes)
    sid = 2 if accepted else 1  # pending sid 1, or a sid never opened
    with pytest.raises(RemoteProtocolError, match="not open"):
        pair.to_server(frame(Want(sid=sid, req=1, kind="chunk", index=0)))
    assert state_of(pair.server) is State.ERROR
    with pytest.raises(LocalProtocolError):
        pair.server.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        pair.server.send_missing(1)
    decoder = FrameDecoder()  # the driver may still say why, once
    decoder.receive_data(pair.server.goodbye("want for unopened sid"))
    assert decode_message(decoder.next_frame() or {}) == Bye(
        reason="want for unopened sid"
    )
    with pytest.raises(LocalProtocolError):
        pair.server.goodbye()


def test_server_answers_only_outstanding_requests() -> None:
    pair = ready_pair()
    with pytest.raises(LocalProtocolError):
        pair.server.send_block(1, b"x")
    pair.to_server(pair.client.want(1, 1, "chunk", 0))
    pair.to_server(pair.client.cancel(1))
    with pytest.raises(LocalProtocolError):
        pair.server.send_block(1, b"x")
    with pytest.raises(LocalProtocolError):
        pair.server.send_missing(1)
    with pytest.raises(LocalProtocolError):
        pair.server.accept(7, SHARE.envelope_bytes)
    with pytest.raises(LocalProtocolError):
        pair.server.refuse(7, "not_found")
    with pytest.raises(LocalProtocolError):
        pair.server.accept(1, SHARE.envelope_bytes)  # already accepted
    assert state_of(pair.server) is State.READY  # refused sends changed nothing


# -- limits ------------------------------------------------------------------
def test_exceeding_max_outstanding() -> None:
    pair = ready_pair(server={"max_outstanding": 2})
    pair.to_server(
        pair.client.want(1, 1, "chunk", 0) + pair.client.want(1, 2, "chunk", 1)
    )
    with pytest.raises(RemoteProtocolError, match="outstanding"):
        pair.to_server(pair.client.want(1, 3, "chunk", 2))


def test_answering_frees_a_slot_under_max_outstanding() -> None:
    pair = ready_pair(server={"max_outstanding": 1}, client={"max_outstanding": 1})
    pair.to_server(pair.client.want(1, 1, "chunk", 0))
    with pytest.raises(LocalProtocolError):
        pair.client.want(1, 2, "chunk", 1)
    pair.to_client(pair.server.send_missing(1))
    assert len(pair.to_server(pair.client.want(1, 2, "chunk", 1))) == 1


def test_exceeding_max_open() -> None:
    pair = XferPair(server={"max_open": 2})
    pair.handshake()
    for sid in (1, 2):
        pair.to_server(pair.client.open(sid, SHARE.root, SHARE.keys.signing_key))
    with pytest.raises(RemoteProtocolError, match="open sids"):
        pair.to_server(pair.client.open(3, SHARE.root, SHARE.keys.signing_key))


def test_client_respects_its_own_limits() -> None:
    pair = XferPair(client={"max_open": 1})
    pair.handshake()
    pair.client.open(1, SHARE.root, SHARE.keys.signing_key)
    with pytest.raises(LocalProtocolError):
        pair.client.open(1, SHARE.root, SHARE.keys.signing_key)
    with pytest.raises(LocalProtocolError):
        pair.client.open(2, SHARE.root, SHARE.keys.signing_key)


def test_duplicate_sid_and_req_are_remote_errors() -> None:
    pair = XferPair()
    pair.handshake()
    opening = pair.client.open(1, SHARE.root, SHARE.keys.signing_key)
    pair.to_server(opening)
    with pytest.raises(RemoteProtocolError, match="duplicate sid"):
        pair.to_server(opening)

    pair = ready_pair()
    want = pair.client.want(1, 9, "chunk", 0)
    pair.to_server(want)
    with pytest.raises(RemoteProtocolError, match="duplicate req"):
        pair.to_server(want)


def test_cancelled_memory_is_bounded() -> None:
    pair = ready_pair(client={"max_cancelled": 1})
    pair.to_server(
        pair.client.want(1, 1, "chunk", 0) + pair.client.want(1, 2, "chunk", 1)
    )
    late = pair.server.send_block(1, b"a")
    pair.client.cancel(1)
    pair.client.cancel(2)  # evicts req 1
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        pair.to_client(late)


# -- frames out of turn -------------------------------------------------------
@pytest.mark.parametrize(
    "message",
    [
        Hello(challenge=CHALLENGE),
        Block(req=1, data=b"x"),
        Opened(sid=1, envelope=b"e"),
        Refused(sid=1, code="not_found"),
    ],
    ids=lambda m: m.TAG,
)
def test_server_refuses_server_frames(message: Message) -> None:
    pair = XferPair()
    pair.server.start()
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        pair.to_server(frame(message))


@pytest.mark.parametrize(
    "message",
    [
        Open(sid=1, root=bytes(32), proof=bytes(64)),
        Want(sid=1, req=1, kind="chunk", index=0),
        Cancel(req=1),
        Opened(sid=1, envelope=b"e"),
        Block(req=1, data=b"x"),
    ],
    ids=lambda m: m.TAG,
)
def test_client_needs_hello_first(message: Message) -> None:
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        XferPair().to_client(frame(message))


def test_client_checks_answers() -> None:
    pair = ready_pair()
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        pair.to_client(frame(Block(req=4, data=b"x")))
    pair = ready_pair()
    with pytest.raises(RemoteProtocolError, match="not asked"):
        pair.to_client(frame(Opened(sid=2, envelope=b"e")))
    pair = ready_pair()
    with pytest.raises(RemoteProtocolError, match="not asked"):
        pair.to_client(frame(Refused(sid=1, code="not_found")))  # already open
    pair = ready_pair()
    with pytest.raises(RemoteProtocolError, match="unexpected hello"):
        pair.to_client(frame(Hello(challenge=CHALLENGE)))


def test_client_rejects_other_versions() -> None:
    with pytest.raises(RemoteProtocolError, match="version"):
        XferPair().to_client(frame(Hello(version=2, challenge=CHALLENGE)))


def test_client_local_misuse() -> None:
    pair = XferPair()
    with pytest.raises(LocalProtocolError, match="Hello"):
        pair.client.open(1, SHARE.root, SHARE.keys.signing_key)
    pair.open_share(SHARE)
    with pytest.raises(LocalProtocolError):
        pair.client.want(2, 1, "chunk", 0)
    with pytest.raises(LocalProtocolError):
        pair.client.cancel(1)
    pair.client.want(1, 1, "chunk", 0)
    with pytest.raises(LocalProtocolError):
        pair.client.want(1, 1, "chunk", 1)
    with pytest.raises(LocalProtocolError):
        pair.client.want(1, 2, "blob", 1)  # type: ignore[arg-type]


def test_server_misuse() -> None:
    server = ServerConnection(
        local_peer=SERVER_PEER, remote_peer=CLIENT_PEER, challenge=CHALLENGE
    )
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"\x00")
    server.start()
    with pytest.raises(LocalProtocolError):
        server.start()
    with pytest.raises(LocalProtocolError):
        ServerConnection(local_peer=b"s", remote_peer=b"c", challenge=b"short")


# -- closing -----------------------------------------------------------------
def test_frames_after_our_bye_are_dropped() -> None:
    pair = ready_pair()
    pair.to_server(pair.client.want(1, 1, "chunk", 0))
    in_flight = pair.server.send_block(1, b"data")
    pair.client.goodbye()
    assert state_of(pair.client) is State.LOCAL_CLOSED
    with pytest.raises(LocalProtocolError):
        pair.client.want(1, 2, "chunk", 0)
    assert pair.to_client(in_flight) == []
    assert pair.to_client(pair.server.goodbye("ok")) == [Closed(reason="ok")]
    assert state_of(pair.client) is State.CLOSED


def test_after_peer_bye_only_bye() -> None:
    pair = ready_pair()
    pair.to_client(pair.server.goodbye("shutting down"))
    with pytest.raises(LocalProtocolError):
        pair.client.want(1, 1, "chunk", 0)
    pair.client.goodbye()
    pair = ready_pair()
    pair.to_client(pair.server.goodbye())
    with pytest.raises(RemoteProtocolError, match="unexpected block"):
        pair.to_client(frame(Block(req=1, data=b"")))


def test_eof_without_bye_is_unclean() -> None:
    pair = ready_pair()
    assert pair.to_server(b"") == [Closed(reason="", clean=False)]
    assert pair.to_client(b"") == [Closed(reason="", clean=False)]
    assert state_of(pair.server) is State.REMOTE_CLOSED
    with pytest.raises(LocalProtocolError):
        pair.server.receive_data(b"more")


def test_eof_inside_a_frame_is_an_error() -> None:
    pair = ready_pair()
    want = pair.client.want(1, 1, "chunk", 0)
    pair.to_server(want[:-1])
    with pytest.raises(RemoteProtocolError, match="truncated"):
        pair.to_server(b"")


def test_bye_before_hello() -> None:
    pair = XferPair()
    hello = pair.server.start()
    bye = pair.client.goodbye("changed my mind")
    assert pair.to_client(hello) == []  # parsed, then dropped
    assert pair.client.challenge is None
    assert pair.to_server(bye) == [Closed(reason="changed my mind")]


def test_server_busy_bye_first() -> None:
    client = ClientConnection(local_peer=CLIENT_PEER, remote_peer=SERVER_PEER)
    client.receive_data(frame(Bye(reason="busy")))
    assert list(client.events()) == [Closed(reason="busy")]
    assert state_of(client) is State.REMOTE_CLOSED


def test_goodbye_reason_is_clipped_and_printable() -> None:
    pair = ready_pair()
    assert pair.to_client(pair.server.goodbye("bad\nthing" + "x" * 300)) == [
        Closed(reason=("bad?thing" + "x" * 300)[:200])
    ]


def test_server_limits_client_frames_to_64_kib() -> None:
    pair = XferPair()
    pair.server.start()
    pair.server.receive_data((64 * 1024 + 1).to_bytes(4, "big"))  # prefix only
    with pytest.raises(RemoteProtocolError, match="exceeds limit 65536"):
        list(pair.server.events())
    assert state_of(pair.server) is State.ERROR


# -- opening with a grant (a seed that holds no key) -------------------------
GRANT_EXPIRES = 1_800_000_000
GRANT_NOW = 1_700_000_000.0


def seed_grant(
    keys: FileKeys = SHARE.keys,
    root: bytes = SHARE.root,
    peer: bytes = CLIENT_PEER,
    expires: int = GRANT_EXPIRES,
) -> bytes:
    return make_grant(keys.signing_key, root, peer, expires).to_bytes()


def test_open_with_grant(split: Splitter) -> None:
    pair = XferPair(split)
    pair.handshake()
    grant = seed_grant()
    (request,) = pair.to_server(pair.client.open(1, SHARE.root, grant=grant))
    assert request == OpenRequested(sid=1, root=SHARE.root, proof=None, grant=grant)
    assert "grant" not in repr(request).replace("grant=", "")  # no bytes shown
    access = Envelope.decode(SHARE.envelope_bytes).access_public
    pair.server.verify_grant(access, grant, SHARE.root, GRANT_NOW)
    with pytest.raises(AccessDenied, match="access proof: missing"):
        pair.server.verify(access, request.proof, SHARE.root)
    assert pair.to_client(pair.server.accept(1, SHARE.envelope_bytes)) == [
        ShareOpened(sid=1, envelope=SHARE.envelope_bytes, have=None)
    ]
    assert pair.to_server(pair.client.want(1, 7, "chunk", 2)) == [
        BlockWanted(sid=1, req=7, kind="chunk", index=2)
    ]
    assert pair.to_client(pair.server.send_block(7, SHARE.chunks[2])) == [
        BlockReceived(req=7, data=SHARE.chunks[2])
    ]


def test_proof_open_still_sends_proof_only() -> None:
    pair = XferPair()
    pair.handshake()
    (request,) = pair.to_server(pair.client.open(1, SHARE.root, SHARE.keys.signing_key))
    assert isinstance(request, OpenRequested)
    assert request.grant is None
    assert request.proof is not None
    with pytest.raises(AccessDenied, match="grant: malformed"):
        pair.server.verify_grant(
            SHARE.keys.access_public, request.proof, SHARE.root, GRANT_NOW
        )


def test_open_with_proof_encodes_as_before() -> None:
    # The v1 wire form of an Open with a proof: no grant key, same order.
    message = Open(sid=1, root=bytes(32), proof=b"p" * 64)
    assert frame(message) == encode_frame(
        {"t": "open", "sid": 1, "root": bytes(32), "proof": b"p" * 64}
    )
    assert frame(message).hex() == (
        "0000007c84a174a46f70656ea373696401a4726f6f74c420"
        + "00" * 32
        + "a570726f6f66c440"
        + "70" * 64
    )


@pytest.mark.parametrize(
    ("grant", "reason"),
    [
        (seed_grant(keys=OTHER.keys), "grant: bad signature"),
        (seed_grant(expires=int(GRANT_NOW)), "grant: expired"),
        (seed_grant(peer=SERVER_PEER), "grant: issued for another peer"),
        (seed_grant(root=OTHER.root, keys=OTHER.keys), "grant: for another share"),
        (b"junk", "grant: malformed"),
        (seed_grant()[:-1], "grant: malformed"),
    ],
    ids=["forged", "expired", "other-peer", "other-root", "junk", "truncated"],
)
def test_bad_grants_are_refused(grant: bytes, reason: str) -> None:
    pair = XferPair()
    pair.handshake()
    (request,) = pair.to_server(pair.client.open(3, SHARE.root, grant=grant))
    assert isinstance(request, OpenRequested)
    assert request.grant == grant
    with pytest.raises(AccessDenied, match=reason):
        pair.server.verify_grant(
            SHARE.keys.access_public, grant, request.root, GRANT_NOW
        )
    refused = pair.server.refuse(3, "access_denied", reason)
    assert pair.to_client(refused) == [
        ShareRefused(sid=3, code="access_denied", reason=reason)
    ]
    with pytest.raises(RemoteProtocolError, match="want for sid 3, not open"):
        pair.to_server(frame(Want(sid=3, req=1, kind="chunk", index=0)))


def test_grant_checked_against_the_authenticated_peer() -> None:
    # The same grant bytes, relayed by another client, are refused.
    grant = seed_grant()
    other = ServerConnection(
        local_peer=SERVER_PEER, remote_peer=b"\x00" * 38, challenge=CHALLENGE
    )
    with pytest.raises(AccessDenied, match="another peer"):
        other.verify_grant(SHARE.keys.access_public, grant, SHARE.root, GRANT_NOW)


def test_client_open_needs_exactly_one_credential() -> None:
    pair = XferPair()
    pair.handshake()
    with pytest.raises(LocalProtocolError, match="exactly one"):
        pair.client.open(1, SHARE.root)
    with pytest.raises(LocalProtocolError, match="exactly one"):
        pair.client.open(1, SHARE.root, SHARE.keys.signing_key, grant=seed_grant())
    with pytest.raises(LocalProtocolError):
        pair.client.open(1, SHARE.root, grant=b"g" * (MAX_GRANT_BYTES + 1))
    with pytest.raises(LocalProtocolError):
        pair.client.open(1, SHARE.root, grant=b"")
    pair.client.open(1, SHARE.root, grant=seed_grant())  # nothing was committed


def test_client_open_with_grant_needs_hello() -> None:
    client = ClientConnection(local_peer=CLIENT_PEER, remote_peer=SERVER_PEER)
    with pytest.raises(LocalProtocolError, match="Hello"):
        client.open(1, SHARE.root, grant=seed_grant())


@pytest.mark.parametrize(
    "body",
    [
        {"t": "open", "sid": 1, "root": bytes(32)},
        {"t": "open", "sid": 1, "root": bytes(32), "proof": bytes(64), "grant": b"g"},
        {"t": "open", "sid": 1, "root": bytes(32), "grant": b""},
        {"t": "open", "sid": 1, "root": bytes(32), "grant": "g"},
        {"t": "open", "sid": 1, "root": bytes(32), "grant": bytes(513)},
        {"t": "open", "sid": 1, "root": bytes(32), "grant": None},
    ],
    ids=["neither", "both", "empty", "str", "too-long", "nil"],
)
def test_server_refuses_bad_opens(body: dict[str, object]) -> None:
    pair = XferPair()
    pair.handshake()
    with pytest.raises(RemoteProtocolError, match="open"):
        pair.to_server(encode_frame(body))
    assert state_of(pair.server) is State.ERROR
