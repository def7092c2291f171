"""Folder listings and name safety (p2pshare/format/folder.py, names.py).

Malicious listings are built by packing raw dicts with ``canonical.pack``,
bypassing ``Entry`` validation, as a hostile sharer would.
"""

import msgpack
import pytest

from p2pshare.errors import FolderListingError, FormatError
from p2pshare.format import canonical
from p2pshare.format.folder import Entry, decode_listing, encode_listing
from p2pshare.format.names import MAX_NAME_BYTES, check_name


def entry(name="a.txt", **kwargs):
    fields = {
        "name": name,
        "kind": "file",
        "size": 10,
        "mtime_ns": 1_700_000_000_000_000_000,
        "root": bytes(range(32)),
        "key": bytes(range(32, 64)),
        **kwargs,
    }
    return Entry(**fields)


def raw_entry(name="a.txt", **kwargs):
    return {
        "name": name,
        "kind": "file",
        "size": 10,
        "mtime_ns": 1_700_000_000_000_000_000,
        "root": bytes(range(32)),
        "key": bytes(range(32, 64)),
        **kwargs,
    }


def listing(*entries, **top):
    return canonical.pack({"v": 1, "entries": list(entries), **top})


GOOD = raw_entry("good.txt")


# -- round trip -------------------------------------------------------------------


def test_round_trip():
    entries = [
        entry("notes.md", size=0),
        entry("Fotos \u00e9t\u00e9 2024", kind="folder", size=123_456),
        entry("\U0001f600.png", mtime_ns=-1),
        entry(".hidden"),
        entry("..."),  # three dots is an ordinary name
        entry("a" * MAX_NAME_BYTES, size=2**63 - 1),
        entry("\u00e9" * 127),  # 254 UTF-8 bytes
    ]
    data = encode_listing(entries)
    decoded = decode_listing(data)
    assert decoded == sorted(entries, key=lambda e: e.name)
    assert encode_listing(decoded) == data
    # The order given does not matter.
    assert encode_listing(reversed(entries)) == data


def test_empty_listing():
    data = encode_listing([])
    assert data == listing()
    assert decode_listing(data) == []


def test_listing_bytes_are_the_canonical_raw_form():
    e = entry()
    assert encode_listing([e]) == listing(raw_entry())


def test_encode_rejects_duplicate_names():
    with pytest.raises(FolderListingError, match="duplicate name"):
        encode_listing([entry("x"), entry("y"), entry("x", size=3)])


def test_entry_repr_hides_name_and_key():
    e = entry("secret-plans.pdf")
    text = repr(e)
    assert "secret" not in text
    assert e.key.hex() not in text
    assert repr(e.key) not in text
    assert text == "Entry(kind=file, size=10)"


# -- malicious names ----------------------------------------------------------------

BAD_NAMES = {
    "dotdot": ("..", "'..' is not allowed"),
    "dot": (".", "'.' is not allowed"),
    "empty": ("", "empty"),
    "absolute": ("/etc/passwd", "path separator"),
    "traversal": ("a/../../b", "path separator"),
    "slash-only": ("/", "path separator"),
    "trailing-slash": ("dir/", "path separator"),
    "backslash": ("a\\b", "path separator"),
    "windows-traversal": ("..\\..\\win.ini", "path separator"),
    "nul": ("a\x00b", "NUL"),
    "newline": ("a\nb", "control character"),
    "escape": ("\x1b[31mred", "control character"),
    "del": ("a\x7f", "control character"),
    "c1-nel": ("a\x85b", "control character"),
    "c1-csi": ("\x9b2J", "control character"),
    "tab": ("\t", "control character"),
    "10000-chars": ("x" * 10_000, "longer than 255 bytes"),
    "256-bytes": ("\u00e9" * 128, "longer than 255 bytes"),
}


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_malicious_name_rejected(name, problem):
    data = listing(GOOD, raw_entry(name))
    with pytest.raises(FolderListingError, match="entry 1") as info:
        decode_listing(data)
    message = str(info.value)
    assert problem in message
    assert message.startswith("folder listing: entry 1: entry name: ")


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_malicious_name_rejected_everywhere(name, problem):
    with pytest.raises(FolderListingError, match=problem):
        check_name(name)
    with pytest.raises(FolderListingError, match=problem):
        entry(name)


def test_lone_surrogate():
    # A lone surrogate has no UTF-8 form: canonical msgpack cannot even
    # carry one, so a listing that smuggles in its UTF-8-like bytes is
    # malformed as a whole ...
    with pytest.raises(FormatError, match="not valid UTF-8"):
        listing(raw_entry("a\ud800"))
    name = "a\ud800".encode("utf-8", "surrogatepass")
    data = msgpack.packb({"entries": [raw_entry("x")], "v": 1}, use_bin_type=True)
    data = data.replace(b"\xa1x", bytes([0xA0 | len(name)]) + name)
    with pytest.raises(FormatError, match="malformed"):
        decode_listing(data)
    # ... and a name from anywhere else is refused by name.
    with pytest.raises(FolderListingError, match="not valid UTF-8"):
        check_name("a\ud800")
    with pytest.raises(FolderListingError, match="not valid UTF-8"):
        entry("\udcff")


