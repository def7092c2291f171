"""Announcing and finding shares in the Kademlia DHT.

Theory of operation
-------------------
A node announces the **root id** of each share it can serve: one provider
record per share, never per chunk (a folder's root covers its entries). The
DHT key is the root id written as CIDv1 text (raw codec, BLAKE2b-256
multihash, :func:`p2pshare.format.cid.root_to_cid`); libp2p's ``provide``
turns a CID string into its multihash, which is how IPFS keys provider
records, so the records are IPFS-compatible. Hex or other strings must never
be passed: libp2p would decode hex as raw bytes (pitfall P12).

Record lifetime (py-libp2p 0.8.1): a provider record lives 48 h on the peers
that store it. The :class:`Announcer` re-announces every root every
:data:`ANNOUNCE_INTERVAL_S` (12 h), so a record is always refreshed well
before it expires, even if a cycle or two fail. It is the only re-announcer:
after each announcement the key is removed from libp2p's own republish set,
which would otherwise re-provide it at the next 10-minute maintenance tick
and every 22 h after. A record carries the addresses we had when it was
announced, so the node should call :meth:`Announcer.announce_now` again for
all roots after its addresses change (or restart the announcer).

Withdrawing: 0.8.1 has no un-provide. :meth:`Announcer.withdraw` stops
re-announcing, drops our own record and the library's republish entry
(``compat.stop_providing``); copies on other peers expire within 48 h.

Lookups: :func:`find_providers` always asks the network (0.8.1 answers from
its local cache when it has any entry, which on a provider is just itself:
pitfall P11), then adds cached providers if the network gave fewer than
``count``. Keep ``count`` small (1-3): with few providers a larger count
crawls the whole network. It has no timeout of its own; lookups that touch
dead peers stall ~10 s each (P10), so callers wrap it in a cancel scope.
``provide`` returning False only means no remote peer took the record
directly; the record may still be findable (P17).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn

import trio
from libp2p.bitswap.cid import parse_cid
from libp2p.exceptions import BaseLibp2pError

from p2pshare.errors import P2PShareError
from p2pshare.format.cid import root_to_cid
from p2pshare.node import compat

if TYPE_CHECKING:
    from libp2p.kad_dht.kad_dht import KadDHT
    from libp2p.peer.peerinfo import PeerInfo

    # mypy reads trio's types from trio-stubs (trio-typing, a libp2p
    # dependency), which shadows trio's inline ``trio.TaskStatus``.
    from trio_typing import TaskStatus

__all__ = [
    "ANNOUNCE_CONCURRENCY",
    "ANNOUNCE_INTERVAL_S",
    "ANNOUNCE_TIMEOUT_S",
    "PROVIDER_ADDR_TTL_S",
    "Announcer",
    "AnnouncerStatistics",
    "dht_key",
    "find_providers",
    "provide",
    "root_key",
    "serve_announcer",
]

logger = logging.getLogger(__name__)

# Records expire after 48 h in 0.8.1; 12 h leaves three spare cycles.
ANNOUNCE_INTERVAL_S: Final = 12 * 60 * 60.0
# One provide = a lookup plus ADD_PROVIDER to ~20 peers, 10 s query timeout
# each in 0.8.1 (sent ALPHA at a time); dead peers make it slow, not wrong.
ANNOUNCE_TIMEOUT_S: Final = 60.0
# Provides in flight at once: each one already fans out to ALPHA=10 peers.
ANNOUNCE_CONCURRENCY: Final = 4
# How long provider addresses from a lookup stay in the peerstore, so that
# open_stream() can dial a provider found earlier.
PROVIDER_ADDR_TTL_S: Final = 60 * 60


def root_key(root_id: bytes) -> str:
    """The DHT key of a share: its root id as CIDv1 text (IPFS-compatible)."""
    return root_to_cid(root_id)


def dht_key(root_id: bytes) -> bytes:
    """The binary key libp2p stores records under: the CID's multihash."""
    return bytes(parse_cid(root_key(root_id)).multihash)


