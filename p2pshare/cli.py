"""The ``p2pshare`` command line.

The only module that configures logging and turns errors into exit codes:
every :class:`~p2pshare.errors.P2PShareError` becomes one line on stderr and
its documented exit code (see ``errors.py`` and the README); a traceback is
shown only with ``--debug``. Standard output carries only results (links,
listings, JSON), so it can be piped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, NoReturn

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


class _Bar:
    """Progress callbacks; a rich bar on stderr when it is a terminal."""

    def __init__(
        self, advance: Callable[[int], None], total: Callable[[int], None]
    ) -> None:
        self.advance = advance
        self.total = total


@contextlib.contextmanager
def _progress(description: str, total: int | None) -> Iterator[_Bar]:
    if not sys.stderr.isatty():
        yield _Bar(lambda _n: None, lambda _n: None)
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
        task = bar.add_task(description, total=total or None)
        yield _Bar(lambda n: bar.advance(task, n), lambda n: bar.update(task, total=n))


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
        format=(
            "p2pshare: %(relativeCreated)d ms %(name)s %(levelname)s: %(message)s"
            if debug
            else "p2pshare: %(levelname)s: %(message)s"
        ),
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
        with _progress(f"adding {path.name}", scan_size(path)) as bar:
            added = add_path(
                store, path, copy=copy, chunk_size=size, progress=bar.advance
            )
        click.echo(str(ShareLink(root_id=added.root, key=added.key)))


@cli.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def ls_(ctx: click.Context, as_json: bool) -> None:
    """List the shares of this home (name, size, mode, root id)."""
    from p2pshare.store.listing import describe_shares

    items = describe_shares(_open_store(ctx))
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


def _parse_rate(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip().upper().removesuffix("/S")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    mult = 1
    for suffix in ("IB", "B"):
        text = text.removesuffix(suffix)
    if text[-1:] in units:
        mult = units[text[-1]]
        text = text[:-1]
    try:
        rate = float(text) * mult
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a rate like 5M or 500K") from None
    if rate <= 0:
        raise click.BadParameter("the rate must be positive")
    return rate


def _run_until_signal(main: Callable[[], Any]) -> Any:
    """Run an async ``main`` under trio; SIGINT/SIGTERM end it cleanly."""
    import signal

    import trio

    async def runner() -> Any:
        async with trio.open_nursery() as nursery:
            result: list[Any] = []

            async def watch() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                    async for _sig in sigs:
                        log.info("signal received: shutting down")
                        nursery.cancel_scope.cancel()
                        return

            async def body() -> None:
                result.append(await main())
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            nursery.start_soon(body)
        return result[0] if result else None

    from p2pshare.node.groups import single_error

    with single_error():
        return trio.run(runner)


def _libp2p_logging() -> None:
    """Route libp2p's records to our stderr handler (LIBP2P-NOTES P8)."""
    from p2pshare.node.compat import configure_libp2p_logging

    configure_libp2p_logging(logging.getLogger().handlers)


def _node_options(listen: tuple[str, ...]) -> list[str]:
    return list(listen) or ["/ip4/0.0.0.0/tcp/0"]


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--copy", is_flag=True, help="Store encrypted chunks (see `add --copy`).")
@_LISTEN
@_BOOTSTRAP
@click.option(
    "--max-upload-rate",
    "upload",
    metavar="RATE",
    help="Cap the upload rate, e.g. 5M (bytes per second).",
)
@click.pass_context
def share(
    ctx: click.Context,
    paths: tuple[Path, ...],
    copy: bool,
    listen: tuple[str, ...],
    bootstrap: tuple[str, ...],
    upload: str | None,
) -> None:
    """Add PATHs, print their links (with peer hints), and serve until Ctrl-C."""
    from p2pshare.node.service import open_node
    from p2pshare.store.adder import add_path

    _libp2p_logging()
    rate = _parse_rate(upload)
    home = resolve_home(ctx.obj["home"])
    store = _open_store(ctx)
    added = [add_path(store, p, copy=copy) for p in paths]
    store.close()

    async def main() -> None:
        async with open_node(
            home,
            listen=_node_options(listen),
            bootstrap=bootstrap,
            dht_mode="server",
            upload_rate=rate,
        ) as node:
            for a in added:
                await node.announce(a.root)
                click.echo(str(node.link(a.root, a.key)))
            sys.stdout.flush()
            click.echo(
                f"serving {len(added)} share(s) as {node.peer_id}; Ctrl-C to stop",
                err=True,
            )
            await trio_sleep_forever()

    _run_until_signal(main)


