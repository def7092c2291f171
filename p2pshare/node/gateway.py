"""The node's read-only HTTP gateway: a browser or a player streams a share.

Theory of operation
-------------------
``p2pshare open LINK`` asks the node to register LINK; the node answers
with ``http://127.0.0.1:PORT/<token>/<name>``. The token is 128 random bits
(base64url); the node maps it to the link (key included) in its memory
only, so the URL is a capability that never carries the key, works only
on this machine (the gateway listens on 127.0.0.1 unless ``node
--gateway`` names another address) and dies with the node or with
``open --revoke TOKEN``.

``GET``/``HEAD /<token>/<path>`` (``h11``, one request at a time per
connection, keep-alive):

* a file: ``200`` with its size and a ``Content-Type`` from its meta, or
  ``206 Partial Content`` for one ``Range: bytes=A-B`` (also ``A-`` and
  ``-N``; several ranges get the whole file), ``416`` for a range that
  starts past the end. The body is ``node/stream.py``'s stream: chunks
  fetched from every provider a bounded window ahead, each verified before
  a byte of it is sent, so a player can seek and play while it downloads;
* a folder: a small HTML page listing its entries as links;
* an unknown or revoked token, or a path not in the share: ``404`` with no
  body; anything but ``GET``/``HEAD``: ``405``. Request heads are bounded
  (h11's 16 KiB).
"""

from __future__ import annotations

import base64
import html
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote

import h11
import trio

from p2pshare.errors import NotFoundError, P2PShareError, UsageError
from p2pshare.format import ShareLink
from p2pshare.format.folder import Entry
from p2pshare.format.links import LiveLink, parse_any_link
from p2pshare.node.stream import ByteRange, open_target

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = ["DEFAULT_GATEWAY", "Gateway", "GatewayToken"]

log = logging.getLogger(__name__)

Send = Callable[[h11.Event], Awaitable[None]]

DEFAULT_GATEWAY: Final = "127.0.0.1:0"
READ_BYTES: Final = 64 * 1024
OPEN_TIMEOUT_S: Final = 30.0
STALL_S: Final = 60.0
IDLE_S: Final = 60.0  # an idle keep-alive connection is closed after this


@dataclass(frozen=True, slots=True)
class GatewayToken:
    token: str
    link: str  # the link as given (key included): never shown, never logged
    name: str
    created: float


