"""Browsing a link and downloading part of a folder, between real nodes.

``Node.inspect`` must fetch only envelopes and listings (no file chunk),
``Node.get(paths=…)`` only the selected entries; per-peer traffic counters
and the ``providers`` lookup back the TUI's Network and Shares screens.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from p2pshare.config import Home
from p2pshare.errors import NotFoundError, UsageError
from p2pshare.format import ShareLink
from p2pshare.node.service import Node, open_node
from p2pshare.store import LocalStore
from p2pshare.store.adder import add_path

pytestmark = pytest.mark.integration

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
CS = 64 * 1024


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "big.bin": os.urandom(40 * CS),
        "docs/readme.md": b"# docs\n",
        "docs/deep/ü.bin": os.urandom(3 * CS + 5),
        "docs/deep/empty": b"",
        "other/x.bin": os.urandom(CS + 1),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _add(home: Path, path: Path) -> tuple[bytes, bytes]:
    with LocalStore(Home(home)) as store:
        added = add_path(store, path, copy=False, chunk_size=CS)
    return added.root, added.key


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }


async def test_inspect_fetches_listings_only_and_get_takes_a_selection(
    tmp_path: Path,
) -> None:
    src = tmp_path / "Projet"
    src.mkdir()
    files = _tree(src)
    root, key = _add(tmp_path / "a", src)
    with trio.fail_after(90):
        async with open_node_pair(tmp_path) as (a, b):
            link = ShareLink(root_id=root, key=key, peers=(a.addrs()[0],))
            tree = await b.inspect(link, use_dht=False)
            assert (tree["name"], tree["kind"]) == ("Projet", "folder")
            assert tree["size"] == sum(len(v) for v in files.values())
            by_path = {e["path"]: e for e in tree["entries"]}
            assert set(by_path) == {
                "a.txt",
                "big.bin",
                "docs",
                "docs/readme.md",
                "docs/deep",
                "docs/deep/ü.bin",
                "docs/deep/empty",
                "other",
                "other/x.bin",
            }
            assert by_path["docs"]["kind"] == "folder"
            assert by_path["docs"]["size"] == 7 + 3 * CS + 5
            assert by_path["big.bin"]["size"] == 40 * CS
            # only listings came over the wire: far less than one big file
            assert 0 < a.server.stats.bytes_sent < 4 * CS

            out = tmp_path / "out"
            result = await b.get(
                link, out, paths=["docs/deep/ü.bin", "a.txt"], use_dht=False
            )
            got = _files(out / "Projet")
            assert got == {k: files[k] for k in ("docs/deep/ü.bin", "a.txt")}
            assert result.file_bytes == len(files["a.txt"]) + 3 * CS + 5
            assert a.server.stats.bytes_sent < 10 * CS  # big.bin never sent

            # per-peer counters see the same bytes from both ends
            b_peer = b.host.peer_id.to_bytes()
            a_peer = a.host.peer_id.to_bytes()
            assert a.server.stats.per_peer_sent[b_peer] > 3 * CS
            assert b.received_by_peer[a_peer] >= a.server.stats.per_peer_sent[b_peer]
            peers = {p["peer_id"]: p for p in b.peers()}
            assert peers[str(a.host.peer_id)]["received"] > 3 * CS
            # counters of peers no longer connected are dropped (bounded)
            gone = b"\x00\x24" + bytes(36)
            b.received_by_peer[gone] = 1
            b._forget_gone_peers()
            assert gone not in b.received_by_peer
            assert b.received_by_peer[a_peer] > 3 * CS

            # a whole sub-folder
            out2 = tmp_path / "out2"
            await b.get(link, out2, paths=["docs"], use_dht=False)
            assert _files(out2 / "Projet") == {
                k: v for k, v in files.items() if k.startswith("docs/")
            }

            with pytest.raises(NotFoundError, match=r"nope\.txt"):
                await b.get(link, tmp_path / "out3", paths=["nope.txt"], use_dht=False)
            assert not (tmp_path / "out3" / "Projet").exists()
            with pytest.raises(UsageError):
                await b.get(link, tmp_path / "out4", paths=["../x"], use_dht=False)


async def test_providers_counts_this_node_and_the_dht(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(CS))
    src.with_name("g.bin").write_bytes(os.urandom(CS))
    root, _key = _add(tmp_path / "a", src)
    nobody, _ = _add(tmp_path / "z", src.with_name("g.bin"))  # served by no one
    with trio.fail_after(60):
        async with open_node_pair(tmp_path) as (a, b):
            assert await a.providers(root, timeout_s=5) >= 1  # a serves it
            await a.announce(root)
            assert await b.providers(root, timeout_s=10) == 1  # a, found in the DHT
            assert await b.providers(nobody, timeout_s=2) == 0


@asynccontextmanager
async def open_node_pair(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    """Node A (DHT server, serving tmp_path/a) and B bootstrapped to it."""
    async with (
        open_node(Home(tmp_path / "a"), listen=LOOPBACK, dht_mode="server") as a,
        open_node(Home(tmp_path / "b"), listen=LOOPBACK, bootstrap=[a.addrs()[0]]) as b,
    ):
        yield a, b
