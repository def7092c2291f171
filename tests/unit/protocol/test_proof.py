"""Access proofs bind key, root, both peer ids and the challenge."""

from __future__ import annotations

import pytest
from nacl.exceptions import BadSignatureError

from p2pshare.errors import AccessDenied
from p2pshare.format.keys import FileKeys
from p2pshare.protocol.proof import (
    PROOF_TAG,
    make_proof,
    proof_message,
    verify_proof,
)

from .pairs import CHALLENGE, CLIENT_PEER, SERVER_PEER

KEYS = FileKeys.from_key(bytes(range(32)))
OTHER_KEYS = FileKeys.from_key(bytes(range(1, 33)))
ROOT = bytes(range(200, 232))
ARGS = (ROOT, CLIENT_PEER, SERVER_PEER, CHALLENGE)


def test_message_layout() -> None:
    message = proof_message(ROOT, b"cc", b"sss", CHALLENGE)
    assert message == (
        b"p2pshare/xfer/1/proof\x00" + ROOT + b"\x00\x02cc" + b"\x00\x03sss" + CHALLENGE
    )
    assert message.startswith(PROOF_TAG)


def test_peer_ids_are_length_prefixed_so_the_encoding_is_injective() -> None:
    assert proof_message(ROOT, b"ab", b"c", CHALLENGE) != proof_message(
        ROOT, b"a", b"bc", CHALLENGE
    )


def test_valid_proof_verifies() -> None:
    proof = make_proof(KEYS.signing_key, *ARGS)
    assert len(proof) == 64
    verify_proof(KEYS.access_public, proof, *ARGS)


@pytest.mark.parametrize(
    "verify_args",
    [
        pytest.param(
            (ROOT[::-1], CLIENT_PEER, SERVER_PEER, CHALLENGE), id="other-root"
        ),
        pytest.param((ROOT, SERVER_PEER, CLIENT_PEER, CHALLENGE), id="swapped-peers"),
        pytest.param((ROOT, b"mallory", SERVER_PEER, CHALLENGE), id="other-client"),
        pytest.param((ROOT, CLIENT_PEER, b"relay", CHALLENGE), id="other-server"),
        pytest.param((ROOT, CLIENT_PEER, SERVER_PEER, bytes(32)), id="other-challenge"),
    ],
)
def test_proof_is_bound_to_its_context(verify_args: tuple[bytes, ...]) -> None:
    proof = make_proof(KEYS.signing_key, *ARGS)
    with pytest.raises(AccessDenied) as info:
        verify_proof(KEYS.access_public, proof, *verify_args)
    assert isinstance(info.value.__cause__, BadSignatureError)


def test_proof_by_another_key_is_denied() -> None:
    proof = make_proof(OTHER_KEYS.signing_key, *ARGS)
    with pytest.raises(AccessDenied):
        verify_proof(KEYS.access_public, proof, *ARGS)


@pytest.mark.parametrize("proof", [b"", bytes(63), bytes(64), bytes(65)])
def test_malformed_proof_is_denied(proof: bytes) -> None:
    with pytest.raises(AccessDenied):
        verify_proof(KEYS.access_public, proof, *ARGS)


@pytest.mark.parametrize(
    "args",
    [
        (ROOT[:31], CLIENT_PEER, SERVER_PEER, CHALLENGE),
        (ROOT, b"", SERVER_PEER, CHALLENGE),
        (ROOT, CLIENT_PEER, bytes(257), CHALLENGE),
        (ROOT, CLIENT_PEER, SERVER_PEER, CHALLENGE + b"x"),
    ],
)
def test_bad_local_arguments_are_value_errors(args: tuple[bytes, ...]) -> None:
    with pytest.raises(ValueError, match="bytes"):
        proof_message(*args)


def test_malformed_access_key_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="bytes"):
        verify_proof(bytes(31), bytes(64), *ARGS)
