"""``/p2pshare/reach/1`` messages: strict both ways."""

from __future__ import annotations

import msgpack
import pytest

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol.reach import (
    MAX_REACH_FRAME_BYTES,
    Reached,
    ReachRequest,
    decode,
    encode,
)


def frame(body: object) -> bytes:
    raw: bytes = msgpack.packb(body, use_bin_type=True)
    return len(raw).to_bytes(4, "big") + raw


def test_round_trip() -> None:
    assert decode(encode(ReachRequest(port=4001)), ReachRequest).port == 4001
    back = decode(encode(Reached(observed="11.0.0.1", result="no_answer")), Reached)
    assert (back.observed, back.result) == ("11.0.0.1", "no_answer")
    assert decode(encode(Reached(observed="::1", result="dialed")), Reached).result


@pytest.mark.parametrize(
    "data",
    [
        frame({"t": "reach"}),  # no port
        frame({"t": "reach", "port": 0}),
        frame({"t": "reach", "port": 70000}),
        frame({"t": "reach", "port": True}),
        frame({"t": "reach", "port": 4001, "to": "1.2.3.4"}),  # no third parties
        frame({"t": "reached", "port": 4001}),  # wrong tag
        frame({"t": "reach", "port": 4001}) + frame({"t": "reach", "port": 1}),
        frame({"t": "reach", "port": 4001})[:-1],
        (MAX_REACH_FRAME_BYTES + 1).to_bytes(4, "big") + b"x" * 300,
        b"",
    ],
)
def test_bad_requests_are_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(data, ReachRequest)


@pytest.mark.parametrize(
    "body",
    [
        {"t": "reached", "observed": "not-an-ip", "result": "dialed"},
        {"t": "reached", "observed": "11.0.0.1", "result": "maybe"},
        {"t": "reached", "observed": "11.0.0.1\n", "result": "dialed"},
        {"t": "reached", "observed": "11.0.0.1"},
        # a zone made the node's reachability service (and so, once, the
        # node) fail building its address: only a plain address is one
        {"t": "reached", "observed": "fe80::1%eth0", "result": "dialed"},
        {"t": "reached", "observed": "0:0:0:0:0:0:0:1", "result": "dialed"},
    ],
)
def test_bad_answers_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(frame(body), Reached)


def test_we_cannot_build_a_bad_message() -> None:
    with pytest.raises(LocalProtocolError):
        ReachRequest(port=0)
    with pytest.raises(LocalProtocolError):
        Reached(observed="x", result="dialed")
