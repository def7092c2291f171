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
from pathlib import Path

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
        self.upnp: dict[str, tuple[str, str, str]] = {}  # router -> wan, lan, net

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


# --------------------------------------------------------------------------
# The Internet in miniature: a WAN, seeds on it, routers, laptops behind them
# --------------------------------------------------------------------------

# Public-looking addresses (libp2p and our hints treat private ranges as
# local): 11.0.0.0/8 exists only inside these namespaces, which have no
# link to the host, so nothing ever leaves the machine.
WAN_SUBNET = "11.0.0"
NAT_KINDS = ("cone", "symmetric", "firewall", "forward")
FORWARDED_PORT = 4001  # what a "forward" router forwards to its laptop


def wan(topo: Topology) -> str:
    """The WAN: a namespace holding a bridge that seeds and routers join."""
    ns = topo.ns("wan")
    topo.bridge(ns)
    return ns


def on_wan(topo: Topology, wan_ns: str, role: str, host: int) -> tuple[str, str]:
    """A machine with a public address ``11.0.0.<host>`` on the WAN;
    returns (namespace, address)."""
    ns, ip, _dev = _on_wan(topo, wan_ns, role, host)
    return ns, ip


def _on_wan(topo: Topology, wan_ns: str, role: str, host: int) -> tuple[str, str, str]:
    ns = topo.ns(role)
    ip = f"{WAN_SUBNET}.{host}"
    dev = topo.wire(ns, f"{ip}/24", bridge_ns=wan_ns)
    return ns, ip, dev


def pair(
    topo: Topology,
    a: str,
    addr_a: str,
    b: str,
    addr_b: str,
    names: tuple[str, str] | None = None,
) -> tuple[str, str]:
    """A veth between ``a`` and ``b`` (a cable); returns the two device
    names (``names``, made directly inside the namespaces, or unique ones)."""
    n = next(topo._veth)
    dev_a, dev_b = names or (f"{topo.tag[-6:]}a{n}", f"{topo.tag[-6:]}b{n}")
    _ip("link", "add", dev_a, "netns", a, "type", "veth", "peer", "name", dev_b,
        "netns", b)  # fmt: skip
    for ns, dev, addr in ((a, dev_a, addr_a), (b, dev_b, addr_b)):
        topo.run(ns, "ip", "addr", "add", addr, "dev", dev)
        topo.run(ns, "ip", "link", "set", dev, "up")
    return dev_a, dev_b


def nft(topo: Topology, ns: str, ruleset: str) -> None:
    res = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        input=ruleset,
        capture_output=True,
        text=True,
        timeout=CMD_TIMEOUT_S,
        check=False,
    )
    if res.returncode:
        raise RuntimeError(f"nft in {ns}: {res.stderr.strip()}\n{ruleset}")


