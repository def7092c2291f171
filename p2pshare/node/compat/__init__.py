"""Every py-libp2p 0.8.1 workaround p2pshare needs, in one place.

Theory of operation
-------------------
py-libp2p 0.8.1 works end to end on TCP + Noise + Yamux, but several of its
defaults are unsafe or broken for a file-sharing node (see
``LIBP2P-NOTES.md`` beside ``DESIGN.md``; the ``Pn`` numbers below are its
pitfall numbers). The rest of ``p2pshare.node`` never reaches into libp2p
internals itself: it calls the helpers here, so that when upstream fixes land
each workaround can be deleted on its own, following its "remove when" note.

================  ==========================================================
helper            workaround
================  ==========================================================
tcp_transports    TCP only; QUIC truncates stream tails (P2)
security_options  Noise only; the default list accepts plaintext/SECIO (P3)
muxer_options     Yamux only; Mplex deadlocks on read+write (P1)
advertised_addrs  wildcard listen addrs are advertised as ``0.0.0.0`` (A1)
advertise_        ``get_addrs()`` turns a relay address into the relay's own
circuits          address with our id (A4)
disable_auto_     the swarm dials up to 199 peerstore peers by itself (A2)
connector
unbound_listen_   ``host.run()`` ignores listen failures (A3)
addrs
safe_handler      a raising stream handler kills the whole host (P4)
stream_eof_clean  a reset or a dead connection reads as a clean EOF (P10)
unread_bytes      closing with unread data stalls the peer's writer (P10)
wait_readable,    a cancelled read or write can corrupt the Noise session
wait_send_credit, and drop the whole connection (N1); library operations
run_detached      run where no caller can cancel them
harden_dht_server 12 idle KAD streams starve a DHT server; every normal
                  KAD close logs a WARNING and sends an RST (P5, P8)
uncached_find_    ``find_providers`` answers from the local cache without a
providers         network query, even when that cache holds only us (P11)
skip_library_     the library re-provides at its own times as well (P17)
republish
stop_providing    there is no un-provide API (P17)
close_network     ``host.run()`` exit leaks sockets, and so does cancelling
                  libp2p's tasks while they close (P9; ``host.py`` also runs
                  the host under a shield for this)
configure_libp2p_ libp2p's logger has no handler and does not propagate;
logging           "Failed to read DHT message" floods the log (P8)
cap_inbound_      nothing caps inbound streams per connection or peer: raw
streams           SYNs cost a node without bound (S1)
parallel_dials    one address per peer is dialled, retried, unbounded: a
                  silent drop costs 10 s or more per dial (D1)
BufferedNoise-    the Noise session reads 2 bytes per syscall, copies each
Transport         message three times and sends a Yamux frame as two
                  messages (F1, ``secure_io``)
BufferedYamux,    stream buffers copy their live bytes as they grow; a
tune_yamux        WINDOW_UPDATE per read; 64 KiB frames (F2, ``yamux_io``)
================  ==========================================================

(A1-A4, N1, S1, D1, F1 and F2 are not in the notes: see
:func:`advertised_addrs`, :func:`disable_auto_connector`,
:func:`unbound_listen_addrs`, the "Cancellation-safe stream I/O" section of
``stream_io.py``, ``inbound.py``, ``secure_io.py`` and ``yamux_io.py``.)

The helpers live in submodules by concern, each with the pitfall notes for
what it holds; import them from this package, which re-exports them all:

* ``options``: host construction: transports, security, muxers, addresses,
  the auto-dialer, listen failures (P1-P3, A1-A3);
* ``handlers``: :func:`safe_handler`, :func:`reset_quietly` and
  :func:`short_peer_id` (P4);
* ``stream_io``: Yamux stream state: EOF classification, unread data and
  cancellation-safe waits (P10, N1);
* ``dht``: DHT server hardening, uncached lookups, provider records (P5, P8,
  P11, P17);
* ``lifecycle``: detached library operations and closing the network (N1,
  P9);
* ``logs``: routing libp2p's log records (P8);
* ``inbound``: caps on inbound streams per connection and peer (S1);
* ``dialer``: parallel, bounded dials of every address (D1);
* ``secure_io``, ``yamux_io``: a cheaper stream, wire-compatible (F1, F2;
  ``P2PSHARE_STOCK_STREAM=1`` turns both off).

This package is the leaf of ``p2pshare.node``: it imports nothing else from
the node package (its submodules import only each other), so ``streams.py``,
``host.py`` and ``dht.py`` may all use it.
"""

