"""One node per home: the home lock and its owner record.

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

Starting a node in the background and stopping one is
``p2pshare/control/process.py``; its log files are ``p2pshare/logs.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import logging.handlers
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from p2pshare.config import open_private
from p2pshare.errors import ConfigError, UsageError

__all__ = [
    "LOCK_FILE_NAME",
    "SYSTEMD_UNIT",
    "HomeLock",
    "NodeAlreadyRunning",
    "Owner",
    "check_pid",
    "lock_path",
    "pid_alive",
    "pid_is_zombie",
    "read_owner",
]

log = logging.getLogger(__name__)

LOCK_FILE_NAME = "node.lock"

# How long a reader waits for a holder to write its record, and how long
# acquire() waits out a probe; both windows are microseconds in practice.
RECORD_WAIT_S = 0.5
_LOCK_RETRY_S = 0.01

_RECORD_MAX_BYTES = 64 << 10


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
            if owner is not None and pid_alive(owner.pid):
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
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
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
            if (holder is not None and pid_alive(holder.pid)) or (
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
def check_pid(pid: int) -> None:
    # 0 and negative pids name process groups for kill() and waitpid().
    if type(pid) is not int or pid <= 0:
        raise ValueError(f"not a process id: {pid!r}")


def pid_is_zombie(pid: int) -> bool:
    # A dead process nobody has reaped yet still answers kill(pid, 0); in a
    # container whose init does not reap, it may stay that way for good.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 1 :].split()[:1] == [b"Z"]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not pid_is_zombie(pid)


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
