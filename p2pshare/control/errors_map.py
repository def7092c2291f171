"""Error codes across the control API (spec: ``p2pshare.control``, §4).

The node answers a failed request with the stable ``code`` of the
:class:`~p2pshare.errors.P2PShareError` it raised (:func:`error_code`); the
client rebuilds an exception of the same class from it
(:func:`exception_for`), so a CLI command that goes through a node fails
with the same message and exit code as when it runs alone.

The table is derived from :mod:`p2pshare.errors` itself: every class there
that sets its own ``code`` is reachable, so a new error class needs no
change here. A code that no class owns (a newer node, or a control-level
code such as ``busy`` or ``version``) becomes :class:`RemoteCallError`,
which keeps the code in ``remote_code``.
"""

from __future__ import annotations

import inspect

from p2pshare import errors
from p2pshare.errors import P2PShareError, RemoteCallError

__all__ = ["INTERNAL_CODE", "error_classes", "error_code", "exception_for"]

# The code a server sends for an exception that is not a P2PShareError (a
# bug); it maps back to InternalError, whose exit code says "internal".
INTERNAL_CODE = "internal"

_MESSAGE_NAMES = frozenset({"message", "msg", "reason", "detail"})


def error_code(exc: P2PShareError) -> str:
    """The stable code to send for ``exc``.

    A :class:`RemoteCallError` relays the code it carries, so an error that
    crossed one control connection keeps its code across the next.
    """
    if isinstance(exc, RemoteCallError):
        return exc.remote_code
    return exc.code


def error_classes() -> dict[str, type[P2PShareError]]:
    """Code → class for every class of :mod:`p2pshare.errors` that sets a code.

    A subclass that does not set its own ``code`` shares its parent's and is
    left out, so a code always names the class that defined it.
    """
    table: dict[str, type[P2PShareError]] = {}
    stack: list[type[P2PShareError]] = [P2PShareError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__ == errors.__name__ and "code" in vars(cls):
            table.setdefault(cls.code, cls)
    return table


_CLASSES = error_classes()


def _build(cls: type[P2PShareError], code: str, message: str) -> P2PShareError:
    if not any(
        "__init__" in vars(c) for c in cls.__mro__ if issubclass(c, P2PShareError)
    ):
        return cls(message)
    # A class with its own __init__: fill its parameters by name. A required
    # parameter we cannot supply (say, a future ``path``) makes the class
    # unbuildable here, and the caller falls back to RemoteCallError.
    args: dict[str, object] = {}
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in _MESSAGE_NAMES:
            args[name] = message
        elif name == "code":
            args[name] = code
        elif param.default is param.empty:
            raise TypeError(f"{cls.__name__}: cannot supply {name!r}")
    return cls(**args)


def exception_for(code: str, message: str) -> P2PShareError:
    """Rebuild the exception a node reported as ``code`` with ``message``.

    Returns:
        An instance of the :mod:`p2pshare.errors` class that owns ``code``
        (:class:`~p2pshare.errors.RemoteProtocolError` with ``reason`` set,
        :class:`RemoteCallError` with ``remote_code`` set, and so on); the
        root :class:`P2PShareError` for :data:`INTERNAL_CODE`; otherwise
        ``RemoteCallError(code, message)``.
    """
    cls = _CLASSES.get(code)
    if cls is not None:
        try:
            return _build(cls, code, message)
        except (TypeError, ValueError):
            pass
    return RemoteCallError(code, message)
