"""Print the rendered report to PDF through headless Chromium: OUT/index.html -> OUT/report.pdf. Never renders.

    path = print_pdf(Path("report"))   # or: python -m lab pdf --out report, make pdf

Course submissions are often PDF; the browser's print engine gives the same layout as the HTML, with the
report's @media print rules. The PDF is written to a temporary file beside the target and renamed into
place, so an earlier report.pdf survives a failed print.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lab.errors import LabError
from lab.outdir import current_umask, make_temp_file

# Tried in order; CHROMIUM=/path/to/binary overrides (a Chrome install, a non-standard location).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# The network is closed here and on CI: nothing may try to reach it (first-run pages, component and
# safe-browsing updates, sync, QUIC probes). --no-sandbox because CI runs as root, where Chromium's
# sandbox refuses to start; the page is our own file, not untrusted content.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
)

PRINT_TIMEOUT_S = 120  # a self-contained page prints in about a second; a hang should not block make forever


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None when none is installed."""
    override = os.environ.get("CHROMIUM")
    if override:
        return shutil.which(override)
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _profile_base() -> str:
    """Where Chromium's throw-away profile goes: $TMPDIR when set (refused with its name when unusable, never a
    silent fallback elsewhere), else the system's temp folder."""
    return os.environ.get("TMPDIR") or tempfile.gettempdir()


def _make_profile() -> Path:
    base = _profile_base()
    try:
        return Path(tempfile.mkdtemp(prefix="lab-chromium-", dir=base))
    except OSError as exc:
        raise LabError(f"cannot create Chromium's profile folder in {base} (TMPDIR): {exc.strerror or exc}; set "
                       "TMPDIR to a writable folder (or unset it) and rerun") from None


def _remove_profile(profile: Path) -> None:
    """Chromium's helper processes may still be writing for a moment after it is killed: retry, never raise (a
    failed clean-up must not hide why we stopped, an interrupt above all)."""
    for _ in range(50):
        shutil.rmtree(profile, ignore_errors=True)
        if not os.path.lexists(profile):
            return
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    """Kill Chromium and every helper it started (its own session: one process group), then reap it."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc.kill()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc.wait(timeout=10)


def print_pdf(out: Path, timeout: float = PRINT_TIMEOUT_S) -> Path:
    """Print ``out/index.html`` to ``out/report.pdf`` and return its path."""
    out = Path(out)
    html = out / "index.html"
    if not html.is_file():
        raise LabError(f"no report at {html}: render it first (make report, or python -m lab report)")
    binary = find_chromium()
    if binary is None:
        raise LabError("Chromium not found: install it (apt-get install chromium) or set CHROMIUM=/path/to/chrome")
    target = out / "report.pdf"
    profile = _make_profile()  # a fresh profile each time: no state from an earlier run or the user's browser
    tmp = None
    try:
        fd, tmp = make_temp_file(out, ".report.pdf.", ".tmp")  # same folder: the rename is atomic
        os.close(fd)
        cmd = [binary, *HEADLESS_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--print-to-pdf={tmp}", html.resolve().as_uri()]
        # Its own session: Ctrl-C reaches us alone, and we stop Chromium with all its helpers before cleaning up.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise LabError(f"Chromium did not finish printing {html} within {timeout:.0f} s") from None
        except BaseException:
            _stop(proc)
            raise
        with open(tmp, "rb") as fh:
            printed = fh.read(5) == b"%PDF-"
        if proc.returncode != 0 or not printed:
            # Chromium logs harmless D-Bus noise on stderr; only its last line is likely to be the reason.
            last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "no message")
            raise LabError(f"Chromium failed to print {html} (exit {proc.returncode}): {last.strip()[:200]}")
        os.chmod(tmp, 0o666 & ~current_umask())  # the user's umask, like every file the lab writes
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
        _remove_profile(profile)
    return target


__all__ = ["CHROMIUM_NAMES", "HEADLESS_FLAGS", "find_chromium", "print_pdf"]