async def trio_sleep_forever() -> None:
    import trio

    await trio.sleep_forever()


@cli.command()
@_LISTEN
@_BOOTSTRAP
@click.option(
    "--max-upload-rate",
    "upload",
    metavar="RATE",
    help="Cap the upload rate, e.g. 5M (bytes per second).",
)
@click.option(
    "--dht-mode",
    type=click.Choice(["server", "client"]),
    default="server",
    show_default=True,
    help="Serve DHT queries (long-running nodes should).",
)
@click.pass_context
def node(
    ctx: click.Context,
    listen: tuple[str, ...],
    bootstrap: tuple[str, ...],
    upload: str | None,
    dht_mode: Literal["server", "client"],
) -> None:
    """Run a node that serves every share of this home and joins the DHT.

    Prints the node's full multiaddrs (with /p2p/<id>), one per line.
    """
    from p2pshare.node.service import open_node

    _libp2p_logging()
    rate = _parse_rate(upload)
    home = resolve_home(ctx.obj["home"])

    async def main() -> None:
        async with open_node(
            home,
            listen=_node_options(listen),
            bootstrap=bootstrap,
            dht_mode=dht_mode,
            upload_rate=rate,
        ) as n:
            for addr in n.addrs():
                click.echo(addr)
            sys.stdout.flush()
            await trio_sleep_forever()

    _run_until_signal(main)


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
@_BOOTSTRAP
@_LISTEN
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for a first provider.",
)
@click.option(
    "--stats-json",
    "stats_json",
    type=click.Path(path_type=Path),
    hidden=True,
    help="Write download statistics as JSON (for scripts/bench).",
)
@click.pass_context
def get(
    ctx: click.Context,
    link_text: str,
    out_dir: Path,
    offline: bool,
    bootstrap: tuple[str, ...],
    listen: tuple[str, ...],
    timeout_s: float,
    stats_json: Path | None,
) -> None:
    """Download the file or folder of LINK into the output directory.

    Providers are the link's peer hints and whatever the DHT finds (through
    --bootstrap peers); every chunk is verified before it is written.
    """
    parsed = parse_link(link_text)
    if parsed.key is None:
        from p2pshare.errors import AccessDenied

        raise AccessDenied("link: it carries no key (the part after '#')")
    if offline:
        _get_offline(ctx, parsed, out_dir)
        return
    from p2pshare.node.service import open_node

    _libp2p_logging()
    home = resolve_home(ctx.obj["home"])

    async def main() -> Any:
        listen_on = list(listen) or ["/ip4/0.0.0.0/tcp/0"]
        async with open_node(
            home, listen=listen_on, bootstrap=bootstrap, dht_mode="client"
        ) as n:
            with _progress("downloading", None) as bar:
                result = await n.get(
                    parsed,
                    out_dir,
                    progress=bar.advance,
                    on_total=bar.total,
                    timeout_s=timeout_s,
                )
            stats.append(n.last_download)
            return result

    stats: list[Any] = []
    result = _run_until_signal(main)
    if result is None:
        raise KeyboardInterrupt
    if stats_json is not None and stats:
        st = stats[0]
        first = (
            None
            if st.first_chunk_at is None or st.started_at is None
            else st.first_chunk_at - st.started_at
        )
        stats_json.write_text(
            json.dumps(
                {
                    "chunks": st.chunks,
                    "bytes": st.bytes,
                    "bans": st.bans,
                    "first_chunk_s": first,
                }
            )
        )
    _report(result)


def _get_offline(ctx: click.Context, parsed: ShareLink, out_dir: Path) -> None:
    from p2pshare.store.restore import get_offline

    store = _open_store(ctx)
    total = 0
    with contextlib.suppress(P2PShareError):
        total = store.catalog.get_share(parsed.root_id).tree_size or 0
    with _progress("downloading", total) as bar:
        result = get_offline(store, parsed, out_dir, progress=bar.advance)
    _report(result)


def _report(result: Any) -> None:
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
