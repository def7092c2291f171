"""The ``p2pshare`` command line.

The only module that configures logging and turns errors into exit codes:
every :class:`~p2pshare.errors.P2PShareError` becomes one line on stderr and
its documented exit code (see ``errors.py`` and the README); a traceback is
shown only with ``--debug``. Standard output carries only results (links,
listings, JSON), so it can be piped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from p2pshare import __version__
from p2pshare.config import HOME_ENV, resolve_home
from p2pshare.errors import EXIT_INTERNAL, P2PShareError
from p2pshare.format import (
    DEFAULT_CHUNK_SIZE,
    ShareLink,
    parse_link,
    parse_root_or_link,
)

__all__ = ["main"]

log = logging.getLogger("p2pshare")

EXIT_INTERRUPTED = 130


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal; else nothing."""
    if not sys.stderr.isatty() or total <= 0:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        "{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _open_store(ctx: click.Context) -> Any:
    from p2pshare.store.local import LocalStore

    store = LocalStore(resolve_home(ctx.obj["home"]))
    ctx.call_on_close(store.close)
    return store


def _parse_chunk_size(value: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20}
    text = value.strip().upper().removesuffix("IB").removesuffix("B")
    mult = units.get(text[-1:], 1)
    if text[-1:] in units:
        text = text[:-1]
    if not text.isdigit():
        raise click.BadParameter(f"{value!r} is not a size")
    return int(text) * mult


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="p2pshare")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=HOME_ENV,
    help=f"Node home directory (default: ${HOME_ENV}, else the per-user data dir).",
)
@click.option("--debug", is_flag=True, help="Verbose logs and tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, debug: bool) -> None:
    """p2pshare: end-to-end encrypted peer-to-peer file sharing.

    Files are encrypted on this machine; a share link carries the key after
    the '#', so only people you give the link to can read the file.
    """
    ctx.ensure_object(dict)
    ctx.obj["home"] = home
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="p2pshare: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )


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
@click.pass_context
def add(
    ctx: click.Context, paths: tuple[Path, ...], copy: bool, chunk_size: str
) -> None:
    """Encrypt files or folders into the local store; print one link per PATH.

    By default a file is shared by reference: only its envelope is stored
    and chunks are re-encrypted from the file when needed. If the file
    changes, serving it stops until you add it again.
    """
    from p2pshare.store.adder import add_path, scan_size

    size = _parse_chunk_size(chunk_size)
    store = _open_store(ctx)
    for path in paths:
        with _progress(f"adding {path.name}", scan_size(path)) as advance:
            added = add_path(store, path, copy=copy, chunk_size=size, progress=advance)
        click.echo(str(ShareLink(root_id=added.root, key=added.key)))


@cli.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def ls_(ctx: click.Context, as_json: bool) -> None:
    """List the shares of this home (name, size, mode, root id)."""
    from p2pshare.format import root_to_cid
    from p2pshare.store.restore import inspect_share

    store = _open_store(ctx)
    items: list[dict[str, Any]] = []
    for row in store.catalog.top_shares():
        item: dict[str, Any] = {
            "root": root_to_cid(row.root),
            "mode": row.mode,
            "added_at": dt.datetime.fromtimestamp(
                row.added_at / 1e9, dt.UTC
            ).isoformat(),
        }
        try:
            share, _keys, meta = inspect_share(store, row.root, row.key or b"")
            share.close()
            size = row.tree_size if row.tree_size is not None else meta.size
            item.update(name=meta.name, kind=meta.kind, size=size, error=None)
        except (P2PShareError, ValueError) as exc:
            item.update(name=None, kind=None, size=None, error=str(exc))
        items.append(item)
    if as_json:
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    if not items:
        click.echo("no shares (add some with `p2pshare add PATH`)", err=True)
        return
    width = max(4, *(len(i["name"] or "?") for i in items))
    click.echo(f"{'NAME':<{width}}  {'KIND':<6}  {'SIZE':>10}  {'MODE':<4}  ROOT")
    for i in items:
        size = _human(i["size"]) if i["size"] is not None else "?"
        name = i["name"] if i["name"] is not None else f"? ({i['error']})"
        click.echo(
            f"{name:<{width}}  {i['kind'] or '?':<6}  {size:>10}  {i['mode']:<4}  "
            f"{i['root']}"
        )


@cli.command()
@click.argument("root")
@click.pass_context
def link(ctx: click.Context, root: str) -> None:
    """Print the share link (with its key) of a share of this home."""
    share = parse_root_or_link(root)
    store = _open_store(ctx)
    row = store.catalog.get_share(share.root_id)
    if row.key is None:
        raise click.UsageError("this home holds no key for that share")
    click.echo(str(ShareLink(root_id=row.root, key=row.key)))


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
@click.pass_context
def get(ctx: click.Context, link_text: str, out_dir: Path, offline: bool) -> None:
    """Download the file or folder of LINK into the output directory."""
    from p2pshare.store.restore import get_offline

    parsed = parse_link(link_text)
    if not offline:
        raise click.UsageError(
            "fetching from peers is not available in this version; use --offline"
        )
    store = _open_store(ctx)
    total = 0
    with contextlib.suppress(P2PShareError):
        total = store.catalog.get_share(parsed.root_id).tree_size or 0
    with _progress("downloading", total) as advance:
        result = get_offline(store, parsed, out_dir, progress=advance)
    if result.chunks_resumed:
        click.echo(
            f"resumed: {result.chunks_resumed} of {result.chunks_total} chunks were "
            "already verified",
            err=True,
        )
    click.echo(
        f"{result.path}: {_human(result.size)},"
        f" {result.chunks_total - result.chunks_resumed} chunks fetched,"
        f" {result.chunks_resumed} resumed",
        err=True,
    )


@cli.command()
@click.argument("root", metavar="ROOT|LINK")
@click.pass_context
def rm(ctx: click.Context, root: str) -> None:
    """Stop sharing a share and delete what the home stored for it.

    The source files of reference shares are never touched.
    """
    target = parse_root_or_link(root)
    store = _open_store(ctx)
    for bid in store.catalog.remove_top(target.root_id):
        store.blocks.delete(bid)
    click.echo(f"removed {target.root_cid}", err=True)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"p2pshare: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map errors to exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="p2pshare", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except P2PShareError as exc:
        if debug:
            log.exception("failed")
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.exit(EXIT_INTERNAL)
    except Exception as exc:  # task root of the CLI: report, never a raw traceback
        if debug:
            log.exception("internal error")
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
            EXIT_INTERNAL,
        )
