"""Length-prefixed msgpack frames: limits, strictness, EOF, incremental feeding."""

from __future__ import annotations

import struct

import msgpack
import pytest

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol.framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame


def prefixed(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def decode_one(data: bytes, **kwargs: int) -> object:
    decoder = FrameDecoder(**kwargs)
    decoder.receive_data(data)
    return decoder.next_frame()


def test_round_trip_and_layout() -> None:
    body = {"t": "block", "req": 7, "data": b"\x00\xff"}
    data = encode_frame(body)
    assert data[:4] == len(data[4:]).to_bytes(4, "big")
    assert msgpack.unpackb(data[4:]) == body
    assert decode_one(data) == body


def test_frames_fed_whole_bytewise_and_with_trailing_bytes() -> None:
    bodies = [{"t": "want", "req": i, "s": "é" * i} for i in range(5)]
    stream = b"".join(encode_frame(b) for b in bodies)
    decoder = FrameDecoder()
    got = []
    for i in range(len(stream)):
        decoder.receive_data(stream[i : i + 1])
        while (body := decoder.next_frame()) is not None:
            got.append(body)
    assert got == bodies

    decoder = FrameDecoder()
    decoder.receive_data(stream + stream[:6])  # plus part of another frame
    assert [decoder.next_frame() for _ in bodies] == bodies
    assert decoder.next_frame() is None
    assert decoder.buffered == 6


def test_oversize_prefix_is_refused_before_the_body() -> None:
    decoder = FrameDecoder(max_frame=100)
    decoder.receive_data(struct.pack(">I", 101))  # only the prefix
    with pytest.raises(RemoteProtocolError, match="exceeds limit 100"):
        decoder.next_frame()
    decoder = FrameDecoder()
    decoder.receive_data(struct.pack(">I", MAX_FRAME_BYTES + 1))
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        decoder.next_frame()
    decoder = FrameDecoder()
    decoder.receive_data(b"\xff\xff\xff\xff")
    with pytest.raises(RemoteProtocolError):
        decoder.next_frame()


def test_frame_at_the_limit_is_accepted() -> None:
    body = {"t": "x", "d": b""}
    size = len(msgpack.packb(body))
    assert decode_one(encode_frame(body), max_frame=size) == body
    with pytest.raises(RemoteProtocolError):
        decode_one(encode_frame(body), max_frame=size - 1)


def test_zero_length_frame() -> None:
    with pytest.raises(RemoteProtocolError, match="zero length"):
        decode_one(b"\x00\x00\x00\x00")


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 9])
def test_truncated_frame_at_eof(cut: int) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame({"t": "bye", "reason": "x"})[:cut])
    assert decoder.next_frame() is None
    decoder.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="truncated"):
        decoder.next_frame()


def test_clean_eof_and_data_after_eof() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame({"t": "bye"}))
    decoder.receive_data(b"")
    assert decoder.buffered > 0  # not at EOF while bytes remain
    assert decoder.next_frame() == {"t": "bye"}
    assert decoder.next_frame() is None
    assert decoder.at_eof
    decoder.receive_data(b"")  # EOF twice is harmless
    with pytest.raises(LocalProtocolError):
        decoder.receive_data(b"x")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (msgpack.packb([1, 2]), "malformed"),  # arrays are refused outright
        (msgpack.packb("t"), "not a map"),
        (msgpack.packb({"x": 1}), '"t"'),
        (msgpack.packb({"t": 1}), '"t"'),
        (msgpack.packb({"t": b"bye"}), '"t"'),
        (msgpack.packb({"t": "x", "m": {"a": 1}}), "not a scalar"),
        (msgpack.packb({"t": "x", "m": []}), "not a scalar"),
        (msgpack.packb({"t": "x", "e": msgpack.ExtType(1, b"")}), "not a scalar"),
        (msgpack.packb({"t": "x", "e": msgpack.ExtType(1, b"ab")}), "malformed"),
        (msgpack.packb({1: "x"}), "malformed"),  # strict_map_key
        (msgpack.packb({b"t": "x"}, use_bin_type=True), "non-str key"),
        (b"\x82\xa1t\xa1x\xa1t\xa1y", "duplicate key"),
        (b"\x81\xa1t\xa2\xc3\x28", "malformed"),  # invalid UTF-8
        (msgpack.packb({"t": "x"}) + b"\x00", "malformed"),  # extra data
        (b"\x81\xa1t", "malformed"),  # body shorter than its own structure
        (b"\xc1", "malformed"),  # reserved byte
        (msgpack.packb({"t": "x" * 2000}), "malformed"),  # str over the limit
        (msgpack.packb({"t": "x", **{f"k{i}": i for i in range(16)}}), "malformed"),
    ],
)
def test_strict_body(body: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        decode_one(prefixed(body))


def test_decoder_continues_after_a_bad_body_is_consumed() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(prefixed(b"\xc1") + encode_frame({"t": "ok"}))
    with pytest.raises(RemoteProtocolError):
        decoder.next_frame()
    assert decoder.next_frame() == {"t": "ok"}


def test_encode_refuses_oversize() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame({"t": "x", "d": bytes(100)}, max_frame=50)


def test_large_frames_in_small_reads() -> None:
    # 32 frames of 1 MiB fed in 64 KiB reads: linear, so this takes
    # milliseconds; a decoder that re-copied its buffer per read would not.
    payload = bytes(range(256)) * 4096
    stream = encode_frame({"t": "block", "req": 1, "data": payload}) * 32
    decoder = FrameDecoder()
    count = 0
    for pos in range(0, len(stream), 65536):
        decoder.receive_data(stream[pos : pos + 65536])
        while (body := decoder.next_frame()) is not None:
            assert body["data"] == payload
            count += 1
    assert count == 32
    assert decoder.buffered == 0
