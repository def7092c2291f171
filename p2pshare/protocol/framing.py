"""Length-prefixed msgpack frames: the byte layer of ``/p2pshare/xfer/1``.

Theory of operation
-------------------
A frame is a 4-byte big-endian body length followed by that many bytes of
msgpack (spec: ``p2pshare.protocol``, "Frames")::

    +----------------+---------------------------------------+
    | length (u32be) | body: msgpack map, flat, str keys, "t" |
    +----------------+---------------------------------------+

:class:`FrameDecoder` is sans-IO: the caller pushes whatever bytes a stream
read returned with :meth:`~FrameDecoder.receive_data` and pulls whole,
decoded bodies with :meth:`~FrameDecoder.next_frame`. The buffering is the
one of ``codec.FrameDecoder`` (shared with the control API); this module
adds the peer protocols' limits and their body rule (:func:`flat_rule`).

Invariants and limits, with the reasons for them:

* **The length prefix is checked before its body is buffered.** As soon as
  four bytes are present the prefix is compared with ``max_frame``; a peer
  cannot make us hold more than one frame limit (plus one read) in memory.
  Zero is refused too: every body is a non-empty map.
* **No quadratic copying.** Input accumulates in one ``bytearray``; a whole
  frame is decoded straight from a ``memoryview`` of it and then deleted
  from the front, which CPython does in amortised O(1). Feeding a 1 MiB
  frame in 64 KiB reads costs O(frame), not O(frame**2 / read).
* **Strict bodies.** msgpack is decoded with ``raw=False`` (str is UTF-8),
  ``strict_map_key``, and explicit limits: bin up to ``max_frame``, str up to
  ``max_str_bytes``, at most ``max_fields`` map entries, no arrays, no ext
  types. The body must be a *flat* map of str keys to scalars (nil, bool,
  int, float, str, bin) with no duplicate key, and must hold a str ``"t"``.
  Flatness is what bounds the work per frame: nested containers would let
  16 MiB of one-byte ``[]`` or ``{}`` explode into a gigabyte of Python
  objects. Every msgpack failure becomes :class:`RemoteProtocolError`.
* **EOF** (``receive_data(b"")``) between frames is clean; EOF inside a
  frame is a :class:`RemoteProtocolError` (truncated frame). Data after EOF
  is our own bug: :class:`LocalProtocolError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from p2pshare.errors import RemoteProtocolError
from p2pshare.format.chunks import MAX_CHUNK_SIZE, TAG_BYTES
from p2pshare.protocol import codec
from p2pshare.protocol.codec import PREFIX_BYTES, BodyRule, check_body, prefixed

__all__ = [
    "MAX_FIELDS",
    "MAX_FRAME_BYTES",
    "MAX_STR_BYTES",
    "PREFIX_BYTES",
    "FrameDecoder",
    "encode_frame",
    "flat_rule",
]

# The largest frame is a Block carrying a chunk of the largest chunk size
# (16 MiB plaintext + 16-byte tag); 64 KiB covers the map around it and
# leaves room for an Opened with a 48 KiB envelope.
MAX_FRAME_BYTES = MAX_CHUNK_SIZE + TAG_BYTES + 64 * 1024
# No protocol string comes near this (the longest is a 200-character reason,
# at most 800 UTF-8 bytes); it only stops a str field from being a payload.
MAX_STR_BYTES = 1024
# The largest message has six fields plus "t"; 16 leaves room for optional
# fields added later while keeping the per-frame object count tiny.
MAX_FIELDS = 16

_SCALARS = (type(None), bool, int, float, str, bytes)


class _ShapeError(ValueError):
    """The body is valid msgpack but not a flat map (raised inside msgpack)."""


def _flat_map(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    # msgpack calls this for every map, innermost first, so a nested map is
    # caught as soon as its parent completes: at most one level of small maps
    # is ever built before the frame is refused.
    body = dict(pairs)
    if len(body) != len(pairs):
        raise _ShapeError("duplicate key")
    for key, value in pairs:
        if not isinstance(key, str):
            raise _ShapeError("non-str key")
        if not isinstance(value, _SCALARS):
            raise _ShapeError(f"field {key!r} is not a scalar")
    return body


def encode_frame(body: Mapping[str, Any], *, max_frame: int = MAX_FRAME_BYTES) -> bytes:
    """Encode one frame: the u32 length prefix and the msgpack ``body``.

    Raises:
        LocalProtocolError: the encoded body is empty or exceeds ``max_frame``
            (a message bigger than the peer accepts is our bug).
    """
    return prefixed(msgpack.packb(body, use_bin_type=True), max_frame=max_frame)


def flat_rule(max_frame: int, max_str_bytes: int, max_fields: int) -> BodyRule:
    """The body rule of the peer protocols: a flat map of scalars."""

    def decode(raw: memoryview) -> dict[str, Any]:
        try:
            body = msgpack.unpackb(
                raw,
                raw=False,
                strict_map_key=True,
                max_bin_len=max_frame,
                max_str_len=max_str_bytes,
                max_array_len=0,
                max_map_len=max_fields,
                max_ext_len=0,
                object_pairs_hook=_flat_map,
            )
        except _ShapeError as exc:
            raise RemoteProtocolError(f"frame: {exc}") from exc
        except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
            raise RemoteProtocolError(
                f"frame: malformed msgpack ({type(exc).__name__})"
            ) from exc
        return check_body(body)

    return decode


class FrameDecoder(codec.FrameDecoder):
    """Incremental, strict decoder of xfer (and pin, reach) frames.

    Args:
        max_frame: the largest body accepted, in bytes; checked against the
            length prefix before the body is buffered.
        max_str_bytes: the longest msgpack str accepted, in UTF-8 bytes.
        max_fields: the most entries a body map may have.
    """

    __slots__ = ()

    def __init__(
        self,
        max_frame: int = MAX_FRAME_BYTES,
        *,
        max_str_bytes: int = MAX_STR_BYTES,
        max_fields: int = MAX_FIELDS,
    ) -> None:
        super().__init__(max_frame, flat_rule(max_frame, max_str_bytes, max_fields))
