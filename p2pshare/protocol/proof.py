"""Access proofs: a client shows it holds a share's key, on one connection only.

Theory of operation
-------------------
The access keypair of a share is Ed25519, derived from the file key (see
``p2pshare.format.keys``); its public half sits in the public envelope.
When a transfer stream opens, the server sends a fresh random 32-byte
challenge (``Hello``). To open a root the client signs::

    b"p2pshare/xfer/1/proof\\x00"     domain tag (never a valid other message)
    root                              32 bytes
    u16be len || client peer id       raw libp2p peer id bytes
    u16be len || server peer id
    challenge                         32 bytes

The peer ids are the ones the libp2p Noise handshake authenticated, passed
in by the driver, never read from a message. Hence a proof is useless on any
other connection: another client cannot replay it (its own peer id differs),
the server cannot relay it to a third node (that node's id and challenge
differ), and it binds exactly one root. The length prefixes keep the
encoding injective, so two different (client, server) pairs never sign the
same bytes.

Bad proofs raise :class:`~p2pshare.errors.AccessDenied`, chained from
PyNaCl's ``BadSignatureError``; wrongly sized *local* arguments are our bug
and raise ``ValueError``.
"""

from __future__ import annotations

import struct

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from p2pshare.errors import AccessDenied
from p2pshare.format.chunks import ID_BYTES
from p2pshare.protocol.messages import CHALLENGE_BYTES, PROOF_BYTES

__all__ = [
    "MAX_PEER_ID_BYTES",
    "PROOF_TAG",
    "make_proof",
    "proof_message",
    "verify_proof",
]

PROOF_TAG = b"p2pshare/xfer/1/proof\x00"
# libp2p peer ids are multihashes: 38 bytes for Ed25519 identity keys, 34 for
# sha2-256 of larger keys. 256 is generous and keeps the prefix meaningful.
MAX_PEER_ID_BYTES = 256

_U16 = struct.Struct(">H")


def _peer(name: str, peer_id: bytes) -> bytes:
    if not 0 < len(peer_id) <= MAX_PEER_ID_BYTES:
        raise ValueError(f"{name}: peer id must be 1..{MAX_PEER_ID_BYTES} bytes")
    return _U16.pack(len(peer_id)) + peer_id


def proof_message(
    root: bytes, client_peer_id: bytes, server_peer_id: bytes, challenge: bytes
) -> bytes:
    """The exact bytes an access proof signs (see the module docstring).

    Raises:
        ValueError: an argument has the wrong length.
    """
    if len(root) != ID_BYTES:
        raise ValueError("root: expected 32 bytes")
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError("challenge: expected 32 bytes")
    return b"".join(
        (
            PROOF_TAG,
            root,
            _peer("client", client_peer_id),
            _peer("server", server_peer_id),
            challenge,
        )
    )


def make_proof(
    signing_key: SigningKey,
    root: bytes,
    client_peer_id: bytes,
    server_peer_id: bytes,
    challenge: bytes,
) -> bytes:
    """Sign the proof for ``root`` on this connection.

    Args:
        signing_key: the share's access key (``FileKeys.signing_key``).
        root: the share's root id.
        client_peer_id: our own peer id, as raw bytes.
        server_peer_id: the server's peer id, as Noise authenticated it.
        challenge: the server's ``Hello.challenge``.

    Returns:
        The 64-byte Ed25519 signature.
    """
    message = proof_message(root, client_peer_id, server_peer_id, challenge)
    return bytes(signing_key.sign(message).signature)


def verify_proof(
    access_public: bytes,
    proof: bytes,
    root: bytes,
    client_peer_id: bytes,
    server_peer_id: bytes,
    challenge: bytes,
) -> None:
    """Check an access proof against the envelope's access public key.

    Args:
        access_public: the 32-byte access public key from the root's envelope.
        proof: the signature the client sent in ``Open``.
        root, client_peer_id, server_peer_id, challenge: as for
            :func:`make_proof`, from the server's point of view.

    Raises:
        AccessDenied: the proof is not a valid signature of this message.
        ValueError: ``access_public`` or another local argument is malformed.
    """
    if len(access_public) != 32:
        raise ValueError("access public key: expected 32 bytes")
    message = proof_message(root, client_peer_id, server_peer_id, challenge)
    if len(proof) != PROOF_BYTES:
        raise AccessDenied(f"access proof: expected {PROOF_BYTES} bytes")
    try:
        VerifyKey(access_public).verify(message, proof)
    except BadSignatureError as exc:
        raise AccessDenied(
            f"access proof: bad signature for {root[:4].hex()}…"
        ) from exc
