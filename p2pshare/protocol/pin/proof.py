"""Storage proofs and unpin authorisation of ``/p2pshare/pin/1``."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from p2pshare.errors import AccessDenied
from p2pshare.format.chunks import ID_BYTES
from p2pshare.format.grant import MAX_PEER_BYTES
from p2pshare.protocol.pin.messages import AUTH_BYTES, MAX_U32, MAX_U63, NONCE_BYTES

__all__ = [
    "UNPIN_SKEW_S",
    "UNPIN_TAG",
    "make_unpin_auth",
    "storage_digest",
    "unpin_message",
    "verify_unpin_auth",
]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

UNPIN_TAG = b"p2pshare/pin/1/unpin\x00"
# Unpin requests carry the client's clock; five minutes absorbs ordinary
# clock skew while keeping a captured request short-lived.
UNPIN_SKEW_S = 300


# -- storage proof ----------------------------------------------------------------
def storage_digest(nonce: bytes, blocks: Sequence[tuple[int, bytes]]) -> bytes:
    """The answer to a :class:`ProveRequest`: keyed BLAKE2b-256 over the blocks.

    The hash is keyed with ``nonce`` and covers, for each ``(index, block)``
    in the order given (the request's order)::

        u32be index || u32be len(block) || block

    Both sides call it: the seed over the ciphertext chunks it stores, the
    checker over its own verified copy. Because the key is a fresh random
    nonce chosen by the checker, the seed cannot precompute or cache
    answers, nor keep only digests: it needs every byte of every chunk asked
    for at the moment it answers. The index and length prefixes make the
    input injective (no two block lists hash the same bytes).

    Args:
        nonce: the request's 32-byte nonce.
        blocks: ``(chunk index, ciphertext)`` pairs, in request order.

    Returns:
        The 32-byte digest.

    Raises:
        ValueError: ``nonce`` is not 32 bytes, or an index or block length
            does not fit in a u32.
    """
    if len(nonce) != NONCE_BYTES:
        raise ValueError("storage proof: nonce must be 32 bytes")
    h = hashlib.blake2b(digest_size=32, key=nonce)
    for index, block in blocks:
        if not 0 <= index <= MAX_U32 or len(block) > MAX_U32:
            raise ValueError("storage proof: index or block length exceeds u32")
        h.update(_U32.pack(index))
        h.update(_U32.pack(len(block)))
        h.update(block)
    return h.digest()


# -- unpin authorisation -----------------------------------------------------------
def _peer(name: str, peer: bytes) -> bytes:
    if not 0 < len(peer) <= MAX_PEER_BYTES:
        raise ValueError(f"{name}: peer id must be 1..{MAX_PEER_BYTES} bytes")
    return _U16.pack(len(peer)) + peer


def unpin_message(root: bytes, seed_peer: bytes, client_peer: bytes, at: int) -> bytes:
    """The bytes an unpin ``auth`` signs::

        b"p2pshare/pin/1/unpin\\x00" || root
            || u16be len || seed peer id || u16be len || client peer id
            || u64be at

    Raises:
        ValueError: an argument has the wrong size or range.
    """
    if len(root) != ID_BYTES:
        raise ValueError("root: expected 32 bytes")
    if not 0 <= at <= MAX_U63:
        raise ValueError("at: out of range")
    return b"".join(
        (
            UNPIN_TAG,
            root,
            _peer("seed", seed_peer),
            _peer("client", client_peer),
            _U64.pack(at),
        )
    )


def make_unpin_auth(
    signing_key: SigningKey, root: bytes, seed_peer: bytes, client_peer: bytes, at: int
) -> bytes:
    """Sign an unpin of ``root`` on ``seed_peer``, sent by ``client_peer`` at ``at``.

    Args:
        signing_key: the share's access key (``FileKeys.signing_key``).
        root: the share's root id.
        seed_peer: the seed's peer id (raw bytes).
        client_peer: our own peer id, the one the seed sees on the stream.
        at: current unix time in seconds.

    Returns:
        The 64-byte Ed25519 signature for :attr:`UnpinRequest.auth`.

    Raises:
        ValueError: an argument has the wrong size or range.
    """
    message = unpin_message(root, seed_peer, client_peer, at)
    return bytes(signing_key.sign(message).signature)


def verify_unpin_auth(
    access_public: bytes,
    auth: bytes,
    root: bytes,
    seed_peer: bytes,
    client_peer: bytes,
    at: int,
    now: float,
    skew_s: float = UNPIN_SKEW_S,
) -> None:
    """Check an unpin request's ``auth`` (seed side).

    Args:
        access_public: the access public key from the root's envelope.
        auth, at: from the :class:`UnpinRequest`.
        root: the root to unpin.
        seed_peer: our own peer id.
        client_peer: the requester's peer id, as Noise authenticated it.
        now: our current unix time in seconds.
        skew_s: how far ``at`` may be from ``now``, either way.

    Raises:
        AccessDenied: ``"unpin: request too old or in the future"`` or
            ``"unpin: bad signature"``.
        ValueError: a local argument has the wrong size.
    """
    if len(access_public) != 32:
        raise ValueError("access public key: expected 32 bytes")
    message = unpin_message(root, seed_peer, client_peer, at)
    if len(auth) != AUTH_BYTES:
        raise AccessDenied("unpin: bad signature")
    try:
        VerifyKey(access_public).verify(message, auth)
    except CryptoError as exc:
        raise AccessDenied("unpin: bad signature") from exc
    if abs(now - at) > skew_s:
        raise AccessDenied("unpin: request too old or in the future")
