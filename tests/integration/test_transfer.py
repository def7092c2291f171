"""The transfer protocol between real nodes in one trio process (loopback).

Key gating with a raw protocol client, a lying provider, partial seeding,
and a garbage-sending peer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from p2pshare.config import Home
from p2pshare.errors import AccessDenied
from p2pshare.format import FileKeys, ShareLink, block_id, new_file_key
from p2pshare.node import xfer_server
from p2pshare.node.provider import ProviderConn
from p2pshare.node.service import XFER_PROTOCOL, open_node
from p2pshare.protocol import FrameDecoder, Open, encode_frame
from p2pshare.protocol.proof import make_proof
from p2pshare.store import LocalStore
from p2pshare.store.adder import add_path

pytestmark = pytest.mark.integration

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
CS = 64 * 1024


def _add(home: Path, path: Path, *, chunk_size: int = CS) -> tuple[bytes, bytes]:
    with LocalStore(Home(home)) as store:
        added = add_path(store, path, copy=True, chunk_size=chunk_size)
    return added.root, added.key


async def test_key_gating_with_a_raw_client(tmp_path: Path) -> None:
    src = tmp_path / "secret.bin"
    src.write_bytes(os.urandom(5 * CS))
    root, key = _add(tmp_path / "a", src)
    with trio.fail_after(60):
        async with (
            open_node(Home(tmp_path / "a"), listen=LOOPBACK) as server,
            open_node(Home(tmp_path / "b"), listen=LOOPBACK) as client,
            trio.open_nursery() as nursery,
        ):
            [addr] = server.addrs()[:1]

            async def conn() -> ProviderConn:
                pc = await client.dial(addr, nursery)
                assert pc is not None
                return pc

            # no key: a proof made with a random key
            pc = await conn()
            with pytest.raises(AccessDenied):
                await pc.open(root, FileKeys.from_key(new_file_key()).signing_key)
            # the wrong key of another share
            with pytest.raises(AccessDenied):
                await pc.open(root, FileKeys.from_key(os.urandom(32)).signing_key)
            # a valid proof from another connection, replayed here (raw frames)
            other = await conn()
            good = FileKeys.from_key(key).signing_key
            assert other.conn.challenge is not None
            replay = make_proof(
                good,
                root,
                other.conn.local_peer,
                other.conn.remote_peer,
                other.conn.challenge,
            )
            peer_id = await client.host.connect(addr)
            raw = await client.host.open_stream(peer_id, XFER_PROTOCOL)
            decoder = FrameDecoder()
            received = b""
            frames: list[dict[str, object]] = []
            await raw.send_all(
                encode_frame(Open(sid=1, root=root, proof=replay).to_wire())
            )
            while len(frames) < 2:
                data = await raw.receive_some(65536)
                assert data, "server closed without answering"
                received += data
                decoder.receive_data(data)
                while (frame := decoder.next_frame()) is not None:
                    frames.append(frame)
            assert [f["t"] for f in frames] == ["hello", "refused"]
            assert frames[1]["code"] == "access_denied"
            # a refused open carried no share data: just the two small frames
            assert len(received) < 200
            await raw.aclose()
            assert pc.bytes_received < 400
            # and the right key works on the same kind of connection
            opened = await other.open(root, good)
            assert block_id(opened.envelope) == root
            nursery.cancel_scope.cancel()
    assert server.server.stats.refused >= 3


async def test_lying_provider_is_banned_and_output_is_exact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(40 * CS))
    root, key = _add(tmp_path / "honest", src)
    import shutil

    shutil.copytree(tmp_path / "honest", tmp_path / "liar")
    (tmp_path / "liar" / "identity.key").unlink(missing_ok=True)
    original = xfer_server._read
    liars: set[int] = set()

    def corrupting(share, kind, index):
        data = original(share, kind, index)
        if kind == "chunk" and id(share.store) in liars:
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    monkeypatch.setattr(xfer_server, "_read", corrupting)
    caplog.set_level(logging.WARNING)
    out = tmp_path / "out"
    with trio.fail_after(90):
        async with (
            open_node(
                Home(tmp_path / "honest"), listen=LOOPBACK, upload_rate=4 << 20
            ) as honest,
            open_node(Home(tmp_path / "liar"), listen=LOOPBACK) as liar,
            open_node(Home(tmp_path / "dl"), listen=LOOPBACK) as dl,
        ):
            liars.add(id(liar.store))
            link = ShareLink(
                root_id=root, key=key, peers=(liar.addrs()[0], honest.addrs()[0])
            )
            result = await dl.get(link, out, timeout_s=30, use_dht=False)
    assert (out / "f.bin").read_bytes() == src.read_bytes()
    assert result.size == src.stat().st_size
    assert dl.last_download.bans >= 1
    assert any(
        "banned" in r.getMessage() and "fails verification" in r.getMessage()
        for r in caplog.records
    )


async def test_partial_seeding(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(64 * CS))
    root, key = _add(tmp_path / "a", src)
    keys = FileKeys.from_key(key)
    with trio.fail_after(90):
        async with (
            open_node(
                Home(tmp_path / "a"), listen=LOOPBACK, upload_rate=512 << 10
            ) as a,
            open_node(Home(tmp_path / "b"), listen=LOOPBACK) as b,
            open_node(Home(tmp_path / "c"), listen=LOOPBACK) as c,
            trio.open_nursery() as nursery,
        ):
            link = ShareLink(root_id=root, key=key, peers=(a.addrs()[0],))
            nursery.start_soon(b.get, link, tmp_path / "out-b")
            # wait until B has verified some chunks (it checkpoints at most
            # every second), then ask B, not A
            while True:
                dl = b.store.catalog.download_of(root)
                if dl is not None and sum(bin(x).count("1") for x in dl.bitmap) >= 4:
                    break
                await trio.sleep(0.05)
            pc = await c.dial(b.addrs()[0], nursery)
            assert pc is not None
            opened = await pc.open(root, keys.signing_key)
            assert opened.have is not None
            have = [i for i in range(64) if opened.have[i >> 3] >> (i & 7) & 1]
            assert 4 <= len(have) < 64
            from p2pshare.format import Envelope

            env = Envelope.verify_and_decode(root, opened.envelope)
            for i in have[:3]:
                data = await pc.fetch(opened.sid, "chunk", i)
                assert data is not None
                assert block_id(data) == env.chunk_ids[i * 32 : (i + 1) * 32]  # type: ignore[index]
            missing = next(i for i in range(64) if i not in have)
            assert await pc.fetch(opened.sid, "chunk", missing) is None
            nursery.cancel_scope.cancel()


async def test_garbage_peer_is_dropped_and_others_are_served(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3 * CS))
    root, key = _add(tmp_path / "a", src)
    with trio.fail_after(60):
        async with (
            open_node(Home(tmp_path / "a"), listen=LOOPBACK) as a,
            open_node(Home(tmp_path / "evil"), listen=LOOPBACK) as evil,
            open_node(Home(tmp_path / "b"), listen=LOOPBACK) as b,
        ):
            peer_id = await evil.host.connect(a.addrs()[0])
            stream = await evil.host.open_stream(peer_id, XFER_PROTOCOL)
            await stream.receive_some(4096)  # the Hello
            await stream.send_all(b"\xff\xff\xff\xff" + os.urandom(1000))
            with trio.fail_after(10):
                while await stream.receive_some(4096):
                    pass  # the server says Bye and closes
            await stream.aclose()
            out = tmp_path / "out"
            link = ShareLink(root_id=root, key=key, peers=(a.addrs()[0],))
            await b.get(link, out, timeout_s=20, use_dht=False)
            assert (out / "f.bin").read_bytes() == src.read_bytes()
            assert a.server.stats.protocol_errors >= 1


async def test_want_on_a_closing_provider_is_provider_gone(tmp_path: Path) -> None:
    """A provider being closed (banned) is gone for every caller: a want
    racing its goodbye used to raise LocalProtocolError ("cannot send want
    in state LOCAL_CLOSED") and abort the whole download."""
    from p2pshare.node.provider import ProviderGone

    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(4 * CS))
    root, key = _add(tmp_path / "a", src)
    with trio.fail_after(60):
        async with (
            open_node(Home(tmp_path / "a"), listen=LOOPBACK) as a,
            open_node(Home(tmp_path / "b"), listen=LOOPBACK) as b,
            trio.open_nursery() as nursery,
        ):
            pc = await b.dial(a.addrs()[0], nursery)
            assert pc is not None
            opened = await pc.open(root, FileKeys.from_key(key).signing_key)
            async with pc._lock:  # the goodbye's send waits here
                nursery.start_soon(pc.aclose)
                await wait_all_tasks_blocked()
                with pytest.raises(ProviderGone):
                    await pc.want(opened.sid, "chunk", 0)
            nursery.cancel_scope.cancel()


