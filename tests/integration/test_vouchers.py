"""Vouchers between real nodes (one trio process, loopback).

A seed in voucher mode, owners that redeem codes it issued, pins charged
against the balance and credited back, and every way a voucher is refused.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio
from nacl.signing import SigningKey

from p2pshare.config import Home
from p2pshare.errors import AccessDenied
from p2pshare.format import FileKeys
from p2pshare.format.grant import make_grant
from p2pshare.format.voucher import Voucher, issue_voucher
from p2pshare.node import replicate as rep
from p2pshare.node import vouchers
from p2pshare.node.identity import signing_key
from p2pshare.node.seed_policy import SeedPolicy
from p2pshare.node.service import Node, open_node
from p2pshare.protocol import pin as pinproto
from p2pshare.store import LocalStore
from p2pshare.store.adder import add_path

pytestmark = pytest.mark.integration

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
CS = 64 * 1024
DAY = 86400


def _add(home: Path, path: Path) -> tuple[bytes, bytes]:
    with LocalStore(Home(home)) as store:
        added = add_path(store, path, copy=False, chunk_size=CS)
    return added.root, added.key


def _file(tmp_path: Path, name: str, chunks: int) -> Path:
    f = tmp_path / name
    f.write_bytes(os.urandom(chunks * CS))
    return f


def _seed_key(seed: Node) -> SigningKey:
    return signing_key(seed.host.host.get_private_key())


def _code(seed: Node, quota: int, *, expires: int | None = None) -> str:
    v = issue_voucher(
        _seed_key(seed),
        seed.host.peer_id_bytes,
        [seed.addrs()[0].split("/p2p/")[0]],
        quota,
        expires if expires is not None else int(time.time()) + DAY,
    )
    return v.to_code()


@asynccontextmanager
async def voucher_seed(
    tmp_path: Path, name: str = "seed", listen: list[str] = LOOPBACK
) -> AsyncIterator[Node]:
    async with open_node(
        Home(tmp_path / name),
        listen=listen,
        dht_mode="server",
        seed=SeedPolicy(region="eu", admission="voucher"),
    ) as seed:
        yield seed


@asynccontextmanager
async def owners(tmp_path: Path, *names: str) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                open_node(Home(tmp_path / n), listen=LOOPBACK)
            )
            for n in names
        ]


def _chunk_blocks(node: Node) -> int:
    return sum(1 for p in node.store.blocks.root.rglob("*") if p.is_file())


async def test_pins_are_charged_refused_over_quota_and_credited_back(
    tmp_path: Path,
) -> None:
    small = _file(tmp_path, "small.bin", 8)
    big = _file(tmp_path, "big.bin", 30)
    with trio.fail_after(120):
        async with (
            voucher_seed(tmp_path) as seed,
            owners(tmp_path, "owner") as (owner,),
        ):
            r_small, _ = _add(tmp_path / "owner", small)
            r_big, k_big = _add(tmp_path / "owner", big)
            seeds = [seed.addrs()[0]]
            # no voucher: refused, with what to do about it
            with pytest.raises(rep.ReplicationError, match="voucher"):
                await rep.replicate(owner, r_small, 1, seeds=seeds, use_dht=False)
            assert _chunk_blocks(seed) == 0

            bal = await vouchers.redeem(owner, _code(seed, 20 * CS))
            assert (bal["quota"], bal["used"]) == (20 * CS, 0)
            await rep.replicate(owner, r_small, 1, seeds=seeds, use_dht=False)
            (b,) = await vouchers.balances(owner)
            size_small = b["used"]
            assert 8 * CS < size_small < 9 * CS  # chunks + envelope
            assert b["remaining"] == 20 * CS - size_small

            # the big file does not fit in what is left: the owner says so
            with pytest.raises(rep.ReplicationError, match="voucher balance"):
                await rep.replicate(owner, r_big, 1, seeds=seeds, use_dht=False)
            # and the seed itself refuses a pin over quota, naming it
            grant = make_grant(
                FileKeys.from_key(k_big).signing_key,
                r_big,
                seed.host.peer_id_bytes,
                int(time.time()) + 60,
            ).to_bytes()
            refused = await rep.call(
                owner,
                seed.host.peer_id,
                pinproto.PinRequest(
                    root=r_big, grant=grant, lease_s=60, size=30 * CS + 500
                ),
            )
            assert isinstance(refused, pinproto.PinRefused)
            assert refused.code == "quota"
            assert "quota exceeded" in refused.message
            assert "1.2 MiB quota" in refused.message  # 20 * 64 KiB
            assert [p.root for p in seed.store.catalog.pins()] == [r_small]
            blocks_after_small = _chunk_blocks(seed)

            # unpin credits the balance back and deletes the replica
            key_small = owner.store.catalog.get_share(r_small).key
            assert key_small is not None
            assert await rep.unpin(owner, seed.host.peer_id, r_small, key_small)
            (b,) = await vouchers.balances(owner)
            assert b["used"] == 0
            assert _chunk_blocks(seed) < blocks_after_small
            assert seed.store.catalog.pins() == []


async def test_lease_expiry_credits_and_balances_survive_a_restart(
    tmp_path: Path,
) -> None:
    f = _file(tmp_path, "f.bin", 4)
    with trio.fail_after(120):
        async with owners(tmp_path, "owner") as (owner,):
            root, _ = _add(tmp_path / "owner", f)
            async with voucher_seed(tmp_path) as seed:
                await vouchers.redeem(owner, _code(seed, 10 * CS))
                await rep.replicate(
                    owner, root, 1, seeds=[seed.addrs()[0]], use_dht=False, lease_s=60
                )
                (before,) = await vouchers.balances(owner)
                assert before["used"] > 4 * CS
                port = seed.addrs()[0].split("/tcp/")[1].split("/")[0]
            # the seed restarts on the same home and port: same ledger, pins
            same = [f"/ip4/127.0.0.1/tcp/{port}"]
            async with voucher_seed(tmp_path, listen=same) as seed:
                (after,) = await vouchers.balances(owner)
                assert (after["quota"], after["used"]) == (
                    before["quota"],
                    before["used"],
                )
                # the lease runs out: the pin goes and its bytes are credited
                assert seed.seed is not None
                seed.seed.now = lambda: time.time() + 120
                assert await seed.seed.collect_expired() == [root]
                seed.seed.now = time.time
                (expired,) = await vouchers.balances(owner)
                assert expired["used"] == 0
                assert expired["quota"] == 10 * CS


async def test_bad_vouchers_are_refused(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with (
            voucher_seed(tmp_path, "a") as seed_a,
            voucher_seed(tmp_path, "b") as seed_b,
            owners(tmp_path, "u1", "u2") as (u1, u2),
        ):
            good = Voucher.from_code(_code(seed_a, 10 * CS))
            # signed by some other key, claiming seed A
            other = SigningKey.generate().sign(b"not the seed").signature
            forged = dataclasses.replace(good, signature=other)
            altered = dataclasses.replace(good, quota=good.quota * 100)
            expired = Voucher.from_code(
                _code(seed_a, 10 * CS, expires=int(time.time()) - 1)
            )

            async def redeem_at(node: Node, seed: Node, v: Voucher) -> object:
                return await rep.call(
                    node,
                    seed.host.peer_id,
                    pinproto.RedeemRequest(voucher=v.to_bytes()),
                )

            await u1.host.connect(seed_a.addrs()[0])
            await u1.host.connect(seed_b.addrs()[0])
            await u2.host.connect(seed_a.addrs()[0])
            for what, v, seed, reason in [
                ("forged", forged, seed_a, "bad signature"),
                ("altered", altered, seed_a, "bad signature"),
                ("expired", expired, seed_a, "expired"),
                ("for seed A at seed B", good, seed_b, "another seed"),
            ]:
                answer = await redeem_at(u1, seed, v)
                assert isinstance(answer, pinproto.PinRefused), what
                assert reason in answer.message, (what, answer.message)
            # first redeemer wins; redeeming again is harmless
            ok = await redeem_at(u1, seed_a, good)
            assert isinstance(ok, pinproto.Balance)
            assert ok.quota == 10 * CS
            again = await redeem_at(u1, seed_a, good)
            assert isinstance(again, pinproto.Balance)
            assert again.quota == 10 * CS  # not counted twice
            stolen = await redeem_at(u2, seed_a, good)
            assert isinstance(stolen, pinproto.PinRefused)
            assert "already redeemed by another peer" in stolen.message
            # the client side refuses a forged code before asking anyone
            with pytest.raises(AccessDenied, match="bad signature"):
                await vouchers.redeem(u2, forged.to_code())
