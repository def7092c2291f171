"""Wire protocols, sans-IO: bytes in, events out, no sockets, clock or RNG.

This docstring is the specification of the transfer protocol. The modules
implement it: ``framing.py`` (§1), ``messages.py`` (§2), ``proof.py`` (§3),
``connection.py`` and ``xfer.py`` (§4, §5); ``scheduler.py`` is the
multi-source download policy. The pin protocol ``/p2pshare/pin/1`` (§6) is
specified in ``pin.py``'s docstring; grants in ``p2pshare.format.grant``.

Transfer protocol ``/p2pshare/xfer/1``
======================================

A client opens a libp2p stream (TCP + Noise + Yamux, so both peer ids are
authenticated) with protocol id ``/p2pshare/xfer/1`` to a node that serves a
share, and fetches its envelope, index blocks and chunks.

§1 Frames
---------
::

    0               4                                   4 + length
    +---------------+-------------------------------------+
    | length: u32be | body: msgpack map                   |
    +---------------+-------------------------------------+

* ``length`` is 1..``max_frame``; the receiver checks it before buffering
  the body. ``MAX_FRAME_BYTES`` (16 MiB + 64 KiB) fits a Block holding the
  largest chunk (16 MiB + 16-byte tag); a server accepts client frames of at
  most ``MAX_CLIENT_FRAME_BYTES`` (64 KiB), as no client frame is large.
* The body is a flat msgpack map: str keys (no duplicates), scalar values
  (nil, bool, int, str, bin; str is UTF-8 of at most 1024 bytes), at most 16
  entries, no arrays, maps or ext types inside. ``"t"`` (str) names the
  message type; the other keys are the message's fields.
* Any violation is a protocol error: the receiver sends ``bye`` with a reason
  if it can and resets the stream.

§2 Messages
-----------
=========  ======  ==========================================================
``t``      from    fields (all required unless marked optional)
=========  ======  ==========================================================
hello      server  ``version`` int (1), ``challenge`` bin(32)
open       client  ``sid`` u16, ``root`` bin(32), and exactly one of
                   ``proof`` bin(64) and ``grant`` bin(1..512)
opened     server  ``sid`` u16, ``envelope`` bin(1..48 KiB),
                   ``have`` bin(≤ 1 MiB), optional
refused    server  ``sid`` u16, ``code`` str ``[a-z0-9_]{1,40}``,
                   ``reason`` str(≤ 200 chars, printable)
want       client  ``sid`` u16, ``req`` u32, ``kind`` "chunk" | "index",
                   ``index`` int (chunk < 2**23, index block < 1024)
block      server  ``req`` u32, ``data`` bin(≤ 16 MiB + 16)
missing    server  ``req`` u32, optional ``code`` str ``[a-z0-9_]{1,40}``:
                   the server cannot serve this share at all (e.g.
                   ``source_changed``); absent: only this block
cancel     client  ``req`` u32
bye        either  ``reason`` str(≤ 200 chars, printable)
=========  ======  ==========================================================

An optional field is absent when it has no value; nil is never valid, and
unknown or missing keys are errors. ``have`` is a bitmap of the chunks the
server holds: chunk *i* is bit ``i & 7`` (least significant first) of byte
``i >> 3``; absent means "every chunk". ``refused`` codes in use:
``access_denied`` (the proof did not verify) and ``not_found`` (the server
does not serve that root); clients treat unknown codes like ``not_found``.

§3 Access proof
---------------
``proof`` is an Ed25519 signature by the share's access key (its public
half is in the envelope) over::

    b"p2pshare/xfer/1/proof\\x00" || root
        || u16be(len(client id)) || client id
        || u16be(len(server id)) || server id
        || challenge

with the raw libp2p peer ids that Noise authenticated and the challenge of
this stream's ``hello``. A proof is therefore worthless on any other stream.

A seed that holds no key sends ``grant`` instead: the canonical bytes of a
:class:`~p2pshare.format.grant.Grant`, signed by the same access key over
``b"p2pshare/grant/1\\x00" || root || u16be len || peer id || u64be
expires``. The server accepts it only if it names this root and the client's
Noise-authenticated peer id, verifies under the envelope's access key, and
has not expired by the server's clock. Any failure refuses the sid with
``access_denied``, exactly like a bad proof.

§6 Pin protocol
---------------
``/p2pshare/pin/1`` (``pin.py``): one request frame, one response frame,
then the stream closes; same frame layout as §1 with a 16 KiB limit.

§4 Conversation
---------------
::

    server                                   client
      hello(challenge)            ──▶
                                  ◀──        open(sid, root, proof)
      opened(sid, envelope, have) ──▶                    (or refused)
                                  ◀──        want(sid, req=1, chunk, 0)
                                  ◀──        want(sid, req=2, chunk, 1) …
      block(req=1, data)          ──▶
      missing(req=2)              ──▶
                                  ◀──        cancel(req=3)
                                  ◀──        bye("")
      bye("")                     ──▶

* The server speaks first, exactly once ``hello``; the client sends nothing
  before it has the challenge.
* The server sends no envelope, chunk or index block of a root before that
  root's proof verified on this stream: ``want`` is valid only for sids
  answered with ``opened``, and every ``block``/``missing`` answers one
  outstanding ``want``. Opening a sid twice on one stream is an error; a
  refused sid may be opened again.
* Requests are pipelined and answered in any order. ``req`` ids belong to
  the stream (not to a sid) and are unique among outstanding and recently
  cancelled wants. A client keeps at most 64 wants outstanding and 16 sids
  pending or open; a server treats more as a protocol error.
* ``cancel`` of an answered or unknown ``req`` is ignored (the answer may
  have crossed it); a client drops an answer to a want it cancelled.
* Answers are not authenticated by the protocol: the client checks every
  block against its id from the envelope before using it.
* ``bye`` is a side's last frame. After sending it a side ignores incoming
  frames except ``bye``; after receiving it a side may only send ``bye``.
  EOF without ``bye`` is an unclean close; EOF inside a frame is an error.

§5 Limits
---------
=============================  =========  ====================================
limit                          default    why
=============================  =========  ====================================
``MAX_FRAME_BYTES``            16 MiB     one chunk of the largest chunk size
                               + 64 KiB   plus the map around it
``MAX_CLIENT_FRAME_BYTES``     64 KiB     client frames are tiny
``DEFAULT_MAX_OUTSTANDING``    64         64 MiB in flight at 1 MiB chunks
``DEFAULT_MAX_OPEN``           16         each open costs a lookup and a
                                          signature check on the server
``DEFAULT_MAX_CANCELLED``      1024       late answers the client can drop
=============================  =========  ====================================
"""

