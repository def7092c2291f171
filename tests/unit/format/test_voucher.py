"""Storage vouchers: signing, wire form, text codes, every refusal, known answers."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import runpy
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied, FormatError
from p2pshare.format import canonical
from p2pshare.format.voucher import (
    CODE_PREFIX,
    ED25519_PEER_PREFIX,
    MAX_ADDR_CHARS,
    MAX_ADDRS,
    MAX_CODE_CHARS,
    MAX_QUOTA,
    MAX_VOUCHER_BYTES,
    SERIAL_BYTES,
    VOUCHER_TAG,
    Voucher,
    ed25519_public_from_peer_id,
    issue_voucher,
    voucher_message,
)

ROOT_DIR = Path(__file__).resolve().parents[3]
VECTOR_FILE = ROOT_DIR / "tests" / "data" / "vectors" / "voucher-v1.json"
VECTORS = json.loads(VECTOR_FILE.read_text())
GENERATOR = ROOT_DIR / "scripts" / "gen-vectors"

KEY = SigningKey(bytes(range(32)))
OTHER_KEY = SigningKey(bytes(range(1, 33)))
SEED = ED25519_PEER_PREFIX + bytes(KEY.verify_key)
OTHER_SEED = ED25519_PEER_PREFIX + bytes(OTHER_KEY.verify_key)
ADDRS = ("/ip4/203.0.113.7/tcp/4001", "/dns4/seed.example.org/udp/4001/quic-v1")
QUOTA = 10 * 2**30
EXPIRES = 1_800_000_000
SERIAL = bytes(range(200, 216))
NOW = 1_700_000_000.0
MAX_EXPIRES = 2**63 - 1


def voucher(**changes: Any) -> Voucher:
    v = issue_voucher(KEY, SEED, ADDRS, QUOTA, EXPIRES, SERIAL)
    return dataclasses.replace(v, **changes)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- peer ids --------------------------------------------------------------------
def test_public_key_from_peer_id() -> None:
    assert ed25519_public_from_peer_id(SEED) == bytes(KEY.verify_key)


def test_matches_libp2p_peer_ids() -> None:
    libp2p_ed25519 = pytest.importorskip("libp2p.crypto.ed25519")
    from libp2p.peer.id import ID

    pair = libp2p_ed25519.create_new_key_pair(bytes(range(32)))
    peer = ID.from_pubkey(pair.public_key).to_bytes()
    assert peer == SEED
    assert ed25519_public_from_peer_id(peer) == pair.public_key.to_bytes()
    assert bytes(pair.private_key.impl.verify_key) == bytes(KEY.verify_key)


@pytest.mark.parametrize(
    "peer",
    [
        b"",
        ED25519_PEER_PREFIX,  # no key
        SEED[:-1],  # short key
        SEED + b"\x00",  # long key
        b"\x01" + SEED[1:],  # another multihash code
        SEED[:1] + b"\x25" + SEED[2:],  # another digest length
        SEED[:3] + b"\x00" + SEED[4:],  # key type RSA
        SEED[:3] + b"\x02" + SEED[4:],  # key type secp256k1
        SEED[:3] + b"\x03" + SEED[4:],  # key type ECDSA
        SEED[:5] + b"\x21" + SEED[6:],  # another key length
        b"\x12\x20" + bytes(32),  # sha2-256 multihash (RSA-style peer id)
        bytes(38),
    ],
    ids=lambda p: p.hex()[:16] or "empty",
)
def test_other_peer_id_shapes_are_refused(peer: bytes) -> None:
    with pytest.raises(FormatError, match="not an Ed25519 libp2p peer id"):
        ed25519_public_from_peer_id(peer)
    with pytest.raises(FormatError):
        issue_voucher(KEY, peer, ADDRS, QUOTA, EXPIRES, SERIAL)
    with pytest.raises(FormatError):
        voucher(seed=peer)


def test_peer_id_must_be_bytes() -> None:
    with pytest.raises(FormatError, match="must be bytes"):
        ed25519_public_from_peer_id(bytearray(SEED))  # type: ignore[arg-type]


# -- issuing and round trips ---------------------------------------------------------
def test_issue_and_verify() -> None:
    v = issue_voucher(KEY, SEED, list(ADDRS), QUOTA, EXPIRES, SERIAL)
    assert (v.seed, v.addrs, v.quota, v.expires, v.serial) == (
        SEED,
        ADDRS,
        QUOTA,
        EXPIRES,
        SERIAL,
    )
    assert len(v.signature) == 64
    v.verify(seed=SEED, now=NOW)
    expected = VOUCHER_TAG + len(SEED).to_bytes(2, "big") + SEED + b"\x02"
    for addr in ADDRS:
        expected += len(addr).to_bytes(2, "big") + addr.encode()
    expected += QUOTA.to_bytes(8, "big") + EXPIRES.to_bytes(8, "big") + SERIAL
    assert v.message() == expected


def test_random_serials() -> None:
    a = issue_voucher(KEY, SEED, (), QUOTA, EXPIRES)
    b = issue_voucher(KEY, SEED, (), QUOTA, EXPIRES)
    assert len(a.serial) == SERIAL_BYTES
    assert a.serial != b.serial
    a.verify(seed=SEED, now=NOW)


def test_issuing_with_another_key_is_a_local_error() -> None:
    with pytest.raises(ValueError, match="does not match"):
        issue_voucher(OTHER_KEY, SEED, ADDRS, QUOTA, EXPIRES, SERIAL)


def test_addrs_must_not_be_one_str() -> None:
    with pytest.raises(FormatError, match="not one str"):
        issue_voucher(KEY, SEED, "/ip4/1.2.3.4/tcp/1", QUOTA, EXPIRES, SERIAL)


LONG_ADDR = "/dns4/" + "a" * (MAX_ADDR_CHARS - 6)


@pytest.mark.parametrize(
    ("addrs", "quota", "expires"),
    [
        ((), 1, 0),
        (ADDRS, QUOTA, EXPIRES),
        (("/x",) * MAX_ADDRS, MAX_QUOTA, MAX_EXPIRES),
        ((LONG_ADDR,) * 3, MAX_QUOTA, MAX_EXPIRES),
    ],
)
def test_round_trip(addrs: tuple[str, ...], quota: int, expires: int) -> None:
    v = issue_voucher(KEY, SEED, addrs, quota, expires, SERIAL)
    data = v.to_bytes()
    assert len(data) <= MAX_VOUCHER_BYTES
    assert Voucher.from_bytes(data) == v
    assert Voucher.from_bytes(bytearray(data)) == v  # type: ignore[arg-type]
    assert Voucher.from_bytes(memoryview(data)) == v  # type: ignore[arg-type]
    assert canonical.unpack(data, max_len=MAX_VOUCHER_BYTES) == {
        "v": 1,
        "seed": SEED,
        "addrs": list(addrs),
        "quota": quota,
        "exp": expires,
        "serial": SERIAL,
        "sig": v.signature,
    }
    code = v.to_code()
    assert len(code) <= MAX_CODE_CHARS
    assert Voucher.from_code(code) == v
    Voucher.from_code(code).verify(seed=SEED, now=expires - 1)


def test_the_whole_voucher_is_bounded() -> None:
    # Four maximal addresses do not fit with everything else: the voucher as
    # a whole is bounded, and the error says what to do.
    with pytest.raises(FormatError, match="fewer or shorter addrs"):
        issue_voucher(KEY, SEED, (LONG_ADDR,) * 4, MAX_QUOTA, MAX_EXPIRES, SERIAL)
    fits = []
    refusals: set[str] = set()
    for n in range(1, MAX_ADDR_CHARS + 1):
        addrs = (LONG_ADDR,) * 3 + ("/" + "y" * (n - 1),)
        try:
            v = issue_voucher(KEY, SEED, addrs, MAX_QUOTA, MAX_EXPIRES, SERIAL)
        except FormatError as exc:
            refusals.add(str(exc).split(" bytes, ")[1])
            continue
        fits.append(n)
        assert len(v.to_bytes()) <= MAX_VOUCHER_BYTES
        assert Voucher.from_code(v.to_code()) == v
        assert len(v.to_code()) <= MAX_CODE_CHARS
    assert fits == list(range(1, len(fits) + 1))  # a prefix: a clean boundary
    assert refusals == {"more than 1024 (use fewer or shorter addrs)"}
    assert 1 < len(fits) < MAX_ADDR_CHARS
    largest = issue_voucher(
        KEY,
        SEED,
        (LONG_ADDR,) * 3 + ("/" + "y" * (len(fits) - 1),),
        MAX_QUOTA,
        MAX_EXPIRES,
        SERIAL,
    )
    assert len(largest.to_bytes()) in (MAX_VOUCHER_BYTES - 1, MAX_VOUCHER_BYTES)


def test_code_form() -> None:
    v = voucher()
    code = v.to_code()
    assert code.startswith(CODE_PREFIX)
    body = code[len(CODE_PREFIX) :]
    assert set(body) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert "=" not in code and " " not in code and code == code.strip()
    padded = body.upper() + "=" * (-len(body) % 8)
    assert base64.b32decode(padded) == v.to_bytes()


@pytest.mark.parametrize(
    "wrap",
    [
        str.upper,
        lambda c: c.capitalize(),
        lambda c: f"  {c}\n",
        lambda c: f"\t{c.upper()}\r\n",
        lambda c: c[:6].upper() + c[6:],
        lambda c: "".join(ch.upper() if i % 2 else ch for i, ch in enumerate(c)),
    ],
)
def test_codes_survive_case_and_whitespace(wrap: Any) -> None:
    v = voucher()
    assert Voucher.from_code(wrap(v.to_code())) == v


def test_repr_hides_the_signature() -> None:
    v = voucher(signature=b"\xab" * 64)
    text = repr(v)
    assert "abab" not in text
    assert "signature" not in text
    assert v.to_code()[10:30] not in text
    assert str(QUOTA) in text and str(EXPIRES) in text


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        voucher().quota = 1  # type: ignore[misc]


# -- verify: refusals --------------------------------------------------------------
def test_expired() -> None:
    v = voucher()
    v.verify(seed=SEED, now=EXPIRES - 0.5)
    with pytest.raises(AccessDenied, match="voucher: expired"):
        v.verify(seed=SEED, now=EXPIRES)
    with pytest.raises(AccessDenied, match="voucher: expired"):
        v.verify(seed=SEED, now=EXPIRES + 10**6)
    never = issue_voucher(KEY, SEED, (), 1, 0, SERIAL)
    with pytest.raises(AccessDenied, match="voucher: expired"):
        never.verify(seed=SEED, now=0)


def test_voucher_for_seed_a_at_seed_b() -> None:
    for_a = voucher()
    with pytest.raises(AccessDenied, match="voucher: issued by another seed"):
        for_a.verify(seed=OTHER_SEED, now=NOW)
    # Rewriting the seed field to B does not help: B's key never signed it.
    as_b = dataclasses.replace(for_a, seed=OTHER_SEED)
    with pytest.raises(AccessDenied, match="voucher: bad signature"):
        as_b.verify(seed=OTHER_SEED, now=NOW)
    # Neither does an expired one: the seed is checked first.
    with pytest.raises(AccessDenied, match="issued by another seed"):
        for_a.verify(seed=OTHER_SEED, now=EXPIRES + 1)


def test_forged_with_another_key() -> None:
    # Signed by B's key but naming A: A's key does not verify it.
    message = voucher_message(SEED, ADDRS, QUOTA, EXPIRES, SERIAL)
    forged = voucher(signature=bytes(OTHER_KEY.sign(message).signature))
    with pytest.raises(AccessDenied, match="voucher: bad signature"):
        forged.verify(seed=SEED, now=NOW)


def test_forged_expired_voucher_is_reported_as_forged() -> None:
    message = voucher_message(SEED, ADDRS, QUOTA, 1, SERIAL)
    forged = voucher(expires=1, signature=bytes(OTHER_KEY.sign(message).signature))
    with pytest.raises(AccessDenied, match="voucher: bad signature"):
        forged.verify(seed=SEED, now=NOW)


def _must_not_verify(changes: dict[str, Any], *, seed: bytes = SEED) -> None:
    try:
        altered = voucher(**changes)
    except FormatError:
        return  # no longer a voucher at all: fine
    with pytest.raises(AccessDenied, match="voucher: bad signature"):
        altered.verify(seed=seed, now=NOW)


def test_altered_seed_fails() -> None:
    for bit in range(len(SEED) * 8):  # prefix bits: malformed; key bits: forged
        altered = _flip(SEED, bit)
        _must_not_verify({"seed": altered}, seed=altered)


@pytest.mark.parametrize(("index", "bit"), [(0, 8), (0, 45), (1, 0), (1, 200)])
def test_altered_addr_fails(index: int, bit: int) -> None:
    raw = ADDRS[index].encode()
    altered = list(ADDRS)
    altered[index] = _flip(raw, bit).decode("latin-1")
    _must_not_verify({"addrs": tuple(altered)})


@pytest.mark.parametrize(
    "addrs",
    [
        (),
        ADDRS[:1],
        ADDRS[::-1],
        (*ADDRS, "/ip4/1.2.3.4/tcp/1"),
        (ADDRS[0] + ADDRS[1],),  # fields moved across a boundary
        (ADDRS[0][:-1], ADDRS[0][-1] + ADDRS[1]),
    ],
)
def test_added_dropped_or_moved_addrs_fail(addrs: tuple[str, ...]) -> None:
    _must_not_verify({"addrs": addrs})


@pytest.mark.parametrize("bit", [0, 1, 20, 33, 40, 61])
def test_altered_quota_fails(bit: int) -> None:
    _must_not_verify({"quota": QUOTA ^ (1 << bit)})


@pytest.mark.parametrize("bit", [0, 1, 20, 40, 62])
def test_altered_expires_fails(bit: int) -> None:
    _must_not_verify({"expires": EXPIRES ^ (1 << bit)})


def test_altered_serial_fails() -> None:
    for bit in range(SERIAL_BYTES * 8):
        _must_not_verify({"serial": _flip(SERIAL, bit)})


def test_altered_signature_fails() -> None:
    signature = voucher().signature
    for bit in range(len(signature) * 8):
        _must_not_verify({"signature": _flip(signature, bit)})


def test_altered_bytes_on_the_wire_never_verify() -> None:
    data = voucher().to_bytes()
    verified = 0
    for bit in range(len(data) * 8):
        try:
            v = Voucher.from_bytes(_flip(data, bit))
        except FormatError:
            continue
        with pytest.raises(AccessDenied):
            v.verify(seed=v.seed, now=NOW)
        verified += 1
    assert verified > 100  # most flips decode: the signature catches them


def test_altered_codes_never_verify() -> None:
    code = voucher().to_code()
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    for pos in range(len(CODE_PREFIX), len(code), 3):
        swapped = alphabet[(alphabet.index(code[pos]) + 1) % 32]
        try:
            v = Voucher.from_code(code[:pos] + swapped + code[pos + 1 :])
        except FormatError:
            continue
        with pytest.raises(AccessDenied):
            v.verify(seed=v.seed, now=NOW)


# -- building invalid vouchers ---------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"seed": b""},
        {"seed": b"s" * 257},
        {"seed": bytearray(SEED)},
        {"seed": SEED.hex()},
        {"addrs": list(ADDRS)},
        {"addrs": ("/x",) * (MAX_ADDRS + 1)},
        {"addrs": ("",)},
        {"addrs": ("/" + "x" * MAX_ADDR_CHARS,)},
        {"addrs": ("/a b",)},
        {"addrs": ("/a\n/b",)},
        {"addrs": ("/a\t",)},
        {"addrs": ("/é",)},
        {"addrs": ("/a\x00",)},
        {"addrs": (b"/a",)},
        {"addrs": "/a"},
        {"quota": 0},
        {"quota": -1},
        {"quota": MAX_QUOTA + 1},
        {"quota": True},
        {"quota": 1.0},
        {"expires": -1},
        {"expires": MAX_EXPIRES + 1},
        {"expires": False},
        {"expires": float(EXPIRES)},
        {"serial": b"s" * 15},
        {"serial": b"s" * 17},
        {"serial": None},
        {"signature": b"s" * 63},
        {"signature": b"s" * 65},
        {"signature": None},
    ],
    ids=lambda c: repr(c)[:60],
)
def test_invalid_fields_cannot_be_built(changes: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        voucher(**changes)
    args: dict[str, Any] = {
        "seed": SEED,
        "addrs": ADDRS,
        "quota": QUOTA,
        "expires": EXPIRES,
        "serial": SERIAL,
    }
    if "signature" in changes:
        return
    args |= changes
    with pytest.raises(FormatError):
        voucher_message(**args)
    if changes not in ({"serial": None}, {"addrs": list(ADDRS)}):
        with pytest.raises(FormatError):
            issue_voucher(KEY, **args)


def test_addr_bounds_are_inclusive() -> None:
    v = issue_voucher(KEY, SEED, ("/" + "x" * (MAX_ADDR_CHARS - 1),), 1, 1, SERIAL)
    assert Voucher.from_bytes(v.to_bytes()) == v
    printable = "".join(chr(c) for c in range(0x21, 0x7F))
    assert Voucher.from_code(voucher(addrs=(printable,)).to_code()).addrs == (
        printable,
    )


# -- strict decoding ---------------------------------------------------------------
_DROP = object()


def _wire(**changes: Any) -> dict[str, Any]:
    v = voucher()
    body: dict[str, Any] = {
        "v": 1,
        "seed": v.seed,
        "addrs": list(v.addrs),
        "quota": v.quota,
        "exp": v.expires,
        "serial": v.serial,
        "sig": v.signature,
    }
    for key, value in changes.items():
        if value is _DROP:
            del body[key]
        else:
            body[key] = value
    return body


def test_wire_helper_is_the_real_encoding() -> None:
    assert canonical.pack(_wire()) == voucher().to_bytes()


@pytest.mark.parametrize(
    "body",
    [
        _wire(v=2),
        _wire(v=0),
        _wire(v=True),
        _wire(v="1"),
        *(_wire(**{key: _DROP}) for key in _wire()),
        _wire(extra=1),
        _wire(seed=SEED[:-1]),
        _wire(seed=OTHER_SEED[:3] + b"\x00" + OTHER_SEED[4:]),
        _wire(seed=SEED.hex()),
        _wire(addrs="\n".join(ADDRS)),
        _wire(addrs=None),
        _wire(addrs=[b"/a"]),
        _wire(addrs=["/a", 1]),
        _wire(addrs=[["/a"]]),
        _wire(addrs={"a": "/a"}),
        _wire(addrs=["/x"] * (MAX_ADDRS + 1)),
        _wire(addrs=["/x"] * 9),  # more items than the decoder takes
        _wire(addrs=[""]),
        _wire(addrs=["/a b"]),
        _wire(addrs=["/é"]),
        _wire(quota=0),
        _wire(quota=-5),
        _wire(quota=MAX_QUOTA + 1),
        _wire(quota=2**64 - 1),
        _wire(quota=True),
        _wire(exp=-1),
        _wire(exp=2**63),
        _wire(exp=None),
        _wire(exp=[1]),
        _wire(serial=b"s" * 15),
        _wire(serial="s" * 16),
        _wire(sig=b"s" * 63),
        _wire(sig=b"s" * 65),
        _wire(sig=None),
        [1, 2],
        "voucher",
        None,
        7,
        {},
    ],
    ids=lambda b: repr(b)[:50],
)
def test_from_bytes_refuses_bad_bodies(body: object) -> None:
    with pytest.raises(FormatError):
        Voucher.from_bytes(canonical.pack(body))


def test_from_bytes_refuses_non_canonical_and_malformed() -> None:
    body = _wire()
    unsorted = msgpack.packb(dict(reversed(list(body.items()))), use_bin_type=True)
    with pytest.raises(FormatError, match="canonical"):
        Voucher.from_bytes(unsorted)
    data = voucher().to_bytes()
    with pytest.raises(FormatError):
        Voucher.from_bytes(data + b"\x00")  # trailing byte
    with pytest.raises(FormatError):
        Voucher.from_bytes(data[:-1])  # truncated
    with pytest.raises(FormatError):
        Voucher.from_bytes(b"")
    with pytest.raises(FormatError):
        Voucher.from_bytes("text")  # type: ignore[arg-type]
    with pytest.raises(FormatError):
        Voucher.from_bytes(None)  # type: ignore[arg-type]


def test_size_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an oversized voucher")

    monkeypatch.setattr(msgpack, "unpackb", boom)
    with pytest.raises(FormatError, match="exceeds"):
        Voucher.from_bytes(bytes(MAX_VOUCHER_BYTES + 1))


# -- strict codes ---------------------------------------------------------------------
def _code_of(data: bytes) -> str:
    return CODE_PREFIX + base64.b32encode(data).decode().rstrip("=").lower()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a p2pshare voucher code"),
        ("   ", "not a p2pshare voucher code"),
        ("p2pshare://abc", "not a p2pshare voucher code"),
        ("p2pv2-aaaa", "not a p2pshare voucher code"),
        ("p2pv1", "not a p2pshare voucher code"),
        ("p2pv1_aaaa", "not a p2pshare voucher code"),
        ("xp2pv1-aaaa", "not a p2pshare voucher code"),
        ("p2pv1-", "empty"),
        ("p2pv1-abc1", "outside base32"),
        ("p2pv1-abc8", "outside base32"),
        ("p2pv1-ab=c", "outside base32"),
        ("p2pv1-abcd====", "outside base32"),
        ("p2pv1-ab cd", "outside base32"),
        ("p2pv1-ab-cd", "outside base32"),
        ("p2pv1-ab\ncd", "outside base32"),
        ("p2pv1-\u212a\u212a", "not a p2pshare voucher code"),  # KELVIN SIGN
        ("\u0440" + "2pv1-aaaa", "not a p2pshare voucher code"),  # Cyrillic
        ("p2pv1-a", "truncated or damaged"),  # impossible base32 length
        ("p2pv1-abc", "truncated or damaged"),
        ("p2pv1-abcdef", "truncated or damaged"),
        ("p2pv1-ab", "truncated or damaged"),  # non-zero trailing bits
        ("p2pv1-" + "a" * (MAX_CODE_CHARS - 5), "too long"),
    ],
)
def test_bad_codes(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Voucher.from_code(text)


def test_code_length_is_bounded_after_stripping() -> None:
    code = voucher().to_code()
    assert Voucher.from_code(" " * 5000 + code + "\n" * 5000) == voucher()
    with pytest.raises(FormatError, match="too long"):
        Voucher.from_code(CODE_PREFIX + "a" * 10**6)


def test_non_canonical_trailing_bits_are_refused() -> None:
    code = voucher().to_code()
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    data_bits = len(voucher().to_bytes()) * 8
    spare = (len(code) - len(CODE_PREFIX)) * 5 - data_bits
    assert spare > 0  # this voucher's length leaves spare bits to set
    last = alphabet[alphabet.index(code[-1]) | 1]
    with pytest.raises(FormatError, match="truncated or damaged"):
        Voucher.from_code(code[:-1] + last)


def test_codes_of_bad_bytes_are_format_errors() -> None:
    with pytest.raises(FormatError, match="not a map"):
        Voucher.from_code(_code_of(canonical.pack([1])))
    with pytest.raises(FormatError):
        Voucher.from_code(_code_of(b"\xc1"))
    with pytest.raises(FormatError, match="exceeds"):
        Voucher.from_code(_code_of(bytes(MAX_VOUCHER_BYTES + 1)))
    with pytest.raises(FormatError, match="expected a str"):
        Voucher.from_code(voucher().to_code().encode())  # type: ignore[arg-type]


# -- hypothesis ---------------------------------------------------------------------
@settings(max_examples=500)
@given(st.binary(max_size=1100))
def test_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        Voucher.from_bytes(data)


@settings(max_examples=500)
@given(st.text(max_size=200) | st.text("p2pv1-abcdefghijklmnopqrstuvwxyz234567 \n"))
def test_arbitrary_text_raises_only_format_error(text: str) -> None:
    with contextlib.suppress(FormatError):
        Voucher.from_code(text)
    with contextlib.suppress(FormatError):
        Voucher.from_code(CODE_PREFIX + text)


@settings(max_examples=300)
@given(st.binary(max_size=MAX_VOUCHER_BYTES + 8))
def test_codes_of_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        Voucher.from_code(_code_of(data))


_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=300)
    | st.text(max_size=40)
    | st.lists(st.text(max_size=20) | st.binary(max_size=5), max_size=6)
    | st.sampled_from([SEED, SERIAL, b"s" * 64, 1])
)


@settings(max_examples=500)
@given(
    st.dictionaries(
        st.sampled_from(["v", "seed", "addrs", "quota", "exp", "serial", "sig", "x"]),
        _values,
        max_size=8,
    )
)
def test_arbitrary_maps_raise_only_format_error(body: dict[str, Any]) -> None:
    with contextlib.suppress(FormatError):
        Voucher.from_bytes(canonical.pack(body))


addr = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60
)


@settings(max_examples=200)
@given(
    addrs=st.lists(addr, max_size=MAX_ADDRS).map(tuple),
    quota=st.integers(1, MAX_QUOTA),
    expires=st.integers(0, MAX_EXPIRES),
    serial=st.binary(min_size=16, max_size=16),
    upper=st.booleans(),
)
def test_round_trip_property(
    addrs: tuple[str, ...], quota: int, expires: int, serial: bytes, upper: bool
) -> None:
    v = issue_voucher(KEY, SEED, addrs, quota, expires, serial)
    assert Voucher.from_bytes(v.to_bytes()) == v
    code = v.to_code()
    assert Voucher.from_code(code.upper() if upper else code) == v
    if expires > 0:
        v.verify(seed=SEED, now=expires - 1)


# -- known answers ---------------------------------------------------------------
def test_vectors_inputs() -> None:
    key = SigningKey(bytes.fromhex(VECTORS["signing_key_seed"]))
    assert bytes(key.verify_key).hex() == VECTORS["public_key"]
    assert VECTORS["seed"] == (ED25519_PEER_PREFIX + bytes(key.verify_key)).hex()
    assert VECTORS["voucher_version"] == 1
    assert len(VECTORS["vouchers"]) == 3


@pytest.mark.parametrize("vec", VECTORS["vouchers"], ids=lambda v: v["label"])
def test_vectors(vec: dict[str, Any]) -> None:
    key = SigningKey(bytes.fromhex(VECTORS["signing_key_seed"]))
    seed = bytes.fromhex(VECTORS["seed"])
    serial = bytes.fromhex(vec["serial"])
    v = issue_voucher(key, seed, vec["addrs"], vec["quota"], vec["expires"], serial)
    assert v.message().hex() == vec["message"]
    assert v.signature.hex() == vec["signature"]
    assert v.to_bytes().hex() == vec["voucher"]
    assert v.to_code() == vec["code"]
    assert Voucher.from_bytes(bytes.fromhex(vec["voucher"])) == v
    decoded = Voucher.from_code(vec["code"])
    assert decoded == v
    if vec["expires"] > 0:
        decoded.verify(seed=seed, now=vec["expires"] - 1)
    with pytest.raises(AccessDenied, match="expired"):
        decoded.verify(seed=seed, now=vec["expires"])


def test_generator_reproduces_the_vectors() -> None:
    module = runpy.run_path(str(GENERATOR), run_name="gen_vectors")
    assert module["render"](module["build_vouchers"]()) == VECTOR_FILE.read_text()
