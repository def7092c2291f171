"""Real p2pshare processes on loopback: ``share``, ``node``, ``get``.

A process that prints addresses or links on stdout is read line by line
until it has printed what it promised (readiness comes from its output,
never from a sleep). Every process is killed at the end of the ``with``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"}


class Proc:
    """A running CLI process whose stderr is collected in the background."""

    def __init__(
        self,
        home: Path,
        *args: str | Path,
        debug: bool = False,
        module: str = "p2pshare",
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """``python -m <module> --home HOME ARGS``; ``module`` may be a
        wrapper that runs the CLI patched (``tests.helpers.hostile``);
        ``prefix`` runs it through another command (``ip netns exec NS``)."""
        cmd = [*prefix, sys.executable, "-m", module, "--home", str(home)]
        if debug:
            cmd.append("--debug")
        self.popen = subprocess.Popen(
            [*cmd, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_env(), **(env or {})},
        )
        self.err_lines: list[str] = []
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.err_lines.append(line)

    @property
    def err(self) -> str:
        """Everything on stderr so far; once the process has ended, all of
        it (the reader thread is given time to drain the pipe)."""
        if self.popen.poll() is not None:
            self._t.join(5)
        return "".join(self.err_lines)

    def read_lines(self, n: int, timeout: float = 60) -> list[str]:
        """The first ``n`` stdout lines (fails if the process dies first)."""
        assert self.popen.stdout is not None
        out: list[str] = []
        timer = threading.Timer(timeout, self.popen.kill)
        timer.start()
        try:
            while len(out) < n:
                line = self.popen.stdout.readline()
                if not line:
                    raise AssertionError(f"process ended early: {self.err}")
                out.append(line.strip())
        finally:
            timer.cancel()
        return out

    def stop(self, timeout: float = 10) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._t.join(5)
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p._t.join(5)  # let the reader drain stderr before it is closed
            for stream in (p.popen.stdout, p.popen.stderr):
                if stream is not None:
                    stream.close()


def share(
    home: Path,
    *paths: Path,
    extra: tuple[str, ...] = (),
    debug: bool = False,
    hostile: str | None = None,
) -> tuple[Proc, list[str]]:
    """``share PATHS``; with ``hostile``, a provider that misbehaves that
    way (see ``tests.helpers.hostile``)."""
    kw: dict[str, Any] = {}
    if hostile is not None:
        kw = {"module": "tests.helpers.hostile", "env": {"P2PSHARE_HOSTILE": hostile}}
    proc = Proc(home, "share", "--listen", LOOPBACK, *extra, *paths, debug=debug, **kw)
    return proc, proc.read_lines(len(paths))


def node(home: Path, *extra: str) -> tuple[Proc, list[str]]:
    """A ``node``; returns it and its first address line."""
    proc = Proc(home, "node", "--listen", LOOPBACK, *extra)
    return proc, proc.read_lines(1)


def seed(home: Path, region: str, *extra: str) -> tuple[Proc, str]:
    """An open ``seed`` in ``region``; returns it and its address."""
    proc = Proc(
        home, "seed", "--listen", LOOPBACK, "--region", region, "--open", *extra
    )
    (addr,) = proc.read_lines(1)
    return proc, addr
