"""Multi-source download: the node drives the store's walk of a share.

Theory of operation
-------------------
``store/walk.py`` plans a ``get`` (folders, safe paths, partial files,
resume) as a generator of steps; :func:`drive` runs it here in trio. The
walk's own local work runs in a worker thread between steps, and
:class:`NetworkSource` does each step it yields: from this home when the
share is held here, else from providers. Nothing in ``store/`` calls back
into the node.

* **Providers** (:class:`~p2pshare.node.swarm.Swarm`) come from the link's
  peer hints and from
  the DHT at the same time; the first to answer is used at once and later
  ones join the running download. A folder's providers serve every member,
  so members reuse the same connections.
* **Open**: the proof of key is sent to every provider; the first envelope
  that hashes to the root id is kept (any other answer is ignored), then
  the key is checked against it (``check_key``). The envelope and index
  blocks are stored and the share is registered as ``partial``, so this
  node serves what it has verified while it downloads.
* **Fill** (:class:`~p2pshare.node.fill.Fill`): the sans-IO scheduler
  spreads requests over the providers, and every chunk is verified against
  its id before it is decrypted and written; a provider that sends a bad
  chunk is banned.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import trio
from nacl.signing import SigningKey

from p2pshare.errors import (
    AccessDenied,
    IntegrityError,
    NoProviders,
    NotFoundError,
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
from p2pshare.groups import single_error
from p2pshare.node.fill import (
    STALL_TIMEOUT_S,
    DownloadStats,
    Fill,
    NetShare,
    PlainSink,
    Session,
    have_set,
)
from p2pshare.node.provider import Access, Opened, ProviderConn, ProviderGone
from p2pshare.node.swarm import Swarm, wait_first
from p2pshare.protocol.messages import Kind
from p2pshare.store import LocalStore
from p2pshare.store.catalog import ShareRow
from p2pshare.store.restore import LocalSource
from p2pshare.store.walk import (
    FillFile,
    Finished,
    Open,
    OpenedShare,
    ReadAll,
    Step,
    Walk,
    check_key,
    do_step,
)

__all__ = ["DownloadStats", "NetworkSource", "Swarm", "drive"]

log = logging.getLogger(__name__)

OPEN_GRACE_S = 2.0  # after the first provider answers, wait this long for others

Progress = Callable[[int], None]
Connector = Callable[[], Any]
T = TypeVar("T")


def _link_reason(exc: Exception) -> str:
    """ "link: expired" out of a provider's refusal, or ""."""
    text = str(exc)
    at = text.find("link: ")
    return text[at:] if at >= 0 else ""


