"""``p2pshare tui``: the terminal UI (loaded lazily by the core CLI)."""

from __future__ import annotations

import sys

import click

from p2pshare.config import resolve_home

__all__ = ["tui"]


@click.command("tui")
@click.option(
    "--listen",
    "listen",
    multiple=True,
    metavar="MADDR",
    help="Listen address if a node must be started (repeatable).",
)
@click.option(
    "--bootstrap",
    "bootstrap",
    multiple=True,
    metavar="MADDR",
    help="Bootstrap peer if a node must be started (repeatable).",
)
@click.option(
    "--link",
    "link",
    metavar="LINK",
    default=None,
    help="Open the browse screen on this share link at start.",
)
@click.pass_context
def tui(
    ctx: click.Context,
    listen: tuple[str, ...],
    bootstrap: tuple[str, ...],
    link: str | None,
) -> None:
    """Open the terminal UI over this home's node (started if none runs)."""
    from tui.app import run_tui

    code = run_tui(
        resolve_home(ctx.obj["home"]), link=link, listen=listen, bootstrap=bootstrap
    )
    # sys.exit, not ctx.exit: the core CLI runs click with standalone_mode off
    sys.exit(code)
