"""Reaching peers behind NATs, in network namespaces (``tests/helpers/netns.py``).

The Internet in miniature: a WAN bridge with two seeds on public
addresses, and three home routers on it, each with a laptop behind: a
port-preserving NAT ("cone"), a NAT with fully random ports
("symmetric"), and a firewall without NAT (the laptop has a public address
but nothing unsolicited gets in). Every router drops unsolicited packets
from the WAN silently. Nothing here has a link to the host's network.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from p2pshare.format import ShareLink
from p2pshare.format.links import parse_link
from tests.helpers.cli import p2pshare
from tests.helpers.netns import (
    Topology,
    home_router,
    on_wan,
    route_via,
    run_miniupnpd,
    topology,
    upnp_router,
    wan,
)
from tests.helpers.procs import Proc, running

PORT = 4001
ANY = f"/ip4/0.0.0.0/tcp/{PORT}"


@dataclass
class Net:
    topo: Topology
    wan: str
    seeds: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (ns, ip)
    laptops: dict[str, tuple[str, str]] = field(default_factory=dict)
    upnp: tuple[str, str, str] = ("", "", "")  # laptop, its address, router


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    with topology() as topo:
        w = wan(topo)
        n = Net(topo, w)
        n.seeds["s1"] = on_wan(topo, w, "s1", 10)
        n.seeds["s2"] = on_wan(topo, w, "s2", 11)
        kinds = ("cone", "symmetric", "firewall", "forward", "cone2")
        for host, kind in enumerate(kinds, start=1):
            n.laptops[kind] = home_router(
                topo, w, kind[:3] + str(host), host, kind.rstrip("2")
            )
            if kind == "firewall":  # its public subnet is routed via its router
                for ns, _ip in n.seeds.values():
                    route_via(topo, ns, f"11.{host}.0.0/24", f"11.0.0.{host}")
        n.upnp = upnp_router(topo, w, "upnp", len(kinds) + 1)
        yield n


_started: list[Proc] = []


def spawn(home: Path, *args: str | Path, **kw: Any) -> Proc:
    """A process that is killed when the test ends, whatever happens."""
    proc = Proc(home, *args, **kw)
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _kill_what_the_test_started() -> Iterator[None]:
    yield
    with running(*_started):
        pass
    _started.clear()


def peer_id(line: str) -> str:
    return line.rsplit("/p2p/", 1)[1]


def status(home: Path) -> dict[str, Any]:
    res = p2pshare(home, "status", "--json")
    assert res.code == 0, res.err
    return json.loads(res.out)  # type: ignore[no-any-return]


def wait_known(home: Path, deadline_s: float = 45) -> dict[str, Any]:
    """The node's reachability once it is no longer ``unknown``."""
    end = time.monotonic() + deadline_s
    while True:
        reach = status(home)["reachability"]
        if reach["state"] != "unknown" or time.monotonic() > end:
            return reach  # type: ignore[no-any-return]
        time.sleep(0.5)


def test_reachability_is_right_for_the_seed_and_behind_each_nat(
    net: Net, tmp_path: Path
) -> None:
    """4 of 4 (and the second seed): seeds public, every laptop private."""
    topo = net.topo
    homes = {name: tmp_path / name for name in [*net.seeds, *net.laptops]}
    s1_ns, s1_ip = net.seeds["s1"]
    s1 = spawn(homes["s1"], "seed", "--listen", ANY, prefix=topo.prefix(s1_ns))
    procs = [s1]
    with running(*procs):
        s1_addr = f"/ip4/{s1_ip}/tcp/{PORT}/p2p/{peer_id(s1.read_lines(1)[0])}"
        s2_ns, s2_ip = net.seeds["s2"]
        s2 = spawn(homes["s2"], "seed", "--listen", ANY, "--bootstrap", s1_addr,
                  prefix=topo.prefix(s2_ns))  # fmt: skip
        procs.append(s2)
        s2_addr = f"/ip4/{s2_ip}/tcp/{PORT}/p2p/{peer_id(s2.read_lines(1)[0])}"
        for kind, (ns, _ip) in net.laptops.items():
            proc = spawn(homes[kind], "node", "--listen", ANY, "--bootstrap", s1_addr,
                        "--bootstrap", s2_addr, prefix=topo.prefix(ns))  # fmt: skip
            procs.append(proc)
            proc.read_lines(1)
        with running(*procs[1:]):
            found = {name: wait_known(home) for name, home in homes.items()}
    states = {name: r["state"] for name, r in found.items()}
    assert states == {
        "s1": "public",
        "s2": "public",
        "cone": "private",
        "symmetric": "private",
        "firewall": "private",
        "forward": "public",
        "cone2": "private",
    }, found
    # what the seeds saw: the routers' public addresses, the firewalled
    # laptop's own one
    assert found["cone"]["observed"] == "11.0.0.1", found["cone"]
    assert found["symmetric"]["observed"] == "11.0.0.2", found["symmetric"]
    assert found["firewall"]["observed"] == "11.3.0.2", found["firewall"]
    assert "NAT or firewall" in found["cone"]["why"]
    assert found["s2"]["observed"] == s2_ip
    assert found["forward"]["observed"] == "11.0.0.4", found["forward"]


