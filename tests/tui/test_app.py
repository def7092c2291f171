"""Pilot tests of the UI's behaviour over the scripted FakeBackend."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.coordinate import Coordinate
from textual.widgets import Button, DataTable, Input, Static, TabbedContent

from p2pshare.errors import AccessDenied
from tests.helpers.fake_backend import (
    DOWNLOADS,
    LINK,
    ROOT_PHOTO,
    VOUCHER_CODE,
    FakeBackend,
)
from tests.tui.conftest import notifications, wait_for
from tui.app import P2PShareApp
from tui.messages import DownloadProgressed, NodeLost
from tui.screens.help import HelpScreen
from tui.screens.modals import ConfirmModal, LinkModal, QuitModal

SIZE = (80, 24)


def _app(backend: FakeBackend, tmp_path: Path) -> P2PShareApp:
    return P2PShareApp(
        backend, poll_interval=None, picker_start=tmp_path, destination=tmp_path
    )


async def _ready(pilot, app: P2PShareApp) -> None:
    await wait_for(pilot, lambda: app.connected, 5, "the fake node")
    await wait_for(pilot, lambda: app.shares.table.row_count == 2, 5, "shares")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("button", "stopped"), [("#quit-keep", False), ("#quit-stop", True)]
)
async def test_quit_asks_whether_to_keep_the_node(
    tmp_path: Path, button: str, stopped: bool
) -> None:
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitModal))
        await pilot.click(button)
        await wait_for(pilot, lambda: not app.is_running, 5, "the app to exit")
    assert app.return_value == 0
    assert (("stop", None) in backend.calls) is stopped


@pytest.mark.asyncio
async def test_copy_link_uses_the_clipboard_and_shows_it(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("down", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, LinkModal))
        assert app.clipboard == LINK
        assert app.screen.query_one("#link-value", Input).value == LINK
        assert ("link", ROOT_PHOTO) in backend.calls


@pytest.mark.asyncio
async def test_remove_asks_first(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("down", "x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.click("#confirm-no")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.click("#confirm-yes")
        await wait_for(pilot, lambda: app.shares.table.row_count == 1, 5, "removal")
    assert [c for c in backend.calls if c[0] == "rm"] == [("rm", ROOT_PHOTO)]


@pytest.mark.asyncio
async def test_picked_entries_are_what_get_asks_for(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("2")
        app.query_one("#link-input", Input).value = LINK
        await pilot.click("#link-open")
        browse = app.browse
        await wait_for(pilot, lambda: "song.ogg" in browse.nodes, 5, "the tree")
        browse.share_tree.move_cursor(browse.nodes["docs"])
        await pilot.press("space")  # the folder, and so all below it
        browse.share_tree.move_cursor(browse.nodes["a.txt"])
        await pilot.press("space")
        browse.share_tree.move_cursor(browse.nodes["docs/img/logo.png"])
        await pilot.press("space")  # unselect one: docs is no longer whole
        assert browse.selected_paths() == ["a.txt", "docs/readme.md"]
        await pilot.click("#download")
        await wait_for(pilot, lambda: 4 in app.downloads.downloads, 5, "the row")
        assert app.query_one("#tabs", TabbedContent).active == "downloads"
        await pilot.press("2")
        await pilot.click("#select-all")
        assert browse.selected_paths() is None
    gets = [c[1] for c in backend.calls if c[0] == "get"]
    assert gets == [(LINK, str(tmp_path), ["a.txt", "docs/readme.md"])]


@pytest.mark.asyncio
async def test_a_failed_command_is_a_notification_not_a_crash(tmp_path: Path) -> None:
    backend = FakeBackend(fail={"inspect": AccessDenied("share: wrong key")})
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("2")
        assert app.browse.open_link(LINK)
        await wait_for(pilot, lambda: notifications(app, "error"), 5, "an error")
        assert notifications(app, "error") == ["share: wrong key"]
        assert any("share: wrong key" in line for line in app.log_lines)
        assert app.is_running


@pytest.mark.asyncio
async def test_events_drive_progress_and_a_lost_node_is_shown(tmp_path: Path) -> None:
    progress = {**DOWNLOADS[1], "kind": "download.progress", "done": 8 << 20}
    done = {**progress, "kind": "download.done", "state": "done", "eta": None}
    backend = FakeBackend([progress, done], end_events=True)
    app = _app(backend, tmp_path)
    seen: list[object] = []
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await wait_for(pilot, lambda: not app.connected and app.log_lines[-1:], 5)
        await wait_for(
            pilot,
            lambda: "node lost" in str(app.query_one("#status-bar", Static).render()),
        )
        assert app.downloads.downloads[2]["state"] == "done"
        assert app.downloads.table.get_row("2")[3] == "100 %"
        assert any(isinstance(m, NodeLost) for m in seen)
        assert any(isinstance(m, DownloadProgressed) for m in seen)
        backend.end_events = False
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.connected, 5, "reconnecting")
        assert "attached" in str(app.query_one("#status-bar", Static).render())


@pytest.mark.asyncio
async def test_download_controls_and_help(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await wait_for(pilot, lambda: len(app.downloads.downloads) == 3)
        await pilot.press("3", "down", "p", "r", "x")
        await wait_for(
            pilot, lambda: app.downloads.downloads[2]["state"] == "cancelled"
        )
        assert [c for c in backend.calls if c[0] in {"pause", "resume", "cancel"}] == [
            ("pause", 2), ("resume", 2), ("cancel", 2),
        ]  # fmt: skip
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))


@pytest.mark.asyncio
async def test_the_command_palette_runs_actions(tmp_path: Path) -> None:
    app = _app(FakeBackend(), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Downloads")
        commands = app.screen.query_one(CommandList)
        await wait_for(pilot, lambda: commands.option_count > 0, 5, "a match")
        assert "Downloads" in str(commands.get_option_at_index(0).prompt)
        await pilot.press("enter")
        tabs = app.query_one("#tabs", TabbedContent)
        await wait_for(pilot, lambda: tabs.active == "downloads", 5, "the tab")


@pytest.mark.asyncio
async def test_a_start_link_opens_the_browse_screen(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = P2PShareApp(backend, link=LINK, notice="demo ready", poll_interval=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "song.ogg" in app.browse.nodes, 5, "the tree")
        assert app.query_one("#tabs", TabbedContent).active == "browse"
        assert ("inspect", LINK) in backend.calls
        assert "demo ready" in notifications(app)


@pytest.mark.asyncio
@pytest.mark.parametrize(("key", "stopped"), [("k", False), ("s", True)])
async def test_quit_modal_keys(tmp_path: Path, key: str, stopped: bool) -> None:
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitModal))
        await pilot.press(key)
        await wait_for(pilot, lambda: not app.is_running, 5, "the app to exit")
    assert (("stop", None) in backend.calls) is stopped


@pytest.mark.asyncio
async def test_seeds_pane_shows_replicas_and_redeems_a_voucher(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("v")  # redeem: the Seeds tab, code box focused
        seeds = app.seeds
        replicas = seeds.query_one("#replicas-table", DataTable)
        vouchers = seeds.query_one("#vouchers-table", DataTable)
        await wait_for(pilot, lambda: replicas.row_count == 2, 5, "replica seeds")
        await wait_for(pilot, lambda: vouchers.row_count == 1, 5, "balances")
        # a code that is not one: a notification, no call
        field = seeds.query_one("#voucher-input", Input)
        field.value = "hello"
        await pilot.press("enter")
        await wait_for(pilot, lambda: notifications(app, "error"), 5, "an error")
        assert not [c for c in backend.calls if c[0] == "redeem"]
        field.value = VOUCHER_CODE
        await pilot.click("#redeem-button")
        await wait_for(pilot, lambda: vouchers.row_count == 2, 5, "the new balance")
        assert ("redeem", VOUCHER_CODE) in backend.calls
        assert any("Voucher redeemed" in n for n in notifications(app))
        assert field.value == ""
        # a refused redemption is a notification, never a crash
        backend.fail["redeem"] = AccessDenied(
            "voucher: already redeemed by another peer"
        )
        field.value = VOUCHER_CODE
        # (the success toast may cover the button at 80x24: press it directly)
        seeds.query_one("#redeem-button", Button).press()
        await wait_for(
            pilot,
            lambda: any("already redeemed" in n for n in notifications(app, "error")),
            5,
            "the refusal",
        )
        assert app.is_running


@pytest.mark.asyncio
async def test_a_live_share_shows_its_version(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.shares_list[1] |= {"live": "live.abcdef", "version": 3}
    app = _app(backend, tmp_path)
    async with app.run_test(size=(120, 24)) as pilot:
        await _ready(pilot, app)
        table = app.shares.table
        names = [str(table.get_cell_at(Coordinate(row, 0))) for row in range(2)]
        assert names[1].endswith("(live v3)"), names
        assert "live" not in names[0]


@pytest.mark.asyncio
async def test_synced_folders_show_with_their_version(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(pilot, app)
        synced = app.query_one("#syncs-table", DataTable)

        def shown() -> bool:
            return bool(synced.display)

        assert not shown()  # nothing synced: not shown at all
        backend.syncs_list = [
            {
                "dir": "/home/u/Mirror",
                "link": "p2pshare://live.abc",
                "root": ROOT_PHOTO,
                "version": 4,
                "updated_at": 1,
            }
        ]
        app.shares.refresh_shares()
        await wait_for(pilot, lambda: synced.row_count == 1, 5, "the synced folder")
        assert shown()
        assert str(synced.get_cell_at(Coordinate(0, 1))) == "v4"


@pytest.mark.asyncio
async def test_a_password_link_asks_in_a_dialog_and_again_when_wrong(
    tmp_path: Path,
) -> None:
    from p2pshare.format import ShareLink, parse_link
    from p2pshare.format.password import wrap_key
    from tui.screens.modals import PasswordModal

    plain = parse_link(LINK)
    assert plain.key is not None
    wrapped = wrap_key(plain.key, b"hunter2", params=(1, 8192))
    locked = str(ShareLink(root_id=plain.root_id, peers=plain.peers, wrapped=wrapped))
    backend = FakeBackend()
    app = _app(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("2")
        assert app.browse.open_link(locked)

        def asked(again: bool) -> bool:
            screen = app.screen
            return (
                isinstance(screen, PasswordModal)
                and screen.retry is again
                and bool(screen.query("#password-value"))
            )

        # bounds, not timings: Argon2 runs niced beside the other lanes
        await wait_for(pilot, lambda: asked(False), 30, "the dialog")
        app.screen.query_one("#password-value", Input).value = "wrong"
        await pilot.click("#password-ok")
        await wait_for(pilot, lambda: asked(True), 30, "asked again")
        assert not [c for c in backend.calls if c[0] == "inspect"]  # no network
        app.screen.query_one("#password-value", Input).value = "hunter2"
        await pilot.click("#password-ok")
        browse = app.browse
        await wait_for(pilot, lambda: "song.ogg" in browse.nodes, 30, "the tree")
    inspected = [c[1] for c in backend.calls if c[0] == "inspect"]
    assert [parse_link(x).key for x in inspected] == [plain.key]
    assert "hunter2" not in "\n".join(app.log_lines)


@pytest.mark.asyncio
async def test_seed_health_shows_erasure_survival(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.shares_list[0] |= {"erasure": "3/5", "links": "2 links (1 revoked)"}
    app = _app(backend, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(pilot, app)
        await pilot.press("h")
        await wait_for(pilot, lambda: notifications(app, "error"), 5, "the report")
        (text,) = notifications(app, "error")
        assert "erasure 3/5: 4 of 5 parts hold; survives 1 more losses" in text
        assert "1 of 2 seeds hold it" in text and "unreachable" in text
        await pilot.press("i")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DetailsModal")
        shown = "\n".join(str(w.render()) for w in app.screen.query(Static))
        assert "3/5" in shown and "2 links (1 revoked)" in shown
