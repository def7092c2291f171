"""``p2pshare get``: download a share, through the home's node or one run
for the command (``session.with_node``), or from the store (``--offline``).

With a node running for the home the node downloads, and Ctrl-C here
leaves it running (``p2pshare downloads``); without one, a node runs in
this process for as long as the download takes. Both report and exit the
same way (0 only once the file is complete at its final path).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import click

from p2pshare.cli.app import Seconds, _human, _progress, cli, home_of
from p2pshare.cli.net import _BOOTSTRAP, _LISTEN
from p2pshare.cli.passwords import PASSWORD_FILE, unlock
from p2pshare.cli.runtime import absolute
from p2pshare.cli.session import NodeStart, Session, with_node
from p2pshare.config import GET_TIMEOUT_S, MAX_DEPTH, MAX_ENTRIES, STALL_TIMEOUT_S
from p2pshare.errors import UsageError
from p2pshare.format import ShareLink
from p2pshare.format.links import LiveLink, parse_any_link, require_key
from p2pshare.format.names import display_name

__all__ = ["STALL_TIMEOUT", "TIMEOUT", "get"]

# the options of every command that fetches (get, cat, sync)
TIMEOUT = click.option(
    "--timeout",
    "timeout_s",
    type=Seconds(),
    default=GET_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for a first provider.",
)
STALL_TIMEOUT = click.option(
    "--stall-timeout",
    "stall_s",
    type=Seconds(),
    default=STALL_TIMEOUT_S,
    show_default=True,
    help="End when no provider sent verified data for this long.",
)


@cli.command()
@click.argument("link_text", metavar="LINK")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory to write into (created if missing).",
)
@click.option(
    "--offline", is_flag=True, help="Rebuild from this home's store only; no network."
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="PATH",
    help="Only this file or folder of a folder share (relative, e.g. docs/a.pdf);"
    " repeatable.",
)
@_BOOTSTRAP
@_LISTEN
@TIMEOUT
@STALL_TIMEOUT
@click.option(
    "--max-entries",
    "max_entries",
    type=click.IntRange(1, 10_000_000),
    default=MAX_ENTRIES,
    show_default=True,
    help="Refuse a folder holding more files and folders than this in all"
    " (checked before anything is written).",
)
@click.option(
    "--max-depth",
    "max_depth",
    type=click.IntRange(1, 1000),
    default=MAX_DEPTH,
    show_default=True,
    help="Refuse a folder nested deeper than this.",
)
@click.option(
    "--stats-json",
    "stats_json",
    type=click.Path(path_type=Path),
    hidden=True,
    help="Write download statistics as JSON (for scripts/bench).",
)
@PASSWORD_FILE
@click.pass_context
def get(
    ctx: click.Context,
    link_text: str,
    out_dir: Path,
    offline: bool,
    paths: tuple[str, ...],
    bootstrap: tuple[str, ...],
    listen: tuple[str, ...],
    timeout_s: float,
    stall_s: float,
    max_entries: int,
    max_depth: int,
    stats_json: Path | None,
    password_file: Path | None,
) -> None:
    """Download the file or folder of LINK into the output directory.

    Providers are the link's peer hints and whatever the DHT finds (through
    --bootstrap peers); every chunk is verified before it is written. With a
    node running for this home the node downloads (Ctrl-C here leaves it
    running; see `p2pshare downloads`). A password link asks for its
    password (or reads --password-file) before anything else.
    """
    link_text = unlock(link_text, password_file)
    any_link = parse_any_link(link_text)
    require_key(any_link)
    limits = {"entries": max_entries, "depth": max_depth}
    if offline:
        if isinstance(any_link, LiveLink):
            raise UsageError(
                "get --offline: a live link needs the network to learn its"
                " current version"
            )
        _get_offline(ctx, any_link, out_dir, paths, limits)
        return
    home = home_of(ctx)
    from p2pshare.control.api import GetParams

    params = GetParams(
        link=link_text,
        out_dir=absolute(out_dir),
        paths=paths,
        timeout=timeout_s,
        stall_timeout=stall_s,
        max_entries=max_entries,
        max_depth=max_depth,
        bootstrap=bootstrap,
    ).to_params()
    final = with_node(
        home,
        functools.partial(_follow_get, params),
        start=NodeStart(listen, bootstrap, "client"),
    )
    if final is None:  # Ctrl-C: the download goes on in the home's node
        return
    _check_final(final)
    _report_download(final)
    if stats_json is not None and final.get("stats"):
        stats_json.write_text(json.dumps(final["stats"]))


_FINAL = frozenset(
    {"download.done", "download.failed", "download.cancelled", "download.paused"}
)


async def _follow_get(params: dict[str, Any], s: Session) -> dict[str, Any] | None:
    """Start a download in the node and follow it to its end: the same
    options and exit codes with the home's node or one started for this
    ``get`` (0 only once the file is complete at its final path). Ctrl-C
    with the home's node stops following, not the download (None)."""
    from p2pshare.errors import NodeLost

    d: dict[str, Any] = {}
    final: dict[str, Any] | None = None
    try:
        async with s.client.subscribe() as events:
            d = await s.client.call("get", **params)
            if not s.ephemeral:
                click.echo(f"download {d['id']} started in the node", err=True)
            with _progress("downloading", None) as bar:
                done = 0
                async for ev in events:
                    if ev.get("id") != d["id"] or "done" not in ev:
                        continue
                    if ev.get("total"):
                        bar.total(ev["total"])
                    bar.advance(ev["done"] - done)
                    done = ev["done"]
                    if ev["kind"] in _FINAL:
                        final = dict(ev)
                        break
    except KeyboardInterrupt:
        if not d or s.ephemeral:
            raise
        click.echo(
            f"download {d['id']} goes on in the node (see `p2pshare downloads`)",
            err=True,
        )
        return None
    if final is None:  # the event stream ended: the node went away
        raise NodeLost(
            f"download {d['id']}: the node went away before it finished"
            " (its verified chunks are kept; `get` again resumes)"
        )
    return final


