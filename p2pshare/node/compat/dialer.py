"""D1: dial every address of a peer, in parallel, each dial bounded.

0.8.1's ``Swarm.dial_peer`` picks *one* address per transport class (so one
TCP address of the several a peer advertises: often its private LAN address,
useless from another network), retries it four times with backoff, and
gives each attempt as long as the kernel takes to give up on a silent drop.
Measured across simulated NATs: a DHT refresh that met one peer behind a NAT
took 10 s per dead address, a node behind a NAT took 21 s to start, and
``get --timeout 60`` returned after ~81 s.

:func:`parallel_dials` replaces ``dial_peer`` on one swarm (every caller
goes through it: ``host.connect``, ``new_stream``, the DHT): the peer's TCP
addresses are ranked (public first, then private and link-local, loopback
last; wildcards and relay addresses dropped), at most
:data:`MAX_DIAL_ADDRS`, and dialled happy-eyeballs style: one more every
:data:`DIAL_STAGGER_S` or as soon as one failed, each bounded by
:data:`ADDR_DIAL_TIMEOUT_S`, one attempt each. The first connection wins.
Attempts run in the host's background nursery (N1), so a caller's
cancellation returns at once; an attempt still running then ends within its
own bound, and a connection it makes after another won is closed.
Concurrent dials of one peer share one race. Remove when: upstream dials
all addresses in parallel with a per-dial timeout.
"""

from __future__ import annotations

import ipaddress
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import trio
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from p2pshare.node.compat.lifecycle import _BACKGROUND

__all__ = [
    "ADDR_DIAL_TIMEOUT_S",
    "DIAL_STAGGER_S",
    "MAX_DIAL_ADDRS",
    "addr_rank",
    "parallel_dials",
    "rank_addrs",
    "set_circuit_dialer",
]

logger = logging.getLogger(__name__)

ADDR_DIAL_TIMEOUT_S: Final = 6.0  # TCP + Noise + Yamux; covers two SYN retransmits
DIAL_STAGGER_S: Final = 0.25
MAX_DIAL_ADDRS: Final = 8
MAX_CIRCUIT_ADDRS: Final = 4

CircuitDialer = Callable[[Any, Multiaddr, ID], Awaitable[Any]]
_CIRCUIT: weakref.WeakKeyDictionary[Any, CircuitDialer] = weakref.WeakKeyDictionary()


def set_circuit_dialer(host: Any, dial: CircuitDialer) -> None:
    """Let ``host`` dial ``…/p2p-circuit`` addresses with ``dial(host,
    addr, peer)`` (``node/relay.py``), after its direct addresses."""
    _CIRCUIT[host] = dial


def circuit_addrs(addrs: Sequence[Multiaddr]) -> list[Multiaddr]:
    """The relay addresses among ``addrs`` (tried after every direct one)."""
    out: list[Multiaddr] = []
    for addr in addrs:
        if "/p2p-circuit" in str(addr) and str(addr) not in map(str, out):
            out.append(addr)
    return out[:MAX_CIRCUIT_ADDRS]


def addr_rank(addr: Multiaddr) -> int | None:
    """Where the host part of ``addr`` can be reached from: 0 anywhere (a
    public IP or a DNS name), 1 its own network (a private or link-local
    IP), 2 this machine (loopback); None when it is no address to dial (a
    wildcard, multicast, or neither IP nor DNS). Dials, link hints, LAN
    announcements and remembered peers all rank addresses this way."""
    names = [p.name for p in addr.protocols()]
    if not names:
        return None
    if names[0] in ("dns", "dns4", "dns6"):
        return 0
    if names[0] not in ("ip4", "ip6"):
        return None
    try:
        ip = ipaddress.ip_address(addr.value_for_protocol(names[0]))
    except ValueError:
        return None
    if ip.is_unspecified or ip.is_multicast:
        return None
    return 2 if ip.is_loopback else 0 if ip.is_global else 1


def rank_addrs(addrs: Sequence[Multiaddr]) -> list[Multiaddr]:
    """Dialable TCP addresses, best first (:func:`addr_rank`)."""
    ranked: list[tuple[int, int, Multiaddr]] = []
    seen: set[str] = set()
    for i, addr in enumerate(addrs):
        text = str(addr)
        names = [p.name for p in addr.protocols()]
        rank = addr_rank(addr)
        if text in seen or names[1:] not in (["tcp"], ["tcp", "p2p"]) or rank is None:
            continue
        seen.add(text)
        ranked.append((rank, i, addr))
    ranked.sort(key=lambda t: (t[0], t[1]))
    return [a for _r, _i, a in ranked[:MAX_DIAL_ADDRS]]


def parallel_dials(host: Any) -> None:
    """Replace ``dial_peer`` on ``host``'s swarm (see the module docstring)."""
    swarm = host.get_network()
    swarm.retry_config.max_retries = 0  # one attempt per address; callers retry
    ongoing: dict[ID, trio.Event] = {}

    def live(peer_id: ID) -> list[Any]:
        return [c for c in swarm.get_connections(peer_id) if not c.is_closed]

    async def dial_peer(peer_id: ID) -> list[Any]:
        while True:
            conns = live(peer_id)
            if conns:
                return conns
            if peer_id not in ongoing:
                break
            await ongoing[peer_id].wait()
        try:
            addrs = swarm.peerstore.addrs(peer_id)
        except Exception as exc:  # PeerStoreError
            raise SwarmException(f"No known addresses to peer {peer_id}") from exc
        ordered = rank_addrs(addrs)
        if host in _CIRCUIT:
            ordered += circuit_addrs(addrs)
        if not ordered:
            raise SwarmException(f"no dialable address for peer {peer_id}")
        event = trio.Event()
        ongoing[peer_id] = event
        try:
            return [await _race(host, swarm, peer_id, ordered)]
        finally:
            del ongoing[peer_id]
            event.set()

    swarm.dial_peer = dial_peer


async def _race(host: Any, swarm: Any, peer_id: ID, addrs: list[Multiaddr]) -> Any:
    won: list[Any] = []
    errors: list[str] = []
    progress = trio.Event()
    left = len(addrs)

    async def attempt(addr: Multiaddr) -> None:
        nonlocal left, progress
        conn = None
        try:
            with trio.fail_after(ADDR_DIAL_TIMEOUT_S):
                if "/p2p-circuit" in str(addr):
                    conn = await _CIRCUIT[host](host, addr, peer_id)
                else:
                    conn = await swarm.dial_addr(addr, peer_id)
        except Exception as exc:  # SwarmException, TooSlowError, OSError…
            errors.append(f"{addr}: {type(exc).__name__}")
        finally:
            left -= 1
            if conn is not None:
                if won:
                    await _close(conn)
                else:
                    won.append(conn)
            progress.set()
            progress = trio.Event()

    nursery = _BACKGROUND.get(host)
    async with trio.open_nursery() as local:
        runner = nursery if nursery is not None else local
        for addr in addrs:
            waiting = progress
            runner.start_soon(attempt, addr)
            with trio.move_on_after(DIAL_STAGGER_S):
                await waiting.wait()
            if won:
                break
        while not won and left:
            await progress.wait()
    if won:
        return won[0]
    logger.debug("dial %s failed: %s", peer_id, "; ".join(errors))
    raise SwarmException(
        f"unable to connect to {peer_id}: {len(errors)} address(es) failed"
    )


async def _close(conn: Any) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(2):
        try:
            await conn.close()
        except Exception:
            logger.debug("closing a surplus connection failed", exc_info=True)
