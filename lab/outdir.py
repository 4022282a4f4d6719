"""The output folder's housekeeping: one lab process per --out (a lock), temp names the lab can prove are its
own, and the removal of what killed runs left behind.

    with lock_out(Path("report")):            # LabError when another run holds it
        clean_leftovers(Path("report"))       # only names this lab recorded in its journal before creating them
    fd, tmp = make_temp_file(folder, ".index.html.", ".tmp")   # O_EXCL | O_NOFOLLOW, journalled, umask applies

The lock is ``OUT/.lock`` held with flock(2): the kernel drops it when its holder exits, however it exits, so a
killed run never leaves a stale lock (its file may stay behind; the next holder removes it when done). It is
opened without following a symbolic link and refused when it is not a plain file of its own (a link, a FIFO, a
hard link to a file elsewhere): the lab never truncates a file it did not make.

Every temp file or folder the lab makes in a folder gets a random name that is first appended to that folder's
journal (``.lab-temp``), then created exclusively. Clean-up removes only names found in the journal (and of the
journal's naming scheme): a user's file that merely looks like a leftover is never touched, and clean-up runs
only once the lock is held.
"""

from __future__ import annotations

import contextlib
import hashlib
import errno
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Iterator

from lab.errors import LabError

try:  # POSIX; elsewhere runs are not serialised (atomic writes still keep every file whole)
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms the lab runs on
    fcntl = None

LOCK_NAME = ".lock"
JOURNAL_NAME = ".lab-temp"  # per folder: the temp names the lab made there, one per line
_RANDOM = re.compile(r"[0-9a-f]{16}")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_JOURNAL_LIMIT = 1 << 20  # a journal is a few lines; anything larger is not ours to parse


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows; os.umask round trip elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _symlink_error(path: Path) -> LabError:
    return LabError(f"{path} is a symbolic link where the lab writes its own file; the lab never writes through a "
                    "link it did not make: remove the link (or use another --out) and rerun")


# --- the journal of temp names -------------------------------------------------------------------------------

def _journal_append(folder: Path, name: str) -> None:
    """Record ``name`` before it is created: only recorded names are ever removed as leftovers."""
    path = Path(folder) / JOURNAL_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink_error(path) from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise LabError(f"{path} is not the lab's journal (not a plain file of its own); move it away and rerun")
        data = f"{name}\n".encode()
        if os.write(fd, data) != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


def _journal_names(folder: Path) -> list[str]:
    path = Path(folder) / JOURNAL_NAME
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return []  # none, a link, unreadable: nothing we can prove is ours
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > _JOURNAL_LIMIT:
            return []  # not a journal this lab wrote: nothing in it is proof of anything
        text = os.read(fd, _JOURNAL_LIMIT).decode("utf-8", "replace")
    except OSError:
        return []
    finally:
        os.close(fd)
    return [n for n in text.splitlines() if n and "/" not in n and n not in (".", "..") and _RANDOM.search(n)]


def _new_name(prefix: str, suffix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}{suffix}"


