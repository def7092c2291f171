"""Filling one file's partial download from every provider at once.

Theory of operation
-------------------
The sans-IO :class:`~p2pshare.protocol.scheduler.Scheduler` decides which
chunk to ask which provider for. A driver loop asks it for work whenever
something changed (a block arrived, a provider joined or died, a stall
deadline passed), sends the wants, and starts one small task per request
that waits for its answer. Answers go through a bounded channel to one
writer task which, in a worker thread, checks the chunk against its id
*before* decrypting and writing it into the partial file: nothing
unverified ever reaches the disk. A provider whose chunk fails the check is
banned (logged at WARNING) and its requests go to the others. Duplicates
(endgame) are cancelled as soon as one copy verified.

Every fill has an end. A provider is out of this download once it is
banned, gone, said it cannot serve the share (``missing`` with a code, such
as ``removed``), answered ``missing`` for every chunk still needed, or sent
no verified byte for ``stall_s`` while the download waited on it. When
nobody left can help, the swarm gets one more discovery round; the fill
ends with a typed error naming why each provider failed as soon as that
round brings nobody, and at the latest after ``give_up_s`` (before the
first verified chunk: ``--timeout``) or ``stall_s`` (after it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

import trio

from p2pshare import records
from p2pshare.config import STALL_TIMEOUT_S
from p2pshare.errors import (
    IntegrityError,
    NoProviders,
    P2PShareError,
    SourceChangedError,
    TransferError,
    TransferTimeout,
)
from p2pshare.format import Envelope, FileKeys, block_id, open_chunk, root_to_cid
from p2pshare.format.chunks import ID_BYTES, TAG_BYTES, seal_chunk
from p2pshare.format.erasure import ErasureMap, Stripes
from p2pshare.groups import single_error
from p2pshare.node.provider import (
    CANCELLED,
    Access,
    ProviderConn,
    ProviderGone,
    Unavailable,
    Waiter,
)
from p2pshare.node.recovery import Recovery, RecoverySink
from p2pshare.protocol.messages import Kind
from p2pshare.protocol.scheduler import Scheduler
from p2pshare.store.partial import PartialFile

if TYPE_CHECKING:
    from p2pshare.node.fetch import NetworkSource

__all__ = [
    "MAX_INFLIGHT",
    "STALL_S",
    "STALL_TIMEOUT_S",
    "DownloadStats",
    "Fill",
    "NetShare",
    "PlainSink",
    "Session",
    "Sink",
]

log = logging.getLogger(__name__)

MAX_INFLIGHT = 32  # chunks requested at once over all providers: bounds memory
WRITE_QUEUE = 8  # chunks waiting for the disk
STALL_S = 15.0  # one request unanswered this long is asked elsewhere
STALLED = "stalled"

Progress = Callable[[int], None]


@dataclass
class DownloadStats:
    chunks: int = 0
    bytes: int = 0
    bans: int = 0
    started_at: float | None = None
    first_chunk_at: float | None = None

    def to_wire(self) -> records.DownloadStats:
        first = (
            None
            if self.first_chunk_at is None or self.started_at is None
            else round(self.first_chunk_at - self.started_at, 4)
        )
        return records.DownloadStats(
            chunks=self.chunks, bytes=self.bytes, bans=self.bans, first_chunk_s=first
        )


@dataclass(eq=False)
class Session:
    pc: ProviderConn
    sid: int
    have: frozenset[int] | None
    column: int | None = None  # the erasure column a seed keeps (recovery.py)


@dataclass(eq=False)
class NetShare:
    """A share opened on one or more providers."""

    root: bytes
    envelope: Envelope
    envelope_bytes: bytes
    ids: bytes
    sessions: dict[str, Session]

    def close(self) -> None:
        pass

    def chunk_id(self, i: int) -> bytes:
        return self.ids[i * ID_BYTES : (i + 1) * ID_BYTES]


def have_set(have: bytes | None, count: int) -> frozenset[int] | None:
    if have is None:
        return None
    return frozenset(
        i for i in range(count) if i >> 3 < len(have) and have[i >> 3] >> (i & 7) & 1
    )


class Sink(Protocol):
    """Where verified chunks go: a partial plaintext file, or ciphertext
    blocks (a seed's replica)."""

    def missing(self) -> list[int]:
        """Chunks still wanted."""
        ...

    def has(self, i: int) -> bool: ...

    def verify_write(self, i: int, data: bytes) -> bool:
        """In a worker thread: check chunk ``i``'s ciphertext against its id
        and keep it; False (and nothing kept) when it fails."""
        ...

    def amount(self, i: int) -> int:
        """Progress units chunk ``i`` is worth."""
        ...

    def cipher(self, i: int) -> bytes:
        """The ciphertext of chunk ``i``, which this sink holds (erasure
        recovery decodes with it)."""
        ...


class PlainSink:
    """Decrypt verified chunks into a partial file (a download)."""

    def __init__(self, share: NetShare, keys: FileKeys, part: PartialFile) -> None:
        self.share = share
        self.keys = keys
        self.part = part

    def missing(self) -> list[int]:
        return self.part.missing()

    def has(self, i: int) -> bool:
        return self.part.has(i)

    def amount(self, i: int) -> int:
        return self.part.geometry.plain_len(i)

    def cipher(self, i: int) -> bytes:
        """Sealing is deterministic: the chunk's plaintext, read back and
        sealed again, is its ciphertext (checked against its id)."""
        env = self.share.envelope
        padded = env.cipher_len(i) - TAG_BYTES
        plain = self.part.read(i)
        data = seal_chunk(
            self.keys.chunk, i, env.count, plain + bytes(padded - len(plain))
        )
        if block_id(data) != self.share.chunk_id(i):
            raise IntegrityError(f"chunk {i}: the partial file changed under us")
        return data

    def verify_write(self, i: int, data: bytes) -> bool:
        """Nothing unverified ever reaches the partial file."""
        if block_id(data) != self.share.chunk_id(i):
            return False
        try:
            plain = open_chunk(self.keys.chunk, i, self.share.envelope.count, data)
        except IntegrityError:
            return False
        self.part.write(i, plain)
        return True


class Fill:
    """Download the missing chunks of one file from every provider.

    ``access`` opens the share on providers that join later (the access
    signing key, or a seed's grant); ``sink`` verifies and keeps chunks.
    """

    def __init__(
        self,
        source: NetworkSource,
        share: NetShare,
        access: Access,
        sink: Sink,
        progress: Progress,
    ) -> None:
        self.source = source
        self.share = share
        self.access = access
        self.sink = sink
        self.progress = progress
        self.sched = Scheduler(
            sink.missing(),
            share.envelope.chunk_size,
            max_inflight=MAX_INFLIGHT,
            stall_s=STALL_S,
        )
        self.reqs: dict[tuple[str, int], int] = {}
        self.wake = trio.Event()
        self.adopting: set[str] = set()
        self.adopted: set[ProviderConn] = set()  # tried: joined or refused
        self.unable: dict[str, str] = {}  # provider → why it cannot serve
        self.last_progress = trio.current_time()
        self._written: set[int] = set()
        # erasure recovery (recovery.py): set up once a column's map arrived
        self.recovery: Recovery | None = None
        self.columns: dict[str, int] = {}
        self._map_asked: set[str] = set()
        self._wanted = set(sink.missing())
        for name, sess in share.sessions.items():
            self.sched.add_peer(name, sess.have)
            if sess.column is not None:
                self.columns[name] = sess.column

    def _poke(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        if self.sched.done:
            return
        send, recv = trio.open_memory_channel[tuple[str, int, bytes]](WRITE_QUEUE)
        with single_error():
            async with trio.open_nursery() as outer:
                outer.start_soon(self._writer, recv)
                async with send, trio.open_nursery() as requests:
                    await self._drive(requests, send)
                    # duplicates and stalled requests are no longer needed
                    requests.cancel_scope.cancel()
                # the writer drains what is queued, then ends
        log.info(
            "chunks per provider: %s",
            " ".join(
                f"{name}={self.sched.peer(name).received}"
                for name in self.share.sessions
                if name in self.sched.live_peers or self.sched.has_peer(name)
            ),
        )
        if not self.sched.done:
            raise TransferError("download stopped before every chunk arrived")

    async def _drive(
        self,
        nursery: trio.Nursery,
        send: trio.MemorySendChannel[tuple[str, int, bytes]],
    ) -> None:
        idle_since: float | None = None
        idle_round = 0
        swarm = self.source.swarm
        while not self.sched.done:
            self.wake = trio.Event()
            now = trio.current_time()
            for name, i in self.sched.stalled(now):
                log.info("provider %s: chunk %d stalled, asking elsewhere", name, i)
                await self._cancel(name, i)
            if now - self.last_progress > self.source.stall_s:
                await self._drop_stalled()
            self._adopt_new(nursery)
            self._recover(nursery)
            for name in list(self.sched.live_peers):
                sess = self.share.sessions.get(name)
                if sess is None or sess.pc.dead:
                    self.sched.remove_peer(name)
                    self._changed()
                    continue
                for i in self.sched.assign(name, now):
                    kind: Kind = "chunk"
                    index = i
                    if self.recovery is not None and self.recovery.is_parity(i):
                        kind, index = "frag", self.recovery.split(i)[0]
                    try:
                        req, waiter = await sess.pc.want(sess.sid, kind, index)
                    except ProviderGone:
                        self.sched.remove_peer(name)
                        self._changed()
                        break
                    self.reqs[(name, i)] = req
                    nursery.start_soon(self._await_block, name, i, waiter, send)
            if self.sched.can_progress() or self.adopting or self._last_chance():
                idle_since = None
            elif idle_since is None:
                # nobody we know can help: one more discovery round, then end
                idle_since, idle_round = now, swarm.rounds
                swarm.search_now()
            else:
                bound = (
                    self.source.give_up_s
                    if self.source.stats.first_chunk_at is None
                    else self.source.stall_s
                )
                if swarm.exhausted(idle_round) or now - idle_since > bound:
                    raise self._nobody_can()
            deadline = self.sched.next_deadline()
            wake_at = now + 1.0 if deadline is None else min(deadline, now + 1.0)
            with trio.move_on_at(wake_at):
                await self._wait_wake()

    # -- erasure recovery (recovery.py) -------------------------------------------
    def _changed(self) -> None:
        """The providers changed: chunks may have lost their last holder."""
        if self.recovery is not None:
            self.recovery.dirty = True

    def _recover(self, nursery: trio.Nursery) -> None:
        if self.recovery is None:
            for name in self.columns:
                if name not in self._map_asked and name in self.sched.live_peers:
                    self._map_asked.add(name)
                    self.adopting.add(f"map:{name}")
                    nursery.start_soon(self._fetch_map, name)
                    break
        elif not self.adopting:
            self.recovery.plan(self.sched, self.columns)

    def _last_chance(self) -> bool:
        """Nobody can progress: before giving up, plan erasure recovery
        once more from scratch (True when that found work)."""
        if self.recovery is None or not self.columns:
            return False
        self.recovery.dirty = True
        self.recovery.plan(self.sched, self.columns)
        return self.sched.can_progress()

    async def _fetch_map(self, name: str) -> None:
        """The signed erasure map, from a seed keeping a column: verified
        against the envelope's access key before anything relies on it."""
        try:
            sess = self.share.sessions[name]
            try:
                data = await sess.pc.fetch(sess.sid, "emap", 0)
            except ProviderGone:
                return
            env = self.share.envelope
            try:
                if data is None:
                    raise IntegrityError("erasure map: not sent")
                emap = ErasureMap.open(data, env, self.share.root)
            except IntegrityError as exc:
                await self.source.swarm.ban(
                    sess.pc, f"sent a bad erasure map ({exc})", why="banned (bad map)"
                )
                self.sched.ban(name)
                return
            if self.recovery is not None:
                return
            self.recovery = Recovery(
                emap,
                Stripes.of(env, emap.k, emap.n),
                cast("RecoverySink", self.sink),
                self.share.chunk_id,
                self._wanted,
                self._written,
            )
            for other, col in self.columns.items():
                if col >= emap.k and col < emap.n:
                    self.sched.set_have(other, self.recovery.column_units(col))
            log.info(
                "erasure map %d/%d of %s verified",
                emap.k,
                emap.n,
                root_to_cid(self.share.root)[:16],
            )
        finally:
            self.adopting.discard(f"map:{name}")
            self._poke()

    async def _drop_stalled(self) -> None:
        """No verified byte from anyone for ``stall_s``: every provider
        the download waits on is out of it."""
        self._changed()
        for name in self.sched.useful_peers():
            sess = self.share.sessions.get(name)
            for i in self.sched.ban(name):
                await self._cancel(name, i)
            if sess is not None:
                self.source.swarm.unable[sess.pc.remote_peer] = STALLED
                self.source.swarm.mark(
                    sess.pc, f"stalled (no data for {self.source.stall_s:g} s)"
                )
            log.warning(
                "provider %s: no verified data for %g s, dropped",
                name,
                self.source.stall_s,
            )
        self.last_progress = trio.current_time()

    async def _wait_wake(self) -> None:
        swarm_changed = self.source.swarm.changed
        async with trio.open_nursery() as n:

            async def w(ev: trio.Event) -> None:
                await ev.wait()
                n.cancel_scope.cancel()

            n.start_soon(w, self.wake)
            n.start_soon(w, swarm_changed)

    def _adopt_new(self, nursery: trio.Nursery) -> None:
        """Open the share on every live provider not tried yet: a new one,
        or a new connection to one whose session died (its relay circuit
        was cut, it restarted) that discovery dialled again."""
        for pc in self.source.swarm.live():
            sess = self.share.sessions.get(pc.name)
            if pc in self.adopted or (sess is not None and not sess.pc.dead):
                continue
            self.adopting.add(pc.name)
            self.adopted.add(pc)
            nursery.start_soon(self._adopt, pc)

    async def _adopt(self, pc: ProviderConn) -> None:
        try:
            await self._adopt_one(pc)
        finally:
            self.adopting.discard(pc.name)
            self._poke()

    async def _adopt_one(self, pc: ProviderConn) -> None:
        try:
            opened = await pc.open(self.share.root, self.access, self.source.ticket)
        except (P2PShareError, trio.TooSlowError) as exc:
            self.source.swarm.mark(pc, f"refused ({getattr(exc, 'code', 'timeout')})")
            return
        if opened.envelope != self.share.envelope_bytes:
            await self.source.swarm.ban(
                pc, "sent a different envelope", why="banned (bad envelope)"
            )
            return
        sess = Session(
            pc,
            opened.sid,
            have_set(opened.have, self.share.envelope.count),
            opened.column,
        )
        self.share.sessions[pc.name] = sess
        have = sess.have
        if sess.column is not None:
            self.columns[pc.name] = sess.column
            if self.recovery is not None and sess.column >= self.recovery.geo.k:
                have = self.recovery.column_units(sess.column)
        self.sched.add_peer(pc.name, have)
        self._changed()
        log.info("provider %s joined the download", pc.name)
        self._poke()

    async def _cancel(self, name: str, i: int) -> None:
        req = self.reqs.pop((name, i), None)
        sess = self.share.sessions.get(name)
        if req is not None and sess is not None:
            with contextlib.suppress(ProviderGone):
                await sess.pc.cancel(req)

    async def _await_block(
        self,
        name: str,
        i: int,
        waiter: Waiter,
        send: trio.MemorySendChannel[tuple[str, int, bytes]],
    ) -> None:
        await waiter.event.wait()
        self.reqs.pop((name, i), None)
        if not isinstance(waiter.value, bytes):
            log.debug(
                "provider %s: unit %d: %s",
                name,
                i,
                waiter.error
                or ("cancelled" if waiter.value is CANCELLED else waiter.value),
            )
        if waiter.error is not None:
            self.sched.remove_peer(name)
            self._changed()
        elif waiter.value is CANCELLED:
            pass
        elif isinstance(waiter.value, Unavailable):
            self._unable(name, waiter.value.code)
            self._changed()
        elif waiter.value is None:
            self.sched.failed(name, i)
            self._changed()
        else:
            assert isinstance(waiter.value, bytes)
            await send.send((name, i, waiter.value))
        self._poke()

    def _unable(self, name: str, code: str) -> None:
        """``name`` cannot serve this share at all: stop asking it, and
        remember why for the error if nobody else can."""
        self.sched.ban(name)
        sess = self.share.sessions.get(name)
        if sess is not None:
            self.source.swarm.unable[sess.pc.remote_peer] = code
            self.source.swarm.mark(sess.pc, _UNABLE.get(code, f"cannot serve ({code})"))
        if name not in self.unable:
            log.warning(
                "provider %s cannot serve %s: %s",
                name,
                root_to_cid(self.share.root)[:16],
                code,
            )
        self.unable[name] = code

    def _nobody_can(self) -> P2PShareError:
        cid = root_to_cid(self.share.root)[:16]
        short = self.recovery.shortfall() if self.recovery is not None else None
        if short is not None:
            return NoProviders(
                f"share {cid}…: not enough fragments ({short[0]} of {short[1]}"
                " needed) to rebuild what no provider has; seeds keeping it are"
                " offline"
            )
        codes = set(self.unable.values())
        n = len(self.unable)
        if codes == {"source_changed"}:
            return SourceChangedError(
                f"share {cid}…: the shared file changed since its link was made"
                f" ({n} provider(s) said so); ask the sharer for a new link"
            )
        swarm = self.source.swarm
        why = swarm.failure_summary()
        if swarm.providers and all(
            swarm.unable.get(pc.remote_peer) == STALLED
            for pc in swarm.providers.values()
        ):
            return TransferTimeout(f"share {cid}…: {why}")
        return NoProviders(f"share {cid}…: {why}")

    async def _writer(
        self, recv: trio.MemoryReceiveChannel[tuple[str, int, bytes]]
    ) -> None:
        """Verify and write what arrived, in batches: one worker-thread hop
        for every chunk queued at that moment, not one per chunk."""
        limiter = trio.CapacityLimiter(1)
        async for first in recv:
            batch = [first]
            # nothing more queued, or the fetchers closed the channel after
            # this batch: either way the batch is complete
            with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                while len(batch) < WRITE_QUEUE:
                    batch.append(recv.receive_nowait())
            todo: list[tuple[str, int, bytes]] = []
            for name, i, data in batch:
                if self._has(i) or self.sched.done or i in self._written:
                    continue
                if any(j == i for _n, j, _d in todo):
                    continue  # a duplicate (endgame) in the same batch
                todo.append((name, i, data))
            if not todo:
                continue
            oks = await trio.to_thread.run_sync(
                self._verify_write_all, todo, limiter=limiter
            )
            for (name, i, data), ok in zip(todo, oks, strict=True):
                if ok:
                    await self._written_ok(name, i, len(data))
                elif self.recovery is not None and self.recovery.is_parity(i):
                    # checked against a map any key holder could have signed:
                    # the fragment is refused, its sender is not banned for it
                    log.warning("provider %s: parity unit %d fails the map", name, i)
                    self.sched.failed(name, i)
                    self._changed()
                else:
                    await self._bad_chunk(name, i)
            if self.recovery is not None:
                rebuilt, closed = self.recovery.take()
                for name, u in self.sched.drop_missing(closed):
                    await self._cancel(name, u)
                for i in rebuilt:
                    await self._written_ok("", i, self.share.envelope.cipher_len(i))

    def _has(self, i: int) -> bool:
        if self.recovery is not None:
            return self.recovery.has(i)
        return self.sink.has(i)

    def _verify_write_all(self, todo: list[tuple[str, int, bytes]]) -> list[bool]:
        """In a worker thread: verify and keep each chunk of a batch."""
        keep = (
            self.sink.verify_write
            if self.recovery is None
            else self.recovery.verify_write
        )
        return [keep(i, data) for _name, i, data in todo]

    async def _bad_chunk(self, name: str, i: int) -> None:
        self._changed()
        sess = self.share.sessions.get(name)
        for j in self.sched.ban(name):
            self.reqs.pop((name, j), None)
        self.source.stats.bans += 1
        if sess is not None:
            await self.source.swarm.ban(
                sess.pc,
                f"sent chunk {i} of {root_to_cid(self.share.root)[:16]}"
                " that fails verification",
                why="banned (bad chunk)",
            )
        self._poke()

    async def _written_ok(self, name: str, i: int, size: int) -> None:
        self._written.add(i)
        self.last_progress = trio.current_time()
        if self.source.stats.first_chunk_at is None:
            self.source.stats.first_chunk_at = trio.current_time()
            if self.source.announce is not None:
                self.source.announce(self.share.root)  # in the background
        if name:  # "" for a chunk rebuilt here (nothing crossed the wire)
            self.source.stats.bytes += size
        for other in self.sched.completed(name, i, size, trio.current_time()):
            await self._cancel(other, i)
        if i in self._wanted:  # not a parity fragment or a helper chunk
            self.source.stats.chunks += 1
            self.progress(self.sink.amount(i))
        self._poke()


# what a provider's ``missing`` code says, for the download's error line
_UNABLE = {
    "source_changed": "have a changed source file",
    "removed": "removed the share",
}
