"""Seed commands: ``seed``, ``check``, ``repair``, and replication for
``share``/``add --replicas N``.

A seed runs in the foreground like ``node`` (a systemd unit keeps it up).
Replication, checks and repairs go through the home's node
(``session.with_node``): the running one, or one run in this process for as
long as they take (the seeds fetch from it, so it must serve until they
are done).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from p2pshare.cli.app import Seconds, cli, home_of
from p2pshare.cli.net import (
    _BOOTSTRAP,
    _JSON,
    _LISTEN,
    _RATE,
    REPLICAS,
    SEEDS,
    _parse_rate,
    print_addrs_and_serve,
)
from p2pshare.cli.runtime import run_node
from p2pshare.cli.session import DEFAULT_LISTEN, NodeStart, Session, with_node
from p2pshare.config import STALL_TIMEOUT_S, Home, load_config
from p2pshare.errors import FormatError, IntegrityError, UsageError
from p2pshare.format import parse_root_or_link
from p2pshare.format.erasure import parse_erasure
from p2pshare.records import health_line

if TYPE_CHECKING:
    from p2pshare.control.client import ControlClient

__all__ = [
    "check",
    "repair",
    "replicas_option",
    "replicate",
    "replicate_links",
    "revoke",
    "seed",
]


def replicas_option(
    home: Home,
    replicas: int | None,
    seeds: Sequence[str],
    erasure: str | None = None,
) -> tuple[int, list[str], str | None]:
    """The number of seeds, the seed list and the erasure code ("K/N", or
    None for full replicas): the command line over config.toml.

    Raises:
        UsageError: both --replicas and --erasure, or a bad K/N.
    """
    cfg = load_config(home)
    if replicas is not None and erasure is not None:
        raise UsageError("--replicas and --erasure: choose one")
    seed_list = [*seeds, *(s for s in cfg.seeds if s not in seeds)]
    coded = erasure if replicas is None else None
    if coded is None and replicas is None:
        coded = cfg.erasure
    if coded is not None:
        try:
            k, n = parse_erasure(coded)
        except FormatError as exc:
            raise UsageError(f"--erasure: {exc}") from None
        return n, seed_list, f"{k}/{n}"
    n = cfg.replicas if replicas is None else replicas
    return n, seed_list, None


def parse_size(value: str) -> int:
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    mult = units.get(text[-1:], 1)
    if text[-1:] in units:
        text = text[:-1]
    try:
        size = int(float(text) * mult)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size like 500M or 2G") from None
    if size <= 0:
        raise click.BadParameter("the size must be positive")
    return size


def _say_progress(
    seed: str, have: int, count: int, state: str, shown: dict[str, str]
) -> None:
    quarter = f"{state}{have * 4 // count if count else ''}"
    if shown.get(seed) != quarter and (state != "fetching" or count):
        shown[seed] = quarter
        line = f"{state} {have}/{count}" if count else state
        click.echo(
            f"replica on {seed[-12:]}: {line} chunks"
            if count
            else f"replica on {seed[-12:]}: {state}",
            err=True,
        )


def _report(rows: Sequence[dict[str, Any]]) -> None:
    for r in rows:
        where = r["region"] or "no region"
        click.echo(f"replica on {r['seed'][-12:]} ({where}): {r['state']}", err=True)


async def replicate_links(
    client: ControlClient,
    roots: Sequence[str],
    n: int,
    seeds: Sequence[str],
    erasure: str | None = None,
) -> list[str]:
    """Replicate each root (root ids or links) through the node, printing
    progress; returns the links with the seeds as hints."""
    import anyio

    links = []
    async with client.subscribe() as events:

        async def follow(shown: dict[str, str]) -> None:
            async for ev in events:
                if ev.get("kind") == "replica.progress":
                    _say_progress(
                        ev["seed"], ev["have"], ev["count"], ev["state"], shown
                    )

        for root in roots:
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow, {})
                extra = {} if erasure is None else {"erasure": erasure}
                res = await client.call(
                    "replicate", root=root, replicas=n, seeds=list(seeds), **extra
                )
                tg.cancel_scope.cancel()
            _report(res["replicas"])
            links.append(res["link"])
    return links


def replicate(
    home: Home,
    roots: Sequence[str],
    n: int,
    seeds: Sequence[str],
    erasure: str | None = None,
) -> list[str]:
    """Replicate each root through the home's node, or through a node run
    for as long as it takes (the seeds fetch from it)."""

    async def go(s: Session) -> list[str]:
        return await replicate_links(s.client, roots, n, seeds, erasure)

    links: list[str] = with_node(home, go, start=NodeStart())
    return links


# -- seed ---------------------------------------------------------------------------
@cli.command()
@_LISTEN
@_BOOTSTRAP
@_RATE
@click.option(
    "--region", default="", help="Where this seed is (e.g. eu-west), shown to owners."
)
@click.option(
    "--max-storage",
    "max_storage",
    metavar="SIZE",
    help="Cap the ciphertext this seed keeps for others, e.g. 500G.",
)
@click.option(
    "--open",
    "open_admission",
    is_flag=True,
    help="Accept pins from anyone (default: vouchers only).",
)
@click.option(
    "--stall-timeout",
    "stall_s",
    type=Seconds(),
    default=STALL_TIMEOUT_S,
    show_default=True,
    help="Fail a replica fetch when its owner sent no verified data for this long"
    " (its blocks are deleted and its reserved bytes freed).",
)
@click.option(
    "--open-relay",
    "open_relay",
    is_flag=True,
    help="Relay bulk data for anyone (default: voucher holders only; others get"
    " limited circuits, enough to connect directly).",
)
@click.option(
    "--max-relay-rate",
    "relay_rate",
    metavar="RATE",
    help="Cap what this seed relays in all, e.g. 20M (bytes per second).",
)
@click.option(
    "--max-relay-peer-rate",
    "relay_peer_rate",
    metavar="RATE",
    help="Cap what this seed relays for one peer, e.g. 5M (bytes per second).",
)
@click.pass_context
def seed(
    ctx: click.Context,
    listen: tuple[str, ...],
    bootstrap: tuple[str, ...],
    upload: str | None,
    region: str,
    max_storage: str | None,
    open_admission: bool,
    stall_s: float,
    open_relay: bool,
    relay_rate: str | None,
    relay_peer_rate: str | None,
) -> None:
    """Run a headless seed: keep encrypted replicas for others, serve them.

    A seed stores only ciphertext and never the keys: it cannot read what
    it keeps. Prints its multiaddrs (with /p2p/<id>), one per line.
    """
    from p2pshare.node.seed_policy import SeedPolicy

    if len(region) > 64:
        raise click.BadParameter("at most 64 characters", param_hint="--region")
    policy = SeedPolicy(
        region=region,
        max_storage=parse_size(max_storage) if max_storage else None,
        admission="open" if open_admission else "voucher",
        fetch_stall_s=stall_s,
        open_relay=open_relay,
        relay_rate=_parse_rate(relay_rate),
        relay_peer_rate=_parse_rate(relay_peer_rate),
    )

    run_node(
        home_of(ctx),
        listen=list(listen) or [DEFAULT_LISTEN],
        bootstrap=bootstrap,
        dht_mode="server",
        upload_rate=_parse_rate(upload),
        body=print_addrs_and_serve,
        seed=policy,
    )


# -- check / repair -----------------------------------------------------------------
@cli.command()
@click.argument("target", metavar="LINK|ROOT")
@_BOOTSTRAP
@_JSON
@click.pass_context
def check(
    ctx: click.Context, target: str, bootstrap: tuple[str, ...], as_json: bool
) -> None:
    """Which providers hold a complete replica, by storage proofs.

    Each seed must answer a keyed hash of randomly chosen chunks with a
    fresh nonce, which it cannot do without the data. Exits 4 when a
    recorded replica fails.
    """
    parsed = parse_root_or_link(target)
    home = home_of(ctx)
    res = _run(home, "check", bootstrap, root=parsed.root_cid)
    _print_check(res, as_json)
    replicas = [p for p in res["providers"] if p.get("replica", True)]
    failed = [p for p in replicas if not p["ok"]]
    if failed:
        raise IntegrityError(
            f"{len(failed)} of {len(replicas)} replica(s) failed the storage proof"
        )


@cli.command()
@click.argument("target", metavar="LINK|ROOT")
@REPLICAS
@SEEDS
@_BOOTSTRAP
@_JSON
@click.pass_context
def repair(
    ctx: click.Context,
    target: str,
    replicas: int | None,
    seeds: tuple[str, ...],
    bootstrap: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check the replicas of a share and re-replicate until N hold again.

    N defaults to the number of seeds recorded for the share, or `replicas`
    in config.toml.
    """
    parsed = parse_root_or_link(target)
    home = home_of(ctx)
    n, seed_list, _coded = replicas_option(home, replicas, seeds)
    if replicas is None:
        from p2pshare.store.local import LocalStore

        with LocalStore(home) as store:
            recorded = len(store.catalog.replicas(parsed.root_id))
        n = max(n, recorded)
    if n < 1:
        raise click.UsageError("how many replicas? (--replicas N)")
    res = _run(
        home, "repair", bootstrap, root=parsed.root_cid, replicas=n, seeds=seed_list
    )
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    _print_check({"providers": res["checked"]}, False)
    _report(res["replicas"])
    if "erasure" in res:
        click.echo(health_line(res["erasure"]))


