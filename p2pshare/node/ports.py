"""Listen ports: keep the one a home used, refuse one another node holds.

Theory of operation
-------------------
**Sticky port.** A link carries the sharer's addresses as peer hints, and
peers remember where they met it. A node that came back on a new random
port (``tcp/0``) made every link it printed before, and every peer that
knew it, dial a dead address. So the first time a home's node binds
``tcp/0`` the port it got is kept in ``<home>/listen-port``, and later
starts ask for that port again; if something else took it meanwhile, the
node takes a fresh port and keeps that one instead.

**A port in use.** py-libp2p binds with ``SO_REUSEPORT`` (for hole
punching, LIBP2P-NOTES), so a second node asked to listen on a port
another node of this machine already serves *succeeds*, and the kernel
then splits incoming connections between two nodes with different
identities: half of all handshakes fail. Before binding, every explicit
port is probed with a plain socket (``SO_REUSEADDR`` only, so a port in
``TIME_WAIT`` after a restart is still free), and one in use is refused
with a clear error. Two nodes of one home never both run (the home lock),
so a home re-using its own port is never refused.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Sequence
from pathlib import Path

from p2pshare.errors import ConfigError

__all__ = ["PORT_FILE", "check_free", "remember_port", "sticky"]

log = logging.getLogger(__name__)

PORT_FILE = "listen-port"


def _split(addr: str) -> tuple[int, str, int] | None:
    """``/ip4/<host>/tcp/<port>`` → (family, host, port); None otherwise."""
    parts = addr.strip("/").split("/")
    if len(parts) != 4 or parts[2] != "tcp" or parts[0] not in ("ip4", "ip6"):
        return None
    family = socket.AF_INET if parts[0] == "ip4" else socket.AF_INET6
    try:
        return family, parts[1], int(parts[3])
    except ValueError:
        return None


def _free(family: int, host: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_free(listen: Sequence[str]) -> None:
    """Refuse explicit ports that something on this machine already serves.

    Raises:
        ConfigError: naming the address and what to do.
    """
    for addr in listen:
        split = _split(addr)
        if split is None or split[2] == 0:
            continue
        if not _free(*split):
            raise ConfigError(
                f"listen address {addr}: port {split[2]} is already in use"
                " (another node of this machine?); choose another --listen"
            )


def sticky(home: Path, listen: Sequence[str]) -> list[str]:
    """``listen`` with ``tcp/0`` replaced by the port this home used last
    time, where that port is free."""
    try:
        port = int((home / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return list(listen)
    if not 0 < port < 65536:
        return list(listen)
    out = []
    for addr in listen:
        split = _split(addr)
        if split is not None and split[2] == 0 and _free(split[0], split[1], port):
            addr = addr[: -len("/0")] + f"/{port}"
        out.append(addr)
    return out


def remember_port(home: Path, asked: Sequence[str], bound: Sequence[str]) -> None:
    """Keep the port a ``tcp/0`` listen address got, for the next start."""
    if not any((s := _split(a)) is not None and s[2] == 0 for a in asked):
        return
    for addr in bound:
        split = _split(addr.split("/p2p/")[0])
        if split is not None and split[2]:
            with contextlib.suppress(OSError):
                tmp = home / (PORT_FILE + ".tmp")
                tmp.write_text(f"{split[2]}\n")
                tmp.replace(home / PORT_FILE)
            return
