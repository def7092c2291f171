"""Turning a nursery's one-error ExceptionGroup back into that error.

trio wraps every exception that leaves a nursery in an ExceptionGroup.
Where a nursery is an implementation detail (a download, a session), its
callers should see the typed error that actually happened (``NoProviders``,
``AccessDenied``, …), not a group. :func:`single_error` re-raises the one
leaf when there is exactly one that is not a ``trio.Cancelled``; anything
else (several real errors) propagates unchanged, so nothing is swallowed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import trio

__all__ = ["leaves", "single_error"]


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside ``exc`` (itself, unless it is a group)."""
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from leaves(sub)
    else:
        yield exc


@contextlib.contextmanager
def single_error() -> Iterator[None]:
    """Re-raise the only real exception of an ExceptionGroup."""
    try:
        yield
    except BaseExceptionGroup as group:
        real = [e for e in leaves(group) if not isinstance(e, trio.Cancelled)]
        if len(real) == 1:
            raise real[0] from group
        raise
