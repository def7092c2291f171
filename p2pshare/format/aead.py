"""XChaCha20-Poly1305-IETF on OpenSSL: the same bytes as libsodium, 6x cheaper.

Theory of operation
-------------------
XChaCha20-Poly1305-IETF (draft-irtf-cfrg-xchacha, what libsodium's
``crypto_aead_xchacha20poly1305_ietf_*`` computes) is ChaCha20-Poly1305-IETF
(RFC 8439) under a subkey:

* ``subkey = HChaCha20(key, nonce[:16])``
* ``inner nonce = 4 zero bytes || nonce[16:24]``

libsodium's generic ChaCha20-Poly1305 in PyNaCl's wheel runs at ~1.5
CPU-s/GiB on this machine; OpenSSL's (``cryptography``'s
``ChaCha20Poly1305``, vectorised) at ~0.25. Every chunk a node adds, serves
from a reference share or downloads is sealed or opened once, so this is
most of the crypto cost on both sides of a transfer (see docs/network.md,
"Where the CPU goes").

HChaCha20 is not exposed by either binding, so :func:`hchacha20` takes it
from OpenSSL's ChaCha20 keystream: a ChaCha20 block is ``rounds(s) + s``
(word-wise, mod 2**32) for the input state ``s``, and HChaCha20 is words
0..3 and 12..15 of ``rounds(s)`` for the state whose words 12..15 are the
16-byte input. OpenSSL's ChaCha20 takes exactly those 16 bytes as its IV
(a 32-bit counter, then a 96-bit nonce: state words 12..15), so the first
keystream block minus the known words of ``s`` is the HChaCha20 output.
One 64-byte keystream block per seal: a few microseconds.

``cryptography`` holds the GIL while it seals or opens (libsodium released
it): ~0.2 ms per MiB, against 1.4 ms of libsodium's work that ran beside
the event loop. That is still the cheaper trade on one core and on two
(docs/network.md), and caps sealing at ~4.5 GB/s per process.

The results are checked byte for byte against libsodium in
``tests/unit/format/test_aead.py`` (random keys, nonces, lengths, and the
draft's HChaCha20 test vector).
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = ["AuthenticationFailed", "hchacha20", "xchacha_open", "xchacha_seal"]

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 24
_SIGMA: Final = struct.unpack("<4I", b"expand 32-byte k")
_WORDS: Final = struct.Struct("<16I")
_OUT: Final = struct.Struct("<8I")
_IV: Final = struct.Struct("<4I")
_ZERO_BLOCK: Final = bytes(64)
_MASK: Final = 0xFFFFFFFF


class AuthenticationFailed(Exception):
    """The ciphertext, nonce, key or associated data does not authenticate."""


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 of a 32-byte key and a 16-byte input (the subkey)."""
    if len(key) != KEY_BYTES or len(nonce16) != 16:
        raise ValueError("hchacha20: a 32-byte key and a 16-byte input")
    block = Cipher(algorithms.ChaCha20(key, nonce16), mode=None).encryptor()
    out = _WORDS.unpack(block.update(_ZERO_BLOCK))
    iv = _IV.unpack(nonce16)
    return _OUT.pack(
        (out[0] - _SIGMA[0]) & _MASK,
        (out[1] - _SIGMA[1]) & _MASK,
        (out[2] - _SIGMA[2]) & _MASK,
        (out[3] - _SIGMA[3]) & _MASK,
        (out[12] - iv[0]) & _MASK,
        (out[13] - iv[1]) & _MASK,
        (out[14] - iv[2]) & _MASK,
        (out[15] - iv[3]) & _MASK,
    )


def _inner(key: bytes, nonce: bytes) -> tuple[ChaCha20Poly1305, bytes]:
    if len(nonce) != NONCE_BYTES:
        raise ValueError("xchacha20poly1305: a 24-byte nonce")
    return ChaCha20Poly1305(hchacha20(key, nonce[:16])), bytes(4) + nonce[16:]


def xchacha_seal(
    key: bytes, nonce: bytes, ad: bytes, plain: bytes | bytearray | memoryview
) -> bytes:
    """Ciphertext || 16-byte tag, as libsodium's ``..._ietf_encrypt``."""
    aead, inner = _inner(key, nonce)
    return aead.encrypt(inner, plain, ad)


def xchacha_open(
    key: bytes, nonce: bytes, ad: bytes, sealed: bytes | bytearray | memoryview
) -> bytes:
    """The plaintext of ``sealed`` (ciphertext || tag).

    Raises:
        AuthenticationFailed: it does not authenticate (or is shorter than
            a tag).
    """
    aead, inner = _inner(key, nonce)
    try:
        return aead.decrypt(inner, sealed, ad)
    except InvalidTag as exc:
        raise AuthenticationFailed from exc
