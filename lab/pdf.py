"""Print the rendered report to PDF through headless Chromium: OUT/index.html -> OUT/report.pdf. Never renders.

    path = print_pdf(Path("report"))   # or: python -m lab pdf --out report, make pdf

Course submissions are often PDF; the browser's print engine gives the same layout as the HTML, with the
report's @media print rules. The PDF is written to a temporary file beside the target and renamed into
place, so an earlier report.pdf survives a failed print.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lab.errors import LabError

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
    fd, tmp = tempfile.mkstemp(prefix=".report.pdf.", suffix=".tmp", dir=out)  # same folder: rename is atomic
    os.close(fd)
    try:
        # A fresh profile each time: no state from an earlier run or from the user's own browser.
        with tempfile.TemporaryDirectory(prefix="lab-chromium-") as profile:
            cmd = [binary, *HEADLESS_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
                   f"--print-to-pdf={tmp}", html.resolve().as_uri()]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise LabError(f"Chromium did not finish printing {html} within {timeout:.0f} s") from None
        with open(tmp, "rb") as fh:
            printed = fh.read(5) == b"%PDF-"
        if proc.returncode != 0 or not printed:
            # Chromium logs harmless D-Bus noise on stderr; only its last line is likely to be the reason.
            last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), "no message")
            raise LabError(f"Chromium failed to print {html} (exit {proc.returncode}): {last.strip()[:200]}")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


__all__ = ["CHROMIUM_NAMES", "HEADLESS_FLAGS", "find_chromium", "print_pdf"]
