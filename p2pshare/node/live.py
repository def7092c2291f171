"""Live shares in the node: publishing the owner's pointers, resolving others'.

Theory of operation
-------------------
* **Owner.** ``add --live`` and ``publish`` (``store/live.py``) leave the
  pointer's newest signed record in the catalog; the node puts it in the
  DHT at once (a job: a failure is logged, never fatal) and
  :func:`publish_loop` puts every owned record again at start and every
  :data:`PUBLISH_EVERY_S`, renewing those past half their life, so the
  record outlives DHT servers that restart or forget.
* **Getter.** :func:`resolve` turns a live link into the snapshot link it
  currently names. It asks the link's hint peers directly (``GET_VALUE`` to
  each: the owner's node holds its records, and so does any DHT server
  close to the key; and the ``get --bootstrap`` peers) and the DHT, for up
  to ``timeout_s``; every answer is
  validated (signature, expiry, size, key) and the highest ``seq`` wins.
  A record below the version this home already accepted for the pointer
  is refused (a replay), and the accepted version is remembered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID

from p2pshare.errors import (
    AccessDenied,
    FormatError,
    IntegrityError,
    NoProviders,
)
from p2pshare.format import ShareLink, root_to_cid
from p2pshare.format.links import LiveLink
from p2pshare.format.pointer import PointerRecord, dht_key, goes_back, validate
from p2pshare.node.pointers import put_pointer
from p2pshare.records import AddResult, PublishResult
from p2pshare.store import live as store_live
from p2pshare.store.catalog_pointers import PointerRow

if TYPE_CHECKING:
    from p2pshare.node.service import Node

__all__ = [
    "PUBLISH_EVERY_S",
    "add",
    "publish",
    "publish_loop",
    "publish_soon",
    "rescan_loop",
    "resolve",
    "tree_stamp",
]

log = logging.getLogger(__name__)

PUBLISH_EVERY_S = 600.0
RESCAN_EVERY_S = 5.0  # how often owned live sources are checked for changes
PUT_TIMEOUT_S = 30.0
ASK_TIMEOUT_S = 5.0  # one hint peer's GET_VALUE


def publish_soon(node: Node, row: PointerRow) -> None:
    """Put ``row``'s record in the DHT, as a job of the node."""
    node.jobs.spawn("publish", row.pub[:4].hex(), lambda: _put(node, row))


async def _put(node: Node, row: PointerRow) -> None:
    record = PointerRecord.from_bytes(row.record)
    with trio.move_on_after(PUT_TIMEOUT_S):
        try:
            await put_pointer(node.host.dht, record)
        except ValueError as exc:  # py-libp2p: a newer record is held here
            log.warning("pointer %s: not published: %s", row.pub[:4].hex(), exc)
            return
        log.info("pointer %s: version %d published", row.pub[:4].hex(), row.seq)
    pushed = await push_to_seeds(node, row)
    if pushed:
        log.info(
            "pointer %s: version %d on %d seed(s)", row.pub[:4].hex(), row.seq, pushed
        )


async def replicated(node: Node, root: bytes) -> None:
    """``root`` is now kept on seeds: if it is the current version of a
    pointer this home owns, its record goes to those seeds too (a job)."""
    if node.publishing.locked():
        return  # a publish is replicating its new version: it puts the record
    row = await node.db(lambda: node.store.catalog.owned_pointer_of(root))
    if row is not None:
        publish_soon(node, row)


async def _seed_addrs(node: Node, root: bytes) -> list[str]:
    """The seeds that keep a replica of ``root``, then the home's seeds."""
    rows = await node.shares.replicas(root)
    kept = [r.addrs[0] for r in rows if r.addrs and r.state != "failed"]
    configured = list(node.relay.seeds) if node.relay is not None else []
    return list(dict.fromkeys([*kept, *configured]))


