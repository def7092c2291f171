"""What a file or folder name from a share may be.

Names come from share data, which whoever made the share controls: a
malicious share can name an entry ``..``, ``/etc/passwd`` or ``a\\x00b``.
Every name is checked before it is used as a path component:

* a non-empty ``str`` of at most 255 UTF-8 bytes (the common file-system
  limit for one component);
* not ``.`` or ``..``; no ``/`` or ``\\`` (so it is exactly one component
  on POSIX and Windows); no NUL, no C0/C1 control character, no DEL.

The download writer adds its own defences (exclusive creation, no
following of symlinks, a final ``is_relative_to`` check), so a bug here
still cannot write outside the output directory.
"""

from __future__ import annotations

import unicodedata

from p2pshare.errors import FolderListingError

__all__ = ["MAX_NAME_BYTES", "check_name", "display_name"]

MAX_NAME_BYTES = 255


def check_name(name: object, *, what: str = "name") -> str:
    """Return ``name`` if it is a safe single path component.

    Raises:
        FolderListingError: naming the rule that ``name`` breaks.
    """
    if not isinstance(name, str):
        raise FolderListingError(f"{what}: not a string")
    if not name:
        raise FolderListingError(f"{what}: empty")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates
        raise FolderListingError(f"{what}: not valid UTF-8") from exc
    if size > MAX_NAME_BYTES:
        raise FolderListingError(f"{what}: longer than {MAX_NAME_BYTES} bytes ({size})")
    if name in (".", ".."):
        raise FolderListingError(f"{what}: {name!r} is not allowed")
    if "/" in name or "\\" in name:
        raise FolderListingError(f"{what}: contains a path separator")
    if "\x00" in name:
        raise FolderListingError(f"{what}: contains NUL")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name):
        raise FolderListingError(f"{what}: contains a control character")
    return name


# invisible or reordering characters: bidi overrides and isolates (U+202A-E,
# U+2066-9), zero-width ones (U+200B-D, U+FEFF), line/paragraph separators,
# private-use and unassigned code points
_HIDDEN_CATEGORIES = frozenset({"Cf", "Cc", "Co", "Cs", "Cn", "Zl", "Zp"})


def display_name(text: str) -> str:
    """``text`` (a name or path from a share) made safe to show: every
    character that is invisible or reorders the text around it is shown
    escaped (``\\u202e``), so ``"invoice\\u202efdp.exe"`` cannot pass for
    ``invoice.pdf``. Checked names may hold them (they are legitimate in
    some scripts), so every listing shows names through this."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in _HIDDEN_CATEGORIES else c
        for c in text
    )
