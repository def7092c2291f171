"""Live-share pointer records in a real all-server DHT on loopback: stored
and found; a forged, a replayed older and an oversized record are refused
by the DHT servers (sent past the sender's own validator) and by getters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio
from libp2p.records.validator import BlankValidator
from nacl.signing import SigningKey

from p2pshare.format.pointer import PointerRecord, dht_key, make_pointer
from p2pshare.node.pointers import NAMESPACE, fetch_pointer, put_pointer
from tests.helpers.nodes import open_test_nodes

pytestmark = pytest.mark.integration

OWNER = SigningKey(bytes(range(32)))
PUB = bytes(OWNER.verify_key)
READ = bytes(range(100, 132))


def record(seq: int, root: bytes, signer: SigningKey = OWNER) -> PointerRecord:
    expires = int(time.time()) + 600
    return make_pointer(signer, READ, seq=seq, root=root, key=root, expires=expires)


def stored(node: object, pub: bytes = PUB) -> bytes | None:
    rec = node.dht.value_store.get(dht_key(pub))  # type: ignore[attr-defined]
    return None if rec is None else bytes(rec.value)


async def test_records_found_and_newest_wins(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path) as (a, b, c):
            v1, v2 = record(1, bytes(32)), record(2, bytes([1]) * 32)
            await put_pointer(a.dht, v1)
            got = await fetch_pointer(c.dht, PUB)
            assert got == v1 and got.open(READ) == (bytes(32), bytes(32))
            await put_pointer(a.dht, v2)
            assert stored(b) == v2.to_bytes()
            # a node that held v1 and hears v2 keeps v2; a get from C now
            # sees v2 (C's local copy from the first get is dropped first:
            # py-libp2p answers from the local store without asking)
            c.dht.value_store.store.pop(dht_key(PUB), None)
            got = await fetch_pointer(c.dht, PUB)
            assert got is not None and got.seq == 2
            # the owner's own node refuses to go back
            with pytest.raises(ValueError, match="older"):
                await put_pointer(a.dht, v1)


async def test_servers_refuse_forged_replayed_and_oversized(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path) as (a, b, c):
            # C turns off its own check for the namespace, as an attacker would
            c.dht.register_validator(NAMESPACE, BlankValidator())
            key = dht_key(PUB)
            genuine = record(5, bytes([5]) * 32)
            forger = SigningKey(bytes(32))
            fake = record(99, bytes([9]) * 32, signer=forger)
            forged = PointerRecord(PUB, 99, fake.expires, fake.box, fake.signature)
            oversized = genuine.to_bytes() + bytes(300)
            # B holds nothing for the pointer yet: junk is not stored
            for bad in (forged.to_bytes(), oversized, fake.to_bytes()):
                assert not await c.dht.value_store._store_at_peer(b.peer_id, key, bad)
                assert stored(b) is None
            await put_pointer(a.dht, genuine)
            assert stored(b) == genuine.to_bytes()
            replayed = record(4, bytes([4]) * 32)
            for bad in (forged.to_bytes(), replayed.to_bytes(), oversized):
                assert not await c.dht.value_store._store_at_peer(b.peer_id, key, bad)
                assert stored(b) == genuine.to_bytes()  # B kept the genuine one
            # a getter offered only junk finds nothing valid
            assert await fetch_pointer(a.dht, bytes(forger.verify_key)) is None
            a.dht.value_store.store.pop(key, None)
            assert await fetch_pointer(a.dht, PUB) == genuine