def _print_check(res: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    if not res["providers"]:
        click.echo("no provider found", err=True)
    for p in res["providers"]:
        # a provider the DHT lists but this home never placed (a getter
        # that went offline, a seed a repair replaced) is not a failure
        mark = "ok    " if p["ok"] else "FAILED" if p.get("replica", True) else "away  "
        click.echo(f"{mark} {p['seed']}  {p['region'] or '-'}  {p['detail']}")
    if "erasure" in res:
        click.echo(health_line(res["erasure"]))


@cli.command()
@click.argument("target", metavar="LINK|ROOT")
@_BOOTSTRAP
@_JSON
@click.pass_context
def revoke(
    ctx: click.Context, target: str, bootstrap: tuple[str, ...], as_json: bool
) -> None:
    """Stop a link from working: this node and the seeds keeping the share
    refuse it from now on.

    LINK revokes that link (one made with --expires); ROOT (or a link
    without a ticket) revokes every such link of the share. Whoever already
    downloaded the file keeps it: revoking stops further serving only.
    """
    parsed = parse_root_or_link(target)
    res = _run(home_of(ctx), "revoke", bootstrap, root=target.strip())
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    which = "link" if parsed.ticket is not None else "links"
    click.echo(
        f"revoked {res['revoked']} {which} of {res['root']}; told"
        f" {res['seeds_told']} seed(s)",
        err=True,
    )
    for why in res["seeds_failed"]:
        click.echo(f"  not told: {why} (it hears it from the other seeds)", err=True)


def _run(home: Home, method: str, bootstrap: tuple[str, ...], **params: Any) -> Any:
    """One call through the home's node, or a node run for it."""

    async def go(s: Session) -> Any:
        return await s.client.call(method, **params)

    return with_node(home, go, start=NodeStart(bootstrap=bootstrap))
