"""What a node reports, typed: the control API's results and events.

One schema for every side of the control socket: the node builds these
records (mypy checks every key and value where it builds one), the server
sends them as they are, the client checks each result and event against
the same schema at the socket (:func:`check_record`) before the CLI or the
TUI reads a field, and ``--json`` prints them unchanged. Requests have
their own records in ``control/api.py``.

The records are ``TypedDict``\\ s rather than dataclasses on purpose: the
control API speaks maps (``docs/control.md``), so a typed map *is* the
wire form — no ``to_wire``/``from_wire`` pair to keep in step for every
record, nothing to convert before ``--json`` — while mypy still checks
every construction and every read. Pure: nothing but the standard
library, so every layer (``store/`` builds the listings) may use it.

A reader accepts keys it does not know (a newer node may report more);
a declared key that is missing or of the wrong type is a
:class:`~p2pshare.errors.RemoteProtocolError`.
"""

from p2pshare.records.check import check_event, check_record, check_result
from p2pshare.records.schema import (
    EVENTS,
    RESULTS,
    AddResult,
    Balance,
    CheckReport,
    CheckResult,
    DownloadEvent,
    DownloadRecord,
    DownloadStats,
    Empty,
    ErasureHealth,
    Event,
    GatewayEntry,
    GcReport,
    Inspection,
    JobFailed,
    LanState,
    LinkResult,
    LinkRevokeResult,
    PeerReport,
    ProvidersResult,
    PublishResult,
    ReachState,
    RecentFailure,
    RelayState,
    RepairReport,
    ReplicaProgress,
    ReplicaRecord,
    ReplicateResult,
    Reservation,
    RevokeResult,
    RootResult,
    SeedInfoRecord,
    SeedKnown,
    SeedRelayState,
    SeedState,
    ShareAdded,
    ShareListing,
    ShareRemoved,
    Status,
    SyncRecord,
    TreeEntry,
    UpnpState,
    health_line,
)

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
    "ErasureHealth",
    "Event",
    "GatewayEntry",
    "GcReport",
    "Inspection",
    "JobFailed",
    "LanState",
    "LinkResult",
    "LinkRevokeResult",
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
    "check_event",
    "check_record",
    "check_result",
    "health_line",
]