from p2pshare.protocol.connection import (
    BlockMissing,
    BlockReceived,
    BlockWanted,
    Cancelled,
    Closed,
    Connection,
    Event,
    OpenRequested,
    Ready,
    ShareOpened,
    ShareRefused,
    State,
)
from p2pshare.protocol.framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame
from p2pshare.protocol.messages import (
    PROTOCOL_VERSION,
    Block,
    Bye,
    Cancel,
    Hello,
    Message,
    Missing,
    Open,
    Opened,
    Refused,
    Want,
    decode_message,
)
from p2pshare.protocol.pin import (
    MAX_PIN_FRAME_BYTES,
    PIN_PROTOCOL_ID,
    Info,
    InfoRequest,
    PinReader,
    PinRefused,
    PinRequest,
    PinStatus,
    ProveRequest,
    ProveResponse,
    StatusRequest,
    Unpinned,
    UnpinRequest,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    make_unpin_auth,
    storage_digest,
    verify_unpin_auth,
)
from p2pshare.protocol.proof import make_proof, proof_message, verify_proof
from p2pshare.protocol.scheduler import PeerStats, Scheduler
from p2pshare.protocol.xfer import (
    DEFAULT_MAX_CANCELLED,
    DEFAULT_MAX_OPEN,
    DEFAULT_MAX_OUTSTANDING,
    MAX_CLIENT_FRAME_BYTES,
    ClientConnection,
    ServerConnection,
)

__all__ = [
    "DEFAULT_MAX_CANCELLED",
    "DEFAULT_MAX_OPEN",
    "DEFAULT_MAX_OUTSTANDING",
    "MAX_CLIENT_FRAME_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_PIN_FRAME_BYTES",
    "PIN_PROTOCOL_ID",
    "PROTOCOL_ID",
    "PROTOCOL_VERSION",
    "Block",
    "BlockMissing",
    "BlockReceived",
    "BlockWanted",
    "Bye",
    "Cancel",
    "Cancelled",
    "ClientConnection",
    "Closed",
    "Connection",
    "Event",
    "FrameDecoder",
    "Hello",
    "Info",
    "InfoRequest",
    "Message",
    "Missing",
    "Open",
    "OpenRequested",
    "Opened",
    "PeerStats",
    "PinReader",
    "PinRefused",
    "PinRequest",
    "PinStatus",
    "ProveRequest",
    "ProveResponse",
    "Ready",
    "Refused",
    "Scheduler",
    "ServerConnection",
    "ShareOpened",
    "ShareRefused",
    "State",
    "StatusRequest",
    "UnpinRequest",
    "Unpinned",
    "Want",
    "decode_message",
    "decode_request",
    "decode_response",
    "encode_frame",
    "encode_request",
    "encode_response",
    "make_proof",
    "make_unpin_auth",
    "proof_message",
    "storage_digest",
    "verify_proof",
    "verify_unpin_auth",
]

PROTOCOL_ID = "/p2pshare/xfer/1"  # §4: the libp2p protocol id
