"""Node events: frozen values published to subscribers (control API, logs).

One source of truth (STYLE §6): the node publishes progress, peer and
share events here; each is logged at DEBUG and delivered to every
subscriber. A subscriber gets a bounded channel; one that does not keep up
loses its oldest events rather than slowing the node (a ``dropped`` count
says how many), so a stuck client never blocks a transfer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

__all__ = ["EventBus", "NodeEvent"]

log = logging.getLogger(__name__)

SUBSCRIBER_BUFFER = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeEvent:
    """``kind`` names the event (``download.progress``, ``share.added``, …);
    ``data`` carries JSON-like values only (no keys, no plaintext names
    except in events about the user's own downloads and shares, which only
    the local owner can subscribe to)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.data}


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

    def publish(self, kind: str, **data: Any) -> None:
        event = NodeEvent(kind=kind, data=data)
        # ids and states only: names, paths and error texts stay out of logs
        log.debug("event %s %s", kind, {k: v for k, v in data.items() if k in _LOGGED})
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


def as_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