class NetworkSource:
    """``ShareSource`` that fetches from peers (see the module docstring)."""

    def __init__(
        self,
        store: LocalStore,
        swarm: Swarm,
        *,
        announce: Callable[[bytes], Any] | None = None,
        give_up_s: float = 60.0,
        stall_s: float = STALL_TIMEOUT_S,
        ticket: bytes | None = None,
    ) -> None:
        self.store = store
        self.swarm = swarm
        self.ticket = ticket  # the link's, sent with every proof (ticket.py)
        # with every provider gone for a lasting reason (it said so), how
        # long to wait for another before the download fails with it
        self.give_up_s = give_up_s
        # no verified byte from any provider this long: they are out
        self.stall_s = stall_s
        self.local = LocalSource(store)
        self.announce = announce
        self.stats = DownloadStats()

    # -- the steps of a share walk (store/walk.py) ------------------------------
    async def step(self, step: Step) -> Any:
        """Do one step of a walk: from this home when it holds the share,
        else from the providers."""
        match step:
            case Open(root, key):
                local = await trio.to_thread.run_sync(self._open_local, root, key)
                return local if local is not None else await self._open(root, key)
            case ReadAll(opened, keys, meta) if isinstance(opened, NetShare):
                return await self._read_all(opened, keys, meta)
            case FillFile(opened, keys, part, progress) if isinstance(opened, NetShare):
                sink = PlainSink(opened, keys, part)
                return await Fill(self, opened, keys.signing_key, sink, progress).run()
            case Finished(opened, path, meta) if isinstance(opened, NetShare):
                # from now on serve it by reference from ``path``
                return await trio.to_thread.run_sync(
                    self.store.catalog.complete_share,
                    opened.root,
                    path,
                    meta.size,
                    meta.mtime_ns,
                )
        return await trio.to_thread.run_sync(do_step, self.local, step)

    def _open_local(
        self, root: bytes, key: bytes
    ) -> tuple[OpenedShare, FileKeys, Meta] | None:
        with _LocalFirst():
            row = self.store.catalog.get_share(root)
            if row.storage == "copy" or (row.storage == "ref" and _intact(row)):
                return self.local.open(root, key)
        return None

    # -- trio side ----------------------------------------------------------------
    async def _open(self, root: bytes, key: bytes) -> tuple[NetShare, FileKeys, Meta]:
        keys = FileKeys.from_key(key)
        share = await self.open_sessions(root, keys.signing_key)
        _keys, meta = check_key(share.envelope, key)
        await trio.to_thread.run_sync(
            self._register,
            root,
            key,
            share.envelope_bytes,
            share.envelope,
            share.ids,
            meta,
        )
        log.info(
            "share %s: opened on %d provider(s)",
            root_to_cid(root)[:16],
            len(share.sessions),
        )
        return share, keys, meta

    async def open_sessions(self, root: bytes, access: Access) -> NetShare:
        """Open ``root`` on every live provider (the first answer wins, the
        others get a short grace), verify the envelope against the root id
        and fetch the chunk ids.

        Raises:
            AccessDenied: every provider refused the key or grant.
            NoProviders: no provider could serve it.
        """
        cid = root_to_cid(root)
        sessions: dict[str, Session] = {}
        envelope: list[tuple[bytes, Envelope]] = []
        errors: list[Exception] = []
        tried: set[str] = set()
        # a round that opens nothing (a bad envelope, a refusal) is not the
        # end while the swarm may still find others: keep trying new
        # providers for as long as finding a first one may take
        deadline = trio.current_time() + self.give_up_s
        since = self.swarm.rounds
        while not sessions:
            if errors and all(isinstance(e, AccessDenied) for e in errors):
                break  # the key (or grant) is wrong: others refuse it too
            live = [pc for pc in self.swarm.live() if pc.name not in tried]
            if not live:
                if self.swarm.exhausted(since):
                    break  # discovery is over: nobody else will come
                self.swarm.search_now()
                with trio.move_on_at(deadline):
                    await self.swarm.changed.wait()
                if trio.current_time() >= deadline:
                    break
                continue
            tried.update(pc.name for pc in live)
            await self._open_round(root, access, live, sessions, envelope, errors)
            since = self.swarm.rounds
        if not sessions:
            if errors and all(isinstance(e, AccessDenied) for e in errors):
                what = "key" if isinstance(access, SigningKey) else "grant"
                link = sorted({_link_reason(e) for e in errors} - {""})
                if link:  # link control (format/ticket.py): say what the owner did
                    raise AccessDenied(
                        f"share {cid[:16]}…: {'; '.join(link)}"
                        f" ({len(errors)} provider(s) refused it)"
                    )
                raise AccessDenied(
                    f"share {cid[:16]}…: every provider refused the {what}"
                )
            raise NoProviders(
                f"share {cid[:16]}…: no provider could serve it"
                f" ({self.swarm.failure_summary()})"
            )
        env_bytes, env = envelope[0]
        ids = await self._index_ids(root, env, sessions)
        return NetShare(root, env, env_bytes, ids, sessions)

    async def _open_round(
        self,
        root: bytes,
        access: Access,
        live: list[ProviderConn],
        sessions: dict[str, Session],
        envelope: list[tuple[bytes, Envelope]],
        errors: list[Exception],
    ) -> None:
        """Open ``root`` on ``live`` at once: the first answer wins, the
        others get a short grace to join. The envelope is the first that
        verifies against the root id; a provider sending another is banned."""
        got_one = trio.Event()
        all_done = trio.Event()
        remaining = len(live)

        async def try_open(pc: ProviderConn) -> None:
            nonlocal remaining
            try:
                opened: Opened = await pc.open(root, access, self.ticket)
                if not envelope:
                    env = Envelope.verify_and_decode(root, opened.envelope)
                    envelope.append((opened.envelope, env))
                elif opened.envelope != envelope[0][0]:
                    raise IntegrityError("envelope: does not match the root id")
                sessions[pc.name] = Session(
                    pc,
                    opened.sid,
                    have_set(opened.have, envelope[0][1].count),
                    opened.column,
                )
                got_one.set()
            except IntegrityError as exc:
                await self.swarm.ban(
                    pc, f"sent a bad envelope ({exc})", why="banned (bad envelope)"
                )
                errors.append(exc)
            except (
                AccessDenied,
                NotFoundError,
                ProviderGone,
                trio.TooSlowError,
            ) as exc:
                self.swarm.mark(pc, _why(exc))
                errors.append(exc)
            finally:
                remaining -= 1
                if remaining == 0:
                    all_done.set()

        with single_error():
            async with trio.open_nursery() as nursery:
                for pc in live:
                    nursery.start_soon(try_open, pc)
                await wait_first(got_one, all_done)
                with trio.move_on_after(OPEN_GRACE_S):
                    await all_done.wait()
                nursery.cancel_scope.cancel()

    async def _index_ids(
        self, root: bytes, env: Envelope, sessions: dict[str, Session]
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
        sessions: dict[str, Session],
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
            await self.swarm.ban(
                sess.pc, f"sent a bad {kind} block {index}", why=f"banned (bad {kind})"
            )
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
        with self.store.writing():
            self._register_locked(root, key, env_bytes, env, ids, meta)

    def _register_locked(
        self,
        root: bytes,
        key: bytes,
        env_bytes: bytes,
        env: Envelope,
        ids: bytes,
        meta: Meta,
    ) -> None:
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
            with self.store.writing():
                with self.store.blocks.batch() as batch:
                    ids = [batch.add(c) for c in ciphers]
                row = self.store.catalog.get_share(share.root)
                self.store.catalog.put_share(row, ids, members)
                self.store.catalog.set_storage(share.root, "copy")

        await trio.to_thread.run_sync(keep)
        return listing


async def drive(walk: Walk[T], source: NetworkSource) -> T:
    """Drive a share walk (``store/walk.py``) in trio: the walk's own steps
    (local disk and catalog work) run in a worker thread, one hop per step,
    and ``source`` does the steps it yields. An error of a step is thrown
    into the walk so its clean-up runs as for a local error; on a
    cancellation the walk is closed (its ``finally`` clauses run, partial
    data stays for a resume)."""
    answer: Any = None
    error: Exception | None = None
    finished = False
    try:
        while True:
            try:
                finished, step = await trio.to_thread.run_sync(
                    _advance, walk, answer, error
                )
            except trio.Cancelled:
                raise  # before the hop ran: the walk waits at its step
            except BaseException:
                finished = True  # the walk raised: it is over
                raise
            if finished:
                return step  # type: ignore[no-any-return]
            try:
                answer, error = await source.step(step), None
            except Exception as exc:  # thrown into the walk
                answer, error = None, exc
    finally:
        if not finished:  # cancelled while a step ran
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(walk.close)


def _advance(walk: Walk[Any], answer: Any, error: Exception | None) -> tuple[bool, Any]:
    """Run the walk to its next step: ``(False, step)``, or ``(True,
    result)`` at its end (StopIteration cannot cross a thread hop)."""
    try:
        return False, walk.throw(error) if error is not None else walk.send(answer)
    except StopIteration as stop:
        return True, stop.value


def _why(exc: Exception) -> str:
    """A provider's failure to open a share, for ``Swarm.failure_summary``."""
    kinds: tuple[tuple[type[Exception], str], ...] = (
        (AccessDenied, "refused the key"),
        (NotFoundError, "do not serve it"),
        (ProviderGone, "gone"),
        (trio.TooSlowError, "too slow"),
    )
    return next((name for cls, name in kinds if isinstance(exc, cls)), "failed")


def _matches(chunk_id: bytes, data: bytes) -> bool:
    return block_id(data) == chunk_id


def _index_ok(env: Envelope, j: int, data: bytes) -> bool:
    try:
        env.check_index_block(j, data)
    except IntegrityError:
        return False
    return True


def _intact(row: ShareRow) -> bool:
    """A share by reference whose source is still as it was added (a file a
    ``get`` wrote and the user since deleted or edited is fetched again, not
    read from here). Folders (no source size) keep their listing in blocks."""
    if row.source is None or row.source_size is None:
        return True
    try:
        st = os.stat(row.source)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (row.source_size, row.source_mtime_ns)


class _LocalFirst:
    """Treat "not in the local store" as "fetch it"."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return isinstance(exc, NotFoundError)
