"""Fixtures shared by tests/: one quick end-to-end render per session (report, browser, reliability tests),
and the real-MNIST guard of the tests that read the real files.

    def test_something(rendered): html = (rendered / "index.html").read_text()
    def test_on_mnist(real_mnist): ...
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab.__main__ import main


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Path:
    """Gate, quick run of every part on CPU, render: the whole pipeline once (about a minute), shared.

    Session scope because the run is the slow part; tests that modify the folder copy it first.
    """
    out = tmp_path_factory.mktemp("report")
    assert main(["check", "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    assert main(["run", "all", "--profile", "quick", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    assert main(["report", "--out", str(out)]) == 0
    return out


def real_mnist_or_skip() -> None:
    """Skip only where MNIST is neither present nor reachable through MNIST_MIRROR; a damaged copy fails."""
    from lab.data import MIRROR_ENV, MNIST_MD5, ensure_mnist, mnist_raw_folder

    raw = mnist_raw_folder()
    if not all((raw / name).is_file() for name in MNIST_MD5) and not os.environ.get(MIRROR_ENV):
        pytest.skip(f"MNIST is not under {raw} and {MIRROR_ENV} is unset")
    ensure_mnist()  # a damaged file or a bad mirror fails the test, it is not skipped


@pytest.fixture(scope="session")
def real_mnist() -> None:
    """Request it in tests that need the real MNIST files: skips or fails them as real_mnist_or_skip says."""
    real_mnist_or_skip()