def seed_addr(net: Net, proc: Proc, name: str) -> str:
    ip = net.seeds[name][1]
    return f"/ip4/{ip}/tcp/{PORT}/p2p/{peer_id(proc.read_lines(1)[0])}"


def test_a_forwarded_port_goes_first_in_links_and_works_from_another_nat(
    net: Net, tmp_path: Path
) -> None:
    """The laptop behind a router with a forwarded port learns from the seed
    that it is reachable on the router's address, puts that first in its
    links, and a laptop behind a symmetric NAT downloads with the link alone."""
    topo = net.topo
    s1 = spawn(tmp_path / "s1", "seed", "--listen", ANY,
              prefix=topo.prefix(net.seeds["s1"][0]))  # fmt: skip
    with running(s1):
        boot = seed_addr(net, s1, "s1")
        src = tmp_path / "report.bin"
        src.write_bytes(os.urandom(2 << 20))
        fwd_ns, _ip = net.laptops["forward"]
        owner = spawn(tmp_path / "fwd", "node", "--listen", ANY, "--bootstrap", boot,
                     prefix=topo.prefix(fwd_ns))  # fmt: skip
        with running(owner):
            owner.read_lines(1)
            assert wait_known(tmp_path / "fwd")["state"] == "public"
            res = p2pshare(tmp_path / "fwd", "add", src)
            assert res.code == 0, res.err
            link = parse_link(res.out.strip())
            assert link.peers[0].startswith("/ip4/11.0.0.4/tcp/4001/p2p/"), link.peers
            out = tmp_path / "out"
            sym_ns, _ip = net.laptops["symmetric"]
            res = p2pshare(
                tmp_path / "getter", "get", str(link), "-o", out, "--timeout", "20",
                "--listen", ANY, prefix=topo.prefix(sym_ns), timeout=60,
            )  # fmt: skip
            assert res.code == 0, res.err
            assert (out / "report.bin").read_bytes() == src.read_bytes()


def test_get_timeout_is_a_hard_deadline_when_a_hint_drops_packets(
    net: Net, tmp_path: Path
) -> None:
    """A hint whose address silently drops every packet (a NAT's public
    address with no port forwarded) cannot hold `get` past --timeout."""
    ns, _ip = net.laptops["cone"]
    src = tmp_path / "x.bin"
    src.write_bytes(b"x" * 1000)
    res = p2pshare(tmp_path / "owner", "add", src)
    assert res.code == 0, res.err
    bare = parse_link(res.out.strip())
    someone = "12D3KooWJxyw6Aa56nug9ziqWFWv2EBqdSMHerJJ4bAK1wbcaSeb"
    dropped = ShareLink(
        root_id=bare.root_id,
        key=bare.key,
        peers=(f"/ip4/11.0.0.2/tcp/4001/p2p/{someone}",),  # the symmetric router
    )
    started = time.monotonic()
    res = p2pshare(
        tmp_path / "getter", "get", str(dropped), "-o", tmp_path / "out",
        "--timeout", "5", "--listen", ANY, prefix=topo_prefix(net, ns), timeout=30,
    )  # fmt: skip
    took = time.monotonic() - started
    assert res.code == 3, (res.code, res.err)
    assert "no provider" in res.err
    print(f"get --timeout 5 with a dropping hint returned after {took:.1f} s")


def topo_prefix(net: Net, ns: str) -> tuple[str, ...]:
    return tuple(net.topo.prefix(ns))


