"""Which addresses a node puts in the links it prints."""

from __future__ import annotations

from p2pshare.node.link_hints import MAX_LINK_PEERS, link_hints

P = "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


def test_never_a_wildcard_and_loopback_only_as_a_last_resort() -> None:
    lan, lo = f"/ip4/192.168.1.7/tcp/4001{P}", f"/ip4/127.0.0.1/tcp/4001{P}"
    wild = f"/ip4/0.0.0.0/tcp/4001{P}"
    assert link_hints([wild, lo, lan]) == (lan,)
    assert link_hints([wild, lo, f"/ip6/::1/tcp/4001{P}"]) == (
        lo,
        f"/ip6/::1/tcp/4001{P}",
    )
    assert link_hints([wild, f"/ip6/::/tcp/1{P}"]) == ()


def test_at_most_eight_with_seeds_last_and_one_of_ours() -> None:
    own = [f"/ip4/10.0.0.{i}/tcp/4001{P}" for i in range(1, 11)]
    seeds = [f"/ip4/203.0.113.{i}/tcp/4001{P}" for i in range(1, 11)]
    hints = link_hints(own, seeds)
    assert len(hints) == MAX_LINK_PEERS == 8
    assert hints[0] == own[0] and hints[1:] == tuple(seeds[:7])
    assert link_hints(own[:2], seeds[:2]) == (*own[:2], *seeds[:2])
    assert link_hints([], seeds) == tuple(seeds[:8])


def test_public_addresses_come_first_then_private_ones() -> None:
    """A node behind a NAT with a forwarded port: the address the seeds
    dialled back goes first, the LAN address after it (it works on the LAN)."""
    lan, lo = f"/ip4/10.1.0.2/tcp/4001{P}", f"/ip4/127.0.0.1/tcp/4001{P}"
    public = f"/ip4/11.0.0.1/tcp/4001{P}"
    v6 = f"/ip6/2001:db8::1/tcp/4001{P}"  # documentation range: not global
    dns = f"/dns4/seed.example.org/tcp/4001{P}"
    assert link_hints([lo, lan, public]) == (public, lan)
    assert link_hints([lan, v6, dns, public]) == (dns, public, lan, v6)
