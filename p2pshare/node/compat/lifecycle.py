"""The host's lifetime: detached library operations (N1) and shutdown (P9).

``host.py`` runs the libp2p host in a shielded task that owns a background
nursery; it registers that nursery here (:func:`set_background_nursery`) so
that DHT operations can run where no caller's cancellation reaches them
(:func:`run_detached`), and it closes the network with
:func:`close_network` before leaving ``host.run()``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import trio

from p2pshare.errors import TransferError

if TYPE_CHECKING:
    from libp2p.abc import IHost

__all__ = [
    "NETWORK_CLOSE_TIMEOUT_S",
    "close_network",
    "run_detached",
    "set_background_nursery",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Closing one connection costs ~0.2 s in 0.8.1 (Yamux.close and
# SwarmConn._cleanup each sleep 0.1 s); connections are closed concurrently,
# so this bounds the whole shutdown, not one connection.
NETWORK_CLOSE_TIMEOUT_S: Final = 10.0


# --------------------------------------------------------------------------
# Detached library operations: N1
# --------------------------------------------------------------------------

_BACKGROUND: weakref.WeakKeyDictionary[Any, trio.Nursery] = weakref.WeakKeyDictionary()


def set_background_nursery(host: IHost, nursery: trio.Nursery | None) -> None:
    """Register (or with None, forget) the nursery :func:`run_detached` uses.

    ``host.py`` registers a nursery that lives inside the host's shielded
    task, so that work started there is never cancelled by a caller.
    """
    if nursery is None:
        _BACKGROUND.pop(host, None)
    else:
        _BACKGROUND[host] = nursery


async def run_detached(host: IHost, fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run a libp2p operation where its caller's cancellation cannot cut it.

    N1 (see ``compat.stream_io``) for library code: DHT lookups and provides
    write frames on shared connections, and they wait on peers, so they can
    be neither shielded nor safely cancelled. ``fn`` runs as a task in the
    host's background nursery (see :func:`set_background_nursery`); the
    caller waits for its result and may be cancelled at any time, in which
    case ``fn`` runs on to its own end (libp2p bounds every query by its 10 s
    query timeout) and the result is dropped. Exceptions from ``fn`` are
    re-raised in the caller. Without a registered nursery, ``fn`` simply runs
    in the caller.

    Raises:
        TransferError: the host shut down before ``fn`` finished.
    """
    nursery = _BACKGROUND.get(host)
    if nursery is None:
        return await fn()
    done = trio.Event()
    values: list[_T] = []
    errors: list[Exception] = []

    async def run() -> None:
        try:
            values.append(await fn())
        except Exception as exc:  # handed to the caller, re-raised there
            errors.append(exc)
        finally:
            done.set()

    nursery.start_soon(run)
    await done.wait()
    if errors:
        raise errors[0]
    if not values:
        raise TransferError("the libp2p host shut down during the operation")
    return values[0]


# --------------------------------------------------------------------------
# Shutdown: P9
# --------------------------------------------------------------------------


async def close_network(host: IHost) -> None:
    """Close every connection and listener of ``host``: shielded, bounded.

    P9: leaving ``host.run()`` leaks listening and connection sockets in
    0.8.1 (the swarm's cleanup awaits unshielded while being cancelled, and
    the TCP listener lives in a system task). Calling this inside the
    ``host.run()`` block, before leaving it, releases them all. It is shielded
    from cancellation (shutdown usually *is* a cancellation) and bounded by
    :data:`NETWORK_CLOSE_TIMEOUT_S`. Connections are closed concurrently,
    since each costs ~0.2 s of library sleeps. Errors are logged, never
    raised. Remove when: ``host.run()`` exit releases sockets by itself.
    """
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(NETWORK_CLOSE_TIMEOUT_S) as scope,
    ):
        network = host.get_network()
        conns = [c for cs in list(network.connections.values()) for c in list(cs)]
        async with trio.open_nursery() as nursery:
            for conn in conns:
                nursery.start_soon(_close_conn_quietly, conn)
        try:
            await host.close()
        except Exception:
            logger.warning("closing the libp2p network failed", exc_info=True)
    if scope.cancelled_caught:
        logger.warning(
            "closing the libp2p network took over %.0f s; sockets may leak",
            NETWORK_CLOSE_TIMEOUT_S,
        )


async def _close_conn_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:
        logger.debug("closing a connection failed", exc_info=True)
