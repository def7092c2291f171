"""File keys and the subkeys derived from them.

A share's file key ``K`` is 32 random bytes. It is never used directly:
each purpose gets its own subkey, a keyed BLAKE2b-256 of the empty string
with ``K`` as the key and a purpose-specific personalization string, so that
no key is ever used by two primitives (DESIGN.md, "Cryptographic format").

========  ==========================================================
purpose   used for
========  ==========================================================
chunk     XChaCha20-Poly1305 key for the file's chunks
meta      XChaCha20-Poly1305 key for the sealed meta
access    Ed25519 seed of the access keypair; its public half sits in
          the public envelope, its private half signs access proofs
          and grants
========  ==========================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import nacl.utils
from nacl.signing import SigningKey, VerifyKey

__all__ = [
    "KEY_BYTES",
    "FileKeys",
    "derive_subkey",
    "new_file_key",
]

KEY_BYTES = 32

# Personalization strings (BLAKE2b allows up to 16 bytes). The "v1" ties
# them to format version 1: a new format derives different subkeys.
_PERSONAL = {
    "chunk": b"p2pshare.v1.chnk",
    "meta": b"p2pshare.v1.meta",
    "access": b"p2pshare.v1.accs",
}

Rng = Callable[[int], bytes]


def new_file_key(*, rng: Rng = nacl.utils.random) -> bytes:
    """Return a fresh random 32-byte file key."""
    key = rng(KEY_BYTES)
    if len(key) != KEY_BYTES:
        raise ValueError("rng returned the wrong number of bytes")
    return key


def derive_subkey(key: bytes, purpose: str) -> bytes:
    """Derive the 32-byte subkey of ``key`` for ``purpose``."""
    if len(key) != KEY_BYTES:
        raise ValueError("file key must be 32 bytes")
    return hashlib.blake2b(
        b"", digest_size=32, key=key, person=_PERSONAL[purpose]
    ).digest()


@dataclass(frozen=True, slots=True)
class FileKeys:
    """The subkeys of one file key, derived once."""

    chunk: bytes
    meta: bytes
    access_seed: bytes

    @classmethod
    def from_key(cls, key: bytes) -> FileKeys:
        return cls(
            chunk=derive_subkey(key, "chunk"),
            meta=derive_subkey(key, "meta"),
            access_seed=derive_subkey(key, "access"),
        )

    @property
    def signing_key(self) -> SigningKey:
        """The access keypair's private half."""
        return SigningKey(self.access_seed)

    @property
    def access_public(self) -> bytes:
        """The access keypair's public half (32 bytes, in the envelope)."""
        return bytes(self.signing_key.verify_key)

    def __repr__(self) -> str:  # never print key material
        return "FileKeys(<redacted>)"


def verify_key(public: bytes) -> VerifyKey:
    """Wrap a 32-byte access public key for signature checks."""
    return VerifyKey(public)
