"""The stream patches' buffers (compat.secure_io, compat.yamux_io), one layer
at a time: ChunkBuffer against bytearray, and the buffered Noise session's
framing against an independent encoder/decoder over the same cipher."""

from __future__ import annotations

import random  # noqa: TID251 (seeded, reproducible test data; no keys)
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from libp2p.io.exceptions import IncompleteReadError
from noise.exceptions import NoiseInvalidMessage

from p2pshare.node.compat.secure_io import MAX_PLAINTEXT, BufferedNoiseSession
from p2pshare.node.compat.yamux_io import ChunkBuffer

# -- ChunkBuffer ------------------------------------------------------------


def test_chunk_buffer_behaves_as_the_bytearray_it_replaces() -> None:
    rng = random.Random(7)
    ours, theirs = ChunkBuffer(), bytearray()
    for _ in range(3000):
        op = rng.randrange(5)
        if op == 0:
            data = rng.randbytes(rng.choice([0, 1, 5, 100, 4096]))
            ours.extend(data)
            theirs.extend(data)
        elif op == 1:
            n = rng.randrange(len(theirs) + 3)
            assert ours[:n] == bytes(theirs[:n])
            del ours[:n]
            del theirs[:n]
        elif op == 2:
            assert bytes(ours) == bytes(theirs)
        elif op == 3 and rng.random() < 0.05:
            ours.clear()
            theirs.clear()
        else:
            n = rng.randrange(len(theirs) + 3)
            assert ours[0:n] == bytes(theirs[0:n])
        assert len(ours) == len(theirs)
        assert bool(ours) == bool(theirs)


def test_chunk_buffer_keeps_bytes_uncopied_and_refuses_other_slices() -> None:
    chunk = b"x" * 1000
    buf = ChunkBuffer()
    buf.extend(chunk)
    assert buf[:1000] is chunk  # a whole frame is returned as it came
    assert buf[:-1] == chunk[:-1]
    with pytest.raises(TypeError):
        buf[1:3]
    with pytest.raises(TypeError):
        buf[::2]


# -- BufferedNoiseSession -----------------------------------------------------


class Cipher:
    """A Noise CipherState stand-in: ChaCha20-Poly1305, counter nonces."""

    def __init__(self, key: bytes) -> None:
        self.aead = ChaCha20Poly1305(key)
        self.n = 0

    def _nonce(self) -> bytes:
        self.n += 1
        return b"\0" * 4 + (self.n - 1).to_bytes(8, "little")

    def encrypt_with_ad(self, ad: bytes | None, data: Any) -> bytes:
        return self.aead.encrypt(self._nonce(), bytes(data), ad)

    def decrypt_with_ad(self, ad: bytes | None, data: Any) -> bytes:
        return self.aead.decrypt(self._nonce(), bytes(data), ad)


@dataclass
class Raw:
    """A raw connection that hands out its input in random-sized pieces."""

    incoming: bytes = b""
    rng: random.Random = field(default_factory=lambda: random.Random(3))
    written: list[bytes] = field(default_factory=list)

    async def read(self, n: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        take = min(n or 1 << 30, self.rng.choice([1, 2, 3, 700, 70000, 1 << 20]))
        out, self.incoming = self.incoming[:take], self.incoming[take:]
        return out

    async def write(self, data: bytes) -> None:
        self.written.append(data)


def session(raw: Raw, key: bytes = b"k" * 32) -> BufferedNoiseSession:
    state = type("P", (), {})()
    state.cipher_state_encrypt = Cipher(key)
    state.cipher_state_decrypt = Cipher(key)
    noise = type("N", (), {})()
    noise.noise_state = type("S", (), {"noise_protocol": state})()
    noise.read_writer = type("W", (), {"read_write_closer": raw})()
    stock = type("Sess", (), {})()
    stock.conn = noise
    stock.local_peer = stock.remote_peer = None
    stock.local_private_key = stock.remote_permanent_pubkey = None
    stock.is_initiator = True
    return BufferedNoiseSession(stock)


def frames(messages: list[bytes], key: bytes = b"k" * 32) -> bytes:
    """The wire form of ``messages``, as any Noise peer writes it."""
    cipher = Cipher(key)
    out = b""
    for m in messages:
        sealed = cipher.encrypt_with_ad(None, m)
        out += len(sealed).to_bytes(2, "big") + sealed
    return out


def unframe(wire: bytes, key: bytes = b"k" * 32) -> list[bytes]:
    cipher, out, at = Cipher(key), [], 0
    while at < len(wire):
        size = int.from_bytes(wire[at : at + 2], "big")
        assert size <= 65535
        out.append(cipher.decrypt_with_ad(None, wire[at + 2 : at + 2 + size]))
        at += 2 + size
    return out


@pytest.mark.trio
async def test_reads_return_exactly_what_was_asked_across_any_split() -> None:
    rng = random.Random(11)
    messages = [
        rng.randbytes(rng.choice([1, 12, 1000, MAX_PLAINTEXT])) for _ in range(60)
    ]
    stream = b"".join(messages)
    s = session(Raw(frames(messages)))
    got = b""
    while len(got) < len(stream):
        n = min(rng.choice([1, 12, 5000, 70000, 300000]), len(stream) - len(got))
        part = await s.read(n)
        assert len(part) == n
        got += part
    assert got == stream
    with pytest.raises(IncompleteReadError) as end:
        await s.read(12)
    assert end.value.is_clean_close  # ended between messages


@pytest.mark.trio
async def test_read_none_returns_the_rest_of_one_message() -> None:
    s = session(Raw(frames([b"hello", b"world"])))
    assert await s.read(2) == b"he"
    assert await s.read() == b"llo"
    assert await s.read(None) == b"world"


@pytest.mark.trio
async def test_a_truncated_message_is_not_a_clean_close() -> None:
    wire = frames([b"a" * 100])
    s = session(Raw(wire[:-5]))
    with pytest.raises(IncompleteReadError) as end:
        await s.read(100)
    assert not end.value.is_clean_close


@pytest.mark.trio
async def test_a_tampered_message_fails_authentication() -> None:
    wire = bytearray(frames([b"a" * 100]))
    wire[10] ^= 1
    with pytest.raises(NoiseInvalidMessage):
        await session(Raw(bytes(wire))).read(100)


@pytest.mark.trio
async def test_a_large_write_is_one_raw_write_of_maximal_messages() -> None:
    raw = Raw()
    s = session(raw)
    data = random.Random(5).randbytes(3 * MAX_PLAINTEXT + 17)
    await s.write(data)
    await s.write(b"tail")
    assert len(raw.written) == 2
    first = unframe(raw.written[0])
    assert [len(m) for m in first] == [MAX_PLAINTEXT] * 3 + [17]
    assert b"".join(first) == data
    # one cipher, one nonce sequence over both writes
    assert unframe(b"".join(raw.written))[-1] == b"tail"
