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

    def to_wire(self) -> records.CheckResult:
        return records.CheckResult(
            seed=self.seed, region=self.region, ok=self.ok, detail=self.detail
        )


async def check(node: Node, root: bytes, *, use_dht: bool = True) -> list[CheckResult]:
    """Storage-prove every known replica of ``root`` (recorded seeds, and
    other providers the DHT lists)."""
    tree = await node.shares.tree(root)
    rows = await node.shares.replicas(root)
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
        results.append(await _prove_seed(node, seed, region, addrs, sample))

    async with trio.open_nursery() as nursery:
        for seed, (region, addrs) in targets.items():
            nursery.start_soon(one, seed, region, addrs)
    results.sort(key=lambda r: (not r.ok, r.seed))
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
) -> CheckResult:
    def result(ok: bool, detail: str) -> CheckResult:
        return CheckResult(seed, region, ok, detail, addrs)

    try:
        peer = await reach(node, ID.from_base58(seed), addrs)
    except P2PShareError as exc:
        return result(False, f"unreachable ({exc})")
    proved = 0
    for r in tree:
        nonce = secrets.token_bytes(32)
        expect = await node.shares.proof(r.root, nonce)
        indices, digest = expect
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
    """Check, forget failed replicas, replicate until ``n`` good ones."""
    results = await check(node, root, use_dht=use_dht)
    recorded = {r.seed for r in await node.shares.replicas(root)}
    good = [r for r in results if r.ok and r.seed in recorded]
    for r in results:
        if not r.ok and r.seed in recorded:
            await node.shares.drop_replica(root, r.seed)
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
    return records.CheckReport(
        root=root_to_cid(root), providers=[r.to_wire() for r in results]
    )


async def repair_report(
    node: Node, root: bytes, n: int, seeds: Sequence[str] = ()
) -> records.RepairReport:
    checked, rows = await repair(node, root, n, seeds=seeds)
    return records.RepairReport(
        root=root_to_cid(root),
        checked=[r.to_wire() for r in checked],
        replicas=[r.to_wire() for r in rows],
    )
