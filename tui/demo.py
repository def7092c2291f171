"""``p2pshare demo``: a small local swarm to try the TUI on, offline.

Two background nodes with temporary homes listen on loopback only: a
*sharer* that shares a generated sample file and a sample folder, and *you*,
whose TUI opens with the folder's link ready to browse and download. Both
nodes are the real CLI (``python -m p2pshare node --background``) and
everything goes through it, exactly as a user would; the swarm is always
torn down on exit (nodes stopped, homes removed unless ``--keep``), also on
Ctrl-C, SIGTERM and errors.

:class:`DemoSwarm` does the orchestration (a context manager, usable from
tests and scripts); :func:`demo` is the click command.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

import click

from p2pshare.config import Home
from p2pshare.control.process import read_owner, terminate, wait_for_exit
from p2pshare.errors import P2PShareError

__all__ = [
    "LOOPBACK",
    "SAMPLE_FILE_NAME",
    "SAMPLE_FOLDER_NAME",
    "SAMPLE_SIZE_BYTES",
    "DemoError",
    "DemoSwarm",
    "demo",
    "sample_bytes",
    "write_sample_file",
    "write_sample_folder",
]

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
SAMPLE_FILE_NAME = "p2pshare-sample.bin"
SAMPLE_FOLDER_NAME = "demo-folder"
SAMPLE_SIZE_BYTES = 4 << 20
SAMPLE_SEED = b"p2pshare demo sample, v1"
# How long one CLI call of the demo may take (a node start is ~3 s).
CLI_TIMEOUT_S = 90.0
STOP_WAIT_S = 15.0
SIGNAL_POLL_S = 0.2  # how soon a signal handled off the main thread is seen
TEMP_PREFIX = "p2ps-demo-"  # short: control.sock paths must fit in 107 bytes


class DemoError(P2PShareError):
    """The demo swarm could not be set up (one line, for the user)."""

    code = "demo"


def sample_bytes(size: int = SAMPLE_SIZE_BYTES, seed: bytes = SAMPLE_SEED) -> bytes:
    """The sample file's content: deterministic, incompressible bytes.

    Tests recompute it to check a download byte for byte.
    """
    return hashlib.shake_256(seed).digest(size)


def write_sample_file(directory: Path, size: int = SAMPLE_SIZE_BYTES) -> Path:
    """Write the sample file into ``directory``; return its path."""
    path = directory / SAMPLE_FILE_NAME
    path.write_bytes(sample_bytes(size))
    return path


_README = """\
Welcome to the p2pshare demo!

This folder was shared by the "sharer" node of a little swarm that runs
on this machine only (127.0.0.1). Its files were encrypted and chunked by
that node; your node fetches the chunks over libp2p, checks every one of
them, and decrypts them with the key that travels after the '#' of the link.

Try it: browse the folders, then download one file or the whole folder.
Everything disappears when you quit the demo.
"""

_TODO = """\
# Things to try

