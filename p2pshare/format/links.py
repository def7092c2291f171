"""Share links: ``p2pshare://<root>/<multiaddr>,<multiaddr>…#<key>``.

* ``<root>`` is the root id as CIDv1 text (see ``cid.py``).
* The peer hints (optional, at most ``MAX_PEERS``) follow the root, each a
  multiaddr that ends in ``/p2p/<peer id>`` of a node believed to serve the
  share, separated by ``,``. Every character outside ``A-Z a-z 0-9 / . _ :
  -`` is percent-encoded, so a link holds no character a shell treats
  specially (``&``, ``?``, ``;``, ``*``, spaces…) and survives being pasted
  unquoted: with the earlier query form, ``&`` between two ``peer=`` hints
  sent the command to the background and cut the key off.
* The earlier form ``p2pshare://<root>?peer=<multiaddr>&peer=…#<key>`` still
  parses (links already sent keep working); a parsed link is always
  written back in the new form.
* ``#<key>`` is the 32-byte file key, base64url without padding (43
  characters). A link without a fragment is the root-id-only capability:
  enough to find and verify ciphertext, not to read it.
* ``~t1.<ticket>`` after the key (or the password-wrapped key) is the
  link's ticket when the owner controls the share's links (``ticket.py``):
  servers refuse the link once it expired or was revoked.

The fragment is the secret. A URL's fragment is never sent to a server by
the consumers of a link, and p2pshare never logs it: ``ShareLink.__repr__``
redacts it, and :meth:`ShareLink.public` gives the link without it.

Live links, ``p2pshare://live.<pub>/<multiaddr>,…#<read key>``, name a
pointer instead of a snapshot (``pointer.py``): ``<pub>`` is the pointer's
32-byte Ed25519 public key as base32 (RFC 4648, lowercase, no padding: 52
characters), the hints are the same, and the fragment is the 32-byte read
key in the same form as a file key. :func:`parse_any_link` gives a
:class:`ShareLink` or a :class:`LiveLink`.

Parsing is strict and total: any string either yields a link or raises
``LinkError`` (checked by a Hypothesis test), and a parsed link formats back
to the same text.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from p2pshare.errors import AccessDenied, FormatError, LinkError
from p2pshare.format.cid import cid_to_root, root_to_cid
from p2pshare.format.keys import KEY_BYTES
from p2pshare.format.password import is_wrapped, parse_wrapped
from p2pshare.format.ticket import Ticket

__all__ = [
    "LIVE_PREFIX",
    "MAX_LINK_LEN",
    "MAX_PEERS",
    "SCHEME",
    "LiveLink",
    "ShareLink",
    "parse_any_link",
    "parse_link",
    "parse_root_or_link",
    "require_key",
]

SCHEME = "p2pshare://"
LIVE_PREFIX = "live."
_PUB_TEXT_LEN = 52
MAX_LINK_LEN = 4096
MAX_PEERS = 8
MAX_PEER_LEN = 400
_KEY_TEXT_LEN = 43
_HINT_SAFE = "/:"  # with quote()'s letters, digits and "_.-" ("~" is encoded)
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class ShareLink:
    """A parsed share link. ``key`` is None for a root-id-only link."""

    root_id: bytes
    key: bytes | None = field(default=None)
    peers: tuple[str, ...] = ()
    # a password link: the fragment ``pw1.…`` (``password.py``), no ``key``
    wrapped: str | None = field(default=None, repr=False)
    # the owner's ticket for this link (``ticket.py``), or None
    ticket: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_parts(("link: root id", self.root_id), ("link: key", self.key))
        _check_peers(self.peers)
        if self.wrapped is not None:
            if self.key is not None:
                raise LinkError("link: a key and a password-protected key")
            parse_wrapped(self.wrapped)
        if self.ticket is not None:
            if self.key is None and self.wrapped is None:
                raise LinkError("link: a ticket without a key")
            try:
                Ticket.from_bytes(self.ticket)
            except FormatError as exc:
                raise LinkError(f"link: {exc}") from None

    @property
    def root_cid(self) -> str:
        return root_to_cid(self.root_id)

    def public(self) -> str:
        """The link without its key: safe to log or publish."""
        return SCHEME + self.root_cid + _hint_text(self.peers)

    def __str__(self) -> str:
        """The full link, key included. Only for showing to the user."""
        tail = ""
        if self.ticket is not None:
            tail = "~" + Ticket.from_bytes(self.ticket).to_text()
        if self.wrapped is not None:
            return f"{self.public()}#{self.wrapped}{tail}"
        if self.key is None:
            return self.public()
        key = base64.urlsafe_b64encode(self.key).decode("ascii").rstrip("=")
        return f"{self.public()}#{key}{tail}"

    def __repr__(self) -> str:
        redacted = "<key>" if self.key is not None or self.wrapped else "None"
        return (
            f"ShareLink(root={self.root_cid[:12]}…, key={redacted},"
            f" peers={len(self.peers)})"
        )


def _check_parts(ident: tuple[str, bytes], key: tuple[str, bytes | None]) -> None:
    """The 32-byte id (root or pointer key) and, when present, the key."""
    for what, value in (ident, key):
        if value is not None and len(value) != KEY_BYTES:
            raise LinkError(f"{what} must be 32 bytes")


def _check_peers(peers: tuple[str, ...]) -> None:
    if len(peers) > MAX_PEERS:
        raise LinkError(f"link: more than {MAX_PEERS} peer hints")
    for peer in peers:
        _check_peer(peer)


def _check_peer(peer: object) -> None:
    if (
        not isinstance(peer, str)
        or not peer.startswith("/")
        or len(peer) > MAX_PEER_LEN
    ):
        raise LinkError("link: a peer hint must be a multiaddr starting with '/'")
    if not peer.isascii() or not peer.isprintable() or " " in peer:
        raise LinkError("link: a peer hint has characters a multiaddr cannot have")
    import multiaddr  # pure parser, no network: keeps format/ free of libp2p

    # The multiaddr parser raises a zoo of exception types on hostile input
    # (ValueError, binascii.Error, its own errors, …); all mean "not valid".
    try:
        parsed = multiaddr.Multiaddr(peer)
        protocols = [p.name for p in parsed.protocols()]
    except Exception as exc:
        raise LinkError("link: a peer hint is not a valid multiaddr") from exc
    if not protocols or protocols[-1] != "p2p":
        raise LinkError("link: a peer hint must end in /p2p/<peer id>")


def _parse_key(text: str) -> bytes:
    if len(text) != _KEY_TEXT_LEN or not set(text) <= _B64URL:
        raise LinkError("link: the key (after '#') is not 43 base64url characters")
    try:
        key = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError) as exc:
        raise LinkError("link: the key (after '#') is not valid base64url") from exc
    if base64.urlsafe_b64encode(key).decode("ascii").rstrip("=") != text:
        raise LinkError("link: the key (after '#') is not canonical base64url")
    return key


def parse_link(text: object) -> ShareLink:
    """Parse a share link strictly.

    Raises:
        LinkError: the text is not a well-formed p2pshare link. The message
            never echoes the key.
    """
    if not isinstance(text, str):
        raise LinkError("link: not a string")
    text = text.strip()
    if len(text) > MAX_LINK_LEN:
        raise LinkError(f"link: longer than {MAX_LINK_LEN} characters")
    if not text.startswith(SCHEME):
        raise LinkError("link: does not start with p2pshare://")
    if not text.isascii() or not text.isprintable() or " " in text:
        raise LinkError("link: contains characters a link cannot have")
    rest = text[len(SCHEME) :]
    if rest.startswith(LIVE_PREFIX):
        raise LinkError("link: a live link (it names a pointer, not a snapshot)")
    key: bytes | None = None
    wrapped: str | None = None
    ticket: bytes | None = None
    if "#" in rest:
        rest, frag = rest.split("#", 1)
        if "~" in frag:
            frag, ticket_text = frag.split("~", 1)
            try:
                ticket = Ticket.from_text(ticket_text).to_bytes()
            except FormatError as exc:
                raise LinkError(
                    f"link: the part after '~' is not a ticket ({exc})"
                ) from None
        if is_wrapped(frag):
            wrapped = frag
        else:
            key = _parse_key(frag)
    values: list[str] = []
    if "?" in rest:  # the earlier form: ?peer=<maddr>&peer=<maddr>
        rest, query = rest.split("?", 1)
        for part in query.split("&"):
            name, sep, value = part.partition("=")
            if name != "peer" or not sep or not value:
                raise LinkError(
                    "link: the only query parameter allowed is peer=<multiaddr>"
                )
            values.append(value)
    elif "/" in rest:  # hints after the root: /<maddr>,/<maddr>
        rest, sep, hints = rest.partition("/")
        values = [("/" + v if i == 0 else v) for i, v in enumerate(hints.split(","))]
        if not all(v.startswith("/") and len(v) > 1 for v in values):
            raise LinkError("link: peer hints must be multiaddrs separated by ','")
    root_id = cid_to_root(rest)
    peers: list[str] = []
    for value in values:
        try:
            peers.append(unquote(value, errors="strict"))
        except UnicodeDecodeError as exc:
            raise LinkError("link: a peer hint is badly percent-encoded") from exc
    return ShareLink(
        root_id=root_id, key=key, peers=tuple(peers), wrapped=wrapped, ticket=ticket
    )


def parse_root_or_link(text: object) -> ShareLink:
    """Accept either a bare root id (CIDv1 text) or a share link."""
    if isinstance(text, str) and text.strip().startswith(SCHEME):
        return parse_link(text)
    if not isinstance(text, str):
        raise LinkError("root id: not a string")
    return ShareLink(root_id=cid_to_root(text.strip()))


def _hint_text(peers: tuple[str, ...]) -> str:
    return ",".join(quote(p, safe=_HINT_SAFE).replace("~", "%7E") for p in peers)


@dataclass(frozen=True, slots=True)
class LiveLink:
    """A parsed live link: the pointer's public key, the read key (None for
    a link without its fragment) and peer hints."""

    pub: bytes
    read_key: bytes | None = field(default=None)
    peers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_parts(
            ("live link: the pointer key", self.pub),
            ("live link: the read key", self.read_key),
        )
        _check_peers(self.peers)

    @property
    def name(self) -> str:
        """``live.<pub as base32>``: the pointer's printable name."""
        return LIVE_PREFIX + base64.b32encode(self.pub).decode().rstrip("=").lower()

    def public(self) -> str:
        """The link without its read key: safe to log or publish."""
        text = SCHEME + self.name
        return text + _hint_text(self.peers)

    def __str__(self) -> str:
        """The full link, read key included. Only for showing to the user."""
        if self.read_key is None:
            return self.public()
        key = base64.urlsafe_b64encode(self.read_key).decode("ascii").rstrip("=")
        return f"{self.public()}#{key}"

    def __repr__(self) -> str:
        redacted = "<key>" if self.read_key is not None else "None"
        return f"LiveLink({self.name[:17]}…, key={redacted}, peers={len(self.peers)})"


