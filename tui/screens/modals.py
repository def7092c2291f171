"""Small modal screens. Each returns its answer through ``dismiss``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Static

__all__ = [
    "AddPathModal",
    "ConfirmModal",
    "DetailsModal",
    "LinkModal",
    "PasswordModal",
    "QuitModal",
]


class ConfirmModal(ModalScreen[bool]):
    """A yes/no question."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(False)", "Cancel")
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Label(Text(self.question), classes="modal-title")
            with Horizontal(classes="modal-buttons"):
                yield Button(self.yes, id="confirm-yes", variant="error")
                yield Button(self.no, id="confirm-no", variant="primary")

    @on(Button.Pressed, "#confirm-yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-no")
    def _no(self) -> None:
        self.dismiss(False)


class QuitModal(ModalScreen[str]):
    """Quit: keep the node sharing, stop it, or stay ("keep"/"stop"/"cancel").

    With ``ephemeral`` (the demo, whose nodes and homes go when it ends)
    there is nothing to keep: only "stop" and "cancel" are offered.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss('cancel')", "Cancel"),
        Binding("k", "keep", "Keep sharing"),
        Binding("s", "dismiss('stop')", "Stop node"),
    ]

    def __init__(self, *, ephemeral: bool = False) -> None:
        super().__init__()
        self.ephemeral = ephemeral

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            if self.ephemeral:
                yield Label(
                    "Quit the demo? Its two nodes stop and its temporary homes"
                    " are removed (s).",
                    classes="modal-title",
                )
            else:
                yield Label(
                    "Quit p2pshare. Keep sharing in the background (k),"
                    " or stop the node (s)?",
                    classes="modal-title",
                )
            with Horizontal(classes="modal-buttons"):
                if not self.ephemeral:
                    yield Button("Keep sharing", id="quit-keep", variant="primary")
                stop = "Quit demo" if self.ephemeral else "Stop node"
                yield Button(stop, id="quit-stop", variant="error")
                yield Button("Cancel", id="quit-cancel")

    def action_keep(self) -> None:
        if not self.ephemeral:
            self.dismiss("keep")

    @on(Button.Pressed, "#quit-keep")
    def _keep(self) -> None:
        self.dismiss("keep")

    @on(Button.Pressed, "#quit-stop")
    def _stop(self) -> None:
        self.dismiss("stop")

    @on(Button.Pressed, "#quit-cancel")
    def _cancel(self) -> None:
        self.dismiss("cancel")


class LinkModal(ModalScreen[None]):
    """Shows a share link (also copied to the clipboard)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, link: str) -> None:
        super().__init__()
        self.link = link

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Label("Share link (copied to the clipboard)", classes="modal-title")
            yield Input(self.link, id="link-value")
            with Horizontal(classes="modal-buttons"):
                yield Button("Close", id="link-close", variant="primary")

    @on(Button.Pressed, "#link-close")
    def _close(self) -> None:
        self.dismiss()


class PasswordModal(ModalScreen[str | None]):
    """Asks for a password link's password (never shown, never kept)."""

    AUTO_FOCUS = "#password-value"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, *, retry: bool = False) -> None:
        super().__init__()
        self.retry = retry

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            title = "Wrong password; try again" if self.retry else "Password"
            yield Label(title, classes="modal-title")
            yield Label("This link is protected by a password.")
            yield Input(password=True, id="password-value")
            with Horizontal(classes="modal-buttons"):
                yield Button("Open", id="password-ok", variant="primary")
                yield Button("Cancel", id="password-cancel")

    @on(Input.Submitted, "#password-value")
    @on(Button.Pressed, "#password-ok")
    def _ok(self) -> None:
        self.dismiss(self.query_one("#password-value", Input).value)

    @on(Button.Pressed, "#password-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class DetailsModal(ModalScreen[None]):
    """Key/value details of a share or a download."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, title: str, fields: dict[str, Any]) -> None:
        super().__init__()
        self.title_text = title
        self.fields = fields

    def compose(self) -> ComposeResult:
        body = Text()
        width = max((len(k) for k in self.fields), default=0)
        for key, value in self.fields.items():
            body.append(f"{key:>{width}}  ", style="bold")
            body.append(f"{'-' if value is None else value}\n")
        with Vertical(classes="modal-box"):
            yield Label(Text(self.title_text), classes="modal-title")
            yield Static(body, id="details-body")
            with Horizontal(classes="modal-buttons"):
                yield Button("Close", id="details-close", variant="primary")

    @on(Button.Pressed, "#details-close")
    def _close(self) -> None:
        self.dismiss()


class AddPathModal(ModalScreen[str | None]):
    """Pick a file or a folder to add: a directory tree and a path input."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel")
    ]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self.start = start

    def on_mount(self) -> None:
        # typing a path is the quick way; the tree is for browsing
        self.query_one("#picker-path", Input).focus()

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box picker-box"):
            yield Label("Add a file or folder", classes="modal-title")
            yield DirectoryTree(self.start, id="picker-tree")
            yield Input(
                placeholder="/absolute/path/to/file-or-folder", id="picker-path"
            )
            with Horizontal(classes="modal-buttons"):
                yield Button("Add", id="picker-add", variant="primary")
                yield Button("Cancel", id="picker-cancel")

    @on(DirectoryTree.FileSelected)
    @on(DirectoryTree.DirectorySelected)
    def _picked(
        self, event: DirectoryTree.FileSelected | DirectoryTree.DirectorySelected
    ) -> None:
        self.query_one("#picker-path", Input).value = str(event.path)

    @on(Input.Submitted, "#picker-path")
    @on(Button.Pressed, "#picker-add")
    def _add(self) -> None:
        raw = self.query_one("#picker-path", Input).value.strip()
        if not raw:
            self.notify("Pick a file or folder first", severity="warning")
            return
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = self.start / path
        if not path.exists():
            self.notify(f"{path}: no such file or folder", severity="error")
            return
        self.dismiss(str(path.absolute()))

    @on(Button.Pressed, "#picker-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
