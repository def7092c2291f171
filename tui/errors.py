"""One line about a failure, for the TUI's notifications."""

from __future__ import annotations

from p2pshare.errors import P2PShareError

__all__ = ["describe_error"]


def describe_error(exc: BaseException) -> str:
    """One line for a notification."""
    if isinstance(exc, P2PShareError):
        return str(exc) or exc.code
    return f"{type(exc).__name__}: {exc}"
