"""The records: every result of the control API and every event, as
``TypedDict``\\ s, and :data:`RESULTS` / :data:`EVENTS`, the one schema
mapping methods and event kinds to them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NotRequired, TypedDict, Union

__all__ = [
    "EVENTS",
    "RESULTS",
    "AddResult",
    "Balance",
    "CheckReport",
    "CheckResult",
    "DownloadEvent",
    "DownloadRecord",
    "DownloadStats",
    "Empty",
    "Event",
    "GatewayEntry",
    "GcReport",
    "Inspection",
    "JobFailed",
    "LanState",
    "LinkResult",
    "PeerReport",
    "ProvidersResult",
    "PublishResult",
    "ReachState",
    "RecentFailure",
    "RelayState",
    "RepairReport",
    "ReplicaProgress",
    "ReplicaRecord",
    "ReplicateResult",
    "Reservation",
    "RevokeResult",
    "RootResult",
    "SeedInfoRecord",
    "SeedKnown",
    "SeedRelayState",
    "SeedState",
    "ShareAdded",
    "ShareListing",
    "ShareRemoved",
    "Status",
    "SyncRecord",
    "TreeEntry",
    "UpnpState",
]


# -- shares ------------------------------------------------------------------------
class ShareListing(TypedDict):
    """A top-level share as ``ls`` lists it (name etc. ``None`` when the
    share cannot be opened; ``error`` says why)."""

    root: str
    mode: str
    added_at: str
    replicas: int
    name: str | None
    kind: str | None
    size: int | None
    error: str | None
    live: NotRequired[str]  # the current version of this live share ("live.…")
    version: NotRequired[int]
    erasure: NotRequired[str]  # "K/N": kept erasure coded on seeds
    links: NotRequired[str]  # under link control: "3 links (1 expired, 1 revoked)"


class AddResult(TypedDict):
    """``add``/``share``: one per path; ``reused``: already shared,
    unchanged, same link."""

    root: str
    link: str
    kind: str
    size: int
    reused: bool
    version: NotRequired[int]  # ``--live``: the pointer's version


class PublishResult(TypedDict):
    """``publish``: the live link, the version it names now, the snapshot's
    root id, and whether this publish made a new version."""

    link: str
    version: int
    root: str
    changed: bool


class GatewayEntry(TypedDict):
    """``open``: a link registered with the HTTP gateway (the key stays in
    the node)."""

    token: str
    url: str
    name: str
    created: float


class SyncRecord(TypedDict):
    """A folder ``sync`` keeps: the link (without its key), what it last
    made the folder equal to, and when."""

    dir: str
    link: str
    root: str
    version: int
    updated_at: int


class RevokeResult(TypedDict):
    token: str
    revoked: bool


class LinkResult(TypedDict):
    link: str


class LinkRevokeResult(TypedDict):
    """``revoke``: links revoked, and the seeds told (or not)."""

    root: str
    revoked: int
    seeds_told: int
    seeds_failed: list[str]


class RootResult(TypedDict):
    """``rm``: the root removed."""

    root: str


class TreeEntry(TypedDict):
    """One entry of a folder tree, ``path`` relative and "/"-separated."""

    path: str
    name: str
    kind: str
    size: int
    root: NotRequired[str]  # the entry's own root id (CID text)
    mtime_ns: NotRequired[int]


class Inspection(TypedDict):
    """``inspect``: what a link holds; ``entries`` flat, depth first. For a
    live link, ``version`` and ``link``: the snapshot it names now."""

    root: str
    name: str
    kind: str
    size: int
    entries: list[TreeEntry]
    version: NotRequired[int]
    link: NotRequired[str]


class GcReport(TypedDict):
    blocks: int
    bytes: int
    temp_files: int
    partial_shares: int


class Empty(TypedDict):
    """``stop``, and the end of ``events``."""


# -- downloads ---------------------------------------------------------------------
class DownloadStats(TypedDict):
    chunks: int
    bytes: int
    bans: int
    first_chunk_s: float | None


class DownloadRecord(TypedDict):
    """``get``, ``downloads``, ``download.*``: one download."""

    id: int
    root: str
    name: str | None
    state: str
    done: int
    total: int | None
    rate: float
    eta: float | None
    providers: int
    error: str | None
    error_code: str | None
    path: str | None
    chunks_total: int
    chunks_resumed: int
    stats: DownloadStats | None
    routes: dict[str, str]
    out_dir: str
    paths: list[str]
    started_at: float
    finished_at: float | None


# -- seeds and replicas ------------------------------------------------------------
class ReplicaRecord(TypedDict):
    """A replica of one of our shares on a seed."""

    seed: str
    region: str
    state: str
    addrs: list[str]
    lease_expires: int | None


class SeedInfoRecord(TypedDict):
    """A seed as replication found it."""

    peer_id: str
    addrs: list[str]
    region: str
    free_bytes: int
    admission: str


class ReplicateResult(TypedDict):
    root: str
    link: str
    replicas: list[ReplicaRecord]


class CheckResult(TypedDict):
    """One seed's answer to a storage proof."""

    seed: str
    region: str
    ok: bool
    detail: str
    replica: NotRequired[bool]  # a replica recorded by this home (else: DHT)
    column: NotRequired[int]  # the erasure column it keeps


class ErasureHealth(TypedDict):
    """An erasure-coded share's state on its seeds."""

    k: int
    n: int
    columns: int  # distinct columns that passed their storage proof
    survives: int  # more seed losses it survives (negative: cannot rebuild)


