"""Links the owner controls (issue 18): an expired link and a revoked link
are refused by the owner's node and by every seed keeping the share, with
no chunk byte served and a clear error, while another link to the same
share keeps working, also with the owner offline."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from p2pshare.format import parse_link
from tests.helpers.cli import Result, ok, p2pshare
from tests.helpers.procs import LOOPBACK, running
from tests.helpers.procs import seed as _seed

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _sent(home: Path) -> int:
    return int(json.loads(ok(home, "status", "--json"))["bytes_sent"])


def _get(home: Path, link: str, out: Path, boot: str) -> Result:
    return p2pshare(
        home, "get", link, "-o", out, "--listen", LOOPBACK,
        "--bootstrap", boot, "--timeout", "10",
    )  # fmt: skip


def test_expired_and_revoked_links_are_refused_everywhere(tmp_path: Path) -> None:
    src = tmp_path / "report.pdf"
    src.write_bytes(os.urandom(600_000))
    owner = tmp_path / "owner"
    s0, a0 = _seed(tmp_path / "s0", "eu-west")
    with running(s0):
        s1, a1 = _seed(tmp_path / "s1", "us-east", "--bootstrap", a0)
        seeds = [tmp_path / "s0", tmp_path / "s1"]
        with running(s1):
            res = p2pshare(
                owner, "node", "--background", "--listen", LOOPBACK, "--bootstrap", a0
            )
            assert res.code == 0, res.err
            try:
                short = ok(
                    owner, "add", "--replicas", "2", "--seed", a0, "--seed", a1,
                    "--expires", "2s", src,
                ).strip()  # fmt: skip
                issued = time.monotonic()
                keep = ok(owner, "link", src.name, "--expires", "7d").strip()
                gone = ok(owner, "link", src.name, "--expires", "7d").strip()
                assert len({short, keep, gone}) == 3
                assert len({parse_link(x).root_id for x in (short, keep, gone)}) == 1
                assert {a0, a1} <= set(parse_link(keep).peers)
                res = p2pshare(owner, "revoke", gone)
                assert res.code == 0, res.err
                assert "revoked 1 link" in res.err and "told 2 seed(s)" in res.err
                time.sleep(max(0.0, 2.5 - (time.monotonic() - issued)))
                before = [_sent(h) for h in (owner, *seeds)]
                for n, (link, why) in enumerate(
                    [(short, "link: expired"), (gone, "link: revoked by the owner")]
                ):
                    res = _get(tmp_path / f"g{n}", link, tmp_path / f"o{n}", a0)
                    assert res.code == 5, res.err
                    assert why in res.err and "provider(s) refused it" in res.err
                    assert "Traceback" not in res.err
                    assert not (tmp_path / f"o{n}" / src.name).exists()
                # nobody sent a byte of the share for those two
                assert [_sent(h) for h in (owner, *seeds)] == before
                res = _get(tmp_path / "g2", keep, tmp_path / "o2", a0)
                assert res.code == 0, res.err
                assert (tmp_path / "o2" / src.name).read_bytes() == src.read_bytes()
                assert "[3 links (1 expired, 1 revoked)]" in ok(owner, "ls")
            finally:
                p2pshare(owner, "stop")
            # the owner is offline: the seeds alone still tell the links apart
            before = [_sent(h) for h in seeds]
            for n, link in enumerate((short, gone), 3):
                res = _get(tmp_path / f"g{n}", link, tmp_path / f"o{n}", a1)
                assert res.code == 5, res.err
                assert "provider(s) refused it" in res.err
            assert [_sent(h) for h in seeds] == before
            res = _get(tmp_path / "g5", keep, tmp_path / "o5", a1)
            assert res.code == 0, res.err
            assert (tmp_path / "o5" / src.name).read_bytes() == src.read_bytes()


def test_links_and_revoke_without_a_background_node(tmp_path: Path) -> None:
    """`add --expires` and `link --expires` with no node running sign their
    tickets from the home's identity; `revoke` runs a node for itself; a
    node started later refuses the revoked link and serves the other."""
    src = tmp_path / "notes.txt"
    src.write_bytes(os.urandom(50_000))
    owner = tmp_path / "owner"
    gone = ok(owner, "add", "--expires", "7d", src).strip()
    keep = ok(owner, "link", src.name, "--expires", "7d").strip()
    assert parse_link(gone).ticket and parse_link(keep).ticket
    res = p2pshare(owner, "revoke", gone)
    assert res.code == 0, res.err
    assert "revoked 1 link" in res.err and "told 0 seed(s)" in res.err
    res = p2pshare(owner, "node", "--background", "--listen", LOOPBACK)
    assert res.code == 0, res.err
    try:
        link = ok(owner, "link", src.name).strip()  # under control: a ticket
        assert parse_link(link).ticket is not None
        boot = parse_link(link).peers[0]
        res = _get(tmp_path / "g0", gone, tmp_path / "o0", boot)
        assert res.code == 5 and "link: revoked by the owner" in res.err, res.err
        res = _get(tmp_path / "g1", keep, tmp_path / "o1", boot)
        assert res.code == 0, res.err
        assert (tmp_path / "o1" / src.name).read_bytes() == src.read_bytes()
    finally:
        p2pshare(owner, "stop")
