"""Optional UPnP port mapping: ask the home router to forward our port.

Off by default (``[network] upnp = true`` in ``config.toml`` turns it on):
a router that maps ports on request is a router any program on the LAN can
open, and many users would rather not. When on, the node asks the LAN's
UPnP IGD (``miniupnpc``, in a worker thread: its calls block) to forward
TCP ``<external ip>:<listen port>`` to ``<our LAN ip>:<listen port>`` for
:data:`LEASE_S`, renews it every :data:`RENEW_S`, and removes it when the
node stops (the lease also ends by itself after a crash, unlike py-libp2p's
permanent mapping). The mapped address is *not* advertised on the router's
word: the mapping triggers a reachability check, and the address is
advertised only once a seed dialled it back (``reach.py``). A router whose
own external address is private (double NAT) is left alone: a mapping
there would not make us reachable.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from p2pshare.node.lan import in_worker
from p2pshare.records import UpnpState

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["LEASE_S", "RENEW_S", "PortMapper"]

log = logging.getLogger(__name__)

LEASE_S: Final = 3600
RENEW_S: Final = 1800.0
DISCOVER_MS: Final = 2000
RETRY_S: Final = 300.0  # no gateway found: look again this much later
DESCRIPTION: Final = "p2pshare"


@dataclass(eq=False)
class PortMapper:
    """One TCP port mapping on the LAN's IGD (see the module docstring)."""

    port: int
    on_mapped: Callable[[], None] = lambda: None
    state: str = "starting"  # mapped | no gateway | double NAT | refused | off
    external_ip: str | None = None
    _igd: Any = None

    def describe(self) -> UpnpState:
        return UpnpState(state=self.state, external_ip=self.external_ip, port=self.port)

    async def run(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            while True:
                wait = await self._map_once()
                await trio.sleep(wait)
        finally:
            if self.state == "mapped" and self._igd is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(3):
                    await in_worker(_unmap, self._igd, self.port)
                    log.info("UPnP: mapping of port %d removed", self.port)
                self.state = "off"

    async def _map_once(self) -> float:
        """Map (or renew); returns how long to wait before the next try."""
        try:
            if self._igd is None:
                self._igd = await in_worker(_discover)
            igd = self._igd
            external = await in_worker(igd.externalipaddress)
            self.external_ip = str(external)
            if not ipaddress.ip_address(self.external_ip).is_global:
                self.state = "double NAT"
                log.info("UPnP: the router's address %s is private", self.external_ip)
                return RETRY_S
            await in_worker(_map, igd, self.port)
        except Exception as exc:  # miniupnpc raises Exception("…") for everything
            fresh = self.state != "no gateway"
            self._igd = None
            self.state = "no gateway" if "discover" in str(exc) else "refused"
            if fresh:
                log.info("UPnP: no port mapping: %s", exc)
            return RETRY_S
        if self.state != "mapped":
            log.info(
                "UPnP: %s:%d forwarded to this node (checking it)",
                self.external_ip,
                self.port,
            )
            self.state = "mapped"
            self.on_mapped()
        return RENEW_S


def _discover() -> Any:
    import miniupnpc  # type: ignore[import-not-found]  # no stubs

    igd = miniupnpc.UPnP()
    igd.discoverdelay = DISCOVER_MS
    if igd.discover() == 0:
        raise RuntimeError("discover: no UPnP gateway answered")
    igd.selectigd()
    return igd


def _map(igd: Any, port: int) -> None:
    ok = igd.addportmapping(port, "TCP", igd.lanaddr, port, DESCRIPTION, "", LEASE_S)
    if not ok:
        raise RuntimeError(f"the gateway refused to map port {port}")


def _unmap(igd: Any, port: int) -> None:
    with contextlib.suppress(Exception):
        igd.deleteportmapping(port, "TCP")
