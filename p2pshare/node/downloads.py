"""Downloads owned by a running node (started over the control API).

Theory of operation
-------------------
Each download is a task in the node's nursery running ``Node.get``; the
CLI or TUI that asked for it may go away and the download goes on. Its
record keeps what a user wants to see (state, bytes, rate, ETA, providers,
error, destination) and never the key. Progress callbacks may run in
worker threads, so they only bump counters; a ticker task in trio turns
counters into ``download.progress`` events twice a second.

States: ``active`` → ``done`` | ``failed`` | ``cancelled``, and ``active`` ↔
``paused``. Pausing cancels the task but keeps the partial data (the
bitmap makes a resume skip every verified chunk); cancelling also deletes
the partial data.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2pshare import records
from p2pshare.config import GET_TIMEOUT_S
from p2pshare.errors import NotFoundError, UsageError
from p2pshare.format import ShareLink, root_to_cid
from p2pshare.node.events import EventBus
from p2pshare.node.fill import STALL_TIMEOUT_S
from p2pshare.node.jobs import Supervisor
from p2pshare.store.partial import partial_name
from p2pshare.store.walk import DEFAULT_LIMITS, FolderLimits, parse_selection

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = ["Download", "DownloadManager"]

log = logging.getLogger(__name__)

TICK_S = 0.5
DEFAULT_TIMEOUT_S = GET_TIMEOUT_S


@dataclass(eq=False)
class Download:
    id: int
    link: ShareLink
    out_dir: Path
    paths: tuple[str, ...] = ()  # only these entries of a folder (empty: all)
    timeout_s: float = DEFAULT_TIMEOUT_S  # to find a first provider
    stall_s: float = STALL_TIMEOUT_S  # no verified byte from anyone: ends
    limits: FolderLimits = DEFAULT_LIMITS  # what a folder may expand to
    name: str | None = None  # the share's name, once its meta is open
    state: str = "active"
    done_bytes: int = 0
    total_bytes: int | None = None
    rate_bps: float = 0.0
    providers: int = 0
    error: str | None = None
    error_code: str | None = None
    path: str | None = None
    chunks_total: int = 0  # of the finished download
    chunks_resumed: int = 0  # verified before this run (a resume)
    stats: records.DownloadStats | None = None
    routes: dict[str, str] = field(default_factory=dict)  # provider: relayed, …
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    scope: trio.CancelScope | None = None
    stop_as: str = "paused"  # what cancelling ``scope`` means: paused|cancelled
    finished: trio.Event = field(default_factory=trio.Event)
    _last: tuple[float, int] = (0.0, 0)

    def event(self, kind: str) -> records.DownloadEvent:
        return records.DownloadEvent(kind=kind, **self.to_wire())

    def to_wire(self) -> records.DownloadRecord:
        eta = None
        if self.total_bytes and self.rate_bps > 0 and self.state == "active":
            eta = max(0.0, (self.total_bytes - self.done_bytes) / self.rate_bps)
        return records.DownloadRecord(
            id=self.id,
            root=root_to_cid(self.link.root_id),
            name=self.name,
            state=self.state,
            done=self.done_bytes,
            total=self.total_bytes,
            rate=round(self.rate_bps, 1),
            eta=None if eta is None else round(eta, 1),
            providers=self.providers,
            error=self.error,
            error_code=self.error_code,
            path=self.path,
            chunks_total=self.chunks_total,
            chunks_resumed=self.chunks_resumed,
            stats=self.stats,
            routes=self.routes,
            out_dir=str(self.out_dir),
            paths=list(self.paths),
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


class DownloadManager:
    def __init__(self, node: Node, jobs: Supervisor, bus: EventBus) -> None:
        self.node = node
        self.jobs = jobs
        self.bus = bus
        self._ids = itertools.count(1)
        self._all: dict[int, Download] = {}

    def list(self) -> list[Download]:
        return list(self._all.values())

    def get(self, download_id: int) -> Download:
        try:
            return self._all[download_id]
        except KeyError:
            raise NotFoundError(f"download {download_id}: no such download") from None

    def start(
        self,
        link: ShareLink,
        out_dir: Path,
        paths: Sequence[str] = (),
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        stall_s: float = STALL_TIMEOUT_S,
        limits: FolderLimits = DEFAULT_LIMITS,
    ) -> Download:
        if link.key is None:
            raise UsageError("link: it carries no key (the part after '#')")
        parse_selection(paths)  # a bad path fails here, not in the task
        for d in self._all.values():
            same = d.link.root_id == link.root_id and d.out_dir == out_dir
            if same and d.state in ("active", "paused"):
                raise UsageError(f"download {d.id} already fetches this share there")
        d = Download(
            id=next(self._ids),
            link=link,
            out_dir=out_dir,
            paths=tuple(paths),
            timeout_s=timeout_s,
            stall_s=stall_s,
            limits=limits,
        )
        self._all[d.id] = d
        self._spawn(d)
        return d

    def _spawn(self, d: Download) -> None:
        # _run records every failure itself; the supervisor is the backstop
        self.jobs.spawn("download", str(d.id), lambda: self._run(d))

    async def _run(self, d: Download) -> None:
        d.state, d.error, d.error_code = "active", None, None
        d.finished = trio.Event()
        self.bus.publish(d.event("download.started"))

        def progress(n: int) -> None:
            d.done_bytes += n

        def on_total(n: int) -> None:
            d.total_bytes = n

        def on_name(name: str) -> None:
            d.name = name

        with trio.CancelScope() as scope:
            d.scope = scope
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._tick, d)
                    result = await self.node.get(
                        d.link,
                        d.out_dir,
                        progress=progress,
                        on_total=on_total,
                        paths=d.paths,
                        on_name=on_name,
                        timeout_s=d.timeout_s,
                        stall_s=d.stall_s,
                        limits=d.limits,
                    )
                    nursery.cancel_scope.cancel()
                d.state, d.path = "done", str(result.path)
                d.done_bytes = d.total_bytes = result.size
                d.chunks_total = result.chunks_total
                d.chunks_resumed = result.chunks_resumed
                d.stats = self.node.last_download.to_wire()
                d.routes = dict(self.node.paths)
            except Exception as exc:  # a job root: any failure is this download's
                error = self.jobs.record("download", str(d.id), exc)
                d.state, d.error, d.error_code = "failed", str(error), error.code
        if scope.cancelled_caught and d.state == "active":
            d.state = d.stop_as  # paused, or cancelled (then cancel() cleans up)
        d.scope, d.stop_as = None, "paused"
        if d.state in ("done", "failed", "cancelled"):
            d.finished_at = time.time()
        d.finished.set()
        self.bus.publish(d.event(f"download.{d.state}"))

    async def _tick(self, d: Download) -> None:
        while True:
            await trio.sleep(TICK_S)
            now = trio.current_time()
            last_t, last_b = d._last
            if last_t:
                rate = (d.done_bytes - last_b) / max(1e-6, now - last_t)
                d.rate_bps = rate if d.rate_bps == 0 else 0.7 * d.rate_bps + 0.3 * rate
            d._last = (now, d.done_bytes)
            d.providers = self.node.active_providers(d.link.root_id)
            self.bus.publish(d.event("download.progress"))

    async def pause(self, download_id: int) -> Download:
        d = self.get(download_id)
        if d.state != "active" or d.scope is None:
            raise UsageError(f"download {d.id}: is {d.state}, not active")
        d.scope.cancel()
        await d.finished.wait()
        return d

    def resume(self, download_id: int) -> Download:
        d = self.get(download_id)
        if d.state not in ("paused", "failed"):
            raise UsageError(f"download {d.id}: is {d.state}, not paused")
        d.rate_bps, d._last = 0.0, (0.0, 0)
        d.done_bytes = 0  # recounted from the bitmap when the walk resumes
        self._spawn(d)
        return d

    async def cancel(self, download_id: int) -> Download:
        """Stop a download and delete its partial data."""
        d = self.get(download_id)
        if d.state in ("done", "cancelled"):
            raise UsageError(f"download {d.id}: is already {d.state}")
        if d.scope is not None:
            d.stop_as = "cancelled"
            d.scope.cancel()
            await d.finished.wait()  # _run published download.cancelled
        else:  # paused or failed: no task runs
            d.state, d.finished_at = "cancelled", time.time()
            self.bus.publish(d.event("download.cancelled"))
        await trio.to_thread.run_sync(self._discard, d)
        return d

    def _discard(self, d: Download) -> None:
        catalog = self.node.store.catalog
        top = d.out_dir / partial_name(d.link.root_id)
        for row in catalog.downloads():
            inside = row.dest.startswith(str(top) + "/")
            mine = row.root == d.link.root_id and Path(row.dest).parent == d.out_dir
            if mine or inside:
                with contextlib.suppress(OSError):
                    Path(row.partial).unlink()
                catalog.finish_download(row.id)
        if top.is_dir():
            shutil.rmtree(top, ignore_errors=True)
