"""The control API's requests, typed: one schema, validated at the socket.

Every method of the control API (``docs/control.md``) has a params record
here: a frozen dataclass whose fields are the request's ``params`` keys,
with their types and defaults, checked by :meth:`Params.parse` before any
handler runs — unknown keys, missing required ones, a wrong type (an
``int`` is never a ``bool``) or a value out of range are a
:class:`~p2pshare.errors.UsageError` (code ``usage``) naming the method and
the parameter. Handlers in ``server.py`` receive the record, never the raw
map, so a handler cannot read a parameter nobody validated. Clients build
the same records (:meth:`Params.to_params`) to send them.

The results are documented per method in ``docs/control.md``; the node's
records that become results (downloads, replicas, statistics) have their
own ``to_wire``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from p2pshare.config import GET_TIMEOUT_S, MAX_DEPTH, MAX_ENTRIES, STALL_TIMEOUT_S
from p2pshare.errors import UsageError

__all__ = [
    "MAX_DEPTH_LIMIT",
    "MAX_ENTRIES_LIMIT",
    "MAX_TIMEOUT_S",
    "METHODS",
    "AddParams",
    "GetParams",
    "IdParams",
    "LinkParams",
    "LinkTextParams",
    "NoParams",
    "Params",
    "PublishParams",
    "RedeemParams",
    "ReplicateParams",
    "RootParams",
    "SyncRecordParams",
    "TokenParams",
    "parse_params",
]

MAX_TIMEOUT_S = 1e6  # a get's --timeout, as the CLI bounds it
MAX_ENTRIES_LIMIT = 10_000_000  # a get's --max-entries, as the CLI bounds it
MAX_DEPTH_LIMIT = 1000  # a get's --max-depth, as the CLI bounds it
MAX_LIST = 4096  # items in a list parameter (paths, seeds, bootstrap)


class Params:
    """Base of every params record (see the module docstring)."""

    __slots__ = ()
    METHOD: ClassVar[str] = ""

    @classmethod
    def parse(cls, method: str, raw: Mapping[str, Any]) -> Self:
        """The record of ``raw``, strictly.

        Raises:
            UsageError: an unknown, missing or ill-typed parameter.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(k for k in raw if k not in fields)
        if unknown:
            raise UsageError(f"{method}: unknown parameter {unknown[0]!r:.40}")
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for name, field in fields.items():
            if name not in raw:
                if (
                    field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING
                ):
                    raise UsageError(f"{method}: parameter {name!r} is required")
                continue
            kwargs[name] = _typed(method, name, raw[name], hints[name])
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise UsageError(f"{method}: {exc}") from exc

    def to_params(self) -> dict[str, Any]:
        """The ``params`` map of a request."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _typed(method: str, name: str, value: Any, hint: Any) -> Any:
    bad = UsageError(f"{method}: parameter {name!r} must be {_name(hint)}")
    if hint is bool:
        if type(value) is not bool:
            raise bad
    elif hint is int:
        if type(value) is not int:
            raise bad
    elif hint is float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise bad
        value = float(value)
    elif hint is str:
        if type(value) is not str:
            raise bad
    elif typing.get_origin(hint) is tuple:
        if type(value) is not list or len(value) > MAX_LIST:
            raise bad
        if not all(type(v) is str for v in value):
            raise bad
        value = tuple(value)
    else:  # pragma: no cover - a record with a type this table lacks
        raise TypeError(f"{method}.{name}: unsupported parameter type {hint!r}")
    return value


def _name(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return "a list of strings"
    if isinstance(hint, types.GenericAlias):
        return str(hint)
    return {bool: "a bool", int: "an int", float: "a number", str: "a string"}[hint]


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"parameter {name!r} must be {low:g}..{high:g}")


@dataclass(frozen=True, slots=True)
class NoParams(Params):
    """``status``, ``ls``, ``downloads``, ``peers``, ``vouchers``,
    ``events``, ``gc``, ``stop``."""


@dataclass(frozen=True, slots=True)
class AddParams(Params):
    """``add`` / ``share``: absolute paths; ``copy`` stores chunks."""

    paths: tuple[str, ...]
    copy: bool = False
    new: bool = False
    live: bool = False

    def __post_init__(self) -> None:
        if not all(os.path.isabs(p) for p in self.paths):
            raise ValueError("paths must be absolute")


@dataclass(frozen=True, slots=True)
class RootParams(Params):
    """``rm``, ``check``, ``providers``, ``revoke``: a root id or a link."""

    root: str


@dataclass(frozen=True, slots=True)
class LinkParams(Params):
    """``link``: with peer hints unless ``hints`` is false."""

    root: str
    hints: bool = True
    expires: int = 0  # seconds: a link that expires (the share gets link control)

    def __post_init__(self) -> None:
        _check_range("expires", self.expires, 0, 100 * 365 * 86400)


@dataclass(frozen=True, slots=True)
class PublishParams(Params):
    """``publish``: the pointer to publish anew, named by its live link or
    ``live.<name>``, or its source (an absolute path)."""

    target: str


@dataclass(frozen=True, slots=True)
class TokenParams(Params):
    """``open.revoke``: a gateway token."""

    token: str


@dataclass(frozen=True, slots=True)
class SyncRecordParams(Params):
    """``sync.record``: a round of ``sync`` finished (``link`` without key)."""

    dir: str
    link: str
    root: str
    version: int = 0


@dataclass(frozen=True, slots=True)
class LinkTextParams(Params):
    """``inspect``: a share link."""

    link: str


@dataclass(frozen=True, slots=True)
class GetParams(Params):
    """``get``: what ``p2pshare get`` takes (see its ``--help``)."""

    link: str
    out_dir: str
    paths: tuple[str, ...] = ()
    timeout: float = GET_TIMEOUT_S
    stall_timeout: float = STALL_TIMEOUT_S
    max_entries: int = MAX_ENTRIES
    max_depth: int = MAX_DEPTH
    bootstrap: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not os.path.isabs(self.out_dir):
            raise ValueError("out_dir must be absolute")
        _check_range("timeout", self.timeout, 0, MAX_TIMEOUT_S)
        _check_range("stall_timeout", self.stall_timeout, 0, MAX_TIMEOUT_S)
        _check_range("max_entries", self.max_entries, 1, MAX_ENTRIES_LIMIT)
        _check_range("max_depth", self.max_depth, 1, MAX_DEPTH_LIMIT)


@dataclass(frozen=True, slots=True)
class IdParams(Params):
    """``download.pause``, ``download.resume``, ``download.cancel``."""

    id: int


@dataclass(frozen=True, slots=True)
class ReplicateParams(Params):
    """``replicate``, ``repair``: keep ``replicas`` copies on seeds."""

    root: str
    replicas: int
    seeds: tuple[str, ...] = ()
    erasure: str = ""  # "K/N": one erasure-coded column per seed ("": replicas)

    def __post_init__(self) -> None:
        _check_range("replicas", self.replicas, 1, 32)
        if self.erasure:
            from p2pshare.errors import FormatError
            from p2pshare.format.erasure import parse_erasure

            try:
                parse_erasure(self.erasure)
            except FormatError as exc:
                raise ValueError(f"parameter 'erasure': {exc}") from None


@dataclass(frozen=True, slots=True)
class RedeemParams(Params):
    """``voucher.redeem``: a voucher code."""

    code: str


# the one schema: every method and the record of its params
METHODS: dict[str, type[Params]] = {
    "status": NoParams,
    "ls": NoParams,
    "add": AddParams,
    "share": AddParams,
    "link": LinkParams,
    "publish": PublishParams,
    "open": LinkTextParams,
    "open.ls": NoParams,
    "open.revoke": TokenParams,
    "sync.record": SyncRecordParams,
    "syncs": NoParams,
    "rm": RootParams,
    "get": GetParams,
    "downloads": NoParams,
    "download.pause": IdParams,
    "download.resume": IdParams,
    "download.cancel": IdParams,
    "peers": NoParams,
    "inspect": LinkTextParams,
    "replicate": ReplicateParams,
    "check": RootParams,
    "revoke": RootParams,
    "repair": ReplicateParams,
    "vouchers": NoParams,
    "voucher.redeem": RedeemParams,
    "providers": RootParams,
    "events": NoParams,
    "gc": NoParams,
    "stop": NoParams,
}


def parse_params(method: str, raw: Mapping[str, Any]) -> Params:
    """The typed params of a request to ``method``.

    Raises:
        UsageError: an unknown method, or bad params.
    """
    cls = METHODS.get(method)
    if cls is None:
        raise UsageError(f"control: unknown method {method!r}")
    return cls.parse(method, raw)
