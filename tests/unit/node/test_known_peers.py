"""<home>/known-peers is read like hostile input."""

from __future__ import annotations

from pathlib import Path

from p2pshare.node.known_peers import KNOWN_PEERS_FILE, MAX_KNOWN, load_known

P = "/p2p/12D3KooWJxyw6Aa56nug9ziqWFWv2EBqdSMHerJJ4bAK1wbcaSeb"


def test_bad_lines_are_skipped_and_at_most_max_are_read(tmp_path: Path) -> None:
    good = [f"/ip4/11.0.0.{i}/tcp/4001{P}" for i in range(1, 12)]
    lines = ["garbage", "/ip4/11.0.0.1/tcp/4001", "\x00\xff", good[0], "", *good[1:]]
    (tmp_path / KNOWN_PEERS_FILE).write_text("\n".join(lines))
    assert load_known(tmp_path) == good[:MAX_KNOWN]


def test_no_file_and_an_unreadable_one_mean_no_peers(tmp_path: Path) -> None:
    assert load_known(tmp_path) == []
    (tmp_path / KNOWN_PEERS_FILE).mkdir()
    assert load_known(tmp_path) == []
