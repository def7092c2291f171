"""The p2pshare exception tree.

Every error the program raises on purpose is a :class:`P2PShareError`. Each
class carries a stable ``code`` (a string the control API will carry and
scripts may match on) and the CLI ``exit_code`` it maps to. Messages read
``<subject>: <problem>`` and never contain key material, link fragments or
plaintext file names taken from a share.

Exit codes (documented in the README):

====  =====================================================================
 0    success
 1    unexpected internal error (a bug: please report it)
 2    usage error: bad arguments, malformed share link
 3    not found: unknown share, no provider
 4    integrity failure: tampered or corrupt data, unsafe folder listing,
      source file changed since it was added
 5    access denied: wrong key for this share
 6    local I/O or store error (disk, permissions, output already exists)
 7    network or transfer error
 8    no node is running for this home
====  =====================================================================
"""

from __future__ import annotations

__all__ = [
    "EXIT_INTERNAL",
    "AccessDenied",
    "BlockMissing",
    "ConfigError",
    "ControlError",
    "FolderListingError",
    "FormatError",
    "IntegrityError",
    "InternalError",
    "LinkError",
    "LocalProtocolError",
    "NoProviders",
    "NodeLost",
    "NodeNotRunning",
    "NotFoundError",
    "OutputExistsError",
    "P2PShareError",
    "ProtocolError",
    "RemoteCallError",
    "RemoteProtocolError",
    "ReplicationError",
    "SourceChangedError",
    "StoreCorrupt",
    "StoreError",
    "TransferError",
    "TransferTimeout",
    "UsageError",
]

EXIT_INTERNAL = 1


class P2PShareError(Exception):
    """Root of every error p2pshare raises on purpose."""

    code: str = "error"
    exit_code: int = EXIT_INTERNAL


class InternalError(P2PShareError):
    """A bug: an exception nobody raised on purpose, caught at a task root
    (a job of the node) and reported instead of stopping the node."""

    code = "internal"
    exit_code = EXIT_INTERNAL


class UsageError(P2PShareError):
    """The user asked for something that cannot be done as asked."""

    code = "usage"
    exit_code = 2


class ConfigError(UsageError):
    """The home directory or config file is unusable."""

    code = "config"


class LinkError(UsageError):
    """A share link (or root id) is malformed."""

    code = "bad_link"


class NotFoundError(P2PShareError):
    """The share, root or download asked for does not exist."""

    code = "not_found"
    exit_code = 3


class FormatError(P2PShareError):
    """Bytes do not follow the p2pshare format (bad share data)."""

    code = "bad_format"
    exit_code = 4


class IntegrityError(FormatError):
    """Data failed authentication or did not match its id."""

    code = "integrity"


class SourceChangedError(IntegrityError):
    """A file shared by reference changed after it was added."""

    code = "source_changed"


class FolderListingError(FormatError):
    """A folder listing holds an entry that is unsafe or invalid."""

    code = "bad_listing"


class ProtocolError(P2PShareError):
    """Abstract: a wire protocol was violated."""

    code = "protocol"
    exit_code = 7


class LocalProtocolError(ProtocolError):
    """We tried to send something out of turn (a bug on our side)."""

    code = "local_protocol"


class RemoteProtocolError(ProtocolError):
    """The peer misbehaved; ``reason`` says how."""

    code = "remote_protocol"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccessDenied(P2PShareError):
    """The key (or grant) does not open this share."""

    code = "access_denied"
    exit_code = 5


class StoreError(P2PShareError):
    """The local store or the file system failed."""

    code = "store"
    exit_code = 6


class BlockMissing(StoreError):
    """A block the catalog refers to is not in the block store."""

    code = "block_missing"


class StoreCorrupt(StoreError):
    """The catalog is inconsistent or unreadable."""

    code = "store_corrupt"


class OutputExistsError(StoreError):
    """The destination of a download already exists."""

    code = "output_exists"


class TransferError(P2PShareError):
    """A network transfer failed."""

    code = "transfer"
    exit_code = 7


class NoProviders(TransferError):
    """No peer serving the share was found in time."""

    code = "no_providers"
    exit_code = 3


class TransferTimeout(TransferError):
    """A peer did not answer in time."""

    code = "timeout"


class ReplicationError(TransferError):
    """Fewer replicas than asked for could be made on seeds."""

    code = "replication"


class ControlError(P2PShareError):
    """Talking to the local node over the control socket failed."""

    code = "control"
    exit_code = 8


class NodeNotRunning(ControlError):
    """No node runs for this home."""

    code = "node_not_running"


class NodeLost(NodeNotRunning):
    """The node went away in the middle of a call (it stopped or died)."""

    code = "node_lost"
    exit_code = 7


class RemoteCallError(ControlError):
    """The node answered a control request with an error ``code``."""

    code = "remote_call"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.remote_code = code
