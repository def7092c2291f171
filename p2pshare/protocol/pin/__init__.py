r"""The pin protocol ``/p2pshare/pin/1``: ask a seed to keep a replica.

Theory of operation
-------------------
A seed is a headless node that keeps ciphertext replicas it cannot read
(DESIGN.md, "Capabilities", "Network"). It never receives a file key: the
owner gives it a **grant** (``p2pshare.format.grant``), signed with the
share's access key for the seed's own peer id, and the seed then fetches
the share over ``/p2pshare/xfer/1`` like any downloader, opening with the
grant instead of an access proof. Every pin stream carries exactly one
request and one response::

    client                                      seed
      [u32 len | request]       ──▶
                                ◀──      [u32 len | response]
                                          (the stream then closes)

Flows (the client is the owner's node, or a checker for ``prove``):

* **pin** — ``PinRequest(root, grant, lease_s, size, hints)``. The seed
  checks the grant (``Grant.verify`` with ``peer`` = its own id, the access
  key from the envelope once fetched; before that only its root, peer and
  expiry can be judged), its storage limit against ``size``, and answers
  ``PinStatus`` (``fetching``, or ``complete`` if it already holds every
  chunk) or ``PinRefused`` (``storage_full``, ``access_denied``, …). It then
  fetches in the background from the ``hints`` (multiaddrs of providers)
  and the DHT, verifying every chunk against its id, exactly as a
  downloader does; the grant travels in each xfer ``open``.
* **status** — ``StatusRequest(root)`` → ``PinStatus``: ``have`` of
  ``count`` blocks, the lease deadline, and ``error`` once ``failed``.
  ``none`` means the seed holds no pin for that root. Clients poll.
* **lease renewal** — a new ``PinRequest`` for the same root with a fresh
  grant and lease: the seed extends the pin (never shortens it below what
  it already granted) and answers ``PinStatus``. A pin whose lease expires
  is garbage-collected by the seed; owners renew well before.
* **prove** — a checker sends ``ProveRequest(root, nonce, indices)`` with a
  fresh random 32-byte nonce and randomly chosen chunk indices; the seed
  answers ``ProveResponse(root, digest)`` with :func:`storage_digest` over
  those ciphertext chunks, and the checker recomputes it from its own
  copy (or from chunks it fetched and verified against their ids). The
  nonce is the BLAKE2b key, so no digest can be precomputed, cached, or
  replayed from an earlier check: without the bytes of each chunk asked for,
  at this moment, the seed can only guess (2**-256). A seed that dropped or
  corrupted any one of the chosen chunks fails. No key or grant is needed
  (ciphertext is public to anyone holding the root id alone).
* **unpin** — ``UnpinRequest(root, at, auth)``: ``auth`` is an access-key
  signature (:func:`make_unpin_auth`) over the root, the seed's and the
  client's peer ids (both as Noise authenticated them) and the time
  ``at``; the seed accepts it within ``UNPIN_SKEW_S`` of its clock, drops
  the pin and answers ``Unpinned``. Only a key holder can unpin, and a
  captured request is useless against another seed or from another peer.
* **info** — ``InfoRequest()`` → ``Info``: region, free and used bytes,
  admission policy (``open`` or ``voucher``, issue 7) and software version,
  for choosing seeds in distinct regions.
* **redeem** (issue 7) — ``RedeemRequest(voucher)`` carries a voucher's
  ``Voucher.to_bytes()`` (``p2pshare.format.voucher``). The seed decodes it,
  runs ``Voucher.verify(seed=<its own id>, now=…)`` and binds its serial to
  the requester's peer id as Noise authenticated it (first redeemer wins;
  redeeming one's own voucher again changes nothing). It answers
  ``Balance`` (the requester's balance after redemption) or ``PinRefused``
  with ``voucher`` (undecodable, issued by another seed, bad signature,
  expired, or already redeemed by another peer; the message says which).
* **balance** (issue 7) — ``BalanceRequest()`` → ``Balance(quota, used,
  vouchers, expires)``: the requester's total unexpired voucher quota on
  this seed, the bytes its pins are charged, how many unexpired vouchers it
  redeemed there and the latest expiry among them (absent when
  ``vouchers`` is 0).
  In voucher mode a pin that would take ``used`` past ``quota`` is refused
  with ``quota``, the message naming the quota.

Frames are those of ``/p2pshare/xfer/1`` (``framing.py``: u32be length
checked before buffering, flat strict msgpack map with a str ``"t"``), with a
limit of ``MAX_PIN_FRAME_BYTES``. A flat map has no arrays, so the two list
fields travel as scalars: ``hints`` as one str of newline-joined multiaddrs
(each printable ASCII without whitespace, so the join is unambiguous) and
``indices`` as a bin of u32be. As in ``messages.py``: optional fields (those
with a default) are left out when they hold their default, and an absent
one takes its default; nil is never valid, unknown and missing keys are
errors, and validation lives in ``__post_init__`` (``LocalProtocolError``
when we build it, ``RemoteProtocolError`` when it arrived).

Messages
--------
==========  ========  =======================================================
``t``       from      fields (all required unless marked optional)
==========  ========  =======================================================
pin         client    ``root`` bin(32), ``grant`` bin(1..512),
                      ``lease_s`` int 1..90 days, ``size`` int 0..2**63-1,
                      ``hints`` str (≤ 8 hints of ≤ 512 chars, ``\n``-joined),
                      optional; ``top`` bool, optional (default true);
                      ``voucher`` bin(1..1024), optional
status      client    ``root`` bin(32)
prove       client    ``root`` bin(32), ``nonce`` bin(32),
                      ``indices`` bin(4..256: 1..64 u32be)
unpin       client    ``root`` bin(32), ``at`` int, ``auth`` bin(64)
info        client    (none)
redeem      client    ``voucher`` bin(1..1024)
balance     client    (none)
pin_status  seed      ``root``, ``state`` "fetching" | "complete" | "failed"
                      | "none", ``have`` int, ``count`` int (have ≤ count),
                      ``lease_expires`` int, optional; ``error`` str(≤ 1000),
                      optional
proved      seed      ``root`` bin(32), ``digest`` bin(32)
unpinned    seed      ``root`` bin(32)
seed_info   seed      ``region`` str(≤ 64), ``free_bytes`` int,
                      ``used_bytes`` int, ``admission`` "open" | "voucher",
                      ``version`` str(≤ 64)
credit      seed      ``quota`` int, ``used`` int, ``vouchers`` int,
                      ``expires`` int, optional (present exactly when
                      ``vouchers`` > 0)
refused     seed      ``code`` (one of ``REFUSE_CODES``), ``message``
                      str(≤ 1000), optional (default "")
==========  ========  =======================================================

``refused`` codes: ``storage_full`` (the pin does not fit ``--max-storage``),
``access_denied`` (bad grant or unpin auth), ``bad_request`` (valid frame,
unusable request), ``not_found`` (no such pin, or chunks asked for a proof
are not held), ``quota`` (this client's share of the seed is used up, or
it has no voucher credit on a seed in voucher mode), ``voucher`` (a
redeemed voucher was refused: see **redeem**), ``unavailable`` (shutting
down, overloaded: try later).

Nothing here does I/O, reads a clock or draws random numbers: ``now`` and
nonces are arguments.
"""