def test_bootstrap_from_config_and_from_the_peers_of_the_last_run(
    net: Net, tmp_path: Path
) -> None:
    """A home with `bootstrap` in config.toml joins through it; a home that
    was given --bootstrap once joins again without it (known-peers)."""
    topo = net.topo
    s1 = spawn(tmp_path / "s1", "seed", "--listen", ANY,
              prefix=topo.prefix(net.seeds["s1"][0]))  # fmt: skip
    with running(s1):
        boot = seed_addr(net, s1, "s1")
        # configured: a laptop behind a NAT, no --bootstrap on the command line
        laptop = tmp_path / "laptop"
        laptop.mkdir(mode=0o700)
        (laptop / "config.toml").write_text(f'bootstrap = ["{boot}"]\n')
        node = spawn(laptop, "node", "--listen", ANY,
                    prefix=topo.prefix(net.laptops["cone"][0]))  # fmt: skip
        with running(node):
            node.read_lines(1)
            assert wait_known(laptop)["state"] == "private"
        # remembered: the second seed, once with --bootstrap, then without
        s2_ns = net.seeds["s2"][0]
        home = tmp_path / "s2"
        first = spawn(home, "seed", "--listen", ANY, "--bootstrap", boot,
                     prefix=topo.prefix(s2_ns))  # fmt: skip
        with running(first):
            first.read_lines(1)
            assert status(home)["connected_peers"] >= 1
            assert first.stop() == 0
        known = (home / "known-peers").read_text().split()
        assert known == [boot], known
        assert (home / "known-peers").stat().st_mode & 0o777 == 0o600
        again = spawn(home, "seed", "--listen", ANY, prefix=topo.prefix(s2_ns))
        with running(again):
            again.read_lines(1)
            st = status(home)
            assert st["connected_peers"] >= 1 and st["dht_routing_table"] >= 1, st


def wait_relayed(home: Path, deadline_s: float = 40) -> list[str]:
    """The node's circuit addresses once a relay holds a reservation."""
    end = time.monotonic() + deadline_s
    while True:
        addrs = [a for a in status(home)["addrs"] if "/p2p-circuit" in a]
        if addrs or time.monotonic() > end:
            return addrs
        time.sleep(0.5)


def relay_share(
    net: Net,
    tmp_path: Path,
    owner_kind: str,
    seed_args: tuple[str, ...] = (),
    *,
    share: bool = False,
) -> tuple[Proc, Proc, str, Path]:
    """A seed, and a node behind ``owner_kind`` that holds a reservation on
    it and adds a file (with ``share``: `share FILE` in the foreground, its
    link printed once the reservation is held); returns (seed, owner, link,
    file)."""
    topo = net.topo
    s1 = spawn(tmp_path / "s1", "seed", "--listen", ANY, *seed_args,
              prefix=topo.prefix(net.seeds["s1"][0]))  # fmt: skip
    boot = seed_addr(net, s1, "s1")
    home = tmp_path / "owner"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(f'seeds = ["{boot}"]\n')
    src = tmp_path / "holiday.bin"
    src.write_bytes(os.urandom(8 << 20))
    where = topo.prefix(net.laptops[owner_kind][0])
    if share:
        owner = spawn(home, "share", "--listen", ANY, src, prefix=where)
        (link,) = owner.read_lines(1)
        assert wait_known(home)["state"] == "private"
    else:
        owner = spawn(home, "node", "--listen", ANY, prefix=where)
        owner.read_lines(1)
        assert wait_known(home)["state"] == "private"
        assert wait_relayed(home), status(home)
        res = p2pshare(home, "add", src)
        assert res.code == 0, res.err
        link = res.out.strip()
    assert "p2p-circuit" in link, link
    return s1, owner, link, src


def test_cone_to_cone_goes_direct_and_the_relay_carries_almost_nothing(
    net: Net, tmp_path: Path
) -> None:
    """A `share`s with only the seed in its config; B `get`s with nothing
    but the link."""
    s1, owner, link, src = relay_share(net, tmp_path, "cone", share=True)
    with running(s1, owner):
        out = tmp_path / "out"
        started = time.monotonic()
        res = p2pshare(
            tmp_path / "getter", "get", link, "-o", out, "--timeout", "30",
            "--listen", ANY, prefix=topo_prefix(net, net.laptops["cone2"][0]),
            timeout=120,
        )  # fmt: skip
        took = time.monotonic() - started
        assert res.code == 0, res.err[-3000:]
        assert (out / "holiday.bin").read_bytes() == src.read_bytes()
        assert "direct after hole punching" in res.err, res.err[-3000:]
        relayed = status(tmp_path / "s1")["seed_relay"]["relayed_bytes"]
        (line,) = [x for x in res.err.splitlines() if "hole punching" in x]
        print(f"cone->cone: {took:.1f} s, {relayed} B through the relay; {line}")
        assert relayed < 1 << 20


