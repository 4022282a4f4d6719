"""Fixtures shared by tests/: one quick end-to-end render per session (report, browser, reliability tests).

    def test_something(rendered): html = (rendered / "index.html").read_text()
"""

from __future__ import annotations

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
