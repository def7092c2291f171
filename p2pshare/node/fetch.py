"""Multi-source download: the network ``ShareSource`` for ``get``.

Theory of operation
-------------------
``get`` reuses the store's ``get_share`` walk (folders, safe paths, partial
files, resume) in a worker thread; this module supplies the chunks. Each
``ShareSource`` method hops back into trio with ``trio.from_thread.run``.

* **Providers** (:class:`Swarm`) come from the link's peer hints and from
  the DHT at the same time; the first to answer is used at once and later
  ones join the running download. A folder's providers serve every member,
  so members reuse the same connections.
* **Open**: the proof of key is sent to every provider; the first envelope
  that hashes to the root id is kept (any other answer is ignored), then
  the key is checked against it (``check_key``). The envelope and index
  blocks are stored and the share is registered as ``partial``, so this
  node serves what it has verified while it downloads.
* **Fill** (:func:`_Fill`): the sans-IO :class:`Scheduler` decides which
  chunk to ask which provider for (rarest first, adaptive depth, stall
  re-requests, endgame). Answers go to one writer task which, in a worker
  thread, checks each chunk against its id *before* anything is written,
  decrypts it and writes it into the partial file. A provider whose chunk
  fails the check is banned for the whole download and its requests go to
  others; the ban is logged. Memory: at most ``MAX_INFLIGHT`` chunks are
  requested at once and at most ``WRITE_QUEUE`` wait for the disk.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pshare.errors import (
    AccessDenied,
    IntegrityError,
    NoProviders,
    NotFoundError,
    P2PShareError,
    TransferError,
)
from p2pshare.format import (
    Envelope,
    FileKeys,
    Meta,
    block_id,
    decode_listing,
    open_chunk,
    root_to_cid,
)
from p2pshare.format.chunks import ID_BYTES
from p2pshare.format.folder import MAX_LISTING_BYTES
from p2pshare.node.groups import single_error
from p2pshare.node.provider import CANCELLED, Opened, ProviderConn, ProviderGone, Waiter
from p2pshare.protocol.messages import Kind
from p2pshare.protocol.scheduler import Scheduler
from p2pshare.store import LocalStore
from p2pshare.store.catalog import ShareRow
from p2pshare.store.partial import PartialFile
from p2pshare.store.restore import LocalSource, check_key

__all__ = ["NetworkSource", "Swarm"]

log = logging.getLogger(__name__)

MAX_INFLIGHT = 32
WRITE_QUEUE = 8
STALL_S = 15.0
OPEN_GRACE_S = 2.0  # after the first provider answers, wait this long for others
DHT_RETRY_S = 5.0

Progress = Callable[[int], None]
Connector = Callable[[], Any]


@dataclass(eq=False)
class Swarm:
    """The providers of one download (see the module docstring).

    ``dial`` is an async callable ``(peer) -> ProviderConn | None`` given by
    the node: it connects and opens a transfer stream; ``find`` is an async
    callable returning candidate peers from the DHT.
    """

    dial: Callable[[Any], Any]
    find: Callable[[], Any] | None = None
    hints: Sequence[Any] = ()
    providers: dict[str, ProviderConn] = field(default_factory=dict)
    banned: set[bytes] = field(default_factory=set)
    changed: trio.Event = field(default_factory=trio.Event)
    searching: int = 0

    async def run(self, nursery: trio.Nursery) -> None:
        """Start discovery in ``nursery`` (hints and DHT in parallel)."""
        for hint in self.hints:
            self.searching += 1
            nursery.start_soon(self._dial, hint, nursery)
        if self.find is not None:
            self.searching += 1
            nursery.start_soon(self._search, nursery)

    def _bump(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def _dial(self, peer: Any, nursery: trio.Nursery) -> None:
        try:
            pc = await self.dial(peer)
            if pc is not None and pc.remote_peer not in self.banned:
                if pc.name in self.providers and not self.providers[pc.name].dead:
                    await pc.aclose()
                else:
                    self.providers[pc.name] = pc
        except (OSError, P2PShareError, trio.TooSlowError) as exc:
            log.info("provider candidate unreachable: %s", type(exc).__name__)
        except Exception as exc:  # libp2p raises many types for a failed dial
            log.info("provider candidate unreachable: %s: %s", type(exc).__name__, exc)
        finally:
            self.searching -= 1
            self._bump()

    async def _search(self, nursery: trio.Nursery) -> None:
        assert self.find is not None
        seen: set[bytes] = set()
        try:
            while True:
                try:
                    found = await self.find()
                except Exception as exc:  # a DHT query failing is not fatal
                    log.info("DHT lookup failed: %s", type(exc).__name__)
                    found = []
                for peer, peer_bytes in found:
                    if peer_bytes in seen or peer_bytes in self.banned:
                        continue
                    seen.add(peer_bytes)
                    self.searching += 1
                    nursery.start_soon(self._dial, peer, nursery)
                if found:
                    self._bump()
                await trio.sleep(DHT_RETRY_S if not self.live() else 4 * DHT_RETRY_S)
        finally:
            self.searching -= 1
            self._bump()

    def live(self) -> list[ProviderConn]:
        return [
            p
            for p in self.providers.values()
            if not p.dead and p.remote_peer not in self.banned
        ]

    async def wait_for_provider(self) -> None:
        """Wait until some provider is connected (the caller sets a deadline)."""
        while not self.live():
            await self.changed.wait()

    async def ban(self, pc: ProviderConn, reason: str) -> None:
        self.banned.add(pc.remote_peer)
        log.warning("provider %s banned: %s", pc.name, reason)
        await pc.aclose()


@dataclass
class DownloadStats:
    chunks: int = 0
    bytes: int = 0
    bans: int = 0
    started_at: float | None = None
    first_chunk_at: float | None = None


@dataclass(eq=False)
class _Session:
    pc: ProviderConn
    sid: int
    have: frozenset[int] | None


@dataclass(eq=False)
class NetShare:
    """A share opened on one or more providers."""

    root: bytes
    envelope: Envelope
    envelope_bytes: bytes
    ids: bytes
    sessions: dict[str, _Session]

    def close(self) -> None:
        pass

    def chunk_id(self, i: int) -> bytes:
        return self.ids[i * ID_BYTES : (i + 1) * ID_BYTES]


def _have_set(have: bytes | None, count: int) -> frozenset[int] | None:
    if have is None:
        return None
    return frozenset(
        i for i in range(count) if i >> 3 < len(have) and have[i >> 3] >> (i & 7) & 1
    )


class NetworkSource:
    """``ShareSource`` that fetches from peers (see the module docstring)."""

    def __init__(
        self,
        store: LocalStore,
        swarm: Swarm,
        *,
        announce: Callable[[bytes], Any] | None = None,
    ) -> None:
        self.store = store
        self.swarm = swarm
        self.local = LocalSource(store)
        self.announce = announce
        self.stats = DownloadStats()

    # -- ShareSource (called from the get_share worker thread) ---------------------
    def open(self, root: bytes, key: bytes) -> tuple[Any, FileKeys, Meta]:
        with _LocalFirst():
            row = self.store.catalog.get_share(root)
            if row.storage in ("ref", "copy"):
                return self.local.open(root, key)
        return trio.from_thread.run(self._open, root, key)

    def fill(
        self, opened: Any, keys: FileKeys, part: PartialFile, progress: Progress
    ) -> None:
        if not isinstance(opened, NetShare):
            self.local.fill(opened, keys, part, progress)
            return
        trio.from_thread.run(self._fill, opened, keys, part, progress)

    def read_all(self, opened: Any, keys: FileKeys, meta: Meta) -> bytes:
        if not isinstance(opened, NetShare):
            return self.local.read_all(opened, keys, meta)
        return trio.from_thread.run(self._read_all, opened, keys, meta)

    def finished(self, opened: Any, path: str, meta: Meta) -> None:
        """A file finished: from now on serve it by reference from ``path``."""
        if isinstance(opened, NetShare):
            self.store.catalog.complete_share(
                opened.root, path, meta.size, meta.mtime_ns
            )

    # -- trio side ----------------------------------------------------------------
    async def _open(self, root: bytes, key: bytes) -> tuple[NetShare, FileKeys, Meta]:
        keys = FileKeys.from_key(key)
        cid = root_to_cid(root)
        await self.swarm.wait_for_provider()
        sessions: dict[str, _Session] = {}
        envelope: list[tuple[bytes, Envelope]] = []
        errors: list[Exception] = []
        got_one = trio.Event()

        live = self.swarm.live()
        remaining = len(live)
        all_done = trio.Event()

        async def try_open(pc: ProviderConn) -> None:
            nonlocal remaining
            try:
                opened: Opened = await pc.open(root, keys.signing_key)
                if not envelope:
                    env = Envelope.verify_and_decode(root, opened.envelope)
                    envelope.append((opened.envelope, env))
                elif opened.envelope != envelope[0][0]:
                    raise IntegrityError("envelope: does not match the root id")
                sessions[pc.name] = _Session(
                    pc, opened.sid, _have_set(opened.have, envelope[0][1].count)
                )
                got_one.set()
            except IntegrityError as exc:
                await self.swarm.ban(pc, f"sent a bad envelope ({exc})")
                errors.append(exc)
            except (
                AccessDenied,
                NotFoundError,
                ProviderGone,
                trio.TooSlowError,
            ) as exc:
                errors.append(exc)
            finally:
                remaining -= 1
                if remaining == 0:
                    all_done.set()

        with single_error():
            async with trio.open_nursery() as nursery:
                for pc in live:
                    nursery.start_soon(try_open, pc)
                # the first answer wins; stragglers get a short grace to join
                await _first(got_one, all_done)
                with trio.move_on_after(OPEN_GRACE_S):
                    await all_done.wait()
                nursery.cancel_scope.cancel()
        if not sessions:
            if errors and all(isinstance(e, AccessDenied) for e in errors):
                raise AccessDenied("link: the key does not open this share (wrong key)")
            raise NoProviders(f"share {cid[:16]}…: no provider could serve it")
        env_bytes, env = envelope[0]
        _keys, meta = check_key(env, key)
        ids = await self._index_ids(root, env, sessions)
        await trio.to_thread.run_sync(
            self._register, root, key, env_bytes, env, ids, meta
        )
        log.info("share %s: opened on %d provider(s)", cid[:16], len(sessions))
        return NetShare(root, env, env_bytes, ids, sessions), keys, meta

    async def _index_ids(
        self, root: bytes, env: Envelope, sessions: dict[str, _Session]
    ) -> bytes:
        if env.chunk_ids is not None:
            return env.chunk_ids
        blocks = []
        for j in range(env.index_block_count):
            blocks.append(  # noqa: PERF401 - sequential awaits, not a transform
                await self._fetch_verified(
                    sessions, "index", j, functools.partial(_index_ok, env, j)
                )
            )
        return b"".join(blocks)

    async def _fetch_verified(
        self,
        sessions: dict[str, _Session],
        kind: Kind,
        index: int,
        ok: Callable[[bytes], bool],
    ) -> bytes:
        for name, sess in list(sessions.items()):
            if sess.pc.dead:
                continue
            try:
                data = await sess.pc.fetch(sess.sid, kind, index)
            except ProviderGone:
                continue
            if data is None:
                continue
            if ok(data):
                return data
            await self.swarm.ban(sess.pc, f"sent a bad {kind} block {index}")
            sessions.pop(name, None)
        raise NoProviders(f"{kind} {index}: no provider could serve it")

    def _register(
        self,
        root: bytes,
        key: bytes,
        env_bytes: bytes,
        env: Envelope,
        ids: bytes,
        meta: Meta,
    ) -> None:
        """Store the envelope (and index blocks) and serve the share partially."""
        blocks = [self.store.blocks.put(env_bytes)]
        if env.index_ids is not None:
            step = 8192 * ID_BYTES
            blocks += [
                self.store.blocks.put(ids[o : o + step])
                for o in range(0, len(ids), step)
            ]
        self.store.catalog.put_share(
            ShareRow(
                root=root,
                key=key,
                storage="partial",
                mode="ref",
                top=False,
                source=None,
                source_size=None,
                source_mtime_ns=None,
                tree_size=meta.size,
                added_at=time.time_ns(),
            ),
            blocks,
        )

    async def _read_all(self, share: NetShare, keys: FileKeys, meta: Meta) -> bytes:
        if meta.size > MAX_LISTING_BYTES:
            raise IntegrityError("folder listing: too large")
        env = share.envelope
        out = bytearray()
        ciphers = []
        for i in range(env.count):
            cid = share.chunk_id(i)
            cipher = await self._fetch_verified(
                share.sessions, "chunk", i, functools.partial(_matches, cid)
            )
            ciphers.append(cipher)
            out += open_chunk(keys.chunk, i, env.count, cipher)
        listing = bytes(out[: meta.size])
        members = [e.root for e in decode_listing(listing)]

        def keep() -> None:
            # The listing is tiny: keep its chunks, serve it like a copy.
            with self.store.blocks.batch() as batch:
                ids = [batch.add(c) for c in ciphers]
            row = self.store.catalog.get_share(share.root)
            self.store.catalog.put_share(row, ids, members)
            self.store.catalog.set_storage(share.root, "copy")

        await trio.to_thread.run_sync(keep)
        return listing

    async def _fill(
        self, share: NetShare, keys: FileKeys, part: PartialFile, progress: Progress
    ) -> None:
        fill = _Fill(self, share, keys, part, progress)
        await fill.run()


def _matches(chunk_id: bytes, data: bytes) -> bool:
    return block_id(data) == chunk_id


def _index_ok(env: Envelope, j: int, data: bytes) -> bool:
    try:
        env.check_index_block(j, data)
    except IntegrityError:
        return False
    return True


async def _first(*events: trio.Event) -> None:
    """Wait until any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)