def test_names_at_the_limit_pass():
    assert check_name("a" * MAX_NAME_BYTES) == "a" * MAX_NAME_BYTES
    assert check_name("\u00a0x") == "\u00a0x"  # first character after C1
    assert check_name(" x ") == " x "
    with pytest.raises(FolderListingError, match="longer"):
        check_name("a" * (MAX_NAME_BYTES + 1))


def test_check_name_says_what_it_checked():
    with pytest.raises(FolderListingError, match=r"^share name: empty$"):
        check_name("", what="share name")
    with pytest.raises(FolderListingError, match="not a string"):
        check_name(b"a")


def test_duplicate_names_rejected():
    data = listing(raw_entry("x"), raw_entry("y"), raw_entry("x", size=3))
    with pytest.raises(FolderListingError, match="entry 2: duplicate name"):
        decode_listing(data)


# -- wrong fields and types ------------------------------------------------------------

WRONG_TYPES = [
    ("name", 5),
    ("name", b"a.txt"),
    ("name", None),
    ("name", ["a"]),
    ("kind", None),
    ("kind", 1),
    ("kind", b"file"),
    ("size", "10"),
    ("size", None),
    ("size", True),
    ("size", b"\x0a"),
    ("mtime_ns", False),
    ("mtime_ns", "0"),
    ("root", bytes(range(32)).hex()),
    ("root", None),
    ("root", list(range(32))),
    ("key", "k" * 32),
    ("key", 0),
    ("key", None),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
def test_wrong_field_type(field, value):
    data = listing(GOOD, {**raw_entry("b"), field: value})
    with pytest.raises(
        FolderListingError, match=f"entry 1: {field} has the wrong type"
    ):
        decode_listing(data)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"kind": "symlink"}, "unknown kind"),
        ({"kind": "File"}, "unknown kind"),
        ({"kind": ""}, "unknown kind"),
        ({"size": -1}, "size or mtime out of range"),
        ({"size": 2**63}, "size or mtime out of range"),
        ({"mtime_ns": 2**63}, "size or mtime out of range"),
        ({"root": bytes(31)}, "bad root id or key length"),
        ({"root": bytes(33)}, "bad root id or key length"),
        ({"key": b""}, "bad root id or key length"),
        ({"key": bytes(64)}, "bad root id or key length"),
    ],
)
def test_bad_field_value(changes, problem):
    data = listing(raw_entry("b", **changes))
    with pytest.raises(FolderListingError, match=f"entry 0: entry: {problem}"):
        decode_listing(data)


@pytest.mark.parametrize(
    "item",
    [
        {**GOOD, "extra": 1},
        {**GOOD, "link": "../../etc"},
        {k: v for k, v in GOOD.items() if k != "key"},
        {k: v for k, v in GOOD.items() if k != "name"},
        {},
        [GOOD["name"], GOOD["root"]],
        "good.txt",
        None,
        7,
    ],
    ids=[
        "extra",
        "extra-link",
        "no-key",
        "no-name",
        "empty-map",
        "list",
        "str",
        "nil",
        "int",
    ],
)
def test_extra_missing_or_wrong_shape_fields(item):
    with pytest.raises(FolderListingError, match="entry 1: wrong fields"):
        decode_listing(listing(GOOD, item))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (canonical.pack([GOOD]), "wrong fields"),
        (canonical.pack({"entries": [GOOD]}), "wrong fields"),
        (canonical.pack({"v": 1}), "wrong fields"),
        (listing(GOOD, extra=1), "wrong fields"),
        (canonical.pack({"v": 2, "entries": [GOOD]}), "unsupported version"),
        (canonical.pack({"v": 0, "entries": []}), "unsupported version"),
        (canonical.pack({"v": True, "entries": []}), "unsupported version"),
        (canonical.pack({"v": "1", "entries": []}), "unsupported version"),
        (canonical.pack({"v": 1, "entries": GOOD}), "not a list"),
        (canonical.pack({"v": 1, "entries": None}), "not a list"),
        (msgpack.packb({"v": 1, "entries": []}), "not in canonical form"),
        (listing(GOOD) + b"\x00", "malformed"),
        (listing(GOOD)[:-1], "malformed"),
        (b"", "malformed"),
    ],
)
def test_malformed_listing(data, problem):
    with pytest.raises(FormatError, match=problem):
        decode_listing(data)


def test_listing_errors_are_format_errors():
    with pytest.raises(FormatError) as info:
        decode_listing(listing(raw_entry("..")))
    assert isinstance(info.value, FolderListingError)
    assert info.value.code == "bad_listing"
    assert info.value.exit_code == 4


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("plain.txt", "plain.txt"),
        ("café ☕.txt", "café ☕.txt"),
        ("invoice\u202efdp.exe", "invoice\\u202efdp.exe"),  # right-to-left override
        ("a\u200bb", "a\\u200bb"),  # zero-width space
        ("x\u2066y\u2069", "x\\u2066y\\u2069"),  # isolates
        ("bom\ufeff", "bom\\ufeff"),
        ("line\u2028sep", "line\\u2028sep"),
    ],
)
def test_display_name_escapes_invisible_and_reordering_characters(
    name: str, shown: str
) -> None:
    from p2pshare.format.names import display_name

    assert check_name(name) == name  # legal in a listing...
    assert display_name(name) == shown  # ...but never shown raw
