"""Host construction: transports, security, muxers and addresses.

The options ``host.py`` passes to ``new_host``, and the two fixes it applies
to the host before and inside ``host.run()``:

* P1, P2, P3: the transport, security and muxer lists are pinned to TCP,
  Noise and Yamux (:func:`tcp_transports`, :func:`security_options`,
  :func:`muxer_options`);
* A1: wildcard listen addresses are expanded before being advertised
  (:func:`advertised_addrs`);
* A2: the swarm's background dialer is kept stopped
  (:func:`disable_auto_connector`);
* A3: listen failures are detected (:func:`unbound_listen_addrs`).

A1-A3 are not in the notes; each function's docstring describes its pitfall.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import trio
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TMuxerOptions, TProtocol, TSecurityOptions
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.tcp.tcp import TCP
from multiaddr import Multiaddr
from multiaddr.utils import get_thin_waist_addresses

from p2pshare.node.compat.secure_io import BufferedNoiseTransport, stock_stream
from p2pshare.node.compat.yamux_io import BufferedYamux, tune_yamux

if TYPE_CHECKING:
    from libp2p.abc import IHost, ITransport
    from libp2p.crypto.keys import KeyPair

__all__ = [
    "advertised_addrs",
    "disable_auto_connector",
    "muxer_options",
    "security_options",
    "tcp_transports",
    "unbound_listen_addrs",
]

logger = logging.getLogger(__name__)


def tcp_transports() -> list[ITransport]:
    """The only transport p2pshare uses: TCP.

    P2: QUIC silently truncates stream tails and runs at 3-5 MB/s, and
    ``new_host`` builds a QUIC transport for any ``/quic-v1`` listen address.
    Passing the transport list explicitly means no listen address can enable
    another transport. Remove when: QUIC's EOF race is fixed upstream and its
    throughput is measured acceptable.
    """
    return [TCP()]


def security_options(key_pair: KeyPair) -> TSecurityOptions:
    """Security transports for ``new_host(sec_opt=...)``: Noise, and only Noise.

    P3: without ``sec_opt`` a 0.8.1 host also offers and accepts
    ``/plaintext/2.0.0`` and SECIO, so any dialer can get an unencrypted,
    unauthenticated connection. Remove when: never; pinning the list is simply
    correct (TLS could be added here if ever needed).
    """
    noise_key = create_new_x25519_key_pair().private_key
    transport = NoiseTransport if stock_stream() else BufferedNoiseTransport
    return {NOISE_PROTOCOL_ID: transport(key_pair, noise_privkey=noise_key)}


def muxer_options() -> TMuxerOptions:
    """Stream muxers for ``new_host(muxer_opt=...)``: Yamux only.

    P1: Mplex deadlocks when one stream reads and writes concurrently, resets
    streams after 5 s without reads and runs at ~19 MB/s. With Mplex absent
    from the options it cannot be negotiated. Remove when: never (pinning is
    correct); revisit if Mplex is fixed and wanted for interop.

    F2: unless the stock stream is asked for, Yamux keeps received frames
    without copying, sends frames of up to 256 KiB and batches its window
    updates (``compat.yamux_io``).
    """
    if stock_stream():
        return {TProtocol(YAMUX_PROTOCOL_ID): Yamux}
    tune_yamux()
    return {TProtocol(YAMUX_PROTOCOL_ID): BufferedYamux}


def advertised_addrs(candidates: list[Multiaddr]) -> list[Multiaddr]:
    """``addrs_factory`` for ``new_host``: advertise dialable addresses only.

    A1: ``BasicHost.get_addrs()`` returns listen addresses as bound, so a host
    listening on ``/ip4/0.0.0.0/tcp/P`` advertises ``0.0.0.0`` in identify,
    in its signed peer record and in every DHT provider record. Each wildcard
    is replaced by the concrete interface addresses (plus loopback, which is
    harmless to advertise: Noise authenticates whoever answers). Runs on
    every ``get_addrs()`` call, so interface changes are picked up; it costs
    ~0.1 ms. Remove when: upstream expands wildcards in ``get_addrs()``.
    """
    out: list[Multiaddr] = []
    seen: set[str] = set()

    def add(addr: Multiaddr) -> None:
        if str(addr) not in seen:
            seen.add(str(addr))
            out.append(addr)

    for addr in candidates:
        wildcard = _wildcard_family(addr)
        if wildcard is None:
            add(addr)
            continue
        try:
            expanded = list(get_thin_waist_addresses(addr))
        except Exception:  # psutil or interface enumeration failed
            logger.debug("cannot enumerate interfaces for %s", addr, exc_info=True)
            expanded = []
        for concrete in expanded:
            if _wildcard_family(concrete) is None:
                add(concrete)
        port = addr.value_for_protocol("tcp")
        loopback = "/ip4/127.0.0.1" if wildcard == 4 else "/ip6/::1"
        add(Multiaddr(f"{loopback}/tcp/{port}"))
    return out


def _wildcard_family(addr: Multiaddr) -> int | None:
    """4 or 6 if ``addr`` is an unspecified (wildcard) IP address."""
    for proto in ("ip4", "ip6"):
        try:
            value = addr.value_for_protocol(proto)
        except Exception:  # multiaddr raises when the protocol is absent
            value = None
        if value and ipaddress.ip_address(value).is_unspecified:
            return 4 if proto == "ip4" else 6
    return None


def unbound_listen_addrs(host: IHost, wanted: Iterable[Multiaddr]) -> list[str]:
    """The listen addresses ``host.run()`` failed to bind; call inside it.

    A3: ``Swarm.listen`` returns False on failure and ``host.run()`` ignores
    it; the cause (port in use, address not local) is logged at DEBUG. The
    host then runs without listening. Remove when: ``host.run()`` raises.
    """
    listening = host.get_network().listeners
    return [str(a) for a in wanted if str(a) not in listening]


def disable_auto_connector(host: IHost) -> None:
    """Keep the swarm's background dialer from starting; call before ``run()``.

    A2: 0.8.1's ``AutoConnector`` keeps the node near 200 connections: while
    below ``min_connections`` (50) it dials, every 10 s, up to 199 peers from
    the peerstore, which the DHT fills with every peer and provider it hears
    of. For a file-sharing node that is traffic nobody asked for, and it
    tells every provider we merely looked up that we exist. p2pshare dials on
    demand (DHT lookups, transfers, bootstrap). The swarm starts the
    connector inside ``host.run()``, concurrently with ``listen()``, so a
    ``stop()`` afterwards can lose the race; instead its ``start`` is made a
    no-op, which leaves it stopped (every entry point checks that). Remove
    when: the dialer can be disabled through ``ConnectionConfig``.
    """
    connector = getattr(host.get_network(), "auto_connector", None)
    if connector is None or not hasattr(connector, "start"):  # pragma: no cover
        logger.warning("libp2p swarm has no auto_connector; nothing to disable")
        return

    async def stay_stopped() -> None:
        await trio.lowlevel.checkpoint()

    setattr(connector, "start", stay_stopped)  # noqa: B010 - a method slot


def advertise_circuits(host: IHost, circuits: Callable[[], list[Multiaddr]]) -> None:
    """Advertise relay addresses too (identify, peer records, DHT records).

    A4: ``BasicHost.get_addrs()`` strips "any existing /p2p/ component" of
    each address by decapsulating it, which on ``…/p2p/<relay>/p2p-circuit``
    removes the whole relay part: the relay's own address came out with our
    peer id appended (a wrong address for us). Circuit addresses are
    therefore appended after the library's processing, already complete.
    Remove when: upstream handles circuit addresses in ``get_addrs``.
    """
    original = host.get_addrs

    def get_addrs() -> list[Multiaddr]:
        addrs = list(original())
        seen = {str(a) for a in addrs}
        return addrs + [c for c in circuits() if str(c) not in seen]

    host.get_addrs = get_addrs  # type: ignore[method-assign]
