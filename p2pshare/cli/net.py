"""Network and node commands: share, node, stop, status, peers, downloads
(``get`` is in ``get.py``).

With a node running for the home (``node --background`` or any foreground
node), ``share`` and ``get`` go through it: ``share`` returns at once
because the node serves, and ``get`` follows the node's progress and can be
interrupted while the download goes on. Without one, they run a node in
the foreground for as long as they need it. ``--json`` output shapes are
documented in ``docs/control.md``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from p2pshare.cli.app import Duration, _human, cli, home_of
from p2pshare.cli.passwords import (
    PASSWORD,
    PASSWORD_FILE,
    STRENGTH,
    link_password,
    lock_links,
)
from p2pshare.cli.runtime import NO_NODE, absolute, call_node, run_node
from p2pshare.cli.session import DEFAULT_LISTEN, NodeStart, Session, with_node
from p2pshare.errors import NodeNotRunning, P2PShareError, UsageError
from p2pshare.format.names import display_name

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = ["LIVE", "downloads", "node", "peers", "share", "status", "stop"]

log = logging.getLogger("p2pshare")


_LISTEN = click.option(
    "--listen",
    "listen",
    multiple=True,
    metavar="MADDR",
    help="Listen address (repeatable; default /ip4/0.0.0.0/tcp/0).",
)
_BOOTSTRAP = click.option(
    "--bootstrap",
    "bootstrap",
    multiple=True,
    metavar="MADDR",
    help="Bootstrap peer multiaddr with /p2p/<id> (repeatable).",
)
_RATE = click.option(
    "--max-upload-rate",
    "upload",
    metavar="RATE",
    help="Cap the upload rate, e.g. 5M (bytes per second).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
# share/add/repair: replicas on seeds (p2pshare/cli/seeds.py)
REPLICAS = click.option(
    "--replicas",
    type=click.IntRange(0, 16),
    default=None,
    help="Keep N replicas on seed nodes (default: `replicas` in config.toml, else 0).",
)
EXPIRES = click.option(
    "--expires",
    type=Duration(),
    default=None,
    metavar="DURATION",
    help="The link stops working after this long, e.g. 7d (the owner's node"
    " and its seeds refuse it; `p2pshare revoke LINK` ends it sooner).",
)
ERASURE = click.option(
    "--erasure",
    metavar="K/N",
    default=None,
    help="Keep the share erasure coded on N seed nodes, any K of which rebuild"
    " it (N/K the storage of one copy; default: `erasure` in config.toml).",
)
NEW = click.option(
    "--new",
    is_flag=True,
    help="A fresh key and link even if this source is already shared unchanged.",
)
LIVE = click.option(
    "--live",
    is_flag=True,
    help="Print a live link: it follows this source as you `p2pshare publish`"
    " new versions of it (the link names a signed pointer, not a snapshot).",
)
SEEDS = click.option(
    "--seed",
    "seeds",
    multiple=True,
    metavar="MADDR",
    help="A seed to try first (repeatable; also `seeds` in config.toml).",
)


def _parse_rate(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip().upper().removesuffix("/S")
    for suffix in ("IB", "B"):
        text = text.removesuffix(suffix)
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    mult = units.get(text[-1:], 1)
    if text[-1:] in units:
        text = text[:-1]
    try:
        rate = float(text) * mult
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a rate like 5M or 500K") from None
    if rate <= 0:
        raise click.BadParameter("the rate must be positive")
    return rate


def _no_node(home: Any) -> NodeNotRunning:
    return NodeNotRunning(
        f"{home.path}: no node is running for this home"
        " (start one with `p2pshare node --background`)"
    )


# -- share -------------------------------------------------------------------------
@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--copy", is_flag=True, help="Store encrypted chunks (see `add --copy`).")
@NEW
@LIVE
@PASSWORD
@PASSWORD_FILE
@STRENGTH
@_LISTEN
@_BOOTSTRAP
@_RATE
@REPLICAS
@ERASURE
@EXPIRES
@SEEDS
@click.pass_context
def share(
    ctx: click.Context,
    paths: tuple[Path, ...],
    copy: bool,
    new: bool,
    live: bool,
    password_prompt: bool,
    password_file: Path | None,
    password_strength: str,
    listen: tuple[str, ...],
    bootstrap: tuple[str, ...],
    upload: str | None,
    replicas: int | None,
    erasure: str | None,
    expires: int | None,
    seeds: tuple[str, ...],
) -> None:
    """Add PATHs and print their links (with peer hints); serve them.

    With a node running for this home the node serves them and this returns
    at once; otherwise this serves in the foreground until Ctrl-C. With
    --replicas N it first waits until N seeds keep a complete replica, and
    the links name those seeds too (they work while this node is offline).
    With --erasure K/N, N seeds each keep one erasure-coded part (any K
    rebuild it) instead of full replicas.
    """
    from p2pshare.cli.seeds import replicas_option, replicate_links

    home = home_of(ctx)
    n, seed_list, coded = replicas_option(home, replicas, seeds, erasure)
    params = {"paths": [absolute(p) for p in paths], "copy": copy, "new": new}
    locked = link_password(password_prompt, password_file, password_strength)
    if locked is not None and live:
        raise UsageError("--password: not for live links yet")
    if expires is not None and live:
        raise UsageError("--expires: not for live links yet")
    if live:
        params["live"] = True

    async def go(s: Session) -> None:
        items = await s.client.call("share", **params)
        links = [i["link"] for i in items]
        if n:
            roots = [i["root"] for i in items]
            replicated = await replicate_links(s.client, roots, n, seed_list, coded)
            links = links if live else replicated
        if expires is not None:
            links = [
                (await s.client.call("link", root=i["root"], expires=expires))["link"]
                for i in items
            ]
        if locked is not None:
            links = lock_links(links, *locked)
        for text in links:
            click.echo(text)
        if not s.ephemeral:
            return  # the home's node serves them
        sys.stdout.flush()
        st = await s.client.call("status")
        click.echo(
            f"serving {len(paths)} share(s) as {st['peer_id']}; Ctrl-C to stop",
            err=True,
        )
        import anyio

        await anyio.sleep_forever()

    start = NodeStart(
        listen, bootstrap, "server", _parse_rate(upload), announce_lan=True
    )
    # Ctrl-C is the way to stop a foreground share: not an error
    with_node(home, go, start=start, interrupted=None)


# -- node / stop ---------------------------------------------------------------------
@cli.command()
@_LISTEN
@_BOOTSTRAP
@_RATE
@click.option(
    "--dht-mode",
    type=click.Choice(["server", "client"]),
    default="server",
    show_default=True,
    help="Serve DHT queries (long-running nodes should).",
)
@click.option(
    "--background",
    is_flag=True,
    help="Detach; log to <home>/logs/; return once the node answers.",
)
@click.option("--daemonized", is_flag=True, hidden=True)
@click.pass_context
def node(
    ctx: click.Context,
    listen: tuple[str, ...],
    bootstrap: tuple[str, ...],
    upload: str | None,
    dht_mode: Literal["server", "client"],
    background: bool,
    daemonized: bool,
) -> None:
    """Run a node that serves every share of this home and joins the DHT.

    Prints the node's full multiaddrs (with /p2p/<id>), one per line.
    """
    home = home_of(ctx)
    rate = _parse_rate(upload)
    if background:
        _start_background(ctx, home, listen, bootstrap, upload, dht_mode)
        return
    if daemonized:
        from p2pshare.logs import setup_daemon_logging

        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        setup_daemon_logging(home.path, debug=ctx.obj["debug"])

    try:
        run_node(
            home,
            listen=list(listen) or [DEFAULT_LISTEN],
            bootstrap=bootstrap,
            dht_mode=dht_mode,
            upload_rate=rate,
            body=None if daemonized else print_addrs_and_serve,
        )
    except Exception as exc:
        if daemonized:  # only the node's own failure gets here: jobs are supervised
            bug = not isinstance(exc, P2PShareError)  # its traceback goes in the log
            log.critical("node stopped: %s", exc, exc_info=exc if bug else None)
        raise


async def print_addrs_and_serve(n: Node) -> None:
    """A foreground node's body: print its full multiaddrs (one per line,
    the readiness signal scripts wait for), then serve until stopped."""
    for addr in n.addrs():
        click.echo(addr)
    sys.stdout.flush()
    import trio

    await trio.sleep_forever()


def _start_background(
    ctx: click.Context,
    home: Any,
    listen: tuple[str, ...],
    bootstrap: tuple[str, ...],
    upload: str | None,
    dht_mode: Literal["server", "client"],
) -> None:
    from p2pshare.control.launch import Background, start_background
    from p2pshare.logs import logs_dir
    from p2pshare.node.ports import check_free

    check_free(listen)  # one clear line here, not a start failure
    how = Background(listen, bootstrap, upload, dht_mode, debug=ctx.obj["debug"])
    pid, addrs = start_background(home, how)
    for addr in addrs:
        click.echo(addr)
    click.echo(
        f"node started in the background (pid {pid}); logs in {logs_dir(home.path)}",
        err=True,
    )


@cli.command()
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Ask the running node of this home to exit cleanly."""
    from p2pshare.control.launch import stop_node

    home = home_of(ctx)
    if not stop_node(home):
        raise _no_node(home)
    click.echo("node stopped", err=True)