def make_temp_file(folder: Path, prefix: str, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new file ``folder/<prefix><16 hex><suffix>``: journalled, then created with O_EXCL | O_NOFOLLOW and mode
    0666 minus the umask (like any file the user makes). Returns (fd open for writing, path)."""
    folder = Path(folder)
    while True:
        name = _new_name(prefix, suffix)
        _journal_append(folder, name)
        path = folder / name
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666), path
        except FileExistsError:
            continue  # astronomically unlikely; the name was never ours to remove, so it is simply skipped
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None


def make_temp_dir(folder: Path, prefix: str) -> Path:
    """A new folder ``folder/<prefix><16 hex>``, journalled before it is made (mode 0777 minus the umask)."""
    folder = Path(folder)
    while True:
        path = folder / _new_name(prefix, "")
        _journal_append(folder, path.name)
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue


def clean_temp_files(folder: Path) -> list[Path]:
    """Remove what the journal of ``folder`` lists (leftovers of killed runs), then empty the journal. The caller
    holds the folder's lock, so no name in it is in use. A symbolic link at such a name is removed itself, never
    followed."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        if not folder.is_dir() or folder.is_symlink():
            return removed
    except OSError:
        return removed
    names = _journal_names(folder)
    for name in dict.fromkeys(names):
        path = folder / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        try:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    journal = folder / JOURNAL_NAME
    try:
        if journal.is_file() and not journal.is_symlink():
            journal.unlink()  # every name in it is gone or was never made; a fresh journal starts with the next
    except OSError:
        pass
    return removed


def clean_leftovers(out: Path) -> list[Path]:
    """Remove journalled temp files and staging folders that killed runs left in OUT and OUT/data (hold the lock)."""
    out = Path(out)
    removed = clean_temp_files(out) + clean_temp_files(out / "data")
    weights = out / "data" / "weights"  # per-experiment folders of saved weights (lab.runner.save_artifacts)
    try:
        parts = sorted(p for p in weights.iterdir() if p.is_dir() and not p.is_symlink()) \
            if weights.is_dir() and not weights.is_symlink() else []
    except OSError:
        parts = []
    for folder in parts:
        removed += clean_temp_files(folder)
    return removed


# --- the lock ------------------------------------------------------------------------------------------------

def _open_lock(path: Path) -> int:
    """Open the lock file without following a link; refuse anything but a plain file with one name."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink_error(path) from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "a hard link to another file" if stat.S_ISREG(st.st_mode) else "not a plain file"
        raise LabError(f"{path} is {what} where the lab keeps its lock; move it away and rerun")
    return fd


def _acquire(path: Path, blocking: bool) -> int | None:
    """Open and flock ``path``; None when another process holds it (non-blocking only). The holder removes the
    file when it is done, so after locking we check that the path still names the file we locked: a process that
    opened it just before it was removed would otherwise hold a lock nobody else can see."""
    while True:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # it was removed (or replaced) while we waited: lock the file that is there now


def _release(path: Path, fd: int) -> None:
    """Remove the lock file while still holding the lock (nobody else can be inside), then let go; only the file
    we locked is removed, never whatever may have been put in its place."""
    try:
        if os.path.samestat(os.fstat(fd), os.lstat(path)):
            Path(path).unlink()
    except OSError:
        pass  # gone already, or a read-only folder after all: the flock is released on close either way
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
        holder = "unknown"
        with contextlib.suppress(OSError, LabError):
            rfd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
            try:
                holder = os.read(rfd, 32).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(rfd)
        if not holder.isdigit():
            holder = "unknown"
        raise LabError(f"another lab run is using {out} (pid {holder}); wait for it to finish or use another --out")
    try:
        try:
            os.ftruncate(fd, 0)
            data = f"{os.getpid()}\n".encode()
            if os.pwrite(fd, data, 0) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:  # a full disk or quota: name the lock file, not just the reason
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        yield
    finally:
        with contextlib.suppress(OSError, LabError):
            clean_leftovers(out)  # what this run left (a failed write's temp file), and the journals themselves
        _release(path, fd)


def refuse_non_file(path: Path, what: str) -> None:
    """Before any work: a folder (or FIFO, or a link) where ``what`` will be written would only fail at the end."""
    path = Path(path)
    if path.is_symlink():
        raise _symlink_error(path)
    if path.exists() and not path.is_file():
        raise LabError(f"{path} is not a file (a folder?) where {what} belongs; move it away and rerun")


def refuse_links(out: Path, names: tuple[str, ...] = ("data",)) -> None:
    """Folders the lab writes into inside OUT must be OUT's own, not links to somewhere else."""
    for name in names:
        path = Path(out) / name
        if path.is_symlink():
            raise _symlink_error(path)


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


__all__ = ["JOURNAL_NAME", "LOCK_NAME", "clean_leftovers", "clean_temp_files", "current_umask", "folder_lock",
           "lock_out", "make_temp_dir", "make_temp_file", "refuse_links", "refuse_non_file"]


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks (MNIST's md5 checks, the saved weights' sha256)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
