"""Link tickets and share policies (format/ticket.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from p2pshare.errors import AccessDenied, FormatError, LinkError
from p2pshare.format import canonical, parse_link
from p2pshare.format.links import ShareLink
from p2pshare.format.ticket import (
    TICKET_BYTES,
    Policy,
    Ticket,
    check_access,
)
from p2pshare.format.voucher import ED25519_PEER_PREFIX

VECTORS = Path(__file__).parents[2] / "data" / "vectors" / "ticket-v1.json"
KEY = SigningKey(bytes(range(32)))
OWNER = ED25519_PEER_PREFIX + bytes(KEY.verify_key)
ROOT = b"r" * 32
SEED = ED25519_PEER_PREFIX + b"s" * 32


def test_vectors() -> None:
    v = json.loads(VECTORS.read_text())
    key = SigningKey(bytes.fromhex(v["owner_seed"]))
    owner, root = bytes.fromhex(v["owner"]), bytes.fromhex(v["root"])
    assert owner == ED25519_PEER_PREFIX + bytes(key.verify_key)
    for t in v["tickets"]:
        made = Ticket.make(key, root, bytes.fromhex(t["id"]), t["expires"])
        assert made.to_bytes().hex() == t["ticket"]
        assert made.to_text() == t["text"]
        assert Ticket.from_text(t["text"]) == made
        made.verify(owner, root, now=1_800_000_000)
    policy = Policy.from_bytes(bytes.fromhex(v["policy"]))
    policy.verify(owner, root)
    assert policy.to_bytes().hex() == v["policy"]


def _policy(seq: int = 5, revoked: tuple[bytes, ...] = ()) -> Policy:
    return Policy.make(KEY, ROOT, OWNER, seq, [SEED], list(revoked))


def test_access_rules() -> None:
    good = Ticket.make(KEY, ROOT, b"a" * 16, 2000).to_bytes()
    forever = Ticket.make(KEY, ROOT, b"b" * 16, 0).to_bytes()
    policy = _policy(revoked=(b"c" * 16,))
    check_access(None, root=ROOT, ticket=None, grant_peer=None, now=0)
    check_access(policy, root=ROOT, ticket=good, grant_peer=None, now=1999)
    check_access(policy, root=ROOT, ticket=forever, grant_peer=None, now=10**12)
    check_access(policy, root=ROOT, ticket=None, grant_peer=SEED, now=0)
    cases = [
        (good, None, 2000, "link: expired"),
        (None, None, 0, "link: required"),
        (Ticket.make(KEY, ROOT, b"c" * 16, 0).to_bytes(), None, 0, "revoked"),
        (Ticket.make(KEY, b"x" * 32, b"a" * 16, 0).to_bytes(), None, 0, "not issued"),
        (Ticket.make(SigningKey(bytes(32)), ROOT, b"a" * 16, 0).to_bytes(), None, 0,
         "not issued"),
        (b"\x00" * 5, None, 0, "malformed"),
        (None, ED25519_PEER_PREFIX + b"z" * 32, 0, "not a seed"),
    ]  # fmt: skip
    for ticket, grant_peer, now, why in cases:
        with pytest.raises(AccessDenied, match=why):
            check_access(
                policy, root=ROOT, ticket=ticket, grant_peer=grant_peer, now=now
            )


def test_policy_verify_and_strict_decoding() -> None:
    policy = _policy()
    back = Policy.from_bytes(policy.to_bytes())
    assert back == policy
    back.verify(OWNER, ROOT)
    with pytest.raises(AccessDenied, match="owner"):
        back.verify(SEED, ROOT)
    with pytest.raises(AccessDenied, match="another share"):
        back.verify(OWNER, b"x" * 32)
    forged = Policy(ROOT, OWNER, 6, policy.seeds, policy.revoked, policy.signature)
    with pytest.raises(AccessDenied, match="bad signature"):
        forged.verify(OWNER, ROOT)
    value = canonical.unpack(policy.to_bytes(), max_len=1 << 16)
    for change in (
        {"seeds": [SEED, SEED]},
        {"revoked": [b"b" * 16, b"a" * 16]},
        {"revoked": [b"a" * 15]},
        {"seq": -1},
        {"extra": 1},
        {"v": 2},
    ):
        with pytest.raises(FormatError):
            Policy.from_bytes(canonical.pack({**value, **change}))
    with pytest.raises(FormatError, match="exceeds"):
        Policy.from_bytes(b"\x00" * 20000)


def test_a_link_carries_its_ticket_and_round_trips() -> None:
    t = Ticket.make(KEY, ROOT, b"a" * 16, 1234)
    link = ShareLink(root_id=ROOT, key=b"k" * 32, ticket=t.to_bytes())
    text = str(link)
    assert "~t1." in text and text.index("#") < text.index("~")
    back = parse_link(text)
    assert back == link and back.ticket == t.to_bytes()
    assert "t1." not in link.public() and "ticket" not in repr(link)
    with pytest.raises(LinkError, match="ticket"):
        parse_link(text + "A")
    with pytest.raises(LinkError, match="ticket"):
        parse_link(text.split("~")[0] + "~t2.AAAA")
    with pytest.raises(LinkError):
        ShareLink(root_id=ROOT, ticket=t.to_bytes())  # a ticket without a key


@given(st.binary(min_size=0, max_size=TICKET_BYTES + 2))
def test_ticket_decoding_is_total(data: bytes) -> None:
    try:
        t = Ticket.from_bytes(data)
    except FormatError:
        assert len(data) != TICKET_BYTES or int.from_bytes(data[16:24]) >= 2**63
    else:
        assert t.to_bytes() == data