# -- status / peers / downloads --------------------------------------------------------
def _require(home: Any, method: str, **params: Any) -> Any:
    result = call_node(home, method, **params)
    if result is NO_NODE:
        raise _no_node(home)
    return result


@cli.command()
@_JSON
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the running node: peer id, addresses, DHT, peers, transfers, rates."""
    st = _require(home_of(ctx), "status")
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"peer id:        {st['peer_id']}")
    for addr in st["addrs"]:
        click.echo(f"listening:      {addr}")
    click.echo(f"DHT table:      {st['dht_routing_table']} peers")
    click.echo(f"connected:      {st['connected_peers']} peers")
    click.echo(f"shares:         {st['shares']}")
    click.echo(
        f"transfers:      {st['downloads_active']} down, {st['uploads_active']} up"
    )
    click.echo(
        f"rates:          ↓ {_human(int(st['download_rate']))}/s  "
        f"↑ {_human(int(st['upload_rate']))}/s"
    )
    for seed in st.get("seeds") or []:
        click.echo(
            f"replicas on:    {seed['peer_id']} ({seed['region'] or 'no region'}),"
            f" {seed['replicas']} share(s)"
        )
    if st.get("seed"):
        me = st["seed"]
        cap = _human(me["max_storage"]) if me["max_storage"] else "no limit"
        click.echo(
            f"seed:           region {me['region'] or '-'}, {me['admission']}"
            f" admission, {me['complete']}/{me['pins']} pins complete,"
            f" {_human(me['used_bytes'])} used of {cap}"
        )
    click.echo(f"uptime:         {st['uptime_s']:.0f} s")


@cli.command()
@_JSON
@click.pass_context
def peers(ctx: click.Context, as_json: bool) -> None:
    """List the peers the running node is connected to."""
    items = _require(home_of(ctx), "peers")
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for p in items:
        click.echo(f"{p['peer_id']}  {' '.join(p['addrs'][:2])}")


def _show_downloads(items: list[dict[str, Any]]) -> None:
    if not items:
        click.echo("no downloads", err=True)
        return
    click.echo(
        f"{'ID':>3}  {'STATE':<9}  {'DONE':>7}  {'RATE':>11}  {'PEERS':>5}  PATH"
    )
    for d in items:
        total = d["total"]
        pct = f"{100 * d['done'] / total:5.1f} %" if total else "      ?"
        active = d["state"] == "active"
        rate = f"{_human(int(d['rate']))}/s" if active else "-"
        peers = str(d["providers"]) if active else "-"
        where = d["path"] or (
            f"{d['out_dir']}/{d['name']}" if d.get("name") else d["out_dir"]
        )
        extra = f"  ({d['error']})" if d["error"] else ""
        click.echo(
            f"{d['id']:>3}  {d['state']:<9}  {pct:>7}  {rate:>11}  {peers:>5}"
            f"  {display_name(where)}{extra}"
        )


@cli.group(invoke_without_command=True)
@_JSON
@click.pass_context
def downloads(ctx: click.Context, as_json: bool) -> None:
    """List the running node's downloads (or pause/resume/cancel one)."""
    if ctx.invoked_subcommand is not None:
        return
    items = _require(home_of(ctx), "downloads")
    if as_json:
        click.echo(json.dumps(items, indent=2))
    else:
        _show_downloads(items)


def _download_action(name: str, help_text: str) -> None:
    @downloads.command(name=name, help=help_text)
    @click.argument("download_id", type=int)
    @click.pass_context
    def action(ctx: click.Context, download_id: int) -> None:
        _show_downloads([_require(home_of(ctx), f"download.{name}", id=download_id)])


_download_action("pause", "Pause a download (verified chunks are kept).")
_download_action("resume", "Resume a paused or failed download.")
_download_action("cancel", "Cancel a download and delete its partial data.")
