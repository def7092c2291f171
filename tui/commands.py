"""Command-palette commands: every action of the UI, by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

__all__ = ["COMMANDS", "NodeCommands"]

# (title, help, app action)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Shares", "Show your shares", "show_tab('shares')"),
    ("Open link", "Paste a share link and browse it", "open_link"),
    ("Downloads", "Show downloads", "show_tab('downloads')"),
    ("Network", "Show this node and its peers", "show_tab('network')"),
    ("Seeds", "Replicas on seeds and voucher balances", "show_tab('seeds')"),
    ("Redeem voucher", "Redeem a seed's voucher code", "redeem_voucher"),
    ("Log", "Show the event log", "show_tab('log')"),
    ("Add file or folder", "Share a file or a folder", "add_share"),
    ("Copy link", "Copy the selected share's link", "copy_link"),
    ("Remove share", "Stop sharing the selected share", "remove_share"),
    ("Share details", "Details of the selected share", "share_details"),
    ("Select all", "Select everything in the opened share", "select_all"),
    ("Download selection", "Download the selected entries", "download_selected"),
    ("Pause download", "Pause the selected download", "pause_download"),
    ("Resume download", "Resume the selected download", "resume_download"),
    ("Cancel download", "Cancel the selected download", "cancel_download"),
    ("Reconnect", "Attach to the node again (start it if needed)", "reconnect"),
    ("Refresh", "Reread shares and downloads", "refresh"),
    ("Help", "Keys and what they do", "show_help"),
    ("Quit", "Quit, keeping the node or stopping it", "quit"),
)


class NodeCommands(Provider):
    """Offers :data:`COMMANDS`; each runs an app action."""

    async def discover(self) -> Hits:
        for title, help_text, action in COMMANDS:
            yield DiscoveryHit(
                title, partial(self.app.run_action, action), help=help_text
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(self.app.run_action, action),
                    help=help_text,
                )
