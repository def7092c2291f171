"""``p2pshare sync LINK DIR``: keep a folder equal to what a (live) link names.

Each round asks the node what the link names now (``inspect``; a live link
is resolved to its newest version), decides in ``store/syncdir.py`` which
files changed, has the node download only those (``get`` with ``paths``,
into a staging folder inside DIR), and then puts them in place and removes
what upstream deleted. ``--watch`` repeats a round every ``--interval``
seconds, with the home's node or one run for the command, until Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click

from p2pshare.cli.app import Seconds, cli, home_of
from p2pshare.cli.get import STALL_TIMEOUT, TIMEOUT, _check_final, _follow_get
from p2pshare.cli.net import _BOOTSTRAP, _LISTEN
from p2pshare.cli.passwords import PASSWORD_FILE, unlock
from p2pshare.cli.runtime import absolute
from p2pshare.cli.session import NodeStart, Session, with_node
from p2pshare.config import MAX_DEPTH, MAX_ENTRIES
from p2pshare.errors import UsageError
from p2pshare.format.links import parse_any_link, require_key

__all__ = ["sync"]


@cli.command()
@click.argument("link_text", metavar="LINK", required=False)
@click.argument("dest", metavar="DIR", type=click.Path(path_type=Path), required=False)
@click.option("--watch", is_flag=True, help="Keep following until Ctrl-C.")
@click.option(
    "--list", "as_list", is_flag=True, help="List the folders this home keeps in sync."
)
@click.option(
    "--interval",
    "interval_s",
    type=Seconds(),
    default=30.0,
    show_default=True,
    help="With --watch: seconds between two looks at the link.",
)
@_BOOTSTRAP
@_LISTEN
@TIMEOUT
@STALL_TIMEOUT
@click.option("--json", "as_json", is_flag=True, help="One JSON line per round.")
@PASSWORD_FILE
@click.pass_context
def sync(
    ctx: click.Context,
    link_text: str | None,
    dest: Path | None,
    watch: bool,
    as_list: bool,
    interval_s: float,
    bootstrap: tuple[str, ...],
    listen: tuple[str, ...],
    timeout_s: float,
    stall_s: float,
    as_json: bool,
    password_file: Path | None,
) -> None:
    """Make DIR equal to what LINK names (a live link: its newest version).

    Only files that changed since the last round are fetched; each is put
    in place atomically once verified; files upstream deleted are removed
    (only those this sync placed, only inside DIR; symlinks are never
    followed). Files you add to DIR yourself are left alone.
    """
    if as_list:
        _list(ctx, as_json)
        return
    if link_text is None or dest is None:
        raise UsageError("sync: give LINK and DIR (or --list)")
    link_text = unlock(link_text, password_file)
    link = parse_any_link(link_text)
    require_key(link)
    target = Path(absolute(dest))
    if target.exists() and not target.is_dir():
        raise UsageError(f"sync: {dest} is not a folder")
    target.mkdir(parents=True, exist_ok=True)
    options = {
        "timeout": timeout_s,
        "stall_timeout": stall_s,
        "bootstrap": bootstrap,
    }

    async def follow(s: Session) -> None:
        import anyio

        while True:
            report = await _round(s, link_text, target, options)
            await s.client.call(
                "sync.record",
                dir=str(target),
                link=link.public(),
                root=report["root"],
                version=report["version"],
            )
            if as_json:
                click.echo(json.dumps(report))
            else:
                click.echo(
                    f"version {report['version']}: {report['fetched']} fetched"
                    f" ({report['bytes']} bytes), {report['removed']} removed,"
                    f" {report['unchanged']} unchanged",
                    err=True,
                )
            if not watch:
                return
            await anyio.sleep(interval_s)

    with_node(
        home_of(ctx),
        follow,
        start=NodeStart(listen, bootstrap, "client"),
        interrupted=None,
    )


async def _round(
    s: Session, link_text: str, dest: Path, options: dict[str, Any]
) -> dict[str, Any]:
    from p2pshare.control.api import GetParams
    from p2pshare.store import syncdir

    insp = await s.client.call("inspect", link=link_text)
    snapshot = insp.get("link") or link_text
    name = insp["name"]
    if insp["kind"] == "folder":
        entries = insp["entries"]
    else:
        entries = [{"path": name, "kind": "file", "root": insp["root"]}]
    state = syncdir.load_state(dest)
    plan = syncdir.plan(dest, entries, state)
    stage = dest / syncdir.STATE_DIR / syncdir.STAGE
    staged = stage / name if insp["kind"] == "folder" else stage
    landed = stage / name  # where the get puts the share, file or folder
    fetched_bytes = 0
    if plan.fetch:
        stage.mkdir(parents=True, exist_ok=True)
        _clear(landed)  # a finished but unapplied earlier round
        params = GetParams(
            link=snapshot,
            out_dir=str(stage),
            paths=tuple(plan.fetch) if insp["kind"] == "folder" else (),
            timeout=options["timeout"],
            stall_timeout=options["stall_timeout"],
            max_entries=MAX_ENTRIES,
            max_depth=MAX_DEPTH,
            bootstrap=options["bootstrap"],
        ).to_params()
        final = await _follow_get(params, s)
        if final is None:
            raise KeyboardInterrupt
        _check_final(final)
        fetched_bytes = int((final.get("stats") or {}).get("bytes", 0))
    version = int(insp.get("version", 0))
    new = syncdir.apply(dest, staged, plan, state, version)
    syncdir.save_state(dest, new)
    _clear(landed)
    return {
        "version": version,
        "root": insp["root"],
        "fetched": len(plan.fetch),
        "bytes": fetched_bytes,
        "removed": len(plan.remove),
        "unchanged": len(plan.files) - len(plan.fetch),
    }


def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _list(ctx: click.Context, as_json: bool) -> None:
    from p2pshare.cli.offline import call_home

    rows = call_home(home_of(ctx), "syncs")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['dir']}  version {row['version']}  {row['link']}")
