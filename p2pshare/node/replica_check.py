"""Checking replicas by storage proofs, and repairing them.

**Check.** A storage proof per seed and root: a fresh random nonce and a few
random chunk indices; the seed answers the keyed hash of those chunks'
ciphertext, which the owner recomputes from its own copy. Only a seed that
holds those exact bytes can answer.

**Repair.** Check, forget the seeds that failed, and replicate to new seeds
until the share has N good replicas again.

``check`` asks every seed that holds a root (recorded, or found in the DHT)
for a keyed hash of randomly chosen chunks with a fresh nonce
(``protocol/pin/proof.py``) and compares it with the same hash over our own
copy; ``repair`` re-replicates until N seeds hold a complete replica again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from p2pshare import records
from p2pshare.errors import P2PShareError, ProtocolError
from p2pshare.format import root_to_cid
from p2pshare.node.replicate import (
    CALL_TIMEOUT_S,
    DEFAULT_LEASE_S,
    MAX_PROVE_ROOTS,
    Erasure,
    Progress,
    RootEntry,
    call,
    full_addrs,
    quiet,
    reach,
    replicate,
)
from p2pshare.protocol import pin as pinproto
from p2pshare.store.catalog import ReplicaRow

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = ["CheckResult", "check", "check_report", "repair", "repair_report"]

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    seed: str
    region: str
    ok: bool
    detail: str
    addrs: tuple[str, ...] = ()
    column: int | None = None
    replica: bool = True  # recorded here; False: another provider the DHT lists

    def to_wire(self) -> records.CheckResult:
        out = records.CheckResult(
            seed=self.seed,
            region=self.region,
            ok=self.ok,
            detail=self.detail,
            replica=self.replica,
        )
        if self.column is not None:
            out["column"] = self.column
        return out


async def check(node: Node, root: bytes, *, use_dht: bool = True) -> list[CheckResult]:
    """Storage-prove every known replica of ``root`` (recorded seeds, and
    other providers the DHT lists)."""
    tree = await node.shares.tree(root)
    rows = await node.shares.replicas(root)
    columns = await node.shares.columns(root)
    targets: dict[str, tuple[str, tuple[str, ...]]] = {
        r.seed: (r.region, r.addrs) for r in rows
    }
    if use_dht:
        infos: list[PeerInfo] = []
        with trio.move_on_after(CALL_TIMEOUT_S):
            infos = await node.host.find_providers(root, count=20)
        for i in infos:
            targets.setdefault(str(i.peer_id), ("", full_addrs(i)))
    sample = tree if len(tree) <= MAX_PROVE_ROOTS else _sample(tree)
    results: list[CheckResult] = []

    async def one(seed: str, region: str, addrs: tuple[str, ...]) -> None:
        results.append(
            await _prove_seed(node, seed, region, addrs, sample, columns.get(seed))
        )

    async with trio.open_nursery() as nursery:
        for seed, (region, addrs) in targets.items():
            nursery.start_soon(one, seed, region, addrs)
    recorded = {r.seed for r in rows}
    for r in results:
        r.replica = r.seed in recorded
    results.sort(key=lambda r: (not r.ok, not r.replica, r.seed))
    return results


def _sample(tree: list[RootEntry]) -> list[RootEntry]:
    top = [r for r in tree if r.top]
    rest = [r for r in tree if not r.top]
    picked = [
        rest.pop(secrets.randbelow(len(rest)))
        for _ in range(MAX_PROVE_ROOTS - len(top))
    ]
    return top + picked


async def _prove_seed(
    node: Node,
    seed: str,
    region: str,
    addrs: tuple[str, ...],
    tree: list[RootEntry],
    column: int | None = None,
) -> CheckResult:
    def result(ok: bool, detail: str) -> CheckResult:
        if column is not None:
            detail = f"column {column}: {detail}"
        return CheckResult(seed, region, ok, detail, addrs, column)

    try:
        peer = await reach(node, ID.from_base58(seed), addrs)
    except P2PShareError as exc:
        return result(False, f"unreachable ({exc})")
    proved = 0
    for r in tree:
        nonce = secrets.token_bytes(32)
        expect = await node.shares.proof(r.root, nonce, column)
        indices, digest = expect
        if not indices:
            proved += 1  # the column holds nothing of this (tiny) share
            continue
        try:
            resp = await call(
                node,
                peer,
                pinproto.ProveRequest(root=r.root, nonce=nonce, indices=indices),
            )
        except (P2PShareError, ProtocolError) as exc:
            return result(False, f"no storage proof ({exc})")
        if isinstance(resp, pinproto.PinRefused):
            return result(False, f"storage proof refused: {resp.message}")
        if not isinstance(resp, pinproto.ProveResponse) or resp.digest != digest:
            return result(
                False, "storage proof failed: the seed does not hold the data"
            )
        proved += 1
    chunks = sum(1 for _ in tree)
    return result(True, f"storage proof ok ({proved} of {chunks} share(s) sampled)")


async def repair(
    node: Node,
    root: bytes,
    n: int,
    *,
    seeds: Sequence[str] = (),
    lease_s: int = DEFAULT_LEASE_S,
    progress: Progress = quiet,
    use_dht: bool = True,
) -> tuple[list[CheckResult], list[ReplicaRow]]:
    """Check, forget failed replicas, replicate until ``n`` good ones (of an
    erasure-coded share: place every column no good seed keeps, each on a
    seed that keeps none yet)."""
    results = await check(node, root, use_dht=use_dht)
    recorded = {r.seed for r in await node.shares.replicas(root)}
    good = [r for r in results if r.ok and r.seed in recorded]
    for r in results:
        if not r.ok and r.seed in recorded:
            await node.shares.drop_replica(root, r.seed)
    er = await node.shares.erasure(root)
    if er is not None and await node.shares.columns(root):
        kept = {r.column for r in good if r.column is not None}
        missing = tuple(c for c in range(er.n) if c not in kept)
        regions: dict[str, int] = {}
        for r in good:
            if r.column is not None:
                regions[r.region] = regions.get(r.region, 0) + 1
        if missing:
            await replicate(
                node,
                root,
                len(missing),
                seeds=seeds,
                lease_s=lease_s,
                exclude=[r.seed for r in results],
                progress=progress,
                use_dht=use_dht,
                erasure=Erasure(er.k, er.n, missing, regions),
            )
        return results, await node.shares.replicas(root)
    if len(good) < n:
        await replicate(
            node,
            root,
            n - len(good),
            seeds=seeds,
            lease_s=lease_s,
            exclude=[r.seed for r in results],
            progress=progress,
            use_dht=use_dht,
        )
    return results, await node.shares.replicas(root)


# -- results as the control API and --json show them (docs/control.md) ----------
async def check_report(node: Node, root: bytes) -> records.CheckReport:
    results = await check(node, root)
    report = records.CheckReport(
        root=root_to_cid(root), providers=[r.to_wire() for r in results]
    )
    health = await _health(node, root, results)
    if health is not None:
        report["erasure"] = health
    return report


async def _health(
    node: Node, root: bytes, results: list[CheckResult]
) -> records.ErasureHealth | None:
    """How many distinct columns proved, and so how many more losses the
    share survives (each seed keeps one column)."""
    er = await node.shares.erasure(root)
    if er is None or not await node.shares.columns(root):
        return None
    good = {r.column for r in results if r.ok and r.column is not None}
    return records.ErasureHealth(
        k=er.k, n=er.n, columns=len(good), survives=len(good) - er.k
    )


async def repair_report(
    node: Node, root: bytes, n: int, seeds: Sequence[str] = ()
) -> records.RepairReport:
    checked, rows = await repair(node, root, n, seeds=seeds)
    report = records.RepairReport(
        root=root_to_cid(root),
        checked=[r.to_wire() for r in checked],
        replicas=[r.to_wire() for r in rows],
    )
    if await node.shares.columns(root):
        after = await check(node, root)
        health = await _health(node, root, after)
        if health is not None:
            report["erasure"] = health
    return report