from p2pshare.node.compat.dht import (
    DHT_MAX_INBOUND_STREAMS,
    DHT_MAX_STREAMS_PER_PEER,
    DHT_STREAM_IDLE_S,
    DHT_STREAM_LIFETIME_S,
    harden_dht_server,
    prune_routing_table,
    push_identify,
    servers_only_routing,
    set_dht_mode,
    skip_library_republish,
    stop_providing,
    uncached_find_providers,
)
from p2pshare.node.compat.dialer import (
    ADDR_DIAL_TIMEOUT_S,
    addr_rank,
    parallel_dials,
    rank_addrs,
    set_circuit_dialer,
)
from p2pshare.node.compat.handlers import (
    STREAM_RESET_TIMEOUT_S,
    StreamHandler,
    reset_quietly,
    safe_handler,
    short_peer_id,
)
from p2pshare.node.compat.inbound import (
    MAX_INBOUND_PER_CONN,
    MAX_INBOUND_PER_PEER,
    NEGOTIATE_TIMEOUT_S,
    cap_inbound_streams,
    inbound_stats,
)
from p2pshare.node.compat.lifecycle import (
    NETWORK_CLOSE_TIMEOUT_S,
    close_network,
    run_detached,
    set_background_nursery,
)
from p2pshare.node.compat.logs import configure_libp2p_logging
from p2pshare.node.compat.options import (
    advertise_circuits,
    advertised_addrs,
    disable_auto_connector,
    muxer_options,
    security_options,
    tcp_transports,
    unbound_listen_addrs,
)
from p2pshare.node.compat.secure_io import (
    BufferedNoiseTransport,
    stock_stream,
)
from p2pshare.node.compat.stream_io import (
    SEND_CREDIT_WAIT_S,
    SHIELDED_IO_LIMIT_S,
    stream_eof_clean,
    unread_bytes,
    wait_readable,
    wait_send_credit,
)
from p2pshare.node.compat.yamux_io import BufferedYamux, tune_yamux

__all__ = [
    "ADDR_DIAL_TIMEOUT_S",
    "DHT_MAX_INBOUND_STREAMS",
    "DHT_MAX_STREAMS_PER_PEER",
    "DHT_STREAM_IDLE_S",
    "DHT_STREAM_LIFETIME_S",
    "MAX_INBOUND_PER_CONN",
    "MAX_INBOUND_PER_PEER",
    "NEGOTIATE_TIMEOUT_S",
    "NETWORK_CLOSE_TIMEOUT_S",
    "SEND_CREDIT_WAIT_S",
    "SHIELDED_IO_LIMIT_S",
    "STREAM_RESET_TIMEOUT_S",
    "BufferedNoiseTransport",
    "BufferedYamux",
    "StreamHandler",
    "addr_rank",
    "advertise_circuits",
    "advertised_addrs",
    "cap_inbound_streams",
    "close_network",
    "configure_libp2p_logging",
    "disable_auto_connector",
    "harden_dht_server",
    "inbound_stats",
    "muxer_options",
    "parallel_dials",
    "prune_routing_table",
    "push_identify",
    "rank_addrs",
    "reset_quietly",
    "run_detached",
    "safe_handler",
    "security_options",
    "servers_only_routing",
    "set_background_nursery",
    "set_circuit_dialer",
    "set_dht_mode",
    "short_peer_id",
    "skip_library_republish",
    "stock_stream",
    "stop_providing",
    "stream_eof_clean",
    "tcp_transports",
    "tune_yamux",
    "unbound_listen_addrs",
    "uncached_find_providers",
    "unread_bytes",
    "wait_readable",
    "wait_send_credit",
]
