"""Commands on the home's shares: add, ls, link, rm.

Each goes through the running node when there is one (so it serves and
announces the change at once) and works on the store directly otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from p2pshare.cli.app import (
    _human,
    _parse_chunk_size,
    _progress,
    cli,
    home_of,
)
from p2pshare.cli.net import ERASURE, EXPIRES, LIVE, NEW, REPLICAS, SEEDS
from p2pshare.cli.offline import call_home
from p2pshare.cli.passwords import (
    PASSWORD,
    PASSWORD_FILE,
    STRENGTH,
    link_password,
    lock_links,
)
from p2pshare.cli.runtime import absolute
from p2pshare.cli.seeds import (
    replicas_option,
    replicate,
)
from p2pshare.errors import UsageError
from p2pshare.format import (
    DEFAULT_CHUNK_SIZE,
    ShareLink,
    parse_root_or_link,
)
from p2pshare.format.names import display_name

__all__ = ["add", "gc", "link", "ls_", "publish", "rm"]


@cli.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=False, path_type=Path)
)
@click.option(
    "--copy",
    is_flag=True,
    help="Store the encrypted chunks in the home instead of re-reading the "
    "source file when serving (survives moving or editing the source).",
)
@click.option(
    "--chunk-size",
    default=str(DEFAULT_CHUNK_SIZE),
    hidden=True,
    help="Chunk size (a multiple of 4 KiB; for tests and benchmarks).",
)
@NEW
@LIVE
@PASSWORD
@PASSWORD_FILE
@STRENGTH
@REPLICAS
@ERASURE
@EXPIRES
@SEEDS
@click.pass_context
def add(
    ctx: click.Context,
    paths: tuple[Path, ...],
    copy: bool,
    chunk_size: str,
    new: bool,
    live: bool,
    password_prompt: bool,
    password_file: Path | None,
    password_strength: str,
    replicas: int | None,
    erasure: str | None,
    expires: int | None,
    seeds: tuple[str, ...],
) -> None:
    """Encrypt files or folders into the local store; print one link per PATH.

    By default a file is shared by reference: only its envelope is stored
    and chunks are re-encrypted from the file when needed. If the file
    changes, serving it stops until you add it again. With --replicas N it
    waits until N seed nodes keep a complete (encrypted) replica; with
    --erasure K/N, N seeds keep one erasure-coded part each. With
    --live the link follows the source: `p2pshare publish PATH` makes the
    next version, and the same link gets it.
    """

    home = home_of(ctx)
    n, seed_list, coded = replicas_option(home, replicas, seeds, erasure)
    size = _parse_chunk_size(chunk_size)
    locked = link_password(password_prompt, password_file, password_strength)
    if locked is not None and live:
        raise UsageError("--password: not for live links yet")
    if expires is not None and live:
        raise UsageError("--expires: not for live links yet")
    extra = {"live": True} if live else {}
    items = call_home(
        home,
        "add",
        progress=_progress,
        paths=[absolute(p) for p in paths],
        copy=copy,
        new=new,
        chunk_size=size,
        **extra,
    )
    roots = [item["root"] for item in items]
    links = [item["link"] for item in items]
    if n:
        replicated = replicate(home, roots, n, seed_list, coded)
        links = links if live else replicated
    if expires is not None:
        links = [
            call_home(home, "link", root=r, expires=expires)["link"] for r in roots
        ]
    if locked is not None:
        links = lock_links(links, *locked)
    for text in links:
        click.echo(text)


@cli.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def ls_(ctx: click.Context, as_json: bool) -> None:
    """List the shares of this home (name, size, mode, root id)."""
    items: Any = call_home(home_of(ctx), "ls")
    if as_json:
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    if not items:
        click.echo("no shares (add some with `p2pshare add PATH`)", err=True)
        return
    names = [
        (display_name(i["name"]) if i["name"] is not None else "?")
        + (f" (live v{i['version']})" if i.get("live") else "")
        for i in items
    ]
    width = max(4, *(len(n) for n in names))
    click.echo(
        f"{'NAME':<{width}}  {'KIND':<6}  {'SIZE':>10}  {'MODE':<4}  {'REPL':>4}  ROOT"
    )
    for i, name in zip(items, names, strict=True):
        size = _human(i["size"]) if i["size"] is not None else "?"
        problem = f"  ! {i['error']}" if i["error"] else ""
        links = f"  [{i['links']}]" if i.get("links") else ""
        repl = i.get("erasure") or i.get("replicas", 0)  # "3/5": erasure coded
        click.echo(
            f"{name:<{width}}  {i['kind'] or '?':<6}  {size:>10}  {i['mode']:<4}  "
            f"{repl:>4}  {i['root']}{links}{problem}"
        )


MIN_PREFIX = 6  # "bafk2b" alone is every root: the useful part starts after it


def resolve_share(ctx: click.Context, text: str) -> ShareLink:
    """A share of this home named by its link, root id, a unique prefix of
    its root id, or its name (ambiguity is refused)."""
    from p2pshare.errors import LinkError, NotFoundError, UsageError

    try:
        return parse_root_or_link(text)
    except LinkError:
        if not text.strip():
            raise
    items: Any = call_home(home_of(ctx), "ls")
    by_prefix = [i for i in items if i["root"].startswith(text)]
    for found in (
        by_prefix if len(text) >= MIN_PREFIX else [],
        [i for i in items if i["name"] == text],
    ):
        if len(found) == 1:
            return parse_root_or_link(found[0]["root"])
        if len(found) > 1:
            raise UsageError(
                f"{text}: {len(found)} shares match; give more of the root id"
                " (see `p2pshare ls`)"
            )
    raise NotFoundError(f"{text}: no share of this home has that root, prefix or name")


@cli.command()
@click.argument("root", metavar="ROOT|PREFIX|NAME")
@click.option(
    "--no-hints",
    is_flag=True,
    help="Print the bare link, without the running node's addresses.",
)
@EXPIRES
@click.pass_context
def link(ctx: click.Context, root: str, no_hints: bool, expires: int | None) -> None:
    """Print the share link (with its key) of a share of this home.

    With a node running, the link carries its addresses as peer hints
    (and the seeds keeping replicas), as `share` prints it. With --expires,
    a new link that stops working after that long (the share's links are
    then under the owner's control: see `p2pshare revoke`).
    """
    share = resolve_share(ctx, root)
    extra: dict[str, Any] = {} if expires is None else {"expires": expires}
    got = call_home(
        home_of(ctx), "link", root=share.root_cid, hints=not no_hints, **extra
    )
    click.echo(got["link"])


@cli.command()
@click.argument("root", metavar="ROOT|PREFIX|NAME|LINK")
@click.pass_context
def rm(ctx: click.Context, root: str) -> None:
    """Stop sharing a share and delete what the home stored for it.

    The source files of reference shares are never touched.
    """
    target = resolve_share(ctx, root)
    call_home(home_of(ctx), "rm", root=target.root_cid)
    click.echo(f"removed {target.root_cid}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def gc(ctx: click.Context, as_json: bool) -> None:
    """Delete stored blocks that no share needs any more.

    What `rm`, a failed `add --copy`, a cancelled download or a crash left
    behind; never a block a share or a download in progress needs. A node
    also does this each time it starts.
    """
    report: Any = call_home(home_of(ctx), "gc")
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(
        f"removed {report['blocks']} blocks ({_human(report['bytes'])}),"
        f" {report['temp_files']} temp files,"
        f" {report['partial_shares']} stale partial downloads",
        err=True,
    )


@cli.command()
@click.argument("target", metavar="LINK|PATH")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def publish(ctx: click.Context, target: str, as_json: bool) -> None:
    """Publish the current state of a live share (`add --live`).

    TARGET is its live link, its name (live.…) or its source path. The
    source is added again (unchanged files keep their chunks) and, when it
    changed, the next version is signed; the node puts it in the DHT (with
    no node running, the next node start does). Prints the live link.
    """
    result = call_home(home_of(ctx), "publish", target=target)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(result["link"])
    what = "new version" if result["changed"] else "unchanged, still version"
    click.echo(f"{what} {result['version']} ({result['root']})", err=True)
