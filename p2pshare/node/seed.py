"""Seed nodes: keep ciphertext replicas for owners, serve them, expire them.

Theory of operation
-------------------
A seed is a long-running node (DHT server) that also answers
``/p2pshare/pin/1`` (``protocol/pin.py``): one request, one response, per
stream.

* **Pin.** An owner sends the root id, a *grant* (signed with the share's
  access key, naming this seed's peer id, with an expiry), a lease, the
  ciphertext size to reserve and peer hints. The seed checks what it can
  without the envelope (grant for this root and this peer, not expired,
  room left under ``--max-storage``), records the pin (``pins`` table,
  state ``fetching``) and answers at once. In the background it finds
  providers (hints and DHT), opens the share on them *with the grant*
  (providers check it like a key proof), verifies the envelope against the
  root id and the grant's signature against the envelope's access key,
  checks the real size against the reservation, and fetches every chunk
  with the multi-source :class:`~p2pshare.node.fill.Fill`, verifying each
  against its id and storing the **ciphertext** as a block. It never holds
  the key, so it cannot read what it keeps. Once complete the replica is
  a keyless ``copy`` share: the xfer server serves it to key holders and
  grant holders, and a top-level replica is announced in the DHT.
* **Failure.** Any failure (providers gone, size over the reservation,
  bad grant) deletes every block fetched for the pin and marks it
  ``failed`` with a reason the owner sees in the status: nothing partial
  stays.
* **Status / prove / unpin.** Status reports chunks held of the total. A
  storage proof is the keyed hash (``storage_digest``) of the chunks the
  checker names, keyed with its fresh nonce: it cannot be answered without
  the data. Unpin needs a fresh signature by the share's access key.
* **Leases.** A pin lives until its lease ends; owners renew by pinning
  again. A garbage-collection loop drops expired pins and their blocks.
* **Discovery.** Every seed announces :data:`SEED_ROOT` (a well-known DHT
  key) beside its replicas; owners find seeds there and ask each for its
  :class:`~p2pshare.protocol.pin.Info` (region, free space, admission).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import trio
from libp2p.peer.id import ID

from p2pshare import __version__
from p2pshare.errors import (
    AccessDenied,
    FormatError,
    NotFoundError,
    P2PShareError,
    RemoteProtocolError,
    StoreError,
)
from p2pshare.format import root_to_cid
from p2pshare.format.grant import Grant
from p2pshare.format.voucher import Voucher
from p2pshare.node.seed_fetch import Fetching, fetch_replica
from p2pshare.node.seed_policy import (
    MAX_CONCURRENT_FETCHES,
    MAX_FETCHES_PER_OWNER,
    MAX_FETCHING_PER_PEER,
    MAX_HINTS_KEPT,
    MAX_PIN_BYTES,
    REQUEST_TIMEOUT_S,
    Refused,
    SeedPolicy,
    mib,
    printable_error,
    refuse_code,
)
from p2pshare.node.streams import LibP2PStream, read_frame
from p2pshare.protocol import pin as pinproto
from p2pshare.records import SeedState
from p2pshare.store.catalog import PinRow
from p2pshare.store.catalog_erasure import ErasureRow

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from p2pshare.node.facades import Pins
    from p2pshare.node.service import Node

__all__ = [
    "PIN_PROTOCOL",
    "SEED_ROOT",
    "SeedService",
]

log = logging.getLogger(__name__)

PIN_PROTOCOL = "/p2pshare/pin/1"
# The DHT key every seed provides, so owners find seeds with no configuration.
SEED_ROOT = hashlib.blake2b(b"p2pshare/seeds/v1", digest_size=32).digest()


@dataclass(eq=False)
class SeedService:
    """The seed side of ``/p2pshare/pin/1`` (see the module docstring)."""

    node: Node
    policy: SeedPolicy
    now: Callable[[], float] = time.time
    fetching: dict[bytes, Fetching] = field(default_factory=dict)
    _admit: trio.Lock = field(default_factory=trio.Lock)
    _fetch_slots: trio.CapacityLimiter = field(
        default_factory=lambda: trio.CapacityLimiter(MAX_CONCURRENT_FETCHES)
    )
    _owner_slots: dict[bytes, trio.CapacityLimiter] = field(default_factory=dict)

    @property
    def pins(self) -> Pins:
        return self.node.pins

    # -- lifecycle --------------------------------------------------------------
    async def run(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Resume unfinished pins, then collect expired ones until cancelled."""
        pins = await self.pins.all()
        for p in pins:
            if p.state == "fetching":
                self._start_fetch(p.root, p.owner, ())
        task_status.started()
        while True:
            try:
                await self.node.jobs.run("expire", "pins", self.collect_expired)
            except P2PShareError as exc:
                log.warning("expired pins: collection failed: %s", exc)
            await trio.sleep(self.policy.gc_interval_s)

    def roots(self) -> list[bytes]:
        """What a seed announces beyond its own shares: itself, its replicas."""
        return [SEED_ROOT, *self.pins.announced()]

    async def collect_expired(self) -> list[bytes]:
        expired = await self.pins.expired(int(self.now()))
        for root in expired:
            log.info("pin %s: lease expired", root_to_cid(root)[:16])
            await self._drop(root)
        return expired

    # -- the protocol handler -------------------------------------------------------
    async def handle(self, stream: LibP2PStream) -> None:
        """Answer one request on ``stream``. Never raises ``P2PShareError``."""
        peer = stream.remote_peer_bytes
        wire = pinproto.PinStream("seed")
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                request = wire.receive_frame(await _read(stream))
        except (RemoteProtocolError, trio.TooSlowError) as exc:
            log.info("pin: bad request from %s: %s", peer[-6:].hex(), exc)
            return
        try:
            response = await self._answer(request, peer)
        except P2PShareError as exc:
            response = pinproto.PinRefused(
                code=refuse_code(exc), message=printable_error(exc)
            )
        with trio.fail_after(REQUEST_TIMEOUT_S):
            await stream.send_all(wire.send(response))

    async def _answer(
        self, request: pinproto.Request | pinproto.Response, peer: bytes
    ) -> pinproto.Response:
        if isinstance(request, pinproto.InfoRequest):
            return await self.info()
        if isinstance(request, pinproto.PinRequest):
            return await self._pin(request, peer)
        if isinstance(request, pinproto.StatusRequest):
            return await self.status(request.root)
        if isinstance(request, pinproto.ProveRequest):
            return await self._prove(request)
        if isinstance(request, pinproto.UnpinRequest):
            return await self._unpin(request, peer)
        if isinstance(request, pinproto.RedeemRequest):
            await self.redeem(request.voucher, peer)
            return await self.balance(peer)
        if isinstance(request, pinproto.BalanceRequest):
            return await self.balance(peer)
        if isinstance(request, pinproto.PolicyRequest):
            from p2pshare.node.linkctl import accept_policy

            return await accept_policy(self.node, request.policy, peer)
        raise Refused("bad_request", "pin: unknown request")

    async def describe(self) -> SeedState:
        """This seed in ``status``: region, admission, pins, storage."""
        info = await self.info()
        pins = await self.pins.all()
        return SeedState(
            region=info.region,
            admission=info.admission,
            pins=len(pins),
            complete=sum(1 for p in pins if p.state == "complete"),
            used_bytes=info.used_bytes,
            max_storage=self.policy.max_storage,
        )

    async def info(self) -> pinproto.Info:
        used = await self.pins.used_bytes()
        limit = self.policy.max_storage
        free = max(0, limit - used) if limit is not None else (1 << 62)
        return pinproto.Info(
            region=self.policy.region,
            free_bytes=free,
            used_bytes=used,
            admission=self.policy.admission,
            version=__version__,
        )

    async def _pin(self, req: pinproto.PinRequest, peer: bytes) -> pinproto.PinStatus:
        cid = root_to_cid(req.root)[:16]
        try:
            grant = Grant.from_bytes(req.grant)
        except FormatError as exc:
            raise Refused("bad_request", f"grant: malformed ({exc})") from None
        if grant.root != req.root:
            raise AccessDenied("grant: for another share")
        if grant.peer != self.node.host.peer_id_bytes:
            raise AccessDenied("grant: issued for another peer")
        if grant.expires <= self.now():
            raise AccessDenied("grant: expired")
        if req.size > MAX_PIN_BYTES:
            raise Refused("bad_request", f"pin: size over {mib(MAX_PIN_BYTES)}")
        # one admission at a time: balance and storage checks, then the pin
        # row that charges them, with nothing in between
        async with self._admit:
            existing = await self.pins.get(req.root)
            new = existing is None or existing.state == "failed"
            if new and await self.pins.fetching_by(peer) >= MAX_FETCHING_PER_PEER:
                raise Refused(
                    "unavailable",
                    f"pin: {MAX_FETCHING_PER_PEER} of your pins are still"
                    " fetching here; try again when they are done",
                )
            if self.policy.admission == "voucher":
                if req.voucher is not None:
                    await self.redeem(req.voucher, peer)
                if new:
                    await self._charge(peer, req.size)
            lease_expires = int(self.now()) + req.lease_s
            if new:
                used = await self.pins.used_bytes()
                limit = self.policy.max_storage
                if limit is not None and used + req.size > limit:
                    raise Refused(
                        "storage_full",
                        f"seed storage full: the replica needs {mib(req.size)},"
                        f" {mib(max(0, limit - used))} of {mib(limit)} is free",
                    )
            row = PinRow(
                root=req.root,
                owner=peer,
                grant=req.grant,
                size=req.size,
                lease_expires=lease_expires,
                state="fetching",
                error=None,
                top=req.top,
                added_at=int(self.now()),
            )
            if existing is not None and existing.state == "failed":
                await self.pins.drop(req.root)
                existing = None
            await self.pins.put(row)
            if existing is None and req.erasure is not None:
                k, n, col, emap = pinproto.parse_erasure_field(req.erasure)
                await self.pins.set_erasure(ErasureRow(req.root, emap, k, n, col))
        if existing is None:
            log.info(
                "pin %s: accepted (%s, lease %d s)", cid, mib(req.size), req.lease_s
            )
            self._start_fetch(req.root, peer, req.hints)
        else:
            log.info("pin %s: lease renewed", cid)
        return await self.status(req.root)

    # -- vouchers ------------------------------------------------------------------
    async def redeem(self, data: bytes, peer: bytes) -> None:
        """Verify a voucher issued by this seed and bind it to ``peer``.

        Raises:
            AccessDenied: forged, altered, expired, issued by another seed,
                or already redeemed by another peer.
        """
        try:
            voucher = Voucher.from_bytes(data)
        except FormatError as exc:
            raise AccessDenied(f"voucher: malformed ({exc})") from None
        voucher.verify(seed=self.node.host.peer_id_bytes, now=self.now())
        bound = await self.pins.redeem_voucher(
            voucher.serial,
            peer,
            voucher.quota,
            voucher.expires,
            int(self.now()),
        )
        if not bound:
            raise AccessDenied("voucher: already redeemed by another peer")
        log.info(
            "voucher %s…: redeemed (%s)", voucher.serial.hex()[:8], mib(voucher.quota)
        )

    async def relay_admits(self, peer: ID) -> bool:
        """Bulk relaying is for voucher holders on this seed."""
        return (await self.balance(peer.to_bytes())).vouchers > 0

    async def balance(self, peer: bytes) -> pinproto.Balance:
        quota, used, count, latest = await self.pins.balance(peer, int(self.now()))
        relay = self.node.seed_relay
        relayed = relay.charged.get(peer, 0) if relay is not None else 0
        return pinproto.Balance(
            quota=quota,
            used=used,
            vouchers=count,
            expires=latest,
            relayed=relayed or None,
        )

    async def _charge(self, peer: bytes, size: int) -> None:
        """Refuse a new pin that ``peer``'s voucher balance cannot cover
        (the pin row, once written, is the charge)."""
        b = await self.balance(peer)
        if b.vouchers == 0:
            raise Refused(
                "quota",
                "this seed admits pins by voucher: redeem one from its operator"
                " (p2pshare voucher redeem CODE)",
            )
        if b.used + size > b.quota:
            raise Refused(
                "quota",
                f"voucher quota exceeded: the pin needs {mib(size)}, your balance"
                f" on this seed is {mib(max(0, b.quota - b.used))} of a"
                f" {mib(b.quota)} quota",
            )

    async def status(self, root: bytes) -> pinproto.PinStatus:
        pin = await self.pins.get(root)
        if pin is None:
            return pinproto.PinStatus(
                root=root, state="none", have=0, count=0, lease_expires=None
            )
        f = self.fetching.get(root)
        have, count = (f.have, f.count) if f is not None else (0, 0)
        if pin.state == "complete":
            count = await self.pins.chunk_count(root)
            have = count
        return pinproto.PinStatus(
            root=root,
            state=cast(pinproto.PinState, pin.state),  # the catalog writes no other
            have=have,
            count=count,
            lease_expires=pin.lease_expires,
            error=pin.error,
        )

    async def _prove(self, req: pinproto.ProveRequest) -> pinproto.ProveResponse:
        value = await self.pins.prove(req.root, req.nonce, req.indices)
        return pinproto.ProveResponse(root=req.root, digest=value)

    async def _unpin(
        self, req: pinproto.UnpinRequest, peer: bytes
    ) -> pinproto.Unpinned:
        try:
            public = await self.pins.access_public(req.root)
        except (NotFoundError, StoreError):
            raise NotFoundError("pin: this seed does not keep that root") from None
        pinproto.verify_unpin_auth(
            public,
            req.auth,
            req.root,
            self.node.host.peer_id_bytes,
            peer,
            req.at,
            self.now(),
        )
        await self._drop(req.root)
        return pinproto.Unpinned(root=req.root)

    # -- fetching a replica -------------------------------------------------------
    def _start_fetch(self, root: bytes, owner: bytes, hints: Sequence[str]) -> None:
        f = Fetching(tuple(hints)[:MAX_HINTS_KEPT])
        self.fetching[root] = f
        self.node.jobs.spawn(
            "pin", root_to_cid(root)[:16], lambda: self._fetch(root, owner, f)
        )

    @asynccontextmanager
    async def _slot(self, owner: bytes) -> AsyncIterator[None]:
        """One of the seed's fetch slots, within the owner's share of them
        (first come, first served)."""
        mine = self._owner_slots.get(owner)
        if mine is None:
            mine = self._owner_slots[owner] = trio.CapacityLimiter(
                MAX_FETCHES_PER_OWNER
            )
        try:
            async with mine, self._fetch_slots:
                yield
        finally:
            stats = mine.statistics()
            if not stats.borrowed_tokens and not stats.tasks_waiting:
                self._owner_slots.pop(owner, None)

    async def _fetch(self, root: bytes, owner: bytes, f: Fetching) -> None:
        cid = root_to_cid(root)[:16]
        with trio.CancelScope() as scope:
            f.scope = scope
            try:
                async with self._slot(owner):
                    await fetch_replica(self.node, self.policy, root, f, self.now)
            except Exception as exc:  # a job root: the failure is this pin's
                error = self.node.jobs.record("pin", cid, exc)
                # what it stored goes; the pin row stays, to say why
                await self.pins.drop(root, keep_pin=True)
                await self.pins.set_state(root, "failed", printable_error(error))
            else:
                log.info("pin %s: replica complete (%d chunks)", cid, f.count)
                pin = await self.pins.get(root)
                if pin is not None and pin.top:
                    self.node.announce_soon(root)
            finally:
                self.fetching.pop(root, None)

    async def _drop(self, root: bytes) -> None:
        f = self.fetching.pop(root, None)
        if f is not None and f.scope is not None:
            f.scope.cancel()
        await self.pins.drop(root)
        if self.node.announcer is not None:
            self.node.announcer.withdraw(root)


async def _read(stream: LibP2PStream) -> bytes:
    """Read one whole frame (length prefix checked before reading on)."""
    return await read_frame(stream, pinproto.MAX_PIN_FRAME_BYTES, "pin")
