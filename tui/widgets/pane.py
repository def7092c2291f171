"""The base of the panes: forwards failed workers to the app."""

from __future__ import annotations

from textual.containers import Vertical
from textual.worker import Worker, WorkerState

from tui.messages import CommandFailed

__all__ = ["Pane"]


class Pane(Vertical):
    """A tab's content. Its failed workers become :class:`CommandFailed`
    (``Worker.StateChanged`` does not bubble), which the app reports."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.post_message(CommandFailed(event.worker.name, event.worker.error))