def test_symmetric_nat_is_relayed_for_a_voucher_holder_and_refused_without(
    net: Net, tmp_path: Path
) -> None:
    s1, owner, link, src = relay_share(net, tmp_path, "cone")
    with running(s1, owner):
        getter_ns = net.laptops["symmetric"][0]
        res = p2pshare(
            tmp_path / "nobody", "get", link, "-o", tmp_path / "no", "--timeout", "20",
            "--listen", ANY, prefix=topo_prefix(net, getter_ns), timeout=120,
        )  # fmt: skip
        assert res.code == 3, (res.code, res.err[-2000:])
        assert "relay limit" in res.err, res.err[-2000:]
        assert not (tmp_path / "no" / "holiday.bin").exists()
        print("without a voucher:", res.err.strip().splitlines()[-1])
        relay = status(tmp_path / "s1")["seed_relay"]  # the seed is still up
        assert relay["circuits"]["limited"] >= 1, relay

        # the same through a background node: the same error and exit code,
        # and the node stays up
        home = tmp_path / "bg"
        bg = spawn(home, "node", "--listen", ANY, prefix=topo_prefix(net, getter_ns))
        bg.read_lines(1)
        res = p2pshare(home, "get", link, "-o", tmp_path / "bg-out", "--timeout",
                       "20", timeout=120)  # fmt: skip
        assert res.code == 3, (res.code, res.err[-2000:])
        assert "relay limit" in res.err, res.err[-2000:]
        assert status(home)["reachability"]  # the node still answers
        assert bg.stop() == 0  # (its port is the next getter's)

        # the owner redeems a voucher of that seed: its circuits carry bulk data
        code = p2pshare(
            tmp_path / "s1", "voucher", "issue", "--quota", "1G", "--expires", "1d"
        )
        assert code.code == 0, code.err
        redeemed = p2pshare(tmp_path / "owner", "voucher", "redeem", code.out.strip())
        assert redeemed.code == 0, redeemed.err
        before = status(tmp_path / "s1")["seed_relay"]["relayed_bytes"]
        out = tmp_path / "out"
        started = time.monotonic()
        res = p2pshare(
            tmp_path / "holder", "get", link, "-o", out, "--timeout", "20",
            "--listen", ANY, prefix=topo_prefix(net, getter_ns), timeout=180,
        )  # fmt: skip
        took = time.monotonic() - started
        assert res.code == 0, res.err[-3000:]
        assert (out / "holiday.bin").read_bytes() == src.read_bytes()
        assert ": relayed via …" in res.err
        relayed = status(tmp_path / "s1")["seed_relay"]["relayed_bytes"] - before
        assert relayed > src.stat().st_size  # it all went through the seed
        # and it is charged to the voucher that admitted it
        (bal,) = json.loads(p2pshare(tmp_path / "owner", "voucher", "ls", "--json").out)
        assert bal["relayed"] >= src.stat().st_size, bal
        assert "relayed" in p2pshare(tmp_path / "owner", "voucher", "ls").out
        size = src.stat().st_size / 1e6
        print(f"symmetric->cone relayed: {size:.1f} MB in {took:.1f} s "
              f"({size / took:.1f} MB/s, process start included)")  # fmt: skip


def test_after_a_seed_restart_the_reservation_comes_back_and_links_work(
    net: Net, tmp_path: Path
) -> None:
    s1, owner, link, src = relay_share(net, tmp_path, "cone")
    with running(s1, owner):
        assert s1.stop() == 0
        again = spawn(tmp_path / "s1", "seed", "--listen", ANY,
                     prefix=topo_prefix(net, net.seeds["s1"][0]))  # fmt: skip
        with running(again):
            again.read_lines(1)
            started = time.monotonic()
            while status(tmp_path / "s1")["seed_relay"]["reservations"] < 1:
                assert time.monotonic() - started < 30, "no reservation in 30 s"
                time.sleep(0.5)
            print(f"reservation back {time.monotonic() - started:.1f} s after restart")
            out = tmp_path / "out"
            res = p2pshare(
                tmp_path / "getter", "get", link, "-o", out, "--timeout", "30",
                "--listen", ANY, prefix=topo_prefix(net, net.laptops["cone2"][0]),
                timeout=120,
            )  # fmt: skip
            assert res.code == 0, res.err[-3000:]
            assert (out / "holiday.bin").read_bytes() == src.read_bytes()


