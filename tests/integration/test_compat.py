"""The py-libp2p 0.8.1 workarounds that can be checked without a network."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from p2pshare.errors import RemoteProtocolError
from p2pshare.node import compat

pytestmark = pytest.mark.integration

PEER = ID.from_base58("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")


class FakeConn:
    peer_id = PEER


class FakeStream:
    """Just enough of an INetStream for safe_handler (passed as Any)."""

    muxed_conn = FakeConn()

    def __init__(self) -> None:
        self.resets = 0

    def get_protocol(self) -> str:
        return "/p2pshare-test/1"

    async def reset(self) -> None:
        self.resets += 1


def as_net_stream(stream: FakeStream) -> Any:
    return stream


async def test_safe_handler_logs_and_resets(caplog):
    caplog.set_level(logging.WARNING, logger="p2pshare.node.compat")

    async def misbehaving_peer(stream):
        raise RemoteProtocolError("frame too large")

    async def buggy(stream):
        raise ZeroDivisionError

    with trio.fail_after(10):
        for handler in (misbehaving_peer, buggy):
            stream = FakeStream()
            await compat.safe_handler(handler)(as_net_stream(stream))  # does not raise
            assert stream.resets == 1
    peer_record, bug_record = caplog.records
    assert compat.short_peer_id(PEER) in peer_record.getMessage()
    assert "frame too large" in peer_record.getMessage()
    assert peer_record.exc_info is None  # peer misbehaviour: one line
    assert bug_record.exc_info is not None  # our bug: with traceback


async def test_safe_handler_never_swallows_cancellation():
    stream = FakeStream()

    async def waits(stream):
        await trio.sleep_forever()

    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            scope.cancel()
            await compat.safe_handler(waits)(as_net_stream(stream))
        assert scope.cancelled_caught
        assert stream.resets == 0


async def test_safe_handler_splits_groups_and_reraises_base_exceptions():
    stream = FakeStream()

    async def mixed(stream):
        raise BaseExceptionGroup("both", [ValueError("bug"), KeyboardInterrupt()])

    with trio.fail_after(10):
        with pytest.raises(BaseExceptionGroup) as raised:
            await compat.safe_handler(mixed)(as_net_stream(stream))
    assert [type(e) for e in raised.value.exceptions] == [KeyboardInterrupt]
    assert stream.resets == 1


def test_advertised_addrs_replace_wildcards():
    addrs = [
        Multiaddr("/ip4/0.0.0.0/tcp/4001"),
        Multiaddr("/ip6/::/tcp/4001"),
        Multiaddr("/ip4/192.0.2.7/tcp/4002"),
    ]
    out = [str(a) for a in compat.advertised_addrs(addrs)]
    assert "/ip4/127.0.0.1/tcp/4001" in out
    assert "/ip6/::1/tcp/4001" in out
    assert "/ip4/192.0.2.7/tcp/4002" in out
    assert not [a for a in out if a.startswith(("/ip4/0.0.0.0/", "/ip6/::/"))]
    assert len(out) == len(set(out))


@pytest.fixture
def pristine_libp2p_loggers() -> Iterator[None]:
    names = ["libp2p", "libp2p.kad_dht.kad_dht"]
    saved = {
        n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers))
        for n in names
    }
    try:
        yield
    finally:
        for name, (level, handlers) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.handlers[:] = handlers


@pytest.mark.usefixtures("pristine_libp2p_loggers")
def test_configure_libp2p_logging_attaches_once_and_quiets_the_dht():
    handler = logging.NullHandler()
    compat.configure_libp2p_logging([handler])
    compat.configure_libp2p_logging([handler])
    libp2p_logger = logging.getLogger("libp2p")
    assert libp2p_logger.handlers.count(handler) == 1
    assert libp2p_logger.level == logging.WARNING
    assert logging.getLogger("libp2p.kad_dht.kad_dht").level == logging.ERROR
    assert logging.getLogger().handlers.count(handler) == 0  # root untouched
