"""The node as the UI sees it: :class:`NodeBackend`.

UI code knows only this protocol: async methods plus an async iterator of
events. :class:`ControlBackend` is the real one, over the home's control
socket (:mod:`p2pshare.control.client`, anyio, so it runs on Textual's
asyncio loop). Each call opens a short connection, so a call never depends
on another task's connection; the events stream holds its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, cast

from p2pshare.config import Home
from p2pshare.control.client import open_client
from p2pshare.control.launch import Background, attach_or_start
from p2pshare.records import (
    AddResult,
    Balance,
    CheckReport,
    DownloadRecord,
    Inspection,
    LinkResult,
    PeerReport,
    ProvidersResult,
    ShareListing,
    Status,
    SyncRecord,
)

__all__ = ["ControlBackend", "NodeBackend"]

CLIENT_NAME = "p2pshare-tui"


class NodeBackend(Protocol):
    """What the TUI needs from a node. Errors are ``P2PShareError``s."""

    @property
    def description(self) -> str:
        """Where the node is (for the status bar)."""
        ...

    async def connect(self) -> bool:
        """Attach to the node, starting one if needed; True if started."""
        ...

    async def status(self) -> Status: ...

    async def shares(self) -> list[ShareListing]: ...

    async def syncs(self) -> list[SyncRecord]: ...

    async def add(
        self, paths: Sequence[str], *, copy: bool = False
    ) -> list[AddResult]: ...

    async def link(self, root: str) -> str: ...

    async def remove(self, root: str) -> None: ...

    async def providers(self, root: str) -> int: ...

    async def check(self, root: str) -> CheckReport:
        """Storage proofs from the share's seeds (and erasure health)."""
        ...

    async def inspect(self, link: str) -> Inspection: ...

    async def get(
        self, link: str, out_dir: str, paths: Sequence[str] | None = None
    ) -> DownloadRecord: ...

    async def downloads(self) -> list[DownloadRecord]: ...

    async def pause(self, download_id: int) -> DownloadRecord: ...

    async def resume(self, download_id: int) -> DownloadRecord: ...

    async def cancel(self, download_id: int) -> DownloadRecord: ...

    async def peers(self) -> list[PeerReport]: ...

    async def vouchers(self) -> list[Balance]: ...

    async def redeem(self, code: str) -> Balance: ...

    async def stop(self) -> None: ...

    def events(self) -> AbstractAsyncContextManager[AsyncIterator[Mapping[str, Any]]]:
        """``async with backend.events() as events: async for ev in events``.

        The iteration ends (or raises ``NodeNotRunning``) when the node goes.
        """
        ...


class ControlBackend:
    """A :class:`NodeBackend` over the home's control socket."""

    def __init__(
        self,
        home: Home,
        *,
        listen: Sequence[str] = (),
        bootstrap: Sequence[str] = (),
    ) -> None:
        self.home = home
        self.listen = tuple(listen)
        self.bootstrap = tuple(bootstrap)

    @property
    def description(self) -> str:
        return str(self.home.path)

    async def connect(self) -> bool:
        how = Background(listen=self.listen, bootstrap=self.bootstrap)
        return await attach_or_start(self.home, how, name=CLIENT_NAME)

    async def _call(self, method: str, **params: Any) -> Any:
        # the client checked the result against its record in
        # p2pshare.records (RESULTS), so the casts below hold
        async with open_client(self.home, name=CLIENT_NAME) as client:
            return await client.call(method, **params)

    async def status(self) -> Status:
        return cast(Status, await self._call("status"))

    async def shares(self) -> list[ShareListing]:
        return cast(list[ShareListing], await self._call("ls"))

    async def syncs(self) -> list[SyncRecord]:
        return cast(list[SyncRecord], await self._call("syncs"))

    async def add(self, paths: Sequence[str], *, copy: bool = False) -> list[AddResult]:
        return cast(
            list[AddResult], await self._call("add", paths=list(paths), copy=copy)
        )

    async def link(self, root: str) -> str:
        result: LinkResult = await self._call("link", root=root)
        return result["link"]

    async def remove(self, root: str) -> None:
        await self._call("rm", root=root)

    async def providers(self, root: str) -> int:
        result: ProvidersResult = await self._call("providers", root=root)
        return result["providers"]

    async def check(self, root: str) -> CheckReport:
        return cast(CheckReport, await self._call("check", root=root))

    async def inspect(self, link: str) -> Inspection:
        return cast(Inspection, await self._call("inspect", link=link))

    async def get(
        self, link: str, out_dir: str, paths: Sequence[str] | None = None
    ) -> DownloadRecord:
        params: dict[str, Any] = {"link": link, "out_dir": out_dir}
        if paths:
            params["paths"] = list(paths)
        return cast(DownloadRecord, await self._call("get", **params))

    async def downloads(self) -> list[DownloadRecord]:
        return cast(list[DownloadRecord], await self._call("downloads"))

    async def pause(self, download_id: int) -> DownloadRecord:
        return cast(DownloadRecord, await self._call("download.pause", id=download_id))

    async def resume(self, download_id: int) -> DownloadRecord:
        return cast(DownloadRecord, await self._call("download.resume", id=download_id))

    async def cancel(self, download_id: int) -> DownloadRecord:
        return cast(DownloadRecord, await self._call("download.cancel", id=download_id))

    async def peers(self) -> list[PeerReport]:
        return cast(list[PeerReport], await self._call("peers"))

    async def vouchers(self) -> list[Balance]:
        return cast(list[Balance], await self._call("vouchers"))

    async def redeem(self, code: str) -> Balance:
        return cast(Balance, await self._call("voucher.redeem", code=code))

    async def stop(self) -> None:
        await self._call("stop")

    @asynccontextmanager
    async def events(self) -> AsyncIterator[AsyncIterator[Mapping[str, Any]]]:
        async with (
            open_client(self.home, name=CLIENT_NAME) as client,
            client.subscribe() as events,
        ):
            yield events
