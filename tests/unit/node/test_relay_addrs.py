"""Relay addresses: parsing a circuit address, showing a relayed peer."""

from __future__ import annotations

from multiaddr import Multiaddr

from p2pshare.node.circuits import split_circuit
from tui.widgets.network import _where

R = "12D3KooWJxyw6Aa56nug9ziqWFWv2EBqdSMHerJJ4bAK1wbcaSeb"
T = "12D3KooWNYoeKPswdtd5KYUAuXemmh5Ut6Uje4st45mb4TviEArF"


def test_a_circuit_address_names_its_relay() -> None:
    for text in (
        f"/ip4/11.0.0.10/tcp/4001/p2p/{R}/p2p-circuit",
        f"/ip4/11.0.0.10/tcp/4001/p2p/{R}/p2p-circuit/p2p/{T}",
    ):
        parts = split_circuit(Multiaddr(text))
        assert parts is not None
        relay, addr = parts
        assert str(relay) == R and str(addr) == "/ip4/11.0.0.10/tcp/4001"


def test_what_is_not_a_usable_circuit() -> None:
    for text in (
        f"/ip4/11.0.0.10/tcp/4001/p2p/{R}",  # no circuit
        f"/p2p/{R}/p2p-circuit/p2p/{T}",  # no address for the relay
    ):
        assert split_circuit(Multiaddr(text)) is None


def test_the_peers_table_says_relayed() -> None:
    assert _where("relayed via …aSeb", ["/ip4/1.2.3.4/tcp/1"]) == "relayed via …aSeb"
    assert _where("direct", ["/ip4/1.2.3.4/tcp/1"]) == "/ip4/1.2.3.4/tcp/1"
    assert _where(None, []) == "-"
