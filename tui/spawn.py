"""Attach to the home's node, or start one in the background.

The node is started the way a user would (``p2pshare --home H node
--background``), which returns once its control socket answers; so the
only waiting here is for that process to exit, against a deadline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import anyio

from p2pshare.config import HOME_ENV, Home
from p2pshare.control.client import open_client
from p2pshare.errors import NodeNotRunning, P2PShareError

__all__ = ["START_TIMEOUT_S", "attach_or_start", "node_answers", "start_command"]

START_TIMEOUT_S = 90.0


async def node_answers(home: Home) -> bool:
    """Whether a node answers on the home's control socket."""
    try:
        async with open_client(home, name="p2pshare-tui"):
            return True
    except NodeNotRunning:
        return False


def start_command(
    home: Home, listen: Sequence[str] = (), bootstrap: Sequence[str] = ()
) -> list[str]:
    cmd = [sys.executable, "-m", "p2pshare", "--home", str(home.path), "node"]
    cmd.append("--background")
    for addr in listen:
        cmd += ["--listen", addr]
    for addr in bootstrap:
        cmd += ["--bootstrap", addr]
    return cmd


async def attach_or_start(
    home: Home,
    *,
    listen: Sequence[str] = (),
    bootstrap: Sequence[str] = (),
    timeout_s: float = START_TIMEOUT_S,
) -> bool:
    """Make sure a node runs for ``home``; return True if we started it.

    Raises:
        NodeNotRunning: the node could not be started (its stderr says why).
    """
    if await node_answers(home):
        return False
    env = {k: v for k, v in os.environ.items() if k != HOME_ENV}
    try:
        with anyio.fail_after(timeout_s):
            proc = await anyio.run_process(
                start_command(home, listen, bootstrap), check=False, env=env
            )
    except TimeoutError:
        raise NodeNotRunning(f"{home.path}: the node did not start in time") from None
    except OSError as exc:
        raise NodeNotRunning(f"{home.path}: cannot start a node ({exc})") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        why = err[-1] if err else f"exit code {proc.returncode}"
        raise NodeNotRunning(f"{home.path}: the node did not start: {why}")
    if not await node_answers(home):
        raise NodeNotRunning(f"{home.path}: the node started but does not answer")
    return True


def describe_error(exc: BaseException) -> str:
    """One line for a notification."""
    if isinstance(exc, P2PShareError):
        return str(exc) or exc.code
    return f"{type(exc).__name__}: {exc}"
