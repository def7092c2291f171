"""The reachability check and DHT routing hygiene, on loopback.

Across real NATs this is ``tests/e2e/test_nat.py``; here: a fresh dial-back
reaches a listening node and not a port nobody listens on, a node asks a
second time only after the first check ended, hostile requests cost the
server nothing, and DHT clients stay out of routing tables.
"""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing
from libp2p.kad_dht.kad_dht import DHTMode

from p2pshare.node import compat
from p2pshare.node.dht import find_providers
from p2pshare.node.reach import Reachability, ReachServer
from p2pshare.protocol.reach import REACH_PROTOCOL
from tests.helpers.nodes import open_test_nodes

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_fresh_dial_back_tells_listening_from_not(tmp_path):
    with trio.fail_after(60):
        async with open_test_nodes(2, tmp_path) as (seed, node):
            server = ReachServer(seed)
            seed.set_handler(REACH_PROTOCOL, server.handle)
            reach = Reachability(node, ask=[seed.addrs()[0]])
            await reach.check()
            assert reach.state == "public", reach.why
            assert reach.observed == "127.0.0.1"
            assert reach.port == int(node.addrs()[0].split("/")[4])
            # the dial-back was a new connection: closed, the old one stays
            assert node.peer_id in seed.connected_peers()
            # nothing listens there: refused (a NAT would drop: no_answer)
            closed = await server.check(node.peer_id, "127.0.0.1", _free_port())
            assert closed == "refused"
            # something listens but is not that peer
            other = await server.check(seed.peer_id, "127.0.0.1", reach.port)
            assert other == "refused"
            assert server.answered["dialed"] == 1


async def test_no_seed_means_unknown_and_a_seed_without_the_protocol_too(tmp_path):
    with trio.fail_after(60):
        async with open_test_nodes(2, tmp_path) as (plain, node):
            reach = Reachability(node, ask=[plain.addrs()[0]])
            await reach.check()  # `plain` does not serve the protocol
            assert (reach.state, reach.why) == ("unknown", "no seed answered")
            alone = Reachability(plain)
            for peer in plain.connected_peers():  # no one to ask at all
                await plain.host.disconnect(peer)
            await alone.check()
            assert alone.state == "unknown"


async def test_hostile_requests_cost_the_server_nothing(tmp_path):
    with trio.fail_after(60):
        async with open_test_nodes(2, tmp_path) as (seed, node):
            server = ReachServer(seed)
            seed.set_handler(REACH_PROTOCOL, server.handle)
            for junk in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x05abcde", b""):
                stream = await node.open_stream(seed.peer_id, REACH_PROTOCOL)
                async with stream:
                    if junk:
                        await stream.send_all(junk)
                    await stream.send_eof()
                    assert await stream.receive_some(100) == b""
            assert sum(server.answered.values()) == 0
            reach = Reachability(node, ask=[seed.addrs()[0]])
            await reach.check()  # and it still answers
            assert reach.state == "public"


async def test_dht_clients_stay_out_of_routing_tables(tmp_path):
    """R1: a client that queries a server is not added to its table; a node
    that turns client is dropped from the tables of its peers."""
    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path, mode="client") as (server, c1, c2):
            await find_providers(c1.dht, bytes(32))
            await find_providers(c2.dht, bytes(32))
            table = server.dht.routing_table.get_peer_ids()
            assert c1.peer_id not in table and c2.peer_id not in table
        async with open_test_nodes(2, tmp_path / "b") as (server, other):
            with trio.fail_after(10):
                while other.peer_id not in server.dht.routing_table.get_peer_ids():
                    await find_providers(other.dht, bytes(32))
            assert await compat.set_dht_mode(other.host, other.dht, server=False)
            assert other.dht.mode == DHTMode.CLIENT
            # both nodes run in this trio run: once every task is idle, the
            # server has read the identify push
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)
            assert compat.prune_routing_table(server.host, server.dht) == 1
            assert other.peer_id not in server.dht.routing_table.get_peer_ids()
            # and back: the hardened handler serves again
            assert await compat.set_dht_mode(other.host, other.dht, server=True)
            assert not await compat.set_dht_mode(other.host, other.dht, server=True)


async def test_a_reservation_is_only_for_the_peer_that_asks(tmp_path):
    """0.8.1 took the peer id from the RESERVE message: anyone could reserve
    (and so receive the circuits) for another peer."""
    from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
    from libp2p.relay.circuit_v2.pb.circuit_pb2 import PeerId as CircuitPeerId
    from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
    from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg
    from libp2p.tools.anyio_service import background_trio_service

    from p2pshare.node.relay import HOP_PROTOCOL, SeedRelay

    async def nobody(_peer: object) -> bool:
        return False

    async def reserve(node, seed, for_peer=None):
        stream = await node.host.new_stream(seed.peer_id, [HOP_PROTOCOL])
        msg = HopMessage(type=HopMessage.RESERVE)
        if for_peer is not None:
            msg.peer.CopyFrom(CircuitPeerId(id=for_peer.to_bytes()))
        await write_delimited_msg(stream, msg)
        resp = await read_delimited_msg(stream, HopMessage)
        await stream.close()
        return StatusCode(resp.status)

    with trio.fail_after(60):
        async with open_test_nodes(3, tmp_path) as (seed, mallory, victim):
            relay = SeedRelay(seed.host, nobody)
            async with background_trio_service(relay):
                assert await reserve(mallory, seed, victim.peer_id) == (
                    StatusCode.PERMISSION_DENIED
                )
                assert relay.refused_reservations == 1
                assert not relay.resource_manager.has_reservation(victim.peer_id)
                assert await reserve(mallory, seed, mallory.peer_id) == StatusCode.OK
                assert await reserve(victim, seed) == StatusCode.OK
                assert relay.resource_manager.has_reservation(victim.peer_id)


async def test_reservations_per_address_are_capped(tmp_path, monkeypatch):
    from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
    from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
    from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg
    from libp2p.tools.anyio_service import background_trio_service

    from p2pshare.node import relay as relaymod

    monkeypatch.setattr(relaymod, "MAX_RESERVATIONS_PER_IP", 2)

    async def nobody(_peer: object) -> bool:
        return False

    async def reserve(node, seed):
        stream = await node.host.new_stream(seed.peer_id, [relaymod.HOP_PROTOCOL])
        await write_delimited_msg(stream, HopMessage(type=HopMessage.RESERVE))
        resp = await read_delimited_msg(stream, HopMessage)
        await stream.close()
        return StatusCode(resp.status)

    with trio.fail_after(60):
        async with open_test_nodes(4, tmp_path) as (seed, a, b, c):
            relay = relaymod.SeedRelay(seed.host, nobody)
            async with background_trio_service(relay):
                assert await reserve(a, seed) == StatusCode.OK
                assert await reserve(b, seed) == StatusCode.OK
                # all on 127.0.0.1: the third is one too many
                assert await reserve(c, seed) == StatusCode.RESOURCE_LIMIT_EXCEEDED
                assert await reserve(a, seed) == StatusCode.OK  # a renewal is fine
