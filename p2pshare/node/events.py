"""Node events: frozen values published to subscribers (control API, logs).

One source of truth (STYLE §6): the node publishes progress, peer and
share events here; each is logged at DEBUG and delivered to every
subscriber. A subscriber gets a bounded channel; one that does not keep up
loses its oldest events rather than slowing the node (a ``dropped`` count
says how many), so a stuck client never blocks a transfer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from p2pshare.records import Event

__all__ = ["EventBus", "NodeEvent"]

log = logging.getLogger(__name__)

SUBSCRIBER_BUFFER = 256


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """One event, as its record in ``p2pshare/records.py`` (``kind`` names
    it: ``download.progress``, ``share.added``, …): JSON-like values only
    (no keys, no plaintext names except in events about the user's own
    downloads and shares, which only the local owner can subscribe to)."""

    record: Event

    @property
    def kind(self) -> str:
        return self.record["kind"]

    def to_wire(self) -> Event:
        return self.record


class _Subscriber:
    def __init__(self) -> None:
        self.queue: deque[NodeEvent] = deque(maxlen=SUBSCRIBER_BUFFER)
        self.dropped = 0
        self.wake = trio.Event()

    def put(self, event: NodeEvent) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(event)
        self.wake.set()


_LOGGED = frozenset({"id", "root", "state", "code", "error_code", "job", "what"})


class EventBus:
    """Publish/subscribe within one trio run."""

    def __init__(self) -> None:
        self._subs: set[_Subscriber] = set()

    def publish(self, record: Event) -> None:
        event = NodeEvent(record)
        # ids and states only: names, paths and error texts stay out of logs
        logged = {k: v for k, v in record.items() if k in _LOGGED}
        log.debug("event %s %s", record["kind"], logged)
        for sub in self._subs:
            sub.put(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[NodeEvent]]:
        """``async with bus.subscribe() as events: async for e in events``."""
        sub = _Subscriber()
        self._subs.add(sub)

        async def stream() -> AsyncIterator[NodeEvent]:
            while True:
                while sub.queue:
                    yield sub.queue.popleft()
                sub.wake = trio.Event()
                await sub.wake.wait()

        try:
            yield stream()
        finally:
            self._subs.discard(sub)
