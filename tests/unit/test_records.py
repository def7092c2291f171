"""The control API's result and event records (``p2pshare/records.py``):
what the client checks at the socket before the CLI or TUI reads a field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from p2pshare.errors import RemoteProtocolError
from p2pshare.records import RESULTS, check_event, check_result
from tests.helpers.fake_backend import DOWNLOADS, INSPECT, STATUS, VOUCHERS


def test_every_method_of_the_api_has_a_result_record() -> None:
    from p2pshare.control.api import METHODS

    assert set(RESULTS) == set(METHODS)


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("status", STATUS),
        ("downloads", DOWNLOADS),
        ("inspect", INSPECT),
        ("vouchers", VOUCHERS),
        ("rm", {"root": "bafk"}),
        ("stop", {}),
    ],
)
def test_a_conforming_result_passes(method: str, value: object) -> None:
    check_result(method, value)


def test_unknown_keys_pass_a_newer_node_may_report_more() -> None:
    check_result("rm", {"root": "bafk", "removed_bytes": 5})


def _broken(value: Any, path: tuple[Any, ...], new: object) -> Any:
    out = copy.deepcopy(value)
    cur = out
    for k in path[:-1]:
        cur = cur[k]
    if new is _DELETE:
        del cur[path[-1]]
    else:
        cur[path[-1]] = new
    return out


_DELETE = object()


@pytest.mark.parametrize(
    ("method", "value", "path", "new", "said"),
    [
        ("status", STATUS, ("peer_id",), _DELETE, "'peer_id' is missing"),
        ("status", STATUS, ("connected_peers",), "2", "connected_peers: not an int"),
        ("status", STATUS, ("connected_peers",), True, "not an int"),  # bool ≠ int
        ("status", STATUS, ("lan", "mdns"), 1, "status.lan.mdns: not a bool"),
        ("status", STATUS, ("seeds", 0, "replicas"), None, "seeds[0].replicas"),
        ("downloads", DOWNLOADS, (1, "stats"), [], "downloads[1].stats"),
        ("downloads", DOWNLOADS, (0, "routes"), {"p": 1}, "routes.p: not a string"),
        ("inspect", INSPECT, ("entries", 2, "size"), 1.5, "entries[2].size"),
        ("vouchers", VOUCHERS, (0, "reachable"), _DELETE, "'reachable' is missing"),
        ("vouchers", VOUCHERS, (0, "relayed"), "x", "relayed: not an int"),
    ],
)
def test_a_malformed_result_is_refused_naming_the_field(
    method: str, value: object, path: tuple[Any, ...], new: object, said: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=said.replace("[", r"\[")):
        check_result(method, _broken(value, path, new))


def test_optional_fields_may_be_absent() -> None:
    balance = dict(VOUCHERS[0])
    balance.pop("relayed", None)
    balance.pop("error", None)
    check_result("voucher.redeem", balance)
    check_result("status", {**STATUS, "reachability": {"state": "x", "why": "y"}})


def test_a_result_for_an_unknown_method_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown method"):
        check_result("rm -rf", {})


def test_events_are_checked_by_kind() -> None:
    check_event({"kind": "share.added", "root": "bafk", "share_kind": "file"})
    check_event({**DOWNLOADS[0], "kind": "download.progress"})
    check_event({"kind": "future.thing", "x": 1})  # unknown kinds pass
    with pytest.raises(RemoteProtocolError, match="'share_kind' is missing"):
        check_event({"kind": "share.added", "root": "bafk"})
    with pytest.raises(RemoteProtocolError, match=r"download\.done: 'done' is missing"):
        check_event(
            {**_broken(DOWNLOADS[0], ("done",), _DELETE), "kind": "download.done"}
        )
    with pytest.raises(RemoteProtocolError, match="without a kind"):
        check_event({"root": "bafk"})
    with pytest.raises(RemoteProtocolError, match=r"job\.failed\.job: not a string"):
        check_event(
            {"kind": "job.failed", "job": 1, "what": "", "code": "", "error": ""}
        )
