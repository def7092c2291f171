"""The Seeds pane: replicas kept on seeds, voucher balances, redeeming a code."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, Static

from p2pshare.errors import UsageError
from p2pshare.records import Balance, Status
from tui.backend import NodeBackend
from tui.fmt import human_size, short_id
from tui.widgets.pane import Pane

__all__ = ["SeedsPane"]

CODE_PREFIX = "p2pv1-"


class SeedsPane(Pane):
    """Seeds keeping our replicas (from ``status``) and our voucher credit
    on each seed (``vouchers``), with a field to redeem a voucher code."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_vouchers", "Refresh balances"),
    ]

    def __init__(self, backend: NodeBackend) -> None:
        super().__init__(id="seeds-pane")
        self.backend = backend
        self.balances: list[Balance] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="seed-self")
        yield Label("Seeds keeping replicas of your shares", classes="row-label")
        replicas: DataTable[Any] = DataTable(id="replicas-table", cursor_type="row")
        replicas.add_column("Seed", key="seed")
        replicas.add_column("Region", key="region")
        replicas.add_column("Replicas", key="replicas")
        yield replicas
        yield Label("Voucher balances", classes="row-label")
        vouchers: DataTable[Any] = DataTable(id="vouchers-table", cursor_type="row")
        vouchers.add_column("Seed", key="seed")
        vouchers.add_column("Left", key="left")
        vouchers.add_column("Quota", key="quota")
        vouchers.add_column("Vouchers", key="count")
        vouchers.add_column("Until", key="until")
        yield vouchers
        with Horizontal(classes="row"):
            yield Input(placeholder="p2pv1-… voucher code", id="voucher-input")
            yield Button("Redeem", id="redeem-button", variant="primary")

    # -- data ---------------------------------------------------------------------
    def show_status(self, status: Status) -> None:
        table = self.query_one("#replicas-table", DataTable)
        table.clear()
        for s in status.get("seeds") or []:
            table.add_row(
                short_id(str(s.get("peer_id", "?")), 20),
                str(s.get("region") or "-"),
                str(s.get("replicas", 0)),
                key=str(s.get("peer_id")),
            )
        me = status.get("seed")
        line = Text()
        if me:
            cap = human_size(me.get("max_storage")) if me.get("max_storage") else "∞"
            line.append("this node is a seed  ", style="bold")
            line.append(
                f"region {me.get('region') or '-'} · {me.get('admission')} admission"
                f" · {me.get('complete', 0)}/{me.get('pins', 0)} pins complete"
                f" · {human_size(me.get('used_bytes'))} of {cap}"
            )
        self.query_one("#seed-self", Static).update(line)
        self.query_one("#seed-self").display = bool(me)

    def show_balances(self, balances: list[Balance]) -> None:
        self.balances = balances
        table = self.query_one("#vouchers-table", DataTable)
        table.clear()
        for b in balances:
            until = (
                time.strftime("%Y-%m-%d", time.gmtime(b["expires"]))
                if b.get("expires")
                else "-"
            )
            left = (
                human_size(b["remaining"]) if b.get("reachable") else "? (unreachable)"
            )
            table.add_row(
                short_id(str(b.get("seed", "?")), 20),
                left,
                human_size(b.get("quota")),
                str(b.get("vouchers", 0)),
                until,
                key=str(b.get("seed")),
            )

    @work(group="vouchers", exclusive=True, exit_on_error=False, name="vouchers")
    async def refresh_vouchers(self) -> None:
        self.show_balances(await self.backend.vouchers())

    # -- actions ------------------------------------------------------------------
    def action_refresh_vouchers(self) -> None:
        self.refresh_vouchers()

    @on(Input.Submitted, "#voucher-input")
    @on(Button.Pressed, "#redeem-button")
    def _redeem_pressed(self) -> None:
        field = self.query_one("#voucher-input", Input)
        code = field.value.strip()
        if not code.lower().startswith(CODE_PREFIX):
            self.notify("Not a voucher code: it starts with p2pv1-", severity="error")
            return
        self.redeem(code)

    @work(group="redeem", exclusive=True, exit_on_error=False, name="redeem voucher")
    async def redeem(self, code: str) -> None:
        if not code:
            raise UsageError("voucher: paste a code first")
        result = await self.backend.redeem(code)
        self.query_one("#voucher-input", Input).value = ""
        self.notify(
            f"Voucher redeemed: {human_size(result.get('remaining'))} left on seed"
            f" {short_id(str(result.get('seed', '?')), 12)}",
            title="Vouchers",
        )
        self.refresh_vouchers()
