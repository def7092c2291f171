"""A cheaper Noise transport session, wire-compatible with 0.8.1's (F1).

F1: py-libp2p 0.8.1 spends most of a bulk transfer's CPU in Python around
a cipher that costs ~0.34 CPU-s/GiB (``docs/network.md``, "Where the CPU
goes"). Per Noise message (at most 65 535 bytes on the wire) its session

* reads the 2-byte length prefix with one socket ``recv`` and the body with
  one or more, each through ``read_exactly`` (a ``bytearray`` built per
  call), the raw connection's lock and a trio wait;
* decrypts through ``NoiseConnection.decrypt`` (type checks, a new nonce
  each time), then copies the plaintext into a ``BytesIO``, and Yamux's
  12-byte header and body reads each drain it with another copy;
* on the send side, splits a Yamux frame of 64 KiB + 12 bytes into two
  Noise messages (65 519 + 29 bytes), each prefixed by a concatenation and
  sent with its own ``send_all`` under the connection's write lock.

:class:`BufferedNoiseSession` keeps the same bytes on the wire (a 2-byte
big-endian length, then ChaCha20-Poly1305 ciphertext with the Noise
session's own keys and nonces, at most 65 519 plaintext bytes per message),
so a stock 0.8.1 peer cannot tell the difference (tested both ways in
``tests/integration/test_stock_interop.py``). It

* reads the socket in large reads (:data:`RECV_SIZE`) and decrypts every
  complete Noise message in what arrived, from ``memoryview`` slices, in one
  pass;
* keeps decrypted messages in a queue of ``bytes`` and serves ``read(n)``
  from it with one slice per call (exactly ``n`` bytes, or what is left at
  end of stream, as 0.8.1's ``SecureSession.read`` does);
* encrypts all Noise messages of one ``write`` and sends them with one
  ``write`` on the raw connection.

The Yamux side of the same work is in ``compat.yamux_io`` (F2). Both are
skipped when ``P2PSHARE_STOCK_STREAM=1`` is set in the environment
(:func:`stock_stream`): the benchmark measures the stock stream that way in
the same run, and the interop test runs a stock peer.

Remove when: py-libp2p's Noise session buffers its reads and batches its
writes (upstream ``security/noise/io.py`` and ``secure_session.py``), and
its Yamux sends frames larger than 64 KiB.
"""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from libp2p.io.exceptions import IncompleteReadError
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.security.secure_session import SecureSession
from noise.exceptions import NoiseInvalidMessage

if TYPE_CHECKING:
    from libp2p.abc import IRawConnection, ISecureConn
    from libp2p.peer.id import ID

__all__ = [
    "MAX_PLAINTEXT",
    "RECV_SIZE",
    "BufferedNoiseSession",
    "BufferedNoiseTransport",
    "stock_stream",
]

STOCK_ENV: Final = "P2PSHARE_STOCK_STREAM"
MAX_MESSAGE: Final = 65535  # a Noise transport message on the wire (spec)
TAG: Final = 16  # the ChaCha20-Poly1305 tag
MAX_PLAINTEXT: Final = MAX_MESSAGE - TAG  # as go-libp2p's MaxPlaintextLength
RECV_SIZE: Final = 256 * 1024  # one socket read
_LEN: Final = 2  # the length prefix of a Noise message


def stock_stream() -> bool:
    """Whether the stock 0.8.1 stream was asked for (``P2PSHARE_STOCK_STREAM=1``)."""
    return os.environ.get(STOCK_ENV, "") == "1"


