"""The control server inside a running node (trio, Unix socket).

Theory of operation
-------------------
The node listens on ``<home>/control.sock``, created 0600 inside the 0700
home. Each connection is checked with ``SO_PEERCRED``: a process of another
uid is refused before a byte is read, even if file modes were loosened.
Then the sans-IO :mod:`p2pshare.control.wire` codec runs the conversation;
requests are handled concurrently (a slow ``get`` start never blocks a
``status``), each answer goes out under one write lock, and a malformed
frame gets a connection-level error and the connection closed; the node
and its other clients are not affected. Request frames are bounded by the
codec (1 MiB) and a client may have at most ``MAX_INFLIGHT`` requests
running. At most ``MAX_CLIENTS`` connections are served at once (a new one
beyond that is closed at once); one that has not said hello within
``HELLO_TIMEOUT_S``, or has nothing running (no request, no subscription)
and sends nothing for ``IDLE_TIMEOUT_S``, is closed, so idle connections
cannot hold the slots.

Methods (params → result; errors carry the stable codes of
``p2pshare.errors``):

============================  ==============================================
``status``                    peer id, addresses, DHT table size, peers,
                              shares, transfers, rates, uptime
``ls``                        shares (shape in ``store/listing.py``)
``add`` / ``share``           ``{paths: [abs path], copy: bool}`` → links
                              (``share`` links carry peer hints)
``link``                      ``{root}`` → ``{link}``
``rm``                        ``{root}`` → ``{}``
``get``                       ``{link, out_dir}`` → a download
``downloads``                 → downloads (shape in ``node/downloads.py``)
``download.pause|resume|cancel``  ``{id}`` → the download
``peers``                     connected peers
``events``                    subscription: ``event`` frames until the
                              client goes away
``gc``                        → what was removed (``store/gc.py``)
``stop``                      → ``{}``, then the node shuts down
============================  ==============================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from p2pshare.control.api import (
    AddParams,
    GetParams,
    IdParams,
    LinkParams,
    LinkTextParams,
    NoParams,
    PublishParams,
    RedeemParams,
    ReplicateParams,
    RootParams,
    SyncRecordParams,
    TokenParams,
    parse_params,
)
from p2pshare.control.wire import Hello, Request, ServerWire, State
from p2pshare.errors import (
    ConfigError,
    LocalProtocolError,
    NotFoundError,
    P2PShareError,
    RemoteProtocolError,
)
from p2pshare.format import ShareLink, parse_root_or_link
from p2pshare.format.links import LiveLink, parse_any_link
from p2pshare.groups import leaves
from p2pshare.node import live as livemod
from p2pshare.node.gateway import Gateway
from p2pshare.node.host import parse_peer_addr
from p2pshare.records import (
    Empty,
    GatewayEntry,
    LinkResult,
    LinkRevokeResult,
    ProvidersResult,
    ReplicateResult,
    RevokeResult,
    RootResult,
    SyncRecord,
)
from p2pshare.store.walk import FolderLimits

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from p2pshare.node.service import Node

__all__ = ["ControlServer", "check_peer_uid", "peer_uid"]

log = logging.getLogger(__name__)

# a method: the request (for its id) and its typed params -> the result
Handler = Callable[[Request, Any], Awaitable[object]]

MAX_INFLIGHT = 32
MAX_CLIENTS = 64
HELLO_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the NUL
READ_BYTES = 65536
INSPECT_TIMEOUT_S = 30.0  # to find a provider for a link being browsed
LIVE_RESOLVE_S = 10.0  # to hear a live link's records (hints and the DHT)


def peer_uid(sock: Any) -> int:
    """The uid of the process at the other end of a Unix socket."""
    creds = sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def check_peer_uid(uid: int, own_uid: int) -> bool:
    """Only the node's own user may drive it (root is not special)."""
    return uid == own_uid


