"""Checking a result or an event against its record, at the socket.

The control client calls :func:`check_result` on every result and
:func:`check_event` on every event before the CLI or the TUI reads a
field (see ``p2pshare/records/__init__.py``).
"""

from __future__ import annotations

import types
import typing
from typing import Literal, NotRequired, Union

from p2pshare.errors import RemoteProtocolError
from p2pshare.records.schema import EVENTS, RESULTS, DownloadEvent

__all__ = ["check_event", "check_record", "check_result"]


def check_result(method: str, value: object) -> None:
    """Check the result of ``method`` against :data:`RESULTS`.

    Raises:
        RemoteProtocolError: a declared field is missing or of the wrong type.
    """
    schema = RESULTS.get(method)
    if schema is None:
        raise RemoteProtocolError(
            f"control: a result for unknown method {method!r:.40}"
        )
    check_record(value, schema, method)


def check_event(value: object) -> None:
    """Check an event against its kind's record.

    Raises:
        RemoteProtocolError: not a map with a ``kind``, or a declared field is
            missing or of the wrong type. An unknown kind passes (a newer
            node may publish more).
    """
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise RemoteProtocolError("control: an event without a kind")
    kind: str = value["kind"]
    schema = DownloadEvent if kind.startswith("download.") else EVENTS.get(kind)
    if schema is not None:
        check_record(value, schema, kind)


def check_record(value: object, schema: object, where: str) -> None:
    """Check ``value`` against a record type (a ``TypedDict``, ``list[…]``,
    ``dict[str, …]``, ``X | None``, ``Literal``, ``str``, ``int``, ``float``,
    ``bool``); extra keys of a map pass.

    Raises:
        RemoteProtocolError: naming ``where`` and the path of the bad field.
    """
    _check(value, schema, where)


def _check(value: object, schema: object, path: str) -> None:
    origin = typing.get_origin(schema)
    if origin is NotRequired:
        schema = typing.get_args(schema)[0]
        origin = typing.get_origin(schema)
    if schema is type(None) or schema is None:
        ok = value is None
    elif origin in (Union, types.UnionType):
        for option in typing.get_args(schema):
            try:
                _check(value, option, path)
            except RemoteProtocolError:
                continue
            return
        ok = False
    elif origin is Literal:
        ok = value in typing.get_args(schema)
    elif origin is list:
        if not isinstance(value, list):
            ok = False
        else:
            (item,) = typing.get_args(schema)
            for i, v in enumerate(value):
                _check(v, item, f"{path}[{i}]")
            return
    elif origin is dict:
        if not isinstance(value, dict):
            ok = False
        else:
            _key, item = typing.get_args(schema)
            for k, v in value.items():
                if not isinstance(k, str):
                    raise RemoteProtocolError(f"control: {path}: a key is not a string")
                _check(v, item, f"{path}.{k:.40}")
            return
    elif typing.is_typeddict(schema):
        if not isinstance(value, dict):
            ok = False
        else:
            _check_map(value, schema, path)
            return
    elif schema is bool:
        ok = type(value) is bool
    elif schema is int:
        ok = type(value) is int
    elif schema is float:
        ok = type(value) in (int, float)
    elif schema is str:
        ok = type(value) is str
    else:  # pragma: no cover - a record with a type this table lacks
        raise TypeError(f"{path}: unsupported record type {schema!r}")
    if not ok:
        raise RemoteProtocolError(f"control: {path}: not {_name(schema)}")


def _check_map(value: dict[object, object], schema: object, path: str) -> None:
    for name, hint in _hints(schema).items():
        if name not in value:
            # (not ``__required_keys__``: Python 3.11 misses NotRequired
            # under postponed annotations; the hints keep it)
            if typing.get_origin(hint) is not NotRequired:
                raise RemoteProtocolError(f"control: {path}: {name!r} is missing")
            continue
        _check(value[name], hint, f"{path}.{name}")


_HINTS: dict[object, dict[str, object]] = {}


def _hints(schema: object) -> dict[str, object]:
    hints = _HINTS.get(schema)
    if hints is None:
        hints = _HINTS[schema] = typing.get_type_hints(schema, include_extras=True)
    return hints


def _name(schema: object) -> str:
    if typing.is_typeddict(schema):
        return f"a {getattr(schema, '__name__', 'record')}"
    names: dict[object, str] = {
        bool: "a bool",
        int: "an int",
        float: "a number",
        str: "a string",
        type(None): "null",
    }
    return names.get(schema, str(schema))