def _parse_pub(text: str) -> bytes:
    body = text[len(LIVE_PREFIX) :]
    if len(body) != _PUB_TEXT_LEN or not body.isalnum() or body != body.lower():
        raise LinkError("live link: the pointer key is not 52 base32 characters")
    try:
        pub = base64.b32decode(body.upper() + "====")
    except (binascii.Error, ValueError) as exc:
        raise LinkError("live link: the pointer key is not valid base32") from exc
    if base64.b32encode(pub).decode().rstrip("=").lower() != body:
        raise LinkError("live link: the pointer key is not canonical base32")
    return pub


def parse_any_link(text: object) -> ShareLink | LiveLink:
    """Parse a snapshot link or a live link strictly.

    Raises:
        LinkError: neither (the message never echoes a key).
    """
    if not isinstance(text, str):
        raise LinkError("link: not a string")
    stripped = text.strip()
    if not stripped.startswith(SCHEME + LIVE_PREFIX):
        return parse_link(stripped)
    # the same shape with the pointer in place of the root: reuse the parser
    name, sep, after = stripped[len(SCHEME) :].partition("/")
    if "#" in name and not sep:
        name, _, frag = name.partition("#")
        after = "#" + frag
    elif sep:
        after = "/" + after
    pub = _parse_pub(name)
    template = parse_link(SCHEME + root_to_cid(bytes(32)) + after)
    return LiveLink(pub=pub, read_key=template.key, peers=template.peers)


def require_key(link: ShareLink | LiveLink) -> None:
    """A command that reads the share needs the link's secret: the key of
    a snapshot link, the read key of a live one.

    Raises:
        AccessDenied: the link has none (exit 5).
    """
    key = link.read_key if isinstance(link, LiveLink) else link.key
    if key is None:
        raise AccessDenied("link: it carries no key (the part after '#')")