from __future__ import annotations

from p2pshare.protocol.pin.messages import (
    ADMISSIONS,
    MAX_HINT_CHARS,
    MAX_HINTS,
    MAX_LEASE_S,
    MAX_PIN_FRAME_BYTES,
    MAX_PIN_TEXT_CHARS,
    MAX_PROVE_INDICES,
    MAX_REGION_CHARS,
    MAX_VERSION_CHARS,
    MAX_VOUCHER_BYTES,
    NONCE_BYTES,
    PIN_PROTOCOL_ID,
    PIN_STATES,
    REFUSE_CODES,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    Admission,
    Balance,
    BalanceRequest,
    Info,
    InfoRequest,
    PinMessage,
    PinRefused,
    PinRequest,
    PinState,
    PinStatus,
    PolicyKept,
    PolicyRequest,
    ProveRequest,
    ProveResponse,
    RedeemRequest,
    RefuseCode,
    Request,
    Response,
    StatusRequest,
    Unpinned,
    UnpinRequest,
    erasure_field,
    parse_erasure_field,
)
from p2pshare.protocol.pin.proof import (
    UNPIN_SKEW_S,
    UNPIN_TAG,
    make_unpin_auth,
    storage_digest,
    unpin_message,
    verify_unpin_auth,
)
from p2pshare.protocol.pin.wire import (
    PinReader,
    PinStream,
    StreamState,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    request_reader,
    response_reader,
)

__all__ = [
    "ADMISSIONS",
    "MAX_HINTS",
    "MAX_HINT_CHARS",
    "MAX_LEASE_S",
    "MAX_PIN_FRAME_BYTES",
    "MAX_PIN_TEXT_CHARS",
    "MAX_PROVE_INDICES",
    "MAX_REGION_CHARS",
    "MAX_VERSION_CHARS",
    "MAX_VOUCHER_BYTES",
    "NONCE_BYTES",
    "PIN_PROTOCOL_ID",
    "PIN_STATES",
    "REFUSE_CODES",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "UNPIN_SKEW_S",
    "UNPIN_TAG",
    "Admission",
    "Balance",
    "BalanceRequest",
    "Info",
    "InfoRequest",
    "PinMessage",
    "PinReader",
    "PinRefused",
    "PinRequest",
    "PinState",
    "PinStatus",
    "PinStream",
    "PolicyKept",
    "PolicyRequest",
    "ProveRequest",
    "ProveResponse",
    "RedeemRequest",
    "RefuseCode",
    "Request",
    "Response",
    "StatusRequest",
    "StreamState",
    "UnpinRequest",
    "Unpinned",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "erasure_field",
    "make_unpin_auth",
    "parse_erasure_field",
    "request_reader",
    "response_reader",
    "storage_digest",
    "unpin_message",
    "verify_unpin_auth",
]
