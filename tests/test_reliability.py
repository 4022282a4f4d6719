"""Reliability: deterministic numbers, caching, atomic writes, and a run killed midway that resumes.

    pytest tests/test_reliability.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import PROJECT_ROOT
from lab.__main__ import main
from lab.context import RunContext
from lab.errors import LabError
from lab.results import SCHEMA_VERSION, load_result
from lab.runner import run_experiment

pytestmark = pytest.mark.slow


def numbers(path: Path) -> dict:
    """A results file without the parts that legitimately differ between runs (timings)."""
    raw = json.loads(path.read_text())
    raw.pop("provenance")
    return raw


def is_timing(key: str) -> bool:
    """Wall-clock measurements (and ratios of them) are the only numbers allowed to differ between runs."""
    return "time" in key or key.endswith("_s") or "seconds" in key or key == "pass_cost_ratio"


def strip_timings(obj):
    if isinstance(obj, dict):
        return {k: strip_timings(v) for k, v in obj.items() if not is_timing(k)}
    if isinstance(obj, list):
        return [strip_timings(v) for v in obj]
    return obj


def test_same_seed_same_numbers_and_one_part_alone_equals_the_whole(rendered, tmp_path):
    """The session's full quick run vs a second run of each part alone in a fresh folder."""
    for name in ("shallow_init", "deep_init", "dropout"):
        assert main(["run", name, "--profile", "quick", "--device", "cpu", "--out", str(tmp_path), "--quiet"]) == 0
        first = strip_timings(numbers(rendered / "data" / f"{name}.json"))
        second = strip_timings(numbers(tmp_path / "data" / f"{name}.json"))
        assert first == second, f"{name}: numbers differ between two runs with the same seed"


def test_a_different_seed_gives_different_numbers(tmp_path):
    ctx = RunContext(profile="quick", quiet=True)
    a, _ = run_experiment("deep_init", ctx=ctx, out=tmp_path / "a", seed=0)
    b, _ = run_experiment("deep_init", ctx=ctx, out=tmp_path / "b", seed=1)
    assert a.metrics["inits"]["he"]["mean_abs"] != b.metrics["inits"]["he"]["mean_abs"]


def test_cache_reuses_fresh_results_and_reruns_stale_ones(tmp_path):
    ctx = RunContext(profile="quick", quiet=True)
    first, cached = run_experiment("deep_init", ctx=ctx, out=tmp_path)
    assert not cached
    again, cached = run_experiment("deep_init", ctx=ctx, out=tmp_path)
    assert cached and again.provenance["cache_key"] == first.provenance["cache_key"]
    changed, cached = run_experiment("deep_init", ctx=ctx, out=tmp_path, overrides={"n_nets": 1})
    assert not cached and changed.config["n_nets"] == 1
    forced, cached = run_experiment("deep_init", ctx=ctx, out=tmp_path, overrides={"n_nets": 1}, force=True)
    assert not cached


def test_an_old_results_file_is_refused_with_a_clear_message_and_rerun(tmp_path, capsys):
    ctx = RunContext(profile="quick", quiet=True)
    run_experiment("deep_init", ctx=ctx, out=tmp_path)
    path = tmp_path / "data" / "deep_init.json"
    raw = json.loads(path.read_text())
    raw["schema"] = SCHEMA_VERSION - 1
    path.write_text(json.dumps(raw))
    with pytest.raises(LabError, match="incompatible"):
        load_result(path)
    _, cached = run_experiment("deep_init", ctx=ctx, out=tmp_path)  # a stale file is replaced, not trusted
    assert not cached and load_result(path).schema == SCHEMA_VERSION


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_killed_run_keeps_finished_results_and_the_previous_report_then_resumes(rendered, tmp_path, sig, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(rendered, out)
    for name in ("deep_init", "dropout"):
        (out / "data" / f"{name}.json").unlink()  # pretend only part 1 is done
    report_before = (out / "index.html").read_bytes()
    shallow_before = (out / "data" / "shallow_init.json").read_bytes()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab", "run", "all", "--profile", "quick", "--device", "cpu", "--out", str(out),
         "--quiet", "--set", "dropout.epochs=50"],  # long enough to be caught midway
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.time() + 240
    while not (out / "data" / "deep_init.json").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # now inside the dropout experiment
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert (out / "index.html").read_bytes() == report_before
    assert (out / "data" / "shallow_init.json").read_bytes() == shallow_before
    load_result(out / "data" / "deep_init.json")  # finished before the kill: complete and valid
    assert not (out / "data" / "dropout.json").exists()
    assert not list((out / "data").glob(".*.tmp"))
    # resume: finished parts are reused (cached), the interrupted one reruns
    assert main(["run", "shallow_init", "deep_init", "--profile", "quick", "--device", "cpu", "--out", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "shallow_init: cached" in printed and "deep_init: cached" in printed
