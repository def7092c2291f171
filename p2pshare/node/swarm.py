"""The providers of one download: link hints and the DHT, in parallel.

Candidates from the link's peer hints are dialled at once; the DHT is asked
at the same time and again every few seconds (less often once a provider
is connected), so a download starts with whichever answers first and later
providers join it. A banned peer (it sent data that failed verification)
is never dialled again for this download. ``changed`` is replaced by a new
event after every change, so waiters wake on any news.

Discovery has an end. Each DHT lookup is one *round* bounded by
``DHT_ROUND_S``; a download that nobody it knows can help any more asks for
one more round at once (:meth:`Swarm.search_now`) and, once that round and
every dial it started are over with nobody new, :meth:`Swarm.exhausted`
says so: the download ends with :meth:`Swarm.failure_summary`, one line on
why each provider failed. Providers found in time still join.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pshare.errors import P2PShareError
from p2pshare.node.provider import ProviderConn

__all__ = ["DHT_RETRY_S", "DHT_ROUND_S", "Swarm", "wait_first"]

log = logging.getLogger(__name__)

DHT_RETRY_S = 5.0
DHT_ROUND_S = 20.0  # one provider lookup, at most


@dataclass(eq=False)
class Swarm:
    """The providers of one download (see the module docstring).

    ``dial`` is an async callable ``(peer) -> ProviderConn | None`` given by
    the node: it connects and opens a transfer stream; ``find`` is an async
    callable returning candidate peers from the DHT.
    """

    dial: Callable[[Any], Any]
    find: Callable[[], Any] | None = None
    hints: Sequence[Any] = ()
    providers: dict[str, ProviderConn] = field(default_factory=dict)
    banned: set[bytes] = field(default_factory=set)
    # peers that said they cannot serve this share at all, and why
    unable: dict[bytes, str] = field(default_factory=dict)
    # why a provider can no longer help this download ("banned (bad chunk)")
    outcome: dict[bytes, str] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event)
    dialing: int = 0  # dials under way
    in_round: bool = False  # a DHT lookup is under way
    rounds: int = 0  # DHT lookups completed
    _search_now: trio.Event = field(default_factory=trio.Event)
    _seen: set[bytes] = field(default_factory=set)  # candidates dialled once
    _nursery: trio.Nursery | None = None

    def search_now(self) -> None:
        """Start the next DHT round now instead of after the usual pause."""
        self._search_now.set()

    def exhausted(self, since_round: int) -> bool:
        """No dial is under way and, with a DHT, a whole lookup finished
        after round ``since_round`` (see :meth:`search_now`): discovery
        found nobody new in that time."""
        if self.dialing or self.in_round:
            return False
        return self.find is None or self.rounds > since_round

    async def run(self, nursery: trio.Nursery) -> None:
        """Start discovery in ``nursery`` (hints and DHT in parallel)."""
        self._nursery = nursery
        for hint in self.hints:
            self.dialing += 1
            nursery.start_soon(self._dial, hint, nursery)
        if self.find is not None:
            nursery.start_soon(self._search, nursery)

    def _bump(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def _dial(self, peer: Any, nursery: trio.Nursery) -> None:
        try:
            pc = await self.dial(peer)
            if pc is not None and pc.remote_peer not in self.banned:
                if pc.name in self.providers and not self.providers[pc.name].dead:
                    await pc.aclose()
                else:
                    self.providers[pc.name] = pc
        except (OSError, P2PShareError, trio.TooSlowError) as exc:
            log.info("provider candidate unreachable: %s", type(exc).__name__)
        except Exception as exc:  # libp2p raises many types for a failed dial
            log.info("provider candidate unreachable: %s: %s", type(exc).__name__, exc)
        finally:
            self.dialing -= 1
            self._bump()

    async def _search(self, nursery: trio.Nursery) -> None:
        assert self.find is not None
        while True:
            self.in_round = True
            found: list[Any] = []
            try:
                with trio.move_on_after(DHT_ROUND_S):
                    found = await self.find()
            except Exception as exc:  # a DHT query failing is not fatal
                log.info("DHT lookup failed: %s", type(exc).__name__)
            self.offer(found)
            self.in_round = False
            self.rounds += 1
            self._bump()
            self._search_now = trio.Event()
            with trio.move_on_after(
                DHT_RETRY_S if not self.live() else 4 * DHT_RETRY_S
            ):
                await self._search_now.wait()

    def offer(self, found: Iterable[tuple[Any, bytes]]) -> None:
        """Dial candidates ``(peer, peer id bytes)`` from any discovery (the
        DHT, the LAN) not tried yet in this download; after :meth:`run`."""
        assert self._nursery is not None, "offer() before run()"
        for peer, peer_bytes in found:
            if peer_bytes in self._seen or peer_bytes in self.banned:
                continue
            self._seen.add(peer_bytes)
            self.dialing += 1
            self._nursery.start_soon(self._dial, peer, self._nursery)

    def live(self) -> list[ProviderConn]:
        return [
            p
            for p in self.providers.values()
            if not p.dead
            and p.remote_peer not in self.banned
            and p.remote_peer not in self.unable
        ]

    async def wait_for_provider(self) -> None:
        """Wait until some provider is connected (the caller sets a deadline)."""
        while not self.live():
            await self.changed.wait()

    async def ban(
        self, pc: ProviderConn, reason: str, *, why: str = "banned (bad data)"
    ) -> None:
        """Never use ``pc``'s peer again in this download; ``why`` is the
        short form for :meth:`failure_summary`."""
        self.banned.add(pc.remote_peer)
        self.outcome.setdefault(pc.remote_peer, why)
        log.warning("provider %s banned: %s", pc.name, reason)
        await pc.aclose()

    def mark(self, pc: ProviderConn, why: str) -> None:
        """``pc`` cannot help (``why``, for :meth:`failure_summary`)."""
        self.outcome.setdefault(pc.remote_peer, why)

    def failure_summary(self) -> str:
        """Why every provider failed, for one error line: "all 2 providers
        failed: 1 banned (bad chunk), 1 removed the share"."""
        counts: Counter[str] = Counter()
        for pc in self.providers.values():
            why = self.outcome.get(pc.remote_peer)
            if why is None and pc.dead:
                why = getattr(pc, "relay_note", None) or "gone"
            elif why is None:
                why = "lack the chunks still needed"
            counts[why] += 1
        n = sum(counts.values())
        if not n:
            return "no provider was reachable"
        head = "the only provider failed" if n == 1 else f"all {n} providers failed"
        return f"{head}: " + ", ".join(f"{k} {why}" for why, k in counts.items())


async def wait_first(*events: trio.Event) -> None:
    """Wait until any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)
