"""One command path: every network command talks to a node through the
control API, whether or not a node runs for the home.

Theory of operation
-------------------
A command that needs the network (``share``, ``get``, ``pin``, ``check``,
``redeem`` …) is written once, as a coroutine over a
:class:`~p2pshare.control.client.ControlClient`. :func:`with_node` runs it:

* with the home's node when one answers on the control socket (started by
  ``node --background``, the TUI, or a foreground ``node``);
* otherwise, given a :class:`NodeStart`, with a node started in this
  process for the command (``runtime.run_node``: the same assembly as any
  node, serving the same control socket) and a client connected to it.

So the code above the client is the same in both cases, and what only the
background node used to do (typed errors across the socket, supervised
jobs, ``--timeout``) is what every command does. ``Session.ephemeral``
says which case runs, for the few things that differ: a foreground
``share`` keeps serving until Ctrl-C, and Ctrl-C during a ``get`` ends the
download with the node rather than leaving it running in the background.
The commands that need no node (``add``, ``ls``, ``link``, ``rm``, ``gc``,
``get --offline``) use :func:`call_node` and work on the store when none
runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from p2pshare.cli.runtime import NO_NODE, run_node, with_client
from p2pshare.config import Home

if TYPE_CHECKING:
    from p2pshare.control.client import ControlClient
    from p2pshare.node.service import Node

__all__ = ["DEFAULT_LISTEN", "NodeStart", "Session", "with_node"]

T = TypeVar("T")

DEFAULT_LISTEN = "/ip4/0.0.0.0/tcp/0"


@dataclass(frozen=True, slots=True)
class NodeStart:
    """How to start a node in this process when none runs for the home."""

    listen: Sequence[str] = ()
    bootstrap: Sequence[str] = ()
    dht_mode: Literal["server", "client"] = "client"
    upload_rate: float | None = None
    announce_lan: bool = False  # only nodes that serve (``share``) announce


@dataclass(slots=True)
class Session:
    """A client of the node a command runs against."""

    client: ControlClient
    ephemeral: bool  # the node was started for this command (and ends with it)
    node: Node | None = field(default=None, repr=False)  # set when ephemeral


def with_node(
    home: Home,
    fn: Callable[[Session], Awaitable[T]],
    *,
    start: NodeStart | None,
    interrupted: object = KeyboardInterrupt,
) -> T | Any:
    """Run ``fn`` against the home's node, or, when none runs and ``start``
    is given, against a node started in this process for it.

    Returns ``fn``'s result; ``NO_NODE`` when no node runs and ``start`` is
    None; ``interrupted`` when it is not an exception and a signal ended the
    in-process node.

    Raises:
        KeyboardInterrupt: Ctrl-C (or SIGTERM) ended the in-process node
            (unless ``interrupted`` says what to return instead), or this
            process while it talked to the home's node.
        NodeLost: the background node went away during ``fn``.
        Whatever ``fn`` raises (the node's errors keep their class and code).
    """

    async def remote(client: ControlClient) -> T:
        return await fn(Session(client, ephemeral=False))

    result = with_client(home, remote)
    if result is not NO_NODE or start is None:
        return result

    async def body(node: Node) -> list[T]:
        from p2pshare.control.client import open_client

        async with open_client(home) as client:
            return [await fn(Session(client, ephemeral=True, node=node))]

    got: list[T] | None = run_node(
        home,
        listen=list(start.listen) or [DEFAULT_LISTEN],
        bootstrap=list(start.bootstrap),
        dht_mode=start.dht_mode,
        upload_rate=start.upload_rate,
        announce_lan=start.announce_lan,
        body=body,
    )
    if got is not None:
        return got[0]
    # a signal ended the node before fn returned
    if isinstance(interrupted, type) and issubclass(interrupted, BaseException):
        raise interrupted
    return interrupted
