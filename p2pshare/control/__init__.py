"""The local control API: how the CLI and the TUI drive a running node.

This docstring is the specification of the control protocol. The sans-IO
codec implements it: ``framing.py`` (§1), ``messages.py`` (§2, §3),
``wire.py`` (the state machines of §2-§4), ``errors_map.py`` (§4). The I/O
shells are ``server.py`` (trio, in the node) and ``client.py`` (anyio);
this package imports neither, so importing it pulls in no event loop.

Control protocol, version 1
===========================

The node listens on the Unix socket ``<home>/control.sock`` (mode 0600;
peers of another uid are refused). One connection carries any number of
concurrent requests.

§1 Frames
---------
::

    0               4                                   4 + length
    +---------------+-------------------------------------+
    | length: u32be | body: msgpack map with a str "t"    |
    +---------------+-------------------------------------+

* ``length`` is 1..limit, checked before the body is buffered: at most
  ``MAX_REQUEST_BYTES`` (1 MiB) client → server and ``MAX_RESPONSE_BYTES``
  (16 MiB) server → client. Zero is an error.
* Decoding is strict: str is UTF-8 of at most 64 KiB, map keys are str and
  unique, no ext types. Values are JSON-like: nil, bool, int (-2**63 ..
  2**64-1), finite float, str, bin, array, map. Containers nest at most
  ``MAX_DEPTH`` (8) deep, the body being level 1, and a body decodes into at
  most ``MAX_REQUEST_ELEMENTS`` (100 000) / ``MAX_RESPONSE_ELEMENTS``
  (1 000 000) objects, counting every container, key and item.
* Keys of a message are exactly those listed in §2/§3: unknown or missing
  keys, wrong types (a bool is not an int) and unknown ``"t"`` are errors.

§2 Handshake
------------
::

    client                                      server
    {"t": "hello", "v": 1, "client": str}  ──▶
                                           ◀──  {"t": "hello", "v": 1, "node": str}
                              or, then close:  {"t": "error", "code": "version", ...}

The client's first frame is its hello (``client``: a printable name of at
most 128 chars, for logs); it sends nothing else before the node's hello.
``node`` is the node's libp2p peer id. A node that does not speak ``v``
answers with the connection-level error ``version`` and closes.
``PROTOCOL_VERSION`` is 1.

§3 Requests, responses, events
------------------------------
=======  ======  ============================================================
``t``    from    keys
=======  ======  ============================================================
req      client  ``id`` int 1..2**53, ``method`` str ``[a-z_.]{1,64}``,
                 ``params`` map
res      server  ``id``, ``result`` any value
err      server  ``id``, ``code`` str ``[a-z0-9_]{1,40}``,
                 ``message`` str (printable, at most 1000 chars)
event    server  ``sub`` (the ``id`` of the request that subscribed),
                 ``event`` map
error    server  ``code``, ``message``: connection-level, then the node
                 closes the connection
=======  ======  ============================================================

* A client never reuses an ``id`` that is in flight; the node refuses a
  duplicate as a protocol error. The node answers each request with exactly
  one ``res`` or ``err``, in any order (requests run concurrently).
* A streaming request (``events``) receives ``event`` frames before its
  ``res``, which ends the subscription. Any answer or event for an id not in
  flight is a protocol error.
* EOF between frames closes the connection; EOF inside a frame, like any
  other violation, is a protocol error: the node sends ``error`` with code
  ``remote_protocol`` and closes; a client closes.

§4 Errors
---------
``err`` and ``error`` codes are the stable ``code`` of the
:class:`~p2pshare.errors.P2PShareError` the node raised (``not_found``,
``bad_link``, ``access_denied``, ...), so the client re-raises the same
class and the CLI exits with the same code as a node-less run
(:func:`exception_for`). Codes the node adds: ``internal`` (an unexpected
failure, a bug: the client raises the root class, exit code 1), ``busy``
(too many requests in flight), ``version`` (§2). Clients treat a code they
do not know as :class:`~p2pshare.errors.RemoteCallError`, which keeps it.
"""

from p2pshare.control.errors_map import (
    INTERNAL_CODE,
    error_classes,
    error_code,
    exception_for,
)
from p2pshare.control.framing import (
    MAX_DEPTH,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_ELEMENTS,
    MAX_RESPONSE_BYTES,
    MAX_RESPONSE_ELEMENTS,
    MAX_STR_BYTES,
)
from p2pshare.control.messages import (
    PROTOCOL_VERSION,
    ErrorResponse,
    Event,
    Fatal,
    Hello,
    Message,
    Request,
    Response,
    ServerHello,
)
from p2pshare.control.wire import (
    ClientWire,
    ServerWire,
    State,
)

__all__ = [
    "INTERNAL_CODE",
    "MAX_DEPTH",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_ELEMENTS",
    "MAX_RESPONSE_BYTES",
    "MAX_RESPONSE_ELEMENTS",
    "MAX_STR_BYTES",
    "PROTOCOL_VERSION",
    "ClientWire",
    "ErrorResponse",
    "Event",
    "Fatal",
    "Hello",
    "Message",
    "Request",
    "Response",
    "ServerHello",
    "ServerWire",
    "State",
    "error_classes",
    "error_code",
    "exception_for",
]