- [ ] open `photos/`, a folder with a non-ASCII name inside
- [ ] download `data/blob.bin` and watch the progress
- [ ] download the whole folder
- [ ] share a file of your own from the Shares screen
"""


def write_sample_folder(directory: Path) -> Path:
    """Write the sample folder (nested, a few files, non-ASCII names)."""
    root = directory / SAMPLE_FOLDER_NAME
    files: dict[str, str | bytes] = {
        "README.txt": _README,
        "notes/todo.md": _TODO,
        "notes/2026/meeting notes.txt": (
            "Agenda: 1. the TUI  2. seed nodes  3. release\n"
        ),
        "photos/café ☕/menu.txt": "espresso 2.20\ncortado 2.80\nchai 3.10\n",
        "photos/Straße 東京.txt": "Grüße aus Tōkyō! 🗼\n",
        "data/numbers.csv": "n,square,cube\n"
        + "".join(f"{n},{n * n},{n**3}\n" for n in range(1, 501)),
        "data/blob.bin": sample_bytes(768 << 10, seed=SAMPLE_SEED + b" blob"),
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def _error_line(stderr: str) -> str:
    """The gist of a failed CLI call: its innermost error line, unprefixed.

    A node that failed to start quotes its log, whose last error line is the
    cause (and the log itself is about to be removed with the home).
    """
    prefix = "p2pshare: error: "
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "no error message"


def _silent(_message: str) -> None:
    pass


def _interrupt_and_reap(proc: subprocess.Popen[str]) -> None:
    """SIGINT ``proc``, give it :data:`STOP_WAIT_S` to exit, then kill it."""
    with _ignoring_sigint():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


class DemoSwarm:
    """Two background nodes on loopback with temporary homes.

    Use as a context manager, or call :meth:`start` and :meth:`close`
    (:meth:`close` is idempotent and safe after a failed or interrupted
    :meth:`start`)::

        with DemoSwarm() as swarm:
            print(swarm.folder_link)

    After :meth:`start`: :attr:`root` (the temporary directory), the homes
    :attr:`sharer_home` and :attr:`you_home`, the samples
    :attr:`sample_file` and :attr:`sample_folder`, the nodes' addresses
    :attr:`sharer_addrs` and :attr:`you_addrs`, and the share links
    :attr:`file_link` and :attr:`folder_link` (with the sharer's addresses
    as peer hints).

    Args:
        keep: leave the temporary directory in place on :meth:`close` (the
            nodes are stopped all the same).
        sample_size: the sample file's size in bytes.
        python: the interpreter that runs ``-m p2pshare``.
        log: called with a line of progress for the user.
        debug: run the CLI calls with ``--debug``.
    """

    def __init__(
        self,
        *,
        keep: bool = False,
        sample_size: int = SAMPLE_SIZE_BYTES,
        python: str = sys.executable,
        log: Callable[[str], None] = _silent,
        debug: bool = False,
    ) -> None:
        self.keep = keep
        self.sample_size = sample_size
        self.python = python
        self.log = log
        self.debug = debug
        self._root: Path | None = None
        self.sharer_addrs: list[str] = []
        self.you_addrs: list[str] = []
        self.file_link = ""
        self.folder_link = ""
        self._closed = False

    # -- paths -----------------------------------------------------------------
    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("DemoSwarm: not started")
        return self._root

    @property
    def sharer_home(self) -> Path:
        return self.root / "sharer"

    @property
    def you_home(self) -> Path:
        return self.root / "you"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def downloads(self) -> Path:
        """Where the demo's TUI downloads to (removed with the rest)."""
        return self.root / "downloads"

    @property
    def sample_file(self) -> Path:
        return self.samples / SAMPLE_FILE_NAME

    @property
    def sample_folder(self) -> Path:
        return self.samples / SAMPLE_FOLDER_NAME

    @property
    def links(self) -> list[str]:
        """The share links, file first, then folder."""
        return [self.file_link, self.folder_link]

    # -- the CLI ---------------------------------------------------------------
    def cli(self, home: Path, *args: str) -> str:
        """Run ``p2pshare --home HOME ARGS``; its stdout, or :class:`DemoError`.

        If this is interrupted (Ctrl-C, SIGTERM, the timeout), the CLI gets
        a SIGINT and a moment to clean up after itself: a ``node
        --background`` that is still waiting for its node stops that node,
        which it could not do if it were just killed.
        """
        cmd = [self.python, "-m", "p2pshare", "--home", str(home)]
        if self.debug:
            cmd.append("--debug")
        env = {k: v for k, v in os.environ.items() if k != "P2PSHARE_HOME"}
        what = f"{home.name}: p2pshare {args[0]}"
        try:
            proc = subprocess.Popen(  # noqa: S603 (our own CLI, no shell)
                [*cmd, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        except OSError as exc:
            raise DemoError(f"{what}: cannot run {self.python} ({exc})") from exc
        with proc:
            try:
                out, err = proc.communicate(timeout=CLI_TIMEOUT_S)
            except BaseException as exc:
                _interrupt_and_reap(proc)
                if isinstance(exc, subprocess.TimeoutExpired):
                    raise DemoError(
                        f"{what}: no answer within {CLI_TIMEOUT_S:g} s"
                    ) from exc
                raise
        if proc.returncode != 0:
            raise DemoError(f"{what} failed: {_error_line(err)}")
        return out

    def _start_node(self, home: Path, *extra: str) -> list[str]:
        out = self.cli(home, "node", "--background", "--listen", LOOPBACK, *extra)
        addrs = out.split()
        if not addrs:
            raise DemoError(f"{home.name}: the node printed no address")
        return addrs

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Make the homes and samples, start both nodes, share the samples.

        Raises:
            DemoError: a step failed (what is already running stays running
                until :meth:`close`).
        """
        if self._root is not None:
            raise RuntimeError("DemoSwarm: already started")
        try:
            self._root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        except OSError as exc:
            raise DemoError(f"cannot create a temporary directory ({exc})") from exc
        self.log(f"demo: homes in {self.root}")
        try:
            self.samples.mkdir()
            write_sample_file(self.samples, self.sample_size)
            write_sample_folder(self.samples)
        except OSError as exc:
            raise DemoError(f"cannot write the samples ({exc})") from exc

        self.log("demo: starting the sharer node ...")
        self.sharer_addrs = self._start_node(self.sharer_home)
        out = self.cli(
            self.sharer_home, "share", str(self.sample_file), str(self.sample_folder)
        )
        links = out.split()
        if len(links) != 2:
            raise DemoError(f"sharer: expected 2 links from share, got {len(links)}")
        self.file_link, self.folder_link = links

        self.log("demo: starting your node ...")
        bootstrap = [arg for a in self.sharer_addrs for arg in ("--bootstrap", a)]
        self.you_addrs = self._start_node(self.you_home, *bootstrap)

    def _stop_node(self, home: Path) -> None:
        """Stop the node of ``home`` if one runs: ``stop``, else signals."""
        try:
            owner = read_owner(home)
        except P2PShareError:
            owner = None
        if owner is None:
            return
        with contextlib.suppress(DemoError):
            self.cli(home, "stop")
        if not wait_for_exit(owner.pid, STOP_WAIT_S):
            with contextlib.suppress(P2PShareError):
                terminate(owner.pid)

    def close(self) -> None:
        """Stop both nodes, then remove the homes (unless ``keep``).

        Idempotent; SIGINT is ignored meanwhile, so a second Ctrl-C cannot
        leave a node behind.
        """
        if self._closed or self._root is None:
            self._closed = True
            return
        self._closed = True
        with _ignoring_sigint():
            homes = [h for h in (self.you_home, self.sharer_home) if h.exists()]
            if homes:
                self.log("demo: stopping the nodes ...")
            with ThreadPoolExecutor(max_workers=2) as pool:  # both at once
                list(pool.map(self._stop_node, homes))
            if self.keep:
                self.log(f"demo: kept the homes in {self.root}")
                self.log(
                    f"demo:   p2pshare --home {self.you_home} tui"
                    f"  (start the sharer first: p2pshare --home {self.sharer_home}"
                    " node --background)"
                )
            else:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def _ignoring_sigint() -> Iterator[None]:
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to protect
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _terminations_interrupt(
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGHUP),
) -> Iterator[None]:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt, like Ctrl-C."""
    old = {sig: signal.signal(sig, _interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _load_run_tui() -> Callable[..., int]:
    try:
        from tui.app import run_tui
    except ImportError as exc:
        raise DemoError(
            f"the terminal UI is not available ({exc}); try `p2pshare demo --no-tui`"
        ) from exc
    return run_tui


@click.command()
@click.option(
    "--no-tui",
    is_flag=True,
    help="Print the links (file, then folder) on stdout and keep the swarm "
    "up until Ctrl-C / SIGTERM.",
)
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the temporary homes (and samples) on exit; print where.",
)
@click.pass_context
def demo(ctx: click.Context, no_tui: bool, keep: bool) -> None:
    """Try p2pshare offline: a two-node swarm on 127.0.0.1 and the TUI.

    Starts a "sharer" node sharing a sample file and a sample folder, and
    "your" node, both with temporary homes (--home is not used), then opens
    the terminal UI on your node with the folder's link ready to browse and
    download. Everything is stopped and removed on exit.
    """
    debug = bool((ctx.obj or {}).get("debug"))
    run_tui = None if no_tui else _load_run_tui()

    def say(message: str) -> None:
        click.echo(message, err=True)

    code = 0
    with (
        _terminations_interrupt(),
        DemoSwarm(keep=keep, log=say, debug=debug) as swarm,
    ):
        if run_tui is None:
            # the swarm is up: from here on, a signal is the normal way out
            with contextlib.suppress(KeyboardInterrupt):
                for link in swarm.links:
                    click.echo(link)
                sys.stdout.flush()
                say("demo: swarm up; Ctrl-C stops it")
                while True:  # not signal.pause(): a signal the kernel hands
                    # to another thread would never wake it; Python runs the
                    # handler at the main thread's next step, so step
                    time.sleep(SIGNAL_POLL_S)
        else:
            code = run_tui(
                Home(swarm.you_home),
                link=swarm.folder_link,
                notice=(
                    "demo: a two-node swarm on 127.0.0.1 — browse the sample "
                    "folder and download it; quitting stops the demo"
                ),
                listen=(LOOPBACK,),
                bootstrap=tuple(swarm.sharer_addrs),
                destination=swarm.downloads,
                ephemeral=True,
            )
    if code:
        sys.exit(code)
