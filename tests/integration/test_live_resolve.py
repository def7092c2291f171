"""Resolving a live link on real nodes (loopback): the getter takes the
newest valid record from the hints, refuses a replayed older one, a forged
one, an expired one, and a read key that does not open it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio
from nacl.signing import SigningKey

from p2pshare.config import Home
from p2pshare.errors import IntegrityError, NoProviders
from p2pshare.format.links import LiveLink
from p2pshare.format.pointer import PointerRecord, dht_key, make_pointer
from p2pshare.node.live import resolve
from p2pshare.node.service import Node, open_node

pytestmark = pytest.mark.integration

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
OWNER = SigningKey(bytes(range(32)))
PUB = bytes(OWNER.verify_key)
READ = bytes(range(100, 132))


def record(seq: int, *, signer: SigningKey = OWNER, life: int = 600) -> PointerRecord:
    root = bytes([seq]) * 32
    return make_pointer(
        signer, READ, seq=seq, root=root, key=root, expires=int(time.time()) + life
    )


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    async with AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(
                open_node(Home(tmp_path / name), listen=LOOPBACK, dht_mode="server")
            )
            for name in ("a", "b")
        ]
        yield a, b


def holds(node: Node, value: bytes) -> None:
    """Put ``value`` in ``node``'s DHT store as it is (no validation)."""
    node.host.dht.value_store.put(dht_key(PUB), value)


def link_to(node: Node, read_key: bytes = READ) -> LiveLink:
    return LiveLink(pub=PUB, read_key=read_key, peers=(node.addrs()[0],))


async def test_newest_from_the_hint_then_no_going_back(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with two_nodes(tmp_path) as (a, b):
            holds(a, record(3).to_bytes())
            got = await resolve(b, link_to(a), timeout_s=5)
            assert (got.root_id, got.key) == (bytes([3]) * 32, bytes([3]) * 32)
            assert got.peers == link_to(a).peers
            assert b.store.catalog.seen_seq(PUB) == 3
            # the hint now offers only an older version (a replay), and B's
            # own DHT store forgets v3: nothing but the replay is heard
            holds(a, record(2).to_bytes())
            b.host.dht.value_store.store.pop(dht_key(PUB), None)
            with pytest.raises(IntegrityError, match="refusing to go back"):
                await resolve(b, link_to(a), timeout_s=5)
            assert b.store.catalog.seen_seq(PUB) == 3


@pytest.mark.parametrize("bad", ["forged", "expired", "oversized"])
async def test_bad_records_refused(tmp_path: Path, bad: str) -> None:
    with trio.fail_after(60):
        async with two_nodes(tmp_path) as (a, b):
            if bad == "forged":
                fake = record(9, signer=SigningKey(bytes(32)))
                value = PointerRecord(
                    PUB, 9, fake.expires, fake.box, fake.signature
                ).to_bytes()
            elif bad == "expired":
                value = record(9, life=-10).to_bytes()
            else:
                value = record(9).to_bytes() + bytes(300)
            holds(a, value)
            with pytest.raises(NoProviders, match="no valid record") as info:
                await resolve(b, link_to(a), timeout_s=3)
            assert {"forged": "bad signature", "expired": "expired"}.get(
                bad, "exceeds"
            ) in str(info.value)
            assert b.store.catalog.seen_seq(PUB) is None


async def test_wrong_read_key(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with two_nodes(tmp_path) as (a, b):
            holds(a, record(1).to_bytes())
            with pytest.raises(IntegrityError, match="read key"):
                await resolve(b, link_to(a, bytes(32)), timeout_s=5)


async def test_a_seed_refuses_forged_replayed_and_oversized(tmp_path: Path) -> None:
    """A seed node (what `push_to_seeds` writes to) keeps only genuine,
    newer records: its validator is the DHT's."""
    from libp2p.records.validator import BlankValidator

    from p2pshare.node.pointers import NAMESPACE
    from p2pshare.node.seed_policy import SeedPolicy

    with trio.fail_after(60):
        async with AsyncExitStack() as stack:
            seed = await stack.enter_async_context(
                open_node(
                    Home(tmp_path / "seed"),
                    listen=LOOPBACK,
                    dht_mode="server",
                    seed=SeedPolicy(region="eu", max_storage=None, admission="open"),
                )
            )
            attacker = await stack.enter_async_context(
                open_node(Home(tmp_path / "x"), listen=LOOPBACK, dht_mode="server")
            )
            attacker.host.dht.register_validator(NAMESPACE, BlankValidator())
            peer = await attacker.host.connect(seed.addrs()[0])
            store = attacker.host.dht.value_store
            key = dht_key(PUB)
            fake = record(9, signer=SigningKey(bytes(32)))
            forged = PointerRecord(PUB, 9, fake.expires, fake.box, fake.signature)
            for bad in (forged.to_bytes(), record(9).to_bytes() + bytes(300)):
                assert not await store._store_at_peer(peer, key, bad)
                assert seed.host.dht.value_store.get(key) is None
            assert await store._store_at_peer(peer, key, record(5).to_bytes())
            assert not await store._store_at_peer(peer, key, record(4).to_bytes())
            kept = seed.host.dht.value_store.get(key)
            assert kept is not None
            assert PointerRecord.from_bytes(kept.value).seq == 5
