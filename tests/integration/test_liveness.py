"""Every download ends: real nodes on loopback against providers patched to
misbehave in each way a hostile or vanishing peer can (issue 13).

Each provider is a real node whose xfer server is patched for its peer id
only: it lies on chunks, stalls after the chunk map, answers ``missing``,
removes the share mid-download, or sends a bad envelope. A download whose
only providers misbehave must end with a typed error that says why, within
its bounds (``trio.fail_after`` is the bound, not a timing assertion); a
download that also has an honest provider must finish byte-exact, every
time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pshare.config import Home
from p2pshare.errors import BlockMissing, NoProviders, TransferTimeout
from p2pshare.format import ShareLink
from p2pshare.node import xfer_server
from p2pshare.node.service import Node, open_node
from p2pshare.protocol.xfer import ServerConnection
from p2pshare.store import LocalStore
from p2pshare.store.adder import add_path

pytestmark = pytest.mark.integration

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
CS = 64 * 1024
STALL_S = 3.0  # the downloads' stall bound in these tests
TIMEOUT_S = 20.0  # their --timeout


def _add(home: Path, path: Path, *, copy: bool = True) -> tuple[bytes, bytes]:
    with LocalStore(Home(home)) as store:
        added = add_path(store, path, copy=copy, chunk_size=CS)
    return added.root, added.key


def _clone(tmp_path: Path, src: str, dst: str) -> Path:
    """Another home holding the same shares, with its own identity."""
    shutil.copytree(tmp_path / src, tmp_path / dst)
    (tmp_path / dst / "identity.key").unlink(missing_ok=True)
    (tmp_path / dst / "listen-port").unlink(missing_ok=True)
    return tmp_path / dst


class Misbehaviour:
    """Which nodes misbehave, and how. Patches the xfer server once; each
    behaviour applies only to the nodes added to its set (chunk reads are
    told apart by the node's store, sessions by the node's peer id)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.liars: set[int] = set()  # id(store): corrupt every chunk
        self.partial_liars: set[int] = set()  # id(store): every third chunk
        self.missing: set[int] = set()  # id(store): answer `missing` for all
        self.stallers: set[bytes] = set()  # peer id: never send a chunk
        self.bad_envelope: set[bytes] = set()  # peer id
        read = xfer_server._read

        def patched_read(share: Any, kind: str, index: int) -> bytes:
            store = id(share.store)
            if kind == "chunk" and store in self.missing:
                raise BlockMissing(f"chunk {index}: not here")
            data = read(share, kind, index)
            bad = store in self.liars or (
                store in self.partial_liars and index % 3 == 1
            )
            if kind == "chunk" and bad:
                return data[:-1] + bytes([data[-1] ^ 1])
            return data

        monkeypatch.setattr(xfer_server, "_read", patched_read)
        send_wanted = xfer_server._Session._send_wanted
        stallers = self.stallers

        async def patched_send(session: Any) -> None:
            if session.server.local_peer not in stallers:
                await send_wanted(session)
                return
            async for _want in session.wants_out:
                pass  # takes every want, never answers one

        monkeypatch.setattr(xfer_server._Session, "_send_wanted", patched_send)
        accept = ServerConnection.accept
        bad_envelope = self.bad_envelope

        def lying_accept(
            conn: ServerConnection,
            sid: int,
            envelope: bytes,
            have: Any = None,
            column: int | None = None,
        ) -> bytes:
            if conn.local_peer in bad_envelope:
                envelope = envelope[:-1] + bytes([envelope[-1] ^ 1])
            return accept(conn, sid, envelope, have, column)

        monkeypatch.setattr(ServerConnection, "accept", lying_accept)


@asynccontextmanager
async def nodes(*homes: Path, **kw: Any) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(open_node(Home(h), listen=LOOPBACK, **kw))
            for h in homes
        ]


def _link(root: bytes, key: bytes, *providers: Node) -> ShareLink:
    return ShareLink(
        root_id=root, key=key, peers=tuple(p.addrs()[0] for p in providers)
    )


@pytest.fixture
def share(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(12 * CS + 5))
    root, key = _add(tmp_path / "p", src)
    return src, root, key


async def _get_fails(
    dl: Node, link: ShareLink, out: Path, *, use_dht: bool = False
) -> Exception:
    with pytest.raises((NoProviders, TransferTimeout)) as info:
        await dl.get(link, out, timeout_s=TIMEOUT_S, stall_s=STALL_S, use_dht=use_dht)
    assert not (out / "f.bin").exists()  # nothing unverified at the final path
    return info.value


