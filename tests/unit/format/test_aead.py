"""XChaCha20-Poly1305 on OpenSSL gives libsodium's bytes, and refuses what
libsodium refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from p2pshare.format.aead import (
    AuthenticationFailed,
    hchacha20,
    xchacha_open,
    xchacha_seal,
)

keys = st.binary(min_size=32, max_size=32)
nonces = st.binary(min_size=24, max_size=24)


def test_hchacha20_draft_vector() -> None:
    # draft-irtf-cfrg-xchacha-03, section 2.2.1
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a0000000031415927")
    assert hchacha20(key, nonce).hex() == (
        "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    )


def test_xchacha_draft_vector() -> None:
    # draft-irtf-cfrg-xchacha-03, appendix A.3.1
    plain = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only "
        b"one tip for the future, sunscreen would be it."
    )
    ad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    key = bytes(range(0x80, 0xA0))
    nonce = bytes(range(0x40, 0x58))
    sealed = xchacha_seal(key, nonce, ad, plain)
    assert sealed[-16:].hex() == "c0875924c1c7987947deafd8780acf49"
    assert sealed[:16].hex() == "bd6d179d3e83d43b9576579493c0e939"
    assert xchacha_open(key, nonce, ad, sealed) == plain


@settings(max_examples=200, deadline=None)
@given(
    key=keys, nonce=nonces, ad=st.binary(max_size=64), plain=st.binary(max_size=5000)
)
def test_same_bytes_as_libsodium(
    key: bytes, nonce: bytes, ad: bytes, plain: bytes
) -> None:
    sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(plain, ad, nonce, key)
    assert xchacha_seal(key, nonce, ad, plain) == sealed
    assert xchacha_open(key, nonce, ad, sealed) == plain
    assert xchacha_open(key, nonce, ad, memoryview(bytearray(sealed))) == plain


@pytest.mark.parametrize(
    "nonce",
    [b"\xff" * 24, b"\x00" * 24, (2**32 - 1).to_bytes(4, "little") + bytes(20)],
    ids=["all-ones", "zero", "counter-word-max"],
)
def test_counter_word_edges(nonce: bytes) -> None:
    # the first 4 nonce bytes are OpenSSL's block counter: no carry into the
    # next word may change the result
    key, plain = bytes(range(32)), bytes(300)
    sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(plain, b"", nonce, key)
    assert xchacha_seal(key, nonce, b"", plain) == sealed


@settings(max_examples=50, deadline=None)
@given(
    key=keys, nonce=nonces, plain=st.binary(max_size=200), flip=st.integers(0, 10_000)
)
def test_tampering_refused_like_libsodium(
    key: bytes, nonce: bytes, plain: bytes, flip: int
) -> None:
    sealed = bytearray(xchacha_seal(key, nonce, b"ad", plain))
    sealed[flip % len(sealed)] ^= 1 << (flip % 8)
    with pytest.raises(AuthenticationFailed):
        xchacha_open(key, nonce, b"ad", bytes(sealed))
    with pytest.raises(CryptoError):
        crypto_aead_xchacha20poly1305_ietf_decrypt(bytes(sealed), b"ad", nonce, key)


@pytest.mark.parametrize("sealed", [b"", b"x" * 15, b"x" * 16])
def test_short_or_empty_refused(sealed: bytes) -> None:
    with pytest.raises(AuthenticationFailed):
        xchacha_open(bytes(32), bytes(24), b"", sealed)


def test_wrong_ad_or_key_refused() -> None:
    key, nonce = bytes(range(32)), bytes(24)
    sealed = xchacha_seal(key, nonce, b"a", b"hello")
    with pytest.raises(AuthenticationFailed):
        xchacha_open(key, nonce, b"b", sealed)
    with pytest.raises(AuthenticationFailed):
        xchacha_open(bytes(32), nonce, b"a", sealed)


@pytest.mark.parametrize(
    ("key", "nonce"), [(bytes(31), bytes(24)), (bytes(32), bytes(23))]
)
def test_bad_sizes_raise(key: bytes, nonce: bytes) -> None:
    with pytest.raises(ValueError, match=r"32-byte key|24-byte nonce"):
        xchacha_seal(key, nonce, b"", b"")
