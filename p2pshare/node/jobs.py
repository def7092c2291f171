"""Supervision: one failed job never stops the node.

Theory of operation
-------------------
A node runs many jobs for its callers and for itself: downloads, adds,
replications, pins fetched for owners, repairs, checks, announcements,
voucher calls, and one handler per inbound stream. Any of them can fail,
many because of what a remote peer sent. In trio an exception that leaves
a task propagates into its nursery and cancels every sibling, so a job
started with a bare ``node.nursery.start_soon`` that raises takes the whole
node down with it (every share it serves, every other download, its DHT
presence). Worse, an error raised inside a job's own nursery arrives as an
``ExceptionGroup``, which ``except P2PShareError`` does not catch.

So every job runs under :class:`Supervisor`, the one place that turns *any*
exception of a job into a typed failure of *that job*:

* :func:`failure_of` maps an exception (or an exception group) to the
  :class:`~p2pshare.errors.P2PShareError` a user should see: the typed
  error itself, the one real leaf of a group (``trio.Cancelled`` leaves are
  ignored), ``OSError`` as a :class:`~p2pshare.errors.StoreError` (disk
  full, permission denied: exit 6), ``trio.TooSlowError`` as a
  :class:`~p2pshare.errors.TransferTimeout`, and anything else as an
  :class:`~p2pshare.errors.InternalError` (a bug: code ``internal``).
* :meth:`Supervisor.spawn` starts a job in the node's nursery; when it
  fails, its ``on_failure`` callback gets the typed error (a download
  records it as its state), a ``job.failed`` event is published, and the
  log gets one line (the traceback only at DEBUG, or at ERROR for an
  internal error, which is a bug worth reporting).
* :meth:`Supervisor.run` runs a job in the caller's task (a control
  request) and raises only the typed error.
* :meth:`Supervisor.detach` runs a job in the node's nursery and waits for
  it: a caller that goes away (Ctrl-C on ``share --replicas``) stops
  waiting, the job goes on.

``trio.Cancelled``, ``KeyboardInterrupt`` and ``SystemExit`` are never
swallowed: cancellation is how a job is paused or the node stops, and a
signal is the user's. A job added later gets all of this by calling
``spawn``/``run``/``detach``; nothing else in ``node/`` may call
``start_soon`` on the node's nursery.

The node's long-running services (the announcer, reachability checks,
relay reservations, lease renewal, live-share publishing, the seed's
expiry, UPnP, LAN discovery, rate sampling) run under :meth:`Supervisor.keep`,
the way an Erlang supervisor keeps its workers: a service that fails after
it started is recorded like a job (``job.failed`` with job ``service``, one
log line, the traceback for a bug) and started again after a pause that
doubles from :data:`RESTART_FIRST_S` up to :data:`RESTART_MAX_S` (back to
the first after it ran :data:`RESTART_RESET_S` without failing). Most of
them talk to remote peers, so an answer nobody foresaw must cost that
service a restart, not the node. A service that fails *before* it is ready
is a start-up error and stops the node's start (a bad configuration should
say so, not loop).

What still stops the node is a failure of the node itself: what it cannot
run without (the libp2p host and its listen sockets, the control socket,
the store) raises out of :func:`~p2pshare.node.service.open_node`, and the
CLI logs it (with its traceback when it is a bug) and exits non-zero.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from p2pshare.errors import (
    AccessDenied,
    IntegrityError,
    InternalError,
    NodeLost,
    P2PShareError,
    ProtocolError,
    StoreError,
    TransferError,
    TransferTimeout,
)
from p2pshare.groups import leaves
from p2pshare.node.events import EventBus
from p2pshare.records import JobFailed

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["RESTART_FIRST_S", "RESTART_MAX_S", "Supervisor", "at_once", "failure_of"]

log = logging.getLogger(__name__)

T = TypeVar("T")

RESTART_FIRST_S = 1.0  # a failed service waits this long before it restarts,
RESTART_MAX_S = 300.0  # doubling up to this,
RESTART_RESET_S = 600.0  # and back to the first after a run this long

_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (file size limit)",
}


# errors whose messages name only shares, peers and counts; the others (a
# store or usage error) may name the user's own paths and files
_MESSAGES_LOGGED = (TransferError, ProtocolError, AccessDenied, IntegrityError)


def loggable(error: P2PShareError) -> str:
    """What the log may say of ``error``: its message when that cannot hold
    a local path or file name, else only its code (the user still sees the
    message where the job reports: `get`, `downloads`, the TUI)."""
    if isinstance(error, _MESSAGES_LOGGED):
        return str(error)
    return error.code


def _must_propagate(exc: BaseException) -> bool:
    """Cancellation and signals belong to the caller, never to a job."""
    real = [e for e in leaves(exc) if not isinstance(e, trio.Cancelled)]
    return not real or any(not isinstance(e, Exception) for e in real)


def failure_of(exc: BaseException) -> P2PShareError:
    """The typed error a user should see for ``exc`` (see the module doc).

    Args:
        exc: what a job raised; a group is reduced to its first typed leaf
            (else its first real leaf). Never ``trio.Cancelled`` alone.
    """
    real = [e for e in leaves(exc) if not isinstance(e, trio.Cancelled)]
    typed = [e for e in real if isinstance(e, P2PShareError)]
    leaf = typed[0] if typed else (real[0] if real else exc)
    if isinstance(leaf, P2PShareError):
        return leaf
    if isinstance(leaf, OSError):
        what = _DISK_ERRNOS.get(leaf.errno or 0, leaf.strerror or str(leaf))
        where = f"{leaf.filename}: " if leaf.filename else "local I/O: "
        error: P2PShareError = StoreError(f"{where}{what}")
    elif isinstance(leaf, trio.TooSlowError):
        error = TransferTimeout("a peer did not answer in time")
    else:
        error = InternalError(f"internal error: {type(leaf).__name__}: {leaf}")
    error.__cause__ = leaf
    return error


@dataclass
class Failure:
    """One of the last failures, for ``status`` (the ten most recent)."""

    kind: str
    what: str
    code: str
    message: str


@dataclass(eq=False)
class Supervisor:
    """Runs the jobs of one node (see the module docstring).

    Args:
        nursery: the node's nursery; jobs started with :meth:`spawn` live
            there and end when the node stops.
        bus: where ``job.failed`` events go.
    """

    nursery: trio.Nursery
    bus: EventBus
    failures: int = 0
    recent: list[Failure] = field(default_factory=list)

    def spawn(
        self,
        kind: str,
        what: str,
        fn: Callable[[], Awaitable[Any]],
        *,
        on_failure: Callable[[P2PShareError], None] | None = None,
    ) -> None:
        """Start ``fn()`` as a job in the node's nursery; never raises
        into it. ``what`` names the job in logs (short ids, never names,
        paths or keys)."""

        async def job() -> None:
            try:
                await fn()
            except BaseException as exc:
                if _must_propagate(exc):
                    raise
                error = self.record(kind, what, exc)
                if on_failure is not None:
                    on_failure(error)

        self.nursery.start_soon(job, name=f"{kind}: {what}")

    async def run(self, kind: str, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in this task; any failure comes out typed.

        Raises:
            P2PShareError: the job's failure, as :func:`failure_of` maps it.
        """
        try:
            return await fn()
        except BaseException as exc:
            if _must_propagate(exc):
                raise
            error = failure_of(exc)
            if isinstance(error, InternalError):  # the caller gets it; log bugs
                log.error("%s %s failed: %s", kind, what, error, exc_info=exc)
            raise error from exc

    async def detach(self, kind: str, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in the node's nursery and wait for it. Cancelling
        the wait (the client left) does not cancel the job: it finishes in
        the background, and a failure then is logged.

        Raises:
            P2PShareError: the job's failure; ``NodeLost`` when the node
                stopped before the job ended.
        """
        done = trio.Event()
        box: dict[str, Any] = {}

        def failed(error: P2PShareError) -> None:
            box["error"] = error

        async def work() -> None:
            try:
                box["value"] = await fn()
            finally:
                done.set()

        self.spawn(kind, what, work, on_failure=failed)
        await done.wait()
        if "error" in box:
            raise box["error"]
        if "value" not in box:
            raise NodeLost(f"{kind} {what}: the node stopped before it ended")
        value: T = box["value"]
        return value

    async def keep(
        self,
        name: str,
        serve: Callable[..., Awaitable[object]],
        *,
        task_status: TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the node service ``serve(task_status=...)`` for the node's
        life, restarting it when it fails (see the module docstring); start
        it with ``await nursery.start(jobs.keep, name, serve)``, which
        returns what ``serve`` passes to ``task_status.started``. A service
        that returns has ended on purpose (LAN discovery where mDNS cannot
        start) and is not started again.

        Raises:
            Exception: what ``serve`` raised before it was ready.
        """
        ready = _Ready(task_status)
        pause = RESTART_FIRST_S
        while True:
            began = trio.current_time()
            try:
                await serve(task_status=ready)
            except BaseException as exc:
                if _must_propagate(exc) or not ready.done:
                    raise
                self.record("service", name, exc)
            else:
                return
            if trio.current_time() - began >= RESTART_RESET_S:
                pause = RESTART_FIRST_S
            log.info("service %s restarts in %.0f s", name, pause)
            await trio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX_S)

    def record(self, kind: str, what: str, exc: BaseException) -> P2PShareError:
        """Count, log and publish one failure; returns it typed."""
        error = failure_of(exc)
        self.failures += 1
        self.recent = [*self.recent[-9:], Failure(kind, what, error.code, str(error))]
        if isinstance(error, InternalError):
            log.error("%s %s failed: %s", kind, what, error, exc_info=exc)
        else:
            log.warning("%s %s failed: %s", kind, what, loggable(error))
            if isinstance(error, _MESSAGES_LOGGED):  # else it names paths too
                log.debug("%s %s: traceback", kind, what, exc_info=exc)
        self.bus.publish(
            JobFailed(
                kind="job.failed",
                job=kind,
                what=what,
                code=error.code,
                error=str(error),
            )
        )
        return error


class _Ready:
    """A task status that passes the first ``started`` on and ignores the
    ones a restarted service sends again."""

    def __init__(self, inner: TaskStatus[Any]) -> None:
        self.inner = inner
        self.done = False

    def started(self, value: Any = None) -> None:
        if not self.done:
            self.done = True
            self.inner.started(value)


def at_once(loop: Callable[[], Awaitable[object]]) -> Callable[..., Awaitable[None]]:
    """``loop()`` as a service for :meth:`Supervisor.keep` that is ready as
    soon as it starts (a loop with no start-up of its own)."""

    async def serve(
        *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await loop()

    return serve