class _LocalFirst:
    """Treat "not in the local store" as "fetch it"."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return isinstance(exc, NotFoundError)


class _Fill:
    """Download the missing chunks of one file from every provider."""

    def __init__(
        self,
        source: NetworkSource,
        share: NetShare,
        keys: FileKeys,
        part: PartialFile,
        progress: Progress,
    ) -> None:
        self.source = source
        self.share = share
        self.keys = keys
        self.part = part
        self.progress = progress
        self.sched = Scheduler(
            part.missing(),
            share.envelope.chunk_size,
            max_inflight=MAX_INFLIGHT,
            stall_s=STALL_S,
        )
        self.reqs: dict[tuple[str, int], int] = {}
        self.wake = trio.Event()
        self.adopting: set[str] = set()
        self._written: set[int] = set()
        for name, sess in share.sessions.items():
            self.sched.add_peer(name, sess.have)

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
        while not self.sched.done:
            self.wake = trio.Event()
            now = trio.current_time()
            for name, i in self.sched.stalled(now):
                log.info("provider %s: chunk %d stalled, asking elsewhere", name, i)
                await self._cancel(name, i)
            self._adopt_new(nursery)
            for name in list(self.sched.live_peers):
                sess = self.share.sessions.get(name)
                if sess is None or sess.pc.dead:
                    self.sched.remove_peer(name)
                    continue
                for i in self.sched.assign(name, now):
                    try:
                        req, waiter = await sess.pc.want(sess.sid, "chunk", i)
                    except ProviderGone:
                        self.sched.remove_peer(name)
                        break
                    self.reqs[(name, i)] = req
                    nursery.start_soon(self._await_block, name, i, waiter, send)
            if not self.sched.live_peers and self.sched.total_inflight() == 0:
                idle_since = idle_since or now
                if not self.source.swarm.searching and now - idle_since > 1:
                    raise NoProviders("every provider was lost or banned")
            else:
                idle_since = None
            deadline = self.sched.next_deadline()
            with trio.move_on_at(deadline if deadline is not None else now + 1.0):
                await self._wait_wake()

    async def _wait_wake(self) -> None:
        swarm_changed = self.source.swarm.changed
        async with trio.open_nursery() as n:

            async def w(ev: trio.Event) -> None:
                await ev.wait()
                n.cancel_scope.cancel()

            n.start_soon(w, self.wake)
            n.start_soon(w, swarm_changed)

    def _adopt_new(self, nursery: trio.Nursery) -> None:
        for pc in self.source.swarm.live():
            if pc.name not in self.share.sessions and pc.name not in self.adopting:
                self.adopting.add(pc.name)
                nursery.start_soon(self._adopt, pc)

    async def _adopt(self, pc: ProviderConn) -> None:
        try:
            opened = await pc.open(self.share.root, self.keys.signing_key)
        except (P2PShareError, trio.TooSlowError):
            return
        if opened.envelope != self.share.envelope_bytes:
            await self.source.swarm.ban(pc, "sent a different envelope")
            return
        self.share.sessions[pc.name] = _Session(
            pc, opened.sid, _have_set(opened.have, self.share.envelope.count)
        )
        self.sched.add_peer(pc.name, self.share.sessions[pc.name].have)
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
        if waiter.error is not None:
            self.sched.remove_peer(name)
        elif waiter.value is CANCELLED:
            pass
        elif waiter.value is None:
            self.sched.failed(name, i)
        else:
            assert isinstance(waiter.value, bytes)
            await send.send((name, i, waiter.value))
        self._poke()

    async def _writer(
        self, recv: trio.MemoryReceiveChannel[tuple[str, int, bytes]]
    ) -> None:
        limiter = trio.CapacityLimiter(1)
        geo = self.part.geometry
        async for name, i, data in recv:
            if self.part.has(i) or self.sched.done or i in self._written:
                continue
            ok = await trio.to_thread.run_sync(
                self._verify_write, i, data, limiter=limiter
            )
            if not ok:
                sess = self.share.sessions.get(name)
                for j in self.sched.ban(name):
                    self.reqs.pop((name, j), None)
                self.source.stats.bans += 1
                if sess is not None:
                    await self.source.swarm.ban(
                        sess.pc,
                        f"sent chunk {i} of {root_to_cid(self.share.root)[:16]}"
                        " that fails verification",
                    )
                self._poke()
                continue
            self._written.add(i)
            if self.source.stats.first_chunk_at is None:
                self.source.stats.first_chunk_at = trio.current_time()
                if self.source.announce is not None:
                    await self.source.announce(self.share.root)
            self.source.stats.chunks += 1
            self.source.stats.bytes += len(data)
            for other in self.sched.completed(name, i, len(data), trio.current_time()):
                await self._cancel(other, i)
            self.progress(geo.plain_len(i))
            self._poke()

    def _verify_write(self, i: int, data: bytes) -> bool:
        """In a worker thread: check the chunk against its id, then decrypt and
        write it. Nothing unverified ever reaches the partial file."""
        if block_id(data) != self.share.chunk_id(i):
            return False
        try:
            plain = open_chunk(self.keys.chunk, i, self.share.envelope.count, data)
        except IntegrityError:
            return False
        self.part.write(i, plain)
        return True
