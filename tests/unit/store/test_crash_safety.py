"""The crash-safety core of the store, with a fault at every write step.

``add``, the rebuild of a share (``get --offline``, the same walk a network
``get`` drives) and partial files each run once to count their write steps
(``pwrite``, ``write``, ``fsync``, ``ftruncate``, ``rename``, ``link``,
``replace`` and catalog transactions); then, for every step k, a fresh home
runs the operation again in a forked child with the k-th step failing: by
an ``OSError`` (a full disk, an I/O error: every handler runs, the child
then exits), or by a kill at that point (``os._exit``: no handler, no
``finally``, locks dropped by the kernel). After each, the home is reopened
and must hold: no share listed that does not rebuild byte-exact, no file
under a destination name that is not complete and verified, and the same
operation run again succeeds (resuming what it can), after which ``gc``
finds nothing any share still needs and leaves nothing unreferenced.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pshare.config import Home
from p2pshare.format import ShareLink
from p2pshare.store import LocalStore, add_path, get_offline
from p2pshare.store.gc import collect
from p2pshare.store.schema import Tables

CS = 4096
KILLED = 137
WRITE_CALLS = ("pwrite", "write", "fsync", "ftruncate", "rename", "link", "replace")


class Crash(BaseException):
    """A kill at a write step (the child exits on the spot)."""


class Faults:
    """Counts write steps; makes step ``fail_at`` raise ``error``."""

    def __init__(self, fail_at: int | None = None, error: type[BaseException] = Crash):
        self.count = 0
        self.fail_at = fail_at
        self.error = error

    def step(self, what: str) -> None:
        self.count += 1
        if self.count == self.fail_at:
            if self.error is OSError:
                raise OSError(5, f"injected I/O error at {what}")
            os._exit(KILLED)  # a kill: nothing below this line runs


@contextlib.contextmanager
def injected(
    monkeypatch: pytest.MonkeyPatch, faults: Faults, home: Path
) -> Iterator[None]:
    """Route the write calls (on files of ``home`` and the output) and
    catalog transactions through ``faults``."""
    with monkeypatch.context() as m:
        for name in WRITE_CALLS:
            real = getattr(os, name)

            def wrapper(
                *args: Any,
                _real: Callable[..., Any] = real,
                _n: str = name,
                **kwargs: Any,
            ) -> Any:
                faults.step(_n)
                return _real(*args, **kwargs)

            m.setattr(os, name, wrapper)
        real_tx = Tables.transaction

        @contextlib.contextmanager
        def transaction(self: Tables) -> Iterator[Any]:
            faults.step("transaction")
            with real_tx(self) as db:
                yield db

        m.setattr(Tables, "transaction", transaction)
        yield


def in_child(fn: Callable[[], None]) -> int:
    """Run ``fn`` in a forked child; its exit status (0: it returned)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            fn()
        except BaseException:
            code = 1
        os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _tree(root: Path) -> None:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.bin").write_bytes(os.urandom(3 * CS + 11))
    (root / "b.txt").write_bytes(b"hello " * 100)
    (root / "empty").write_bytes(b"")


def _snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _check_home(home: Home, src: Path, out: Path) -> None:
    """Every listed share rebuilds byte-exact; gc leaves only what is needed."""
    with LocalStore(home) as store:
        for row in store.catalog.top_shares():
            assert row.key is not None
            dest = out / row.root.hex()
            got = get_offline(store, ShareLink(root_id=row.root, key=row.key), dest)
            assert _snapshot(got.path) == _snapshot(src) or (
                got.path.read_bytes() == src.read_bytes()
            )
        collect(store)
        referenced = {
            bytes(b).hex()
            for (b,) in store.catalog._db.execute(
                "SELECT DISTINCT block FROM share_blocks"
            )
        }
        assert {p.name for p, _bid in store.blocks.ids()} <= referenced
        assert list(store.blocks.tmp.iterdir()) == []


def _count(
    run: Callable[[Faults], None], monkeypatch: pytest.MonkeyPatch, home: Path
) -> int:
    faults = Faults()
    with injected(monkeypatch, faults, home):
        run(faults)
    assert faults.count > 3, "the operation must have write steps to test"
    return faults.count


