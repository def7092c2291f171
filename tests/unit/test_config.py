"""config.toml: defaults, the [network] table, the mDNS override, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pshare.config import MDNS_ENV, Config, Home, load_config
from p2pshare.errors import ConfigError

SEED = (
    "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWJxyw6Aa56nug9ziqWFWv2EBqdSMHerJJ4bAK1wbcaSeb"
)


def home_with(tmp_path: Path, text: str | None) -> Home:
    home = Home(tmp_path / "h").ensure()
    if text is not None:
        home.config.write_text(text)
    return home


def test_no_file_means_defaults_with_mdns_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MDNS_ENV, raising=False)
    assert load_config(home_with(tmp_path, None)) == Config()
    assert Config().mdns is True


def test_every_setting_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MDNS_ENV, raising=False)
    text = (
        f'replicas = 2\nseeds = ["{SEED}"]\nbootstrap = ["{SEED}"]\n'
        "[network]\nmdns = false\nupnp = true\n"
    )
    cfg = load_config(home_with(tmp_path, text))
    assert cfg == Config(
        replicas=2, seeds=(SEED,), bootstrap=(SEED,), mdns=False, upnp=True
    )
    assert Config().upnp is False  # off unless asked for
    assert load_config(home_with(tmp_path, 'erasure = "3/5"\n')).erasure == "3/5"


@pytest.mark.parametrize(
    ("env", "file_says", "expected"),
    [("0", None, False), ("1", "false", True), ("0", "true", False)],
)
def test_the_environment_overrides_mdns(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    file_says: str | None,
    expected: bool,
) -> None:
    """Also with no config file at all (that case once ignored the override)."""
    monkeypatch.setenv(MDNS_ENV, env)
    text = None if file_says is None else f"[network]\nmdns = {file_says}\n"
    assert load_config(home_with(tmp_path, text)).mdns is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "unknown setting 'colour'"),
        ("[network]\nmdsn = true\n", "unknown setting 'network.mdsn'"),
        ("network = 3\n", "[network] must be a table"),
        ('[network]\nmdns = "no"\n', "network.mdns must be true or false"),
        ("[network]\nupnp = 1\n", "network.upnp must be true or false"),
        ("bootstrap = 5\n", "bootstrap must be a list"),
        ("replicas = 99\n", "replicas must be an integer"),
        ('erasure = "5/3"\n', 'erasure must be "K/N"'),
        ("erasure = 3\n", 'erasure must be "K/N"'),
        ('erasure = "3/40"\n', 'erasure must be "K/N"'),
        ("seeds = [", "not valid TOML"),
    ],
)
def test_bad_settings_are_refused_with_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        load_config(home_with(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value).strip()


def test_a_bad_override_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MDNS_ENV, "yes")
    with pytest.raises(ConfigError, match="must be 0 or 1"):
        load_config(home_with(tmp_path, None))