async def test_bad_envelope_first_then_an_honest_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider that answers first sends a bad envelope; the honest one
    is found a moment later. Session opening used to give up after the first
    round ("no provider could serve it"); it now bans the liar and waits for
    the next provider, within the download's time bound."""
    from p2pshare.protocol.xfer import ServerConnection

    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(6 * CS))
    root, key = _add(tmp_path / "honest", src)
    import shutil

    shutil.copytree(tmp_path / "honest", tmp_path / "liar")
    (tmp_path / "liar" / "identity.key").unlink(missing_ok=True)
    liars: set[bytes] = set()
    accept = ServerConnection.accept

    def lying_accept(self, sid, envelope, have=None, column=None):
        if self.local_peer in liars:
            envelope = envelope[:-1] + bytes([envelope[-1] ^ 1])
        return accept(self, sid, envelope, have, column)

    monkeypatch.setattr(ServerConnection, "accept", lying_accept)
    out = tmp_path / "out"
    with trio.fail_after(60):
        async with (
            open_node(Home(tmp_path / "honest"), listen=LOOPBACK) as honest,
            open_node(Home(tmp_path / "liar"), listen=LOOPBACK) as liar,
            open_node(Home(tmp_path / "dl"), listen=LOOPBACK) as dl,
        ):
            liars.add(liar.host.peer_id_bytes)
            dial = dl.dial

            async def honest_comes_later(peer, nursery):
                if peer == honest.addrs()[0]:
                    await trio.sleep(1.0)
                return await dial(peer, nursery)

            monkeypatch.setattr(dl, "dial", honest_comes_later)
            link = ShareLink(
                root_id=root, key=key, peers=(liar.addrs()[0], honest.addrs()[0])
            )
            await dl.get(link, out, timeout_s=20, use_dht=False)
    assert (out / "f.bin").read_bytes() == src.read_bytes()
