"""Password links (``format/password.py``): known answers, a wrong password
is AccessDenied, hostile parameters are refused before any Argon2id run."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pshare.errors import AccessDenied, LinkError
from p2pshare.format import ShareLink, parse_link
from p2pshare.format.password import (
    PREFIX,
    parse_wrapped,
    unwrap_key,
    wrap_key,
)

VECTORS = Path(__file__).parents[2] / "data" / "vectors" / "pwlink-v1.json"
SMALL = (1, 8192)  # fast parameters for tests
KEY = bytes(range(32))


def test_vectors() -> None:
    for v in json.loads(VECTORS.read_text())["vectors"]:
        password = bytes.fromhex(v["password_utf8_hex"])
        draws = iter([bytes.fromhex(v["salt"]), bytes.fromhex(v["nonce"])])

        def rng(n: int, d: Iterator[bytes] = draws) -> bytes:
            return next(d)

        params = (v["opslimit"], v["memlimit_kib"])
        got = wrap_key(bytes.fromhex(v["file_key"]), password, params=params, rng=rng)
        assert got == v["fragment"]
        assert unwrap_key(v["fragment"], password).hex() == v["file_key"]


def test_round_trip_and_wrong_password() -> None:
    fragment = wrap_key(KEY, b"pw", params=SMALL)
    assert fragment.startswith(PREFIX) and len(fragment) == 4 + 128
    assert unwrap_key(fragment, b"pw") == KEY
    with pytest.raises(AccessDenied, match="wrong password"):
        unwrap_key(fragment, b"pW")
    assert wrap_key(KEY, b"pw", params=SMALL) != fragment  # fresh salt, nonce


def test_in_a_link() -> None:
    fragment = wrap_key(KEY, b"pw", params=SMALL)
    link = ShareLink(root_id=bytes(32), wrapped=fragment)
    text = str(link)
    assert text.endswith("#" + fragment)
    again = parse_link(text)
    assert again == link and again.key is None
    assert fragment not in repr(again)
    with pytest.raises(LinkError):
        ShareLink(root_id=bytes(32), key=KEY, wrapped=fragment)


def _forge(ops: int, mem_kib: int) -> str:
    blob = struct.pack(">16sII", bytes(16), ops, mem_kib) + bytes(24 + 48)
    return PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")


@pytest.mark.parametrize(
    ("ops", "mem"), [(0, 8192), (11, 8192), (1, 1024), (1, 4 * 1024 * 1024)]
)
def test_hostile_parameters_refused_before_any_work(ops: int, mem: int) -> None:
    with pytest.raises(LinkError, match="out of range"):
        unwrap_key(_forge(ops, mem), b"pw")


@pytest.mark.parametrize(
    "fragment", [PREFIX, PREFIX + "!!!", PREFIX + "AAAA", _forge(1, 8192) + "A"]
)
def test_malformed_refused(fragment: str) -> None:
    with pytest.raises(LinkError):
        parse_wrapped(fragment)
    with pytest.raises(LinkError):
        parse_link(
            "p2pshare://" + ShareLink(root_id=bytes(32)).root_cid + "#" + fragment
        )
