"""The node's HTTP gateway with a real HTTP client: a byte range in the
middle of a remote file comes back 206 and byte-exact having fetched only
the chunks it covers; a wrong or revoked token gets 404 and no bytes; it
listens on loopback only; `open` without a node is one clear line."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.helpers.cli import ok, p2pshare
from tests.helpers.daemon import start
from tests.helpers.procs import running, share

MiB = 1 << 20


def test_ranges_listing_tokens_and_loopback(tmp_path: Path) -> None:
    folder = tmp_path / "talks"
    (folder / "sub").mkdir(parents=True)
    data = os.urandom(8 * MiB + 777)
    (folder / "talk.mp4").write_bytes(data)
    (folder / "sub" / "notes.txt").write_text("notes\n")
    owner, viewer = tmp_path / "a", tmp_path / "b"
    proc, [link] = share(owner, folder)
    with running(proc):
        start(viewer)
        try:
            url = ok(viewer, "open", link).strip()
            parts = urlsplit(url)
            assert parts.hostname == "127.0.0.1"
            assert link.split("#")[1] not in url  # the key stays in the node
            with httpx.Client(timeout=60) as http:
                # the folder: a small page linking its entries
                page = http.get(url)
                assert page.status_code == 200
                assert "text/html" in page.headers["content-type"]
                assert "talk.mp4" in page.text and "sub/" in page.text
                sent_before = _sent(owner)
                # the middle of the file: 206, exact, only its chunks fetched
                lo, hi = 3 * MiB + 5, 5 * MiB + 9
                r = http.get(url + "talk.mp4", headers={"Range": f"bytes={lo}-{hi}"})
                assert r.status_code == 206
                assert r.content == data[lo : hi + 1]
                assert r.headers["content-range"] == f"bytes {lo}-{hi}/{len(data)}"
                assert r.headers["content-type"] == "video/mp4"
                fetched = _sent(owner) - sent_before
                assert 0 < fetched <= 3 * MiB + 64 * 1024, fetched  # chunks 3..5
                # the whole file, and a range past the end
                assert http.get(url + "talk.mp4").content == data
                past = http.get(url + "talk.mp4", headers={"Range": "bytes=99999999-"})
                assert past.status_code == 416 and past.content == b""
                assert http.get(url + "sub/notes.txt").text == "notes\n"
                assert http.get(url + "nope.txt").status_code == 404
                # a wrong token, then a revoked one: 404 and no bytes
                wrong = url.replace(parts.path.split("/")[1], "A" * 22)
                r = http.get(wrong + "talk.mp4")
                assert (r.status_code, r.content) == (404, b"")
                listed = json.loads(ok(viewer, "open", "--list", "--json"))
                assert [e["url"] for e in listed] == [url]
                token = listed[0]["token"]
                ok(viewer, "open", "--revoke", token)
                r = http.get(url + "talk.mp4")
                assert (r.status_code, r.content) == (404, b"")
                assert http.post(wrong).status_code == 405
            # nothing listens beyond loopback
            port = parts.port
            assert port is not None
            assert _listening_on(port) == {"127.0.0.1"}
        finally:
            p2pshare(viewer, "stop")


def test_open_needs_a_node(tmp_path: Path) -> None:
    res = p2pshare(tmp_path / "h", "open", "p2pshare://x")
    assert res.code != 0
    res = p2pshare(tmp_path / "h", "open", "--list")
    assert res.code == 2 and "needs the home's node" in res.err
    assert len(res.err.strip().splitlines()) == 1


def _sent(home: Path) -> int:
    status = json.loads(ok(home, "status", "--json"))
    return int(status["bytes_sent"])


def _listening_on(port: int) -> set[str]:
    """The local addresses with a TCP listener on ``port`` (/proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, hexport = local.split(":")
        if state == "0A" and int(hexport, 16) == port:  # LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found
