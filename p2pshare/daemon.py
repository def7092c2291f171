"""One background node per home: the lock, the spawn, the logs, the stop.

Synchronous building blocks (no trio) for running a node the way kubo and
syncthing do: at most one node per home directory, optionally detached from
the terminal, logging to a rotating file in ``<home>/logs/``.

Theory of operation
-------------------
**The home lock.** A running node holds ``fcntl.flock(LOCK_EX)`` on
``<home>/node.lock`` for its whole life. flock belongs to the open file
description, so the kernel drops it when the holder dies, however it dies
(SIGKILL included): there is no stale *lock*, only, at worst, a stale
*record*. Once the lock is taken, the holder writes an owner record into the
file (JSON: ``pid``, ``started_at``, ``control_socket``) and fsyncs it::

    acquire:  open(0600) -> flock(EX|NB) -> pwrite(record) -> ftruncate -> fsync
    release:  ftruncate(0) -> flock(UN) -> close          (never unlink)
    probe:    open(ro) -> flock(SH|NB)?  ok: free (any record is stale)
                                        EWOULDBLOCK: held, the record names it

The file is never unlinked: a process that opened the old inode before the
unlink and locked it after would hold a lock nobody else can see. Release
empties the record while it still holds the lock, so nobody reads it
half-cleared.

Invariants and their limits:

- The record is only trusted while the lock is held. A probe (``read_owner``,
  ``HomeLock.check_free``) that gets the lock itself knows the file is stale.
- A reader may look between the holder's flock and its write. The record is
  written in place (pwrite, then ftruncate) and parsed with ``raw_decode``, so
  a reader sees either the old record, the new one, or the new one followed
  by old bytes, never a mix of both within the JSON value. A record naming a
  dead pid while the lock is held is therefore "not written yet": readers
  retry for up to :data:`RECORD_WAIT_S`.
- A probe holds the lock for microseconds; a node starting at that very
  moment would see it held. ``acquire`` therefore retries while the holder
  recorded is not a live process, for up to :data:`RECORD_WAIT_S`, before it
  gives up.
- The lock descriptor is close-on-exec, so programs the node runs do not
  inherit it. A child *forked without exec* would share it (and keep the
  home locked after the node dies): the node must not do that.
- flock is advisory and local: it does not protect a home on NFS shared by
  two machines (and may fail there with ``ENOLCK``, reported as a
  :class:`~p2pshare.errors.ConfigError`).

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
import json
import logging
import logging.handlers
import os
import signal
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import TextIOWrapper
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from p2pshare.errors import ConfigError, ControlError, UsageError

__all__ = [
    "LOCK_FILE_NAME",
    "LOGS_DIR_NAME",
    "LOG_BACKUP_COUNT",
    "LOG_FILE_NAME",
    "LOG_MAX_BYTES",
    "SYSTEMD_UNIT",
    "HomeLock",
    "NodeAlreadyRunning",
    "NodeStartFailed",
    "Owner",
    "lock_path",
    "log_file_handler",
    "logs_dir",
    "read_owner",
    "setup_daemon_logging",
    "spawn_background",
    "terminate",
    "wait_for_exit",
]

log = logging.getLogger(__name__)

LOCK_FILE_NAME = "node.lock"
LOGS_DIR_NAME = "logs"
LOG_FILE_NAME = "node.log"
LOG_MAX_BYTES = 5 << 20
LOG_BACKUP_COUNT = 3
LOG_TAIL_LINES = 20

# How long a reader waits for a holder to write its record, and how long
# acquire() waits out a probe; both windows are microseconds in practice.
RECORD_WAIT_S = 0.5
POLL_INTERVAL_S = 0.05
_LOCK_RETRY_S = 0.01
TERMINATE_GRACE_S = 5.0
KILL_WAIT_S = 5.0
ZOMBIE_REAP_WAIT_S = 3.0

_RECORD_MAX_BYTES = 64 << 10
_LOG_TAIL_MAX_BYTES = 64 << 10
_ENV_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ)


# -- errors ----------------------------------------------------------------------
class NodeAlreadyRunning(UsageError):
    """Another node holds this home's lock.

    Attributes:
        home: the home directory.
        owner: the running node's record, or ``None`` if it could not be read.
    """

    code = "node_running"

    def __init__(self, home: Path, owner: Owner | None) -> None:
        if owner is None:
            who = "pid unknown"
        else:
            who = f"pid {owner.pid}, since {owner.started_at.isoformat()}"
        super().__init__(
            f"{home}: a node is already running for this home ({who}); "
            "stop it with `p2pshare stop`"
        )
        self.home = home
        self.owner = owner


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


# -- the owner record --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Owner:
    """What the node holding a home's lock recorded about itself."""

    pid: int
    started_at: datetime
    control_socket: str | None = None

    def to_json(self) -> bytes:
        record = {
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "control_socket": self.control_socket,
        }
        return json.dumps(record).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Owner | None:
        """Parse a record; ``None`` for anything but a valid one.

        Trailing bytes are ignored: they are the tail of an older, longer
        record that the writer has not truncated yet.
        """
        try:
            raw, _end = json.JSONDecoder().raw_decode(data.decode())
            pid = raw["pid"]
            started_at = datetime.fromisoformat(raw["started_at"])
            sock = raw.get("control_socket")
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if type(pid) is not int or pid <= 0 or not isinstance(sock, str | None):
            return None
        return cls(pid=pid, started_at=started_at, control_socket=sock)


