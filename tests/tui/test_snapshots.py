"""Snapshots of every screen at 80x24 and 120x40, over the FakeBackend.

Regenerate with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and look at the SVGs in ``__snapshots__/`` before committing them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, RichLog

from tests.helpers.fake_backend import LINK, FakeBackend
from tests.tui.conftest import wait_for
from tui.app import P2PShareApp
from tui.screens.help import HelpScreen
from tui.widgets.network import HISTORY

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _app() -> P2PShareApp:
    return P2PShareApp(
        FakeBackend(),
        poll_interval=None,
        picker_start=Path("/home/me"),
        destination=Path("/home/me/Downloads"),
    )


async def _settled(pilot: Pilot[object], table: DataTable[object]) -> None:
    """Wait until the (visible) ``table``'s column widths follow its rows:
    Textual sizes columns on a later refresh, and under load a snapshot
    taken right after the rows arrived showed them cut to their labels."""

    def sized() -> bool:
        return any(c.content_width > len(str(c.label)) for c in table.columns.values())

    await wait_for(pilot, sized, 5, "column widths")
    await pilot.pause()


async def _connected(pilot: Pilot[object]) -> None:
    app = pilot.app
    assert isinstance(app, P2PShareApp)
    await wait_for(pilot, lambda: app.connected, 5, "the fake node")
    await wait_for(pilot, lambda: len(app.shares.providers) == 2, 5, "providers")
    await wait_for(pilot, lambda: len(app.downloads.downloads) == 3, 5, "downloads")
    await _settled(pilot, app.query_one("#shares-table", DataTable))


@pytest.mark.parametrize("size", SIZES)
def test_shares(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(_app(), terminal_size=size, run_before=_connected)


@pytest.mark.parametrize("size", SIZES)
def test_browse_folder_tree(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await _connected(pilot)
        app = pilot.app
        assert isinstance(app, P2PShareApp)
        await pilot.press("2")
        assert app.browse.open_link(LINK)
        await wait_for(pilot, lambda: "song.ogg" in app.browse.nodes, 5, "tree")
        app.browse.share_tree.move_cursor(app.browse.nodes["docs/readme.md"])
        await pilot.press("space")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_downloads(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await _connected(pilot)
        await pilot.press("3")
        await _settled(pilot, pilot.app.query_one("#downloads-table", DataTable))

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_network(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await _connected(pilot)
        app = pilot.app
        assert isinstance(app, P2PShareApp)
        await pilot.press("4")
        wave = [(1 + math.sin(i / 4)) * 200_000 for i in range(HISTORY)]
        app.network.push_rates(wave, [w / 10 for w in wave])
        app.sample_node()
        table = app.network.query_one("#peers-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        await _settled(pilot, table)

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await _connected(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_seeds(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await _connected(pilot)
        app = pilot.app
        assert isinstance(app, P2PShareApp)
        await pilot.press("5")
        table = app.seeds.query_one("#vouchers-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, 5, "voucher balances")
        await _settled(pilot, table)

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_log(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await _connected(pilot)
        app = pilot.app
        assert isinstance(app, P2PShareApp)
        app.log_lines.clear()
        log = app.query_one("#event-log", RichLog)
        log.clear()
        # fixed lines (the live ones carry the wall clock)
        for line in (
            "12:00:00 notice  attached to node 12D3KooWFakeNode…",
            "12:00:05 event   share.added bafk2bzace…",
            "12:00:09 error   open link: link: not a p2pshare link",
        ):
            log.write(line)
        await pilot.press("6")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)
