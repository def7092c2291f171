"""The node's identity: its Ed25519 key pair, kept in ``<home>/identity.key``.

The private key is the libp2p protobuf serialization of an Ed25519 key, the
format py-libp2p's own ``save_identity`` writes. A new key is written to a
temporary file created with mode 0600 (``O_EXCL``; never readable by others,
not even briefly), fsynced, and hard-linked into place, so a concurrent start
either wins or loads the winner's key. An existing key file readable by group
or others is refused, as ssh does: it may have leaked. The key is never
logged.

Everything here is blocking disk I/O with no trio: ``host.py`` calls
:func:`load_or_create_identity` through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.ed25519 import create_new_key_pair as create_ed25519_key_pair
from libp2p.crypto.keys import KeyPair, KeyType, PrivateKey
from libp2p.crypto.serialization import deserialize_private_key
from nacl.signing import SigningKey

from p2pshare.errors import ConfigError

__all__ = ["IDENTITY_FILE", "load_or_create_identity"]

logger = logging.getLogger(__name__)

IDENTITY_FILE: Final = "identity.key"
# A serialized Ed25519 private key is 68 bytes; anything near this is not one.
_IDENTITY_MAX_BYTES: Final = 4096


def load_or_create_identity(path: Path) -> KeyPair:
    """Load the node's Ed25519 key pair from ``path``, creating it if absent.

    Blocking (disk I/O): call it through ``trio.to_thread.run_sync``.

    Raises:
        ConfigError: the file is unreadable, readable by group/others, not a
            regular file, or does not hold an Ed25519 private key.
    """
    try:
        return _load_identity(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_identity(path)
        return _load_identity(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the node identity: {exc}") from exc


def _load_identity(path: Path) -> KeyPair:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path}: is a symbolic link; refusing it") from exc
        raise ConfigError(f"{path}: cannot read the node identity: {exc}") from exc
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise ConfigError(
                f"{path}: private key is accessible by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); "
                "if that is unexpected, assume it leaked and delete it, "
                "else run 'chmod 600' on it"
            )
        data = f.read(_IDENTITY_MAX_BYTES + 1)
    if len(data) > _IDENTITY_MAX_BYTES:
        raise ConfigError(f"{path}: too large to be a private key")
    try:
        private_key = deserialize_private_key(data)
    except Exception as exc:  # protobuf/cryptography raise assorted errors
        raise ConfigError(f"{path}: not a libp2p private key") from exc
    if private_key.get_type() != KeyType.Ed25519:
        raise ConfigError(f"{path}: not an Ed25519 key")
    return KeyPair(private_key, private_key.get_public_key())


def _create_identity(path: Path) -> None:
    """Write a new key next to ``path`` (0600 from birth), then link it in."""
    data = create_ed25519_key_pair().private_key.serialize()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = os.open(tmp, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            if os.name == "posix":
                os.fchmod(fd, 0o600)  # the umask may have cleared owner bits
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # a concurrent start won
            os.link(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("created a new node identity in %s", path)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def signing_key(private_key: PrivateKey) -> SigningKey:
    """The PyNaCl signing key inside a libp2p Ed25519 private key (to sign
    vouchers with the node's identity).

    Raises:
        ConfigError: the key is not Ed25519.
    """
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ConfigError("identity: not an Ed25519 key")
    impl = private_key.impl
    assert isinstance(impl, SigningKey)
    return impl
