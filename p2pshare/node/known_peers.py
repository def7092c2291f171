"""Last-good peers: what a node remembers of the DHT for its next start.

A home configured with ``bootstrap`` or ``seeds`` joins through them; one
that was given ``--bootstrap`` once should not need it again, and a
bootstrap peer that moved should not leave a home stranded. So when a node
stops, it writes up to :data:`MAX_KNOWN` peers it was connected to and
that serve the DHT, reached over the network (never loopback: those are on
this machine and found by hints or the LAN), to ``<home>/known-peers``
(0600, one full multiaddr per line, replaced atomically); the next start
bootstraps through them beside the configured ones. A node that met nobody
keeps the old list. The file is hostile input like any other: bad lines
are skipped, at most :data:`MAX_KNOWN` are read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID

from p2pshare.errors import UsageError
from p2pshare.node import compat
from p2pshare.node.host import parse_peer_addr

if TYPE_CHECKING:
    from p2pshare.node.host import NodeHost

__all__ = ["KNOWN_PEERS_FILE", "MAX_KNOWN", "load_known", "remember_known"]

log = logging.getLogger(__name__)

KNOWN_PEERS_FILE: Final = "known-peers"
MAX_KNOWN: Final = 8
_MAX_FILE_BYTES = 64 * 1024


def load_known(home: Path) -> list[str]:
    """The remembered peers (valid full multiaddrs), at most MAX_KNOWN."""
    path = home / KNOWN_PEERS_FILE
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_FILE_BYTES)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("%s: cannot read (%s)", path, exc.strerror)
        return []
    out: list[str] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        text = line.strip()
        if not text or len(out) >= MAX_KNOWN:
            continue
        try:
            parse_peer_addr(text)
        except UsageError:
            continue
        out.append(text)
    return out


def worth_remembering(nh: NodeHost) -> list[str]:
    """Connected DHT servers reached over the network, as full multiaddrs."""
    store = nh.host.get_peerstore()
    out: list[str] = []
    for peer in nh.connected_peers():
        try:
            protocols = store.get_protocols(peer) or []
            addrs = store.addrs(peer)
        except Exception:  # the peerstore knows nothing more of it
            protocols, addrs = [], []
        if str(KAD_PROTOCOL_ID) not in protocols:
            continue
        for addr in compat.rank_addrs(addrs):
            if compat.addr_rank(addr) == 2:  # loopback: this machine
                continue
            text = str(addr)
            out.append(text if "/p2p/" in text else f"{text}/p2p/{peer}")
            break
        if len(out) >= MAX_KNOWN:
            break
    return out


def remember_known(home: Path, nh: NodeHost) -> None:
    """Write the peers worth remembering (nothing when there are none)."""
    peers = worth_remembering(nh)
    if not peers:
        return
    path = home / KNOWN_PEERS_FILE
    tmp = path.with_name(f".{KNOWN_PEERS_FILE}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(p + "\n" for p in peers))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("%s: cannot write (%s)", path, exc.strerror)
        return
    log.info("remembered %d peer(s) for the next start", len(peers))
