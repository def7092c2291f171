"""The peer hints a link carries: where a getter can dial this node (and
the seeds keeping replicas of the share)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from multiaddr import Multiaddr

from p2pshare.format.links import MAX_PEERS
from p2pshare.node import compat

__all__ = ["MAX_LINK_PEERS", "link_hints"]

MAX_LINK_PEERS = MAX_PEERS  # what a link may carry

_WILDCARD = re.compile(r"^/ip4/0\.0\.0\.0/|^/ip6/::/")
_LOOPBACK = re.compile(r"^/ip4/127\.|^/ip6/::1/")


def link_hints(own: Sequence[str], seeds: Sequence[str] = ()) -> tuple[str, ...]:
    """The peer hints of a link: this node's addresses, public ones first,
    then private ones (they work on the same LAN), never a wildcard, and
    loopback only when nothing else listens; then one address of each seed
    keeping a replica; :data:`MAX_LINK_PEERS` in all, at least one of ours
    when we have any."""
    dialable = [a for a in own if not _WILDCARD.search(a)]
    outside = [a for a in dialable if not _LOOPBACK.search(a)] or dialable
    outside.sort(key=_hint_rank)  # stable: the node's order within a rank
    seeds = list(seeds)[: MAX_LINK_PEERS - min(1, len(outside))]
    return tuple(outside[: MAX_LINK_PEERS - len(seeds)] + seeds)


def _hint_rank(addr: str) -> int:
    """``compat.addr_rank`` of a hint (a circuit ranks as its relay)."""
    rank = compat.addr_rank(Multiaddr(addr))
    return 1 if rank is None else rank
