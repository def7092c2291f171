"""Pointer records of live shares in the Kademlia DHT.

Theory of operation
-------------------
A live share's records (``format/pointer.py``) are libp2p DHT *values*
under ``/p2pshare-ptr/<hex of BLAKE2b-256(pub)>``. py-libp2p 0.8.1 checks
every value against the validator registered for its namespace: when a
node puts one (before it stores it locally), when a DHT server receives a
``PUT_VALUE`` (a record that fails is not stored and the stream is reset),
and when a getter receives one in a ``GET_VALUE`` answer (a failing answer
is ignored). :class:`PointerValidator` is that validator for
``p2pshare-ptr``: strict decoding within 256 bytes, the key recomputed from
the record's own public key, the signature and the expiry; its ``select``
keeps the highest sequence number, so a server that holds a newer record
refuses an older one (a replay) and a getter that hears several keeps the
newest. Every node registers it (:func:`register`), server or client.

What a getter does on top (never going back below the last sequence it
accepted for a pointer, opening the box with the link's read key) is the
caller's: :func:`fetch_pointer` returns the newest valid record the DHT
gave, or ``None``.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.records.validator import Validator

from p2pshare.errors import AccessDenied, FormatError
from p2pshare.format.pointer import (
    BOX_BYTES,
    DHT_NAMESPACE,
    PointerRecord,
    dht_key,
    newest,
    validate,
)

__all__ = ["NAMESPACE", "PointerValidator", "fetch_pointer", "put_pointer", "register"]

log = logging.getLogger(__name__)

NAMESPACE: Final = DHT_NAMESPACE.strip(b"/").decode()  # "p2pshare-ptr"


class PointerValidator(Validator):
    """py-libp2p's validator interface over :func:`format.pointer.validate`."""

    def validate(self, key: str, value: bytes) -> None:
        try:
            validate(key.encode(), value, now=time.time())
        except (FormatError, AccessDenied) as exc:
            # py-libp2p refuses the record on any exception; ours say why
            log.debug("pointer record refused: %s", exc)
            raise

    def select(self, key: str, values: list[bytes]) -> int:
        records: list[PointerRecord] = []
        for value in values:
            try:
                records.append(PointerRecord.from_bytes(value))
            except FormatError:
                # never chosen; keeps the indexes of the others
                records.append(_WORST)
        return newest(records)


# Below every genuine record (seq 0, expires 0, an encoding no record has):
# what ``select`` ranks a value it cannot decode as.
_WORST = PointerRecord(bytes(32), 0, 0, bytes(BOX_BYTES), bytes(64))


def register(dht: KadDHT) -> None:
    """Let ``dht`` store, serve and accept pointer records."""
    dht.register_validator(NAMESPACE, PointerValidator())


async def put_pointer(dht: KadDHT, record: PointerRecord) -> None:
    """Publish ``record`` at the DHT servers closest to its key (and here).

    Raises:
        ValueError: this node already holds a newer record of the pointer
            (py-libp2p's message), or the record does not validate.
    """
    await dht.put_value(dht_key(record.pub).decode(), record.to_bytes())


async def fetch_pointer(dht: KadDHT, pub: bytes) -> PointerRecord | None:
    """The newest valid record of pointer ``pub`` the DHT gives, or None.

    py-libp2p validates every answer and keeps the best by
    :meth:`PointerValidator.select`; this checks the result once more (the
    local store is answered from without a network round)."""
    key = dht_key(pub)
    value = await dht.get_value(key.decode())
    if value is None:
        return None
    try:
        record = validate(key, value, now=time.time())
    except (FormatError, AccessDenied) as exc:
        log.info("pointer %s: the DHT's record is refused: %s", pub[:4].hex(), exc)
        return None
    return record
