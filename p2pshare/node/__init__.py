"""The node layer: the only code that touches trio and libp2p.

This package is a thin shell around py-libp2p 0.8.1 (TCP + Noise + Yamux and
a Kademlia DHT) that moves bytes between libp2p streams and the sans-IO
state machines below it. Its parts:

* :mod:`~p2pshare.node.host` — :func:`open_host`, the running host with its
  identity and DHT (:class:`NodeHost`).
* :mod:`~p2pshare.node.identity` — the node's Ed25519 key pair on disk.
* :mod:`~p2pshare.node.streams` — :class:`LibP2PStream`, a libp2p stream as
  a ``trio.abc.HalfCloseableStream`` with libp2p errors mapped to trio's.
* :mod:`~p2pshare.node.dht` — provider records keyed by root id (CIDv1),
  lookups, and the :class:`Announcer` service that keeps them alive.
* :mod:`~p2pshare.node.compat` — every py-libp2p 0.8.1 workaround, each with
  its pitfall number and a "remove when" note.
"""

from p2pshare.node.compat import configure_libp2p_logging, short_peer_id
from p2pshare.node.dht import (
    ANNOUNCE_INTERVAL_S,
    Announcer,
    AnnouncerStatistics,
    find_providers,
    provide,
    root_key,
    serve_announcer,
)
from p2pshare.node.host import NodeHost, parse_peer_addr
from p2pshare.node.host_start import open_host
from p2pshare.node.identity import load_or_create_identity
from p2pshare.node.streams import LibP2PStream, transfer_deadline

__all__ = [
    "ANNOUNCE_INTERVAL_S",
    "Announcer",
    "AnnouncerStatistics",
    "LibP2PStream",
    "NodeHost",
    "configure_libp2p_logging",
    "find_providers",
    "load_or_create_identity",
    "open_host",
    "parse_peer_addr",
    "provide",
    "root_key",
    "serve_announcer",
    "short_peer_id",
    "transfer_deadline",
]
