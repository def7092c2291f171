"""The help screen (``?`` / F1)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Markdown

__all__ = ["HELP_TEXT", "HelpScreen"]

HELP_TEXT = """\
# p2pshare

End-to-end encrypted peer-to-peer sharing. This UI drives the node of
your home; the node keeps sharing after you quit unless you stop it.

| Keys | Where | Action |
| --- | --- | --- |
| `1`…`6` | anywhere | Shares, Open link, Downloads, Network, Seeds, Log |
| `v` | anywhere | redeem a voucher code (Seeds) |
| `a` | Shares | add a file or folder |
| `c` | Shares | copy the link (clipboard + window) |
| `x` | Shares | remove the share |
| `i` / `enter` | Shares | details |
| `space` | Browse tree | select / unselect |
| `A` | Browse tree | select everything |
| `d` | Browse tree | download the selection |
| `p` / `r` / `x` | Downloads | pause / resume / cancel |
| `ctrl+r` | anywhere | reconnect to the node |
| `ctrl+p` | anywhere | command palette (every action, themes) |
| `q` | anywhere | quit (keep sharing, or stop the node) |
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box help-box"):
            with VerticalScroll():
                yield Markdown(HELP_TEXT, id="help-text")
            with Horizontal(classes="modal-buttons"):
                yield Button("Close", id="help-close", variant="primary")

    @on(Button.Pressed, "#help-close")
    def _close(self) -> None:
        self.dismiss()
