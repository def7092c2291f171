"""Which addresses of a peer are dialled, in which order (compat D1)."""

from __future__ import annotations

from multiaddr import Multiaddr

from p2pshare.node.compat import rank_addrs
from p2pshare.node.compat.dialer import MAX_DIAL_ADDRS


def ranked(*texts: str) -> list[str]:
    return [str(a) for a in rank_addrs([Multiaddr(t) for t in texts])]


def test_public_then_private_then_loopback_in_the_peers_order() -> None:
    assert ranked(
        "/ip4/127.0.0.1/tcp/1",
        "/ip4/10.1.0.2/tcp/2",
        "/ip4/11.0.0.1/tcp/3",
        "/ip4/192.168.1.9/tcp/4",
        "/dns4/seed.example.org/tcp/5",
    ) == [
        "/ip4/11.0.0.1/tcp/3",
        "/dns4/seed.example.org/tcp/5",
        "/ip4/10.1.0.2/tcp/2",
        "/ip4/192.168.1.9/tcp/4",
        "/ip4/127.0.0.1/tcp/1",
    ]


def test_what_is_never_dialled() -> None:
    assert (
        ranked(
            "/ip4/0.0.0.0/tcp/1",
            "/ip6/::/tcp/1",
            "/ip4/224.0.0.251/tcp/1",
            "/ip4/11.0.0.1/udp/1",
            "/ip4/11.0.0.1/tcp/1/ws",  # TCP is our only transport
            "/ip4/11.0.0.1/tcp/1/p2p/12D3KooWJxyw6Aa56nug9ziqWFWv2EBqdSMHerJJ4bAK1wbcaSeb"
            "/p2p-circuit",
        )
        == []
    )


def test_duplicates_once_and_at_most_max() -> None:
    many = [f"/ip4/10.0.0.{i}/tcp/1" for i in range(1, 20)]
    assert ranked(many[0], many[0]) == [many[0]]
    assert len(ranked(*many)) == MAX_DIAL_ADDRS