async def provide(dht: KadDHT, root_id: bytes) -> bool:
    """Announce once that we provide ``root_id``.

    Stores our record locally and sends ADD_PROVIDER to the closest peers.
    One-shot: use an :class:`Announcer` to keep the record alive. No timeout
    of its own (callers scope it). Cancellation: safe; the announcement runs
    on in the host's background (``compat.run_detached``, N1).

    Returns:
        True if at least one remote peer was sent the record (False does not
        mean "not findable", see the module docstring).
    """
    key = root_key(root_id)
    return bool(await compat.run_detached(dht.host, lambda: dht.provide(key)))


async def find_providers(
    dht: KadDHT, root_id: bytes, *, count: int = 3
) -> list[PeerInfo]:
    """Find up to ``count`` peers that announced ``root_id``, excluding us.

    Asks the network first, then tops up from the local cache. Providers'
    addresses are added to the peerstore (for :data:`PROVIDER_ADDR_TTL_S`),
    so ``NodeHost.open_stream`` can dial them by id. No timeout of its own:
    callers wrap it in a cancel scope. Cancellation: safe; the lookup runs
    on in the host's background until libp2p ends it (N1).
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    key = dht_key(root_id)
    me = dht.host.get_id()
    found = await compat.run_detached(
        dht.host, lambda: compat.uncached_find_providers(dht, key, count + 1)
    )
    cached = dht.provider_store.get_providers(key)
    result: list[PeerInfo] = []
    seen = {me}
    for info in [*found, *cached]:
        if info.peer_id in seen:
            continue
        seen.add(info.peer_id)
        result.append(info)
        if info.addrs:
            dht.host.get_peerstore().add_addrs(
                info.peer_id, info.addrs, PROVIDER_ADDR_TTL_S
            )
        if len(result) == count:
            break
    return result


# --------------------------------------------------------------------------
# Announcer
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncerStatistics:
    """A snapshot of an :class:`Announcer`'s work.

    Attributes:
        cycles: completed announcement cycles (all roots once).
        roots: roots announced in the last cycle.
        failures: announcements that raised or timed out, over all cycles.
        withdrawn: roots withdrawn and not announced again since.
    """

    cycles: int
    roots: int
    failures: int
    withdrawn: int


class Announcer:
    """Keeps provider records alive for every root a node serves.

    Run it with :func:`serve_announcer` (``await nursery.start(...)`` returns
    the Announcer). ``roots_provider`` is called (in a worker thread) at the
    start of every cycle, so it may query the store; it is the source of
    truth for which roots to announce, with :meth:`announce_now` and
    :meth:`withdraw` applying changes between cycles.
    """

    def __init__(
        self,
        dht: KadDHT,
        roots_provider: Callable[[], Iterable[bytes]],
        *,
        interval_s: float = ANNOUNCE_INTERVAL_S,
    ) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError("interval_s must be a positive number of seconds")
        self._dht = dht
        self._roots_provider = roots_provider
        self._interval_s = interval_s
        self._added: set[bytes] = set()
        self._withdrawn: set[bytes] = set()
        self._limiter = trio.CapacityLimiter(ANNOUNCE_CONCURRENCY)
        self._cycle_done = trio.Event()
        self._cycles = 0
        self._last_roots = 0
        self._failures = 0

    async def serve(
        self, *, task_status: TaskStatus[Announcer] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Announce all roots now and every ``interval_s``; runs until cancelled.

        Signals readiness (with itself as the value) before the first cycle,
        so startup never waits for the network; use :meth:`wait_cycle_done`
        to wait for a cycle. A failing announcement is logged and counted,
        never raised. If ``roots_provider`` raises a ``P2PShareError`` (say,
        a busy store) the cycle announces only the roots added by
        :meth:`announce_now`; any other exception is a bug and propagates.
        """
        task_status.started(self)
        while True:
            try:
                provided = await trio.to_thread.run_sync(self._provided_roots)
            except P2PShareError as exc:  # e.g. the store is busy: next cycle
                logger.error("cannot list the roots to announce: %s", exc)
                provided = []
            roots = self._current_roots(provided)
            async with trio.open_nursery() as nursery:
                for root_id in roots:
                    nursery.start_soon(self._announce, root_id)
            self._cycles += 1
            self._last_roots = len(roots)
            self._cycle_done.set()
            self._cycle_done = trio.Event()
            logger.info(
                "announced %d roots; next cycle in %.0f s", len(roots), self._interval_s
            )
            await trio.sleep(self._interval_s)

    async def announce_now(self, root_id: bytes) -> bool:
        """Announce ``root_id`` immediately and keep re-announcing it.

        For a share added while the node runs (or all roots after an
        address change). Undoes an earlier :meth:`withdraw`. Bounded by
        :data:`ANNOUNCE_TIMEOUT_S`; a failure is logged, not raised.

        Returns:
            True if at least one remote peer was sent the record.
        """
        self._withdrawn.discard(root_id)
        self._added.add(root_id)
        return await self._announce(root_id)

    def withdraw(self, root_id: bytes) -> None:
        """Stop announcing ``root_id`` (see the module docstring). Idempotent."""
        self._added.discard(root_id)
        self._withdrawn.add(root_id)
        compat.stop_providing(self._dht, dht_key(root_id), self._dht.host.get_id())

    async def wait_cycle_done(self) -> None:
        """Wait until the cycle in progress (or the next one) completes."""
        await self._cycle_done.wait()

    def statistics(self) -> AnnouncerStatistics:
        """Counters for tests and the control API."""
        return AnnouncerStatistics(
            cycles=self._cycles,
            roots=self._last_roots,
            failures=self._failures,
            withdrawn=len(self._withdrawn),
        )

    def _provided_roots(self) -> list[bytes]:  # runs in a worker thread
        return list(self._roots_provider())

    def _current_roots(self, provided: list[bytes]) -> list[bytes]:
        roots = dict.fromkeys(provided)  # ordered, de-duplicated
        roots.update(dict.fromkeys(self._added))
        return [r for r in roots if r not in self._withdrawn]

    async def _announce(self, root_id: bytes) -> bool:
        short = root_key(root_id)[-8:]
        sent = False
        async with self._limiter:
            if root_id in self._withdrawn:
                return False
            with trio.move_on_after(ANNOUNCE_TIMEOUT_S) as scope:
                try:
                    sent = await provide(self._dht, root_id)
                except BaseLibp2pError as exc:
                    self._failures += 1
                    logger.warning("announce root …%s failed: %s", short, exc)
                    return False
            if scope.cancelled_caught:
                self._failures += 1
                logger.warning(
                    "announce root …%s: no answer in %.0f s", short, ANNOUNCE_TIMEOUT_S
                )
            if root_id in self._withdrawn:  # withdrawn while we announced
                compat.stop_providing(
                    self._dht, dht_key(root_id), self._dht.host.get_id()
                )
            else:
                compat.skip_library_republish(self._dht, dht_key(root_id))
        logger.debug("announced root …%s (stored remotely: %s)", short, sent)
        return sent


async def serve_announcer(
    dht: KadDHT,
    roots_provider: Callable[[], Iterable[bytes]],
    *,
    interval_s: float = ANNOUNCE_INTERVAL_S,
    task_status: TaskStatus[Announcer] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run an :class:`Announcer`; ``await nursery.start(serve_announcer, ...)``.

    Args:
        dht: the node's DHT (``NodeHost.dht``).
        roots_provider: returns the root ids to announce; called in a worker
            thread at the start of each cycle.
        interval_s: time between cycles (default 12 h, records last 48 h).
        task_status: receives the :class:`Announcer` once it accepts calls.

    Cancellation: stops it; announcements in flight are abandoned (records
    already sent stay valid until they expire).
    """
    await Announcer(dht, roots_provider, interval_s=interval_s).serve(
        task_status=task_status
    )
