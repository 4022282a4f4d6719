"""Every documented Makefile target exists and expands (make -n); make help lists them all."""

import re
import subprocess

import pytest

from lab import PROJECT_ROOT

MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
DOCUMENTED = re.findall(r"^([a-zA-Z_-]+):.*## ", MAKEFILE, flags=re.M)


def make(*args):
    return subprocess.run(["make", "--no-print-directory", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=60)


def test_help_lists_every_documented_target():
    out = make("help")
    assert out.returncode == 0
    for target in DOCUMENTED:
        assert re.search(rf"^\s+{target}\s", out.stdout, flags=re.M), target
    assert {"report", "test", "check", "bench", "clean", "help"} <= set(DOCUMENTED)


@pytest.mark.parametrize("target", DOCUMENTED)
def test_target_expands(target):
    out = make("-n", target, "PROFILE=quick", "OUT=/tmp/lab-make-n")
    assert out.returncode == 0, out.stderr


def test_report_runs_the_gate_before_experiments_and_rendering():
    lines = make("-n", "-W", "pyproject.toml", "report", "PROFILE=quick").stdout.splitlines()
    joined = "\n".join(lines)
    assert joined.index("pytest checks") < joined.index("lab run all") < joined.index("lab report")
