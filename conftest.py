"""Root pytest configuration: options shared by checks/, tests/ and benchmarks/.

    pytest checks --checks-json report/data/checks.json --lab-device cpu
"""

import os

# Tests must not depend on a terminal or a display; keep numbers reproducible across runs.
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser):
    group = parser.getgroup("lab")
    group.addoption("--checks-json", default=None, help="write the gate's CheckResults to this JSON file")
    group.addoption("--lab-device", default="cpu", help="device for the gate checks: auto, cpu or cuda [default: cpu]")
    group.addoption("--bench-device", default="cpu", help="device for the benchmarks: cpu or cuda [default: cpu]")
