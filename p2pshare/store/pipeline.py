"""An ordered, bounded map over a worker pool.

The crypto of p2pshare (XChaCha20-Poly1305 in libsodium, BLAKE2b in
hashlib) releases the GIL, so sealing chunks in two threads while the
calling thread reads and writes files uses both cores. ``ordered_map``
keeps at most ``window`` items in flight (memory stays bounded whatever the
file size) and yields results in input order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["DEFAULT_WORKERS", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = DEFAULT_WORKERS,
    window: int | None = None,
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in order, computed in threads.

    At most ``window`` (default ``2 * workers``) calls are pending at once.
    An exception from ``fn`` is raised at its position; pending work is
    cancelled when the consumer stops early.
    """
    limit = window or 2 * workers
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="p2pshare-crypto")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
