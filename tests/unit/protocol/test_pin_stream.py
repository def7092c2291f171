"""The pin stream state machine, tested in pairs: a client and a seed
``PinStream`` joined by the bytes each writes, as the xfer connection is."""

from __future__ import annotations

import pytest

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol.pin import (
    InfoRequest,
    PinRefused,
    PinStream,
    StatusRequest,
    StreamState,
)

ROOT = bytes(range(32))


def _state(stream: PinStream) -> StreamState:
    return stream.state  # (a call: mypy must not narrow across the steps)


def test_one_request_one_response() -> None:
    client, seed = PinStream("client"), PinStream("seed")
    frame = client.send(StatusRequest(root=ROOT))
    assert _state(client) is StreamState.ASKED
    assert seed.receive_frame(frame) == StatusRequest(root=ROOT)
    assert _state(seed) is StreamState.ASKED
    answer = seed.send(PinRefused(code="not_found", message="no pin"))
    assert _state(seed) is StreamState.DONE
    got = client.receive_frame(answer)
    assert got == PinRefused(code="not_found", message="no pin")
    assert _state(client) is StreamState.DONE


def test_a_frame_split_in_every_place_arrives_whole() -> None:
    frame = PinStream("client").send(InfoRequest())
    for cut in range(1, len(frame)):  # b"" would be EOF
        seed = PinStream("seed")
        assert seed.receive_data(frame[:cut]) is None
        assert _state(seed) is StreamState.IDLE
        assert seed.receive_data(frame[cut:]) == InfoRequest()
        assert seed.receive_data(b"") is None
        assert _state(seed) is StreamState.ASKED


def test_sending_out_of_turn_is_our_bug_and_changes_nothing() -> None:
    client, seed = PinStream("client"), PinStream("seed")
    with pytest.raises(LocalProtocolError):
        seed.send(PinRefused(code="bad_request"))  # nothing asked yet
    assert _state(seed) is StreamState.IDLE
    client.send(InfoRequest())
    with pytest.raises(LocalProtocolError):
        client.send(InfoRequest())  # one request per stream
    assert _state(client) is StreamState.ASKED


def test_the_wrong_kind_of_message_is_the_peers_error() -> None:
    # a seed answering with a request, a client asking with a response
    request = PinStream("client").send(InfoRequest())
    client = PinStream("client")
    client.send(InfoRequest())
    with pytest.raises(RemoteProtocolError):
        client.receive_frame(request)
    assert _state(client) is StreamState.ERROR
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"")  # nothing more once in ERROR

    answer_side = PinStream("seed")
    answer_side.receive_frame(request)
    response = answer_side.send(PinRefused(code="unavailable"))
    seed = PinStream("seed")
    with pytest.raises(RemoteProtocolError):
        seed.receive_frame(response)
    assert _state(seed) is StreamState.ERROR


def test_bytes_after_the_message_or_eof_before_it() -> None:
    frame = PinStream("client").send(InfoRequest())
    with pytest.raises(RemoteProtocolError):
        PinStream("seed").receive_frame(frame + b"\x00")
    with pytest.raises(RemoteProtocolError):
        PinStream("seed").receive_frame(frame[:-1])
    with pytest.raises(RemoteProtocolError):
        PinStream("seed").receive_frame(b"")


def test_a_response_before_the_request_went_out() -> None:
    seed = PinStream("seed")
    seed.receive_frame(PinStream("client").send(InfoRequest()))
    early = seed.send(PinRefused(code="unavailable"))
    client = PinStream("client")  # has not sent its request
    with pytest.raises(RemoteProtocolError):
        client.receive_frame(early)
    assert _state(client) is StreamState.ERROR
