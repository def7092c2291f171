"""The commands that need no node, answered from the store when none runs.

``add``, ``ls``, ``link``, ``publish``, ``rm``, ``gc`` and ``sync --list``
work on the home whether or not a node runs for it. :func:`call_home`
sends the call to the home's node when one answers (it serves what is
added, puts its addresses in links and stops serving what is removed), and
otherwise answers it here, from the store, with the same result shape
(``docs/control.md``). So each command is written once, above
``call_home``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2pshare.cli.runtime import NO_NODE, call_node

if TYPE_CHECKING:
    from p2pshare.store.local import LocalStore
from p2pshare.config import Home
from p2pshare.errors import NotFoundError, UsageError
from p2pshare.format import (
    DEFAULT_CHUNK_SIZE,
    ShareLink,
    parse_root_or_link,
    root_to_cid,
)
from p2pshare.records import (
    AddResult,
    GcReport,
    LinkResult,
    PublishResult,
    RootResult,
    ShareListing,
    SyncRecord,
)

__all__ = ["call_home"]

# (title, total) -> a context holding a bar with .advance(n)
Progress = Callable[[str, int | None], AbstractContextManager[Any]]


def call_home(
    home: Home, method: str, *, progress: Progress | None = None, **params: Any
) -> Any:
    """``method`` through the home's node, or from its store when none runs.

    A chunk size other than the default is an offline-only option of
    ``add``: it is answered from the store even with a node running.
    """
    if params.get("chunk_size", DEFAULT_CHUNK_SIZE) == DEFAULT_CHUNK_SIZE:
        sent = {k: v for k, v in params.items() if k != "chunk_size"}
        result = call_node(home, method, **sent)
        if result is not NO_NODE:
            return result
    handler = _OFFLINE.get(method)
    if handler is None:  # a bug: every caller names one of _OFFLINE
        raise UsageError(f"{method}: needs a running node")
    return handler(home, progress, **params)


def _add(
    home: Home,
    progress: Progress | None,
    *,
    paths: list[str],
    copy: bool,
    new: bool,
    live: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[AddResult]:
    from p2pshare.store import live as store_live
    from p2pshare.store.adder import add_path, scan_size
    from p2pshare.store.local import LocalStore
    from p2pshare.store.walk import no_progress

    out = []
    with LocalStore(home) as store:
        for raw in paths:
            path = Path(raw)
            shown = (
                progress(f"adding {path.name}", scan_size(path))
                if progress is not None
                else contextlib.nullcontext(None)
            )
            with shown as bar:
                advance = bar.advance if bar is not None else no_progress
                if live:
                    added, row = store_live.add_live(
                        store, path, copy=copy, new=new, progress=advance
                    )
                else:
                    added = add_path(
                        store,
                        path,
                        copy=copy,
                        chunk_size=chunk_size,
                        progress=advance,
                        new=new,
                    )
            result = AddResult(
                root=root_to_cid(added.root),
                link=str(ShareLink(root_id=added.root, key=added.key)),
                kind=added.kind,
                size=added.size,
                reused=added.reused,
            )
            if live:  # its records go to the DHT when a node starts
                result["link"] = str(store_live.live_link(row))
                result["version"] = row.seq
            out.append(result)
    return out


def _publish(home: Home, progress: Progress | None, *, target: str) -> PublishResult:
    from p2pshare.store import live as store_live
    from p2pshare.store.local import LocalStore

    with LocalStore(home) as store:
        row = store_live.pointer_named(store, target)
        row, changed = store_live.publish_source(store, row.pub)
    return PublishResult(
        link=str(store_live.live_link(row)),
        version=row.seq,
        root=root_to_cid(row.root),
        changed=changed,
    )


def _ls(home: Home, progress: Progress | None) -> list[ShareListing]:
    from p2pshare.store.listing import describe_shares
    from p2pshare.store.local import LocalStore

    with LocalStore(home) as store:
        return describe_shares(store)


def _link(
    home: Home,
    progress: Progress | None,
    *,
    root: str,
    hints: bool = True,
    expires: int = 0,
) -> LinkResult:
    from p2pshare.store.local import LocalStore

    target = parse_root_or_link(root)
    with LocalStore(home) as store:
        row = store.catalog.get_share(target.root_id)
        if row.key is None:
            raise NotFoundError("share: this home holds no key for it")
        ticket = None
        if expires:
            ticket = _issue_offline(home, store, row.root, int(time.time()) + expires)
    return LinkResult(link=str(ShareLink(root_id=row.root, key=row.key, ticket=ticket)))


def _issue_offline(home: Home, store: LocalStore, root: bytes, expires: int) -> bytes:
    """A ticket signed with the home's identity, without a node (the seeds
    learn the share's policy when the node next replicates or revokes)."""
    from libp2p.peer.id import ID

    from p2pshare.node.identity import load_or_create_identity, signing_key
    from p2pshare.node.linkctl import issue_ticket

    pair = load_or_create_identity(home.path / "identity.key")
    owner = ID.from_pubkey(pair.public_key).to_bytes()
    seeds = [ID.from_base58(r.seed).to_bytes() for r in store.catalog.replicas(root)]
    return issue_ticket(
        store.catalog, signing_key(pair.private_key), owner, root, expires, seeds
    )


def _rm(home: Home, progress: Progress | None, *, root: str) -> RootResult:
    from p2pshare.store.local import LocalStore

    target = parse_root_or_link(root)
    with LocalStore(home) as store:
        for bid in store.catalog.remove_top(target.root_id):
            store.blocks.delete(bid)
    return RootResult(root=target.root_cid)


def _gc(home: Home, progress: Progress | None) -> GcReport:
    from p2pshare.daemon import HomeLock
    from p2pshare.store.gc import collect
    from p2pshare.store.local import LocalStore

    home.ensure()
    with HomeLock(home.path), LocalStore(home) as store:  # no node starts meanwhile
        return collect(store).to_wire()


def _syncs(home: Home, progress: Progress | None) -> list[SyncRecord]:
    from p2pshare.store.local import LocalStore

    with LocalStore(home) as store:
        return [
            SyncRecord(dir=d, link=ln, root=r, version=v, updated_at=t)
            for d, ln, r, v, t in store.catalog.syncs()
        ]


_OFFLINE: dict[str, Callable[..., Any]] = {
    "add": _add,
    "ls": _ls,
    "link": _link,
    "publish": _publish,
    "syncs": _syncs,
    "rm": _rm,
    "gc": _gc,
}
