"""Stream handlers: a failing handler costs one stream, not the host (P4).

:func:`safe_handler` wraps every stream handler p2pshare registers (its own
protocols in ``host.py`` and the hardened KAD server in ``compat.dht``);
:func:`reset_quietly` is the bounded, error-swallowing reset it and the
stream code use on paths that must not fail; :func:`short_peer_id` is the
peer id form every log line uses.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import trio
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID

from p2pshare.errors import P2PShareError

if TYPE_CHECKING:
    from libp2p.abc import INetStream

__all__ = [
    "STREAM_RESET_TIMEOUT_S",
    "StreamHandler",
    "reset_quietly",
    "safe_handler",
    "short_peer_id",
]

logger = logging.getLogger(__name__)

StreamHandler = Callable[["INetStream"], Awaitable[None]]

# Resetting a stream writes one 12-byte Yamux frame, but it queues behind the
# connection's write lock; a congested or dead connection must not hold a
# cleanup path hostage.
STREAM_RESET_TIMEOUT_S: Final = 2.0

_PEER_ID_SHORT_LEN: Final = 8


def short_peer_id(peer_id: ID | bytes | str) -> str:
    """Short, log-friendly form of a peer id: the last 8 base58 characters.

    Ed25519 peer ids all start with ``12D3KooW``, so the tail is the part
    that tells peers apart.
    """
    text = str(ID(peer_id)) if isinstance(peer_id, bytes) else str(peer_id)
    return "…" + text[-_PEER_ID_SHORT_LEN:]


def safe_handler(handler: StreamHandler) -> StreamHandler:
    """Wrap a stream handler so that its failure costs one stream, not the host.

    P4: in 0.8.1 an exception escaping a stream handler propagates into the
    connection's nursery, fails the Swarm service and takes the whole host
    down. The wrapper catches every ``Exception`` (with ``except*``, so a
    group is split), logs it at WARNING with the remote peer's short id and
    resets the stream. ``trio.Cancelled`` and any other ``BaseException`` are
    never swallowed: the non-``Exception`` part of a group is re-raised. Peer
    misbehaviour (``P2PShareError``, libp2p stream errors) is logged in one
    line; anything else is a bug in the handler and is logged with its
    traceback. Remove when: never; a task root catch-all is our policy
    (STYLE §10), even once libp2p isolates handlers itself.
    """

    @functools.wraps(handler)
    async def guarded(stream: INetStream) -> None:
        try:
            await handler(stream)
        except* Exception as group:
            peer = _remote_peer_short(stream)
            protocol = stream.get_protocol()
            for exc in group.exceptions:
                if isinstance(exc, P2PShareError | BaseLibp2pError):
                    logger.warning(
                        "handler %s: peer %s: %s: %s",
                        protocol,
                        peer,
                        type(exc).__name__,
                        exc,
                    )
                else:
                    logger.warning(
                        "handler %s: peer %s: unexpected error",
                        protocol,
                        peer,
                        exc_info=exc,
                    )
            await reset_quietly(stream)

    return guarded


def _remote_peer_short(stream: INetStream) -> str:
    try:
        return short_peer_id(stream.muxed_conn.peer_id)
    except Exception:  # a half-torn-down stream may lack its connection
        return "?"


async def reset_quietly(stream: INetStream) -> None:
    """Reset ``stream``, bounded in time, ignoring errors (it may be dead).

    Cancellation: honoured (not shielded); callers that must reset during
    cancellation shield the call themselves.
    """
    with trio.move_on_after(STREAM_RESET_TIMEOUT_S):
        try:
            await stream.reset()
        except Exception:  # already reset or connection gone: nothing to do
            logger.debug("stream reset failed", exc_info=True)
