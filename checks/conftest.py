"""The gate as pytest: collects every CheckResult and, with --checks-json, records them for the report.

    pytest checks --checks-json report/data/checks.json
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab.context import resolve_device
from lab.errors import LabError

_COLLECTED: list = []
_START = time.perf_counter()


@pytest.fixture(scope="session")
def device(request):
    try:
        return resolve_device(request.config.getoption("--lab-device"))
    except LabError as exc:
        pytest.exit(f"error: {exc}", returncode=2)


@pytest.fixture(scope="session")
def record():
    """Tests hand their CheckResult here so the whole checklist can be written once at the end."""
    return _COLLECTED.append


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--checks-json")
    if not path or not _COLLECTED:
        return
    from lab.gate import GATE
    from lab.results import provenance, save_checks

    # Keep the gate's order, whatever order pytest ran the tests in.
    order = {name: i for i, name in enumerate(GATE)}
    checks = [c for _, c in sorted(_COLLECTED, key=lambda kc: order.get(kc[0], len(order)))]
    save_checks(checks, Path(path), **provenance(seed=0, profile="default",
                                                 device=str(resolve_device(session.config.getoption("--lab-device"))),
                                                 wall_time_s=time.perf_counter() - _START))
