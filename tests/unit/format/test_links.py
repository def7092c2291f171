"""Share links and CID text (p2pshare/format/links.py, cid.py)."""

import base64
import hashlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from p2pshare.errors import LinkError, UsageError
from p2pshare.format.cid import CID_TEXT_LEN, cid_to_root, root_to_cid
from p2pshare.format.links import (
    MAX_LINK_LEN,
    MAX_PEER_LEN,
    MAX_PEERS,
    SCHEME,
    ShareLink,
    parse_link,
    parse_root_or_link,
)

ROOT = hashlib.blake2b(b"some envelope", digest_size=32).digest()
CID = root_to_cid(ROOT)
KEY = bytes(range(200, 232))
KEY_TEXT = base64.urlsafe_b64encode(KEY).decode().rstrip("=")
PEER_ID = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
PEER_ID_2 = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"


def peer(port=4001, pid=PEER_ID):
    return f"/ip4/127.0.0.1/tcp/{port}/p2p/{pid}"


PEERS = (peer(), f"/ip6/::1/tcp/4002/p2p/{PEER_ID_2}")
FULL = ShareLink(root_id=ROOT, key=KEY, peers=PEERS)
FULL_TEXT = str(FULL)


def test_cid_text_shape():
    assert len(CID) == CID_TEXT_LEN == 62
    assert CID.startswith("bafk2bzace")
    assert cid_to_root(CID) == ROOT


@given(st.binary(min_size=32, max_size=32))
def test_cid_round_trip(root):
    text = root_to_cid(root)
    assert len(text) == 62
    assert text == text.lower()
    assert cid_to_root(text) == root


def test_root_to_cid_rejects_wrong_length():
    with pytest.raises(ValueError, match="32 bytes"):
        root_to_cid(bytes(31))


@pytest.mark.parametrize(
    ("key", "peers"),
    [
        (None, ()),
        (KEY, ()),
        (None, PEERS),
        (KEY, PEERS),
        (KEY, (peer(),)),
        (KEY, tuple(peer(4000 + i) for i in range(MAX_PEERS))),
        (bytes(32), (f"/dns4/example.com/tcp/443/p2p/{PEER_ID}",)),
        (KEY, (f"/ip4/1.2.3.4/tcp/1/p2p/{PEER_ID_2}/p2p-circuit/p2p/{PEER_ID}",)),
    ],
)
def test_round_trip(key, peers):
    link = ShareLink(root_id=ROOT, key=key, peers=peers)
    text = str(link)
    assert text.startswith(SCHEME + CID)
    assert ("#" in text) == (key is not None)
    assert ("?" not in text) and ("&" not in text)
    assert (text.split("#")[0].count("/") > 2) == bool(peers)
    parsed = parse_link(text)
    assert parsed == link
    assert str(parsed) == text
    assert parse_root_or_link(text) == link
    # public() is the root-id-only capability: same root and peers, no key.
    public = parse_link(link.public())
    assert public == ShareLink(root_id=ROOT, peers=peers)
    assert "#" not in link.public()


def test_known_text():
    want = f"p2pshare://{CID}{PEERS[0]},{PEERS[1]}#{KEY_TEXT}"
    assert str(FULL) == want


def test_earlier_query_form_still_parses():
    old = f"p2pshare://{CID}?peer={PEERS[0]}&peer={PEERS[1]}#{KEY_TEXT}"
    assert parse_link(old) == FULL
    assert str(parse_link(old)) == str(FULL)  # written back in the new form


def test_links_hold_no_shell_metacharacters():
    # pasted unquoted, `&` backgrounded the command and `?` is a glob
    text = str(FULL)
    body = text.removeprefix(SCHEME)
    assert set(body) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._:-,%#"
    ), text
    assert parse_link(text) == FULL


@pytest.mark.parametrize(
    "bad",
    [f"/{'x'}", "/", "/ip4/127.0.0.1/tcp/1/p2p/x,", "/ip4/1.2.3.4/tcp/1,,/ip4"],
)
def test_bad_hints_after_the_root_are_refused(bad):
    with pytest.raises(LinkError):
        parse_link(f"{SCHEME}{CID}{bad}#{KEY_TEXT}")


def test_bare_root_id():
    assert parse_root_or_link(CID) == ShareLink(root_id=ROOT)
    assert parse_root_or_link(f"  {CID}\n") == ShareLink(root_id=ROOT)
    with pytest.raises(LinkError):
        parse_link(CID)  # a link needs its scheme


