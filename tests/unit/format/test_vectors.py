"""Known-answer vectors for format version 1 (tests/data/vectors/v1.json).

Every value is recomputed here from the inputs stored in the JSON, with the
public format API, and compared byte for byte: any change to key derivation,
chunk sealing, meta sealing, envelope encoding, CID text, folder listings or
link text fails these tests. The JSON is written by ``scripts/gen-vectors``;
regenerate it only when the format version changes on purpose.
"""

import functools
import hashlib
import json
import runpy
from pathlib import Path

import multihash
import pytest
from cid import make_cid

from p2pshare.format.chunks import Geometry, block_id, open_chunk, seal_chunk
from p2pshare.format.cid import cid_to_root, root_to_cid
from p2pshare.format.envelope import (
    FORMAT_VERSION,
    Envelope,
    Meta,
    build_envelope,
    open_meta,
    seal_meta,
)
from p2pshare.format.folder import Entry, decode_listing, encode_listing
from p2pshare.format.keys import FileKeys
from p2pshare.format.links import ShareLink, parse_link, parse_root_or_link

ROOT = Path(__file__).resolve().parents[3]
VECTORS_PATH = ROOT / "tests" / "data" / "vectors" / "v1.json"
GENERATOR = ROOT / "scripts" / "gen-vectors"
VECTORS = json.loads(VECTORS_PATH.read_text())
FILES = VECTORS["files"]
FOLDER = VECTORS["folder"]
LINKS = VECTORS["links"]
by_name = pytest.mark.parametrize("vec", FILES, ids=[f["name"] for f in FILES])
TINY = [f for f in FILES if "ciphertexts" in f]  # small enough to store in full


def h(text):
    return bytes.fromhex(text)


def fixed_rng(nonce):
    def rng(n):
        assert n == len(nonce)
        return nonce

    return rng