@pytest.mark.parametrize("use_dht", [False, True], ids=["hints", "hints+dht"])
async def test_the_only_provider_lies_on_every_chunk(
    tmp_path: Path,
    share: tuple[Path, bytes, bytes],
    monkeypatch: pytest.MonkeyPatch,
    use_dht: bool,
) -> None:
    """The liar is banned; with the DHT on, its endless search used to keep
    the download open for good: now one more lookup round finds nobody and
    the download ends."""
    _src, root, key = share
    bad = Misbehaviour(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with nodes(tmp_path / "p", dht_mode="server") as [p]:
            bad.liars.add(id(p.store))
            async with nodes(tmp_path / "dl", bootstrap=[p.addrs()[0]]) as [dl]:
                err = await _get_fails(
                    dl, _link(root, key, p), tmp_path / "out", use_dht=use_dht
                )
                assert isinstance(err, NoProviders), err
                assert "the only provider failed: 1 banned (bad chunk)" in str(err)
                assert key.hex() not in str(err)
                # the node is fine: it still answers and serves
                assert (await dl.status())["peer_id"]


async def test_the_only_provider_stalls_after_the_chunk_map(
    tmp_path: Path, share: tuple[Path, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    _src, root, key = share
    bad = Misbehaviour(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with nodes(tmp_path / "p", tmp_path / "dl") as [p, dl]:
            bad.stallers.add(p.host.peer_id_bytes)
            err = await _get_fails(dl, _link(root, key, p), tmp_path / "out")
            assert isinstance(err, TransferTimeout), err
            assert err.exit_code == 7
            assert f"1 stalled (no data for {STALL_S:g} s)" in str(err)


async def test_the_only_provider_answers_missing(
    tmp_path: Path, share: tuple[Path, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    _src, root, key = share
    bad = Misbehaviour(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with nodes(tmp_path / "p", tmp_path / "dl") as [p, dl]:
            bad.missing.add(id(p.store))
            err = await _get_fails(dl, _link(root, key, p), tmp_path / "out")
            assert isinstance(err, NoProviders)
            assert err.exit_code == 3
            assert "1 lack the chunks still needed" in str(err)


async def test_the_only_provider_removes_the_share_mid_download(
    tmp_path: Path, share: tuple[Path, bytes, bytes]
) -> None:
    """``rm`` on the provider while a download runs: its open sessions say
    ``removed`` at once, and the download ends saying so."""
    _src, root, key = share
    with trio.fail_after(TIMEOUT_S):
        async with (
            nodes(tmp_path / "p", upload_rate=4 * CS) as [p],
            nodes(tmp_path / "dl") as [dl],
            trio.open_nursery() as nursery,
        ):
            got: list[int] = []  # progress comes from trio and from a thread
            removed = trio.Event()

            async def rm_after_first_chunk() -> None:
                while not got:  # noqa: ASYNC110 - nothing to wait on across threads
                    await trio.sleep(0.01)
                await p.remove(root)
                removed.set()

            nursery.start_soon(rm_after_first_chunk)
            with pytest.raises(NoProviders) as info:
                await dl.get(
                    _link(root, key, p),
                    tmp_path / "out",
                    timeout_s=TIMEOUT_S,
                    stall_s=TIMEOUT_S,  # "removed" ends it, not the stall bound
                    use_dht=False,
                    progress=got.append,
                )
            assert removed.is_set()
            assert "the only provider failed: 1 removed the share" in str(info.value)
            assert sum(got) < 12 * CS


async def test_the_only_source_is_a_seed_with_a_corrupt_replica(
    tmp_path: Path, share: tuple[Path, bytes, bytes]
) -> None:
    """The owner is gone; the seed's replica has a corrupt block. The seed
    checks what it reads and answers ``missing`` for that chunk (a seed that
    sent it anyway would be banned): the download ends, naming it."""
    from p2pshare.node import replicate as rep
    from p2pshare.node.seed_policy import SeedPolicy

    _src, root, key = share
    with trio.fail_after(2 * TIMEOUT_S):
        async with nodes(
            tmp_path / "seed", dht_mode="server", seed=SeedPolicy(admission="open")
        ) as [seed]:
            async with nodes(tmp_path / "p") as [owner]:
                rows = await rep.replicate(
                    owner, root, 1, seeds=[seed.addrs()[0]], use_dht=False
                )
                assert [r.state for r in rows] == ["complete"]
            env = seed.store.blocks.path(root)
            blocks = sorted(
                p for p in seed.store.blocks.root.rglob("*") if p.is_file() and p != env
            )
            victim = blocks[len(blocks) // 2]
            data = bytearray(victim.read_bytes())
            data[len(data) // 2] ^= 1
            victim.write_bytes(bytes(data))
            async with nodes(tmp_path / "dl") as [dl]:
                err = await _get_fails(dl, _link(root, key, seed), tmp_path / "out")
            assert isinstance(err, NoProviders)
            assert "the only provider failed" in str(err)


async def _exact_runs(
    tmp_path: Path,
    src: Path,
    link_of: Callable[[], ShareLink],
    runs: int,
) -> None:
    """``runs`` fresh downloaders each get the share byte-exact."""
    for n in range(runs):
        out = tmp_path / f"out{n}"
        async with nodes(tmp_path / f"dl{n}") as [dl]:
            await dl.get(
                link_of(), out, timeout_s=TIMEOUT_S, stall_s=TIMEOUT_S, use_dht=False
            )
        assert _same(out / "f.bin", src), f"run {n}"
        shutil.rmtree(tmp_path / f"dl{n}")


def _same(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


async def test_a_liar_on_some_chunks_beside_an_honest_provider_20_of_20(
    tmp_path: Path, share: tuple[Path, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Used to abort 3 runs in 5: a want racing the liar's goodbye raised
    "cannot send want in state LOCAL_CLOSED"."""
    src, root, key = share
    _clone(tmp_path, "p", "liar")
    bad = Misbehaviour(monkeypatch)
    with trio.fail_after(20 * TIMEOUT_S):
        async with nodes(tmp_path / "p", tmp_path / "liar") as [honest, liar]:
            bad.partial_liars.add(id(liar.store))
            await _exact_runs(
                tmp_path, src, lambda: _link(root, key, liar, honest), runs=20
            )
            assert liar.server.stats.blocks_sent > 0  # it did get to lie


async def test_a_bad_envelope_beside_an_honest_provider_20_of_20(
    tmp_path: Path, share: tuple[Path, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Used to abort 3 runs in 12 with "no provider could serve it"."""
    src, root, key = share
    _clone(tmp_path, "p", "liar")
    bad = Misbehaviour(monkeypatch)
    with trio.fail_after(20 * TIMEOUT_S):
        async with nodes(tmp_path / "p", tmp_path / "liar") as [honest, liar]:
            bad.bad_envelope.add(liar.host.peer_id_bytes)
            await _exact_runs(
                tmp_path, src, lambda: _link(root, key, liar, honest), runs=20
            )


async def test_every_kind_of_failure_is_named(
    tmp_path: Path, share: tuple[Path, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three providers failing three ways: one error line says how each did."""
    _src, root, key = share
    for name in ("liar", "staller"):
        _clone(tmp_path, "p", name)
    bad = Misbehaviour(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with nodes(
            tmp_path / "p", tmp_path / "liar", tmp_path / "staller", tmp_path / "dl"
        ) as [p, liar, staller, dl]:
            bad.missing.add(id(p.store))
            bad.liars.add(id(liar.store))
            bad.stallers.add(staller.host.peer_id_bytes)
            err = await _get_fails(
                dl, _link(root, key, p, liar, staller), tmp_path / "out"
            )
            text = str(err)
            assert "all 3 providers failed:" in text
            for part in ("1 banned (bad chunk)", "1 stalled", "1 lack the chunks"):
                assert part in text, text


# -- seeds cannot be starved ---------------------------------------------------------
def _pin_request(seed: Node, owner: Node, root: bytes, key: bytes) -> Any:
    import time

    from p2pshare.format import FileKeys
    from p2pshare.format.grant import make_grant
    from p2pshare.protocol import pin as pinproto

    grant = make_grant(
        FileKeys.from_key(key).signing_key,
        root,
        seed.host.peer_id_bytes,
        int(time.time()) + 600,
    )
    return pinproto.PinRequest(
        root=root,
        grant=grant.to_bytes(),
        lease_s=600,
        size=4 * CS,
        hints=(owner.addrs()[0],),
    )


async def _pin(seed: Node, owner: Node, root: bytes, key: bytes) -> None:
    from p2pshare.node import replicate as rep

    await owner.host.connect(seed.addrs()[0])
    await rep.call(owner, seed.host.peer_id, _pin_request(seed, owner, root, key))


async def _pin_state(seed: Node, root: bytes) -> str:
    assert seed.seed is not None
    status = await seed.seed.status(root)
    return str(status.state)


async def _wait_state(seed: Node, root: bytes, states: set[str]) -> str:
    while (state := await _pin_state(seed, root)) not in states:  # noqa: ASYNC110
        await trio.sleep(0.05)
    return state


def _files(tmp_path: Path, names: list[str]) -> dict[str, tuple[bytes, bytes]]:
    out = {}
    for name in names:
        src = tmp_path / f"{name}.bin"
        src.write_bytes(os.urandom(3 * CS + 11))
        out[name] = _add(tmp_path / name, src)
    return out


async def test_eight_stalling_owners_cannot_starve_an_open_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 owners send an envelope and then no chunk: they hold all 8 fetch
    slots, but only until the seed's stall bound; then their pins fail,
    their partial blocks are deleted and their reserved bytes freed, and
    the honest owner, who asked last, gets its replica."""
    from p2pshare.node.seed_policy import MAX_CONCURRENT_FETCHES, SeedPolicy

    stallers = [f"s{i}" for i in range(MAX_CONCURRENT_FETCHES)]
    shares = _files(tmp_path, [*stallers, "honest"])
    bad = Misbehaviour(monkeypatch)
    policy = SeedPolicy(admission="open", fetch_stall_s=STALL_S)
    with trio.fail_after(60):
        async with (
            nodes(tmp_path / "seed", dht_mode="server", seed=policy) as [seed],
            nodes(*(tmp_path / n for n in [*stallers, "honest"])) as owners,
        ):
            *bad_owners, honest = owners
            for o in bad_owners:
                bad.stallers.add(o.host.peer_id_bytes)
            for name, o in zip(stallers, bad_owners, strict=True):
                root, key = shares[name]
                await _pin(seed, o, root, key)
            # every slot is taken by a staller before the honest owner asks
            assert seed.seed is not None
            slots = seed.seed._fetch_slots
            while slots.borrowed_tokens < len(stallers):  # noqa: ASYNC110
                await trio.sleep(0.05)
            root, key = shares["honest"]
            await _pin(seed, honest, root, key)
            state = await _wait_state(seed, root, {"complete", "failed"})
            assert state == "complete"
            for name in stallers:
                final = await _wait_state(seed, shares[name][0], {"complete", "failed"})
                assert final == "failed", name
            catalog = seed.store.catalog
            (kept,) = [p for p in catalog.pins() if p.state != "failed"]
            assert kept.root == root
            assert catalog.pinned_bytes() == kept.size  # the stalled ones' freed
            for name, o in zip(stallers, bad_owners, strict=True):
                used = catalog.balance(o.host.peer_id_bytes, 0)[1]
                assert used == 0, name
                # their envelope (kept once it verified) is deleted again
                assert not seed.store.blocks.has(shares[name][0]), name


async def test_one_owner_cannot_hold_every_fetch_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner with more stalling pins than its share of slots: another
    owner's pin starts at once, long before the stall bound."""
    from p2pshare.node import seed as seedmod
    from p2pshare.node.seed_policy import SeedPolicy

    monkeypatch.setattr(seedmod, "MAX_CONCURRENT_FETCHES", 3)
    greedy = tmp_path / "greedy"
    roots = []
    for i in range(3):
        src = tmp_path / f"g{i}.bin"
        src.write_bytes(os.urandom(2 * CS))
        roots.append(_add(greedy, src))
    shares = _files(tmp_path, ["honest"])
    bad = Misbehaviour(monkeypatch)
    policy = SeedPolicy(admission="open", fetch_stall_s=600)
    with trio.fail_after(30):
        async with (
            nodes(tmp_path / "seed", dht_mode="server", seed=policy) as [seed],
            nodes(greedy, tmp_path / "honest") as [g, honest],
        ):
            bad.stallers.add(g.host.peer_id_bytes)
            for root, key in roots:
                await _pin(seed, g, root, key)
            root, key = shares["honest"]
            await _pin(seed, honest, root, key)
            assert await _wait_state(seed, root, {"complete", "failed"}) == "complete"
            states = [await _pin_state(seed, r) for r, _k in roots]
            assert states == ["fetching"] * 3  # still stalling, within its 2 slots