def test_surrounding_whitespace_is_ignored():
    assert parse_link(f"  {FULL_TEXT}\n") == FULL


def test_percent_encoded_peer_is_decoded():
    encoded = PEERS[0].replace("/", "%2F")
    link = parse_link(f"{SCHEME}{CID}?peer={encoded}")
    assert link.peers == (PEERS[0],)
    assert str(link) == f"{SCHEME}{CID}{PEERS[0]}"
    encoded = "/" + PEERS[0][1:].replace("/", "%2F")
    assert parse_link(f"{SCHEME}{CID}{encoded}").peers == (PEERS[0],)


def test_repr_never_contains_the_key():
    for link in (FULL, parse_link(FULL_TEXT), ShareLink(root_id=ROOT, key=KEY)):
        text = repr(link)
        assert KEY_TEXT not in text
        assert KEY.hex() not in text
        assert repr(KEY) not in text
        assert "<key>" in text
    assert "None" in repr(ShareLink(root_id=ROOT))


def test_link_errors_never_echo_the_key():
    secret = KEY_TEXT[:-1] + "+"  # one wrong character
    with pytest.raises(LinkError) as info:
        parse_link(f"{SCHEME}{CID}#{secret}")
    assert secret not in str(info.value)
    with pytest.raises(LinkError) as info:
        parse_link(f"{SCHEME}{CID}?peer=/nope#{KEY_TEXT}")
    assert KEY_TEXT not in str(info.value)


def test_link_error_is_a_usage_error():
    with pytest.raises(LinkError) as info:
        parse_link("nope")
    assert isinstance(info.value, UsageError)
    assert info.value.code == "bad_link"
    assert info.value.exit_code == 2


# -- fuzzing: any text either parses or raises LinkError ------------------------

LINK_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0234567189"
    "-_/:.?&=#%+ \t\n\x00\x7f\u00e9\U0001f600"
)
link_chars = st.text(alphabet=LINK_ALPHABET)


def parses_or_link_error(func, text):
    try:
        link = func(text)
    except LinkError:
        return None
    assert isinstance(link, ShareLink)
    # Whatever parses formats back to text that parses to the same link.
    assert parse_link(str(link)) == link
    return link


@given(st.text())
@example("p2pshare://")
@example(SCHEME + CID + "?")
@example(SCHEME + CID + "#")
@example(SCHEME + CID + "?&")
def test_any_text(text):
    parses_or_link_error(parse_link, text)
    parses_or_link_error(parse_root_or_link, text)


@given(link_chars)
def test_scheme_then_link_characters(tail):
    parses_or_link_error(parse_link, SCHEME + tail)
    parses_or_link_error(parse_root_or_link, SCHEME + tail)


@given(st.text())
def test_valid_root_then_any_text(tail):
    parses_or_link_error(parse_link, SCHEME + CID + tail)
    parses_or_link_error(parse_root_or_link, CID + tail)


@given(
    st.sampled_from([FULL_TEXT, FULL.public(), f"{SCHEME}{CID}#{KEY_TEXT}"]), st.data()
)
def test_one_character_mutations(valid, data):
    pos = data.draw(st.integers(0, len(valid)))
    char = data.draw(st.sampled_from(LINK_ALPHABET) | st.characters())
    mutation = data.draw(st.sampled_from(["delete", "insert", "replace"]))
    if mutation == "insert":
        text = valid[:pos] + char + valid[pos:]
    elif mutation == "delete":
        text = valid[:pos] + valid[pos + 1 :]
    else:
        text = valid[:pos] + char + valid[pos + 1 :]
    parses_or_link_error(parse_link, text)
    parses_or_link_error(parse_root_or_link, text)


@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_non_strings(value):
    with pytest.raises(LinkError):
        parse_link(value)
    with pytest.raises(LinkError):
        parse_root_or_link(value)


# -- specific rejections ---------------------------------------------------------


def b32(data):
    return "b" + base64.b32encode(data).decode().lower().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        CID,
        f"p2pshare:{CID}",
        f"p2pshare:/{CID}",
        f"P2PSHARE://{CID}",
        f"https://{CID}",
        f"//{CID}#{KEY_TEXT}",
        f" p2pshare ://{CID}",
    ],
    ids=[
        "empty",
        "bare-cid",
        "no-slashes",
        "one-slash",
        "upper",
        "https",
        "no-scheme",
        "space",
    ],
)
def test_missing_scheme(text):
    with pytest.raises(LinkError, match="p2pshare://"):
        parse_link(text)


