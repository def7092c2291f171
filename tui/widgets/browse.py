"""The Open link pane: paste a link, see what it holds, pick, download."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import platformdirs
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Input, Label, Static, Tree
from textual.widgets.tree import TreeNode

from p2pshare.errors import AccessDenied, LinkError
from p2pshare.format.links import ShareLink, parse_link
from p2pshare.format.names import display_name
from p2pshare.format.password import unwrap_key
from p2pshare.records import DownloadRecord, Inspection
from tui.backend import NodeBackend
from tui.fmt import human_size
from tui.screens.modals import PasswordModal
from tui.widgets.pane import Pane

__all__ = ["BrowsePane", "ShareTree", "TreeEntry", "default_destination"]


def default_destination() -> Path:
    """The user's download folder (XDG ``DOWNLOAD`` dir, else ~/Downloads),
    never the directory the TUI happened to start in."""
    return Path(platformdirs.user_downloads_dir())


@dataclass
class TreeEntry:
    path: str  # "" for the share itself
    name: str
    kind: str
    size: int | None
    selected: bool = False
    children: list[str] = field(default_factory=list)


class ShareTree(Tree[TreeEntry]):
    """The tree of a share; space selects, ``A`` selects all, ``d`` downloads."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_selected", "Select"),
        Binding("A", "select_all", "Select all"),
        Binding("d", "download", "Download"),
    ]

    class SelectionToggled(Message):
        def __init__(self, node: TreeNode[TreeEntry]) -> None:
            super().__init__()
            self.node = node

    def action_toggle_selected(self) -> None:
        node = self.cursor_node
        if node is not None and node.data is not None:
            self.post_message(self.SelectionToggled(node))

    def action_select_all(self) -> None:
        self.post_message(self.SelectionToggled(self.root))

    def action_download(self) -> None:
        pane = next(a for a in self.ancestors if isinstance(a, BrowsePane))
        pane.action_download_selected()


