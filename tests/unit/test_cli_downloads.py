"""The `downloads` listing: a header, a rate and a peer count only where a
download is moving, and its error."""

from __future__ import annotations

from typing import Any

import pytest

from p2pshare.cli.net import _show_downloads


def _dl(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 1,
        "state": "active",
        "done": 512,
        "total": 1024,
        "rate": 2048.0,
        "providers": 1,
        "error": None,
        "path": None,
        "out_dir": "/tmp/out",
        "name": "talk.mp4",
    }
    return {**base, **kw}


def test_header_and_rows(capsys: pytest.CaptureFixture[str]) -> None:
    _show_downloads(
        [
            _dl(),
            _dl(id=2, state="paused", rate=999.0, providers=3),
            _dl(id=3, state="done", path="/tmp/out/a", done=1024, rate=5.0),
            _dl(id=4, state="failed", error="no provider found within 3 s"),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATE", "DONE", "RATE", "PEERS", "PATH"]
    active, paused, done, failed = lines[1:]
    assert "2.0 KiB/s" in active and " 1 " in active and "50.0 %" in active
    assert "peers" not in active  # no "1 peers"
    for row in (paused, done, failed):
        assert "/s" not in row  # no rate where nothing moves
    assert "/tmp/out/a" in done
    assert "(no provider found within 3 s)" in failed


def test_no_downloads(capsys: pytest.CaptureFixture[str]) -> None:
    _show_downloads([])
    got = capsys.readouterr()
    assert got.out == "" and "no downloads" in got.err
