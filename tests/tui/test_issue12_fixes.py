"""The TUI papercuts a new user hit first (issue 12), each as a pilot test
over the scripted FakeBackend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import platformdirs
import pytest
from textual.widgets import DataTable, Input, TabbedContent
from textual.widgets.data_table import ColumnKey

from p2pshare.records import DownloadRecord, Status, check_result
from tests.helpers.fake_backend import STATUS, FakeBackend, fake_download
from tests.tui.conftest import wait_for
from tui.app import P2PShareApp
from tui.messages import NodeEventReceived
from tui.screens.help import HELP_TEXT
from tui.screens.modals import AddPathModal, QuitModal
from tui.widgets.browse import default_destination

SIZE = (100, 30)


def _app(tmp_path: Path, **kw) -> P2PShareApp:
    return P2PShareApp(
        FakeBackend(),
        poll_interval=None,
        picker_start=tmp_path,
        destination=tmp_path,
        **kw,
    )


async def _ready(pilot, app: P2PShareApp) -> None:
    await wait_for(pilot, lambda: app.connected, 5, "the fake node")


@pytest.mark.asyncio
async def test_number_keys_leave_the_seeds_tab(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("5")
        tabs = app.query_one("#tabs", TabbedContent)
        assert tabs.active == "seeds"
        await pilot.press("6")
        assert tabs.active == "log"
        assert app.query_one("#voucher-input", Input).value == ""
        await pilot.press("v")  # redeem: now the code box takes keys
        assert tabs.active == "seeds"
        await pilot.press("p", "2", "p")
        assert app.query_one("#voucher-input", Input).value == "p2p"


def test_help_lists_every_tab() -> None:
    assert "`1`…`6`" in HELP_TEXT and "Seeds, Log" in HELP_TEXT


@pytest.mark.asyncio
async def test_add_dialog_takes_a_typed_path(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AddPathModal))
        await pilot.press(*"/tmp")
        assert app.screen.query_one("#picker-path", Input).value == "/tmp"


@pytest.mark.asyncio
async def test_shares_refresh_after_a_download(tmp_path: Path) -> None:
    app = _app(tmp_path)
    backend = app.backend
    assert isinstance(backend, FakeBackend)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await wait_for(pilot, lambda: app.shares.table.row_count == 2)
        before = backend.shares_calls
        app.post_message(
            NodeEventReceived({"kind": "download.done", "id": 1, "root": "x"})
        )
        await wait_for(pilot, lambda: backend.shares_calls > before, 5, "a refresh")


@pytest.mark.asyncio
async def test_download_columns_grow_instead_of_cutting_units(tmp_path: Path) -> None:
    class NoDownloads(FakeBackend):
        async def downloads(self) -> list[DownloadRecord]:
            return []  # only our row decides the widths

    app = P2PShareApp(
        NoDownloads(), poll_interval=None, picker_start=tmp_path, destination=tmp_path
    )
    async with app.run_test(size=(160, 30)) as pilot:
        await _ready(pilot, app)
        row = fake_download(9, "paused", 0, 10, 0.0, None)
        app.downloads.upsert(row)
        await pilot.pause()  # shown with "-" first, as a paused download is
        app.downloads.upsert({**row, "state": "active", "rate": 524288.0, "eta": 5})
        await pilot.pause()  # widths are updated on the next refresh
        table = app.query_one("#downloads-table", DataTable)
        assert table.columns[ColumnKey("rate")].content_width >= len("512.0 KiB/s")


def test_save_to_defaults_to_the_download_dir() -> None:
    assert default_destination() == Path(platformdirs.user_downloads_dir())


@pytest.mark.asyncio
async def test_demo_quit_offers_no_keep(tmp_path: Path) -> None:
    app = _app(tmp_path, ephemeral=True)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitModal))
        assert not app.screen.query("#quit-keep")
        await pilot.press("k")  # nothing to keep: the modal stays
        assert isinstance(app.screen, QuitModal)
        await pilot.press("s")
        await wait_for(pilot, lambda: not app.is_running, 5, "the app to exit")
    assert ("stop", None) in app.backend.calls  # type: ignore[attr-defined]


def test_names_with_invisible_characters_are_shown_escaped() -> None:
    """The browse tree and the downloads table show a name from a share
    through display_name (issue 13)."""
    from tui.widgets.browse import TreeEntry, _label

    label = _label(TreeEntry("a", "invoice\u202efdp.exe", "file", 5))
    assert "invoice\\u202efdp.exe" in label.plain
    assert "\u202e" not in label.plain


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("lan", "shown"),
    [
        ({"mdns": True, "peers": 2}, "mDNS on · 2 peers found"),
        ({"mdns": False}, "mDNS off"),
    ],
)
async def test_the_network_tab_says_whether_the_lan_is_searched(
    tmp_path: Path, lan: dict[str, Any], shown: str
) -> None:
    from textual.widgets import Static

    from tui.widgets.network import NetworkPane

    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        pane = app.query_one(NetworkPane)
        reach = {"state": "private", "why": "the seed could not dial back"}
        status = {**STATUS, "addrs": [], "lan": lan, "reachability": reach}
        check_result("status", status)
        pane.show_status(cast(Status, status))
        await pilot.pause()
        text = str(app.query_one("#node-info", Static).render())
        assert shown in text
        assert "private · the seed could not dial back" in text
