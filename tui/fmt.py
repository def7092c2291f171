"""Formatting of sizes, rates and times for display (pure functions)."""

from __future__ import annotations

import time
from datetime import datetime

__all__ = ["human_eta", "human_rate", "human_size", "human_time", "short_id"]


def human_size(n: int | float | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_rate(bps: float | None) -> str:
    if not bps:
        return "-"
    return f"{human_size(bps)}/s"


def human_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def human_time(ts: float | str | None) -> str:
    """A local date and minute from epoch seconds or ISO 8601 text."""
    if not ts:
        return "-"
    if isinstance(ts, str):
        try:
            moment = datetime.fromisoformat(ts)
        except ValueError:
            return ts
        ts = moment.timestamp()
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def short_id(text: str | None, keep: int = 12) -> str:
    if not text:
        return "-"
    return text if len(text) <= keep + 1 else f"{text[:keep]}…"
