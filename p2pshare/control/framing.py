"""Length-prefixed msgpack frames of the control API (spec: ``p2pshare.control``, §1).

Theory of operation
-------------------
:class:`FrameDecoder` is ``protocol.codec.FrameDecoder`` (shared with the
peer protocols) with the control API's body rule: push what a socket read returned with
:meth:`~FrameDecoder.receive_data`, pull decoded bodies with
:meth:`~FrameDecoder.next_frame`. Unlike xfer frames, control bodies carry
nested JSON-like values, so bounding the work per frame takes more than a
flat-map rule:

* **The length prefix is checked before its body is buffered**, against the
  decoder's ``max_frame``; zero is refused (every body is a non-empty map).
  Input accumulates in one ``bytearray`` and whole frames are decoded from a
  ``memoryview`` of it, then deleted from the front: linear in the input.
* **msgpack limits**: ``raw=False`` (str is UTF-8), ``strict_map_key``,
  str up to ``MAX_STR_BYTES``, bin up to the frame, arrays and maps up to
  ``max_elements`` entries (msgpack allocates from the header, so this is
  checked before any allocation), no ext types.
* **Hooks bound the objects built while msgpack parses.** msgpack calls
  ``list_hook``/``object_pairs_hook`` for every container, innermost first.
  They charge each container's entries against a per-frame budget of
  ``max_elements`` objects (:func:`count_elements` is the same measure) and
  compute its height; the frame is refused as soon as either limit is
  passed. 16 MiB of nested empty arrays therefore costs at most
  ``max_elements`` hook calls, and nesting deeper than msgpack's own 1023
  levels fails before anything is built.
* Keys are str and unique; every msgpack failure becomes
  :class:`RemoteProtocolError`. EOF between frames is clean, inside a frame
  it is a :class:`RemoteProtocolError`, data after EOF is our own bug.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

import msgpack

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol import codec
from p2pshare.protocol.codec import PREFIX_BYTES, check_body, prefixed

__all__ = [
    "MAX_DEPTH",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_ELEMENTS",
    "MAX_RESPONSE_BYTES",
    "MAX_RESPONSE_ELEMENTS",
    "MAX_STR_BYTES",
    "PREFIX_BYTES",
    "FrameDecoder",
    "count_elements",
    "decode_body",
    "encode_frame",
]

# §1 limits. A request is a method name and a few paths or a link: 1 MiB is
# generous, and it bounds what any local process can make the node buffer.
MAX_REQUEST_BYTES = 1 << 20
# Responses carry listings (``ls``, ``downloads``) that grow with the home;
# 16 MiB is tens of thousands of shares, and only the node can send them.
MAX_RESPONSE_BYTES = 16 << 20
# Objects one frame may decode into (msgpack needs as little as one byte per
# object, so the byte limits alone would allow 16 M objects, over 1 GiB of
# Python). 100 000 is far above any request; 1 000 000 is ~60 000 shares of
# ``ls``, and bounds a client's worst case (a frame of nothing but empty
# containers) near 64 MiB and a second of CPU.
MAX_REQUEST_ELEMENTS = 100_000
MAX_RESPONSE_ELEMENTS = 1_000_000
# The longest str anywhere in a frame. Paths (PATH_MAX is 4096 bytes) and
# share links are far below it; it stops a str from being the payload.
MAX_STR_BYTES = 64 * 1024
# Containers nest at most this deep, the frame body being level 1. Results
# are tables of records (depth 3 with the body); 8 leaves room to grow while
# keeping validators' recursion trivially shallow.
MAX_DEPTH = 8

_CONTAINERS = (list, dict)


def count_elements(value: object) -> int:
    """The objects ``value`` decodes into: itself, every key and every item.

    This is the measure ``max_elements`` limits; :func:`decode_body` counts
    the same way while parsing.
    """
    if isinstance(value, dict):
        return 1 + sum(1 + count_elements(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(count_elements(v) for v in value)
    return 1


def encode_frame(
    body: Mapping[str, Any], *, max_frame: int, max_elements: int
) -> bytes:
    """Encode one frame, refusing what the peer's limits would refuse.

    Raises:
        LocalProtocolError: the body is over ``max_elements`` objects or
            ``max_frame`` bytes, or msgpack cannot pack it (we would send
            what the peer must refuse: a bug).
    """
    elements = count_elements(dict(body))
    if elements > max_elements:
        raise LocalProtocolError(
            f"frame: body of {elements} elements exceeds {max_elements}"
        )
    try:
        packed: bytes = msgpack.packb(body, use_bin_type=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise LocalProtocolError(f"frame: cannot pack ({type(exc).__name__})") from exc
    return prefixed(packed, max_frame=max_frame)


class _LimitError(ValueError):
    """A limit hit inside msgpack's hooks (raised through msgpack)."""


