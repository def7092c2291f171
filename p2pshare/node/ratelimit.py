"""A token-bucket rate limiter for uploads (``--max-upload-rate``).

One limiter is shared by every stream a node serves, so the node's total
upload stays under the configured rate; ``take(n)`` waits until ``n`` bytes
may go. The bucket starts empty (no burst at start) and holds at most one
second of tokens, so a burst after an idle period is bounded too. ``None``
means unlimited.
"""

from __future__ import annotations

import trio

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, rate_bps: float | None) -> None:
        if rate_bps is not None and rate_bps <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate_bps
        self._tokens = 0.0
        self._stamp: float | None = None
        self._lock = trio.Lock()

    async def take(self, nbytes: int) -> None:
        """Wait until ``nbytes`` may be sent. Cancellable."""
        if self.rate is None:
            return
        async with self._lock:  # FIFO: streams share the rate fairly
            now = trio.current_time()
            if self._stamp is not None:
                self._tokens = min(
                    self.rate, self._tokens + (now - self._stamp) * self.rate
                )
            self._stamp = now
            self._tokens -= nbytes
            if self._tokens < 0:
                await trio.sleep(-self._tokens / self.rate)
