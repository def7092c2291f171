"""The local store: synchronous, crash-safe, no trio.

``catalog.py`` (SQLite, WAL), ``blocks.py`` (content-addressed block files),
``partial.py`` (partial downloads with a durable bitmap), ``adder.py``
(``add``), ``reader.py`` (verified reads, re-encryption of reference
shares), ``restore.py`` (``get --offline``). The node calls these from
worker threads.
"""

from p2pshare.store.adder import AddedShare, add_path
from p2pshare.store.local import LocalStore
from p2pshare.store.reader import OpenShare, open_share
from p2pshare.store.restore import get_offline, inspect_share
from p2pshare.store.walk import GetResult

__all__ = [
    "AddedShare",
    "GetResult",
    "LocalStore",
    "OpenShare",
    "add_path",
    "get_offline",
    "inspect_share",
    "open_share",
]
