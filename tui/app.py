"""The p2pshare Textual app: composes the panes and routes messages.

Business logic lives in the panes (``tui/widgets``) and the node; this
module connects to the node (attach or start), runs the one events worker
(``node-events``) that turns the node's event stream into messages, routes
those messages to the panes, and turns any failed worker into a
notification.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, RichLog, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from p2pshare.config import Home
from p2pshare.errors import P2PShareError
from p2pshare.records import DownloadEvent
from tui.backend import ControlBackend, NodeBackend
from tui.commands import NodeCommands
from tui.errors import describe_error
from tui.fmt import human_rate, short_id
from tui.messages import (
    CommandFailed,
    DownloadProgressed,
    NodeConnected,
    NodeEventReceived,
    NodeLost,
    NodeSampled,
)
from tui.screens.help import HelpScreen
from tui.screens.modals import QuitModal
from tui.widgets.browse import BrowsePane
from tui.widgets.downloads import DownloadsPane
from tui.widgets.network import NetworkPane
from tui.widgets.seeds import SeedsPane
from tui.widgets.shares import SharesPane

__all__ = ["P2PShareApp", "run_tui"]

TABS = ("shares", "browse", "downloads", "network", "seeds", "log")
FOCUS_OF_TAB = {
    "shares": "#shares-table",
    "browse": "#link-input",
    "downloads": "#downloads-table",
    "network": "#peers-table",
    "seeds": "#vouchers-table",  # not the code box: it would eat the tab keys
    "log": "#event-log",
}
QUIET_WORKERS = frozenset({"sample"})


class P2PShareApp(App[int]):
    """The terminal UI over one node (any :class:`NodeBackend`)."""

    CSS_PATH = "app.tcss"
    TITLE = "p2pshare"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {NodeCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show_tab('shares')", "Shares", show=False),
        Binding("2", "show_tab('browse')", "Open link", show=False),
        Binding("3", "show_tab('downloads')", "Downloads", show=False),
        Binding("4", "show_tab('network')", "Network", show=False),
        Binding("5", "show_tab('seeds')", "Seeds", show=False),
        Binding("6", "show_tab('log')", "Log", show=False),
        Binding("v", "redeem_voucher", "Voucher", show=False),
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "show_help", "Help"),
        Binding("ctrl+r", "reconnect", "Reconnect", show=False),
    ]

    def __init__(
        self,
        backend: NodeBackend,
        *,
        link: str | None = None,
        notice: str | None = None,
        poll_interval: float | None = 1.0,
        picker_start: Path | None = None,
        destination: Path | None = None,
        ephemeral: bool = False,
    ) -> None:
        super().__init__()
        self.ephemeral = ephemeral  # the demo: nothing outlives the app
        self.backend = backend
        self.initial_link = link
        self.notice = notice
        self.poll_interval = poll_interval
        self.picker_start = picker_start
        self.destination = destination
        self.connected = False
        self.node_line = "connecting…"
        self.log_lines: list[str] = []  # what the Log pane shows, as text

    # -- layout -------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="shares", id="tabs"):
            with TabPane("1 Shares", id="shares"):
                yield SharesPane(self.backend, picker_start=self.picker_start)
            with TabPane("2 Open link", id="browse"):
                yield BrowsePane(self.backend, destination=self.destination)
            with TabPane("3 Downloads", id="downloads"):
                yield DownloadsPane(self.backend)
            with TabPane("4 Network", id="network"):
                yield NetworkPane()
            with TabPane("5 Seeds", id="seeds"):
                yield SeedsPane(self.backend)
            with TabPane("6 Log", id="log"):
                yield RichLog(id="event-log", wrap=True, markup=False)
        yield Static("connecting to the node…", id="status-bar")
        yield Footer()

    @property
    def shares(self) -> SharesPane:
        return self.query_one(SharesPane)

    @property
    def browse(self) -> BrowsePane:
        return self.query_one(BrowsePane)

    @property
    def downloads(self) -> DownloadsPane:
        return self.query_one(DownloadsPane)

    @property
    def network(self) -> NetworkPane:
        return self.query_one(NetworkPane)

    @property
    def seeds(self) -> SeedsPane:
        return self.query_one(SeedsPane)

    def on_mount(self) -> None:
        self.sub_title = self.backend.description
        self.query_one("#shares-table").focus()
        if self.notice:
            self.notify(self.notice, title="p2pshare")
            self.log_line("notice", self.notice)
        self.connect_node()
        if self.poll_interval:
            self.set_interval(self.poll_interval, self.sample_node)

    # -- node connection ----------------------------------------------------------
    @work(group="connect", exclusive=True, exit_on_error=False, name="connect")
    async def connect_node(self) -> None:
        self.set_status(f"connecting to the node of {self.backend.description}…")
        try:
            started = await self.backend.connect()
            status = await self.backend.status()
        except P2PShareError:
            self.set_status("not connected to a node · ctrl+r retries")
            raise
        self.post_message(NodeConnected(status, started=started))

    @work(group="node-events", exclusive=True, exit_on_error=False, name="node-events")
    async def watch_events(self) -> None:
        reason = "the node closed the connection"
        try:
            async with self.backend.events() as events:
                async for event in events:
                    kind = str(event.get("kind", ""))
                    if kind.startswith("download."):
                        # checked as a DownloadEvent by the control client
                        self.post_message(
                            DownloadProgressed(cast(DownloadEvent, event))
                        )
                    if kind != "download.progress":
                        self.post_message(NodeEventReceived(event))
        except P2PShareError as exc:
            reason = describe_error(exc)
        self.post_message(NodeLost(reason))

    @work(group="sample", exclusive=True, exit_on_error=False, name="sample")
    async def sample_node(self) -> None:
        if not self.connected:
            return
        try:
            status = await self.backend.status()
            peers = await self.backend.peers()
        except P2PShareError:
            return  # a lost node is reported by the events worker
        self.post_message(NodeSampled(status, peers))

    def set_status(self, line: str, rates: str = "") -> None:
        self.node_line = line
        text = f"{line} · {rates}" if rates else line
        self.query_one("#status-bar", Static).update(Text(text))

    def log_line(self, level: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        style = {"error": "bold red", "warning": "yellow", "event": "cyan"}.get(
            level, ""
        )
        line = Text(f"{stamp} ")
        line.append(f"{level:<7} ", style=style)
        line.append(text)
        self.log_lines.append(line.plain)
        self.query_one("#event-log", RichLog).write(line)

    # -- routed messages ----------------------------------------------------------
    def on_node_connected(self, message: NodeConnected) -> None:
        self.connected = True
        peer = short_id(str(message.status.get("peer_id", "?")), 16)
        verb = "started a background node" if message.started else "attached to node"
        line = f"● {verb} {peer}"
        self.set_status(line)
        self.log_line("notice", f"{verb} {message.status.get('peer_id')}")
        if message.started:
            self.notify(f"Started a background node for {self.backend.description}")
        self.watch_events()
        self.shares.refresh_shares()
        self.downloads.refresh_downloads()
        self.network.show_status(message.status)
        self.seeds.show_status(message.status)
        self.seeds.refresh_vouchers()
        if self.initial_link:
            link, self.initial_link = self.initial_link, None
            self.action_show_tab("browse")
            self.browse.open_link(link)

    def on_node_lost(self, message: NodeLost) -> None:
        if not self.connected:
            return
        self.connected = False
        self.set_status(f"✖ node lost: {message.reason} · ctrl+r reconnects")
        self.notify(f"Lost the node: {message.reason}", severity="warning")
        self.log_line("warning", f"node lost: {message.reason}")

    def on_download_progressed(self, message: DownloadProgressed) -> None:
        self.downloads.upsert(message.download)

    def on_node_event_received(self, message: NodeEventReceived) -> None:
        event = message.event
        kind = message.kind
        subject = event.get("root") or ""
        if kind.startswith("download."):
            subject = f"#{event.get('id')} {self.downloads.name_of(int(event['id']))}"
        self.log_line("event", f"{kind} {subject}")
        if kind.startswith("share."):
            self.shares.refresh_shares()
        elif kind == "download.done":
            self.notify(f"Download {subject} finished", title="Downloads")
            self.shares.refresh_shares()  # a finished download is served too
        elif kind == "download.failed":
            why = event.get("error") or event.get("error_code") or "failed"
            self.notify(f"Download {subject}: {why}", severity="error")

    def on_node_sampled(self, message: NodeSampled) -> None:
        if not self.query(NetworkPane):  # a sample that lands while the app quits
            return
        status = message.status
        self.network.show_status(status)
        self.network.sample(status)
        self.network.show_peers(message.peers)
        self.seeds.show_status(status)
        rates = (
            f"↓ {human_rate(status.get('download_rate'))} "
            f"↑ {human_rate(status.get('upload_rate'))} · "
            f"{status.get('connected_peers', 0)} peers"
        )
        self.set_status(self.node_line, rates)

    @on(BrowsePane.DownloadStarted)
    def _download_started(self, message: BrowsePane.DownloadStarted) -> None:
        did = int(message.download["id"])
        self.downloads.upsert(message.download, message.name)
        self.log_line("notice", f"download #{did} {message.name} started")
        self.action_show_tab("downloads")
        self.downloads.select(did)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.post_message(CommandFailed(event.worker.name, event.worker.error))

    def on_command_failed(self, message: CommandFailed) -> None:
        """The one place a failed command becomes a notification."""
        if message.name in QUIET_WORKERS:
            return
        error = message.error
        text = describe_error(error) if error is not None else "failed"
        self.notify(text, title=message.name.capitalize(), severity="error")
        self.log_line("error", f"{message.name}: {text}")

    # -- actions (also the command palette's) -------------------------------------
    def action_show_tab(self, tab: str) -> None:
        if tab not in TABS:
            return
        self.query_one("#tabs", TabbedContent).active = tab
        self.query_one(FOCUS_OF_TAB[tab]).focus()

    def action_open_link(self) -> None:
        self.action_show_tab("browse")

    def action_show_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_add_share(self) -> None:
        self.action_show_tab("shares")
        self.shares.action_add_share()

    def action_copy_link(self) -> None:
        self.action_show_tab("shares")
        self.shares.action_copy_link()

    def action_remove_share(self) -> None:
        self.action_show_tab("shares")
        self.shares.action_remove_share()

    def action_share_details(self) -> None:
        self.action_show_tab("shares")
        self.shares.action_share_details()

    def action_select_all(self) -> None:
        self.action_show_tab("browse")
        self.browse.action_select_all()

    def action_download_selected(self) -> None:
        self.browse.action_download_selected()

    def action_pause_download(self) -> None:
        self.action_show_tab("downloads")
        self.downloads.action_pause_download()

    def action_resume_download(self) -> None:
        self.action_show_tab("downloads")
        self.downloads.action_resume_download()

    def action_cancel_download(self) -> None:
        self.action_show_tab("downloads")
        self.downloads.action_cancel_download()

    def action_redeem_voucher(self) -> None:
        self.action_show_tab("seeds")
        self.query_one("#voucher-input").focus()

    def action_reconnect(self) -> None:
        self.connect_node()

    def action_refresh(self) -> None:
        if self.connected:
            self.shares.refresh_shares()
            self.downloads.refresh_downloads()
            self.seeds.refresh_vouchers()

    async def action_quit(self) -> None:
        if not self.connected:
            self.exit(0)
            return
        self.push_screen(QuitModal(ephemeral=self.ephemeral), self._quit_answered)

    def _quit_answered(self, answer: str | None) -> None:
        if answer == "keep":
            self.exit(0)
        elif answer == "stop":
            self.stop_node_and_exit()

    @work(group="quit", exclusive=True, exit_on_error=False, name="stop node")
    async def stop_node_and_exit(self) -> None:
        self.set_status("stopping the node…")
        self.connected = False
        await self.backend.stop()
        self.exit(0)


def run_tui(
    home: Home,
    *,
    link: str | None = None,
    notice: str | None = None,
    listen: Sequence[str] = (),
    bootstrap: Sequence[str] = (),
    destination: Path | None = None,
    ephemeral: bool = False,
) -> int:
    """Run the TUI over the node of ``home`` (attached, or started);
    ``destination`` is the default download folder; ``ephemeral``: the
    node ends with the app (the demo), so quitting offers no "keep"."""
    backend = ControlBackend(home, listen=listen, bootstrap=bootstrap)
    app = P2PShareApp(
        backend,
        link=link,
        notice=notice,
        destination=destination,
        ephemeral=ephemeral,
    )
    result = app.run()
    return 0 if result is None else int(result)
