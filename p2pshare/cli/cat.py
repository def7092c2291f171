"""``p2pshare cat LINK [--path P] [--range A-B]``: plaintext to stdout, in
order, while it downloads (``node/stream.py``); ``p2pshare open LINK``: the
same through the node's HTTP gateway (``node/gateway.py``).

``cat`` keeps nothing: it runs a short-lived node of its own, with a fresh
identity in a temporary home that holds a copy of this home's
``config.toml`` (its bootstrap peers, mDNS setting), whether or not the
home's node runs; the temporary home is deleted when it exits. So
``p2pshare cat LINK --path talk.mp4 | mpv -`` plays while the file arrives,
and nothing of it lands on disk.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from p2pshare.cli.app import cli, home_of
from p2pshare.cli.get import STALL_TIMEOUT, TIMEOUT
from p2pshare.cli.net import _BOOTSTRAP, _LISTEN
from p2pshare.cli.passwords import PASSWORD_FILE, unlock
from p2pshare.cli.session import DEFAULT_LISTEN
from p2pshare.config import Home
from p2pshare.format.links import LiveLink, parse_any_link, require_key

__all__ = ["cat", "open_"]


@cli.command(name="cat")
@click.argument("link_text", metavar="LINK")
@click.option(
    "--path",
    "path",
    default=None,
    metavar="PATH",
    help="The file of a folder share to read (relative, e.g. talks/a.mp4).",
)
@click.option(
    "--range",
    "range_text",
    default=None,
    metavar="A-B",
    help="Only bytes A to B, both included (as HTTP Range); A- to the end,"
    " -N the last N bytes.",
)
@_BOOTSTRAP
@_LISTEN
@TIMEOUT
@STALL_TIMEOUT
@PASSWORD_FILE
@click.pass_context
def cat(
    ctx: click.Context,
    link_text: str,
    path: str | None,
    range_text: str | None,
    bootstrap: tuple[str, ...],
    listen: tuple[str, ...],
    timeout_s: float,
    stall_s: float,
    password_file: Path | None,
) -> None:
    """Write a file's plaintext to stdout as it downloads, in order.

    Every byte written was verified first. Chunks are fetched from every
    provider at once, a bounded window ahead of what was written, so memory
    stays small and the first byte comes as soon as the first chunk
    verified. With --range only the chunks the range covers are fetched.
    """
    from p2pshare.cli.runtime import run_node
    from p2pshare.node.stream import ByteRange

    link = parse_any_link(unlock(link_text, password_file))
    require_key(link)
    byte_range = ByteRange.parse(range_text) if range_text else ByteRange()
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()  # a player reading the pipe gets it now

    async def body(node: object) -> int:
        from p2pshare.node import live
        from p2pshare.node.service import Node
        from p2pshare.node.stream import stream_file

        assert isinstance(node, Node)
        snapshot = (
            await live.resolve(node, link, timeout_s=timeout_s, also=bootstrap)
            if isinstance(link, LiveLink)
            else link
        )
        return await stream_file(
            node,
            snapshot,
            path=path,
            byte_range=byte_range,
            write=write,
            timeout_s=timeout_s,
            stall_s=stall_s,
        )

    home = home_of(ctx)
    with tempfile.TemporaryDirectory(prefix="p2pshare-cat-") as tmp:
        temp = Home(Path(tmp))
        if home.config.is_file():
            shutil.copyfile(home.config, temp.config)
        try:
            run_node(
                temp,
                listen=list(listen) or [DEFAULT_LISTEN],
                bootstrap=list(bootstrap),
                dht_mode="client",
                announce_lan=False,
                body=body,
            )
        except BrokenPipeError:
            # the reader went away (`| head`): that is the end, not an error
            sys.stderr.close()


@cli.command(name="open")
@click.argument("link_text", metavar="LINK", required=False)
@click.option("--list", "as_list", is_flag=True, help="List the links being served.")
@click.option("--revoke", metavar="TOKEN", help="Stop serving a link (its token).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@PASSWORD_FILE
@click.pass_context
def open_(
    ctx: click.Context,
    link_text: str | None,
    as_list: bool,
    revoke: str | None,
    as_json: bool,
    password_file: Path | None,
) -> None:
    """Serve LINK through the node's local HTTP gateway; print its URL.

    A browser or a video player then streams it (HTTP Range: seeking works
    while it downloads). The URL holds a random token, never the key; the
    gateway listens on 127.0.0.1 (`[network] gateway` in config.toml) and
    needs the home's node (`p2pshare node --background`).
    """
    import json

    from p2pshare.cli.runtime import NO_NODE, call_node
    from p2pshare.errors import UsageError

    if sum(map(bool, (link_text, as_list, revoke))) != 1:
        raise UsageError("open: give a LINK, --list or --revoke TOKEN")
    home = home_of(ctx)
    if revoke:
        result = call_node(home, "open.revoke", token=revoke)
    elif as_list:
        result = call_node(home, "open.ls")
    else:
        assert link_text is not None
        result = call_node(home, "open", link=unlock(link_text, password_file))
    if result is NO_NODE:
        raise UsageError(
            "open: needs the home's node (start it: `p2pshare node --background`)"
        )
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif revoke:
        if not result["revoked"]:
            from p2pshare.errors import NotFoundError

            raise NotFoundError(f"open: no link is served with token {revoke!r:.40}")
        click.echo(f"revoked {result['token']}", err=True)
    elif as_list:
        for entry in result:
            click.echo(f"{entry['token']}  {entry['url']}")
    else:
        click.echo(result["url"])
