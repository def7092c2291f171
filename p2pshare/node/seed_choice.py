"""Choosing seeds: what a seed offers, and the order to ask them in.

Pure policy (no I/O): ``replicate.py`` asks seeds for their ``Info`` and
balance, then tries them in the order :func:`rank` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from p2pshare.node.seed_policy import mib
from p2pshare.records import SeedInfoRecord

__all__ = ["SeedInfo", "rank", "too_small"]


@dataclass(frozen=True, slots=True)
class SeedInfo:
    peer: bytes  # raw peer id
    peer_id: str
    addrs: tuple[str, ...]
    region: str
    free_bytes: int
    admission: str
    configured: bool = False
    credit: int | None = None  # voucher balance left here (voucher seeds)

    @property
    def room(self) -> int:
        """Bytes this seed would take from us: free space, and for a
        voucher seed no more than our balance there."""
        if self.admission == "voucher":
            return min(self.free_bytes, self.credit or 0)
        return self.free_bytes

    def to_wire(self) -> SeedInfoRecord:
        return SeedInfoRecord(
            peer_id=self.peer_id,
            addrs=list(self.addrs),
            region=self.region,
            free_bytes=self.free_bytes,
            admission=self.admission,
        )


def rank(seeds: Sequence[SeedInfo], need: int) -> list[SeedInfo]:
    """Candidates in the order to try: seeds where we hold voucher credit,
    then configured ones, then regions not chosen yet, then the most room;
    seeds without room (or without a voucher, when they need one) are
    left out."""
    usable = [s for s in seeds if s.room >= need]
    ordered: list[SeedInfo] = []
    regions: set[str] = set()
    pool = sorted(
        usable,
        key=lambda s: (s.credit is None, not s.configured, -s.room, s.peer_id),
    )
    while pool:
        first = pool[0]
        pick = next(
            (
                s
                for s in pool
                if s.region not in regions
                and (s.credit is None) == (first.credit is None)
            ),
            first,
        )
        pool.remove(pick)
        ordered.append(pick)
        regions.add(pick.region)
    return ordered


def too_small(seeds: Sequence[SeedInfo], need: int) -> list[str]:
    out = []
    for s in seeds:
        if s.room >= need:
            continue
        who = f"{s.peer_id[-8:]} ({s.region or '?'})"
        if s.admission == "voucher" and not s.credit:
            out.append(f"{who}: admits by voucher and you have no credit there")
        elif s.admission == "voucher" and (s.credit or 0) < need <= s.free_bytes:
            out.append(
                f"{who}: voucher balance {mib(s.credit or 0)}, the replica"
                f" needs {mib(need)}"
            )
        else:
            out.append(
                f"{who}: seed storage full, the replica needs {mib(need)},"
                f" {mib(s.free_bytes)} is free"
            )
    return out
