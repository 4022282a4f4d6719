"""The output folder's housekeeping: one lab process per --out at a time (a lock), and leftovers of killed runs.

    with lock_out(Path("report")):      # LabError when another run holds it
        clean_leftovers(Path("report"))  # staging folders and temp files a killed run left behind

The lock is ``OUT/.lock`` held with flock(2): the kernel drops it when its holder exits, however it exits,
so a killed run never leaves a stale lock (its file may stay behind; the next holder removes it when done). Everything under OUT that a run writes goes through a temp name
(``.staging-*`` folders, ``.<name>.<8 chars>.tmp`` files) and is renamed into place, so whatever a killed run
left under such a name is garbage once we hold the lock: nobody else is writing there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from lab.errors import LabError

try:  # POSIX; elsewhere runs are not serialised (atomic writes still keep every file whole)
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms the lab runs on
    fcntl = None

LOCK_NAME = ".lock"
# tempfile.mkstemp(prefix=".<name>.", suffix=".tmp"): 8 characters from [a-z0-9_] between the two
_TMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_TMP_DIRS = (".staging-", ".old-figures-")  # tempfile.mkdtemp prefixes used by lab.report


def _acquire(path: Path, blocking: bool) -> int | None:
    """Open and flock ``path``; None when another process holds it (non-blocking only). The holder removes the
    file when it is done, so after locking we check that the path still names the file we locked: a process that
    opened it just before it was removed would otherwise hold a lock nobody else can see."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # it was removed (or replaced) while we waited: lock the file that is there now


def _release(path: Path, fd: int) -> None:
    """Remove the lock file while still holding the lock (nobody else can be inside), then let go."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        pass  # a read-only folder after all: the flock is released on close either way
    finally:
        os.close(fd)


@contextlib.contextmanager
def lock_out(out: Path) -> Iterator[None]:
    """Hold OUT/.lock for the duration; a second lab process on the same OUT gets a one-line LabError."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    path = out / LOCK_NAME
    fd = _acquire(path, blocking=False)
    if fd is None:
        try:
            holder = path.read_text(encoding="ascii", errors="replace").strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise LabError(f"another lab run is using {out} (pid {holder}); wait for it to finish or use another --out")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        _release(path, fd)


def refuse_non_file(path: Path, what: str) -> None:
    """Before any work: a folder (or FIFO...) where ``what`` will be written would only fail at the very end."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise LabError(f"{path} is not a file (a folder?) where {what} belongs; move it away and rerun")


def clean_leftovers(out: Path) -> list[Path]:
    """Remove staging folders and temp files that killed runs left under OUT and OUT/data (hold the lock)."""
    out = Path(out)
    removed: list[Path] = []
    if not out.is_dir():
        return removed
    for path in out.iterdir():
        if path.name.startswith(_TMP_DIRS) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    weights = out / "data" / "weights"  # per-experiment folders of saved weights (lab.runner.save_artifacts)
    parts = sorted(p for p in weights.iterdir() if p.is_dir() and not p.is_symlink()) if weights.is_dir() else []
    for folder in (out, out / "data", *parts):
        removed += clean_temp_files(folder)
    return removed


def clean_temp_files(folder: Path) -> list[Path]:
    """Remove mkstemp leftovers (``.<name>.<8 chars>.tmp``) in one folder; the caller holds its lock."""
    removed = []
    if Path(folder).is_dir():
        for path in Path(folder).iterdir():
            if _TMP_FILE.match(path.name) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Blocking flock on FOLDER/.lock: for shared folders (the MNIST copy) where waiting is the right answer."""
    if fcntl is None:
        yield
        return
    path = Path(folder) / LOCK_NAME
    fd = _acquire(path, blocking=True)
    try:
        yield
    finally:
        _release(path, fd)


__all__ = ["LOCK_NAME", "clean_leftovers", "clean_temp_files", "folder_lock", "lock_out", "refuse_non_file"]
