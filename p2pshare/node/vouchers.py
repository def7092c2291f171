"""A user's vouchers: redeem a code at its seed, ask seeds for balances.

A voucher (``format/voucher.py``) is signed by a seed's identity key and
names the seed's peer id and addresses, a quota and an expiry. Redeeming
sends it to that seed (``RedeemRequest`` on ``/p2pshare/pin/1``), which
checks the signature against its own peer id and binds the voucher to the
first peer that redeems it. The seed's ledger is the truth for balances;
this home keeps the codes it redeemed so it knows which seeds to prefer and
where to find them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio
from libp2p.peer.id import ID

from p2pshare.errors import AccessDenied, NoProviders, P2PShareError, UsageError
from p2pshare.format.voucher import Voucher
from p2pshare.node.replicate import call, reach
from p2pshare.protocol import pin as pinproto

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = ["balances", "redeem"]

DIAL_TIMEOUT_S = 15.0


async def _reach(node: Node, v: Voucher) -> Any:
    """Connect to the voucher's seed: its addresses, then the DHT's."""
    return await reach(node, ID(v.seed), v.addrs, timeout_s=DIAL_TIMEOUT_S)


def _balance(b: Any, seed: str) -> dict[str, Any]:
    if isinstance(b, pinproto.PinRefused):
        raise AccessDenied(f"seed {seed[-8:]}: {b.message}")
    if not isinstance(b, pinproto.Balance):
        raise NoProviders(f"seed {seed[-8:]}: unexpected answer")
    return {
        "seed": seed,
        "quota": b.quota,
        "used": b.used,
        "remaining": max(0, b.quota - b.used),
        "vouchers": b.vouchers,
        "expires": b.expires,
        "relayed": b.relayed or 0,
        "reachable": True,
    }


async def redeem(node: Node, code: str) -> dict[str, Any]:
    """Redeem ``code`` at its seed; returns this home's balance there.

    Raises:
        UsageError: not a voucher code.
        AccessDenied: forged, altered, expired, or already redeemed by
            another peer (the seed's answer).
        NoProviders: the seed cannot be reached.
    """
    try:
        v = Voucher.from_code(code)
    except P2PShareError as exc:
        raise UsageError(str(exc)) from None
    v.verify(seed=v.seed, now=time.time())  # forged or expired: say so at once
    seed = str(ID(v.seed))
    peer = await _reach(node, v)
    answer = await call(node, peer, pinproto.RedeemRequest(voucher=v.to_bytes()))
    out = _balance(answer, seed)
    await node.vouchers.add(
        v.serial,
        seed,
        v.to_code(),
        v.quota,
        v.expires,
        int(time.time()),
    )
    return out


async def balances(node: Node) -> list[dict[str, Any]]:
    """Per seed we hold vouchers for: the seed's view of our balance, or
    this home's record when the seed does not answer."""
    mine = await node.vouchers.mine()
    per_seed: dict[str, list[Voucher]] = {}
    for seed, code, _quota, _expires in mine:
        try:
            per_seed.setdefault(seed, []).append(Voucher.from_code(code))
        except P2PShareError:
            continue
    out: list[dict[str, Any]] = []

    async def one(seed: str, vs: list[Voucher]) -> None:
        try:
            peer = await _reach(node, vs[0])
            out.append(
                _balance(await call(node, peer, pinproto.BalanceRequest()), seed)
            )
        except P2PShareError as exc:
            now = time.time()
            live = [v for v in vs if v.expires > now]
            out.append(
                {
                    "seed": seed,
                    "quota": sum(v.quota for v in live),
                    "used": None,
                    "remaining": None,
                    "vouchers": len(live),
                    "expires": max((v.expires for v in live), default=None),
                    "reachable": False,
                    "error": str(exc),
                }
            )

    async with trio.open_nursery() as nursery:
        for seed, vs in per_seed.items():
            nursery.start_soon(one, seed, vs)
    out.sort(key=lambda b: b["seed"])
    return out
