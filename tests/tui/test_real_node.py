"""Pilot tests of the TUI against real background nodes (no fake backend)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static, TabbedContent

from p2pshare.config import Home
from p2pshare.control.client import open_client
from p2pshare.errors import LinkError
from p2pshare.format.links import parse_link
from tests.helpers.cli import ok
from tests.helpers.procs import LOOPBACK, Proc, running
from tests.tui.conftest import NodeHomes, notifications, wait_for
from tui.app import P2PShareApp
from tui.backend import ControlBackend
from tui.screens.modals import AddPathModal

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SIZE = (100, 30)
BAD_LINK = "p2pshare://not-a-root"


def _status_bar(app: P2PShareApp) -> str:
    return str(app.query_one("#status-bar", Static).render())


def _errors(app: P2PShareApp) -> list[str]:
    return [line for line in app.log_lines if " error " in line]


def _make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "docs/readme.md": b"# read me\n",
        "docs/img/logo.png": os.urandom(300_000),
        "song.ogg": os.urandom(1 << 20),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _share(home: Path, path: Path) -> str:
    link = ok(home, "share", path).strip()
    assert parse_link(link).peers  # a node's share link carries its addresses
    return link


@pytest.mark.asyncio
async def test_starts_a_node_and_adds_a_share_with_the_picker(
    node_homes: NodeHomes, tmp_path: Path
) -> None:
    home = node_homes.home("a")  # no node runs: the TUI must start one
    data = tmp_path / "report.pdf"
    data.write_bytes(os.urandom(50_000))
    backend = ControlBackend(Home(home), listen=[LOOPBACK])
    app = P2PShareApp(backend, picker_start=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected or _errors(app), 90, "the node")
        assert app.connected, _errors(app)
        assert "started a background node" in _status_bar(app)
        table = app.query_one("#shares-table", DataTable)
        assert table.row_count == 0

        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AddPathModal))
        app.screen.query_one("#picker-path", Input).value = str(data)
        await pilot.click("#picker-add")

        def listed() -> bool:
            return table.row_count == 1 and "report.pdf" in str(table.get_row_at(0)[0])

        await wait_for(pilot, listed, 30, "the share in the table")
        assert notifications(app, "error") == []
    listing = ok(home, "ls", "--json")
    assert "report.pdf" in listing


@pytest.mark.asyncio
async def test_browse_a_folder_and_download_one_file(
    node_homes: NodeHomes, tmp_path: Path
) -> None:
    sharer, me = node_homes.start("a"), node_homes.start("b")
    folder = tmp_path / "Projet"
    files = _make_tree(folder)
    link = _share(sharer, folder)
    out = tmp_path / "out"

    app = P2PShareApp(ControlBackend(Home(me)), destination=out)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, 30, "attaching")
        assert "attached to node" in _status_bar(app)
        await pilot.press("2")
        assert app.focused is app.query_one("#link-input")
        app.query_one("#link-input", Input).value = link
        await pilot.press("enter")
        browse = app.browse
        await wait_for(
            pilot, lambda: "docs/img/logo.png" in browse.nodes, 60, "the tree"
        )
        assert set(browse.nodes) == {
            "", "a.txt", "docs", "docs/readme.md", "docs/img",
            "docs/img/logo.png", "song.ogg",
        }  # fmt: skip
        tree = browse.share_tree
        assert app.focused is tree
        tree.move_cursor(browse.nodes["docs/img/logo.png"])
        await pilot.press("space")
        assert browse.selected_paths() == ["docs/img/logo.png"]
        await pilot.press("d")

        downloads = app.downloads
        await wait_for(pilot, lambda: downloads.downloads, 30, "the download row")
        assert app.query_one("#tabs", TabbedContent).active == "downloads"
        (did,) = downloads.downloads

        def finished() -> bool:
            return downloads.downloads[did].get("state") in {"done", "failed"}

        await wait_for(pilot, finished, 60, "the download to finish")
        assert downloads.downloads[did]["state"] == "done"
        row = downloads.table.get_row(str(did))
        assert row[3] == "100 %"
        assert notifications(app, "error") == []

    got = out / "Projet"
    assert (got / "docs/img/logo.png").read_bytes() == files["docs/img/logo.png"]
    on_disk = sorted(
        p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()
    )
    assert on_disk == ["docs/img/logo.png"]


@pytest.mark.asyncio
async def test_a_malformed_link_is_an_error_notification(
    node_homes: NodeHomes,
) -> None:
    me = node_homes.start("b")
    app = P2PShareApp(ControlBackend(Home(me)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, 30, "attaching")
        await pilot.press("2")
        app.query_one("#link-input", Input).value = BAD_LINK
        await pilot.press("enter")
        await wait_for(pilot, lambda: notifications(app, "error"), 5, "an error")
        (message,) = notifications(app, "error")
        with pytest.raises(LinkError) as expected:
            parse_link(BAD_LINK)
        assert message == str(expected.value)
        assert message.startswith("root id:")
        assert app.browse.link is None  # nothing was inspected
        assert app.is_running


@pytest.mark.asyncio
async def test_cancel_a_download(node_homes: NodeHomes, tmp_path: Path) -> None:
    sharer = node_homes.start("a", "--max-upload-rate", "1M")
    me = node_homes.start("b")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(32 << 20))
    link = _share(sharer, big)

    app = P2PShareApp(ControlBackend(Home(me)), destination=tmp_path / "out")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, 30, "attaching")
        await pilot.press("2")
        app.query_one("#link-input", Input).value = link
        await pilot.press("enter")
        browse = app.browse
        await wait_for(pilot, lambda: browse.share is not None, 60, "the file")
        assert browse.selected_paths() is None  # a file share: all of it
        await pilot.press("d")
        downloads = app.downloads
        await wait_for(pilot, lambda: downloads.downloads, 30, "the download row")
        (did,) = downloads.downloads

        def started() -> bool:
            d = downloads.downloads[did]
            return d.get("state") == "active" and (d.get("done") or 0) > 0

        await wait_for(pilot, started, 60, "some progress")
        assert app.focused is downloads.table
        await pilot.press("x")

        def state() -> object:
            return downloads.downloads[did].get("state")

        await wait_for(pilot, lambda: state() != "active", 30, "the cancel")
        assert state() == "cancelled"
        assert str(downloads.table.get_row(str(did))[4]) == "cancelled"

    async with open_client(Home(me)) as client:
        (node_view,) = await client.call("downloads")
    assert node_view["state"] == "cancelled"


@pytest.mark.asyncio
async def test_redeem_a_voucher_and_see_the_balance(
    node_homes: NodeHomes, tmp_path: Path
) -> None:
    seed_home = node_homes.home("seed")
    seed = Proc(seed_home, "seed", "--listen", LOOPBACK, "--region", "eu-west")
    with running(seed):
        seed.read_lines(1)
        (code,) = ok(
            seed_home, "voucher", "issue", "--quota", "3M", "--expires", "1d"
        ).split()
        me = node_homes.start("me")
        app = P2PShareApp(ControlBackend(Home(me)))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connected, 30, "the node")
            await pilot.press("v")  # redeem: the Seeds tab, code box focused
            table = app.seeds.query_one("#vouchers-table", DataTable)
            app.seeds.query_one("#voucher-input", Input).value = code
            await pilot.press("enter")
            await wait_for(pilot, lambda: table.row_count == 1, 60, "the balance")
            row = [str(c) for c in table.get_row_at(0)]
            assert row[1] == "3.0 MiB"  # left
            assert row[2] == "3.0 MiB"  # quota
            assert any("Voucher redeemed" in n for n in notifications(app))
            assert _errors(app) == []
        # the node holds the voucher: the CLI sees the same balance
        (bal,) = json.loads(ok(me, "voucher", "ls", "--json"))
        assert (bal["quota"], bal["used"]) == (3 << 20, 0)