class CheckReport(TypedDict):
    root: str
    providers: list[CheckResult]
    erasure: NotRequired[ErasureHealth]


class RepairReport(TypedDict):
    root: str
    checked: list[CheckResult]
    replicas: list[ReplicaRecord]
    erasure: NotRequired[ErasureHealth]  # after the repair


class ProvidersResult(TypedDict):
    root: str
    providers: int


class Balance(TypedDict):
    """Our voucher balance on one seed: its own answer when ``reachable``,
    else this home's record of the vouchers (``used`` unknown)."""

    seed: str
    quota: int
    used: int | None
    remaining: int | None
    vouchers: int
    expires: int | None
    reachable: bool
    relayed: NotRequired[int]
    error: NotRequired[str]


# -- the node ----------------------------------------------------------------------
class PeerReport(TypedDict):
    peer_id: str
    addrs: list[str]
    path: str
    sent: int
    received: int
    upload_rate: float
    download_rate: float


class RecentFailure(TypedDict):
    job: str
    what: str
    code: str


class SeedKnown(TypedDict):
    """A seed keeping replicas of this node's shares."""

    peer_id: str
    region: str
    replicas: int


class SeedState(TypedDict):
    """This node as a seed."""

    region: str
    admission: str
    pins: int
    complete: int
    used_bytes: int
    max_storage: int | None


class LanState(TypedDict):
    mdns: bool
    peers: NotRequired[int]
    announced: NotRequired[list[str]]


class Reservation(TypedDict):
    relay: str
    expires_in_s: int


class RelayState(TypedDict):
    """Our relay reservations (behind a NAT)."""

    reservations: list[Reservation]


class UpnpState(TypedDict):
    state: str
    external_ip: str | None
    port: int | None


class SeedRelayState(TypedDict):
    """A seed's relay service."""

    reservations: int
    circuits: dict[str, int]
    relayed_bytes: int
    refused_reservations: int
    open_relay: bool


class ReachState(TypedDict):
    state: str
    why: str
    observed: NotRequired[str | None]
    port: NotRequired[int | None]
    checked_s_ago: NotRequired[float | None]


class Status(TypedDict):
    peer_id: str
    addrs: list[str]
    dht_routing_table: int | None
    connected_peers: int
    shares: int
    downloads_active: int
    uploads_active: int
    upload_rate: float
    download_rate: float
    bytes_sent: int
    jobs_failed: int
    recent_failures: list[RecentFailure]
    uptime_s: float
    version: str
    seeds: list[SeedKnown]
    seed: SeedState | None
    lan: LanState
    relay: RelayState | None
    upnp: UpnpState | None
    seed_relay: SeedRelayState | None
    reachability: ReachState


# -- events ------------------------------------------------------------------------
class DownloadEvent(DownloadRecord):
    """``download.started|progress|done|failed|paused|cancelled``."""

    kind: str


class ShareAdded(TypedDict):
    kind: Literal["share.added"]
    root: str
    share_kind: str


class ShareRemoved(TypedDict):
    kind: Literal["share.removed"]
    root: str


class JobFailed(TypedDict):
    """A job of the node failed (the node itself goes on)."""

    kind: Literal["job.failed"]
    job: str
    what: str
    code: str
    error: str


class ReplicaProgress(TypedDict):
    kind: Literal["replica.progress"]
    root: str
    seed: str
    have: int
    count: int
    state: str


Event = Union[DownloadEvent, ShareAdded, ShareRemoved, JobFailed, ReplicaProgress]  # noqa: UP007

EVENTS: dict[str, type[Mapping[str, object]]] = {
    "share.added": ShareAdded,
    "share.removed": ShareRemoved,
    "job.failed": JobFailed,
    "replica.progress": ReplicaProgress,
}
"""Event kinds and their records; ``download.*`` are :class:`DownloadEvent`."""

# the one schema of results: every method of the control API and its result
RESULTS: dict[str, object] = {
    "status": Status,
    "ls": list[ShareListing],
    "add": list[AddResult],
    "share": list[AddResult],
    "link": LinkResult,
    "publish": PublishResult,
    "open": GatewayEntry,
    "open.ls": list[GatewayEntry],
    "open.revoke": RevokeResult,
    "sync.record": Empty,
    "syncs": list[SyncRecord],
    "rm": RootResult,
    "get": DownloadRecord,
    "downloads": list[DownloadRecord],
    "download.pause": DownloadRecord,
    "download.resume": DownloadRecord,
    "download.cancel": DownloadRecord,
    "peers": list[PeerReport],
    "inspect": Inspection,
    "replicate": ReplicateResult,
    "check": CheckReport,
    "revoke": LinkRevokeResult,
    "repair": RepairReport,
    "vouchers": list[Balance],
    "voucher.redeem": Balance,
    "providers": ProvidersResult,
    "events": Empty,
    "gc": GcReport,
    "stop": Empty,
}


def health_line(h: ErasureHealth) -> str:
    """One line on an erasure-coded share's seeds (the CLI's and the TUI's)."""
    head = f"erasure {h['k']}/{h['n']}: {h['columns']} of {h['n']} parts hold"
    if h["survives"] < 0:
        return f"{head}; {h['k']} are needed: it cannot be rebuilt from seeds now"
    if h["survives"] == 0:
        return f"{head}; survives no more losses (run `p2pshare repair`)"
    return f"{head}; survives {h['survives']} more losses"
