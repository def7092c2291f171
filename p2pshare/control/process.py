"""Starting a node in the background, and stopping one.

Theory of operation
-------------------
**Background start.** :func:`spawn_background` starts the node command with
``posix_spawn`` in a new session (no controlling terminal, no SIGINT from the
shell's Ctrl-C), stdin from ``/dev/null`` and stdout/stderr appended to a
0600 log file, and stays the child's parent until it is ready, so it can tell
"exited early" (``waitpid``) from "still starting" and show the log tail.
``posix_spawn`` rather than :class:`subprocess.Popen`: a ``Popen`` outliving
its object warns and queues itself for reaping, while this child is meant to
outlive us. Inheritable descriptors other than 0-2 are closed in the child,
which matters when the CLI itself was started with pipes (a test harness
waiting for EOF would hang on a daemon holding the write end).

**Stopping.** ``p2pshare stop`` asks the node over the control socket, then
waits for the recorded pid with :func:`wait_for_exit`; :func:`terminate`
(SIGTERM, then SIGKILL after a grace period) is the fallback.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from p2pshare.config import open_private
from p2pshare.daemon import check_pid, pid_alive, pid_is_zombie, read_owner
from p2pshare.errors import ConfigError, ControlError

__all__ = [
    "KILL_WAIT_S",
    "TERMINATE_GRACE_S",
    "NodeStartFailed",
    "read_owner",
    "spawn_background",
    "terminate",
    "wait_for_exit",
]

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
POLL_INTERVAL_S = 0.05
TERMINATE_GRACE_S = 5.0
KILL_WAIT_S = 5.0
ZOMBIE_REAP_WAIT_S = 3.0
_LOG_TAIL_MAX_BYTES = 64 << 10
_ENV_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ)


class NodeStartFailed(ControlError):
    """A background node exited, or was not ready in time, after its start.

    Attributes:
        pid: the child's pid (``None`` if it could not even be spawned).
        log_path: the file its stdout and stderr went to.
        log_tail: the last lines it wrote there during this start.
        returncode: its exit status (negative: killed by that signal), or
            ``None`` if it did not exit on its own or its status is unknown.
    """

    code = "node_start_failed"

    def __init__(
        self,
        message: str,
        *,
        pid: int | None,
        log_path: Path,
        log_tail: str = "",
        returncode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.pid = pid
        self.log_path = log_path
        self.log_tail = log_tail
        self.returncode = returncode


# -- processes ---------------------------------------------------------------------
def _child_status(pid: int) -> tuple[bool, int | None]:
    """(has exited, exit code if known); reaps ``pid`` if it is our child."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child, or SIGCHLD is ignored
        return not pid_alive(pid), None
    if got == 0:
        return False, None
    return True, os.waitstatus_to_exitcode(status)


def _state(pid: int) -> Literal["running", "zombie", "gone"]:
    """Whether ``pid`` runs, is a zombie (dead, not reaped yet) or is gone."""
    try:
        got, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child, or SIGCHLD is ignored
        pass
    else:
        return "running" if got == 0 else "gone"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "running"  # exists, owned by someone else
    return "zombie" if pid_is_zombie(pid) else "running"


def wait_for_exit(
    pid: int, timeout_s: float, *, zombie_wait_s: float = ZOMBIE_REAP_WAIT_S
) -> bool:
    """Wait until process ``pid`` has exited, polling every 50 ms.

    Our own children are reaped (``waitpid``); other processes are watched
    with ``kill(pid, 0)``. A zombie has exited, but its pid is not free until
    its parent (init, once the CLI that spawned the node is gone) reaps it,
    and some inits reap only every few seconds: a zombie gets up to
    :data:`ZOMBIE_REAP_WAIT_S` (within ``timeout_s``) to disappear, so that
    callers can usually take "True" to mean "the pid is gone", and then
    counts as exited anyway.

    Args:
        pid: the process (must be positive).
        timeout_s: how long to wait; 0 checks once.
        zombie_wait_s: how long a zombie may take to be reaped (0: a
            zombie counts as exited at once — its locks and sockets are
            already released, which is all ``stop`` needs).

    Returns:
        Whether it has exited.

    Raises:
        ValueError: ``pid`` is not a positive integer.
    """
    check_pid(pid)
    deadline = time.monotonic() + timeout_s
    while True:
        state = _state(pid)
        if state == "gone":
            return True
        now = time.monotonic()
        if state == "zombie":
            deadline = min(deadline, now + zombie_wait_s)
            if now >= deadline:
                return True
        elif now >= deadline:
            return False
        time.sleep(min(POLL_INTERVAL_S, deadline - now))


def terminate(pid: int, *, grace_s: float = TERMINATE_GRACE_S) -> bool:
    """Stop process ``pid``: SIGTERM, then SIGKILL if it outlives ``grace_s``.

    The fallback of ``p2pshare stop`` when the control socket does not
    answer. A child of ours is reaped.

    Args:
        pid: the process (must be positive).
        grace_s: how long SIGTERM gets before SIGKILL.

    Returns:
        Whether it has exited (``False`` only if even SIGKILL did not end it
        within :data:`KILL_WAIT_S`, e.g. in uninterruptible sleep).

    Raises:
        ValueError: ``pid`` is not a positive integer.
        ControlError: we may not signal it (another user's process).
    """
    check_pid(pid)
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError as exc:
            raise ControlError(f"pid {pid}: not allowed to signal it") from exc
        if wait_for_exit(pid, wait_s):
            return True
        if sig == signal.SIGTERM:
            log.warning("pid %d outlived SIGTERM by %g s: killing it", pid, grace_s)
    return False


