"""``p2pshare voucher issue|redeem|ls``: admission to seeds by signed vouchers.

``issue`` runs on a seed's home and needs no network: it signs codes with
the seed's identity key. ``redeem`` and ``ls`` talk to seeds, through the
home's running node when there is one, else through a short-lived one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from p2pshare.cli.app import _human, cli, home_of, parse_duration
from p2pshare.cli.net import _JSON
from p2pshare.cli.runtime import NO_NODE, with_client
from p2pshare.cli.seeds import parse_size
from p2pshare.cli.session import NodeStart, Session, with_node
from p2pshare.config import Home

if TYPE_CHECKING:
    pass

__all__ = ["voucher"]

MAX_COUNT = 10_000


@cli.group()
def voucher() -> None:
    """Storage vouchers: seeds admit users by signed, redeemable codes."""


@voucher.command()
@click.option(
    "--quota", required=True, metavar="SIZE", help="Storage per voucher, e.g. 50G."
)
@click.option(
    "--expires",
    "expires_in",
    required=True,
    metavar="DURATION",
    help="How long a voucher stays valid, e.g. 90d.",
)
@click.option(
    "--count", type=click.IntRange(1, MAX_COUNT), default=1, show_default=True
)
@click.option(
    "--addr",
    "addrs",
    multiple=True,
    metavar="MADDR",
    help="Address to print in the codes (repeatable; default: the running"
    " seed's addresses).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the codes to FILE (0600), one per line, for a reseller.",
)
@click.pass_context
def issue(
    ctx: click.Context,
    quota: str,
    expires_in: str,
    count: int,
    addrs: tuple[str, ...],
    out_file: Path | None,
) -> None:
    """Print voucher codes signed by this seed's identity (run on the seed's home)."""
    from p2pshare.format.voucher import issue_voucher
    from p2pshare.node.identity import load_or_create_identity, signing_key

    home = home_of(ctx)
    size = parse_size(quota)
    expires = int(time.time()) + parse_duration(expires_in)
    key_file = home.path / "identity.key"
    if not key_file.exists():
        raise click.UsageError(
            f"{home.path}: no seed identity here (run `p2pshare seed` once first)"
        )
    pair = load_or_create_identity(key_file)
    key = signing_key(pair.private_key)
    from libp2p.peer.id import ID

    seed = ID.from_pubkey(pair.public_key)
    where = list(addrs)
    if not where:
        st = with_client(home, lambda c: c.call("status"))
        if st is NO_NODE:
            raise click.UsageError(
                "the seed is not running: start it, or give its public"
                " addresses with --addr MADDR"
            )
        where = [a for a in st["addrs"] if "/ip4/127." not in a] or st["addrs"]
    where = [a.split("/p2p/")[0] for a in where][:4]
    codes = [
        issue_voucher(key, seed.to_bytes(), where, size, expires).to_code()
        for _ in range(count)
    ]
    if out_file is not None:
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(c + "\n" for c in codes))
    for c in codes:
        click.echo(c)
    click.echo(
        f"{count} voucher(s) of {_human(size)} each, valid until"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires))}",
        err=True,
    )


@voucher.command()
@click.argument("code")
@_JSON
@click.pass_context
def redeem(ctx: click.Context, code: str, as_json: bool) -> None:
    """Redeem CODE at its seed; it is bound to this home's peer id."""
    res = _call(home_of(ctx), "voucher.redeem", code=code)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(
        f"redeemed: seed {res['seed']}, balance {_human(res['remaining'])}"
        f" of {_human(res['quota'])}"
    )


@voucher.command(name="ls")
@_JSON
@click.pass_context
def ls_(ctx: click.Context, as_json: bool) -> None:
    """Remaining quota per seed this home holds vouchers for."""
    res = _call(home_of(ctx), "vouchers")
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    if not res:
        click.echo(
            "no vouchers (redeem one with `p2pshare voucher redeem CODE`)", err=True
        )
    for b in res:
        until = (
            time.strftime("%Y-%m-%d", time.gmtime(b["expires"]))
            if b["expires"]
            else "-"
        )
        if b["reachable"]:
            relayed = f", {_human(b['relayed'])} relayed" if b.get("relayed") else ""
            click.echo(
                f"{b['seed']}  {_human(b['remaining'])} left of {_human(b['quota'])}"
                f"  ({b['vouchers']} voucher(s), until {until}{relayed})"
            )
        else:
            click.echo(
                f"{b['seed']}  {_human(b['quota'])} quota, seed unreachable"
                f" ({b.get('error')})"
            )


def _call(home: Home, method: str, **params: Any) -> Any:
    """One call through the home's node, or a node run for it."""

    async def go(s: Session) -> Any:
        return await s.client.call(method, **params)

    return with_node(home, go, start=NodeStart())
