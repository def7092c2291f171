"""Property tests: hostile bytes raise only RemoteProtocolError; messages
survive encode → frame → decode unchanged."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pshare.errors import RemoteProtocolError
from p2pshare.protocol import (
    ClientConnection,
    FrameDecoder,
    ServerConnection,
    State,
    decode_message,
    encode_frame,
)
from p2pshare.protocol.messages import (
    MAX_REQ,
    MAX_SID,
    MESSAGE_TYPES,
    Block,
    Bye,
    Cancel,
    Hello,
    Message,
    Missing,
    Open,
    Opened,
    Refused,
    Want,
)

from .pairs import CHALLENGE, CLIENT_PEER, SERVER_PEER, XferPair, make_share

SHARE = make_share()

# -- valid messages ------------------------------------------------------------
u16 = st.integers(0, MAX_SID)
u32 = st.integers(0, MAX_REQ)
printable = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
    | st.just(" "),
    max_size=200,
)
codes = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=40)


def message_strategy(
    sids: st.SearchStrategy[int],
    reqs: st.SearchStrategy[int],
    versions: st.SearchStrategy[int],
) -> st.SearchStrategy[Message]:
    return st.one_of(
        st.builds(
            Hello, version=versions, challenge=st.binary(min_size=32, max_size=32)
        ),
        st.builds(
            Open,
            sid=sids,
            root=st.binary(min_size=32, max_size=32),
            proof=st.binary(min_size=64, max_size=64),
        ),
        st.builds(
            Open,
            sid=sids,
            root=st.binary(min_size=32, max_size=32),
            grant=st.binary(min_size=1, max_size=512),
        ),
        st.builds(
            Opened,
            sid=sids,
            envelope=st.binary(min_size=1, max_size=300),
            have=st.none() | st.binary(max_size=64),
        ),
        st.builds(Refused, sid=sids, code=codes, reason=printable),
        st.builds(
            Want,
            sid=sids,
            req=reqs,
            kind=st.just("chunk"),
            index=st.integers(0, 2**23 - 1),
        ),
        st.builds(
            Want, sid=sids, req=reqs, kind=st.just("index"), index=st.integers(0, 1023)
        ),
        st.builds(Block, req=reqs, data=st.binary(max_size=300)),
        st.builds(Missing, req=reqs),
        st.builds(Cancel, req=reqs),
        st.builds(Bye, reason=printable),
    )


# Every valid message, over the full ranges.
messages = message_strategy(u16, u32, st.integers(0, 2**16 - 1))
# Valid messages likely to fit the machines' state (few sids and reqs).
plausible = message_strategy(st.integers(0, 3), st.integers(0, 4), st.just(1))


@given(st.lists(messages, min_size=1, max_size=8), st.data())
def test_messages_round_trip_through_frames(
    batch: list[Message], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(m.to_wire()) for m in batch)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=6))))
    decoder = FrameDecoder()
    got: list[Message] = []
    for start, end in itertools.pairwise([0, *cuts, len(stream)]):
        if end > start:  # b"" would mean EOF
            decoder.receive_data(stream[start:end])
        while (body := decoder.next_frame()) is not None:
            got.append(decode_message(body))
    assert got == batch


# -- hostile input -------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=70),
    st.sampled_from(["chunk", "index"]),
    st.sampled_from([0, 1, 2, 2**16, 2**32]),
)
field_names = st.sampled_from(
    [
        *("sid", "req", "root", "proof", "grant", "challenge", "version"),
        "envelope",
        *("have", "code", "reason", "kind", "index", "data", "bogus"),
    ]
)
tags = st.sampled_from([*MESSAGE_TYPES, "nope"])


@st.composite
def random_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = draw(st.dictionaries(field_names, scalars, max_size=6))
    body["t"] = draw(tags)
    return body


chunks = st.one_of(
    st.binary(min_size=1, max_size=80),
    random_bodies().map(encode_frame),
    plausible.map(lambda m: encode_frame(m.to_wire())),
    st.lists(plausible, min_size=1, max_size=4).map(
        lambda ms: b"".join(encode_frame(m.to_wire()) for m in ms)
    ),
)


def fresh_server() -> ServerConnection:
    server = ServerConnection(
        local_peer=SERVER_PEER, remote_peer=CLIENT_PEER, challenge=CHALLENGE, max_open=2
    )
    server.start()
    return server


def fresh_client() -> ClientConnection:
    return ClientConnection(local_peer=CLIENT_PEER, remote_peer=SERVER_PEER)


def busy_pair() -> XferPair:
    # Accepted sid 1, wants 1 and 2 outstanding: the deep states.
    pair = XferPair()
    pair.open_share(SHARE)
    pair.to_server(
        pair.client.want(1, 1, "chunk", 0) + pair.client.want(1, 2, "chunk", 1)
    )
    return pair


def feed(
    conn: ServerConnection | ClientConnection, pieces: list[bytes], eof: bool
) -> None:
    try:
        for piece in [*pieces, b""] if eof else pieces:
            conn.receive_data(piece)
            for _ in conn.events():
                pass
    except RemoteProtocolError:
        assert conn.state is State.ERROR


@settings(max_examples=300)
@given(st.lists(chunks, max_size=8), st.booleans())
def test_arbitrary_input_raises_only_remote_protocol_errors(
    pieces: list[bytes], eof: bool
) -> None:
    pair = busy_pair()
    for conn in (fresh_server(), fresh_client(), pair.server, pair.client):
        feed(conn, pieces, eof)


@given(st.binary(max_size=200))
def test_arbitrary_bodies_decode_or_raise_remote_errors(raw: bytes) -> None:
    decoder = FrameDecoder(max_frame=1024)
    decoder.receive_data(len(raw).to_bytes(4, "big") + raw)
    decoder.receive_data(b"")
    try:
        body = decoder.next_frame()
        if body is not None:
            decode_message(body)
    except RemoteProtocolError:
        pass