def home_router(
    topo: Topology, wan_ns: str, role: str, host: int, kind: str
) -> tuple[str, str]:
    """A home router on the WAN at ``11.0.0.<host>`` and one laptop behind
    it; returns (laptop namespace, laptop address).

    Every kind drops unsolicited packets from the WAN silently, as home
    routers do (with RST instead, hole punching fails). ``cone``:
    masquerade that keeps source ports (port-preserving, like most home
    NATs); ``symmetric``: masquerade with fully random ports (carrier NATs);
    ``firewall``: no NAT, the laptop has a public address of its own
    (``11.<host>.0.2``, routed by the seeds through this router);
    ``forward``: a cone NAT whose owner forwarded TCP port
    :data:`FORWARDED_PORT` to the laptop (as by hand or by UPnP).
    """
    if kind not in NAT_KINDS:
        raise ValueError(kind)
    router, _ip, wan_dev = _on_wan(topo, wan_ns, f"{role}r", host)
    laptop = topo.ns(role)
    net = f"11.{host}.0" if kind == "firewall" else f"10.{host}.0"
    router_lan, laptop_ip = f"{net}.1", f"{net}.2"
    pair(topo, router, f"{router_lan}/24", laptop, f"{laptop_ip}/24")
    topo.run(laptop, "ip", "route", "add", "default", "via", router_lan)
    topo.run(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    masq = forwarded = ""
    if kind == "forward":
        forwarded = f'    iifname "{wan_dev}" ct status dnat accept\n'
        masq = f"""
table ip portmap {{
  chain pre {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{wan_dev}" tcp dport {FORWARDED_PORT} dnat to {laptop_ip}:{FORWARDED_PORT}
  }}
}}"""
    if kind != "firewall":
        random = " fully-random" if kind == "symmetric" else ""
        masq += f"""
table ip nat {{
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{wan_dev}" masquerade{random}
  }}
}}"""
    nft(
        topo,
        router,
        masq
        + f"""
table inet fw {{
  chain from_wan {{
    type filter hook forward priority filter; policy accept;
    iifname "{wan_dev}" ct state established,related accept
{forwarded}    iifname "{wan_dev}" drop
  }}
  chain to_router {{
    type filter hook input priority filter; policy accept;
    iifname "{wan_dev}" ct state established,related accept
    iifname "{wan_dev}" drop
  }}
}}""",
    )
    return laptop, laptop_ip


def route_via(topo: Topology, ns: str, net: str, gateway: str) -> None:
    topo.run(ns, "ip", "route", "add", net, "via", gateway)


def upnp_router(
    topo: Topology, wan_ns: str, role: str, host: int
) -> tuple[str, str, str]:
    """A cone NAT at ``11.0.0.<host>`` whose router runs a UPnP IGD
    (``miniupnpd``, nftables backend) for its LAN; returns (laptop
    namespace, laptop address, router namespace). The firewall drops what
    comes from the WAN unless miniupnpd opened it (its chains are the ones
    its ``nft_init.sh`` makes: ``inet filter`` ``miniupnpd``,
    ``prerouting_miniupnpd``, ``postrouting_miniupnpd``). Start the daemon
    with :func:`run_miniupnpd`."""
    router, _ip, wan_dev = _on_wan(topo, wan_ns, f"{role}r", host)
    laptop = topo.ns(role)
    router_lan, laptop_ip = f"10.{host}.0.1", f"10.{host}.0.2"
    lan_dev, _dev = pair(
        topo, router, f"{router_lan}/24", laptop, f"{laptop_ip}/24", ("lan0", "lan0")
    )
    topo.run(laptop, "ip", "route", "add", "default", "via", router_lan)
    topo.run(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    nft(
        topo,
        router,
        f"""
table inet filter {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{wan_dev}" ct state established,related accept
    jump miniupnpd
    iifname "{wan_dev}" drop
  }}
  chain miniupnpd {{
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{wan_dev}" ct state established,related accept
    iifname "{wan_dev}" drop
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    jump prerouting_miniupnpd
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    jump postrouting_miniupnpd
    oifname "{wan_dev}" masquerade
  }}
  chain prerouting_miniupnpd {{
  }}
  chain postrouting_miniupnpd {{
  }}
}}""",
    )
    topo.upnp[router] = (wan_dev, lan_dev, f"10.{host}.0.0/24")
    return laptop, laptop_ip, router


@contextmanager
def run_miniupnpd(
    topo: Topology, router: str, conf_dir: Path
) -> Iterator[subprocess.Popen[str]]:
    """miniupnpd in the foreground in ``router`` (killed at the end); skips
    the test when miniupnpd is not installed."""
    binary = shutil.which("miniupnpd")
    if binary is None:
        pytest.skip("miniupnpd is not installed (Debian: miniupnpd-nftables)")
    wan_dev, lan_dev, lan_net = topo.upnp[router]
    conf = conf_dir / "miniupnpd.conf"
    conf.write_text(
        f"ext_ifname={wan_dev}\n"
        f"listening_ip={lan_dev}\n"
        "http_port=0\n"
        "enable_natpmp=no\n"
        "enable_upnp=yes\n"
        "secure_mode=yes\n"
        "system_uptime=yes\n"
        "uuid=5f3c9b66-5b3e-4c0a-9d6a-2b4f2f1c0e01\n"
        f"allow 1024-65535 {lan_net} 1024-65535\n"
        "deny 0-65535 0.0.0.0/0 0-65535\n"
    )
    with (conf_dir / "miniupnpd.log").open("w") as log:  # read it on failure
        proc = subprocess.Popen(
            ["ip", "netns", "exec", router, binary, "-d", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        try:
            yield proc
        finally:
            proc.kill()
            proc.wait(5)
