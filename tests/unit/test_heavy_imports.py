"""runtime.heavy_imports: the collector is paused inside and back after,
with what was imported frozen; a caller that had it off keeps it off."""

from __future__ import annotations

import gc

from p2pshare.cli.runtime import heavy_imports


def test_gc_paused_inside_and_frozen_after() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()
    try:
        with heavy_imports():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]  # objects alive at the freeze
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + len(made)
    finally:
        gc.unfreeze()
        gc.enable()


def test_gc_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with heavy_imports():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