def lock_path(home: Path) -> Path:
    """The lock file of ``home``."""
    return Path(home) / LOCK_FILE_NAME


def _pread_record(fd: int) -> Owner | None:
    return Owner.from_json(os.pread(fd, _RECORD_MAX_BYTES, 0))


def _open_private(path: Path, flags: int) -> int:
    """Open (creating it 0600) a regular file we own; tighten a looser mode."""
    try:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open ({exc.strerror})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _probe(home: Path) -> tuple[bool, Owner | None]:
    """(is the lock held, the holder's record if readable); never locks long."""
    path = lock_path(home)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False, None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open ({exc.strerror})") from exc
    try:
        deadline = time.monotonic() + RECORD_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _pread_record(fd)
            except OSError as exc:
                raise ConfigError(f"{path}: cannot lock ({exc.strerror})") from exc
            else:
                if os.pread(fd, 1, 0):
                    log.debug("%s: stale owner record (the lock is free)", path)
                return False, None
            if owner is not None and _alive(owner.pid):
                return True, owner
            if time.monotonic() >= deadline:
                if owner is None:
                    log.warning("%s: the lock is held but names no owner", path)
                return True, owner
            time.sleep(_LOCK_RETRY_S)
    finally:
        os.close(fd)  # also drops the probe's shared lock


def read_owner(home: Path) -> Owner | None:
    """The record of the node running for ``home``, if one runs.

    Args:
        home: the home directory.

    Returns:
        The owner, only if its lock is actually held right now; ``None`` if
        no lock file exists, if the lock is free (the record, if any, is
        stale: a debug log says so), or if it is held but no readable record
        appeared within :data:`RECORD_WAIT_S`.

    Raises:
        ConfigError: the lock file exists but cannot be opened or probed.
    """
    _held, owner = _probe(Path(home))
    return owner


class HomeLock:
    """The exclusive lock that makes a process the one node of a home.

    Use as a context manager (``with HomeLock(home, control_socket=...)``)
    or call :meth:`acquire` and :meth:`release`.

    Args:
        home: the home directory (it must exist).
        control_socket: the control socket path to record for clients.
    """

    def __init__(self, home: Path | str, *, control_socket: str | None = None) -> None:
        self.home = Path(home)
        self.path = lock_path(self.home)
        self.control_socket = control_socket
        self.owner: Owner | None = None
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    @classmethod
    def check_free(cls, home: Path | str) -> None:
        """Fail if a node holds ``home``'s lock (without taking it).

        Raises:
            NodeAlreadyRunning: it is held, naming the holder if known.
            ConfigError: the lock file cannot be opened or probed.
        """
        held, owner = _probe(Path(home))
        if held:
            raise NodeAlreadyRunning(Path(home), owner)

    def acquire(self) -> Owner:
        """Take the lock and record this process as the owner (fsynced).

        A stale file left by a killed node is taken over silently.

        Returns:
            The record written.

        Raises:
            NodeAlreadyRunning: another node holds the lock.
            ConfigError: the lock file cannot be created, locked or written.
            RuntimeError: this object already holds the lock.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this HomeLock")
        fd = _open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            self._lock(fd)
            owner = Owner(
                pid=os.getpid(),
                started_at=datetime.now().astimezone().replace(microsecond=0),
                control_socket=self.control_socket,
            )
            data = owner.to_json()
            # In place, never truncated first: readers see whole records (see
            # the module docstring).
            if os.pwrite(fd, data, 0) != len(data):
                raise ConfigError(f"{self.path}: short write")
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"{self.path}: cannot write ({exc.strerror})") from exc
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.owner = owner
        log.info("home lock taken: %s (pid %d)", self.path, owner.pid)
        return owner

    def _lock(self, fd: int) -> None:
        deadline = time.monotonic() + RECORD_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _pread_record(fd)
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot lock ({exc.strerror})") from exc
            else:
                return
            # A live recorded holder is a node: refuse now. Otherwise this may
            # be a probe or a node that has not written its record yet.
            if (holder is not None and _alive(holder.pid)) or (
                time.monotonic() >= deadline
            ):
                raise NodeAlreadyRunning(self.home, holder)
            time.sleep(_LOCK_RETRY_S)

    def release(self) -> None:
        """Clear the record and drop the lock; a no-op if not held.

        The file stays: unlinking it could let two nodes lock two different
        inodes of the same name.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # while still locked: no reader sees it half-done
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        log.info("home lock released: %s", self.path)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


