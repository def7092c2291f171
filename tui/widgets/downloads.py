"""The Downloads pane: live progress of the node's downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.progress_bar import ProgressBar
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from p2pshare.format.names import display_name
from p2pshare.records import DownloadRecord
from tui.backend import NodeBackend
from tui.fmt import human_eta, human_rate, human_size, short_id
from tui.widgets.pane import Pane

__all__ = ["DownloadsPane", "percent_of"]

BAR_WIDTH = 12
COLUMNS = ("id", "name", "bar", "pct", "state", "rate", "eta", "peers", "size")


def percent_of(d: DownloadRecord) -> int:
    if d.get("state") == "done":
        return 100
    total, done = d.get("total") or 0, d.get("done") or 0
    return 0 if not total else min(100, int(done * 100 // total))


class DownloadsPane(Pane):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause_download", "Pause"),
        Binding("r", "resume_download", "Resume"),
        Binding("x", "cancel_download", "Cancel"),
    ]

    def __init__(self, backend: NodeBackend) -> None:
        super().__init__(id="downloads-pane")
        self.backend = backend
        self.downloads: dict[int, DownloadRecord] = {}
        self.names: dict[int, str] = {}

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="downloads-table", cursor_type="row")
        for key, title in zip(
            COLUMNS,
            ("#", "Name", "Progress", "%", "State", "Rate", "ETA", "Peers", "Size"),
            strict=True,
        ):
            table.add_column(title, key=key)
        yield table
        yield Static("No downloads yet: open a link to get one.", id="download-path")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#downloads-table", DataTable)

    @work(group="downloads", exclusive=True, exit_on_error=False, name="list downloads")
    async def refresh_downloads(self) -> None:
        for d in await self.backend.downloads():
            self.upsert(d)

    def upsert(self, d: DownloadRecord, name: str | None = None) -> None:
        did = int(d["id"])
        if name:
            self.names[did] = name
        self.downloads[did] = d
        cells = self._cells(did, d)
        table = self.table
        key = str(did)
        if key in table.rows:
            for col, value in zip(COLUMNS, cells, strict=True):
                # widen the column when a value outgrows it ("512.0 KiB/s"
                # arrives after the row was added with "-"): never cut units
                table.update_cell(key, col, value, update_width=True)
        else:
            table.add_row(*cells, key=key)
        self._show_path()

    def name_of(self, did: int) -> str:
        if did in self.names:
            return self.names[did]
        d = self.downloads.get(did)
        if d is None:
            return str(did)
        if d.get("name"):
            return display_name(str(d["name"]))
        if d.get("path"):
            return display_name(Path(str(d["path"])).name)
        return short_id(d.get("root"))

    def _cells(self, did: int, d: DownloadRecord) -> tuple[Any, ...]:
        pct = percent_of(d)
        total = d.get("total") or 0
        state = str(d.get("state", "?"))
        active = state == "active"
        bar = ProgressBar(total=100, completed=pct, width=BAR_WIDTH)
        return (
            str(did),
            Text(self.name_of(did), overflow="ellipsis", no_wrap=True),
            bar,
            f"{pct:3d} %",
            Text(state, style=_STATE_STYLE.get(state, "")),
            human_rate(d.get("rate")) if active else "-",
            human_eta(d.get("eta")) if active else "-",
            str(d.get("providers"))
            if active and d.get("providers") is not None
            else "-",
            f"{human_size(d.get('done') or 0)}/{human_size(total)}" if total else "?",
        )

    def selected_id(self) -> int | None:
        table = self.table
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return None if row_key.value is None else int(row_key.value)

    def select(self, did: int) -> None:
        if str(did) in self.table.rows:
            self.table.move_cursor(row=self.table.get_row_index(str(did)))

    @on(DataTable.RowHighlighted, "#downloads-table")
    def _show_path(self) -> None:
        did = self.selected_id()
        if did is None:
            return
        d = self.downloads[did]
        where = d.get("path") or d.get("out_dir") or "?"
        line = f"#{did} → {where}"
        if d.get("error"):
            line += f"  error: {d['error']}"
        self.query_one("#download-path", Static).update(Text(line))

    def _selected_or_warn(self) -> int | None:
        did = self.selected_id()
        if did is None:
            self.notify("No download selected", severity="warning")
        return did

    def action_pause_download(self) -> None:
        if (did := self._selected_or_warn()) is not None:
            self.control(did, "pause")

    def action_resume_download(self) -> None:
        if (did := self._selected_or_warn()) is not None:
            self.control(did, "resume")

    def action_cancel_download(self) -> None:
        if (did := self._selected_or_warn()) is not None:
            self.control(did, "cancel")

    @work(group="download-control", exit_on_error=False, name="download control")
    async def control(self, did: int, verb: str) -> None:
        call = {
            "pause": self.backend.pause,
            "resume": self.backend.resume,
            "cancel": self.backend.cancel,
        }[verb]
        self.upsert(await call(did))


_STATE_STYLE = {
    "active": "bold",
    "done": "bold green",
    "failed": "bold red",
    "cancelled": "dim",
    "paused": "italic",
}