def _inheritable_fds() -> list[int]:
    for fd_dir in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        fds = []
        for name in names:
            fd = int(name)
            with contextlib.suppress(OSError):  # the listing's own fd is gone
                if fd > 2 and os.get_inheritable(fd):
                    fds.append(fd)
        return fds
    return []


def _spawn(argv: Sequence[str], log_fd: int) -> int:
    file_actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, log_fd, 1),
        (os.POSIX_SPAWN_DUP2, log_fd, 2),
    ]
    file_actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
    return os.posix_spawnp(
        argv[0],
        list(argv),
        os.environ,
        file_actions=file_actions,
        setsid=True,
        setsigmask=(),
        setsigdef=_ENV_SIGNALS,
    )


def _log_tail(path: Path, start: int, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - _LOG_TAIL_MAX_BYTES))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _start_failed(
    pid: int, problem: str, log_path: Path, start: int, returncode: int | None
) -> NodeStartFailed:
    tail = _log_tail(log_path, start)
    if tail:
        shown = "".join(f"\n  {line}" for line in tail.splitlines())
        where = f"; the last lines of {log_path}:{shown}"
    else:
        where = f"; it wrote nothing to {log_path}"
    return NodeStartFailed(
        f"background node (pid {pid}): {problem}{where}",
        pid=pid,
        log_path=log_path,
        log_tail=tail,
        returncode=returncode,
    )


def spawn_background(
    home: Path,
    argv: Sequence[str],
    *,
    log_path: Path,
    ready: Callable[[], bool],
    timeout_s: float,
) -> int:
    """Start ``argv`` detached and wait until ``ready()`` says it serves.

    The child runs in a new session (no controlling terminal), with stdin
    from ``/dev/null``, stdout and stderr appended to ``log_path`` (created
    0600, its directory 0700), the default disposition for SIGINT, SIGTERM,
    SIGPIPE and SIGXFSZ, no inheritable descriptor besides 0-2, and this
    process's environment and working directory (so paths in ``argv`` should
    be absolute). ``ready`` is polled every 50 ms.

    Args:
        home: the node's home (for the logs).
        argv: the command, e.g. ``[sys.executable, "-m", "p2pshare", "--home",
            H, "node", "--daemonized"]``; ``argv[0]`` is looked up on PATH.
        log_path: where the child's output goes, e.g.
            ``logs_dir(home) / "stdout.log"``.
        ready: returns True once the child is usable (say, its control socket
            answers); it should not block for long.
        timeout_s: how long to wait for ``ready``.

    Returns:
        The child's pid. The child stays our child until this process exits
        (then init adopts it); :func:`wait_for_exit` reaps it if needed.

    Raises:
        NodeStartFailed: it could not be spawned, exited before it was ready
            (with the last :data:`LOG_TAIL_LINES` lines it logged during this
            start), or was not ready within ``timeout_s`` (it is then stopped
            with :func:`terminate`).
        ConfigError: the log file cannot be created.

    If ``ready`` raises, or the wait is interrupted (KeyboardInterrupt), the
    child is stopped and the exception propagates.
    """
    if not argv:
        raise ValueError("spawn_background: empty argv")
    try:
        log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{log_path.parent}: cannot create ({exc.strerror})") from exc
    fd = open_private(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        if fd <= 2:  # dup2(fd, fd) would keep close-on-exec: move it out of the way
            low, fd = fd, fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(low)
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        os.write(fd, f"--- {stamp} p2pshare: starting a background node\n".encode())
        start = os.fstat(fd).st_size
        try:
            pid = _spawn(argv, fd)
        except OSError as exc:
            raise NodeStartFailed(
                f"{argv[0]}: cannot start ({exc.strerror})", pid=None, log_path=log_path
            ) from exc
    finally:
        os.close(fd)
    log.info("%s: started a background node, pid %d", home, pid)

    deadline = time.monotonic() + timeout_s
    try:
        while True:
            exited, code = _child_status(pid)
            if exited:
                if code is None:
                    problem = "exited before it was ready"
                elif code < 0:
                    problem = (
                        f"killed by {signal.Signals(-code).name} before it was ready"
                    )
                else:
                    problem = f"exited with status {code} before it was ready"
                raise _start_failed(pid, problem, log_path, start, code)
            if ready():
                log.info("%s: background node %d is ready", home, pid)
                return pid
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL_S)
    except NodeStartFailed:
        raise
    except BaseException:
        terminate(pid)
        raise
    log.error(
        "%s: background node %d not ready in %g s: stopping it", home, pid, timeout_s
    )
    terminate(pid)
    raise _start_failed(
        pid,
        f"not ready within {timeout_s:g} s, so it was stopped",
        log_path,
        start,
        None,
    )
