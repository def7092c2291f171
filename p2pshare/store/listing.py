"""What ``ls`` shows: the user's shares, described for humans and JSON.

The documented JSON shape of one share (``ls --json`` and the control
API's ``ls``)::

    {"root": "<CIDv1>", "name": str | null, "kind": "file" | "folder" | null,
     "size": int | null, "mode": "ref" | "copy", "added_at": ISO-8601,
     "error": str | null, "replicas": int}

``replicas`` counts the seeds keeping a complete replica (as last seen by
this node's replication, check or repair).

``name`` comes from the sealed meta, opened with the key in the catalog;
when that fails (a corrupt envelope), ``error`` says why and the name,
kind and size are null.
"""

from __future__ import annotations

import datetime as dt
import os
import time

from p2pshare.errors import P2PShareError
from p2pshare.format import root_to_cid
from p2pshare.format.links import LiveLink
from p2pshare.records import ShareListing
from p2pshare.store.catalog import ShareRow
from p2pshare.store.catalog_erasure import TicketRow
from p2pshare.store.local import LocalStore
from p2pshare.store.restore import inspect_share

__all__ = ["describe_shares"]

MAX_SOURCES_CHECKED = 10_000  # a folder's files stat'ed per ls


def _source_problem(store: LocalStore, top: ShareRow) -> str | None:
    """Why a reference share cannot be served any more (a source file
    changed or went away since it was added), or None."""
    todo, seen = [top.root], 0
    while todo and seen < MAX_SOURCES_CHECKED:
        root = todo.pop()
        row = top if root == top.root else store.catalog.get_share(root)
        todo += store.catalog.children_of(root)
        if row.storage != "ref" or row.source is None or row.source_size is None:
            continue
        seen += 1
        try:
            st = os.stat(row.source)
        except OSError:
            return "source file is gone since it was added; `add` it again"
        if (st.st_size, st.st_mtime_ns) != (row.source_size, row.source_mtime_ns):
            return "source file changed since it was added; `add` it again"
    return None


def _links_state(tickets: list[TicketRow], now: float) -> str:
    """ "3 links (1 expired, 1 revoked)" of a share under link control."""
    revoked = sum(1 for t in tickets if t.revoked)
    expired = sum(
        1 for t in tickets if not t.revoked and t.expires and t.expires <= now
    )
    parts = [
        f"{n} {what}" for n, what in ((expired, "expired"), (revoked, "revoked")) if n
    ]
    plural = "" if len(tickets) == 1 else "s"
    return f"{len(tickets)} link{plural}" + (f" ({', '.join(parts)})" if parts else "")


def describe_shares(store: LocalStore) -> list[ShareListing]:
    """Every top share of ``store``, in the order they were added."""
    now = time.time()
    items: list[ShareListing] = []
    replicas: dict[bytes, int] = {}
    for rep in store.catalog.replicas():
        if rep.state == "complete":
            replicas[rep.root] = replicas.get(rep.root, 0) + 1
    live = {p.root: p for p in store.catalog.owned_pointers()}
    for row in store.catalog.top_shares():
        item = ShareListing(
            root=root_to_cid(row.root),
            mode=row.mode,
            added_at=dt.datetime.fromtimestamp(row.added_at / 1e9, dt.UTC).isoformat(),
            replicas=replicas.get(row.root, 0),
            name=None,
            kind=None,
            size=None,
            error=None,
        )
        try:
            share, _keys, meta = inspect_share(store, row.root, row.key or b"")
            share.close()
            size = row.tree_size if row.tree_size is not None else meta.size
            error = _source_problem(store, row)
            item.update(
                {"name": meta.name, "kind": meta.kind, "size": size, "error": error}
            )
        except (P2PShareError, ValueError) as exc:
            item["error"] = str(exc)
        pointer = live.get(row.root)
        if pointer is not None:
            item["live"] = LiveLink(pointer.pub).name
            item["version"] = pointer.seq
        coded = store.catalog.erasure_of(row.root)
        if coded is not None and store.catalog.replica_cols(row.root):
            item["erasure"] = f"{coded.k}/{coded.n}"
        if store.catalog.policy_of(row.root) is not None:
            item["links"] = _links_state(store.catalog.tickets(row.root), now)
        items.append(item)
    return items
