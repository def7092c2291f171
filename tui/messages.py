"""App-level messages: past-tense facts about the node, posted by workers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textual.message import Message

from p2pshare.records import DownloadRecord, PeerReport, ShareListing, Status

__all__ = [
    "CommandFailed",
    "DownloadProgressed",
    "DownloadsListed",
    "NodeConnected",
    "NodeEventReceived",
    "NodeLost",
    "NodeSampled",
    "SharesChanged",
]


class NodeConnected(Message):
    """The UI is attached to the home's node (``started``: we started it)."""

    def __init__(self, status: Status, *, started: bool) -> None:
        super().__init__()
        self.status = status
        self.started = started


class NodeLost(Message):
    """The control connection to the node is gone."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class NodeEventReceived(Message):
    """An event of the node's subscription (other than download progress)."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        super().__init__()
        self.event = event

    @property
    def kind(self) -> str:
        return str(self.event.get("kind", ""))


class DownloadProgressed(Message):
    """A download changed (progress, state); the newest replaces older ones."""

    def __init__(self, download: DownloadRecord) -> None:
        super().__init__()
        self.download = download

    @property
    def id(self) -> int:
        return self.download["id"]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DownloadProgressed) and message.id == self.id


class DownloadsListed(Message):
    """The node's full list of downloads was read."""

    def __init__(self, downloads: list[DownloadRecord]) -> None:
        super().__init__()
        self.downloads = downloads


class NodeSampled(Message):
    """A periodic sample of the node's ``status`` and ``peers``."""

    def __init__(self, status: Status, peers: list[PeerReport]) -> None:
        super().__init__()
        self.status = status
        self.peers = peers

    def can_replace(self, message: Message) -> bool:
        return False  # each sample feeds the sparkline


class SharesChanged(Message):
    """The list of this home's shares was (re)read."""

    def __init__(self, shares: list[ShareListing]) -> None:
        super().__init__()
        self.shares = shares


class CommandFailed(Message):
    """A command's worker failed (widgets forward theirs to the app)."""

    def __init__(self, name: str, error: BaseException | None) -> None:
        super().__init__()
        self.name = name
        self.error = error