def test_a_background_node_gets_through_an_open_relay_and_peers_says_so(
    net: Net, tmp_path: Path
) -> None:
    """No voucher, but the seed runs --open-relay: the symmetric NAT's node
    downloads over the relay, and `peers` shows that path."""
    s1, owner, link, src = relay_share(net, tmp_path, "cone", ("--open-relay",))
    with running(s1, owner):
        home = tmp_path / "getter"
        sym = topo_prefix(net, net.laptops["symmetric"][0])
        getter = spawn(home, "node", "--listen", ANY, prefix=sym)
        getter.read_lines(1)
        out = tmp_path / "out"
        res = p2pshare(home, "get", link, "-o", out, "--timeout", "20", timeout=120)
        assert res.code == 0, res.err[-3000:]
        assert (out / "holiday.bin").read_bytes() == src.read_bytes()
        owner_id = parse_link(link).peers[0].rsplit("/p2p/", 1)[1]
        peers = json.loads(p2pshare(home, "peers", "--json").out)
        (row,) = [p for p in peers if p["peer_id"] == owner_id]
        assert row["path"].startswith("relayed via …"), row
        relay = status(tmp_path / "s1")["seed_relay"]
        assert relay["open_relay"] and relay["circuits"]["bulk"] >= 1, relay


def test_upnp_maps_the_port_the_seed_confirms_it_and_it_goes_on_exit(
    net: Net, tmp_path: Path
) -> None:
    """[network] upnp = true behind a router with a UPnP IGD: the node maps
    its port, a seed's dial-back confirms it (public), the address goes
    first in its links, and the mapping is removed when the node stops."""
    laptop_ns, _ip, router = net.upnp
    s1 = spawn(tmp_path / "s1", "seed", "--listen", ANY,
               prefix=topo_prefix(net, net.seeds["s1"][0]))  # fmt: skip
    with run_miniupnpd(net.topo, router, tmp_path), running(s1):
        boot = seed_addr(net, s1, "s1")
        home = tmp_path / "laptop"
        home.mkdir(mode=0o700)
        (home / "config.toml").write_text(
            f'bootstrap = ["{boot}"]\n[network]\nupnp = true\n'
        )
        node = spawn(home, "node", "--listen", ANY, prefix=topo_prefix(net, laptop_ns))
        node.read_lines(1)
        started = time.monotonic()
        while True:
            st = status(home)
            if st["reachability"]["state"] == "public":
                break
            assert time.monotonic() - started < 40, st
            time.sleep(0.5)
        print(f"UPnP: public {time.monotonic() - started:.1f} s after start")
        assert st["upnp"]["state"] == "mapped", st["upnp"]
        router_ip = st["upnp"]["external_ip"]
        assert st["reachability"]["observed"] == router_ip
        src = tmp_path / "f.bin"
        src.write_bytes(b"u" * 5000)
        link = parse_link(p2pshare(home, "add", src).out.strip())
        assert link.peers[0].startswith(f"/ip4/{router_ip}/tcp/{PORT}/p2p/"), link
        rules = net.topo.run(router, "nft", "list", "chain", "inet", "filter",
                             "prerouting_miniupnpd").stdout  # fmt: skip
        assert f"dport {PORT}" in rules, rules
        assert node.stop() == 0
        rules = net.topo.run(router, "nft", "list", "chain", "inet", "filter",
                             "prerouting_miniupnpd").stdout  # fmt: skip
        assert f"dport {PORT}" not in rules, rules


def test_a_private_share_is_found_through_the_dht_and_reached_by_relay(
    net: Net, tmp_path: Path
) -> None:
    """No hints: the getter asks the DHT through the seed, the provider
    record carries the owner's relay address, and the download goes through
    the relay and then direct."""
    s1, owner, link, src = relay_share(net, tmp_path, "cone")
    with running(s1, owner):
        full = parse_link(link)
        bare = ShareLink(root_id=full.root_id, key=full.key, peers=())
        circuit = next(p for p in full.peers if "/p2p-circuit" in p)
        boot = circuit.split("/p2p-circuit")[0]  # the seed
        out = tmp_path / "out"
        res = p2pshare(
            tmp_path / "getter", "get", str(bare), "-o", out, "--bootstrap", boot,
            "--timeout", "30", "--listen", ANY,
            prefix=topo_prefix(net, net.laptops["cone2"][0]), timeout=120,
        )  # fmt: skip
        assert res.code == 0, res.err[-3000:]
        assert (out / "holiday.bin").read_bytes() == src.read_bytes()
        assert "hole punching" in res.err, res.err[-2000:]