def _check_final(final: dict[str, Any]) -> None:
    """Raise what a download that did not end complete ended with."""
    from p2pshare.control.wire import exception_for
    from p2pshare.errors import TransferError

    ident = final["id"]
    if final["state"] == "failed":
        raise exception_for(
            final["error_code"] or "transfer", final["error"] or "failed"
        )
    if final["state"] != "done":  # paused or cancelled by another client
        hint = (
            f"; `p2pshare downloads resume {ident}` goes on"
            if final["state"] == "paused"
            else ""
        )
        raise TransferError(f"download {ident}: {final['state']} in the node{hint}")
    if not final["path"] or not Path(final["path"]).exists():
        raise TransferError(f"download {ident}: done, but its file is not there")


def _report_download(final: dict[str, Any]) -> None:
    for name, how in (final.get("routes") or {}).items():  # not plainly direct
        click.echo(f"provider {name}: {how}", err=True)
    _say_result(
        final["path"], final["done"], final["chunks_total"], final["chunks_resumed"]
    )


def _get_offline(
    ctx: click.Context,
    parsed: ShareLink,
    out_dir: Path,
    paths: tuple[str, ...],
    limits: dict[str, int],
) -> None:
    import contextlib

    from p2pshare.cli.app import _open_store
    from p2pshare.errors import P2PShareError
    from p2pshare.store.restore import get_offline
    from p2pshare.store.walk import FolderLimits, parse_selection

    store = _open_store(ctx)
    select = parse_selection(paths) if paths else None
    total = 0
    with contextlib.suppress(P2PShareError):
        total = store.catalog.get_share(parsed.root_id).tree_size or 0
    with _progress("downloading", None if select else total) as bar:
        result = get_offline(
            store,
            parsed,
            out_dir,
            progress=bar.advance,
            on_total=bar.total,
            select=select,
            limits=FolderLimits(**limits),
        )
    _say_result(
        str(result.path), result.size, result.chunks_total, result.chunks_resumed
    )


def _say_result(path: str, size: int, total: int, resumed: int) -> None:
    if resumed:
        click.echo(
            f"resumed: {resumed} of {total} chunks were already verified", err=True
        )
    click.echo(
        f"{display_name(path)}: {_human(size)},"
        f" {total - resumed} chunks fetched, {resumed} resumed",
        err=True,
    )
