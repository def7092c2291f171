"""p2pshare/malloc.py: the thresholds are taken on glibc, harmless elsewhere."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_malloc_is_taken_and_big_buffers_still_work() -> None:
    code = (
        "from p2pshare.malloc import tune_malloc\n"
        "ok = tune_malloc()\n"
        "bufs = [bytes(1 << 20) for _ in range(64)]\n"
        "del bufs\n"
        "print(ok)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out in {"True", "False"}  # False only on a non-glibc Linux (musl)
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert out == "True"
