"""Canonical msgpack (p2pshare/format/canonical.py)."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pshare.errors import FormatError
from p2pshare.format import canonical

MAX = 1 << 20

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text()
    | st.binary()
)


def values(depth=3):
    """Every value the canonical form allows, nested at most ``depth`` deep."""
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return (
        scalars
        | st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    )


def typed(value):
    """``value`` with its types spelled out: True != 1, b"" != "" here."""
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    return (type(value).__name__, value)


@given(values())
def test_round_trip(value):
    data = canonical.pack(value)
    back = canonical.unpack(data, max_len=MAX)
    assert typed(back) == typed(_sorted(value))
    assert canonical.pack(back) == data


def _sorted(value):
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=str.encode)}
    return value


@given(st.dictionaries(st.text(max_size=6), st.integers(0, 9), max_size=8), st.data())
def test_key_order_does_not_change_the_bytes(mapping, data):
    keys = data.draw(st.permutations(list(mapping)))
    assert canonical.pack({k: mapping[k] for k in keys}) == canonical.pack(mapping)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_format_error(data):
    try:
        value = canonical.unpack(data, max_len=MAX, max_items=64)
    except FormatError:
        return
    # Whatever is accepted is the one canonical encoding of its value.
    assert canonical.pack(value) == data


@given(values(), st.data())
def test_mutated_encodings_raise_only_format_error(value, data):
    encoded = bytearray(canonical.pack(value))
    pos = data.draw(st.integers(0, len(encoded)))
    byte = data.draw(st.integers(0, 255))
    mutation = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    if mutation == "replace" and pos < len(encoded):
        encoded[pos] = byte
    elif mutation == "insert":
        encoded.insert(pos, byte)
    elif pos < len(encoded):
        del encoded[pos]
    try:
        back = canonical.unpack(bytes(encoded), max_len=MAX, max_items=64)
    except FormatError:
        return
    assert canonical.pack(back) == bytes(encoded)


def test_keys_sorted_by_utf8_bytes():
    assert (
        canonical.pack({"b": 1, "aa": 2, "a": 3}) == b"\x83\xa1a\x03\xa2aa\x02\xa1b\x01"
    )
    # Code-point order, which is UTF-8 byte order: U+FF61 < U+1F600.
    packed = canonical.pack({"\U0001f600": 1, "\uff61": 2, "z": 3})
    assert list(msgpack.unpackb(packed)) == ["z", "\uff61", "\U0001f600"]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\xcc\x80"),
        (-1, b"\xff"),
        (-33, b"\xd0\xdf"),
        (2**64 - 1, b"\xcf" + b"\xff" * 8),
        (-(2**63), b"\xd3\x80" + bytes(7)),
        (None, b"\xc0"),
        (False, b"\xc2"),
        (True, b"\xc3"),
        ("", b"\xa0"),
        (b"", b"\xc4\x00"),  # bytes are msgpack bin, never str
        ((1, 2), b"\x92\x01\x02"),  # a tuple is a list
        ({}, b"\x80"),
    ],
)
def test_shortest_forms(value, encoded):
    assert canonical.pack(value) == encoded


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1.5, "unsupported type float"),
        ({1, 2}, "unsupported type set"),
        (bytearray(b"x"), "unsupported type bytearray"),
        (object(), "unsupported type object"),
        ({1: "a"}, "map keys must be strings"),
        ({b"k": "a"}, "map keys must be strings"),
        ({"a": {2: 0}}, "map keys must be strings"),
        (2**64, "integer out of range"),
        (-(2**63) - 1, "integer out of range"),
        ("\ud800", "not valid UTF-8"),  # lone surrogate
        ({"a": ["b\udfff"]}, "not valid UTF-8"),
        ({"\ud800": 1}, "not valid UTF-8"),
    ],
)
def test_pack_rejects(value, problem):
    with pytest.raises(FormatError, match=problem):
        canonical.pack(value)


def nested(depth):
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_limit():
    assert canonical.unpack(canonical.pack(nested(16)), max_len=MAX) == nested(16)
    with pytest.raises(FormatError, match="too deep"):
        canonical.pack(nested(18))
    # Deeper than msgpack's own stack, and deeper than ours:
    with pytest.raises(FormatError):
        canonical.unpack(b"\x91" * 18 + b"\x00", max_len=MAX)
    with pytest.raises(FormatError):
        canonical.unpack(b"\x91" * 5000 + b"\x00", max_len=MAX)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),  # never used
        (b"\x92\x01", "malformed"),  # truncated
        (b"\x01\x02", "malformed"),  # trailing bytes
        (b"\xcb" + bytes(8), "unsupported type float"),
        (b"\xca" + bytes(4), "unsupported type float"),
        (b"\xd4\x01\x00", "malformed"),  # ext beyond max_ext_len=0
        (b"\xc7\x00\x05", "canonical"),  # empty ext: never a canonical value
        (b"\x81\x01\x02", "malformed"),  # int map key
        (b"\x81\xc4\x01k\x02", "map keys must be strings"),  # bin map key
        (b"\xa2\xff\xfe", "malformed"),  # invalid UTF-8
        (b"\xa3\xed\xa0\x80", "malformed"),  # UTF-8 of a lone surrogate
        (b"\xcc\x01", "not in canonical form"),  # long-form int
        (b"\xd9\x01a", "not in canonical form"),  # str8 for a fixstr
        (b"\xdc\x00\x01\x00", "not in canonical form"),  # array16
        (b"\x82\xa1b\x01\xa1a\x02", "not in canonical form"),  # unsorted
        (b"\x82\xa1a\x01\xa1a\x02", "not in canonical form"),  # duplicate key
    ],
)
def test_unpack_rejects(data, problem):
    with pytest.raises(FormatError, match=problem):
        canonical.unpack(data, max_len=MAX)


def test_unpack_size_limits():
    data = canonical.pack(b"x" * 100)
    assert canonical.unpack(data, max_len=len(data)) == b"x" * 100
    with pytest.raises(FormatError, match="exceeds"):
        canonical.unpack(data, max_len=len(data) - 1)
    items = canonical.pack(list(range(10)))
    assert canonical.unpack(items, max_len=MAX, max_items=10) == list(range(10))
    with pytest.raises(FormatError, match="malformed"):
        canonical.unpack(items, max_len=MAX, max_items=9)
    mapping = canonical.pack({str(i): i for i in range(10)})
    with pytest.raises(FormatError, match="malformed"):
        canonical.unpack(mapping, max_len=MAX, max_items=9)


def test_declared_length_beyond_the_input_is_not_allocated():
    # A bin32 header claiming 4 GiB in a 10-byte input fails fast.
    with pytest.raises(FormatError):
        canonical.unpack(b"\xc6\xff\xff\xff\xff" + bytes(5), max_len=MAX)
    with pytest.raises(FormatError):
        canonical.unpack(b"\xdd\xff\xff\xff\xff" + bytes(5), max_len=MAX)
