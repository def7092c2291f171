"""Collecting what no share needs any more (``p2pshare gc``).

Theory of operation
-------------------
Blocks are written before the catalog refers to them (``adder.py``,
``blocks.py``), and deleted after it stopped (``rm``, a failed pin). A
crash between the two, a failed ``add --copy``, a cancelled download
whose partial share stays in the catalog: each leaves *garbage*, files
that no share refers to. Garbage is harmless (nothing reads it) but it
fills the disk, so :func:`collect` removes it:

1. partial shares that no download, pin or share needs any more are
   dropped from the catalog (one transaction);
2. every block file whose id no ``share_blocks`` row names is deleted;
3. every temp file under ``blocks/tmp`` is deleted.

All of it runs under the block store's exclusive write guard, so no writer
of this process or of any other (``blocks.py``) can be between "block
written" and "catalog commit" meanwhile: a block that is about to be
referenced is never collected. It is crash-safe because every step only
removes what is already unreferenced: killed at any point, the next
collection finishes the job and no share loses a byte. A node collects
once when it starts, before it serves anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from p2pshare import records
from p2pshare.store.local import LocalStore

__all__ = ["GcReport", "collect"]

log = logging.getLogger(__name__)

WAIT_FOR_WRITERS_S = 30.0
_BATCH = 2048  # block ids checked against the catalog per query


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one collection removed."""

    blocks: int = 0
    bytes: int = 0
    temp_files: int = 0
    partial_shares: int = 0

    def to_wire(self) -> records.GcReport:
        return records.GcReport(
            blocks=self.blocks,
            bytes=self.bytes,
            temp_files=self.temp_files,
            partial_shares=self.partial_shares,
        )


def collect(store: LocalStore, *, wait_s: float = WAIT_FOR_WRITERS_S) -> GcReport:
    """Remove every block, temp file and partial share nothing needs.

    Raises:
        StoreError: writers did not finish within ``wait_s``, or another
            process has this home's store open (nothing was removed).
    """
    with store.blocks.guard.collecting(wait_s):
        # a download whose partial file is gone (a crash between placing
        # the finished file and forgetting it) is nothing to resume
        for row in store.catalog.downloads():
            if not os.path.lexists(row.partial):
                store.catalog.finish_download(row.id)
        partials = store.catalog.drop_orphan_partials()
        blocks = freed = 0
        batch: list[tuple[int, bytes]] = []

        def sweep() -> None:
            nonlocal blocks, freed
            kept = store.catalog.kept_of([bid for _size, bid in batch])
            for size, bid in batch:
                if bid not in kept:
                    with contextlib.suppress(FileNotFoundError):
                        store.blocks.path(bid).unlink()
                        blocks += 1
                        freed += size
            batch.clear()

        for path, bid in store.blocks.ids():
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            batch.append((size, bid))
            if len(batch) >= _BATCH:
                sweep()
        sweep()
        temps = 0
        for leftover in store.blocks.tmp.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()
                temps += 1
    report = GcReport(blocks, freed, temps, partials)
    log.info(
        "gc: %d blocks (%d bytes), %d temp files, %d partial shares removed",
        blocks,
        freed,
        temps,
        partials,
    )
    return report
