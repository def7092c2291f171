"""Live links (``p2pshare://live.<pub>/<hints>#<read key>``): round trips,
strict and total parsing, keys never echoed."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pshare.errors import LinkError
from p2pshare.format.links import (
    SCHEME,
    LiveLink,
    ShareLink,
    parse_any_link,
    parse_link,
)

PUB = bytes(range(32))
READ = bytes(range(100, 132))
PEER = (
    "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
)
PEER_6 = "/ip6/::1/tcp/4002/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"
FULL = LiveLink(PUB, READ, (PEER, PEER_6))
FULL_TEXT = str(FULL)
READ_TEXT = base64.urlsafe_b64encode(READ).decode().rstrip("=")


def test_shape() -> None:
    assert FULL_TEXT.startswith(SCHEME + "live.")
    assert FULL.name == "live." + base64.b32encode(PUB).decode().rstrip("=").lower()
    assert len(FULL.name) == 5 + 52
    assert FULL_TEXT.endswith("#" + READ_TEXT)
    assert READ_TEXT not in FULL.public() and READ_TEXT not in repr(FULL)
    assert "&" not in FULL_TEXT and "?" not in FULL_TEXT


@given(
    pub=st.binary(min_size=32, max_size=32),
    key=st.none() | st.binary(min_size=32, max_size=32),
    peers=st.lists(st.sampled_from([PEER, PEER_6]), max_size=8).map(tuple),
)
def test_round_trip(pub: bytes, key: bytes | None, peers: tuple[str, ...]) -> None:
    link = LiveLink(pub, key, peers)
    assert parse_any_link(str(link)) == link
    assert parse_any_link(link.public()) == LiveLink(pub, None, peers)


def test_snapshot_links_still_parse_and_refuse_live_ones() -> None:
    snap = ShareLink(root_id=bytes(32), key=READ, peers=(PEER,))
    assert parse_any_link(str(snap)) == snap
    with pytest.raises(LinkError, match="live link"):
        parse_link(FULL_TEXT)


@pytest.mark.parametrize(
    "text",
    [
        SCHEME + "live.",
        SCHEME + "live." + "a" * 51,
        SCHEME + "live." + "a" * 53,
        SCHEME + "live." + FULL.name[5:].upper(),
        SCHEME + "live." + "1" * 52,  # not base32
        SCHEME + "live." + FULL.name[5:-1] + "b",  # non-canonical last char
        FULL.public() + "#short",
        FULL.public() + "?peer=" + PEER,
        SCHEME + FULL.name + "/not-a-multiaddr",
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(LinkError) as info:
        parse_any_link(text)
    assert READ_TEXT not in str(info.value)


LINK_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567ABC-_/:.?&=#%+ \x00\u00e9"


@given(st.text(alphabet=LINK_ALPHABET))
def test_any_tail_parses_or_link_error(tail: str) -> None:
    for text in (SCHEME + "live." + tail, SCHEME + FULL.name + tail):
        try:
            link = parse_any_link(text)
        except LinkError:
            continue
        assert isinstance(link, LiveLink | ShareLink)
        assert parse_any_link(str(link)) == link


@given(st.sampled_from([FULL_TEXT, FULL.public()]), st.data())
def test_one_character_mutations(valid: str, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(valid)))
    char = data.draw(st.sampled_from(LINK_ALPHABET) | st.characters())
    text = valid[:pos] + char + valid[pos + 1 :]
    try:
        link = parse_any_link(text)
    except LinkError:
        return
    assert parse_any_link(str(link)) == link


@given(st.one_of(st.none(), st.integers(), st.binary()))
def test_non_strings(value: object) -> None:
    with pytest.raises(LinkError):
        parse_any_link(value)