class BufferedNoiseSession(SecureSession):
    """A Noise transport session with buffered reads and batched writes.

    Built from the session 0.8.1's handshake returns (which it replaces), so
    the peer ids, keys and the Noise cipher states are the handshake's own.
    """

    def __init__(self, session: SecureSession) -> None:
        noise = session.conn
        super().__init__(
            local_peer=session.local_peer,
            local_private_key=session.local_private_key,
            remote_peer=session.remote_peer,
            remote_permanent_pubkey=session.remote_permanent_pubkey,
            is_initiator=session.is_initiator,
            conn=noise,
        )
        state: Any = noise.noise_state.noise_protocol  # type: ignore[attr-defined]
        self._raw: IRawConnection = noise.read_writer.read_write_closer  # type: ignore[attr-defined]
        self._seal: Any = state.cipher_state_encrypt
        self._open: Any = state.cipher_state_decrypt
        self._wire = b""  # received, not yet a whole Noise message
        self._plain: deque[bytes] = deque()  # decrypted messages, in order
        self._head = 0  # bytes of _plain[0] already read
        self._eof = False

    # -- reading ----------------------------------------------------------

    async def _more(self) -> None:
        """Receive from the socket until at least one message decrypts.

        Raises:
            IncompleteReadError: the connection ended (``received_bytes`` 0
                when it ended between messages, a clean close).
            NoiseInvalidMessage: a message failed authentication.
        """
        wire = self._wire
        while True:
            if self._eof:
                raise IncompleteReadError(
                    "Connection closed during read operation",
                    expected_bytes=_LEN,
                    received_bytes=len(wire),
                )
            data = await self._raw.read(RECV_SIZE)
            if not data:
                self._eof = True
                continue
            wire = wire + data if wire else data
            view = memoryview(wire)
            end, at = len(wire), 0
            while end - at >= _LEN:
                size = (wire[at] << 8) | wire[at + 1]
                if end - at - _LEN < size:
                    break
                body = view[at + _LEN : at + _LEN + size]
                try:
                    self._plain.append(self._open.decrypt_with_ad(None, body))
                except Exception as exc:  # cryptography's InvalidTag
                    raise NoiseInvalidMessage(
                        "Failed authentication of message"
                    ) from exc
                at += _LEN + size
            view.release()
            self._wire = wire[at:] if at else wire
            if self._plain:
                return
            wire = self._wire

    async def read_msg(self) -> bytes:
        """The rest of the next decrypted message (``SecureSession.read(None)``)."""
        if not self._plain:
            await self._more()
        msg = self._plain.popleft()
        head, self._head = self._head, 0
        return msg[head:] if head else msg

    async def read(self, n: int | None = None) -> bytes:
        """Exactly ``n`` bytes, or, for ``None``, the rest of the next
        message; as 0.8.1's ``SecureSession.read``, which also raises (and
        drops what it had read) when the connection ends mid-read.

        Raises:
            IncompleteReadError, NoiseInvalidMessage: see :meth:`_more`.
        """
        if n == 0:
            return b""
        if n is None:
            return await self.read_msg()
        plain = self._plain
        parts: list[bytes] = []
        need = n
        while need:
            if not plain:
                await self._more()
            first = plain[0]
            head = self._head
            left = len(first) - head
            if left > need:
                parts.append(first[head : head + need])
                self._head = head + need
                break
            parts.append(first[head:] if head else first)
            plain.popleft()
            self._head = 0
            need -= left
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- writing ----------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Encrypt ``data`` as Noise messages and send them in one write."""
        seal = self._seal.encrypt_with_ad
        size = len(data)
        if size <= MAX_PLAINTEXT:
            sealed = seal(None, data)
            await self._raw.write(len(sealed).to_bytes(_LEN, "big") + sealed)
            return
        out = bytearray()
        view = memoryview(data)
        for at in range(0, size, MAX_PLAINTEXT):
            sealed = seal(None, view[at : at + MAX_PLAINTEXT])
            out += len(sealed).to_bytes(_LEN, "big")
            out += sealed
        view.release()
        await self._raw.write(out)  # type: ignore[arg-type]  # trio sends any buffer


class BufferedNoiseTransport(NoiseTransport):
    """0.8.1's Noise transport whose sessions are :class:`BufferedNoiseSession`."""

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        return _buffered(await super().secure_inbound(conn))

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        return _buffered(await super().secure_outbound(conn, peer_id))


def _buffered(session: ISecureConn) -> ISecureConn:
    if isinstance(session, SecureSession) and hasattr(session.conn, "noise_state"):
        return BufferedNoiseSession(session)
    return session