def _nonzero_trailing_bits():
    # 38 bytes are 304 bits; the 61st base32 character carries 4 of them
    # and one unused bit, which must be zero.
    last = CID[-1]
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    flipped = alphabet[alphabet.index(last) ^ 1]
    return CID[:-1] + flipped


BAD_CIDS = {
    "empty": "",
    "wrong-multibase-prefix": "f" + CID[1:],
    "base58-cidv0": "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "uppercase-body": "b" + CID[1:].upper(),
    "uppercase-prefix": "B" + CID[1:],
    "one-upper-char": CID[:10] + CID[10].upper() + CID[11:],
    "too-short": CID[:-1],
    "too-long": CID + "a",
    "padded": CID[:-2] + "==",
    "bad-char": CID[:-1] + "1",
    "sha256-raw-cid": b32(bytes([1, 0x55, 0x12, 0x20]) + ROOT),
    "dag-cbor-codec": b32(bytes([1, 0x71, 0xA0, 0xE4, 0x02, 0x20]) + ROOT),
    "cid-version-0": b32(bytes([0, 0x55, 0xA0, 0xE4, 0x02, 0x20]) + ROOT),
    "blake2b-160": b32(bytes([1, 0x55, 0x94, 0xE4, 0x02, 0x20]) + ROOT),
    "digest-length-31": b32(bytes([1, 0x55, 0xA0, 0xE4, 0x02, 0x1F]) + ROOT + b"x"),
    "nonzero-trailing-bits": _nonzero_trailing_bits(),
}


@pytest.mark.parametrize("text", BAD_CIDS.values(), ids=BAD_CIDS.keys())
def test_bad_cid(text):
    with pytest.raises(LinkError, match="root id"):
        cid_to_root(text)
    with pytest.raises(LinkError, match="root id"):
        parse_link(SCHEME + text)
    with pytest.raises(LinkError, match="root id"):
        parse_link(f"{SCHEME}{text}#{KEY_TEXT}")
    with pytest.raises(LinkError, match="root id"):
        parse_root_or_link(text)


def test_nonzero_trailing_bits_decode_to_the_same_root():
    # The reason the canonical check exists: without it, two texts would
    # name one root.
    text = _nonzero_trailing_bits()
    raw = base64.b32decode(text[1:].upper() + "===")
    assert raw[6:] == ROOT
    with pytest.raises(LinkError, match="non-canonical"):
        cid_to_root(text)


def _noncanonical_key():
    # 43 characters carry 258 bits; the last 2 must be zero.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(KEY_TEXT[-1])
    return KEY_TEXT[:-1] + alphabet[last | 1 if last % 2 == 0 else last & ~1 | 2]


BAD_KEYS = {
    "empty": "",
    "short": KEY_TEXT[:-1],
    "long": KEY_TEXT + "A",
    "padded": KEY_TEXT + "=",
    "standard-alphabet-plus": KEY_TEXT[:-1] + "+",
    "standard-alphabet-slash": "/" + KEY_TEXT[1:],
    "space": KEY_TEXT[:20] + "%20" + KEY_TEXT[23:],
    "hex": KEY.hex(),
    "24-bytes": base64.urlsafe_b64encode(bytes(24)).decode(),
    "non-canonical": _noncanonical_key(),
    "second-fragment": KEY_TEXT + "#",
    "query-after-fragment": KEY_TEXT + "?peer=" + PEERS[0],
}