class BrowsePane(Pane):
    """Paste a link; ``inspect`` shows its tree; pick entries; ``get`` them."""

    class DownloadStarted(Message):
        """A download was started from this pane."""

        def __init__(self, download: DownloadRecord, name: str) -> None:
            super().__init__()
            self.download = download
            self.name = name

    def __init__(
        self, backend: NodeBackend, *, destination: Path | None = None
    ) -> None:
        super().__init__(id="browse-pane")
        self.backend = backend
        self.destination = destination or default_destination()
        self.link: str | None = None
        self.share: Inspection | None = None
        self.nodes: dict[str, TreeNode[TreeEntry]] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Input(placeholder="p2pshare://… paste a share link", id="link-input")
            yield Button("Open", id="link-open", variant="primary")
        yield Static(
            "Paste a link and press enter to see what it holds.", id="share-summary"
        )
        tree: ShareTree = ShareTree("(nothing opened)", id="share-tree")
        tree.show_root = True
        yield tree
        with Horizontal(classes="row"):
            yield Label("Save to", classes="row-label")
            yield Input(str(self.destination), id="dest-input")
            yield Button("All", id="select-all")
            yield Button("Download", id="download", variant="success")

    @property
    def share_tree(self) -> ShareTree:
        return self.query_one("#share-tree", ShareTree)

    # -- opening a link -----------------------------------------------------------
    @on(Input.Submitted, "#link-input")
    @on(Button.Pressed, "#link-open")
    def _open_pressed(self) -> None:
        self.open_link(self.query_one("#link-input", Input).value)

    def open_link(self, text: str) -> bool:
        """Validate ``text`` locally, then inspect it (in a worker)."""
        self.query_one("#link-input", Input).value = text.strip()
        try:
            link = parse_link(text)
        except LinkError as exc:
            self.notify(str(exc), title="Malformed link", severity="error")
            return False
        if link.wrapped is not None:
            self.ask_password(link)
            return True
        self.query_one("#share-summary", Static).update("Looking the link up…")
        self.inspect_link(text.strip())
        return True

    def ask_password(self, link: ShareLink, *, retry: bool = False) -> None:
        """A password link: ask in a dialog, unwrap the key (Argon2id, in a
        thread) before anything touches the network; a wrong password asks
        again."""

        def answered(password: str | None) -> None:
            if password is not None:
                self.unlock(link, password)

        self.app.push_screen(PasswordModal(retry=retry), answered)

    @work(group="unlock", exclusive=True, exit_on_error=False, name="unlock link")
    async def unlock(self, link: ShareLink, password: str) -> None:
        assert link.wrapped is not None
        self.query_one("#share-summary", Static).update("Checking the password…")
        try:
            key = await asyncio.to_thread(
                unwrap_key, link.wrapped, password.encode("utf-8")
            )
        except AccessDenied:
            self.query_one("#share-summary", Static).update("")
            self.ask_password(link, retry=True)
            return
        opened = ShareLink(
            root_id=link.root_id, key=key, peers=link.peers, ticket=link.ticket
        )
        self.query_one("#share-summary", Static).update("Looking the link up…")
        self.inspect_link(str(opened))

    @work(group="inspect", exclusive=True, exit_on_error=False, name="open link")
    async def inspect_link(self, link: str) -> None:
        try:
            share = await self.backend.inspect(link)
        except Exception:
            self.query_one("#share-summary", Static).update("Could not open that link.")
            raise
        self.show_share(link, share)

    def show_share(self, link: str, share: Inspection) -> None:
        self.link, self.share = link, share
        tree = self.share_tree
        tree.clear()
        self.nodes = {}
        root_entry = TreeEntry(
            "", str(share.get("name", "")), str(share.get("kind")), share.get("size")
        )
        tree.root.data = root_entry
        self.nodes[""] = tree.root
        for entry in share["entries"]:
            path = str(entry["path"])
            parent_path = path.rsplit("/", 1)[0] if "/" in path else ""
            parent = self.nodes.get(parent_path, tree.root)
            data = TreeEntry(
                path,
                str(entry.get("name") or path.rsplit("/", 1)[-1]),
                str(entry.get("kind")),
                entry.get("size"),
            )
            assert parent.data is not None
            parent.data.children.append(path)
            if data.kind == "folder":
                node = parent.add(_label(data), data=data, expand=True)
            else:
                node = parent.add_leaf(_label(data), data=data)
            self.nodes[path] = node
        tree.root.set_label(_label(root_entry))
        tree.root.expand()
        kind = "folder" if root_entry.kind == "folder" else "file"
        count = sum(1 for n in self.nodes.values() if n.data and n.data.kind == "file")
        summary = (
            f"{kind} {display_name(root_entry.name)} · {human_size(root_entry.size)}"
        )
        if kind == "folder":
            summary += f" · {count} files · space selects, A selects all"
        self.query_one("#share-summary", Static).update(Text(summary))
        if kind == "file":
            self._set_selected(tree.root, True)
        tree.focus()

    # -- selection ----------------------------------------------------------------
    @on(ShareTree.SelectionToggled)
    def _toggled(self, event: ShareTree.SelectionToggled) -> None:
        data = event.node.data
        if data is not None:
            self._set_selected(event.node, not data.selected)

    def _set_selected(self, node: TreeNode[TreeEntry], selected: bool) -> None:
        if node.data is None:
            return
        node.data.selected = selected
        node.set_label(_label(node.data))
        for child in node.children:
            self._set_selected(child, selected)
        if not selected:  # an unselected entry's folders are no longer whole
            parent = node.parent
            while parent is not None and parent.data is not None:
                if parent.data.selected:
                    parent.data.selected = False
                    parent.set_label(_label(parent.data))
                parent = parent.parent

    def select_path(self, path: str, selected: bool = True) -> None:
        self._set_selected(self.nodes[path], selected)

    def action_select_all(self) -> None:
        if self.share is not None:
            self._set_selected(self.share_tree.root, True)

    @on(Button.Pressed, "#select-all")
    def _select_all_pressed(self) -> None:
        self.action_select_all()

    def selected_paths(self) -> list[str] | None:
        """The entries to fetch: None for everything, [] for nothing."""
        root = self.share_tree.root
        if root.data is not None and root.data.selected:
            return None
        out: list[str] = []

        def walk(node: TreeNode[TreeEntry]) -> None:
            for child in node.children:
                if child.data is None:
                    continue
                if child.data.selected:
                    out.append(child.data.path)
                else:
                    walk(child)

        walk(root)
        return out

    # -- download -----------------------------------------------------------------
    @on(Button.Pressed, "#download")
    def action_download_selected(self) -> None:
        if self.link is None or self.share is None:
            self.notify("Open a link first", severity="warning")
            return
        paths = self.selected_paths()
        if paths == []:
            self.notify("Select files or folders (space), or All", severity="warning")
            return
        raw = self.query_one("#dest-input", Input).value.strip() or str(
            self.destination
        )
        out_dir = Path(os.path.expanduser(raw)).absolute()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.notify(f"{out_dir}: {exc.strerror}", severity="error")
            return
        self.start_download(
            self.link, str(out_dir), paths, str(self.share.get("name", ""))
        )

    @work(group="get", exit_on_error=False, name="download")
    async def start_download(
        self, link: str, out_dir: str, paths: list[str] | None, name: str
    ) -> None:
        download = await self.backend.get(link, out_dir, paths)
        label = name if paths is None else f"{name} ({len(paths)} picked)"
        self.post_message(self.DownloadStarted(download, label))


def _label(entry: TreeEntry) -> Text:
    mark = "[x] " if entry.selected else "[ ] "
    text = Text(mark, style="bold" if entry.selected else "dim")
    name = display_name(entry.name) if entry.name else "(share)"
    if entry.kind == "folder":
        name += "/"
    text.append(name, style="bold" if entry.kind == "folder" else "")
    text.append(f"  {human_size(entry.size)}", style="dim")
    return text