class Gateway:
    """Tokens and the HTTP server (see the module docstring)."""

    def __init__(self, node: Node, listen: str = DEFAULT_GATEWAY) -> None:
        self.node = node
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--gateway: {listen!r:.60} is not HOST:PORT")
        self.host = host.strip("[]")
        self.port = int(port)
        self.tokens: dict[str, GatewayToken] = {}
        self._started = False
        self._lock = trio.Lock()

    # -- tokens -----------------------------------------------------------------
    async def open(self, link_text: str) -> tuple[GatewayToken, str]:
        """Register a link; returns its token and URL (starting the server
        the first time)."""
        link = parse_any_link(link_text)
        key = link.read_key if isinstance(link, LiveLink) else link.key
        if key is None:
            raise UsageError("link: it carries no key (the part after '#')")
        await self._start()
        raw = secrets.token_bytes(16)
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        name = "" if isinstance(link, LiveLink) else await self._name(link)
        entry = GatewayToken(token, link_text, name, time.time())
        self.tokens[token] = entry
        return entry, self.url(entry)

    def url(self, entry: GatewayToken) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        tail = quote(entry.name) if entry.name else ""
        return f"http://{host}:{self.port}/{entry.token}/{tail}"

    def revoke(self, token: str) -> bool:
        return self.tokens.pop(token, None) is not None

    async def _name(self, link: ShareLink) -> str:
        try:
            found = await self.node.inspect(link, timeout_s=OPEN_TIMEOUT_S)
        except P2PShareError:
            return ""
        return found["name"] if found["kind"] == "file" else ""

    # -- the server ---------------------------------------------------------------
    async def _start(self) -> None:
        async with self._lock:
            if self._started:
                return
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
            self.port = listeners[0].socket.getsockname()[1]
            self.node.nursery.start_soon(trio.serve_listeners, self._serve, listeners)
            self._started = True
            log.info("HTTP gateway on %s:%d", self.host, self.port)

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._next_request(conn, stream)
                if request is None:
                    return
                await self._answer(conn, stream, request)
                if h11.MUST_CLOSE in (conn.our_state, conn.their_state):
                    return
                conn.start_next_cycle()
        except (
            h11.RemoteProtocolError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
        ):
            return
        except Exception as exc:
            log.warning("gateway: %s", exc)
        finally:
            await stream.aclose()

    async def _next_request(
        self, conn: h11.Connection, stream: trio.SocketStream
    ) -> h11.Request | None:
        request: h11.Request | None = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_after(IDLE_S) as idle:
                    data = await stream.receive_some(READ_BYTES)
                if idle.cancelled_caught:
                    return None
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _answer(
        self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request
    ) -> None:
        async def send(event: h11.Event) -> None:
            data = conn.send(event)
            if data:
                await stream.send_all(data)

        method = request.method.decode()
        if method not in ("GET", "HEAD"):
            await _empty(send, 405, [(b"allow", b"GET, HEAD")])
            return
        raw = request.target.decode("ascii", "replace").split("?", 1)[0]
        token, _, rest = raw.lstrip("/").partition("/")
        entry = self.tokens.get(token)
        if entry is None:
            await _empty(send, 404)
            return
        path = unquote(rest).strip("/") or None
        ranges = dict(request.headers).get(b"range")
        try:
            await self._serve_target(send, entry, path, ranges, method == "HEAD")
        except (NotFoundError, UsageError):
            await _empty(send, 404)

    async def _serve_target(
        self,
        send: Send,
        entry: GatewayToken,
        path: str | None,
        range_header: bytes | None,
        head: bool,
    ) -> None:
        link = parse_any_link(entry.link)
        if isinstance(link, LiveLink):
            from p2pshare.node import live

            link = await live.resolve(self.node, link, timeout_s=OPEN_TIMEOUT_S)
        if entry.name and path == entry.name:
            path = None  # the URL of a file share ends in its own name
        async with open_target(
            self.node, link, path=path, timeout_s=OPEN_TIMEOUT_S, stall_s=STALL_S
        ) as target:
            if target.meta is None:
                page = _listing(entry.token, path, target.entries or [])
                page_headers = [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(page)).encode()),
                ]
                await send(_response(200, page_headers))
                if not head:
                    await send(h11.Data(data=page))
                await send(h11.EndOfMessage())
                return
            size = target.meta.size
            mime = (target.meta.mime or "application/octet-stream").encode()
            try:
                span = _span(range_header, size)
            except _Unsatisfiable:
                whole = [(b"content-range", f"bytes */{size}".encode())]
                await _empty(send, 416, whole)
                return
            headers = [(b"content-type", mime), (b"accept-ranges", b"bytes")]
            if span is None:
                status, span = 200, ((0, size - 1) if size else None)
            else:
                status = 206
                headers.append(
                    (b"content-range", f"bytes {span[0]}-{span[1]}/{size}".encode())
                )
            length = 0 if span is None else span[1] - span[0] + 1
            headers.append((b"content-length", str(length).encode()))
            await send(_response(status, headers))
            if not head and span is not None:

                async def body(data: bytes) -> None:
                    await send(h11.Data(data=data))

                await target.pump(span, body)
            await send(h11.EndOfMessage())


def _response(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    reason = HTTPStatus(status).phrase.encode()
    return h11.Response(status_code=status, headers=headers, reason=reason)


async def _empty(
    send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    length = [(b"content-length", b"0")]
    await send(_response(status, [*(headers or []), *length]))
    await send(h11.EndOfMessage())


class _Unsatisfiable(Exception):
    """A range that starts past the end of the file (HTTP 416)."""


def _span(header: bytes | None, size: int) -> tuple[int, int] | None:
    """The byte span one ``Range: bytes=…`` asks for; None: the whole file
    (no header, several ranges, or a unit we do not serve).

    Raises:
        _Unsatisfiable: it starts past the end, or is malformed.
    """
    if header is None:
        return None
    unit, _, spec = header.decode("ascii", "replace").partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    try:
        found = ByteRange.parse(spec).within(size)
    except UsageError:
        raise _Unsatisfiable from None
    if found is None:
        raise _Unsatisfiable
    return found


def _listing(token: str, path: str | None, entries: list[Entry]) -> bytes:
    here = f"/{token}/" + (quote(path) + "/" if path else "")
    title = html.escape(path or "/")
    rows = []
    for e in entries:
        slash = "/" if e.kind == "folder" else ""
        href = html.escape(here + quote(e.name) + slash)
        rows.append(f'<li><a href="{href}">{html.escape(e.name)}{slash}</a></li>')
    body = (
        "<!doctype html><meta charset=utf-8>"
        f"<title>{title}</title><h1>{title}</h1><ul>{''.join(rows)}</ul>"
    )
    return body.encode()
