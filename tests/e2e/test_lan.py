"""LAN discovery: two machines on one LAN find each other by mDNS.

Each "machine" is a network namespace on one bridge (``tests/helpers/
netns.py``): no bootstrap, no DHT peer, and a link without peer hints, so
the only way the getter can learn the provider is mDNS. The same gets with
mDNS off fail, which shows mDNS did the work.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import p2pshare
from tests.helpers.netns import Topology, lan, topology
from tests.helpers.procs import Proc, running

ON = {"P2PSHARE_MDNS": "1"}
OFF = {"P2PSHARE_MDNS": "0"}
ANY = "/ip4/0.0.0.0/tcp/0"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def two_hosts() -> Iterator[tuple[Topology, str, str]]:
    with topology() as topo:
        a, b = lan(topo, 2)
        yield topo, a, b


def provider(topo: Topology, ns: str, home: Path, path: Path) -> tuple[Proc, str]:
    """``add`` (a bare link) and a node serving it, with mDNS, in ``ns``."""
    res = p2pshare(home, "add", path, prefix=topo.prefix(ns))
    assert res.code == 0, res.err
    link = res.out.strip()
    assert "peer=" not in link  # nothing but the root id and the key
    proc = Proc(home, "node", "--listen", ANY, env=ON, prefix=topo.prefix(ns))
    proc.read_lines(1)
    return proc, link


def test_a_bare_link_is_found_on_the_lan(
    two_hosts: tuple[Topology, str, str], tmp_path: Path
) -> None:
    topo, a, b = two_hosts
    src = tmp_path / "holiday.bin"
    src.write_bytes(os.urandom(3 << 20))
    node, link = provider(topo, a, tmp_path / "a", src)
    with running(node):
        out = tmp_path / "out"
        res = p2pshare(
            tmp_path / "b", "get", link, "-o", out, "--timeout", "30",
            "--listen", ANY, prefix=topo.prefix(b), env=ON,
        )  # fmt: skip
        assert res.code == 0, res.err
        assert digest(out / "holiday.bin") == digest(src)

        # the control: without mDNS the same bare link finds nobody
        res = p2pshare(
            tmp_path / "c", "get", link, "-o", tmp_path / "out2", "--timeout", "4",
            "--listen", ANY, prefix=topo.prefix(b), env=OFF,
        )  # fmt: skip
        assert res.code == 3, (res.code, res.err)
        assert not (tmp_path / "out2" / "holiday.bin").exists()


def test_a_background_node_finds_lan_peers_for_its_downloads(
    two_hosts: tuple[Topology, str, str], tmp_path: Path
) -> None:
    topo, a, b = two_hosts
    src = tmp_path / "album"
    src.mkdir()
    for i in range(3):
        (src / f"track{i}.bin").write_bytes(os.urandom(700_000 + i))
    node_a, link = provider(topo, a, tmp_path / "a", src)
    home_b = tmp_path / "b"
    node_b = Proc(home_b, "node", "--listen", ANY, env=ON, prefix=topo.prefix(b))
    with running(node_a, node_b):
        node_b.read_lines(1)
        out = tmp_path / "out"
        res = p2pshare(
            home_b, "get", link, "-o", out, "--timeout", "30",
            prefix=topo.prefix(b), env=ON,
        )  # fmt: skip
        assert res.code == 0, res.err
        for i in range(3):
            name = f"track{i}.bin"
            assert digest(out / "album" / name) == digest(src / name)
        status = p2pshare(home_b, "status", "--json", prefix=topo.prefix(b))
        assert status.code == 0, status.err
        lan_state = json.loads(status.out)["lan"]
        assert lan_state["mdns"] is True and lan_state["peers"] >= 1, lan_state
        assert node_b.popen.poll() is None  # the node is still up
