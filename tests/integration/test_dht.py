"""Provider records by root id on a small all-server DHT (loopback)."""

from __future__ import annotations

import functools
import logging
import time

import pytest
import trio
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.kad_dht import _encode_key
from libp2p.kad_dht.provider_store import ProviderStore

from p2pshare.errors import TransferError
from p2pshare.format.cid import root_to_cid
from p2pshare.node import compat
from p2pshare.node.dht import (
    dht_key,
    find_providers,
    provide,
    root_key,
    serve_announcer,
)
from p2pshare.node.streams import LibP2PStream
from tests.helpers.nodes import open_test_nodes

pytestmark = pytest.mark.integration

ROOT_A = bytes(range(32))
ROOT_B = bytes(range(100, 132))


def test_keys_are_ipfs_style_cids_of_the_root():
    assert root_key(ROOT_A) == root_to_cid(ROOT_A)
    assert root_key(ROOT_A).startswith("b")
    # libp2p keys the record by the CID's multihash: blake2b-256 (0xb220).
    assert dht_key(ROOT_A) == _encode_key(root_key(ROOT_A))
    assert dht_key(ROOT_A) == bytes([0xA0, 0xE4, 0x02, 0x20]) + ROOT_A
    # P12: a hex string would have been taken as raw bytes instead.
    assert _encode_key(ROOT_A.hex()) == ROOT_A != dht_key(ROOT_A)


async def test_a_node_finds_the_provider_through_the_bootstrap_node(
    tmp_path, record_property
):
    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path) as (a, b, c):
            assert await provide(a.dht, ROOT_A)
            started = time.perf_counter()
            found = await find_providers(c.dht, ROOT_A)
            record_property("find_providers_s", time.perf_counter() - started)
            assert [p.peer_id for p in found] == [a.peer_id]
            assert found[0].addrs
            # B provides too; C, who only knows B through A, finds both.
            await provide(b.dht, ROOT_A)
            found = await find_providers(c.dht, ROOT_A, count=3)
            assert {p.peer_id for p in found} == {a.peer_id, b.peer_id}
            # The addresses went to the peerstore: C can open streams to A.
            stream = await c.open_stream(a.peer_id, KAD_PROTOCOL_ID)
            await stream.aclose()


async def test_a_provider_still_finds_other_providers(tmp_path):
    """P11: libp2p would answer from its local store, which holds only us."""
    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path) as (a, b, c):
            await provide(c.dht, ROOT_A)
            await provide(b.dht, ROOT_A)
            # In a 3-node network C's record also landed on B; drop that copy
            # so B's local store holds only B itself, as on a real network
            # where C's record lives on the peers closest to the key.
            del b.dht.provider_store.providers[dht_key(ROOT_A)][str(c.peer_id)]
            found = await find_providers(b.dht, ROOT_A, count=1)
            assert [p.peer_id for p in found] == [c.peer_id]
            assert await find_providers(a.dht, ROOT_B) == []


async def test_a_client_mode_node_finds_providers(tmp_path):
    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path, mode="client") as (seed, b, c):
            assert await provide(b.dht, ROOT_A)
            found = await find_providers(c.dht, ROOT_A)
            assert [p.peer_id for p in found] == [b.peer_id]
            assert seed.peer_id not in [p.peer_id for p in found]


async def test_announcer_announces_re_announces_and_withdraws(tmp_path):
    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path) as (a, _, c), trio.open_nursery() as n:
            serve = functools.partial(serve_announcer, interval_s=0.5)
            announcer = await n.start(serve, a.dht, lambda: [ROOT_A])
            await announcer.wait_cycle_done()
            assert [p.peer_id for p in await find_providers(c.dht, ROOT_A)] == [
                a.peer_id
            ]
            # The announcer owns the schedule: libp2p's republish set is empty.
            assert dht_key(ROOT_A) not in a.dht.provider_store.providing_keys

            assert await announcer.announce_now(ROOT_B)
            assert [p.peer_id for p in await find_providers(c.dht, ROOT_B)] == [
                a.peer_id
            ]

            await announcer.wait_cycle_done()
            await announcer.wait_cycle_done()  # a full cycle with both roots
            stats = announcer.statistics()
            assert stats.cycles >= 3
            assert stats.roots == 2
            assert stats.failures == 0

            announcer.withdraw(ROOT_A)
            store = a.dht.provider_store
            assert dht_key(ROOT_A) not in store.providing_keys
            assert a.peer_id not in [
                p.peer_id for p in store.get_providers(dht_key(ROOT_A))
            ]
            await announcer.wait_cycle_done()
            assert announcer.statistics().roots == 1  # only ROOT_B left
            assert announcer.statistics().withdrawn == 1
            assert dht_key(ROOT_A) not in store.providers
            n.cancel_scope.cancel()


async def test_hardened_dht_server_survives_idle_stream_hoarding(tmp_path, caplog):
    """P5: 12 idle KAD streams from one peer used to starve a DHT server."""
    libp2p_logger = logging.getLogger("libp2p")
    libp2p_logger.addHandler(caplog.handler)
    try:
        with trio.fail_after(60):
            async with open_test_nodes(3, tmp_path) as (a, b, c):
                assert await provide(a.dht, ROOT_A)
                hoard = []
                refused = 0
                for _ in range(12):
                    try:
                        hoard.append(await b.open_stream(a.peer_id, KAD_PROTOCOL_ID))
                    except TransferError:  # reset during negotiation
                        refused += 1

                async def count_reset(stream: LibP2PStream) -> None:
                    nonlocal refused
                    with trio.move_on_after(0.5):
                        try:
                            await stream.receive_some()
                        except trio.BrokenResourceError:
                            refused += 1

                async with trio.open_nursery() as nursery:
                    for stream in hoard:
                        nursery.start_soon(count_reset, stream)
                assert refused == 12 - compat.DHT_MAX_STREAMS_PER_PEER
                # Ask A itself (not the cached copies on B and C): A answers.
                # (Test-only use of the library's single-peer query.)
                lone = ProviderStore(host=c.host, peer_routing=c.dht.peer_routing)
                providers, _ = await lone._get_providers_from_peer_with_closers(
                    a.peer_id, dht_key(ROOT_A)
                )
                assert [p.peer_id for p in providers] == [a.peer_id]
                for stream in hoard:
                    await stream.aclose()
    finally:
        libp2p_logger.removeHandler(caplog.handler)
    # P8: normal request ends no longer log "Failed to read DHT message".
    noise = [r for r in caplog.records if "Failed to read DHT" in r.getMessage()]
    assert noise == []


async def test_cancelled_lookups_leave_connections_alone(tmp_path):
    """N1: lookups run detached, so a caller's timeout never cuts a frame."""
    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path) as (a, b, c):
            await provide(a.dht, ROOT_A)
            before = {
                p: list(c.host.get_network().connections[p])
                for p in (a.peer_id, b.peer_id)
            }
            for i in range(30):
                with trio.move_on_after(0.0005 * (i % 5)):
                    await find_providers(c.dht, ROOT_A)
            found = await find_providers(c.dht, ROOT_A)
            assert [p.peer_id for p in found] == [a.peer_id]
            after = {
                p: list(c.host.get_network().connections[p])
                for p in (a.peer_id, b.peer_id)
            }
            assert after == before
