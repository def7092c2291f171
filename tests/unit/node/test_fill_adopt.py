"""Fill._adopt_new, alone: which live providers a download opens the share
on. A provider whose session died and that discovery dialled again (its
relay circuit was cut, it restarted) is a new connection under the same
name: it must be adopted, or it sits unused and the download fails saying
the provider "lacks the chunks still needed"."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import trio

from p2pshare.node.fill import Fill


class _Conn:  # hashable by identity, as ProviderConn is
    def __init__(self, name: str, *, dead: bool = False) -> None:
        self.name, self.dead = name, dead


def _pc(name: str, *, dead: bool = False) -> Any:
    return _Conn(name, dead=dead)


def _fill(live: list[Any], sessions: dict[str, Any]) -> tuple[Fill, list[Any]]:
    fill = Fill.__new__(Fill)
    adopted: list[Any] = []

    async def adopt(pc: Any) -> None:
        adopted.append(pc)

    fill.source = SimpleNamespace(swarm=SimpleNamespace(live=lambda: live))  # type: ignore[assignment]
    fill.share = SimpleNamespace(sessions=sessions)  # type: ignore[assignment]
    fill.adopting = set()
    fill.adopted = set()
    fill._adopt = adopt  # type: ignore[method-assign]
    return fill, adopted


@pytest.mark.trio
async def test_a_new_connection_to_a_provider_whose_session_died_is_adopted() -> None:
    old = _pc("p", dead=True)
    new, fresh, busy = _pc("p"), _pc("q"), _pc("r")
    sessions = {"p": SimpleNamespace(pc=old), "r": SimpleNamespace(pc=busy)}
    fill, adopted = _fill([new, fresh, busy], sessions)
    async with trio.open_nursery() as nursery:
        fill._adopt_new(nursery)
    # the living session of r is left alone; p's new connection and q join
    assert len(adopted) == 2 and set(adopted) == {new, fresh}
    assert fill.adopting == {"p", "q"}
    async with trio.open_nursery() as nursery:
        fill._adopt_new(nursery)  # tried once (joined or refused): not again
    assert len(adopted) == 2
