"""Starting the home's background node, attaching to it, stopping it.

The one place a background node is started from: :func:`start_background`
(``p2pshare node --background``) spawns ``p2pshare node --daemonized``
detached (``process.spawn_background``) and returns once its control socket
answers. The terminal UI (:func:`attach_or_start`) and the demo run that
same command in a process of their own, so the node is never a child of
the UI. :func:`stop_node` asks a node to stop over the socket and waits for
its process to exit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import anyio

from p2pshare.config import HOME_ENV, Home
from p2pshare.control.client import open_client
from p2pshare.control.process import read_owner, spawn_background, wait_for_exit
from p2pshare.daemon import HomeLock
from p2pshare.errors import NodeLost, NodeNotRunning
from p2pshare.logs import logs_dir

__all__ = [
    "ATTACH_TIMEOUT_S",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "Background",
    "attach_or_start",
    "node_answers",
    "start_background",
    "start_command",
    "stop_node",
]

START_TIMEOUT_S = 30.0
ATTACH_TIMEOUT_S = 90.0  # the whole `node --background` process, from the TUI
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Background:
    """How to run the home's background node."""

    listen: Sequence[str] = ()
    bootstrap: Sequence[str] = ()
    upload: str | None = None  # --max-upload-rate, as the user wrote it
    dht_mode: Literal["server", "client"] = "server"
    debug: bool = False

    def argv(self, home: Home) -> list[str]:
        argv = [sys.executable, "-m", "p2pshare", "--home", str(home.path)]
        if self.debug:
            argv.append("--debug")
        argv += ["node", "--daemonized", "--dht-mode", self.dht_mode]
        for addr in self.listen:
            argv += ["--listen", addr]
        for addr in self.bootstrap:
            argv += ["--bootstrap", addr]
        if self.upload:
            argv += ["--max-upload-rate", self.upload]
        return argv


async def node_answers(home: Home, *, name: str = "p2pshare-cli") -> bool:
    """Whether a node answers on the home's control socket."""
    try:
        async with open_client(home, name=name):
            return True
    except (NodeNotRunning, NodeLost):
        return False


async def _addrs(home: Home) -> list[str]:
    async with open_client(home) as client:
        status = await client.call("status")
    return list(status["addrs"])


def start_background(
    home: Home, how: Background, *, timeout_s: float = START_TIMEOUT_S
) -> tuple[int, list[str]]:
    """Start the home's node in the background; return its pid and full
    multiaddrs once its control socket answers.

    Raises:
        NodeAlreadyRunning: a node holds the home already.
        NodeStartFailed: it exited, or did not answer within ``timeout_s``
            (with the tail of its log).
    """
    home.ensure()
    HomeLock.check_free(home.path)

    def ready() -> bool:
        return anyio.run(node_answers, home, backend="trio")

    pid = spawn_background(
        home.path,
        how.argv(home),
        log_path=logs_dir(home.path) / "stdout.log",
        ready=ready,
        timeout_s=timeout_s,
    )
    try:
        addrs = anyio.run(_addrs, home, backend="trio")
    except (NodeNotRunning, NodeLost):
        addrs = []
    return pid, addrs


def start_command(home: Home, how: Background) -> list[str]:
    """``p2pshare --home H node --background …``: how the TUI starts a node."""
    cmd = [sys.executable, "-m", "p2pshare", "--home", str(home.path), "node"]
    cmd.append("--background")
    for addr in how.listen:
        cmd += ["--listen", addr]
    for addr in how.bootstrap:
        cmd += ["--bootstrap", addr]
    return cmd


async def attach_or_start(
    home: Home,
    how: Background,
    *,
    timeout_s: float = ATTACH_TIMEOUT_S,
    name: str = "p2pshare-cli",
) -> bool:
    """Make sure a node runs for ``home``; return True if we started it.

    The node is started the way a user would (``p2pshare node
    --background``, which is :func:`start_background`), in a process of its
    own that returns once the node answers: the node is then nobody's child
    in this process, whatever becomes of it.

    Raises:
        NodeNotRunning: the node could not be started (its last line of
            stderr says why).
    """
    if await node_answers(home, name=name):
        return False
    env = {k: v for k, v in os.environ.items() if k != HOME_ENV}
    try:
        with anyio.fail_after(timeout_s):
            proc = await anyio.run_process(
                start_command(home, how), check=False, env=env
            )
    except TimeoutError:
        raise NodeNotRunning(f"{home.path}: the node did not start in time") from None
    except OSError as exc:
        raise NodeNotRunning(f"{home.path}: cannot start a node ({exc})") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        why = err[-1] if err else f"exit code {proc.returncode}"
        raise NodeNotRunning(f"{home.path}: the node did not start: {why}")
    if not await node_answers(home, name=name):
        raise NodeNotRunning(f"{home.path}: the node started but does not answer")
    return True


def stop_node(home: Home, *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Ask the home's node to stop and wait (``timeout_s``) for it to exit.

    Returns False when no node answered (nothing to stop).

    Raises:
        NodeNotRunning: it answered but did not exit in time.
    """
    owner = read_owner(home.path)

    async def ask() -> bool:
        try:
            async with open_client(home) as client:
                await client.call("stop")
        except NodeNotRunning:
            return False
        except NodeLost:
            pass  # it went away while answering: that is a stop
        return True

    if not anyio.run(ask, backend="trio"):
        return False
    # a zombie has exited (lock and socket released): no need to wait for
    # init to reap it
    if owner is not None and not wait_for_exit(owner.pid, timeout_s, zombie_wait_s=0):
        raise NodeNotRunning(
            f"node (pid {owner.pid}) did not exit within {timeout_s:g} s"
        )
    return True
