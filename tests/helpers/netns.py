"""Network namespaces for tests: LANs, a "WAN", routers, laptops.

Everything lives in namespaces this helper creates; none has a link or a
route to the host's own namespace, so no packet a test sends can leave
the machine. Names carry the test process's pid, so parallel runs do not
collide, and :class:`Topology` deletes every namespace it made when its
``with`` block ends, also on failure (deleting a namespace deletes its
interfaces). Every ``ip``/``nft`` call is bounded in time.

Needs root (CI runs as root) and ``iproute2``; tests skip with the reason
when namespaces cannot be made.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

_counter = itertools.count()
CMD_TIMEOUT_S = 10


def _ip(*args: str) -> None:
    subprocess.run(
        ["ip", *args], check=True, capture_output=True, timeout=CMD_TIMEOUT_S
    )


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or ``None``."""
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"p2pschk{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"cannot create a network namespace: {exc}"
    _ip("netns", "del", name)
    return None


class Topology:
    """Namespaces and links made for one test; see the module docstring."""

    def __init__(self) -> None:
        self.tag = f"p2ps{os.getpid()}x{next(_counter)}"
        self.made: list[str] = []
        self._veth = itertools.count()

    def ns(self, role: str) -> str:
        """A new namespace with ``lo`` up; returns its name."""
        name = f"{self.tag}{role}"
        _ip("netns", "add", name)
        self.made.append(name)
        self.run(name, "ip", "link", "set", "lo", "up")
        return name

    def run(self, ns: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *cmd],
            check=True,
            capture_output=True,
            text=True,
            timeout=CMD_TIMEOUT_S,
        )

    def bridge(self, ns: str, name: str = "br0") -> str:
        self.run(ns, "ip", "link", "add", name, "type", "bridge")
        self.run(ns, "ip", "link", "set", name, "up")
        return name

    def wire(self, ns: str, addr: str, *, bridge_ns: str, bridge: str = "br0") -> str:
        """A veth from ``ns`` (as ``eth<n>`` with ``addr``, e.g.
        ``10.77.0.2/24``) to ``bridge`` in ``bridge_ns``; returns the
        interface name inside ``ns``."""
        n = next(self._veth)
        inside, outside = f"{self.tag[-6:]}i{n}", f"{self.tag[-6:]}o{n}"
        _ip(
            "link",
            "add",
            inside,
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            outside,
            "netns",
            bridge_ns,
        )
        dev = f"eth{n}"
        self.run(ns, "ip", "link", "set", inside, "name", dev)
        self.run(ns, "ip", "addr", "add", addr, "dev", dev)
        self.run(ns, "ip", "link", "set", dev, "up")
        self.run(bridge_ns, "ip", "link", "set", outside, "master", bridge)
        self.run(bridge_ns, "ip", "link", "set", outside, "up")
        return dev

    def prefix(self, ns: str) -> Sequence[str]:
        """The command prefix that runs a program inside ``ns``."""
        return ("ip", "netns", "exec", ns)

    def close(self) -> None:
        for name in reversed(self.made):
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, timeout=CMD_TIMEOUT_S
            )
        self.made.clear()


@contextmanager
def topology() -> Iterator[Topology]:
    """A :class:`Topology`, removed at the end; skips the test when
    namespaces cannot be made here."""
    why = unavailable()
    if why is not None:
        pytest.skip(why)
    topo = Topology()
    try:
        yield topo
    finally:
        topo.close()


def lan(topo: Topology, hosts: int, subnet: str = "10.77.0") -> list[str]:
    """``hosts`` namespaces on one bridge (a home LAN with multicast, no
    router, no route anywhere else); returns their names. Host ``i`` has
    address ``<subnet>.<i + 1>``."""
    switch = topo.ns("sw")
    topo.bridge(switch)
    names = []
    for i in range(hosts):
        ns = topo.ns(f"h{i}")
        dev = topo.wire(ns, f"{subnet}.{i + 1}/24", bridge_ns=switch)
        # multicast (mDNS) goes out on the LAN interface, as on a real host
        topo.run(ns, "ip", "route", "add", "224.0.0.0/4", "dev", dev)
        names.append(ns)
    return names
