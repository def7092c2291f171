"""The ``p2pshare`` command line.

The only module that configures logging and turns errors into exit codes:
every :class:`~p2pshare.errors.P2PShareError` becomes one line on stderr and
its documented exit code (see ``errors.py`` and the README); a traceback is
shown only with ``--debug``. Standard output carries only results (links,
listings, JSON), so it can be piped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from p2pshare import __version__
from p2pshare.config import HOME_ENV, Home, resolve_home
from p2pshare.errors import EXIT_INTERNAL, P2PShareError

__all__ = ["Seconds", "cli", "home_of", "main"]

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


class Seconds(click.ParamType[float]):
    """A duration in seconds: a finite number from 0 to 1e6 (0 means now)."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not 0 <= seconds <= 1e6:
            self.fail(f"{value!r} is not between 0 and 1e6 seconds", param, ctx)
        return seconds


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy]?)\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}


def parse_duration(text: str) -> int:
    """``30d``, ``12h``, ``1y``, ``90`` (seconds) → seconds (positive)."""
    m = _DURATION.match(text)
    if m is None:
        raise click.BadParameter(f"{text!r} is not a duration like 30d, 12h or 1y")
    seconds = int(float(m[1]) * _UNITS[m[2].lower()])
    if not 0 < seconds <= 100 * 365 * 86400:
        raise click.BadParameter("the duration must be positive and under 100 years")
    return seconds


class Duration(click.ParamType[int]):
    """A duration such as 7d, 12h, 30m or 90 (seconds)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def home_of(ctx: click.Context) -> Home:
    """The home chosen by --home / $P2PSHARE_HOME / the default."""
    return resolve_home(ctx.obj["home"])


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


class _Group(click.Group):
    """The command group, plus commands that packages above ``p2pshare``
    (the TUI) contribute through the ``p2pshare.commands`` entry points.

    They load only when named (or listed by ``--help``), so the core CLI
    never imports them and starts as fast without them.
    """

    PLUGINS = "p2pshare.commands"

    def _plugins(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=self.PLUGINS)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            return cmd
        ep = self._plugins().get(name)
        if ep is None:
            return None
        try:
            loaded = ep.load()
        except ImportError as exc:
            why = f"{name}: not available ({exc}); reinstall p2pshare"

            def broken() -> None:
                raise click.ClickException(why)

            return click.Command(name, callback=broken, help=f"(unavailable: {exc})")
        return loaded if isinstance(loaded, click.Command) else None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"p2pshare: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map errors to exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    from p2pshare.malloc import tune_malloc

    tune_malloc()  # before any chunk is read: see p2pshare/malloc.py
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
