"""Serving ``/p2pshare/xfer/1``: the trio driver around ``ServerConnection``.

Theory of operation
-------------------
One handler per inbound stream. It sends ``Hello`` with a fresh random
challenge, then two tasks share the stream:

* the **receiver** reads bytes, feeds the state machine and acts on its
  events. ``OpenRequested`` is answered inline: the share is looked up in
  the local store, the proof is checked against the envelope's access key
  (bound to this connection's two peer ids and this stream's challenge),
  and only then is the envelope sent. A refused open sends no byte of the
  share. ``BlockWanted`` goes into a bounded channel;
* the **sender** takes wanted blocks in order, reads them from the store in
  a worker thread (verified: copy blocks, re-encrypted reference sources,
  or verified chunks of a partial download), waits for the upload rate
  limiter, and writes them.

A ``trio.Lock`` serialises state-machine calls and writes. Limits: at most
``MAX_STREAMS_PER_PEER`` concurrent streams per peer, the machine's own
limits on open shares and outstanding wants (so bytes in flight per stream
are bounded by what was asked), ``MAX_BAD_PROOFS`` failed proofs before the
stream is closed, and a read deadline (``IDLE_TIMEOUT_S``) so an idle peer
cannot hold a slot forever. A protocol error closes the stream with a
``Bye`` naming the reason; it never reaches the host (and ``compat.
safe_handler`` catches anything else).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import trio

from p2pshare.errors import (
    AccessDenied,
    BlockMissing,
    FormatError,
    IntegrityError,
    NotFoundError,
    P2PShareError,
    RemoteProtocolError,
    SourceChangedError,
)
from p2pshare.format import root_to_cid
from p2pshare.format.ticket import Policy, check_access
from p2pshare.node.ratelimit import RateLimiter
from p2pshare.node.streams import LibP2PStream
from p2pshare.protocol import (
    BlockWanted,
    Cancelled,
    Closed,
    OpenRequested,
    ServerConnection,
)
from p2pshare.store import LocalStore, OpenShare, open_share

__all__ = ["IDLE_TIMEOUT_S", "MAX_STREAMS_PER_PEER", "ServeStats", "ShareServer"]

log = logging.getLogger(__name__)

MAX_STREAMS_PER_PEER = 4
MAX_BAD_PROOFS = 3
MAX_CANCELLED = 4096  # bounds the memory a cancel-spamming peer can cost
IDLE_TIMEOUT_S = 120.0
READ_BYTES = 64 * 1024  # LIBP2P-NOTES §2.2: 64 KiB reads are fastest


@dataclass
class ServeStats:
    bytes_sent: int = 0
    blocks_sent: int = 0
    refused: int = 0
    protocol_errors: int = 0
    per_peer_streams: Counter[bytes] = field(default_factory=Counter)
    per_peer_sent: Counter[bytes] = field(default_factory=Counter)  # block bytes


class ShareServer:
    """Serves the shares of one home to peers that prove they hold the key."""

    def __init__(
        self,
        store: LocalStore,
        *,
        local_peer: bytes,
        limiter: trio.CapacityLimiter | None = None,
        upload: RateLimiter | None = None,
    ) -> None:
        self.store = store
        self.local_peer = local_peer
        self.limiter = limiter or trio.CapacityLimiter(4)
        self.upload = upload or RateLimiter(None)
        self.stats = ServeStats()
        self.sessions: set[_Session] = set()

    async def forget_removed(self) -> None:
        """Stop serving shares removed from the store: every later want on
        a session that opened one is answered ``missing`` with the code
        ``removed``, so a downloader knows at once not to wait for it."""
        open_ = [
            (s, sid, share) for s in self.sessions for sid, share in s.shares.items()
        ]
        if not open_:
            return

        def removed() -> set[bytes]:
            roots = {share.root for _s, _sid, share in open_}
            return {r for r in roots if not self.store.catalog.has_share(r)}

        gone = await trio.to_thread.run_sync(removed, limiter=self.limiter)
        for session, sid, share in open_:
            if share.root in gone:
                session.removed.add(sid)

    async def handle(self, stream: LibP2PStream) -> None:
        """Serve one inbound stream until it ends. Never raises ``P2PShareError``."""
        peer = stream.remote_peer_bytes
        short = _short(peer)
        if self.stats.per_peer_streams[peer] >= MAX_STREAMS_PER_PEER:
            log.warning("peer %s: too many xfer streams, refusing another", short)
            await stream.aclose()
            return
        self.stats.per_peer_streams[peer] += 1
        session = _Session(self, stream, peer)
        self.sessions.add(session)
        try:
            await session.run()
        except RemoteProtocolError as exc:
            self.stats.protocol_errors += 1
            log.warning("peer %s: protocol error: %s", short, exc.reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("peer %s: stream closed", short)
        finally:
            self.sessions.discard(session)
            self.stats.per_peer_streams[peer] -= 1
            if self.stats.per_peer_streams[peer] <= 0:
                del self.stats.per_peer_streams[peer]
            await stream.aclose()


class _Session:
    def __init__(self, server: ShareServer, stream: LibP2PStream, peer: bytes) -> None:
        self.server = server
        self.stream = stream
        self.peer = peer
        self.short = _short(peer)
        self.conn = ServerConnection(
            local_peer=server.local_peer,
            remote_peer=peer,
            challenge=secrets.token_bytes(32),
        )
        self.lock = trio.Lock()
        self.shares: dict[int, OpenShare] = {}
        self.cancelled: set[int] = set()
        self.unable: set[int] = set()  # sids whose share we cannot serve
        self.removed: set[int] = set()  # sids whose share was removed here
        self.bad_proofs = 0
        send, recv = trio.open_memory_channel[BlockWanted](self.conn.max_outstanding)
        self.wants_in = send
        self.wants_out = recv

    async def run(self) -> None:
        error: RemoteProtocolError | None = None
        try:
            async with self.lock:
                await self.stream.send_all(self.conn.start())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sender, nursery.cancel_scope)
                try:
                    await self._receiver()
                except RemoteProtocolError as exc:
                    error = exc
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    log.debug("peer %s: stream lost", self.short)  # it went away
                nursery.cancel_scope.cancel()
        finally:
            for share in self.shares.values():
                share.close()
        if error is not None:
            await self._goodbye(error.reason)
            raise error

    async def _goodbye(self, reason: str) -> None:
        with (
            trio.move_on_after(2),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            async with self.lock:
                await self.stream.send_all(self.conn.goodbye(reason))

    async def _receiver(self) -> None:
        while True:
            with trio.fail_after(IDLE_TIMEOUT_S):
                data = await self.stream.receive_some(READ_BYTES)
            self.conn.receive_data(data)
            for event in self.conn.events():
                if isinstance(event, OpenRequested):
                    await self._open(event)
                elif isinstance(event, BlockWanted):
                    self.wants_in.send_nowait(event)
                elif isinstance(event, Cancelled):
                    self.cancelled.add(event.req)
                    if len(self.cancelled) > MAX_CANCELLED:
                        raise RemoteProtocolError("too many cancelled requests")
                elif isinstance(event, Closed):
                    return
            if not data:
                return

    async def _open(self, event: OpenRequested) -> None:
        cid = root_to_cid(event.root)
        try:
            share = await trio.to_thread.run_sync(
                open_share, self.server.store, event.root, limiter=self.server.limiter
            )
        except (NotFoundError, P2PShareError) as exc:
            log.info(
                "peer %s: open %s refused: %s", self.short, cid[:16], type(exc).__name__
            )
            self.server.stats.refused += 1
            async with self.lock:
                await self.stream.send_all(
                    self.conn.refuse(
                        event.sid, "not_found", "this node does not serve it"
                    )
                )
            return
        try:
            if event.grant is not None:
                self.conn.verify_grant(
                    share.envelope.access_public, event.grant, event.root, time.time()
                )
            else:
                self.conn.verify(share.envelope.access_public, event.proof, event.root)
            _check_policy(share, event, self.peer)
        except AccessDenied as exc:
            share.close()
            self.bad_proofs += 1
            self.server.stats.refused += 1
            what = "grant" if event.grant is not None else "proof"
            log.warning("peer %s: bad %s for %s: %s", self.short, what, cid[:16], exc)
            reason = (
                str(exc)
                if event.grant is not None or str(exc).startswith("link:")
                else "proof of key failed"
            )
            async with self.lock:
                await self.stream.send_all(
                    self.conn.refuse(event.sid, "access_denied", reason)
                )
            if self.bad_proofs >= MAX_BAD_PROOFS:
                raise RemoteProtocolError("too many failed proofs") from None
            return
        have = await trio.to_thread.run_sync(share.have, limiter=self.server.limiter)
        self.shares[event.sid] = share
        log.debug("peer %s: opened %s", self.short, cid[:16])
        async with self.lock:
            await self.stream.send_all(
                self.conn.accept(event.sid, share.envelope_bytes, have, share.column)
            )

    async def _sender(self, scope: trio.CancelScope) -> None:
        try:
            await self._send_wanted()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            scope.cancel()  # the stream is gone: stop the receiver too

    async def _send_wanted(self) -> None:
        async for want in self.wants_out:
            if want.req in self.cancelled:
                self.cancelled.discard(want.req)
                continue
            share = self.shares[want.sid]
            if want.sid in self.removed:
                async with self.lock:
                    if want.req not in self.cancelled:
                        await self.stream.send_all(
                            self.conn.send_missing(want.req, "removed")
                        )
                continue
            try:
                data = await trio.to_thread.run_sync(
                    _read, share, want.kind, want.index, limiter=self.server.limiter
                )
            except (BlockMissing, IntegrityError, IndexError, P2PShareError) as exc:
                # a changed source cannot serve any chunk: say so, once
                code = "source_changed" if isinstance(exc, SourceChangedError) else None
                if isinstance(exc, IntegrityError) and want.sid not in self.unable:
                    log.warning(
                        "cannot serve chunk %d of %s: %s",
                        want.index,
                        root_to_cid(share.root)[:16],
                        exc,
                    )
                    if code is not None:
                        self.unable.add(want.sid)
                async with self.lock:
                    if want.req not in self.cancelled:
                        await self.stream.send_all(
                            self.conn.send_missing(want.req, code)
                        )
                continue
            await self.server.upload.take(len(data))
            async with self.lock:
                if want.req in self.cancelled:
                    self.cancelled.discard(want.req)
                    continue
                await self.stream.send_all(self.conn.send_block(want.req, data))
            self.server.stats.bytes_sent += len(data)
            self.server.stats.per_peer_sent[self.peer] += len(data)
            self.server.stats.blocks_sent += 1


def _check_policy(share: OpenShare, event: OpenRequested, peer: bytes) -> None:
    """Link control (format/ticket.py): a share with a policy is served on
    a proof only with a valid ticket, and on a grant only to its seeds.

    Raises:
        AccessDenied: the reason the getter is told ("link: expired", …).
    """
    if share.policy is None:
        return
    try:
        policy = Policy.from_bytes(share.policy)
    except FormatError:  # our own record, unreadable: serve nobody
        raise AccessDenied("link: this share's policy is unreadable here") from None
    check_access(
        policy,
        root=share.root,
        ticket=event.ticket,
        grant_peer=peer if event.grant is not None else None,
        now=time.time(),
    )


def _read(share: OpenShare, kind: str, index: int) -> bytes:
    if kind == "index":
        return share.index_block(index)
    if kind == "frag":
        return share.fragment(index)
    if kind == "emap":
        return share.emap_bytes()
    return share.cipher(index, share.chunk_id(index))


def _short(peer: bytes) -> str:
    return peer.hex()[-12:]
