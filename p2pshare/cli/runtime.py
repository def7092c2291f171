"""Running things for the CLI: trio with clean signals, a foreground node,
and calls into a running node over the control socket."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from p2pshare.config import Home
from p2pshare.errors import NodeLost, NodeNotRunning

if TYPE_CHECKING:
    from p2pshare.control.client import ControlClient
    from p2pshare.node.service import Node

__all__ = ["NO_NODE", "call_node", "run_node", "run_until_signal", "with_client"]

log = logging.getLogger("p2pshare")


class _NoNode:
    def __repr__(self) -> str:
        return "NO_NODE"


NO_NODE: Any = _NoNode()


@contextlib.contextmanager
def heavy_imports() -> Iterator[None]:
    """Import a node's modules with the cyclic GC paused, then freeze them.

    A node imports py-libp2p, which imports every transport it ships: some
    hundred thousand objects, during which the collector runs again and
    again for nothing (no garbage is made). Paused, a ``get`` starts ~0.08 s
    sooner (of ~0.8 s of imports); frozen, a long-running node's
    collections never scan the modules again.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.freeze()
            gc.enable()


def run_until_signal(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main`` under trio; SIGINT/SIGTERM end it cleanly (returns None)."""
    import trio

    from p2pshare.groups import single_error

    async def runner() -> Any:
        result: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                    async for _sig in sigs:
                        log.info("signal received: shutting down")
                        nursery.cancel_scope.cancel()
                        return

            async def body() -> None:
                result.append(await main())
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            nursery.start_soon(body)
        return result[0] if result else None

    with single_error():
        return trio.run(runner)


def libp2p_logging(home: Home) -> None:
    """Route libp2p's records (LIBP2P-NOTES P8) to the home's log file, and
    to stderr only with --debug: in a normal run stderr carries p2pshare's
    own lines (a dead bootstrap peer made libp2p print 20+ lines there)."""
    import logging.handlers

    from p2pshare.logs import log_file_handler
    from p2pshare.node.compat import configure_libp2p_logging

    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    handlers: list[logging.Handler] = [*files] or [log_file_handler(home.path)]
    if root.isEnabledFor(logging.DEBUG):
        handlers += [h for h in root.handlers if h not in files]
    lib = logging.getLogger("libp2p")
    for old in [h for h in lib.handlers if h not in handlers]:
        lib.removeHandler(old)  # an earlier run's, in the same process
    configure_libp2p_logging(handlers)


def run_node(
    home: Home,
    *,
    listen: list[str],
    bootstrap: tuple[str, ...] | list[str],
    dht_mode: Literal["server", "client"],
    upload_rate: float | None = None,
    body: Callable[[Node], Awaitable[Any]] | None = None,
    seed: Any = None,
    announce_lan: bool = True,
) -> Any:
    """Run a node for ``home`` in this process, holding the home lock and
    serving the control socket, until ``body`` returns (or, without a body,
    until a signal or a ``stop`` request). Returns ``body``'s result."""
    with heavy_imports():
        import trio

        from p2pshare.control.server import ControlServer
        from p2pshare.daemon import HomeLock
        from p2pshare.node.service import open_node

    home.ensure()
    libp2p_logging(home)
    with HomeLock(home.path, control_socket=str(home.path / "control.sock")):

        async def main() -> Any:
            async with open_node(
                home,
                listen=listen,
                bootstrap=bootstrap,
                dht_mode=dht_mode,
                upload_rate=upload_rate,
                seed=seed,
                announce_lan=announce_lan,
            ) as node:
                stop = trio.Event()
                server = ControlServer(node, home.path / "control.sock", stop=stop.set)
                async with trio.open_nursery() as nursery:
                    await nursery.start(server.serve)
                    result = None
                    if body is not None:
                        result = await body(node)
                    else:
                        await stop.wait()
                    nursery.cancel_scope.cancel()
                return result

        return run_until_signal(main)


def with_client(home: Home, fn: Callable[[ControlClient], Awaitable[Any]]) -> Any:
    """Run ``fn`` with a client of the home's node, or return ``NO_NODE``
    when none runs (checked cheaply first: no socket file, no node).

    Raises:
        NodeLost: the node went away during ``fn`` (exit 7): never
            ``NO_NODE``, so a caller does not redo the work without it.
    """
    if not (home.path / "control.sock").exists():
        return NO_NODE
    import anyio

    from p2pshare.control.client import open_client
    from p2pshare.groups import single_error

    async def go() -> Any:
        async with open_client(home) as client:
            return await fn(client)

    try:
        with single_error():
            return anyio.run(go, backend="trio")
    except NodeLost:
        raise
    except NodeNotRunning:
        return NO_NODE


def call_node(home: Home, method: str, **params: Any) -> Any:
    """One call to the home's node; ``NO_NODE`` when none runs."""

    async def fn(client: ControlClient) -> Any:
        return await client.call(method, **params)

    return with_client(home, fn)


def absolute(path: Path) -> str:
    return str(path.expanduser().absolute())
