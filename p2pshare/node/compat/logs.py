"""Routing libp2p's log records (P8).

Only the CLI calls this: it owns logging (STYLE §11); library code never
configures loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

__all__ = ["configure_libp2p_logging"]


def configure_libp2p_logging(
    handlers: Iterable[logging.Handler], *, level: int = logging.WARNING
) -> None:
    """Send libp2p's log records to ``handlers`` (for ``cli.py`` to call).

    P8: on import 0.8.1 clears the ``libp2p`` logger's handlers and sets
    ``propagate=False``, so its warnings reach only Python's last-resort
    stderr handler, bypassing the application's log setup. This attaches the
    application's handlers (idempotently) at ``level`` and quiets
    ``libp2p.kad_dht.kad_dht`` to ERROR: it emits "Failed to read DHT message
    from stream" for every normal request served by an unhardened DHT server
    (thousands per minute). Library code never calls this; only the CLI,
    which owns logging (STYLE §11). Remove when: libp2p stops disabling
    propagation and the DHT warning is fixed.
    """
    root = logging.getLogger("libp2p")
    root.setLevel(level)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    logging.getLogger("libp2p.kad_dht.kad_dht").setLevel(max(level, logging.ERROR))
