"""LanDiscovery announces only when asked: a node started for one ``get``
browses the LAN but registers nothing (its exit would otherwise wait out
zeroconf's name probe)."""

from __future__ import annotations

import pytest
import trio
from libp2p.peer.id import ID

from p2pshare.node.lan import LanDiscovery

pytestmark = pytest.mark.integration


@pytest.mark.trio
@pytest.mark.parametrize("announce", [True, False])
async def test_register_runs_only_when_announcing(
    announce: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[object] = []

    async def register(self: LanDiscovery, zc: object) -> None:
        registered.append(zc)

    monkeypatch.setattr(LanDiscovery, "_register", register)
    lan = LanDiscovery(
        ID(b"\x00\x24" + bytes(36)),
        lambda: ["/ip4/192.0.2.1/tcp/4001/p2p/x"],
        announce=announce,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(lan.run)
        if not lan.running:
            pytest.skip("mDNS cannot start on this machine")
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert len(registered) == (1 if announce else 0)
