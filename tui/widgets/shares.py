"""The Shares pane: this home's shares and what can be done with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from p2pshare.format.names import display_name
from p2pshare.records import ShareListing, SyncRecord, health_line
from tui.backend import NodeBackend
from tui.fmt import human_size, human_time, short_id
from tui.screens.modals import AddPathModal, ConfirmModal, DetailsModal, LinkModal
from tui.widgets.pane import Pane

__all__ = ["SharesPane"]

UNKNOWN = "…"


class SharesPane(Pane):
    """A table of shares (from ``ls``) with add / link / remove / details."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_share", "Add"),
        Binding("c", "copy_link", "Copy link"),
        Binding("x,delete", "remove_share", "Remove"),
        Binding("i", "share_details", "Details"),
        Binding("h", "share_health", "Seed health"),
    ]

    def __init__(
        self, backend: NodeBackend, *, picker_start: Path | None = None
    ) -> None:
        super().__init__(id="shares-pane")
        self.backend = backend
        self.picker_start = picker_start or Path.home()
        self.shares: dict[str, ShareListing] = {}
        self.providers: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="shares-table", cursor_type="row")
        table.add_column("Name", key="name")
        table.add_column("Size", key="size")
        table.add_column("Mode", key="mode")
        table.add_column("Providers", key="providers")
        table.add_column("Replicas", key="replicas")
        table.add_column("Added", key="added")
        yield table
        yield Static(
            "No shares yet: press a to add a file or folder.", id="shares-hint"
        )
        synced: DataTable[Any] = DataTable(id="syncs-table", cursor_type="none")
        synced.add_column("Synced folder", key="dir")
        synced.add_column("Version", key="version")
        synced.add_column("Link", key="link")
        synced.display = False  # shown once there is one
        yield synced

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#shares-table", DataTable)

    def selected_root(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return None if row_key.value is None else str(row_key.value)

    # -- data ---------------------------------------------------------------------
    @work(group="shares", exclusive=True, exit_on_error=False, name="list shares")
    async def refresh_shares(self) -> None:
        self.show_shares(await self.backend.shares())
        self.show_syncs(await self.backend.syncs())

    def show_syncs(self, syncs: list[SyncRecord]) -> None:
        """The folders ``p2pshare sync`` keeps, with the version they hold."""
        table = self.query_one("#syncs-table", DataTable)
        table.clear()
        for row in syncs:
            table.add_row(str(row["dir"]), f"v{row['version']}", str(row["link"])[:60])
        table.display = bool(syncs)

    def show_shares(self, shares: list[ShareListing]) -> None:
        table = self.table
        keep = self.selected_root()
        table.clear()
        self.shares = {str(s["root"]): s for s in shares}
        for root, share in self.shares.items():
            name = display_name(str(share.get("name") or root))
            if share.get("error"):
                name = f"{name} (!)"
            if share.get("live"):
                name = f"{name} (live v{share.get('version', '?')})"
            table.add_row(
                name,
                human_size(share.get("size")),
                str(share.get("mode") or "-"),
                self._providers_text(root),
                str(share.get("replicas", 0)),
                human_time(share.get("added_at")),
                key=root,
            )
        if keep in self.shares:
            table.move_cursor(row=table.get_row_index(keep))
        self.query_one("#shares-hint").display = not self.shares
        for root in self.shares:
            if root not in self.providers:
                self.count_providers(root)

    def _providers_text(self, root: str) -> str:
        n = self.providers.get(root)
        return UNKNOWN if n is None else str(n)

    @work(group="providers", exit_on_error=False, name="count providers")
    async def count_providers(self, root: str) -> None:
        n = await self.backend.providers(root)
        self.providers[root] = n
        if root in self.shares:
            self.table.update_cell(root, "providers", str(n))

    # -- actions ------------------------------------------------------------------
    def action_add_share(self) -> None:
        self.app.push_screen(AddPathModal(self.picker_start), self._picked)

    def _picked(self, path: str | None) -> None:
        if path:
            self.add_paths([path])

    @work(group="shares-edit", exit_on_error=False, name="add share")
    async def add_paths(self, paths: list[str]) -> None:
        added = await self.backend.add(paths, copy=False)
        names = ", ".join(Path(p).name for p in paths)
        self.notify(f"Added {names}", title="Shares")
        del added
        self.refresh_shares()

    def action_share_health(self) -> None:
        root = self.selected_root()
        if root is None:
            self.notify("No share selected", severity="warning")
            return
        self.notify("Asking the seeds for storage proofs…", title="Seed health")
        self.check_health(root)

    @work(group="shares-health", exclusive=True, exit_on_error=False, name="check")
    async def check_health(self, root: str) -> None:
        report = await self.backend.check(root)
        replicas = [p for p in report["providers"] if p.get("replica", True)]
        failed = [p for p in replicas if not p["ok"]]
        lines = [f"{len(replicas) - len(failed)} of {len(replicas)} seeds hold it"]
        if "erasure" in report:
            lines.append(health_line(report["erasure"]))
        lines += [f"{short_id(p['seed'])}: {p['detail']}" for p in failed]
        self.notify(
            "\n".join(lines),
            title="Seed health",
            severity="error" if failed else "information",
        )

    def action_copy_link(self) -> None:
        root = self.selected_root()
        if root is None:
            self.notify("No share selected", severity="warning")
            return
        self.copy_link(root)

    @work(group="shares-edit", exit_on_error=False, name="copy link")
    async def copy_link(self, root: str) -> None:
        link = await self.backend.link(root)
        self.app.copy_to_clipboard(link)
        await self.app.push_screen(LinkModal(link))

    def action_remove_share(self) -> None:
        root = self.selected_root()
        if root is None:
            self.notify("No share selected", severity="warning")
            return
        share = self.shares.get(root)
        name = display_name((share["name"] if share else None) or root)
        question = f"Remove {name!s} from this node? The files on disk stay."

        def answered(yes: bool | None) -> None:
            if yes:
                self.remove_share(root)

        self.app.push_screen(ConfirmModal(question, yes="Remove"), answered)

    @work(group="shares-edit", exit_on_error=False, name="remove share")
    async def remove_share(self, root: str) -> None:
        await self.backend.remove(root)
        self.notify("Share removed", title="Shares")
        self.refresh_shares()

    def action_share_details(self) -> None:
        root = self.selected_root()
        if root is None:
            self.notify("No share selected", severity="warning")
            return
        share = self.shares.get(root)
        if share is None:
            self.notify("No share selected", severity="warning")
            return
        fields = {
            "name": share.get("name"),
            "root": root,
            "kind": share.get("kind"),
            "size": human_size(share.get("size")),
            "mode": share.get("mode"),
            "providers": self._providers_text(root),
            "replicas on seeds": str(share.get("replicas", 0)),
            "erasure coded": share.get("erasure"),
            "links": share.get("links"),
            "added": human_time(share.get("added_at")),
            "error": share.get("error"),
        }
        self.app.push_screen(DetailsModal(f"Share {share.get('name', '')}", fields))

    @on(DataTable.RowSelected, "#shares-table")
    def _row_selected(self) -> None:
        self.action_share_details()