async def push_to_seeds(node: Node, row: PointerRow) -> int:
    """Store ``row``'s record on the seeds keeping its snapshot and on the
    home's seeds (``PUT_VALUE`` to each: a seed is a DHT server and checks
    it with the same validator), so they answer for it while this node is
    offline. Returns how many took it."""
    key, value = dht_key(row.pub), row.record
    took = 0

    async def push(addr: str) -> None:
        nonlocal took
        with trio.move_on_after(ASK_TIMEOUT_S):
            try:
                peer = await node.host.connect(addr)
                store = node.host.dht.value_store
                if await store._store_at_peer(peer, key, value):
                    took += 1
            except Exception as exc:
                log.info("pointer: seed %s did not take it: %s", addr[-12:], exc)

    async with trio.open_nursery() as nursery:
        for addr in await _seed_addrs(node, row.root):
            nursery.start_soon(push, addr)
    return took


async def add(
    node: Node, path: Path, *, copy: bool, hints: bool, new: bool
) -> AddResult:
    """``add --live``: add ``path``, point its pointer at the snapshot (a
    new pointer, or its next version when the snapshot changed), publish."""
    added, row = await node.db(
        lambda: store_live.add_live(node.store, path, copy=copy, new=new)
    )
    node.announce_soon(added.root)
    publish_soon(node, row)
    peers = node.link(added.root, None).peers if hints else ()
    return AddResult(
        root=root_to_cid(added.root),
        link=str(store_live.live_link(row, peers)),
        kind=added.kind,
        size=added.size,
        reused=added.reused,
        version=row.seq,
    )


async def publish(node: Node, target: str) -> PublishResult:
    """``publish``: add the pointer's source again, sign the next version
    when it changed, replicate it to as many seeds as kept the last one
    (the same seeds first), and put the newest record in the DHT and on
    those seeds. Returns once that is done."""

    def work() -> tuple[bytes, PointerRow, bool]:
        row = store_live.pointer_named(node.store, target)
        return (row.root, *store_live.publish_source(node.store, row.pub))

    async with node.publishing:  # `publish` and the rescan never interleave
        previous, row, changed = await node.db(work)
        node.announce_soon(row.root)
        if changed:
            # the new version goes where the last one is kept, before its
            # record (``replicated`` leaves the record to this publish)
            rows = await node.shares.replicas(previous)
            kept = [r for r in rows if r.state == "complete"]
            if kept:
                seeds = [r.addrs[0] for r in kept if r.addrs]
                await node.replicate(row.root, len(kept), seeds=seeds)
        await _put(node, row)
    peers = node.link(row.root, None).peers
    return PublishResult(
        link=str(store_live.live_link(row, peers)),
        version=row.seq,
        root=root_to_cid(row.root),
        changed=changed,
    )


async def publish_loop(node: Node, *, every_s: float = PUBLISH_EVERY_S) -> None:
    """Put every owned pointer's record, renewed when due, now and every
    ``every_s``; runs until cancelled."""
    while True:
        try:
            rows = await node.db(lambda: store_live.renew_due(node.store))
        except Exception as exc:  # a job root: this round, not the node
            node.jobs.record("publish", "renew", exc)
        else:
            for row in rows:
                publish_soon(node, row)
        await trio.sleep(every_s)


