"""A scripted :class:`tui.backend.NodeBackend` with fixed data, for snapshots.

Everything it returns is constant (no clock, no ports), so screenshots of
the TUI over it are byte-for-byte stable. Calls are recorded in ``calls``.
Every answer is checked against the control API's records
(``p2pshare.records``) as the real client checks the node's, so the fake
cannot drift from what a node sends.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import anyio

from p2pshare.format.cid import root_to_cid
from p2pshare.records import (
    AddResult,
    Balance,
    CheckReport,
    DownloadRecord,
    Inspection,
    PeerReport,
    ShareListing,
    Status,
    SyncRecord,
    check_event,
    check_result,
)

R = TypeVar("R")


def _checked(method: str, value: object, record: type[R]) -> R:
    """``value`` as the record of ``method``'s result, once it conforms."""
    check_result(method, value)
    return cast(R, copy.deepcopy(value))


PEER_ID = "12D3KooWFakeNodeAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
SEED_EU = "12D3KooWSeedEuDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"
SEED_US = "12D3KooWSeedUsEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE"
ADDED_AT = "2025-11-26T15:13:20+00:00"  # shown in local time: tests set TZ
ROOT_PROJET = root_to_cid(bytes([1]) * 32)
ROOT_PHOTO = root_to_cid(bytes([2]) * 32)
LINK = f"p2pshare://{ROOT_PROJET}#{'A' * 43}"

SHARES: list[dict[str, Any]] = [
    {
        "root": ROOT_PROJET,
        "name": "Projet",
        "kind": "folder",
        "size": 1234567,
        "mode": "reference",
        "added_at": ADDED_AT,
        "error": None,
        "replicas": 2,
    },
    {
        "root": ROOT_PHOTO,
        "name": "holiday.jpg",
        "kind": "file",
        "size": 3_500_000,
        "mode": "copy",
        "added_at": "2025-11-26T16:13:20+00:00",
        "error": None,
        "replicas": 0,
    },
]

INSPECT: dict[str, Any] = {
    "root": ROOT_PROJET,
    "name": "Projet",
    "kind": "folder",
    "size": 1234567,
    "entries": [
        {"path": "a.txt", "name": "a.txt", "kind": "file", "size": 6},
        {"path": "docs", "name": "docs", "kind": "folder", "size": 196620},
        {"path": "docs/readme.md", "name": "readme.md", "kind": "file", "size": 7},
        {"path": "docs/img", "name": "img", "kind": "folder", "size": 196613},
        {
            "path": "docs/img/logo.png",
            "name": "logo.png",
            "kind": "file",
            "size": 196613,
        },
        {"path": "song.ogg", "name": "song.ogg", "kind": "file", "size": 1037941},
    ],
}


def fake_download(
    did: int, state: str, done: int, total: int, rate: float, eta: float | None
) -> DownloadRecord:
    return {
        "id": did,
        "root": root_to_cid(bytes([did]) * 32),
        "state": state,
        "done": done,
        "total": total,
        "rate": rate,
        "eta": eta,
        "providers": 2,
        "error": None,
        "error_code": None,
        "path": f"/home/me/Downloads/file{did}.bin" if state == "done" else None,
        "name": None,
        "chunks_total": 0,
        "chunks_resumed": 0,
        "stats": None,
        "routes": {},
        "out_dir": "/home/me/Downloads",
        "paths": [],
        "started_at": 1764170000.0,
        "finished_at": None,
    }


DOWNLOADS: list[DownloadRecord] = [
    fake_download(1, "done", 4 << 20, 4 << 20, 0.0, None),
    fake_download(2, "active", 3 << 20, 8 << 20, 524288.0, 10.0),
    fake_download(3, "paused", 1 << 20, 16 << 20, 0.0, None),
]

STATUS: dict[str, Any] = {
    "peer_id": PEER_ID,
    "addrs": [f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER_ID}"],
    "dht_routing_table": 12,
    "connected_peers": 2,
    "shares": 2,
    "downloads_active": 1,
    "uploads_active": 0,
    "upload_rate": 1024.0,
    "download_rate": 524288.0,
    "bytes_sent": 0,
    "jobs_failed": 0,
    "recent_failures": [],
    "uptime_s": 42.0,
    "version": "0.1.0",
    "seeds": [
        {"peer_id": SEED_EU, "region": "eu-west", "replicas": 1},
        {"peer_id": SEED_US, "region": "us-east", "replicas": 1},
    ],
    "seed": None,
    "lan": {"mdns": False},
    "relay": None,
    "upnp": None,
    "seed_relay": None,
    "reachability": {"state": "public", "why": "seeds dialled us back"},
}

VOUCHERS: list[dict[str, Any]] = [
    {
        "seed": SEED_EU,
        "quota": 50 << 30,
        "used": 1_300_000,
        "remaining": (50 << 30) - 1_300_000,
        "vouchers": 1,
        "expires": 1_800_000_000,
        "reachable": True,
    },
]
VOUCHER_CODE = "p2pv1-" + "a" * 120

