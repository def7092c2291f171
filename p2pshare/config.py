"""Where a node keeps its state, and how it is configured.

The home directory holds everything private to one node (DESIGN.md,
"Storage"): ``p2pshare.db``, ``blocks/``, later ``identity.key`` and
``control.sock``. It is chosen, in order, by ``--home``, the environment
variable ``P2PSHARE_HOME``, or platformdirs' per-user data directory, and is
created with mode 0700.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from p2pshare.errors import ConfigError

__all__ = [
    "GET_TIMEOUT_S",
    "HOME_ENV",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MDNS_ENV",
    "STALL_TIMEOUT_S",
    "Config",
    "Home",
    "load_config",
    "open_private",
    "resolve_home",
]

HOME_ENV = "P2PSHARE_HOME"
# defaults of `get` that the CLI, the control API and the node share
GET_TIMEOUT_S = 60.0  # --timeout: to find a first provider
STALL_TIMEOUT_S = 60.0  # --stall-timeout: no verified byte from anyone this long
# files and folders one download may create: a tiny share can name the same
# member folder many times over (1 000 entries of a 1 000-entry folder are
# a million files); the whole tree is counted before anything is written
MAX_ENTRIES = 100_000  # --max-entries
MAX_DEPTH = 64  # --max-depth: folders nested deeper are refused (hostile trees)
MDNS_ENV = "P2PSHARE_MDNS"
_TOP_LEVEL = frozenset({"replicas", "erasure", "seeds", "bootstrap", "network"})
_NETWORK = frozenset({"mdns", "upnp", "gateway"})


@dataclass(frozen=True, slots=True)
class Home:
    """The paths inside one node home."""

    path: Path

    @property
    def db(self) -> Path:
        return self.path / "p2pshare.db"

    @property
    def blocks(self) -> Path:
        return self.path / "blocks"

    @property
    def config(self) -> Path:
        return self.path / "config.toml"

    def ensure(self) -> Home:
        """Create the home (0700) if needed and tighten its mode.

        Raises:
            ConfigError: it exists but is not a directory, or cannot be made.
        """
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = self.path.stat()
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: cannot create home ({exc.strerror})"
            ) from exc
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{self.path}: home is not a directory")
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            self.path.chmod(0o700)
        return self


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Home:
    """Pick the home: ``explicit``, else ``$P2PSHARE_HOME``, else the default."""
    raw = explicit or os.environ.get(HOME_ENV) or platformdirs.user_data_dir("p2pshare")
    return Home(Path(raw).expanduser().absolute())


@dataclass(frozen=True, slots=True)
class Config:
    """``<home>/config.toml`` (optional). Example::

    replicas = 2                      # default for share/add --replicas
    erasure = "3/5"                   # default for share/add --erasure (wins)
    seeds = ["/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…"]  # tried first
    bootstrap = ["/dns4/seed.example.org/tcp/4001/p2p/12D3KooW…"]  # DHT entry

    [network]
    mdns = false                      # find nodes on the LAN (default: on)
    upnp = true                       # ask the router to forward our port (off)
    gateway = "127.0.0.1:8080"        # the HTTP gateway (default 127.0.0.1:0)

    ``$P2PSHARE_MDNS`` (``0`` or ``1``) overrides ``[network] mdns``.
    """

    replicas: int = 0
    erasure: str | None = None
    seeds: tuple[str, ...] = ()
    bootstrap: tuple[str, ...] = ()
    mdns: bool = True
    upnp: bool = False
    gateway: str = "127.0.0.1:0"


def load_config(home: Home) -> Config:
    """Read the home's config file; a missing file means the defaults.

    Raises:
        ConfigError: the file is not valid TOML or has a wrong value.
    """
    import tomllib

    try:
        raw = home.config.read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        raise ConfigError(f"{home.config}: cannot read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{home.config}: not valid TOML ({exc})") from exc
    where = str(home.config)
    _no_unknown(where, data, _TOP_LEVEL, "")
    network = data.get("network", {})
    if not isinstance(network, dict):
        raise ConfigError(f"{where}: [network] must be a table")
    _no_unknown(where, network, _NETWORK, "network.")
    replicas = data.get("replicas", 0)
    if (
        isinstance(replicas, bool)
        or not isinstance(replicas, int)
        or not 0 <= replicas <= 16
    ):
        raise ConfigError(f"{where}: replicas must be an integer from 0 to 16")
    erasure = data.get("erasure")
    if erasure is not None:
        k_text, _, n_text = str(erasure).partition("/")
        if not (
            isinstance(erasure, str)
            and k_text.isdigit()
            and n_text.isdigit()
            and 1 <= int(k_text) < int(n_text) <= 32
        ):
            raise ConfigError(
                f'{where}: erasure must be "K/N" with 1 <= K < N <= 32, such as "3/5"'
            )
    mdns = network.get("mdns", True)
    if not isinstance(mdns, bool):
        raise ConfigError(f"{where}: network.mdns must be true or false")
    upnp = network.get("upnp", False)
    if not isinstance(upnp, bool):
        raise ConfigError(f"{where}: network.upnp must be true or false")
    gateway = network.get("gateway", "127.0.0.1:0")
    host, _, port = str(gateway).rpartition(":")
    if (
        not isinstance(gateway, str)
        or not host
        or not port.isdigit()
        or not 0 <= int(port) <= 65535
    ):
        raise ConfigError(f'{where}: network.gateway must be "HOST:PORT"')
    override = os.environ.get(MDNS_ENV)
    if override is not None:
        if override not in ("0", "1"):
            raise ConfigError(f"${MDNS_ENV} must be 0 or 1, not {override!r}")
        mdns = override == "1"
    return Config(
        replicas=replicas,
        erasure=erasure,
        seeds=_addr_list(where, data, "seeds"),
        bootstrap=_addr_list(where, data, "bootstrap"),
        mdns=mdns,
        upnp=upnp,
        gateway=gateway,
    )


def _no_unknown(
    where: str, table: dict[str, object], known: frozenset[str], prefix: str
) -> None:
    unknown = set(table) - known
    if unknown:
        first = prefix + sorted(unknown)[0]
        raise ConfigError(f"{where}: unknown setting {first!r}")


def _addr_list(where: str, data: dict[str, object], name: str) -> tuple[str, ...]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where}: {name} must be a list of multiaddr strings")
    return tuple(value)


def open_private(path: Path, flags: int) -> int:
    """Open (creating it 0600) a regular file we own; tighten a looser mode."""
    try:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open ({exc.strerror})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd
