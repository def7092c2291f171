"""Canonical msgpack: one byte string for one value.

Everything p2pshare hashes or signs (envelopes, meta, folder listings) is
encoded here, so that "the same value" always means "the same bytes".

Rules of the canonical form:

* types: ``None``, ``bool``, ``int`` (64-bit range), ``str`` (UTF-8),
  ``bytes`` (msgpack bin), ``list`` and ``dict`` with ``str`` keys only;
  floats, ext types and non-string map keys are refused;
* map keys are sorted by their UTF-8 bytes; msgpack already writes every
  integer, string and container header in its shortest form.

:func:`unpack` is the strict inverse. It decodes with explicit size limits,
refuses trailing bytes, and re-encodes the result: input that is valid
msgpack but not canonical (a long-form integer, unsorted keys, a duplicate
key) is rejected, so a decoder never accepts two encodings of one value.
Every failure is a :class:`~p2pshare.errors.FormatError`.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import msgpack

from p2pshare.errors import FormatError

__all__ = ["pack", "unpack", "unpack_record"]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


def _check(value: Any, depth: int = 0) -> Any:
    # Depth bound: nothing in the format nests deeper than a few levels.
    if depth > 16:
        raise FormatError("canonical msgpack: nesting too deep")
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise FormatError("canonical msgpack: integer out of range")
        return value
    if isinstance(value, list | tuple):
        return [_check(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for key in sorted(value, key=_key_bytes):
            out[key] = _check(value[key], depth + 1)
        return out
    raise FormatError(f"canonical msgpack: unsupported type {type(value).__name__}")


def _key_bytes(key: object) -> bytes:
    if not isinstance(key, str):
        raise FormatError("canonical msgpack: map keys must be strings")
    return key.encode("utf-8")


def pack(value: Any) -> bytes:
    """Encode ``value`` in canonical msgpack.

    Raises:
        FormatError: if ``value`` holds a type the canonical form excludes.
    """
    try:
        return msgpack.packb(_check(value), use_bin_type=True)  # type: ignore[no-any-return]
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 form
        raise FormatError("canonical msgpack: string is not valid UTF-8") from exc


def unpack(data: bytes, *, max_len: int, max_items: int = 1 << 20) -> Any:
    """Decode canonical msgpack strictly.

    Args:
        data: the encoded bytes.
        max_len: the largest input accepted, checked before decoding.
        max_items: the largest array or map accepted.

    Raises:
        FormatError: on oversize, malformed, trailing or non-canonical input.
    """
    if len(data) > max_len:
        raise FormatError(f"canonical msgpack: {len(data)} bytes exceeds {max_len}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_bin_len=max_len,
            max_str_len=max_len,
            max_array_len=max_items,
            max_map_len=max_items,
            max_ext_len=0,
        )
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
        msgpack.OutOfData,
        UnicodeDecodeError,
        RecursionError,
    ) as exc:
        raise FormatError(
            f"canonical msgpack: malformed ({type(exc).__name__})"
        ) from exc
    if pack(value) != data:
        raise FormatError("canonical msgpack: not in canonical form")
    return value


def unpack_record(
    data: object,
    *,
    what: str,
    keys: Set[str],
    version: int,
    max_len: int,
    max_items: int = 8,
) -> dict[str, Any]:
    """Strictly decode a small signed record (a grant, a voucher): bytes of
    at most ``max_len`` (checked before decoding), a canonical map with
    exactly ``keys``, and ``"v"`` equal to ``version``. Field types are the
    caller's to check. Errors name the record (``what``).

    Raises:
        FormatError: any of the above does not hold.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FormatError(f"{what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_len:
        raise FormatError(f"{what}: {len(data)} bytes exceeds {max_len}")
    value = unpack(data, max_len=max_len, max_items=max_items)
    if not isinstance(value, dict):
        raise FormatError(f"{what}: not a map")
    if set(value) != keys:
        extra = sorted(set(value) - keys)
        missing = sorted(keys - set(value))
        raise FormatError(f"{what}: unexpected keys {extra!r:.60}, missing {missing!r}")
    found = value["v"]
    if type(found) is not int or found != version:
        raise FormatError(f"{what}: unsupported version {found!r:.20}")
    return value