class ControlServer:
    """Serves the control API of ``node`` on ``path``."""

    def __init__(self, node: Node, path: Path, *, stop: Callable[[], None]) -> None:
        self.node = node
        self.path = path
        self.stop = stop
        self.own_uid = os.geteuid()
        self.clients = 0
        self.refused = 0

    async def serve(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen until cancelled; signals readiness once the socket accepts."""
        raw = str(self.path)
        if len(os.fsencode(raw)) > MAX_SOCKET_PATH:
            raise ConfigError(f"{self.path}: path too long for a Unix socket")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: we hold the home lock
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600
        try:
            await sock.bind(raw)
        finally:
            os.umask(old)
        os.chmod(raw, 0o600)
        sock.listen(16)
        listener = trio.SocketListener(sock)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._handle, [listener])
                task_status.started()
        finally:
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            uid = peer_uid(stream.socket)
        except OSError:
            uid = -1
        if not check_peer_uid(uid, self.own_uid):
            self.refused += 1
            log.warning("control: refused a connection from uid %d", uid)
            await stream.aclose()
            return
        if self.clients >= MAX_CLIENTS:
            self.refused += 1
            log.warning("control: %d clients connected, refusing another", MAX_CLIENTS)
            await stream.aclose()
            return
        self.clients += 1
        try:
            await _Connection(self, stream).run()
        except Exception as exc:  # a task root: one connection never stops the
            # server (and with it the node); what leaves the connection's
            # nursery comes wrapped in a group
            if all(isinstance(e, _GONE) for e in leaves(exc)):
                log.debug("control: client went away")
            else:
                self.node.jobs.record("control", "connection", exc)
        finally:
            self.clients -= 1
            await stream.aclose()


_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class _Connection:
    def __init__(self, server: ControlServer, stream: trio.SocketStream) -> None:
        self.server = server
        self.node = server.node
        self.stream = stream
        self.wire = ServerWire()
        self.lock = trio.Lock()
        self.inflight = 0

    async def send(self, data: bytes) -> None:
        async with self.lock:
            await self.stream.send_all(data)

    def usable(self) -> bool:
        """False once the connection failed or closed: answers are dropped."""
        return self.wire.state is State.READY

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                ready = self.wire.state is State.READY
                with trio.move_on_after(
                    IDLE_TIMEOUT_S if ready else HELLO_TIMEOUT_S
                ) as waited:
                    data = await self.stream.receive_some(READ_BYTES)
                if waited.cancelled_caught:
                    if ready and self.inflight:
                        continue  # a request or subscription runs: not idle
                    log.info("control: closing an idle connection")
                    break
                try:
                    self.wire.receive_data(data)
                    events = list(self.wire.events())
                except RemoteProtocolError as exc:
                    log.warning("control: bad client: %s", exc.reason)
                    with contextlib.suppress(
                        trio.BrokenResourceError, trio.ClosedResourceError
                    ):
                        await self.send(self.wire.fatal_for(exc))
                    break
                for event in events:
                    if isinstance(event, Hello):
                        await self.send(self.wire.hello(self.node.peer_id))
                    elif isinstance(event, Request):
                        if self.inflight >= MAX_INFLIGHT:
                            await self.send(
                                self.wire.error(
                                    event.id, "busy", "too many requests in flight"
                                )
                            )
                            continue
                        self.inflight += 1
                        nursery.start_soon(self._dispatch, event)
                if not data:
                    break
            nursery.cancel_scope.cancel()

    async def _dispatch(self, req: Request) -> None:
        try:
            answer = await self._answer(req)
            if answer and self.usable():
                await self.send(answer)
            if req.method == "stop":
                self.server.stop()  # only after the answer went out
        except (trio.BrokenResourceError, trio.ClosedResourceError, LocalProtocolError):
            log.debug("control: client gone before its answer")
        finally:
            self.inflight -= 1

    async def _answer(self, req: Request) -> bytes:
        # a task root: the supervisor types any failure, never takes the node down
        try:
            params = parse_params(req.method, req.params)  # the one schema
            handler = self._method(req.method)
            result = await self.node.jobs.run(
                "control", req.method, lambda: handler(req, params)
            )
            return self.wire.respond(req.id, result) if self.usable() else b""
        except P2PShareError as exc:
            if not self.usable():
                return b""
            return self.wire.error(req.id, exc.code, str(exc))

    def _method(self, name: str) -> Handler:
        table: dict[str, Handler] = {
            "status": self.m_status,
            "ls": self.m_ls,
            "add": self.m_add,
            "share": self.m_share,
            "link": self.m_link,
            "publish": self.m_publish,
            "open": self.m_open,
            "open.ls": self.m_open_ls,
            "open.revoke": self.m_open_revoke,
            "sync.record": self.m_sync_record,
            "syncs": self.m_syncs,
            "rm": self.m_rm,
            "get": self.m_get,
            "downloads": self.m_downloads,
            "download.pause": self.m_pause,
            "download.resume": self.m_resume,
            "download.cancel": self.m_cancel,
            "peers": self.m_peers,
            "inspect": self.m_inspect,
            "replicate": self.m_replicate,
            "check": self.m_check,
            "revoke": self.m_revoke,
            "repair": self.m_repair,
            "vouchers": self.m_vouchers,
            "voucher.redeem": self.m_redeem,
            "providers": self.m_providers,
            "events": self.m_events,
            "gc": self.m_gc,
            "stop": self.m_stop,
        }
        return table[name]  # parse_params refused any other name

    # -- methods (params: control/api.py) ---------------------------------------
    async def m_status(self, req: Request, p: NoParams) -> object:
        return await self.node.status()

    async def m_ls(self, req: Request, p: NoParams) -> object:
        return await self.node.shares.listing()

    async def m_add(self, req: Request, p: AddParams) -> object:
        # the node serves what it adds, so the links carry its addresses
        return [
            await self.node.add(
                Path(raw), copy=p.copy, hints=True, new=p.new, live=p.live
            )
            for raw in p.paths
        ]

    async def m_share(self, req: Request, p: AddParams) -> object:
        # behind a NAT, the links should carry relay addresses: wait (a few
        # seconds at most) for the first reachability answer and relay
        await self.node.links_ready()
        return await self.m_add(req, p)

    async def m_link(self, req: Request, p: LinkParams) -> object:
        target = parse_root_or_link(p.root)
        row = await self.node.shares.get(target.root_id)
        if row.key is None:
            raise NotFoundError("share: this node holds no key for it")
        ticket = None
        controlled = await self.node.db(
            lambda: self.node.store.catalog.policy_of(row.root)
        )
        if p.expires or controlled:
            from p2pshare.node import linkctl

            # under link control a link needs a ticket: one that never
            # expires unless asked (`revoke` can still end it)
            ends = int(time.time()) + p.expires if p.expires else 0
            ticket = await linkctl.issue(self.node, row.root, ends)
        if not p.hints:
            link = ShareLink(root_id=row.root, key=row.key, ticket=ticket)
            return LinkResult(link=str(link))
        replicas = await self.node.shares.replicas(row.root)
        link = self.node.link(row.root, row.key, replicas)
        link = dataclasses.replace(link, ticket=ticket)
        return LinkResult(link=str(link))

    async def m_publish(self, req: Request, p: PublishParams) -> object:
        return await livemod.publish(self.node, p.target)

    async def m_open(self, req: Request, p: LinkTextParams) -> object:
        gateway = self._gateway()
        entry, url = await gateway.open(p.link)
        return GatewayEntry(
            token=entry.token, url=url, name=entry.name, created=entry.created
        )

    async def m_open_ls(self, req: Request, p: NoParams) -> object:
        gateway = self._gateway()
        return [
            GatewayEntry(
                token=e.token, url=gateway.url(e), name=e.name, created=e.created
            )
            for e in gateway.tokens.values()
        ]

    async def m_open_revoke(self, req: Request, p: TokenParams) -> object:
        return RevokeResult(token=p.token, revoked=self._gateway().revoke(p.token))

    async def m_sync_record(self, req: Request, p: SyncRecordParams) -> object:
        catalog = self.node.store.catalog
        await self.node.db(
            lambda: catalog.record_sync(p.dir, p.link, p.root, p.version)
        )
        return Empty()

    async def m_syncs(self, req: Request, p: NoParams) -> object:
        rows = await self.node.db(self.node.store.catalog.syncs)
        return [
            SyncRecord(dir=d, link=ln, root=r, version=v, updated_at=t)
            for d, ln, r, v, t in rows
        ]

    def _gateway(self) -> Gateway:
        if self.node.gateway is None:  # only before open_node finished
            raise ConfigError("the HTTP gateway is not running")
        return self.node.gateway

    async def m_rm(self, req: Request, p: RootParams) -> object:
        target = parse_root_or_link(p.root)
        await self.node.remove(target.root_id)
        return RootResult(root=target.root_cid)

    async def m_get(self, req: Request, p: GetParams) -> object:
        any_link = parse_any_link(p.link)
        for addr in p.bootstrap:
            parse_peer_addr(addr)  # a bad one is the caller's mistake: fail now
        if p.bootstrap:  # as `get --bootstrap` without a node: join through them
            self.node.jobs.spawn(
                "bootstrap",
                f"{len(p.bootstrap)} peers",
                lambda: self.node.host.bootstrap(p.bootstrap),
            )
        if isinstance(any_link, LiveLink):  # the snapshot it names now
            timeout = min(p.timeout, LIVE_RESOLVE_S)
            link = await livemod.resolve(
                self.node, any_link, timeout_s=timeout, also=p.bootstrap
            )
        else:
            link = any_link
        started = self.node.downloads.start(
            link,
            Path(p.out_dir),
            p.paths,
            timeout_s=p.timeout,
            stall_s=p.stall_timeout,
            limits=FolderLimits(entries=p.max_entries, depth=p.max_depth),
        )
        return started.to_wire()

    async def m_inspect(self, req: Request, p: LinkTextParams) -> object:
        # entries: a FLAT list, see docs/control.md
        any_link = parse_any_link(p.link)
        if not isinstance(any_link, LiveLink):
            return await self.node.inspect(any_link, timeout_s=INSPECT_TIMEOUT_S)
        link = await livemod.resolve(self.node, any_link, timeout_s=LIVE_RESOLVE_S)
        found = await self.node.inspect(link, timeout_s=INSPECT_TIMEOUT_S)
        found["link"] = str(link)  # the snapshot: what `sync` then gets
        found["version"] = await self.node.db(
            lambda: self.node.store.catalog.seen_seq(any_link.pub) or 0
        )
        return found

    async def m_replicate(self, req: Request, p: ReplicateParams) -> object:
        target = parse_root_or_link(p.root)
        # the node owns the work: a client that goes away (Ctrl-C) stops
        # waiting, not replicating
        rows = await self.node.jobs.detach(
            "replicate",
            target.root_cid[:16],
            lambda: self.node.replicate(
                target.root_id, p.replicas, seeds=p.seeds, erasure=p.erasure or None
            ),
        )
        row = await self.node.shares.get(target.root_id)
        return ReplicateResult(
            root=target.root_cid,
            link=str(self.node.link(row.root, row.key, rows)),
            replicas=[r.to_wire() for r in rows],
        )

    async def m_revoke(self, req: Request, p: RootParams) -> object:
        from p2pshare.node import linkctl

        target = parse_root_or_link(p.root)
        link_id = target.ticket[:16] if target.ticket is not None else None
        n, pushed = await linkctl.revoke(self.node, target.root_id, link_id)
        return LinkRevokeResult(
            root=target.root_cid,
            revoked=n,
            seeds_told=pushed.told,
            seeds_failed=pushed.failed,
        )

    async def m_check(self, req: Request, p: RootParams) -> object:
        from p2pshare.node.replica_check import check_report

        return await check_report(self.node, parse_root_or_link(p.root).root_id)

    async def m_repair(self, req: Request, p: ReplicateParams) -> object:
        from p2pshare.node.replica_check import repair_report

        root = parse_root_or_link(p.root).root_id
        return await repair_report(self.node, root, p.replicas, seeds=p.seeds)

    async def m_vouchers(self, req: Request, p: NoParams) -> object:
        from p2pshare.node.vouchers import balances

        return await balances(self.node)

    async def m_redeem(self, req: Request, p: RedeemParams) -> object:
        from p2pshare.node.vouchers import redeem

        return await redeem(self.node, p.code)

    async def m_providers(self, req: Request, p: RootParams) -> object:
        target = parse_root_or_link(p.root)
        count = await self.node.providers(target.root_id)
        return ProvidersResult(root=target.root_cid, providers=count)

    async def m_downloads(self, req: Request, p: NoParams) -> object:
        return [d.to_wire() for d in self.node.downloads.list()]

    async def m_pause(self, req: Request, p: IdParams) -> object:
        return (await self.node.downloads.pause(p.id)).to_wire()

    async def m_resume(self, req: Request, p: IdParams) -> object:
        return self.node.downloads.resume(p.id).to_wire()

    async def m_cancel(self, req: Request, p: IdParams) -> object:
        return (await self.node.downloads.cancel(p.id)).to_wire()

    async def m_peers(self, req: Request, p: NoParams) -> object:
        return self.node.peers()

    async def m_events(self, req: Request, p: NoParams) -> object:
        async with self.node.bus.subscribe() as events:
            async for event in events:
                if not self.usable():
                    break
                await self.send(self.wire.event(req.id, event.to_wire()))
        return Empty()

    async def m_gc(self, req: Request, p: NoParams) -> object:
        return await self.node.gc()

    async def m_stop(self, req: Request, p: NoParams) -> object:
        log.info("control: stop requested")
        return Empty()  # _dispatch stops the node once this answer is sent
