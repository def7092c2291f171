"""The providers of one download: link hints and the DHT, in parallel.

Candidates from the link's peer hints are dialled at once; the DHT is asked
at the same time and again every few seconds (less often once a provider
is connected), so a download starts with whichever answers first and later
providers join it. A banned peer (it sent data that failed verification)
is never dialled again for this download. ``changed`` is replaced by a new
event after every change, so waiters wake on any news.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pshare.errors import P2PShareError
from p2pshare.node.provider import ProviderConn

__all__ = ["DHT_RETRY_S", "Swarm", "wait_first"]

log = logging.getLogger(__name__)

DHT_RETRY_S = 5.0


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
    changed: trio.Event = field(default_factory=trio.Event)
    searching: int = 0

    async def run(self, nursery: trio.Nursery) -> None:
        """Start discovery in ``nursery`` (hints and DHT in parallel)."""
        for hint in self.hints:
            self.searching += 1
            nursery.start_soon(self._dial, hint, nursery)
        if self.find is not None:
            self.searching += 1
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
            self.searching -= 1
            self._bump()

    async def _search(self, nursery: trio.Nursery) -> None:
        assert self.find is not None
        seen: set[bytes] = set()
        try:
            while True:
                try:
                    found = await self.find()
                except Exception as exc:  # a DHT query failing is not fatal
                    log.info("DHT lookup failed: %s", type(exc).__name__)
                    found = []
                for peer, peer_bytes in found:
                    if peer_bytes in seen or peer_bytes in self.banned:
                        continue
                    seen.add(peer_bytes)
                    self.searching += 1
                    nursery.start_soon(self._dial, peer, nursery)
                if found:
                    self._bump()
                await trio.sleep(DHT_RETRY_S if not self.live() else 4 * DHT_RETRY_S)
        finally:
            self.searching -= 1
            self._bump()

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

    async def ban(self, pc: ProviderConn, reason: str) -> None:
        self.banned.add(pc.remote_peer)
        log.warning("provider %s banned: %s", pc.name, reason)
        await pc.aclose()


async def wait_first(*events: trio.Event) -> None:
    """Wait until any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)