# -- processes ---------------------------------------------------------------------
def _check_pid(pid: int) -> None:
    # 0 and negative pids name process groups for kill() and waitpid().
    if type(pid) is not int or pid <= 0:
        raise ValueError(f"not a process id: {pid!r}")


def _is_zombie(pid: int) -> bool:
    # A dead process nobody has reaped yet still answers kill(pid, 0); in a
    # container whose init does not reap, it may stay that way for good.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 1 :].split()[:1] == [b"Z"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not _is_zombie(pid)


def _child_status(pid: int) -> tuple[bool, int | None]:
    """(has exited, exit code if known); reaps ``pid`` if it is our child."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child, or SIGCHLD is ignored
        return not _alive(pid), None
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
    return "zombie" if _is_zombie(pid) else "running"


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
    _check_pid(pid)
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
    _check_pid(pid)
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
    fd = _open_private(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
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


# -- logs --------------------------------------------------------------------------
def logs_dir(home: Path) -> Path:
    """``<home>/logs``, created 0700 (a looser mode is tightened).

    Raises:
        ConfigError: it cannot be created (for instance, no such home).
    """
    path = Path(home) / LOGS_DIR_NAME
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            path.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create ({exc.strerror})") from exc
    return path


class _IsoFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        when = datetime.fromtimestamp(record.created).astimezone()
        return when.isoformat(timespec="milliseconds")


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating handler whose files (the current one after every rollover
    too) are created 0600: logs name peers and shares."""

    def _open(self) -> TextIOWrapper:
        fd = _open_private(
            Path(self.baseFilename), os.O_WRONLY | os.O_APPEND | os.O_CREAT
        )
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def log_file_handler(home: Path) -> logging.FileHandler:
    """A handler writing to ``<home>/logs/node.log`` (rotating, 0600).

    Raises:
        ConfigError: the logs directory or file cannot be created.
    """
    path = logs_dir(home) / LOG_FILE_NAME
    handler = _PrivateRotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUP_COUNT, encoding="utf-8"
    )
    handler.setFormatter(_IsoFormatter(LOG_FORMAT))
    return handler


def setup_daemon_logging(home: Path, *, debug: bool = False) -> Path:
    """Send the root logger of a daemon to ``<home>/logs/node.log``.

    The file rotates at :data:`LOG_MAX_BYTES`, keeping
    :data:`LOG_BACKUP_COUNT` old files, all 0600; lines carry an ISO 8601
    time with the UTC offset. For ``cli.py`` only (library code never
    configures logging). Calling it again replaces the handler it added;
    other handlers of the root logger are left alone.

    Args:
        home: the node's home.
        debug: log DEBUG records too (default: INFO and up).

    Returns:
        The log file's path.

    Raises:
        ConfigError: the logs directory or file cannot be created.
    """
    handler = log_file_handler(home)
    path = Path(handler.baseFilename)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _PrivateRotatingFileHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    return path


# -- systemd -----------------------------------------------------------------------
SYSTEMD_UNIT = """\
# p2pshare node as a systemd user service.
#
# Install (as the user who shares, not root):
#   mkdir -p ~/.config/systemd/user
#   (save this text as ~/.config/systemd/user/p2pshare.service)
#   systemctl --user daemon-reload
#   systemctl --user enable --now p2pshare
# Keep it running while you are logged out:  loginctl enable-linger "$USER"
# Logs:  journalctl --user -u p2pshare
# Another home: add  Environment=P2PSHARE_HOME=/path/to/home  under [Service].
# A fixed port: append  --listen /ip4/0.0.0.0/tcp/4001  to ExecStart.

[Unit]
Description=p2pshare node (end-to-end encrypted peer-to-peer file sharing)

[Service]
Type=simple
ExecStart=%h/.local/bin/p2pshare node
Restart=on-failure
RestartSec=5
# Exit status 2 is a usage error, such as another node already holding the
# home: restarting would not help.
RestartPreventExitStatus=2
# SIGTERM is a clean shutdown for the node.
TimeoutStopSec=30
NoNewPrivileges=true

[Install]
WantedBy=default.target
"""