PEERS: list[dict[str, Any]] = [
    {
        "peer_id": "12D3KooWPeerOneBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        "addrs": ["/ip4/192.0.2.1/tcp/4001"],
        "path": "direct",
        "sent": 1024,
        "received": 3 << 20,
        "upload_rate": 1024.0,
        "download_rate": 262144.0,
    },
    {
        "peer_id": "12D3KooWPeerTwoCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC",
        "addrs": ["/ip4/192.0.2.2/tcp/4001"],
        "path": "direct",
        "sent": 0,
        "received": 1 << 20,
        "upload_rate": 0.0,
        "download_rate": 262144.0,
    },
]


class FakeBackend:
    """Fixed answers; ``events`` yields ``script`` then waits forever (or
    ends, as a node that went away, with ``end_events``). ``fail`` maps a
    method name to the error it raises."""

    description = "/home/me/.local/share/p2pshare"

    def __init__(
        self,
        script: Sequence[dict[str, Any]] = (),
        *,
        end_events: bool = False,
        fail: dict[str, Exception] | None = None,
    ) -> None:
        self.script = list(script)
        self.end_events = end_events
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, Any]] = []
        self.shares_calls = 0
        self.shares_list = copy.deepcopy(SHARES)
        self.syncs_list: list[dict[str, Any]] = []
        self.voucher_list = copy.deepcopy(VOUCHERS)

    async def connect(self) -> bool:
        self.calls.append(("connect", None))
        return False

    async def status(self) -> Status:
        return _checked("status", STATUS, Status)

    async def shares(self) -> list[ShareListing]:
        self.shares_calls += 1
        return _checked("ls", self.shares_list, list[ShareListing])

    async def syncs(self) -> list[SyncRecord]:
        return _checked("syncs", self.syncs_list, list[SyncRecord])

    async def add(self, paths: Sequence[str], *, copy: bool = False) -> list[AddResult]:
        self.calls.append(("add", list(paths)))
        return []

    async def link(self, root: str) -> str:
        self.calls.append(("link", root))
        return LINK

    async def remove(self, root: str) -> None:
        self.calls.append(("rm", root))
        self.shares_list = [s for s in self.shares_list if s["root"] != root]

    async def providers(self, root: str) -> int:
        return 3 if root == ROOT_PROJET else 1

    async def check(self, root: str) -> CheckReport:
        self.calls.append(("check", root))
        report = {
            "root": root,
            "providers": [
                {"seed": "12D3KooWSeedA", "region": "eu", "ok": True,
                 "detail": "column 0: storage proof ok", "replica": True, "column": 0},
                {"seed": "12D3KooWSeedB", "region": "us", "ok": False,
                 "detail": "column 3: unreachable", "replica": True, "column": 3},
            ],
            "erasure": {"k": 3, "n": 5, "columns": 4, "survives": 1},
        }  # fmt: skip
        return _checked("check", report, CheckReport)

    async def inspect(self, link: str) -> Inspection:
        self.calls.append(("inspect", link))
        if "inspect" in self.fail:
            raise self.fail["inspect"]
        return _checked("inspect", INSPECT, Inspection)

    async def get(
        self, link: str, out_dir: str, paths: Sequence[str] | None = None
    ) -> DownloadRecord:
        self.calls.append(
            ("get", (link, out_dir, None if paths is None else list(paths)))
        )
        started = fake_download(4, "active", 0, 1037941, 0.0, None)
        return _checked("get", started, DownloadRecord)

    async def downloads(self) -> list[DownloadRecord]:
        return _checked("downloads", DOWNLOADS, list[DownloadRecord])

    async def pause(self, download_id: int) -> DownloadRecord:
        self.calls.append(("pause", download_id))
        d = {**DOWNLOADS[1], "id": download_id, "state": "paused"}
        return _checked("download.pause", d, DownloadRecord)

    async def resume(self, download_id: int) -> DownloadRecord:
        self.calls.append(("resume", download_id))
        d = {**DOWNLOADS[1], "id": download_id, "state": "active"}
        return _checked("download.resume", d, DownloadRecord)

    async def cancel(self, download_id: int) -> DownloadRecord:
        self.calls.append(("cancel", download_id))
        d = {**DOWNLOADS[1], "id": download_id, "state": "cancelled"}
        return _checked("download.cancel", d, DownloadRecord)

    async def peers(self) -> list[PeerReport]:
        return _checked("peers", PEERS, list[PeerReport])

    async def vouchers(self) -> list[Balance]:
        return _checked("vouchers", self.voucher_list, list[Balance])

    async def redeem(self, code: str) -> Balance:
        self.calls.append(("redeem", code))
        if "redeem" in self.fail:
            raise self.fail["redeem"]
        us = {
            "seed": SEED_US,
            "quota": 10 << 30,
            "used": 0,
            "remaining": 10 << 30,
            "vouchers": 1,
            "expires": 1_800_000_000,
            "reachable": True,
        }
        self.voucher_list.append(us)
        return _checked("voucher.redeem", us, Balance)

    async def stop(self) -> None:
        self.calls.append(("stop", None))

    @asynccontextmanager
    async def events(self) -> AsyncIterator[AsyncIterator[Mapping[str, Any]]]:
        async def stream() -> AsyncIterator[Mapping[str, Any]]:
            for event in self.script:
                check_event(event)
                yield event
            if not self.end_events:
                await anyio.sleep_forever()

        yield stream()
