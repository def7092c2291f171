"""The Network pane: this node, its peers, and a rate sparkline."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Label, Sparkline, Static

from p2pshare.records import PeerReport, Status
from tui.fmt import human_rate, human_size, short_id
from tui.widgets.pane import Pane

__all__ = ["HISTORY", "NetworkPane"]

HISTORY = 60  # samples kept for the sparklines


class NetworkPane(Pane):
    def __init__(self) -> None:
        super().__init__(id="network-pane")
        self.down: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)
        self.up: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Static("Not connected to a node yet.", id="node-info")
        with Horizontal(classes="spark-row"):
            yield Label("down", classes="spark-label")
            yield Sparkline(list(self.down), id="down-spark")
            yield Label("-", id="down-rate", classes="spark-rate")
        with Horizontal(classes="spark-row"):
            yield Label("up", classes="spark-label")
            yield Sparkline(list(self.up), id="up-spark")
            yield Label("-", id="up-rate", classes="spark-rate")
        table: DataTable[Any] = DataTable(id="peers-table", cursor_type="row")
        for key, title in (
            ("peer", "Peer"),
            ("down", "Down"),
            ("up", "Up"),
            ("received", "Received"),
            ("sent", "Sent"),
            ("addrs", "Addresses"),
        ):
            table.add_column(title, key=key)
        yield table

    def show_status(self, status: Status) -> None:
        addrs = status.get("addrs") or []
        info = Text()
        info.append("peer id  ", style="bold")
        info.append(f"{status.get('peer_id', '?')}\n")
        info.append("DHT      ", style="bold")
        info.append(
            f"{status.get('dht_routing_table', '?')} in routing table · "
            f"{status.get('connected_peers', 0)} connected · "
            f"{status.get('shares', 0)} shares\n"
        )
        lan = status.get("lan")
        if isinstance(lan, dict):  # nodes before LAN discovery do not say
            info.append("LAN      ", style="bold")
            if lan.get("mdns"):
                info.append(f"mDNS on · {lan.get('peers', 0)} peers found\n")
            else:
                info.append("mDNS off\n")
        reach = status.get("reachability")
        if isinstance(reach, dict):
            info.append("reach    ", style="bold")
            info.append(f"{reach.get('state', 'unknown')} · {reach.get('why', '')}\n")
        info.append("listen   ", style="bold")
        info.append("\n         ".join(str(a) for a in addrs) or "-")
        self.query_one("#node-info", Static).update(info)

    def sample(self, status: Status) -> None:
        self.push_rates(
            [float(status.get("download_rate") or 0.0)],
            [float(status.get("upload_rate") or 0.0)],
        )

    def push_rates(self, down: Iterable[float], up: Iterable[float]) -> None:
        self.down.extend(down)
        self.up.extend(up)
        self.query_one("#down-spark", Sparkline).data = list(self.down)
        self.query_one("#up-spark", Sparkline).data = list(self.up)
        self.query_one("#down-rate", Label).update(human_rate(self.down[-1]))
        self.query_one("#up-rate", Label).update(human_rate(self.up[-1]))

    def show_peers(self, peers: list[PeerReport]) -> None:
        table = self.query_one("#peers-table", DataTable)
        table.clear()
        for p in sorted(peers, key=lambda p: str(p.get("peer_id"))):
            addrs = p.get("addrs") or []
            table.add_row(
                short_id(str(p.get("peer_id", "?")), 16),
                human_rate(p.get("download_rate", 0.0)),
                human_rate(p.get("upload_rate", 0.0)),
                human_size(p.get("received", 0)),
                human_size(p.get("sent", 0)),
                _where(p.get("path"), addrs),
                key=str(p.get("peer_id")),
            )


def _where(path: object, addrs: list[Any]) -> str:
    """The address column: a relayed peer says so (``relayed via …``),
    a direct one shows its first addresses."""
    if isinstance(path, str) and path.startswith("relayed"):
        return path
    return ", ".join(str(a) for a in addrs[:2]) or "-"
