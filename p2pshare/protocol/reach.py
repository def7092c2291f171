r"""The reachability protocol ``/p2pshare/reach/1``: "can you dial me back?"

A node cannot tell by itself whether the world can dial it: its listen
addresses are often private (behind a home router) and, even when public, a
firewall may drop what comes in. It asks seeds. One request, one answer,
then the stream closes::

    client                                   seed
      [u32 len | reach{port}]      ──▶
                                             dial <observed ip>:<port> on a
                                             *fresh* TCP connection, expect
                                             the client's peer id (Noise)
                                   ◀──       [u32 len | reached{observed, result}]

``observed`` is the client's IP as the seed saw it (the NAT's public address
behind a NAT). ``result`` is ``dialed`` (the fresh dial completed the Noise
handshake with the client's id: the client is publicly reachable on that
address), ``no_answer`` (nothing answered within the seed's bound: a NAT or
a firewall dropped it), ``refused`` (something answered and refused or was
not that peer) or ``busy`` (the seed is checking too many peers now; ask
later). A seed only ever dials the IP the request came from, so it cannot
be used to knock on a third party's door.

Why not AutoNAT v1 (py-libp2p ``host/autonat``): its dial-back calls
``host.connect()``, which reuses the connection the question came on, so it
answers "reachable" behind a cone NAT, a symmetric NAT and a firewall alike
(REACHABILITY-NOTES: wrong in 3 of 4 modes).

Frames are those of ``/p2pshare/xfer/1`` (``framing.py``), with a limit of
:data:`MAX_REACH_FRAME_BYTES`; messages are strict like ``messages.py``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from p2pshare.errors import LocalProtocolError, RemoteProtocolError
from p2pshare.protocol.codec import check_text, check_uint
from p2pshare.protocol.framing import FrameDecoder, encode_frame
from p2pshare.protocol.messages import Message

__all__ = [
    "MAX_REACH_FRAME_BYTES",
    "REACH_PROTOCOL",
    "RESULTS",
    "ReachRequest",
    "Reached",
    "decode",
    "encode",
]

REACH_PROTOCOL: Final = "/p2pshare/reach/1"
MAX_REACH_FRAME_BYTES: Final = 256
RESULTS: Final = ("dialed", "no_answer", "refused", "busy")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReachRequest(Message):
    """Client → seed: dial me back on this TCP port."""

    TAG: ClassVar[str] = "reach"
    port: int

    def __post_init__(self) -> None:
        check_uint("port", self.port, 65535)
        if self.port == 0:
            raise LocalProtocolError("port: 0 is not a port")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reached(Message):
    """Seed → client: what the fresh dial-back found."""

    TAG: ClassVar[str] = "reached"
    observed: str
    result: str

    def __post_init__(self) -> None:
        check_text("observed", self.observed, 45)
        try:
            ip = ipaddress.ip_address(self.observed)
        except ValueError as exc:
            raise LocalProtocolError("observed: not an IP address") from exc
        zoned = isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None
        if zoned or str(ip) != self.observed:  # "fe80::1%eth0", "0:0::1"
            raise LocalProtocolError("observed: not a plain IP address")
        if self.result not in RESULTS:
            raise LocalProtocolError("result: not a known result")


def encode(message: ReachRequest | Reached) -> bytes:
    return encode_frame(message.to_wire(), max_frame=MAX_REACH_FRAME_BYTES)


def decode(data: bytes, kind: type[ReachRequest] | type[Reached]) -> Any:
    """One whole frame (prefix included) as ``kind``.

    Raises:
        RemoteProtocolError: not exactly one valid frame of that kind.
    """
    decoder = FrameDecoder(MAX_REACH_FRAME_BYTES)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    body = decoder.next_frame()
    if body is None or not decoder.at_eof:
        raise RemoteProtocolError(f"{kind.TAG}: not exactly one frame")
    return kind.from_wire(body)
