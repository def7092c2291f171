"""Starting the node's libp2p host: identity, transports, DHT, shutdown.

:func:`open_host` builds a py-libp2p host for a home (its identity key,
Noise, Yamux, listen addresses, the Kademlia DHT in the wanted mode, the
workarounds of ``compat/``), runs it in the background of a nursery and
yields the :class:`~p2pshare.node.host.NodeHost` facade the rest of the
node uses; leaving the context closes every connection and listener.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from libp2p import new_host
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from p2pshare.errors import ConfigError, UsageError
from p2pshare.node import compat, pointers
from p2pshare.node.host import (
    PRUNE_EVERY_S,
    SHUTDOWN_TIMEOUT_S,
    DHTModeName,
    NodeHost,
    _parse_listen_addr,
    parse_peer_addr,
)

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from trio_typing import TaskStatus
from p2pshare.node.identity import IDENTITY_FILE, load_or_create_identity

__all__ = ["open_host"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# open_host
# --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_host(
    *,
    home_dir: Path,
    listen: Sequence[str],
    bootstrap: Sequence[str] = (),
    dht_mode: DHTModeName,
) -> AsyncIterator[NodeHost]:
    """Run a libp2p host with a DHT for the duration of the block.

    Args:
        home_dir: the node's home; holds ``identity.key``.
        listen: TCP listen multiaddrs, e.g. ``/ip4/0.0.0.0/tcp/4001``
            (``tcp/0`` picks a free port; tests use ``/ip4/127.0.0.1/tcp/0``).
        bootstrap: full multiaddrs (with ``/p2p/<id>``) of DHT peers to join
            through; unreachable ones are logged and skipped.
        dht_mode: ``"server"`` (long-running nodes answer DHT queries) or
            ``"client"`` (short-lived nodes only ask).

    Yields:
        The ready :class:`NodeHost` (see the module docstring for what
        "ready" means).

    Raises:
        ConfigError: a listen or bootstrap address is malformed, a listen
            address cannot be bound, or the identity file is unusable.

    On exit (normal, error or cancellation) the DHT stops and every
    connection and listening socket is closed, shielded and bounded by
    ``compat.NETWORK_CLOSE_TIMEOUT_S``.
    """
    if dht_mode not in ("server", "client"):
        raise ValueError(f"dht_mode must be 'server' or 'client', not {dht_mode!r}")
    listen_addrs = [_parse_listen_addr(text) for text in listen]
    try:
        for text in bootstrap:
            parse_peer_addr(text)
    except UsageError as exc:
        raise ConfigError(f"bootstrap: {exc}") from exc
    key_pair = await trio.to_thread.run_sync(
        load_or_create_identity, home_dir / IDENTITY_FILE
    )
    verified: list[Multiaddr] = []
    host = new_host(
        key_pair=key_pair,
        sec_opt=compat.security_options(key_pair),
        muxer_opt=compat.muxer_options(),
        transports=compat.tcp_transports(),
        listen_addrs=listen_addrs,
        addrs_factory=lambda found: compat.advertised_addrs([*verified, *found]),
        negotiate_timeout=compat.NEGOTIATE_TIMEOUT_S,
    )
    compat.cap_inbound_streams()
    compat.parallel_dials(host)
    mode = DHTMode.SERVER if dht_mode == "server" else DHTMode.CLIENT
    dht = KadDHT(host, mode)
    pointers.register(dht)  # live shares' records (node/pointers.py)
    if mode is DHTMode.SERVER:
        compat.harden_dht_server(host, dht)
    compat.servers_only_routing(host, dht)
    compat.disable_auto_connector(host)
    node = NodeHost(host, dht, verified)
    compat.advertise_circuits(host, node.circuit_addrs)

    stop = trio.Event()
    with _unwrap_single_exception():
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(_run_host, host, dht, listen_addrs, stop)
                if bootstrap:
                    await node.bootstrap(bootstrap)
                logger.info(
                    "node %s up (DHT %s) on %s",
                    compat.short_peer_id(node.peer_id),
                    dht_mode,
                    ", ".join(str(a) for a in host.get_transport_addrs()),
                )
                yield node
            finally:
                stop.set()
    logger.info("node %s down", compat.short_peer_id(node.peer_id))


async def _run_host(
    host: IHost,
    dht: KadDHT,
    listen_addrs: Sequence[Multiaddr],
    stop: trio.Event,
    *,
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the swarm and the DHT, shielded, until ``stop``; then shut down.

    The libp2p machinery runs under a shielded cancel scope because 0.8.1's
    own cleanup is not cancellation-safe (P9): if the caller's cancellation
    reached the swarm's tasks while the network was being closed, a
    half-closed connection would keep its socket. Instead, the caller's exit
    (normal, error or cancellation) sets ``stop``, and shutdown runs in
    order: DHT service, ``compat.close_network``, swarm. The shield gets a
    deadline (:data:`SHUTDOWN_TIMEOUT_S`) as soon as shutdown starts, so it
    can never hang the caller.

    Raises:
        ConfigError: a listen address could not be bound (raised outside
            libp2p's nurseries, so ``nursery.start`` re-raises it as is).
    """
    failed: list[str] = []
    with trio.CancelScope(shield=True) as shield:
        async with host.run(listen_addrs=listen_addrs):
            try:
                failed = compat.unbound_listen_addrs(host, listen_addrs)
                if not failed:
                    async with (
                        background_trio_service(dht),
                        trio.open_nursery() as background,
                    ):
                        compat.set_background_nursery(host, background)
                        background.start_soon(_prune_routing_table, host, dht)
                        try:
                            task_status.started()
                            await stop.wait()
                        finally:
                            # from here the shield has a deadline: stopping
                            # the DHT service (leaving this block) once hung
                            # a node cancelled 50 ms into its start for good
                            shield.deadline = trio.current_time() + SHUTDOWN_TIMEOUT_S
                            compat.set_background_nursery(host, None)
                            background.cancel_scope.cancel()
            finally:
                shield.deadline = min(
                    shield.deadline, trio.current_time() + SHUTDOWN_TIMEOUT_S
                )
                await compat.close_network(host)
    if shield.cancelled_caught:
        logger.warning("libp2p host shutdown took over %.0f s", SHUTDOWN_TIMEOUT_S)
    if failed:
        raise ConfigError(
            f"listen address {', '.join(failed)}: cannot listen "
            "(port in use, or not an address of this machine)"
        )


async def _prune_routing_table(host: IHost, dht: KadDHT) -> None:
    """Every :data:`PRUNE_EVERY_S`, drop routing-table peers that turned
    DHT client (``compat.prune_routing_table``)."""
    while True:
        await trio.sleep(PRUNE_EVERY_S)
        removed = compat.prune_routing_table(host, dht)
        if removed:
            logger.info("DHT: %d peer(s) left the routing table (now clients)", removed)


@contextlib.contextmanager
def _unwrap_single_exception() -> Iterator[None]:
    """Re-raise a one-exception group as that exception.

    ``open_host`` yields inside a nursery, so with strict exception groups
    anything leaving the caller's block, or a startup error, would arrive
    wrapped in an ``ExceptionGroup``. A group of one is unwrapped (keeping
    the exception's own cause and context), as ``nursery.start`` does; a
    real group (the caller and the host failed together) is left as is.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        inner = group.exceptions[0]
        context = inner.__context__
        try:
            raise inner
        finally:
            inner.__context__ = context
            del inner, context
