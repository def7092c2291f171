"""The control API's one schema: every request's params, typed and checked."""

from __future__ import annotations

from typing import Any

import pytest

from p2pshare.control.api import (
    METHODS,
    AddParams,
    GetParams,
    IdParams,
    NoParams,
    ReplicateParams,
    parse_params,
)
from p2pshare.errors import UsageError


def test_every_method_has_a_handler_and_nothing_else_does() -> None:
    from p2pshare.control.server import _Connection

    conn = _Connection.__new__(_Connection)
    for method in METHODS:
        assert callable(conn._method(method))
    with pytest.raises(UsageError, match="unknown method"):
        parse_params("rm -rf", {})


def test_defaults_and_types() -> None:
    p = parse_params("get", {"link": "p2p://x", "out_dir": "/tmp/o"})
    assert isinstance(p, GetParams)
    assert (p.paths, p.timeout, p.max_entries, p.max_depth) == ((), 60.0, 100_000, 64)
    p = parse_params(
        "get",
        {"link": "l", "out_dir": "/o", "timeout": 5, "paths": ["a", "b/c"]},
    )
    assert isinstance(p, GetParams)
    assert p.timeout == 5.0 and isinstance(p.timeout, float)
    assert p.paths == ("a", "b/c")
    assert parse_params("status", {}) == NoParams()
    assert parse_params("download.cancel", {"id": 3}) == IdParams(id=3)


@pytest.mark.parametrize(
    ("method", "params", "why"),
    [
        ("status", {"x": 1}, "unknown parameter 'x'"),
        ("get", {"link": "l"}, "'out_dir' is required"),
        ("get", {"link": "l", "out_dir": "rel"}, "out_dir must be absolute"),
        ("get", {"link": "l", "out_dir": "/o", "timeout": -1}, "'timeout' must be"),
        ("get", {"link": "l", "out_dir": "/o", "timeout": True}, "must be a number"),
        ("get", {"link": "l", "out_dir": "/o", "timeout": float("nan")}, "number"),
        ("get", {"link": "l", "out_dir": "/o", "max_depth": 0}, "'max_depth'"),
        ("get", {"link": "l", "out_dir": "/o", "paths": "a"}, "list of strings"),
        ("get", {"link": "l", "out_dir": "/o", "paths": [1]}, "list of strings"),
        ("add", {"paths": ["rel"]}, "paths must be absolute"),
        ("add", {"paths": ["/a"], "copy": 1}, "'copy' must be a bool"),
        ("download.pause", {"id": "1"}, "'id' must be an int"),
        ("download.pause", {"id": False}, "'id' must be an int"),
        ("replicate", {"root": "r", "replicas": 0}, "'replicas' must be 1..32"),
        ("link", {"root": 5}, "'root' must be a string"),
    ],
)
def test_bad_params_are_a_usage_error_naming_them(
    method: str, params: dict[str, Any], why: str
) -> None:
    with pytest.raises(UsageError, match=why) as info:
        parse_params(method, params)
    assert info.value.code == "usage"
    assert str(info.value).startswith(f"{method}: ")


def test_records_round_trip_to_request_params() -> None:
    for record in (
        AddParams(paths=("/a", "/b"), copy=True),
        ReplicateParams(root="r", replicas=2, seeds=("s",)),
        GetParams(link="l", out_dir="/o", bootstrap=("/ip4/1.2.3.4/tcp/1",)),
    ):
        method = next(m for m, cls in METHODS.items() if cls is type(record))
        assert parse_params(method, record.to_params()) == record