def tree_stamp(source: str) -> bytes | None:
    """A digest of every path, kind, size and mtime under ``source`` (symlinks
    not followed), or None when it is gone: what the rescan compares."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        top = os.lstat(source)
    except OSError:
        return None
    digest.update(f"{top.st_mode}:{top.st_size}:{top.st_mtime_ns}".encode())
    if not stat.S_ISDIR(top.st_mode):
        return digest.digest()
    for folder, dirs, files in os.walk(source, followlinks=False):
        dirs.sort()
        for name in sorted(files) + dirs:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue  # gone while we looked: the next rescan sees it
            rel = os.path.relpath(path, source)
            digest.update(
                f"{rel}\0{st.st_mode}:{st.st_size}:{st.st_mtime_ns}\n".encode()
            )
    return digest.digest()


async def rescan_loop(node: Node, *, every_s: float = RESCAN_EVERY_S) -> None:
    """Publish an owned live source when it changed: every ``every_s``, each
    source's :func:`tree_stamp` is compared with the last one; a change (or
    the first look after start, which catches edits made while the node was
    down) runs :func:`publish`, which signs a version only when the snapshot
    really changed. Each publish is a job: a failure (a file changing while
    it is read) is recorded and the next rescan tries again."""
    stamps: dict[bytes, bytes | None] = {}
    while True:
        await trio.sleep(every_s)
        try:
            rows = await node.db(node.store.catalog.owned_pointers)
        except Exception as exc:  # a job root: this round, not the node
            node.jobs.record("publish", "rescan", exc)
            continue
        for row in rows:
            stamp = await trio.to_thread.run_sync(tree_stamp, row.source)
            seen = row.pub in stamps
            before, stamps[row.pub] = stamps.get(row.pub), stamp
            if stamp is None or (seen and stamp == before):
                continue
            try:
                result = await publish(node, row.source)
            except Exception as exc:  # a job root: this source, not the node
                node.jobs.record("publish", row.pub[:4].hex(), exc)
                stamps.pop(row.pub, None)  # look again next time
                continue
            if result["changed"]:
                log.info(
                    "live share %s: changed on disk, version %d published",
                    row.pub[:4].hex(),
                    result["version"],
                )


async def resolve(
    node: Node, live: LiveLink, *, timeout_s: float, also: Sequence[str] = ()
) -> ShareLink:
    """The snapshot link a live link names now (see the module docstring).

    Raises:
        NoProviders: no valid record of the pointer was found in time.
        IntegrityError: the newest record is older than one this home
            already accepted (a replay), or the link's read key does not
            open it.
    """
    if live.read_key is None:
        raise AccessDenied("link: it carries no read key (the part after '#')")
    key = dht_key(live.pub)
    found: list[PointerRecord] = []
    refused: list[str] = []

    def consider(value: object, where: str) -> None:
        if value is None:
            return
        try:
            found.append(validate(key, value, now=time.time()))
        except (FormatError, AccessDenied) as exc:
            refused.append(f"{where}: {exc}")

    async def ask_peer(addr: str) -> None:
        with trio.move_on_after(ASK_TIMEOUT_S):
            try:
                peer: ID = await node.host.connect(addr)
                value = await node.host.dht.value_store._get_from_peer(peer, key)
            except Exception as exc:
                # a hint that is down, not a DHT server, or answers junk
                # (py-libp2p raises many types): the other answers decide
                log.debug("pointer: hint %s: %s", addr[-12:], exc)
                return
            consider(value, f"peer {addr[-8:]}")

    async def ask_dht() -> None:
        with trio.move_on_after(timeout_s):
            value = await node.host.dht.get_value(key.decode())
            consider(value, "the DHT")

    async with trio.open_nursery() as nursery:
        for addr in dict.fromkeys([*live.peers, *also]):  # also: --bootstrap
            nursery.start_soon(ask_peer, addr)
        nursery.start_soon(ask_dht)
    if not found:
        why = "; ".join(refused) or "no answer"
        raise NoProviders(f"live share {live.name[:17]}…: no valid record ({why})")
    record = max(found, key=lambda r: (r.seq, r.expires))
    seen = await node.db(lambda: node.store.catalog.seen_seq(live.pub))
    if goes_back(record, seen):
        raise IntegrityError(
            f"live share {live.name[:17]}…: the newest record found is version"
            f" {record.seq}, older than version {seen} this home already got"
            " (refusing to go back)"
        )
    root, file_key = record.open(live.read_key)
    await node.db(lambda: node.store.catalog.see_seq(live.pub, record.seq))
    log.info("live share %s: version %d", live.name[:17], record.seq)
    return ShareLink(root_id=root, key=file_key, peers=live.peers)