def plaintext(pattern, size):
    return (pattern * (size // len(pattern) + 1))[:size]


@functools.cache
def recompute_chunks(name):
    """(geometry, padded plaintexts, ciphertexts) of the vector ``name``."""
    vec = next(f for f in FILES if f["name"] == name)
    inp = vec["inputs"]
    keys = FileKeys.from_key(h(inp["file_key"]))
    geo = Geometry(inp["size"], inp["chunk_size"])
    plain = plaintext(h(inp["pattern"]), inp["size"])
    padded, ciphers = [], []
    for i in range(geo.count):
        chunk = plain[geo.offset(i) : geo.offset(i) + geo.plain_len(i)]
        chunk += bytes(geo.padded_len(i) - len(chunk))
        padded.append(chunk)
        ciphers.append(seal_chunk(keys.chunk, i, geo.count, chunk))
    return geo, padded, ciphers


def test_vector_file_is_format_version_1():
    assert VECTORS["format_version"] == FORMAT_VERSION == 1
    names = {f["name"] for f in FILES}
    assert {"empty", "one-byte", "chunk-minus-1", "chunk", "chunk-plus-1"} <= names
    # The big vectors exercise index blocks, one of them across two blocks.
    assert max(f["count"] for f in FILES) > 8192
    assert any(len(f["index_block_ids"]) == 2 for f in FILES)


def test_vector_file_is_what_the_generator_writes():
    gen = runpy.run_path(str(GENERATOR), run_name="gen_vectors")
    assert gen["render"](gen["build"]()) == VECTORS_PATH.read_text()


@by_name
def test_subkeys_and_access_key(vec):
    keys = FileKeys.from_key(h(vec["inputs"]["file_key"]))
    want = vec["subkeys"]
    assert keys.chunk == h(want["chunk"])
    assert keys.meta == h(want["meta"])
    assert keys.access_seed == h(want["access_seed"])
    assert keys.access_public == h(want["access_public"])
    # No key is used for two purposes.
    assert len({keys.chunk, keys.meta, keys.access_seed}) == 3


@by_name
def test_chunks(vec):
    geo, _, ciphers = recompute_chunks(vec["name"])
    ids = [block_id(c) for c in ciphers]
    assert geo.count == vec["count"] == len(ciphers)
    assert geo.tail_padded == vec["tail"]
    assert block_id(b"".join(ids)) == h(vec["chunk_ids_hash"])
    assert ids[0] == h(vec["first_chunk_id"])
    assert ids[-1] == h(vec["last_chunk_id"])
    if "chunk_ids" in vec:
        assert [i.hex() for i in ids] == vec["chunk_ids"]
    assert [geo.cipher_len(i) for i in range(geo.count)] == [len(c) for c in ciphers]


@pytest.mark.parametrize("vec", TINY, ids=[f["name"] for f in TINY])
def test_stored_ciphertexts_open(vec):
    _, padded, ciphers = recompute_chunks(vec["name"])
    assert [c.hex() for c in ciphers] == vec["ciphertexts"]
    keys = FileKeys.from_key(h(vec["inputs"]["file_key"]))
    opened = [
        open_chunk(keys.chunk, i, vec["count"], h(c))
        for i, c in enumerate(vec["ciphertexts"])
    ]
    assert opened == padded
    size = vec["inputs"]["size"]
    assert b"".join(opened)[:size] == plaintext(h(vec["inputs"]["pattern"]), size)


@by_name
def test_sealed_meta(vec):
    inp = vec["inputs"]
    keys = FileKeys.from_key(h(inp["file_key"]))
    meta = Meta(**inp["meta"])
    sealed = seal_meta(keys.meta, meta, rng=fixed_rng(h(inp["meta_nonce"])))
    assert sealed.hex() == vec["sealed_meta"]
    assert sealed[:24] == h(inp["meta_nonce"])
    assert open_meta(keys.meta, sealed) == meta


@by_name
def test_envelope_root_and_cid(vec):
    geo, _, ciphers = recompute_chunks(vec["name"])
    keys = FileKeys.from_key(h(vec["inputs"]["file_key"]))
    env, blocks = build_envelope(
        chunk_size=geo.chunk_size,
        tail=geo.tail_padded,
        chunk_ids=[block_id(c) for c in ciphers],
        sealed_meta=h(vec["sealed_meta"]),
        access_public=keys.access_public,
    )
    data = env.encode()
    assert data.hex() == vec["envelope"]
    assert [block_id(b).hex() for b in blocks] == vec["index_block_ids"]
    assert env.root_id == hashlib.blake2b(data, digest_size=32).digest()
    assert env.root_id.hex() == vec["root_id"]
    assert root_to_cid(env.root_id) == vec["cid"]
    assert cid_to_root(vec["cid"]) == env.root_id
    # Decoding the stored bytes gives the same envelope back, and re-encodes
    # to the same bytes.
    decoded = Envelope.verify_and_decode(h(vec["root_id"]), h(vec["envelope"]))
    assert decoded == env
    assert decoded.encode() == data
    assert decoded.padded_size == (geo.count - 1) * geo.chunk_size + geo.tail_padded
    for j, block in enumerate(blocks):
        decoded.check_index_block(j, block)


def test_folder_listing():
    inp = FOLDER["inputs"]
    entries = [
        Entry(
            name=e["name"],
            kind=e["kind"],
            size=e["size"],
            mtime_ns=e["mtime_ns"],
            root=h(e["root"]),
            key=h(e["key"]),
        )
        for e in inp["entries"]
    ]
    listing = encode_listing(entries)
    assert listing.hex() == FOLDER["listing"]
    assert decode_listing(listing) == sorted(entries, key=lambda e: e.name)
    # The file entries point at the file vectors.
    roots = {f["root_id"] for f in FILES}
    assert sum(e["root"] in roots for e in inp["entries"]) == 2


def test_folder_share():
    inp = FOLDER["inputs"]
    keys = FileKeys.from_key(h(inp["file_key"]))
    listing = h(FOLDER["listing"])
    geo = Geometry(len(listing), inp["chunk_size"])
    padded = listing + bytes(geo.tail_padded - len(listing))
    cipher = seal_chunk(keys.chunk, 0, geo.count, padded)
    assert cipher.hex() == FOLDER["ciphertext"]
    meta = Meta(**inp["meta"])
    assert meta.kind == "folder"
    sealed = seal_meta(keys.meta, meta, rng=fixed_rng(h(inp["meta_nonce"])))
    assert sealed.hex() == FOLDER["sealed_meta"]
    env, blocks = build_envelope(
        chunk_size=geo.chunk_size,
        tail=geo.tail_padded,
        chunk_ids=[block_id(cipher)],
        sealed_meta=sealed,
        access_public=keys.access_public,
    )
    assert blocks == []
    assert env.encode().hex() == FOLDER["envelope"]
    assert env.root_id.hex() == FOLDER["root_id"]
    assert root_to_cid(env.root_id) == FOLDER["cid"]
    # And the reader's way back: envelope -> meta -> chunk -> listing.
    got = Envelope.verify_and_decode(h(FOLDER["root_id"]), h(FOLDER["envelope"]))
    assert open_meta(keys.meta, got.sealed_meta) == meta
    opened = open_chunk(keys.chunk, 0, got.count, h(FOLDER["ciphertext"]))
    assert opened[: meta.size] == listing
    assert not any(opened[meta.size :])


@pytest.mark.parametrize("vec", LINKS, ids=[v["label"] for v in LINKS])
def test_links(vec):
    key = None if vec["key"] is None else h(vec["key"])
    link = ShareLink(root_id=h(vec["root_id"]), key=key, peers=tuple(vec["peers"]))
    assert str(link) == vec["text"]
    assert link.public() == vec["public"]
    assert parse_link(vec["text"]) == link
    assert parse_link(vec["legacy_text"]) == link  # links sent before still work
    assert parse_root_or_link(vec["text"]) == link
    assert parse_link(vec["public"]) == ShareLink(
        root_id=link.root_id, peers=link.peers
    )


def test_links_point_at_vector_roots():
    roots = {f["root_id"] for f in FILES} | {FOLDER["root_id"]}
    assert all(v["root_id"] in roots for v in LINKS)
    assert any(v["key"] is not None and v["peers"] for v in LINKS)


ALL_CIDS = [(f["root_id"], f["cid"]) for f in FILES] + [
    (FOLDER["root_id"], FOLDER["cid"])
]


@pytest.mark.parametrize(("root_hex", "text"), ALL_CIDS)
def test_cid_text_agrees_with_py_cid(root_hex, text):
    parsed = make_cid(text)
    assert parsed.version == 1
    assert parsed.codec == "raw"
    mh = multihash.decode(parsed.multihash)
    assert mh.name == "blake2b-256"
    assert mh.code == 0xB220
    assert mh.length == 32
    assert mh.digest == h(root_hex)
    # And the other way: py-cid writes the same text for the same root.
    built = make_cid(1, "raw", multihash.encode(h(root_hex), "blake2b-256"))
    assert built.encode("base32").decode("ascii") == text
