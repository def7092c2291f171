"""mDNS records are hostile input: what a TXT record may carry."""

from __future__ import annotations

from libp2p.peer.id import ID

from p2pshare.node.lan import MAX_ADDRS, lan_addrs, parse_record

A = "12D3KooWJxyw6Aa56nug9ziqWFWv2EBqdSMHerJJ4bAK1wbcaSeb"
B = "12D3KooWNYoeKPswdtd5KYUAuXemmh5Ut6Uje4st45mb4TviEArF"
ME = ID.from_base58(B)


def rec(*addrs: str) -> dict[bytes, bytes | None]:
    return {
        (b"dnsaddr" if i == 0 else f"dnsaddr{i + 1}".encode()): a.encode()
        for i, a in enumerate(addrs)
    }


def test_a_valid_record_names_one_peer_and_its_addresses() -> None:
    info = parse_record(
        rec(f"/ip4/10.0.0.5/tcp/4001/p2p/{A}", f"/ip6/fe80::1/tcp/4001/p2p/{A}"), ME
    )
    assert info is not None
    assert str(info.peer_id) == A
    assert [str(a) for a in info.addrs] == [
        "/ip4/10.0.0.5/tcp/4001",
        "/ip6/fe80::1/tcp/4001",
    ]


def test_records_that_are_refused() -> None:
    bad: list[dict[bytes, bytes | None]] = [
        rec(f"/ip4/10.0.0.5/tcp/4001/p2p/{A}", f"/ip4/10.0.0.6/tcp/1/p2p/{B}"),  # mixed
        rec(f"/ip4/10.0.0.5/tcp/4001/p2p/{B}"),  # our own id
        rec("/ip4/10.0.0.5/tcp/4001"),  # no peer id
        rec(f"/ip4/10.0.0.5/udp/4001/p2p/{A}"),  # not TCP
        rec(f"/dns4/evil.example/tcp/1/p2p/{A}"),  # a name to resolve: no
        rec(f"/ip4/10.0.0.5/tcp/1/p2p-circuit/p2p/{A}"),
        {b"dnsaddr": b"\xff\xfe"},  # not text
        {b"dnsaddr": b"garbage"},
        {b"id": A.encode()},  # only dnsaddr keys count
        {b"dnsaddr": None},
        {},
    ]
    for record in bad:
        assert parse_record(record, ME) is None, record


def test_at_most_max_addrs_are_kept() -> None:
    many = rec(*(f"/ip4/10.0.0.{i}/tcp/4001/p2p/{A}" for i in range(1, 100)))
    info = parse_record(many, ME)
    assert info is not None and len(info.addrs) == MAX_ADDRS


def test_what_we_announce() -> None:
    own = [
        f"/ip4/192.168.1.5/tcp/4001/p2p/{B}",
        f"/ip4/127.0.0.1/tcp/4001/p2p/{B}",
        f"/ip4/0.0.0.0/tcp/4001/p2p/{B}",
        f"/ip6/::1/tcp/4001/p2p/{B}",
    ]
    assert lan_addrs(own) == [own[0]]
    # loopback only when nothing else listens (a node bound to 127.0.0.1)
    assert lan_addrs(own[1:]) == [own[1], own[3]]
    assert lan_addrs([]) == []
