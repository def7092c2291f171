"""A node home's local store: the catalog plus the block store."""

from __future__ import annotations

import contextlib

from p2pshare.config import Home
from p2pshare.store.blocks import BlockStore
from p2pshare.store.catalog import Catalog

__all__ = ["LocalStore"]


class LocalStore:
    """Open the catalog and block store of ``home`` (created if new)."""

    def __init__(self, home: Home) -> None:
        self.home = home.ensure()
        self.blocks = BlockStore(home.blocks)
        self.blocks.clean_tmp()
        self.catalog = Catalog(home.db)

    def close(self) -> None:
        self.catalog.close()
        self.blocks.close()

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while writing blocks until the catalog refers to them (the
        garbage collector waits for it: ``blocks.py``)."""
        return self.blocks.guard.writing()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
