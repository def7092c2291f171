"""End-to-end fixtures: real CLI processes and background nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.daemon import home_factory


@pytest.fixture
def homes(tmp_path: Path):
    """``homes("a")``: a home under tmp_path whose node is stopped after."""
    with home_factory(tmp_path) as make:
        yield make
