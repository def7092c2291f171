"""Folder listings: the plaintext of a folder share.

A folder is a share whose plaintext is canonical msgpack::

    {"v": 1, "entries": [ {name, kind, size, mtime_ns, root, key}, ... ]}

Each entry is itself a share: a file share, or (``kind == "folder"``) the
listing share of a subfolder, with its own root id and 32-byte key. One
link therefore opens a whole tree, a subfolder can be shared on its own by
handing out its entry, and browsing fetches listings lazily. ``size`` is the
file size, or for a folder the total size of the files beneath it (for
display only: a file entry's size is cross-checked against its meta when it
is downloaded).

Decoding validates every entry: names must pass :func:`check_name`, names
are unique within a listing, and types and lengths are exact. Errors say
which entry failed and why. Limits: 1 000 000 entries and 256 MiB of listing
plaintext per folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from p2pshare.errors import FolderListingError, FormatError
from p2pshare.format import canonical
from p2pshare.format.chunks import ID_BYTES
from p2pshare.format.envelope import Kind
from p2pshare.format.keys import KEY_BYTES
from p2pshare.format.names import check_name

__all__ = [
    "MAX_ENTRIES",
    "MAX_LISTING_BYTES",
    "Entry",
    "decode_listing",
    "encode_listing",
]

LISTING_VERSION = 1
MAX_ENTRIES = 1_000_000
MAX_LISTING_BYTES = 256 << 20
_FIELDS = {"name", "kind", "size", "mtime_ns", "root", "key"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One child of a folder."""

    name: str
    kind: Kind
    size: int
    mtime_ns: int
    root: bytes
    key: bytes

    def __post_init__(self) -> None:
        check_name(self.name, what="entry name")
        if self.kind not in ("file", "folder"):
            raise FolderListingError("entry: unknown kind")
        if not 0 <= self.size < 1 << 63 or not -(1 << 63) <= self.mtime_ns < 1 << 63:
            raise FolderListingError("entry: size or mtime out of range")
        if len(self.root) != ID_BYTES or len(self.key) != KEY_BYTES:
            raise FolderListingError("entry: bad root id or key length")

    def __repr__(self) -> str:  # keep names and keys out of logs
        return f"Entry(kind={self.kind}, size={self.size})"


def encode_listing(entries: Iterable[Entry]) -> bytes:
    """Encode a listing; entries are sorted by name."""
    items = sorted(entries, key=lambda e: e.name)
    names = [e.name for e in items]
    if len(set(names)) != len(names):
        raise FolderListingError("folder listing: duplicate name")
    return canonical.pack(
        {
            "v": LISTING_VERSION,
            "entries": [
                {
                    "name": e.name,
                    "kind": e.kind,
                    "size": e.size,
                    "mtime_ns": e.mtime_ns,
                    "root": e.root,
                    "key": e.key,
                }
                for e in items
            ],
        }
    )


def decode_listing(data: bytes) -> list[Entry]:
    """Strictly decode and validate a folder listing.

    Raises:
        FolderListingError: an entry is unsafe or invalid (the message names
            the entry's position and the rule it breaks).
        FormatError: the listing as a whole is malformed.
    """
    raw = canonical.unpack(data, max_len=MAX_LISTING_BYTES, max_items=MAX_ENTRIES)
    if not isinstance(raw, dict) or set(raw) != {"v", "entries"}:
        raise FormatError("folder listing: wrong fields")
    if isinstance(raw["v"], bool) or raw["v"] != LISTING_VERSION:  # True == 1
        raise FormatError("folder listing: unsupported version")
    if not isinstance(raw["entries"], list):
        raise FormatError("folder listing: entries is not a list")
    out: list[Entry] = []
    seen: set[str] = set()
    for pos, item in enumerate(raw["entries"]):
        entry = _entry(pos, item)
        if entry.name in seen:
            raise FolderListingError(f"folder listing: entry {pos}: duplicate name")
        seen.add(entry.name)
        out.append(entry)
    return out


def _entry(pos: int, item: Any) -> Entry:
    where = f"folder listing: entry {pos}"
    if not isinstance(item, dict) or set(item) != _FIELDS:
        raise FolderListingError(f"{where}: wrong fields")
    types = {
        "name": str,
        "kind": str,
        "size": int,
        "mtime_ns": int,
        "root": bytes,
        "key": bytes,
    }
    for key, typ in types.items():
        value = item[key]
        if not isinstance(value, typ) or isinstance(value, bool):
            raise FolderListingError(f"{where}: {key} has the wrong type")
    try:
        return Entry(**item)
    except FolderListingError as exc:
        raise FolderListingError(f"{where}: {exc}") from exc