class _Budget:
    """Per-frame hook state: objects left to build, heights of loose containers.

    msgpack completes containers in post-order, so when one completes, its
    child containers are exactly the most recently completed ones not yet
    claimed by a parent: the top of ``loose``. Heights are at most
    ``MAX_DEPTH``, so the stack holds cached small ints only.
    """

    __slots__ = ("left", "loose")

    def __init__(self, max_elements: int) -> None:
        self.left = max_elements - 1  # the body itself
        self.loose: list[int] = []

    def _push_height(self, children: Collection[Any]) -> None:
        loose = self.loose
        nested = 0
        for child in children:
            if type(child) in _CONTAINERS:
                nested += 1
        if nested:
            height = 1 + max(loose[-nested:])
            del loose[-nested:]
            if height > MAX_DEPTH:
                raise _LimitError("nested too deeply")
            loose.append(height)
        else:
            loose.append(1)

    def list_hook(self, items: list[Any]) -> list[Any]:
        self.left -= len(items)
        if self.left < 0:
            raise _LimitError("too many elements")
        if items:
            self._push_height(items)
        else:
            self.loose.append(1)
        return items

    def pairs_hook(self, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
        self.left -= 2 * len(pairs)
        if self.left < 0:
            raise _LimitError("too many elements")
        result = dict(pairs)
        if len(result) != len(pairs):
            raise _LimitError("duplicate map key")
        for key in result:
            if type(key) is not str:
                raise _LimitError("map key is not a str")
        self._push_height(result.values())
        return result


def decode_body(raw: bytes | memoryview, *, max_elements: int) -> dict[str, Any]:
    """Decode one frame body strictly: a map with a str ``"t"``.

    Raises:
        RemoteProtocolError: malformed msgpack, a limit passed, ext types,
            non-str or duplicate keys, not a map, or no str ``"t"``.
    """
    budget = _Budget(max_elements)
    try:
        body = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_STR_BYTES,
            max_bin_len=len(raw),
            max_array_len=max_elements,
            max_map_len=max_elements,
            max_ext_len=0,
            list_hook=budget.list_hook,
            object_pairs_hook=budget.pairs_hook,
        )
    except _LimitError as exc:
        raise RemoteProtocolError(f"frame: {exc}") from exc
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise RemoteProtocolError(
            f"frame: malformed msgpack ({type(exc).__name__})"
        ) from exc
    return check_body(body)


class FrameDecoder(codec.FrameDecoder):
    """Incremental, strict decoder of length-prefixed control frames.

    Args:
        max_frame: the largest body accepted, in bytes; checked against the
            length prefix before the body is buffered.
        max_elements: the most objects one body may decode into.
    """

    __slots__ = ("max_elements",)

    def __init__(self, *, max_frame: int, max_elements: int) -> None:
        if max_elements < 1:
            raise ValueError("max_elements must be positive")
        self.max_elements = max_elements
        super().__init__(
            max_frame, functools.partial(decode_body, max_elements=max_elements)
        )
