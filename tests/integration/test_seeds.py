"""Seeds and an owner in one trio process (real libp2p nodes on loopback).

Grant checks on a seed's xfer server, storage proofs that catch a deleted or
corrupted block, repair, and the storage limit with nothing left behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio
from nacl.signing import SigningKey

from p2pshare.config import Home
from p2pshare.errors import AccessDenied
from p2pshare.format import FileKeys
from p2pshare.format.grant import make_grant
from p2pshare.node import replica_check as chk
from p2pshare.node import replicate as rep
from p2pshare.node.seed_policy import SeedPolicy
from p2pshare.node.service import Node, open_node
from p2pshare.protocol import pin as pinproto
from p2pshare.store import LocalStore
from p2pshare.store.adder import add_path

pytestmark = pytest.mark.integration

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
CS = 64 * 1024


def _add(home: Path, path: Path) -> tuple[bytes, bytes]:
    with LocalStore(Home(home)) as store:
        added = add_path(store, path, copy=False, chunk_size=CS)
    return added.root, added.key


@asynccontextmanager
async def swarm(
    tmp_path: Path, regions: list[str], *, max_storage: int | None = None
) -> AsyncIterator[tuple[Node, list[Node]]]:
    """An owner (DHT server, home tmp/owner) and one open seed per region."""
    async with AsyncExitStack() as stack:
        owner = await stack.enter_async_context(
            open_node(Home(tmp_path / "owner"), listen=LOOPBACK, dht_mode="server")
        )
        seeds = []
        for i, region in enumerate(regions):
            seeds.append(
                await stack.enter_async_context(
                    open_node(
                        Home(tmp_path / f"seed{i}"),
                        listen=LOOPBACK,
                        dht_mode="server",
                        bootstrap=[owner.addrs()[0]],
                        seed=SeedPolicy(
                            region=region, max_storage=max_storage, admission="open"
                        ),
                    )
                )
            )
        yield owner, seeds


def _pin_state(seed: Node, root: bytes) -> str | None:
    pin = seed.store.catalog.get_pin(root)
    return None if pin is None else pin.state


def _addrs(seeds: list[Node]) -> list[str]:
    return [s.addrs()[0] for s in seeds]


def _chunk_blocks(node: Node) -> list[Path]:
    return [p for p in (node.store.blocks.root).rglob("*") if p.is_file()]


async def test_replicate_check_detects_deleted_and_corrupt_blocks_and_repair(
    tmp_path: Path,
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(12 * CS + 7))
    root, _key = _add(tmp_path / "owner", src)
    with trio.fail_after(120):
        async with swarm(tmp_path, ["eu", "us", "ap"]) as (owner, seeds):
            seen: list[tuple[str, str]] = []
            rows = await rep.replicate(
                owner,
                root,
                2,
                seeds=_addrs(seeds),
                use_dht=False,
                progress=lambda s, _h, _c, st: seen.append((s, st)),
            )
            assert len(rows) == 2
            assert {r.state for r in rows} == {"complete"}
            assert len({r.region for r in rows}) == 2  # distinct regions
            by_id = {s.peer_id: s for s in seeds}
            holders = [by_id[r.seed] for r in rows]
            spare = next(s for s in seeds if s not in holders)
            for h in holders:
                assert h.store.catalog.get_share(root).key is None  # no key on a seed
            results = await chk.check(owner, root, use_dht=False)
            assert sorted(r.seed for r in results if r.ok) == sorted(
                r.seed for r in rows
            )

            # one seed loses a chunk block, the other has one corrupted
            env_block = holders[0].store.blocks.path(root)
            lost = next(p for p in _chunk_blocks(holders[0]) if p != env_block)
            lost.unlink()
            # corrupt every chunk block of the second holder (a proof samples
            # some chunks; all must be bad for the test to be deterministic)
            env2 = holders[1].store.blocks.path(root)
            for p in _chunk_blocks(holders[1]):
                if p != env2:
                    data = bytearray(p.read_bytes())
                    data[len(data) // 2] ^= 1
                    p.write_bytes(bytes(data))
            # delete every chunk block of holder 0 too, so the sample hits one
            for p in _chunk_blocks(holders[0]):
                if p != env_block:
                    p.unlink()
            results = await chk.check(owner, root, use_dht=False)
            assert {r.seed: r.ok for r in results} == {
                holders[0].peer_id: False,
                holders[1].peer_id: False,
            }
            assert all("storage proof" in r.detail for r in results), results

            # repair: the spare seed takes a replica; the failed ones are forgotten
            _checked, rows = await chk.repair(
                owner, root, 1, seeds=_addrs(seeds), use_dht=False
            )
            assert [r.seed for r in rows] == [spare.peer_id]
            results = await chk.check(owner, root, use_dht=False)
            assert [(r.seed, r.ok) for r in results if r.ok] == [(spare.peer_id, True)]


async def test_seed_refuses_no_key_forged_expired_and_other_peer_grants(
    tmp_path: Path,
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3 * CS))
    root, key = _add(tmp_path / "owner", src)
    keys = FileKeys.from_key(key)
    with trio.fail_after(90):
        async with swarm(tmp_path, ["eu"]) as (owner, (seed,)):
            await rep.replicate(owner, root, 1, seeds=_addrs([seed]), use_dht=False)
            async with (
                open_node(Home(tmp_path / "x"), listen=LOOPBACK) as x,
                trio.open_nursery() as nursery,
            ):
                me = x.host.peer_id_bytes
                later = int(time.time()) + 3600
                wrong_key = SigningKey.generate()
                cases: dict[str, SigningKey | bytes] = {
                    "no key (a wrong key's proof)": wrong_key,
                    "forged grant": make_grant(wrong_key, root, me, later).to_bytes(),
                    "expired grant": make_grant(
                        keys.signing_key, root, me, int(time.time()) - 1
                    ).to_bytes(),
                    "grant for another peer": make_grant(
                        keys.signing_key, root, owner.host.peer_id_bytes, later
                    ).to_bytes(),
                }
                # two per stream: the seed drops a stream after 3 failures,
                # and takes at most 4 streams from one peer
                items = list(cases.items())
                for pair in (items[:2], items[2:]):
                    pc = await x.dial(seed.addrs()[0], nursery)
                    assert pc is not None
                    for what, access in pair:
                        with pytest.raises(AccessDenied, match=r"proof|grant"):
                            await pc.open(root, access)
                        assert not pc.dead, what
                # and a valid grant for this peer opens it
                pc = await x.dial(seed.addrs()[0], nursery)
                assert pc is not None
                good = make_grant(keys.signing_key, root, me, later).to_bytes()
                opened = await pc.open(root, good)
                assert opened.envelope
                nursery.cancel_scope.cancel()


async def test_max_storage_is_enforced_and_nothing_partial_stays(
    tmp_path: Path,
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(40 * CS))
    root, key = _add(tmp_path / "owner", src)
    keys = FileKeys.from_key(key)
    with trio.fail_after(90):
        async with swarm(tmp_path, ["eu"], max_storage=16 * CS) as (owner, (seed,)):
            # the owner sees the seed has no room, and says so
            with pytest.raises(rep.ReplicationError, match="storage full") as err:
                await rep.replicate(owner, root, 1, seeds=_addrs([seed]), use_dht=False)
            assert "0 of 1 replicas" in str(err.value)
            assert "2.5 MiB" in str(err.value)  # what it needs
            # the seed itself refuses a pin over its limit
            grant = make_grant(
                keys.signing_key, root, seed.host.peer_id_bytes, int(time.time()) + 60
            ).to_bytes()
            req = pinproto.PinRequest(
                root=root, grant=grant, lease_s=60, size=40 * CS, hints=()
            )
            resp = await rep.call(owner, seed.host.peer_id, req)
            assert isinstance(resp, pinproto.PinRefused)
            assert resp.code == "storage_full"
            assert "storage full" in resp.message
            # an owner that under-declares the size: the seed finds out from
            # the envelope, fails the pin and deletes what it fetched
            lying = pinproto.PinRequest(
                root=root,
                grant=grant,
                lease_s=60,
                size=8 * CS,
                hints=(owner.addrs()[0],),
            )
            resp = await rep.call(owner, seed.host.peer_id, lying)
            assert isinstance(resp, pinproto.PinStatus)
            while resp.state == "fetching":
                await trio.sleep(0.05)
                resp = await rep.call(
                    owner, seed.host.peer_id, pinproto.StatusRequest(root=root)
                )
                assert isinstance(resp, pinproto.PinStatus)
            assert resp.state == "failed"
            assert "reserved" in (resp.error or "")
            assert _chunk_blocks(seed) == []
            assert [p.state for p in seed.store.catalog.pins()] == ["failed"]
            assert owner.store.catalog.replicas(root) == []


async def test_a_hostile_owner_cannot_reserve_or_queue_without_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2pshare.node import seed as seedmod

    monkeypatch.setattr(seedmod, "MAX_FETCHING_PER_PEER", 1)
    files = {}
    for name in ("a", "b", "nobody"):
        files[name] = tmp_path / f"{name}.bin"
        files[name].write_bytes(os.urandom(3 * CS))
    ra, ka = _add(tmp_path / "owner", files["a"])
    rb, kb = _add(tmp_path / "owner", files["b"])
    rz, kz = _add(tmp_path / "z", files["nobody"])  # a home that never runs
    with trio.fail_after(90):
        async with swarm(tmp_path, ["eu"]) as (owner, (seed,)):
            me = seed.host.peer_id_bytes
            later = int(time.time()) + 600

            def pin(
                root: bytes, key: bytes, size: int, hints: tuple[str, ...] = ()
            ) -> pinproto.PinRequest:
                grant = make_grant(FileKeys.from_key(key).signing_key, root, me, later)
                return pinproto.PinRequest(
                    root=root,
                    grant=grant.to_bytes(),
                    lease_s=600,
                    size=size,
                    hints=hints,
                )

            async def ask(req: pinproto.Request) -> object:
                return await rep.call(owner, seed.host.peer_id, req)

            huge = await ask(pin(ra, ka, 1 << 62))
            assert isinstance(huge, pinproto.PinRefused)
            assert huge.code == "bad_request"

            # over-declared: once the envelope is in, the seed reserves what
            # the replica really takes
            assert isinstance(
                await ask(pin(ra, ka, 100 << 20, (owner.addrs()[0],))),
                pinproto.PinStatus,
            )
            status = await ask(pinproto.StatusRequest(root=ra))
            while isinstance(status, pinproto.PinStatus) and status.state == "fetching":
                await trio.sleep(0.05)
                status = await ask(pinproto.StatusRequest(root=ra))
            assert isinstance(status, pinproto.PinStatus)
            assert status.state == "complete"
            (row,) = [p for p in seed.store.catalog.pins() if p.root == ra]
            assert 3 * CS < row.size < 4 * CS

            # a pin nobody can serve stays "fetching"; the peer's next pin is
            # refused until it is done (cap lowered to 1 for the test)
            stuck = await ask(pin(rz, kz, 4 * CS))
            assert isinstance(stuck, pinproto.PinStatus)
            assert stuck.state == "fetching"
            refused = await ask(pin(rb, kb, 4 * CS, (owner.addrs()[0],)))
            assert isinstance(refused, pinproto.PinRefused)
            assert refused.code == "unavailable"
            assert [p.root for p in seed.store.catalog.pins()].count(rb) == 0


async def test_policy_gossip_and_hostile_policies(tmp_path: Path) -> None:
    """Link control on seeds (node/linkctl.py): a policy pushed to one seed
    reaches the other by gossip; a policy not signed by the pin's owner, an
    older one and one for a root the seed does not keep are refused."""
    from p2pshare.format.ticket import Policy
    from p2pshare.node import linkctl

    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3 * CS))
    root, _key = _add(tmp_path / "owner", src)
    with trio.fail_after(60):
        async with swarm(tmp_path, ["eu", "us"]) as (owner, seeds):
            await rep.replicate(owner, root, 2, seeds=_addrs(seeds), use_dht=False)
            await linkctl.issue(owner, root, int(time.time()) + 3600)
            for s in seeds:  # the first ticket put the share under control
                assert s.store.catalog.policy_of(root) is not None
            n, pushed = await linkctl.revoke(owner, root, None)
            assert (n, pushed.told) == (1, 2)
            # a newer policy, pushed to seed 0 only: seed 1 hears it from seed 0
            catalog = owner.store.catalog
            key = linkctl._owner_key(owner)
            newest = linkctl.new_policy(
                catalog, key, owner.host.peer_id_bytes, root, []
            )
            first = seeds[0].host.peer_id_bytes
            await linkctl.push(owner, root, only=[first])
            with trio.fail_after(10):
                while True:
                    raw = seeds[1].store.catalog.policy_of(root)
                    if raw is not None and Policy.from_bytes(raw).seq == newest.seq:
                        break
                    await trio.sleep(0.05)
            # hostile policies: another signer, an older seq, an unknown root
            target = seeds[0]
            forged = Policy.make(
                SigningKey(bytes(32)),
                root,
                owner.host.peer_id_bytes,
                newest.seq + 1,
                [],
                [],
            )
            older = Policy.make(
                key, root, owner.host.peer_id_bytes, newest.seq - 5, [], []
            )
            unknown = Policy.make(
                key, b"\x07" * 32, owner.host.peer_id_bytes, newest.seq + 1, [], []
            )
            answers = [
                await rep.call(
                    owner,
                    target.host.peer_id,
                    pinproto.PolicyRequest(policy=p.to_bytes()),
                )
                for p in (forged, older, unknown)
            ]
            assert isinstance(answers[0], pinproto.PinRefused)
            assert answers[0].code == "access_denied"
            assert isinstance(answers[1], pinproto.PolicyKept)
            assert answers[1].seq == newest.seq  # the newer one stays
            assert isinstance(answers[2], pinproto.PinRefused)
            kept = Policy.from_bytes(target.store.catalog.policy_of(root) or b"")
            assert kept.seq == newest.seq and kept.revoked == newest.revoked


async def test_erasure_columns_renew_as_columns(tmp_path: Path) -> None:
    """A 2/3 erasure-coded share on 3 in-process seeds: each keeps one
    column (its pin reserves that column, not the file), and the lease
    renewal re-pins each seed with its column: a seed that had dropped its
    pin gets its column back, not a full replica."""
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(8 * CS - 100))
    root, _key = _add(tmp_path / "owner", src)
    with trio.fail_after(60):
        async with swarm(tmp_path, ["eu", "us", "ap"]) as (owner, seeds):
            coded = rep.Erasure(2, 3, (0, 1, 2))
            await rep.replicate(
                owner, root, 3, seeds=_addrs(seeds), use_dht=False, erasure=coded
            )
            cols = owner.store.catalog.replica_cols(root)
            assert sorted(cols.values()) == [0, 1, 2]
            sizes = {s.store.catalog.get_pin(root).size for s in seeds}  # type: ignore[union-attr]
            assert max(sizes) < src.stat().st_size * 0.7
            # seed 0 loses its pin; the owner's leases are due for renewal
            lost = seeds[0]
            lost_col = cols[lost.host.peer_id.to_base58()]
            await lost.pins.drop(root)
            assert lost.store.catalog.get_pin(root) is None
            catalog = owner.store.catalog
            for r in catalog.replicas(root):
                catalog.put_replica(replace(r, lease_expires=int(time.time())))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(rep.renew_loop, owner, interval_s=0.05))
                while lost.store.catalog.get_pin(root) is None:  # noqa: ASYNC110
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            row = lost.store.catalog.erasure_of(root)
            assert row is not None and row.col == lost_col
            with trio.fail_after(20):
                while _pin_state(lost, root) != "complete":  # noqa: ASYNC110
                    await trio.sleep(0.05)
            pin = lost.store.catalog.get_pin(root)
            assert pin is not None and pin.size < src.stat().st_size * 0.7
