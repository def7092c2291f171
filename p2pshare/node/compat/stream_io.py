"""Stream I/O on 0.8.1's Yamux: end of stream (P10) and cancellation (N1).

``p2pshare.node.streams`` builds its trio stream on these helpers; the
hardened KAD server in ``compat.dht`` uses them too. They all read the state
of the Yamux stream and connection behind an ``INetStream``, because 0.8.1
exposes none of it:

* :func:`stream_eof_clean` tells a real end of stream from a reset or a lost
  connection, which 0.8.1 reports alike (P10);
* :func:`unread_bytes` lets a close with unread data reset instead of
  stalling the peer's writer (P10);
* :func:`wait_readable` and :func:`wait_send_credit` wait, cancellably and
  consuming nothing, until a read or write cannot block on the peer, so that
  it can then run shielded (N1, below).

Every helper checks the attributes it reads; with a muxer other than Yamux
(none is negotiated, see ``compat.options.muxer_options``) it answers as if
the stream had no such problem.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Final

import trio

if TYPE_CHECKING:
    from libp2p.abc import INetStream

__all__ = [
    "SEND_CREDIT_WAIT_S",
    "SHIELDED_IO_LIMIT_S",
    "stream_eof_clean",
    "unread_bytes",
    "wait_readable",
    "wait_send_credit",
]

# --------------------------------------------------------------------------
# End of stream: P10
# --------------------------------------------------------------------------


def stream_eof_clean(stream: INetStream) -> bool:
    """Whether a ``StreamEOF`` just read from ``stream`` is a real end of stream.

    P10: 0.8.1's Yamux reports three different events as a clean EOF:
    the peer's FIN (correct), the peer's RST when nothing is buffered (the
    RST drops the stream entry and the reader then finds "no such stream"),
    and the connection dying (remote host stopped, or our side closed it).
    Only the first is an end of stream; the others lose data and must read as
    a broken stream. A Yamux stream records a received RST and a connection
    teardown in ``reset_received``; a connection we close ourselves sets
    ``event_shutting_down`` on the muxer. (A FIN that arrived just before the
    connection died, but was not read before it, is reported as not clean:
    the teardown also discards buffered data, so this is the safe answer.)
    Other muxers (none are negotiated, see ``compat.options.muxer_options``)
    count as clean. Remove when: Yamux raises ``MuxedStreamReset`` for these
    cases.
    """
    muxed: Any = getattr(stream, "muxed_stream", None)
    if getattr(muxed, "reset_received", False):
        return False
    conn: Any = getattr(muxed, "conn", None)
    shutting_down: Any = getattr(conn, "event_shutting_down", None)
    return not (shutting_down is not None and shutting_down.is_set())


def unread_bytes(stream: INetStream) -> int:
    """How many bytes the peer sent on ``stream`` that nobody has read yet.

    Used to close like TCP does: closing with unread data resets the stream
    so the sender learns at once, instead of stalling 5 s on flow control and
    failing (P10). 0.8.1's ``INetStream`` has no such query; this reads the
    Yamux connection's per-stream buffer (0 for any other muxer). Remove
    when: the muxer exposes it, or ``close()`` does this itself.
    """
    parts = _yamux_parts(stream)
    if parts is None:
        return 0
    muxed, conn = parts
    return len(conn.stream_buffers.get(muxed.stream_id) or b"")


# --------------------------------------------------------------------------
# Cancellation-safe stream I/O: N1
# --------------------------------------------------------------------------
#
# N1 (not in the notes; found here): cancelling a libp2p read or write can
# kill the whole connection. Yamux writes frames through Noise; a cancel that
# lands inside ``Yamux._write_frame`` (after Noise consumed a nonce, or with
# a frame half sent) desynchronises the Noise session, the peer fails with
# "Failed authentication of message" and drops the connection, with every
# stream on it. Reads are affected too: ``YamuxStream.read`` sends a window
# update after taking the data, so a cancelled read can also lose the data
# it took. A receive loop under a short ``move_on_after`` reproduces both in
# seconds. The cure: wait (cancellably, consuming nothing) until the
# operation cannot block on the peer, then run it shielded; the shield only
# covers local work and TCP, and gets a deadline all the same.
# Remove when: upstream Yamux/Noise writes are cancellation-safe.

# How long shielded I/O may take: only TCP backpressure can hold it up (the
# peer's kernel not accepting data), and then the connection is lost anyway.
SHIELDED_IO_LIMIT_S: Final = 30.0
# Yamux's own limit for a writer without flow-control credit (P10).
SEND_CREDIT_WAIT_S: Final = 5.0
# Yamux has no event for window updates; it polls every 10 ms, and so do we.
_CREDIT_POLL_S: Final = 0.01


def _yamux_parts(stream: INetStream) -> tuple[Any, Any] | None:
    """(YamuxStream, Yamux) behind ``stream``, or None for another muxer."""
    muxed: Any = getattr(stream, "muxed_stream", None)
    conn: Any = getattr(muxed, "conn", None)
    needed = ("stream_buffers", "stream_events", "streams", "event_shutting_down")
    if conn is None or not all(hasattr(conn, name) for name in needed):
        return None
    if not hasattr(muxed, "stream_id") or not hasattr(muxed, "send_window"):
        return None
    return muxed, conn


async def wait_readable(stream: INetStream) -> None:
    """Wait until ``stream.read()`` would return without waiting on the peer.

    Cancellation: safe, consumes nothing (N1). Returns at once for a muxer
    other than Yamux (the read is then not cancellation-safe).
    """
    parts = _yamux_parts(stream)
    if parts is None:
        await trio.lowlevel.checkpoint()
        return
    muxed, conn = parts
    sid = muxed.stream_id
    while not (
        conn.stream_buffers.get(sid)
        or muxed.recv_closed
        or muxed.reset_received
        or sid not in conn.streams
        or conn.event_shutting_down.is_set()
    ):
        event = conn.stream_events.get(sid)
        if event is None:
            break
        if event.is_set():  # left set by data already read: re-arm, as
            conn.stream_events[sid] = trio.Event()  # read_stream() does
            continue
        await event.wait()
    await trio.lowlevel.checkpoint()


async def wait_send_credit(stream: INetStream, *, limit_s: float | None) -> int:
    """Wait until ``stream`` may send without waiting for flow-control credit.

    Returns the number of bytes that can be written without waiting (the
    Yamux send window; a huge number for another muxer or a closed stream,
    whose write then fails on its own), or 0 if no credit came within
    ``limit_s`` (None: wait indefinitely). Cancellation: safe (N1).
    """
    parts = _yamux_parts(stream)
    if parts is None:
        await trio.lowlevel.checkpoint()
        return sys.maxsize
    muxed, conn = parts
    deadline = math.inf if limit_s is None else trio.current_time() + limit_s
    while True:
        if muxed.closed or muxed.send_closed or conn.event_shutting_down.is_set():
            await trio.lowlevel.checkpoint()
            return sys.maxsize  # let the write raise the right error
        window = int(muxed.send_window)
        if window > 0:
            await trio.lowlevel.checkpoint()
            return window
        if trio.current_time() >= deadline:
            return 0
        await trio.sleep(_CREDIT_POLL_S)
