"""The home lock, background spawn, stop helpers and daemon logging.

Real files and real processes. Nothing sleeps to wait: a subprocess says when
it holds the lock on its stdout, a spawned child says it is ready by creating
a file, and every wait has a deadline.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import re
import selectors
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from p2pshare import daemon
from p2pshare.control.process import (
    NodeStartFailed,
    spawn_background,
    terminate,
    wait_for_exit,
)
from p2pshare.daemon import (
    SYSTEMD_UNIT,
    HomeLock,
    NodeAlreadyRunning,
    Owner,
    read_owner,
)
from p2pshare.errors import ConfigError, ControlError, UsageError
from p2pshare.logs import (
    LOG_BACKUP_COUNT,
    LOG_MAX_BYTES,
    logs_dir,
    setup_daemon_logging,
)

DEADLINE_S = 30.0

HOLDER = """
import sys
from pathlib import Path
from p2pshare.daemon import HomeLock

lock = HomeLock(Path(sys.argv[1]), control_socket="ctl.sock")
lock.acquire()
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin (or kills us)
lock.release()
print("released", flush=True)
"""

# Says where its stdin comes from, then becomes ready by creating argv[1].
READY_CHILD = """
import os, signal, sys
from pathlib import Path

print("stdin is devnull:", os.path.samestat(os.fstat(0), os.stat(os.devnull)))
print("to stderr", file=sys.stderr, flush=True)
sys.stdout.flush()
Path(sys.argv[1]).write_text(str(os.getpid()))
signal.pause()
"""

FAILING_CHILD = """
import sys
for i in range(30):
    print(f"line {i}", file=sys.stderr)
sys.exit(3)
"""

NEVER_READY_CHILD = """
import signal
signal.pause()
"""

STUBBORN_CHILD = """
import signal, sys
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)
Path(sys.argv[1]).write_text("ready")
signal.pause()
"""


def _readline(proc: subprocess.Popen[bytes], timeout_s: float = DEADLINE_S) -> str:
    """One stdout line of ``proc``, or fail once the deadline passes."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                pytest.fail(f"no line from pid {proc.pid} within {timeout_s} s")
            chunk = os.read(fd, 1)
            if not chunk:
                pytest.fail(f"pid {proc.pid} exited: {proc.wait()}")
            buf += chunk
    return buf.decode().strip()


