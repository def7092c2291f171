"""open_host: identity, security options, handler isolation, addresses, shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID

from p2pshare.errors import ConfigError, TransferError, UsageError
from p2pshare.node import compat
from p2pshare.node.host import parse_peer_addr
from p2pshare.node.host_start import open_host
from p2pshare.node.identity import IDENTITY_FILE
from p2pshare.node.streams import LibP2PStream
from tests.helpers.nodes import LOOPBACK_ANY_PORT, open_test_nodes

pytestmark = pytest.mark.integration

ECHO = "/p2pshare-test/echo/1"
BOOM = "/p2pshare-test/boom/1"


async def echo(stream: LibP2PStream) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data)


async def round_trip(stream: LibP2PStream, payload: bytes) -> bytes:
    async with stream:
        await stream.send_all(payload)
        await stream.send_eof()
        got = b""
        while data := await stream.receive_some():
            got += data
        return got


def loopback_port(addrs: list[str]) -> int:
    addr = next(a for a in addrs if a.startswith("/ip4/127.0.0.1/tcp/"))
    return int(addr.split("/")[4])


def open_sockets() -> int:
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own fd is gone
            count += os.readlink(fd).startswith("socket:")
    return count


async def wait_forever() -> None:
    """``trio.sleep_forever`` without the NoReturn (code after it runs when
    an enclosing scope is cancelled, which mypy cannot see)."""
    await trio.sleep_forever()


async def assert_refused(port: int) -> None:
    """Nothing listens on ``port`` any more (a leaked listener would accept)."""
    with pytest.raises(OSError, match="all attempts to connect") as failed:
        await trio.open_tcp_stream("127.0.0.1", port)
    attempts = failed.value.__cause__
    assert isinstance(attempts, ExceptionGroup)
    assert all(isinstance(e, ConnectionRefusedError) for e in attempts.exceptions)


# -- identity -------------------------------------------------------------


async def test_identity_persists_across_restart_with_mode_0600(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="p2pshare")
    home = tmp_path / "home"
    with trio.fail_after(60):
        async with open_host(
            home_dir=home, listen=[LOOPBACK_ANY_PORT], dht_mode="client"
        ) as first:
            first_id = first.peer_id
            assert first.peer_id_bytes == first_id.to_bytes()
        key_file = home / IDENTITY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]
        async with open_host(
            home_dir=home, listen=[LOOPBACK_ANY_PORT], dht_mode="client"
        ) as second:
            assert second.peer_id == first_id
    secret = key_file.read_bytes()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert secret.hex() not in logged
    assert first_id.to_base58()[-8:] in logged  # short ids are logged


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
async def test_identity_readable_by_others_is_refused(tmp_path):
    home = tmp_path / "home"
    with trio.fail_after(60):
        async with open_host(home_dir=home, listen=[], dht_mode="client"):
            pass
        (home / IDENTITY_FILE).chmod(0o644)
        with pytest.raises(ConfigError, match="other users"):
            async with open_host(home_dir=home, listen=[], dht_mode="client"):
                pass


async def test_identity_garbage_or_symlink_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    key_file = home / IDENTITY_FILE
    with trio.fail_after(60):
        key_file.write_bytes(b"not a key")
        key_file.chmod(0o600)
        with pytest.raises(ConfigError, match="not a libp2p private key"):
            async with open_host(home_dir=home, listen=[], dht_mode="client"):
                pass
        key_file.unlink()
        target = tmp_path / "elsewhere.key"
        target.write_bytes(b"x")
        target.chmod(0o600)
        key_file.symlink_to(target)
        with pytest.raises(ConfigError, match="symbolic link"):
            async with open_host(home_dir=home, listen=[], dht_mode="client"):
                pass


# -- security and muxer options (P1, P3) -----------------------------------


async def test_only_noise_and_yamux_are_offered(tmp_path):
    with trio.fail_after(60):
        async with open_host(
            home_dir=tmp_path, listen=[LOOPBACK_ANY_PORT], dht_mode="client"
        ) as node:
            network: Any = node.host.get_network()  # a Swarm
            upgrader = network.upgrader
            assert set(upgrader.security_multistream.transports) == {NOISE_PROTOCOL_ID}
            assert set(upgrader.muxer_multistream.transports) == {YAMUX_PROTOCOL_ID}


async def test_plaintext_only_dialer_is_refused(tmp_path):
    with trio.fail_after(60):
        async with open_test_nodes(1, tmp_path) as (node,):
            node.set_handler(ECHO, echo)
            target = parse_peer_addr(node.addrs()[0])
            key_pair = create_new_key_pair()
            dialer = new_host(
                key_pair=key_pair,
                sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(key_pair)},
                muxer_opt=compat.muxer_options(),
                transports=compat.tcp_transports(),
            )
            async with dialer.run(listen_addrs=[]):
                with pytest.raises(BaseLibp2pError) as refused:
                    await dialer.connect(target)
                assert "failed to negotiate the secure protocol" in str(
                    refused.value.__cause__
                )
                assert target.peer_id not in dialer.get_connected_peers()
                await compat.close_network(dialer)
            # The node is unharmed: a Noise peer still gets through.
            async with open_host(
                home_dir=tmp_path / "noise",
                listen=[LOOPBACK_ANY_PORT],
                dht_mode="client",
            ) as peer:
                await peer.connect(node.addrs()[0])
                stream = await peer.open_stream(target.peer_id, ECHO)
                assert await round_trip(stream, b"ping") == b"ping"


# -- handlers (P4) ---------------------------------------------------------


async def test_raising_handler_costs_one_stream_not_the_host(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="p2pshare.node.compat")

    async def boom(stream: LibP2PStream) -> None:
        await stream.receive_some()
        raise ValueError("handler bug")

    with trio.fail_after(60):
        async with open_test_nodes(2, tmp_path) as (a, b):
            b.set_handler(BOOM, boom)
            b.set_handler(ECHO, echo)
            for _ in range(2):
                stream = await a.open_stream(b.peer_id, BOOM)
                async with stream:
                    await stream.send_all(b"x")
                    with pytest.raises(trio.BrokenResourceError):
                        await stream.receive_some()
            stream = await a.open_stream(b.peer_id, ECHO)
            assert await round_trip(stream, b"still alive") == b"still alive"
    failures = [r for r in caplog.records if "handler bug" in repr(r.exc_info)]
    assert len(failures) == 2
    assert all(r.levelno == logging.WARNING for r in failures)
    assert compat.short_peer_id(a.peer_id) in failures[0].getMessage()


async def test_open_stream_errors_are_transfer_errors(tmp_path):
    with trio.fail_after(60):
        async with open_test_nodes(2, tmp_path) as (a, b):
            with pytest.raises(TransferError, match="cannot open"):
                await a.open_stream(b.peer_id, "/p2pshare-test/nobody-serves/1")
            stranger = create_new_key_pair().public_key
            with pytest.raises(TransferError):
                await a.open_stream(ID.from_pubkey(stranger), ECHO)
            with pytest.raises(UsageError):
                await a.connect("/ip4/127.0.0.1/tcp/1")  # no /p2p/<id>
            dead = f"/ip4/127.0.0.1/tcp/1/p2p/{ID.from_pubkey(stranger)}"
            with pytest.raises(TransferError, match="cannot connect"):
                await a.connect(dead)


# -- addresses and configuration -------------------------------------------


async def test_addrs_are_dialable_and_carry_the_peer_id(tmp_path):
    with trio.fail_after(60):
        async with open_host(
            home_dir=tmp_path, listen=["/ip4/0.0.0.0/tcp/0"], dht_mode="client"
        ) as node:
            addrs = node.addrs()
            assert addrs
            assert all(a.endswith(f"/p2p/{node.peer_id}") for a in addrs)
            assert not [a for a in addrs if "/0.0.0.0/" in a or "/tcp/0/" in a]
            assert any(a.startswith("/ip4/127.0.0.1/tcp/") for a in addrs)
            # What the DHT and identify advertise is the same list.
            assert [str(a) for a in node.host.get_addrs()] == addrs


async def test_bad_listen_addresses_are_config_errors(tmp_path):
    with trio.fail_after(60):
        for bad in ["/ip4/127.0.0.1/udp/0/quic-v1", "/dns4/localhost/tcp/0", "junk"]:
            with pytest.raises(ConfigError, match="listen address"):
                async with open_host(
                    home_dir=tmp_path, listen=[bad], dht_mode="client"
                ):
                    pass
        with pytest.raises(ConfigError, match="bootstrap"):
            async with open_host(
                home_dir=tmp_path,
                listen=[],
                bootstrap=["/ip4/127.0.0.1/tcp/4001"],
                dht_mode="client",
            ):
                pass
        taken = trio.socket.socket()
        with taken:
            await taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(ConfigError, match="cannot listen"):
                async with open_host(
                    home_dir=tmp_path,
                    listen=[f"/ip4/127.0.0.1/tcp/{port}"],
                    dht_mode="client",
                ):
                    pass


async def test_unreachable_bootstrap_peer_is_not_fatal(tmp_path):
    stranger = create_new_key_pair().public_key
    dead = f"/ip4/127.0.0.1/tcp/1/p2p/{ID.from_pubkey(stranger)}"
    with trio.fail_after(60):
        async with (
            open_test_nodes(1, tmp_path) as (seed,),
            open_host(
                home_dir=tmp_path / "joiner",
                listen=[LOOPBACK_ANY_PORT],
                bootstrap=[dead, seed.addrs()[0]],
                dht_mode="server",
            ) as joiner,
        ):
            assert seed.peer_id in joiner.connected_peers()
            assert joiner.dht.get_routing_table_size() >= 1


# -- shutdown (P9) ----------------------------------------------------------

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counts sockets in /proc/self/fd"
)


@needs_proc
async def test_shutdown_releases_every_socket(tmp_path):
    with trio.fail_after(60):
        before = open_sockets()
        async with open_test_nodes(3, tmp_path) as nodes:
            nodes[2].set_handler(ECHO, echo)
            stream = await nodes[1].open_stream(nodes[2].peer_id, ECHO)
            assert await round_trip(stream, b"x") == b"x"
            ports = [loopback_port(n.addrs()) for n in nodes]
            assert open_sockets() > before
        assert open_sockets() == before
        for port in ports:
            await assert_refused(port)


@needs_proc
async def test_cancelled_caller_still_closes_cleanly(tmp_path):
    with trio.fail_after(60):
        before = open_sockets()
        with trio.CancelScope() as scope:
            async with open_test_nodes(2, tmp_path) as nodes:
                port = loopback_port(nodes[0].addrs())
                scope.cancel()  # what Ctrl-C or a parent's failure does
                await wait_forever()
        assert scope.cancelled_caught
        await assert_refused(port)
        assert open_sockets() == before


@needs_proc
@pytest.mark.parametrize("delay_s", [0.0, 0.05])
async def test_cancelled_during_startup_leaks_nothing(tmp_path, delay_s):
    with trio.fail_after(60):
        before = open_sockets()
        with trio.move_on_after(delay_s):
            async with open_test_nodes(3, tmp_path):
                await wait_forever()
        assert open_sockets() == before
