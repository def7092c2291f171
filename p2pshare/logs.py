"""The node's log files: ``<home>/logs/node.log``, rotating, 0600."""

from __future__ import annotations

import logging
import logging.handlers
import os
from datetime import datetime
from io import TextIOWrapper
from pathlib import Path

from p2pshare.config import open_private
from p2pshare.errors import ConfigError

__all__ = [
    "LOGS_DIR_NAME",
    "LOG_BACKUP_COUNT",
    "LOG_FILE_NAME",
    "LOG_FORMAT",
    "LOG_MAX_BYTES",
    "log_file_handler",
    "logs_dir",
    "setup_daemon_logging",
]

LOGS_DIR_NAME = "logs"
LOG_FILE_NAME = "node.log"
LOG_MAX_BYTES = 5 << 20
LOG_BACKUP_COUNT = 3


def logs_dir(home: Path) -> Path:
    """``<home>/logs``, created 0700 (a looser mode is tightened).

    Raises:
        ConfigError: it cannot be created (for instance, no such home).
    """
    path = Path(home) / LOGS_DIR_NAME
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            path.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create ({exc.strerror})") from exc
    return path


class _IsoFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        when = datetime.fromtimestamp(record.created).astimezone()
        return when.isoformat(timespec="milliseconds")


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating handler whose files (the current one after every rollover
    too) are created 0600: logs name peers and shares."""

    def _open(self) -> TextIOWrapper:
        fd = open_private(
            Path(self.baseFilename), os.O_WRONLY | os.O_APPEND | os.O_CREAT
        )
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def log_file_handler(home: Path) -> logging.FileHandler:
    """A handler writing to ``<home>/logs/node.log`` (rotating, 0600).

    Raises:
        ConfigError: the logs directory or file cannot be created.
    """
    path = logs_dir(home) / LOG_FILE_NAME
    handler = _PrivateRotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUP_COUNT, encoding="utf-8"
    )
    handler.setFormatter(_IsoFormatter(LOG_FORMAT))
    return handler


def setup_daemon_logging(home: Path, *, debug: bool = False) -> Path:
    """Send the root logger of a daemon to ``<home>/logs/node.log``.

    The file rotates at :data:`LOG_MAX_BYTES`, keeping
    :data:`LOG_BACKUP_COUNT` old files, all 0600; lines carry an ISO 8601
    time with the UTC offset. For ``cli.py`` only (library code never
    configures logging). Calling it again replaces the handler it added;
    other handlers of the root logger are left alone.

    Args:
        home: the node's home.
        debug: log DEBUG records too (default: INFO and up).

    Returns:
        The log file's path.

    Raises:
        ConfigError: the logs directory or file cannot be created.
    """
    handler = log_file_handler(home)
    path = Path(handler.baseFilename)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _PrivateRotatingFileHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    return path


# -- systemd -----------------------------------------------------------------------