@contextmanager
def lock_holder(home: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess holding ``home``'s lock (released when its stdin closes)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert _readline(proc) == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(DEADLINE_S)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def children() -> Iterator[list[int]]:
    """Pids to make sure of at the end (killed and reaped if still there)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not wait_for_exit(pid, 0):
            terminate(pid, grace_s=0)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- the home lock -------------------------------------------------------------
def test_lock_records_owner_in_a_private_file(home: Path) -> None:
    old_umask = os.umask(0)  # the 0600 must not depend on the umask
    try:
        lock = HomeLock(home, control_socket=str(home / "control.sock"))
        owner = lock.acquire()
    finally:
        os.umask(old_umask)
    try:
        path = home / "node.lock"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() == owner.pid
        assert record["control_socket"] == str(home / "control.sock")
        assert owner.started_at.tzinfo is not None
        assert read_owner(home) == owner
    finally:
        lock.release()
    assert lock.locked is False
    assert path.exists() and path.read_bytes() == b""  # emptied, never unlinked
    assert read_owner(home) is None


def test_lock_tightens_a_loose_existing_file(home: Path) -> None:
    path = home / "node.lock"
    path.write_text("")
    path.chmod(0o644)
    with HomeLock(home):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_flock_conflicts_between_two_opens_in_one_process(home: Path) -> None:
    # flock belongs to the open file description, not the process: this is
    # what makes a second HomeLock in the same process conflict.
    path = home / "f"
    path.write_text("")
    a = os.open(path, os.O_RDONLY)
    b = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(a)
        os.close(b)


def test_second_lock_in_same_process_is_refused(home: Path) -> None:
    with HomeLock(home) as first:
        second = HomeLock(home)
        with pytest.raises(NodeAlreadyRunning) as info:
            second.acquire()
        assert not second.locked
        assert f"(pid {os.getpid()}, since " in str(info.value)
        assert info.value.owner == first.owner
        with pytest.raises(RuntimeError, match="already held"):
            first.acquire()
    with HomeLock(home):  # released on exit: free again
        pass


def test_lock_held_by_another_process_is_refused_naming_it(home: Path) -> None:
    with lock_holder(home) as holder:
        with pytest.raises(NodeAlreadyRunning) as info:
            HomeLock(home).acquire()
        err = info.value
        assert isinstance(err, UsageError)
        assert (err.code, err.exit_code) == ("node_running", 2)
        message = str(err)
        assert message.startswith(f"{home}: a node is already running for this home")
        assert f"(pid {holder.pid}, since " in message
        assert message.endswith("stop it with `p2pshare stop`")
        assert err.owner is not None
        assert err.owner.control_socket == "ctl.sock"

        owner = read_owner(home)
        assert owner is not None and owner.pid == holder.pid
        with pytest.raises(NodeAlreadyRunning, match=f"pid {holder.pid}"):
            HomeLock.check_free(home)

        # a clean release empties the record and frees the lock
        assert holder.stdin is not None
        holder.stdin.close()
        assert _readline(holder) == "released"
        assert holder.wait(DEADLINE_S) == 0
    assert (home / "node.lock").read_bytes() == b""
    HomeLock.check_free(home)
    with HomeLock(home) as lock:
        assert lock.owner is not None and lock.owner.pid == os.getpid()


def test_killed_holder_leaves_a_stale_file_that_is_recovered(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with lock_holder(home) as holder:
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(DEADLINE_S) == -signal.SIGKILL
    # the kernel dropped the lock; the file still names the dead holder
    assert json.loads((home / "node.lock").read_text())["pid"] == holder.pid

    caplog.set_level(logging.DEBUG, logger="p2pshare.daemon")
    assert read_owner(home) is None
    assert "stale owner record" in caplog.text
    HomeLock.check_free(home)

    with HomeLock(home, control_socket="new.sock") as lock:
        record = json.loads((home / "node.lock").read_text())
        assert record["pid"] == os.getpid()
        assert record["control_socket"] == "new.sock"
        assert read_owner(home) == lock.owner


def test_lock_held_without_a_record_is_refused_as_unknown(
    home: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # someone holds the flock but never wrote a record (or cannot be read)
    monkeypatch.setattr(daemon, "RECORD_WAIT_S", 0.05)
    fd = os.open(home / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(NodeAlreadyRunning, match=r"\(pid unknown\)"):
            HomeLock(home).acquire()
        with pytest.raises(NodeAlreadyRunning, match=r"\(pid unknown\)"):
            HomeLock.check_free(home)
        assert read_owner(home) is None
        assert "held but names no owner" in caplog.text
    finally:
        os.close(fd)


def test_acquire_waits_out_a_probe(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A probe (read_owner in another process) holds a shared lock for an
    # instant; a node starting right then must not give up.
    (home / "node.lock").write_text("")
    probe = os.open(home / "node.lock", os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH)
    naps: list[float] = []

    def nap(seconds: float) -> None:
        if not naps:
            os.close(probe)  # the probe ends while acquire() waits
        naps.append(seconds)

    monkeypatch.setattr(time, "sleep", nap)  # the module daemon.py naps with
    with HomeLock(home) as lock:
        assert lock.owner is not None
    assert len(naps) == 1


def test_lock_in_a_missing_home_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open"):
        HomeLock(tmp_path / "nope").acquire()
    assert read_owner(tmp_path / "nope") is None


@pytest.mark.parametrize(
    ("data", "pid"),
    [
        (b'{"pid": 7, "started_at": "2026-01-02T03:04:05+00:00"}', 7),
        # the tail of an older, longer record not truncated yet
        (b'{"pid": 7, "started_at": "2026-01-02T03:04:05+00:00"}\nld": 1}\n', 7),
        (b"", None),
        (b"garbage", None),
        (b'{"pid": true, "started_at": "2026-01-02T03:04:05+00:00"}', None),
        (b'{"pid": -1, "started_at": "2026-01-02T03:04:05+00:00"}', None),
        (b'{"pid": 7}', None),
        (b'{"pid": 7, "started_at": "yesterday"}', None),
        (b'{"pid": 7, "started_at": "2026-01-02", "control_socket": 3}', None),
        (b"[1, 2]", None),
        (b"\xff\xfe", None),
    ],
)
def test_owner_record_parsing(data: bytes, pid: int | None) -> None:
    owner = Owner.from_json(data)
    assert (owner.pid if owner else None) == pid
    if owner is not None:
        assert Owner.from_json(owner.to_json()) == owner


# -- spawning and stopping -------------------------------------------------------
def test_spawn_background_returns_a_ready_detached_child(
    home: Path, children: list[int]
) -> None:
    flag = home / "ready"
    log_path = home / "logs" / "stdout.log"
    # an inheritable pipe the child must not keep (a harness would wait on it)
    r, w = os.pipe()
    os.set_inheritable(w, True)
    w_open = True
    try:
        pid = spawn_background(
            home,
            [sys.executable, "-c", READY_CHILD, str(flag)],
            log_path=log_path,
            ready=flag.exists,
            timeout_s=DEADLINE_S,
        )
        children.append(pid)
        os.close(w)
        w_open = False
        os.set_blocking(r, False)
        assert os.read(r, 1) == b""  # EOF: no writer left, the child has none
    finally:
        os.close(r)
        if w_open:
            os.close(w)

    assert flag.read_text() == str(pid)
    assert os.getsid(pid) == pid != os.getsid(0)  # a session of its own
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_path.parent.stat().st_mode) == 0o700
    log_text = log_path.read_text()
    assert "stdin is devnull: True" in log_text
    assert "to stderr" in log_text

    assert not wait_for_exit(pid, 0)
    assert terminate(pid)
    assert _gone(pid)  # reaped, not a zombie


def test_spawn_background_reports_an_early_exit_with_the_log_tail(
    home: Path, children: list[int]
) -> None:
    log_path = logs_dir(home) / "stdout.log"
    log_path.write_text("output of an older run\n")
    with pytest.raises(NodeStartFailed) as info:
        spawn_background(
            home,
            [sys.executable, "-c", FAILING_CHILD],
            log_path=log_path,
            ready=lambda: False,
            timeout_s=DEADLINE_S,
        )
    err = info.value
    assert issubclass(NodeStartFailed, ControlError)
    assert err.code == "node_start_failed"
    assert err.pid is not None
    children.append(err.pid)
    assert err.returncode == 3
    assert err.log_path == log_path
    assert err.log_tail.splitlines() == [f"line {i}" for i in range(10, 30)]
    message = str(err)
    assert f"background node (pid {err.pid}): exited with status 3" in message
    assert "line 29" in message and "line 9\n" not in message
    assert "older run" not in message
    assert "older run" in log_path.read_text()  # appended to, not truncated
    assert _gone(err.pid)


def test_spawn_background_stops_a_child_that_never_gets_ready(
    home: Path, children: list[int]
) -> None:
    started = time.monotonic()
    with pytest.raises(NodeStartFailed, match=r"not ready within 0\.3 s") as info:
        spawn_background(
            home,
            [sys.executable, "-c", NEVER_READY_CHILD],
            log_path=logs_dir(home) / "stdout.log",
            ready=lambda: False,
            timeout_s=0.3,
        )
    assert time.monotonic() - started < DEADLINE_S
    pid = info.value.pid
    assert pid is not None
    children.append(pid)
    assert info.value.returncode is None
    assert "it wrote nothing to" in str(info.value)
    assert _gone(pid)


def test_spawn_background_stops_the_child_if_ready_raises(
    home: Path, children: list[int]
) -> None:
    flag = home / "ready"

    def ready() -> bool:
        if flag.exists():
            children.append(int(flag.read_text()))
            raise RuntimeError("boom")
        return False

    with pytest.raises(RuntimeError, match="boom"):
        spawn_background(
            home,
            [sys.executable, "-c", READY_CHILD, str(flag)],
            log_path=logs_dir(home) / "stdout.log",
            ready=ready,
            timeout_s=DEADLINE_S,
        )
    assert _gone(children[0])


def test_spawn_background_reports_a_missing_program(home: Path) -> None:
    with pytest.raises(NodeStartFailed, match="cannot start") as info:
        spawn_background(
            home,
            [str(home / "no-such-program")],
            log_path=logs_dir(home) / "stdout.log",
            ready=lambda: True,
            timeout_s=DEADLINE_S,
        )
    assert info.value.pid is None


def test_terminate_escalates_to_sigkill(
    home: Path, children: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    flag = home / "ready"
    pid = spawn_background(
        home,
        [sys.executable, "-c", STUBBORN_CHILD, str(flag)],
        log_path=logs_dir(home) / "stdout.log",
        ready=flag.exists,
        timeout_s=DEADLINE_S,
    )
    children.append(pid)
    assert terminate(pid, grace_s=0.2)
    assert "outlived SIGTERM" in caplog.text
    assert _gone(pid)
    assert terminate(pid)  # already gone: nothing to do


def test_wait_for_exit_watches_a_process_that_is_not_our_child() -> None:
    spawner = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()'],"
        " start_new_session=True, stdin=subprocess.DEVNULL,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(p.pid)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", spawner],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=True,
    )
    pid = int(res.stdout)
    try:
        assert not wait_for_exit(pid, 0)
        assert not wait_for_exit(pid, 0.1)
    finally:
        os.kill(pid, signal.SIGKILL)
    # adopted by init (or a subreaper); a zombie nobody reaps counts as gone
    assert wait_for_exit(pid, DEADLINE_S)


@pytest.mark.parametrize("pid", [0, -1])
def test_process_helpers_refuse_group_pids(pid: int) -> None:
    with pytest.raises(ValueError, match="not a process id"):
        wait_for_exit(pid, 0)
    with pytest.raises(ValueError, match="not a process id"):
        terminate(pid)


# -- logs ------------------------------------------------------------------------
@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_logs_dir_is_private(home: Path, tmp_path: Path) -> None:
    (home / "logs").mkdir(mode=0o755)
    (home / "logs").chmod(0o755)
    assert logs_dir(home) == home / "logs"
    assert stat.S_IMODE((home / "logs").stat().st_mode) == 0o700
    with pytest.raises(ConfigError, match="cannot create"):
        logs_dir(tmp_path / "missing")


def test_setup_daemon_logging_writes_a_private_rotating_file(
    home: Path, root_logger: logging.Logger
) -> None:
    old_umask = os.umask(0o022)
    try:
        path = setup_daemon_logging(home)
    finally:
        os.umask(old_umask)
    assert path == home / "logs" / "node.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert root_logger.level == logging.INFO

    logger = logging.getLogger("p2pshare.test_daemon")
    logger.info("hello %s", "world")
    logger.debug("not at INFO")
    (handler,) = [
        h for h in root_logger.handlers if getattr(h, "baseFilename", None) == str(path)
    ]
    handler.flush()
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d INFO "
        rf"p2pshare\.test_daemon\[{os.getpid()}\]: hello world",
        lines[0],
    ), lines[0]

    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    assert (handler.maxBytes, handler.backupCount) == (LOG_MAX_BYTES, LOG_BACKUP_COUNT)
    assert (LOG_MAX_BYTES, LOG_BACKUP_COUNT) == (5 << 20, 3)
    handler.doRollover()
    logger.info("after rollover")
    handler.flush()
    backup = path.with_name("node.log.1")
    assert "hello world" in backup.read_text()
    assert "after rollover" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600

    # again, with debug: the handler is replaced, not doubled
    setup_daemon_logging(home, debug=True)
    ours = [
        h for h in root_logger.handlers if getattr(h, "baseFilename", "") == str(path)
    ]
    assert len(ours) == 1 and ours[0] is not handler
    assert root_logger.level == logging.DEBUG
    logger.debug("now at DEBUG")
    ours[0].flush()
    assert "DEBUG p2pshare.test_daemon" in path.read_text()


def test_systemd_unit() -> None:
    lines = SYSTEMD_UNIT.splitlines()
    assert "ExecStart=%h/.local/bin/p2pshare node" in lines
    assert "Restart=on-failure" in lines
    assert "WantedBy=default.target" in lines
    assert "systemctl --user enable --now p2pshare" in SYSTEMD_UNIT
    sections = [line for line in lines if line.startswith("[")]
    assert sections == ["[Unit]", "[Service]", "[Install]"]