@pytest.mark.parametrize("error", [Crash, OSError], ids=["crash", "oserror"])
@pytest.mark.parametrize("copy", [True, False], ids=["copy", "ref"])
def test_add_survives_a_fault_at_every_write_step(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    copy: bool,
    error: type[BaseException],
) -> None:
    src = tmp_path / "src"
    _tree(src)

    def add(home: Home) -> None:
        with LocalStore(home) as store:
            add_path(store, src, copy=copy, chunk_size=CS)

    steps = _count(
        lambda _f: add(Home(tmp_path / "count")), monkeypatch, tmp_path / "count"
    )
    for k in range(1, steps + 1):
        home = Home(tmp_path / f"h{k}")
        with injected(monkeypatch, Faults(k, error), home.path):
            # (0: the run took fewer steps: time-based checkpoints vary)
            assert in_child(functools.partial(add, home)) in (0, 1, KILLED)
        _check_home(home, src, tmp_path / f"o{k}")
        add(home)  # the same add again succeeds
        _check_home(home, src, tmp_path / f"p{k}")


@pytest.mark.parametrize("error", [Crash, OSError], ids=["crash", "oserror"])
def test_rebuild_survives_a_fault_at_every_write_step_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    src = tmp_path / "src"
    _tree(src)
    home = Home(tmp_path / "home")
    with LocalStore(home) as store:
        added = add_path(store, src, copy=True, chunk_size=CS)
    link = ShareLink(root_id=added.root, key=added.key)

    def get(out: Path) -> None:
        with LocalStore(home) as store:
            get_offline(store, link, out)

    steps = _count(lambda _f: get(tmp_path / "count"), monkeypatch, home.path)
    for k in range(1, steps + 1):
        out = tmp_path / f"out{k}"
        with injected(monkeypatch, Faults(k, error), home.path):
            assert in_child(functools.partial(get, out)) in (0, 1, KILLED)
        dest = out / "src"
        if dest.exists():  # placed: only ever complete and verified
            assert _snapshot(dest) == _snapshot(src)
        else:
            get(out)  # resumes what was verified before the fault
            assert _snapshot(dest) == _snapshot(src)
        assert not [p for p in out.iterdir() if p.name != "src"], "partial left"
    with LocalStore(home) as store:
        assert store.catalog.downloads() == []  # every partial was finished


def test_a_partial_file_never_claims_an_unsynced_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash at each step of writing a file: the bitmap never names a
    chunk whose bytes are not durably in the partial file."""
    from p2pshare.format import Geometry
    from p2pshare.store.catalog import Catalog
    from p2pshare.store.partial import PartialFile

    geo = Geometry(6 * CS + 3, CS)
    data = [bytes([i + 1]) * geo.padded_len(i) for i in range(geo.count)]

    def write_all(db: Path, dest: Path) -> None:
        part = PartialFile(Catalog(db), b"r" * 32, dest, geo)
        try:
            for i in part.missing():
                part.write(i, data[i])
                if i % 2:
                    part.checkpoint()
            part.finish(0)
        finally:
            part.close()

    steps = _count(
        lambda _f: write_all(tmp_path / "c.db", tmp_path / "c"), monkeypatch, tmp_path
    )
    for k in range(1, steps + 1):
        db, dest = tmp_path / f"{k}.db", tmp_path / f"k{k}" / "f"
        dest.parent.mkdir()
        with injected(monkeypatch, Faults(k), tmp_path):
            assert in_child(functools.partial(write_all, db, dest)) in (0, KILLED)
        for row in Catalog(db).downloads():
            if not Path(row.partial).exists():  # died after placing the file
                assert dest.exists(), f"step {k}: a download lost its file"
                continue
            raw = Path(row.partial).read_bytes()
            for i in range(geo.count):
                if row.bitmap[i >> 3] >> (i & 7) & 1:
                    off = geo.offset(i)
                    assert (
                        raw[off : off + geo.plain_len(i)] == data[i][: geo.plain_len(i)]
                    ), f"step {k}: chunk {i} claimed but not written"
        if not dest.exists():
            write_all(db, dest)  # resumes
        want = b"".join(data[i][: geo.plain_len(i)] for i in range(geo.count))
        assert dest.read_bytes() == want