@pytest.mark.parametrize("frag", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_key(frag):
    with pytest.raises(LinkError, match="key"):
        parse_link(f"{SCHEME}{CID}#{frag}")


def test_non_canonical_key_decodes_to_the_same_key():
    text = _noncanonical_key()
    assert text != KEY_TEXT
    assert base64.urlsafe_b64decode(text + "=") == KEY
    with pytest.raises(LinkError, match="not canonical"):
        parse_link(f"{SCHEME}{CID}#{text}")


@pytest.mark.parametrize(
    "query",
    [
        "",  # a bare '?'
        "&",
        "foo=bar",
        "peer",
        "peer=",
        "Peer=" + PEERS[0],
        f"peer={PEERS[0]}&",
        f"peer={PEERS[0]}&key={KEY_TEXT}",
        f"peer={PEERS[0]}&&peer={PEERS[1]}",
        "peers=" + PEERS[0],
    ],
)
def test_unknown_or_empty_query_param(query):
    with pytest.raises(LinkError, match="query parameter"):
        parse_link(f"{SCHEME}{CID}?{query}#{KEY_TEXT}")


def test_too_many_peers():
    peers = [peer(4000 + i) for i in range(MAX_PEERS + 1)]
    text = f"{SCHEME}{CID}?" + "&".join(f"peer={p}" for p in peers)
    with pytest.raises(LinkError, match=f"more than {MAX_PEERS}"):
        parse_link(text)
    with pytest.raises(LinkError, match=f"more than {MAX_PEERS}"):
        ShareLink(root_id=ROOT, peers=tuple(peers))
    assert len(parse_link(text.rsplit("&", 1)[0]).peers) == MAX_PEERS


@pytest.mark.parametrize(
    ("hint", "problem"),
    [
        ("/ip4/127.0.0.1/tcp/4001", "must end in /p2p/"),
        (f"/p2p/{PEER_ID}/tcp/4001", "must end in /p2p/"),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{PEER_ID}/p2p-circuit", "must end in /p2p/"),
        (f"ip4/127.0.0.1/tcp/4001/p2p/{PEER_ID}", "starting with '/'"),
        ("/", "must end in /p2p/"),  # the empty multiaddr
        ("/nope/1/p2p/" + PEER_ID, "not a valid multiaddr"),
        ("/ip4/999.0.0.1/tcp/1/p2p/" + PEER_ID, "not a valid multiaddr"),
        ("/ip4/127.0.0.1/tcp/99999/p2p/" + PEER_ID, "not a valid multiaddr"),
        ("/ip4/127.0.0.1/tcp/1/p2p/notapeerid", "not a valid multiaddr"),
        ("/ip4/127.0.0.1/tcp/1/p2p/", "not a valid multiaddr"),
        ("/dns4/a" + "a" * MAX_PEER_LEN + "/tcp/1/p2p/" + PEER_ID, "starting with"),
        ("/ip4/127.0.0.1/tcp/1%20/p2p/" + PEER_ID, "characters"),
        ("/ip4/127.0.0.1/tcp/1/p2p/" + PEER_ID + "%0A", "characters"),
        ("/dns4/\u00e9.example/tcp/1/p2p/" + PEER_ID, "characters"),
        ("/ip4/127.0.0.1/tcp/1/p2p/" + PEER_ID + "%ff", "percent-encoded"),
    ],
)
def test_bad_peer_hint(hint, problem):
    with pytest.raises(LinkError, match=problem):
        parse_link(f"{SCHEME}{CID}?peer={hint}#{KEY_TEXT}")


@pytest.mark.parametrize(
    "hint",
    ["/ip4/127.0.0.1/tcp/4001", f"/p2p/{PEER_ID}/tcp/1", "", "x", 5, None],
)
def test_bad_peer_hint_in_constructor(hint):
    with pytest.raises(LinkError):
        ShareLink(root_id=ROOT, peers=(hint,))


def test_overlong_link():
    long_tail = "&peer=" + peer()
    text = FULL.public() + long_tail * 60
    assert len(text) > MAX_LINK_LEN
    with pytest.raises(LinkError, match=f"longer than {MAX_LINK_LEN}"):
        parse_link(text)
    with pytest.raises(LinkError, match="longer than"):
        parse_link(SCHEME + "a" * MAX_LINK_LEN)
    with pytest.raises(LinkError, match="longer than"):
        parse_root_or_link(SCHEME + "a" * 10**6)


@pytest.mark.parametrize(
    "text",
    [
        f"{SCHEME}{CID}\n#{KEY_TEXT}",
        f"{SCHEME}{CID} #{KEY_TEXT}",
        f"{SCHEME}{CID}\x00",
        f"{SCHEME}{CID}#{KEY_TEXT[:-1]}\u00e9",
        f"{SCHEME}{CID[:-1]}\u0430",  # Cyrillic a
    ],
)
def test_characters_a_link_cannot_have(text):
    with pytest.raises(LinkError):
        parse_link(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"root_id": bytes(31)},
        {"root_id": bytes(33)},
        {"root_id": ROOT, "key": bytes(31)},
        {"root_id": ROOT, "key": b""},
    ],
)
def test_constructor_checks_lengths(kwargs):
    with pytest.raises(LinkError, match="32 bytes"):
        ShareLink(**kwargs)
