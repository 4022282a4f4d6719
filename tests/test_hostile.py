"""Hostile but realistic use: every bad input is one line and exit 2, and nothing already written is lost.

    pytest tests/test_hostile.py

Each table case starts from a copy of the session's rendered quick report (tests/conftest.py `rendered`),
damages or locks it or passes an out-of-range value, runs one command, and asserts: the exit code, exactly
one stderr line starting with "error:" (no traceback), and that the report (index.html, report.md, figures)
and every results and checks file are byte-identical afterwards. The tests after the table cover what needs
a real run or a subprocess: the three serious cases of issue 10 (an interrupted gate, a fully diverged part,
an unreadable results file), signals at each stage, leftovers, warnings and the internal-error path.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import PROJECT_ROOT
from lab.__main__ import EXIT_INTERNAL, main
from lab.outdir import lock_out
from lab.report import load_gate
from lab.results import load_result

pytestmark = pytest.mark.slow  # the session's rendered report is the expensive part (shared)

# --------------------------------------------------------------------------------------------------------
# helpers


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of the report and its data (the lock file aside): what must survive a failed command."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != ".lock"}


def assert_unchanged(out: Path, before: dict[str, bytes]) -> None:
    after = snapshot(out)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"changed or lost: {changed}"


def one_error_line(code: int, err: str, expected_code: int = 2) -> str:
    assert code == expected_code, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture()
def out(rendered, tmp_path) -> Path:
    """A private copy of the session's rendered report (gate record, three results, index.html, figures)."""
    copy = tmp_path / "out"
    shutil.copytree(rendered, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))


def _edit(name: str, fn, sealed: bool = False):
    """Setup: rewrite OUT/data/<name> through fn(dict) -> object (``sealed``: with the digest the lab would stamp,
    as if the lab had written it so: the check under test is then not the digest)."""
    def setup(out: Path, tmp_path: Path, monkeypatch) -> None:
        path = out / "data" / name
        _write_json(path, _seal(fn(_json(path))) if sealed else fn(_json(path)))
    return setup


def _seal(raw):
    from lab.results import seal_record

    return seal_record(raw) if isinstance(raw, dict) else raw


def _replace(name: str, data: bytes | None):
    """Setup: OUT/data/<name> becomes these bytes (None: a folder)."""
    def setup(out: Path, tmp_path: Path, monkeypatch) -> None:
        path = out / "data" / name
        path.unlink()
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)
    return setup


def _nothing(out, tmp_path, monkeypatch) -> None:
    pass


def _del(key: str):
    def fn(d):
        d.pop(key)
        return d
    return fn


def _set(path: str, value):
    def fn(d):
        node = d
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
        return d
    return fn


def _raise_in(target: str, exc: BaseException):
    """Setup: monkeypatch the callable `module.attr` to raise exc."""
    module, attr = target.rsplit(".", 1)

    def setup(out: Path, tmp_path: Path, monkeypatch) -> None:
        import importlib

        def boom(*args, **kwargs):
            raise exc
        monkeypatch.setattr(importlib.import_module(module), attr, boom)
    return setup


def _file_as_out(out, tmp_path, monkeypatch) -> None:
    (tmp_path / "a-file").write_text("not a folder")


def _data_env(kind: str):
    """Setup: LAB_DATA_DIR at a damaged data folder (the real mirror stays in MNIST_MIRROR)."""
    def setup(out: Path, tmp_path: Path, monkeypatch) -> None:
        root = tmp_path / "data"
        if kind == "file":
            root.write_text("not a folder")
        elif kind == "dir-for-file":
            (root / "MNIST" / "raw" / "train-images-idx3-ubyte").mkdir(parents=True)
        elif kind == "unwritable":  # as root, chmod cannot make a folder unwritable: the OS refusal is simulated
            def denied(folder, *args, **kwargs):
                raise PermissionError(errno.EACCES, "Permission denied", str(folder))
            monkeypatch.setattr("lab.data.make_temp_file", denied)
            mirror = tmp_path / "mirror"  # the files only need to exist: the copy fails before reading them
            mirror.mkdir()
            for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                         "t10k-labels-idx1-ubyte"):
                (mirror / f"{name}.gz").write_bytes(b"")
            monkeypatch.setenv("MNIST_MIRROR", str(mirror))
        monkeypatch.setenv("LAB_DATA_DIR", str(root))
    return setup


def _fsync_full_disk(out, tmp_path, monkeypatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("lab.results.os.fsync", full)


def _read_only_out(out, tmp_path, monkeypatch) -> None:
    real_open = os.open

    def ro(path, flags, *args, **kwargs):
        if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr("lab.outdir.os.open", ro)


def _staging_denied(out, tmp_path, monkeypatch) -> None:
    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))
    monkeypatch.setattr("lab.report.make_temp_dir", lambda folder, prefix: denied(dir=folder))


def _fifo(out, tmp_path, monkeypatch) -> None:
    path = out / "data" / "deep_init.json"
    path.unlink()
    os.mkfifo(path)


def _report_path_swapped(name: str):
    def setup(out, tmp_path, monkeypatch) -> None:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
            path.write_text("a file where the figures folder belongs")
        else:
            path.unlink()
            path.mkdir()
    return setup


def _overridden_unrenderable(out, tmp_path, monkeypatch) -> None:
    """deep_init.json as if run with --set n_nets=1 --seed 7, but its metrics damaged: the fix must keep both."""
    path = out / "data" / "deep_init.json"
    raw = _json(path)
    raw["config"]["n_nets"] = 1
    raw["config"]["seed"] = 7
    raw["metrics"].pop("inits")
    _write_json(path, _seal(raw))


def _hand_made_partial(out, tmp_path, monkeypatch) -> None:
    path = out / "data" / "checks.json"
    raw = _json(path)
    keep = len(raw["checks"]) // 2
    raw["checks"], raw["entries"] = raw["checks"][:keep], raw["entries"][:keep]
    _write_json(path, _seal(raw))


def _failed_check(out, tmp_path, monkeypatch) -> None:
    path = out / "data" / "checks.json"
    raw = _json(path)
    raw["checks"][3]["passed"] = False
    _write_json(path, _seal(raw))


def _bench(obj):
    def setup(out, tmp_path, monkeypatch) -> None:
        path = out / "data" / "bench.json"
        if isinstance(obj, bytes):
            path.write_bytes(obj)
        else:
            _write_json(path, obj)
    return setup


def _locked(out, tmp_path, monkeypatch, request=None) -> None:
    pass  # the lock is taken by the test body (see HOLD_LOCK)


BAD_UTF8 = b'{"experiment": "deep_init", "config": {\xff\xfe}}'
R = ["run"]
QUICK = ["--profile", "quick", "--quiet"]
HOLD_LOCK = "hold-lock"  # marker in a case's setup column: the test holds OUT's lock while the command runs

# (id, setup, argv ({out} and {tmp} are filled in), regex the error line must match)
CASES = [
    # --- every value a user can pass is range-checked before work starts
    ("seed-negative", _nothing, R + ["deep_init", "--seed", "-1"], r"seed must be in \[0, 2\*\*53\)"),
    ("seed-2**64", _nothing, R + ["deep_init", "--seed", str(2**64)], r"seed must be in \[0, 2\*\*53\)"),
    ("seed-2**53-all", _nothing, R + ["all", "--seed", str(2**53)], r"seed must be in"),
    ("set-seed-negative", _nothing, R + ["shallow_init", "--set", "seed=-5"], r"seed must be in"),
    ("lr-nan", _nothing, R + ["shallow_init", "--set", "lr=nan"], r"lr must be a finite number"),
    ("lr-inf", _nothing, R + ["shallow_init", "--set", "lr=inf"], r"lr must be a finite number, got inf"),
    ("lr-overflowing-literal", _nothing, R + ["shallow_init", "--set", "lr=-1e999"], r"lr must be a finite"),
    ("sigma-max-nan", _nothing, R + ["shallow_init", "--set", "sigma_max=nan"], r"sigma_max must be a finite"),
    ("scale-factor-inf", _nothing, R + ["shallow_init", "--set", "scale_factors=1,inf"], r"scale_factors must be"),
    ("steps-huge", _nothing, R + ["shallow_init", "--set", "steps=10000000000"], r"steps must be <= 1,000,000"),
    ("grid-huge", _nothing, R + ["shallow_init", "--set", "grid_size=100000"], r"grid_size must be <= "),
    ("hidden-huge", _nothing, R + ["shallow_init", "--set", "hidden=100000,100000"], r"hidden must be <= "),
    ("hidden-over-budget", _nothing, R + ["shallow_init", "--set", "hidden=4000,4000"], r"exceeds the limit"),
    ("n-val-huge", _nothing, R + ["shallow_init", "--set", "n_val=1000000000"], r"n_val must be <= "),
    ("n-sigmas-huge", _nothing, R + ["shallow_init", "--set", "n_sigmas=1000000"], r"n_sigmas must be <= "),
    ("early-step-after-end", _nothing, R + ["shallow_init", "--set", "early_step=5000"], r"early_step must be <= steps"),
    ("deep-width-huge", _nothing, R + ["deep_init", "--set", "width=100000"], r"width must be <= "),
    ("deep-depth-huge", _nothing, R + ["deep_init", "--set", "depth=100000"], r"depth must be <= "),
    ("deep-activation-budget", _nothing, R + ["deep_init", "--set", "n_samples=1000000"], r"exceeds the limit"),
    ("deep-init-nan", _nothing, R + ["deep_init", "--set", "inits=normal:nan"], r"positive finite number"),
    ("deep-nets-huge", _nothing, R + ["deep_init", "--set", "n_nets=1000000"], r"n_nets must be <= "),
    ("dropout-sigma-inf", _nothing, R + ["dropout", "--set", "sigma=1e400"], r"sigma must be a finite number"),
    ("dropout-hidden-huge", _nothing, R + ["dropout", "--set", "hidden=20000,20000"], r"hidden must be <= "),
    ("dropout-batch-over-n-train", _nothing, R + ["dropout", "--set", "batch_size=100000"], r"batch_size must be <="),
    ("dropout-epochs-huge", _nothing, R + ["dropout", "--set", "epochs=10000000000"], r"epochs must be <= "),
    # --- every OS error: one line naming the path and the fix, nothing lost
    ("out-is-a-file-run", _file_as_out, R + ["deep_init", "--out", "{tmp}/a-file"], r"cannot write to --out .*a-file"),
    ("out-is-a-file-report", _file_as_out, ["report", "--out", "{tmp}/a-file"], r"a-file is a file, not a report"),
    ("out-under-a-file-check", _file_as_out, ["check", "--out", "{tmp}/a-file/sub"],
     r"a-file/sub.*a file sits where a folder is expected"),
    ("out-with-a-newline", _nothing, ["report", "--out", "{tmp}/two\nlines"], r"no gate results at .*two\\nlines/data"),
    ("data-is-a-file", lambda out, tmp_path, mp: (shutil.rmtree(out / "data"), (out / "data").write_text("x")),
     R + ["deep_init"], r"cannot write to --out .*out \(.*out/data\): File exists; something already exists"),
    ("index-html-is-a-folder", _report_path_swapped("index.html"), ["report"], r"index.html is a folder where"),
    ("figures-is-a-file", _report_path_swapped("figures"), ["report"], r"figures is a file where"),
    ("full-disk-report", _fsync_full_disk, ["report"], r"/out/.*: No space left on device; free some disk space"),
    ("full-disk-run", _fsync_full_disk,
     R + ["deep_init", "--set", "n_samples=20", "--set", "n_nets=1", "--set", "depth=2", "--set", "width=4"],
     r"out/data/deep_init\.json: No space left on device; free some disk space"),
    ("read-only-out", _read_only_out, ["report"], r"out/\.lock: Read-only file system; that file system is read-only"),
    ("staging-permission-denied", _staging_denied, ["report"], r"out: Permission denied; make it writable"),
    # --- damaged or odd results files (serious case 3: say which file, and how to replace it)
    ("results-not-utf8", _replace("deep_init.json", BAD_UTF8), ["report"], r"deep_init\.json: not UTF-8 text"),
    ("results-is-a-folder", _replace("deep_init.json", None), ["report"], r"deep_init\.json: is a folder"),
    ("results-empty", _replace("deep_init.json", b""), ["report"], r"deep_init\.json: not valid JSON"),
    ("results-nested-deep", _replace("deep_init.json", b"[" * 200_000), ["report"], r"deep_init\.json: .*JSON"),
    ("results-fifo", _fifo, ["report"], r"deep_init\.json: not a regular file"),
    ("results-a-list", _edit("deep_init.json", lambda d: []), ["report"], r"not a results file of this lab"),
    ("results-metrics-a-list", _edit("deep_init.json", _set("metrics", [])), ["report"], r"'metrics' is a list"),
    ("results-no-profile", _edit("deep_init.json", lambda d: _del("profile")(d["provenance"]) and d), ["report"],
     r"provenance\.profile is None"),
    ("results-bad-findings", _edit("deep_init.json", _set("findings", [1])), ["report"], r"'findings' is not a list"),
    ("results-other-experiment", _edit("deep_init.json", _set("experiment", "dropout")), ["report"],
     r"holds experiment 'dropout', not 'deep_init'"),
    ("results-wrong-metric-type", _edit("shallow_init.json", _set("metrics.sweep", "x"), sealed=True), ["report"],
     r"shallow_init\.json: metrics\.sweep is 'x', not a list; rerun it with the same settings: python -m lab run "
     r"shallow_init --profile quick .*--force$"),
    ("results-no-inits", _edit("deep_init.json", _set("metrics.inits", {}), sealed=True), ["report"],
     r"deep_init\.json: metrics\.inits holds 0 entries"),
    ("results-unrenderable-keeps-overrides", _overridden_unrenderable, ["report"],
     r"metrics\.inits is missing;.*--seed 7 .*--set n_nets=1 --force"),
    # --- gate record: only a complete, passing record of this code renders (serious case 1)
    ("checks-hand-made-partial", _hand_made_partial, ["report"], r"holds \d+ of the \d+ checks of the current gate"),
    ("checks-failed", _failed_check, ["report"], r"gate failed, no report rendered"),
    ("checks-other-code", _edit("checks.json", _set("provenance.gate_code", "0" * 16), sealed=True), ["report"],
     r"recorded for other code"),
    ("checks-not-utf8", _replace("checks.json", b"\xff\xfe"), ["report"], r"checks\.json: not UTF-8 text"),
    ("checks-a-folder", _replace("checks.json", None), ["report"], r"checks\.json: is a folder"),
    ("usage-error", _nothing, ["report", "--bogus"], r"unrecognized arguments: --bogus \(see python -m lab --help\)"),
    ("usage-error-bad-int", _nothing, R + ["deep_init", "--seed", "1e3"], r"argument --seed: invalid int value"),
    ("checks-a-folder-check", _replace("checks.json", None), ["check"], r"checks\.json is not a file .*gate record"),
    ("checks-wrong-shape", _edit("checks.json", _set("checks", "all passed")), ["report"], r"not a checks file"),
    ("checks-passed-a-string", _edit("checks.json", lambda d: (d["checks"][0].update(passed="yes"), d)[1]),
     ["report"], r"malformed checks file"),
    # --- bench.json of the wrong shape
    ("bench-a-list", _bench([]), ["report"], r"bench\.json: not a benchmark file"),
    ("bench-name-a-number", _bench({"benchmarks": [{"name": 1}]}), ["report"], r"bench\.json: not a benchmark file"),
    ("bench-median-a-string", _bench({"benchmarks": [{"name": "x", "stats": {"median": "fast"},
                                                      "extra_info": {"flops_per_call": 1}}]}),
     ["report"], r"bench\.json: not a benchmark file"),
    ("bench-not-utf8", _bench(b"\xff"), ["report"], r"bench\.json: not UTF-8 text"),
    # --- local data folder damage names the right fix
    ("data-dir-is-a-file", _data_env("file"), R + ["dropout", "--force"], r"data is a file where the data folder.*LAB_DATA_DIR"),
    ("mnist-file-is-a-folder", _data_env("dir-for-file"), R + ["dropout", "--force"], r"train-images-idx3-ubyte is not a file.*remove"),
    ("data-dir-unwritable", _data_env("unwritable"), R + ["dropout", "--force"], r"make that folder writable.*LAB_DATA_DIR"),
    # --- two runs on the same --out
    ("locked-run", HOLD_LOCK, R + ["deep_init"], r"another lab run is using .*out \(pid \d+\); wait"),
    ("locked-report", HOLD_LOCK, ["report"], r"another lab run is using"),
    ("locked-check", HOLD_LOCK, ["check"], r"another lab run is using"),
    # --- the last line of defence
    ("out-of-memory", _raise_in("lab.report.render_report", MemoryError()), ["report"], r"out of memory"),
    ("oserror-without-a-path", _raise_in("lab.report.render_report", OSError(errno.EIO, "Input/output error")),
     ["report"], r"^error: Input/output error; check that path"),
]


@pytest.mark.parametrize("case_id, setup, argv, pattern", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_exit_2_and_loses_nothing(case_id, setup, argv, pattern, out, tmp_path,
                                                             monkeypatch, capsys):
    if case_id == "results-fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    if setup != HOLD_LOCK:
        setup(out, tmp_path, monkeypatch)
    before = snapshot(out)
    argv = [a.format(out=out, tmp=tmp_path) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    if argv[0] == "run":
        argv += QUICK
    if setup == HOLD_LOCK:
        with lock_out(out):
            code = main(argv)
    else:
        code = main(argv)
    line = one_error_line(code, capsys.readouterr().err)
    assert re.search(pattern, line), line
    assert_unchanged(out, before)
    assert not list(out.glob(".staging-*")) and not list((out / "data").glob(".*.tmp"))


def test_the_table_covers_each_class_with_many_cases():
    assert len(CASES) >= 40


# --------------------------------------------------------------------------------------------------------
# serious case 3: an unreadable results file is stale: named, then rerun (never a traceback, never blocking)

@pytest.mark.parametrize("damage", ["not-utf8", "folder"])
def test_unreadable_results_file_is_named_and_rerun(damage, out, capsys):
    path = out / "data" / "deep_init.json"
    path.unlink()
    if damage == "folder":
        path.mkdir()
        (path / "keep-me").write_text("a user's file")
    else:
        path.write_bytes(BAD_UTF8)
    others = {n: (out / "data" / n).read_bytes() for n in ("shallow_init.json", "dropout.json", "checks.json")}
    assert main(["run", "deep_init", "--out", str(out), *QUICK, "--set", "n_samples=20", "--set", "n_nets=1"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"stale: {path}" in err
    assert load_result(path, "deep_init").config["n_nets"] == 1  # rerun and replaced
    if damage == "folder":  # moved aside, never deleted
        assert (out / "data" / "deep_init.json.moved-aside" / "keep-me").read_text() == "a user's file"
    assert all((out / "data" / n).read_bytes() == b for n, b in others.items())


# --------------------------------------------------------------------------------------------------------
# serious case 2: a part that diverges everywhere is a result; the report renders it, marked as diverged

@pytest.mark.parametrize("argv, part_heading", [
    (["shallow_init", "--set", "lr=1e16"], "## Part 1"),
    (["deep_init", "--set", "inits=normal:1e30", "--set", "n_samples=200"], "## Part 2"),
])
def test_fully_diverged_part_renders_marked_as_diverged(argv, part_heading, out, capsys):
    before = {n: (out / "data" / n).read_bytes() for n in ("shallow_init.json", "deep_init.json", "dropout.json")}
    assert main(["run", *argv, "--out", str(out), *QUICK]) == 0
    assert main(["report", "--out", str(out)]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" not in err
    md = (out / "report.md").read_text()
    start = md.index(part_heading)
    end = md.find("\n## ", start + 1)
    assert "diverged" in md[start:end if end > 0 else None]
    prefix = {"## Part 1": "p1_", "## Part 2": "p2_"}[part_heading]
    assert len(list((out / "figures").glob(f"{prefix}*.png"))) >= 3
    changed = argv[0] + ".json"
    assert all((out / "data" / n).read_bytes() == b for n, b in before.items() if n != changed)


def test_the_largest_seed_runs_every_part(tmp_path, capsys):
    """Experiments derive seeds (1000 * seed + k): the largest seed accepted must work everywhere."""
    tiny = [f"--set={kv}" for kv in ("shallow_init.n_sigmas=3", "shallow_init.n_seeds=1", "shallow_init.steps=20",
                                     "shallow_init.early_step=10", "deep_init.n_samples=20", "dropout.epochs=1",
                                     "dropout.n_train=100", "dropout.n_val=100", "dropout.n_mc=100", "dropout.k_max=2")]
    assert main(["run", "all", "--seed", str(2**53 - 1), "--out", str(tmp_path), *QUICK, *tiny]) == 0, \
        capsys.readouterr().err
    assert all(load_result(tmp_path / "data" / f"{n}.json", n).provenance["seed"] == 2**53 - 1
               for n in ("shallow_init", "deep_init", "dropout"))


@pytest.mark.filterwarnings("ignore:Data has no positive values")
def test_log_axes_with_nothing_positive_render_with_a_note():
    import numpy as np

    from lab.plots import NOTHING_TO_DRAW, figure_png, new_figure

    fig, axes = new_figure(ncols=3)
    axes[0, 0].plot([1, 2, 3], [np.nan] * 3)  # everything diverged
    axes[0, 1].plot([1, 2, 3], [0.0, 0.0, 0.0])  # everything zero
    axes[0, 2].plot([1, 2, 3], [1.0, 10.0, 100.0])  # fine: stays on a log scale
    for ax in axes.flat:
        ax.set_yscale("log")
        ax.set_xscale("log")
    png = figure_png(fig)
    assert png.startswith(b"\x89PNG")
    assert [ax.get_yscale() for ax in axes.flat] == ["linear", "linear", "log"]
    assert NOTHING_TO_DRAW in [t.get_text() for t in axes[0, 0].texts]


# --------------------------------------------------------------------------------------------------------
# serious case 1: an interrupted or partial gate is never recorded, and never rendered

def _spawn(args: list[str], env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_lock(proc: subprocess.Popen, out: Path, timeout: float = 180) -> None:
    """Until the process holds OUT's lock (its pid in OUT/.lock): past its imports, inside the command."""
    deadline = time.time() + timeout
    while True:
        lock = out / ".lock"
        if lock.exists() and lock.read_text().strip() == str(proc.pid):
            return
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the command never took the lock"
        time.sleep(0.05)


GATE_COMMANDS = {
    "pytest-checks": lambda out: ["-m", "pytest", "checks", "-q", "-p", "no:cacheprovider", "--lab-device", "cpu",
                                  "--checks-json", str(out / "data" / "checks.json")],
    "lab-check": lambda out: ["-m", "lab", "check", "--device", "cpu", "--out", str(out)],
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", list(GATE_COMMANDS))
def test_signal_during_the_gate_leaves_record_and_report_byte_identical(command, sig, out):
    before = snapshot(out)
    proc = _spawn(GATE_COMMANDS[command](out))
    _wait_for_lock(proc, out)
    time.sleep(1.5)  # inside the gate: collection / the first checks (the whole gate takes far longer)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert_unchanged(out, before)
    assert not list((out / "data").glob(".*.tmp"))
    if command == "lab-check":
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr
        assert "Traceback" not in stderr
        assert stderr.splitlines()[-1].startswith("interrupted") and len(stderr.splitlines()) == 1, stderr
    else:
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, stdout + stderr
        assert "gate record NOT written" in stdout or "gate record" not in stdout, stdout
    load_gate(out)  # the previous record is still a complete, passing gate of this code: lab report renders it


def test_partial_gate_run_leaves_the_record_and_report_refuses_a_partial_one(out, capsys):
    before = snapshot(out)
    proc = subprocess.run([sys.executable, "-m", "pytest", "checks", "-q", "-p", "no:cacheprovider", "-k",
                           "deep_init and finite", "--checks-json", str(out / "data" / "checks.json")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gate record NOT written" in proc.stdout and "partial run" in proc.stdout
    assert_unchanged(out, before)
    # the hand-made partial record lab report must refuse: the checks that ran, all passing
    raw = _json(out / "data" / "checks.json")
    keep = [i for i, e in enumerate(raw["entries"]) if e.startswith("deep_init")]
    raw["checks"], raw["entries"] = [raw["checks"][i] for i in keep], [raw["entries"][i] for i in keep]
    _write_json(out / "data" / "checks.json", _seal(raw))
    before = snapshot(out)
    line = one_error_line(main(["report", "--out", str(out)]), capsys.readouterr().err)
    assert f"holds {len(keep)} of the" in line and "partial gate" in line
    assert_unchanged(out, before)


def test_a_second_gate_on_the_same_out_is_refused(out):
    before = snapshot(out)
    with lock_out(out):
        proc = subprocess.run([sys.executable, *GATE_COMMANDS["pytest-checks"](out)], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "another lab run is using" in proc.stdout + proc.stderr
    assert_unchanged(out, before)


# --------------------------------------------------------------------------------------------------------
# signals at the other stages

def test_signal_while_starting_is_one_line(out):
    before = snapshot(out)
    proc = _spawn(["-m", "lab", "run", "deep_init", "--out", str(out), *QUICK])
    time.sleep(0.6)  # the interpreter is up; lab is still importing torch (or, on a fast machine, just started)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1 and stderr.startswith("interrupted"), stderr
    assert_unchanged(out, before)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_signal_while_rendering_keeps_the_previous_report_and_leftovers_are_cleaned(sig, out, capsys):
    before = snapshot(out)
    proc = _spawn(["-m", "lab", "report", "--out", str(out)])
    deadline = time.time() + 180
    while not list(out.glob(".staging-*")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert_unchanged(out, before)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "Traceback" not in stderr, stderr
        assert not list(out.glob(".staging-*"))
    # whatever a killed run left behind is gone after the next run on that folder (here a cached run)
    assert main(["run", "deep_init", "--out", str(out), *QUICK]) == 0
    assert "cached" in capsys.readouterr().out
    assert not list(out.glob(".staging-*")) and not list(out.glob(".old-figures-*"))


# --------------------------------------------------------------------------------------------------------
# leftovers, warnings, the cache key, the internal-error path, unencodable paths

def test_leftovers_of_killed_runs_are_removed_but_not_foreign_files(out, capsys):
    """Only names the lab journalled before making them are its leftovers; look-alikes are someone else's."""
    from lab.outdir import make_temp_dir, make_temp_file

    ours = [make_temp_dir(out, ".staging-"), make_temp_dir(out, ".old-figures-")]
    for folder, prefix in ((out / "data", ".deep_init.json."), (out, ".report.pdf.")):
        fd, path = make_temp_file(folder, prefix, ".tmp")
        os.write(fd, b"half")
        os.close(fd)
        ours.append(path)
    (ours[0] / "index.html").write_text("half")
    foreign = [out / ".staging-abc_1234", out / ".old-figures-zz9_0000", out / "data" / ".deep_init.json.k3j_9x2a.tmp",
               out / ".report.pdf.ab12cd34.tmp", out / "data" / ".bench.json.tmp"]
    foreign[0].mkdir()
    (foreign[0] / "index.html").write_text("a user's file")
    foreign[1].mkdir()
    for path in foreign[2:]:
        path.write_text("a user's file named like a temp file")
    assert main(["report", "--out", str(out)]) == 0
    capsys.readouterr()
    assert not [p for p in ours if os.path.lexists(p)]
    assert all(p.exists() for p in foreign) and (foreign[0] / "index.html").read_text() == "a user's file"
    assert not (out / ".lab-temp").exists() and not (out / "data" / ".lab-temp").exists()


def test_result_from_other_code_is_rendered_with_a_warning(out, capsys):
    path = out / "data" / "deep_init.json"
    raw = _json(path)
    raw["provenance"]["cache_key"] = "0123456789abcdef"
    _write_json(path, _seal(raw))  # written by other code: a consistent file, only its key differs
    assert main(["report", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "deep_init.json" in warnings[0] and "other code" in warnings[0], err
    assert "python -m lab run deep_init --profile quick" in warnings[0]
    html = (out / "index.html").read_text()
    assert "OTHER code or torch" in html and html.count("this checkout") >= 2


def test_cache_key_includes_the_torch_version(monkeypatch):
    import torch

    from lab.runner import cache_key

    key = cache_key("deep_init", {"seed": 0}, "cpu")
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    assert cache_key("deep_init", {"seed": 0}, "cpu") != key


def test_rerun_command_reproduces_the_stored_config_exactly():
    import shlex

    from lab.config import config_to_dict, make_config
    from lab.runner import rerun_command

    cfg = config_to_dict(make_config("shallow_init", "quick", {"lr": "0.3", "hidden": "8,4", "seed": "3"}))
    cmd = rerun_command("shallow_init", cfg, "quick", "cpu")
    args = shlex.split(cmd)
    assert args[:7] == ["python", "-m", "lab", "run", "shallow_init", "--profile", "quick"] and args[-1] == "--force"
    sets = dict(a.split("=", 1) for a in args[args.index("--set") + 1::2])
    assert sets == {"lr": "0.3", "hidden": "8,4"} and args[args.index("--seed") + 1] == "3"
    assert config_to_dict(make_config("shallow_init", "quick", {**sets, "seed": "3"})) == cfg
    assert rerun_command("shallow_init", {**cfg, "no_such_field": 1}, "quick") is None


def test_internal_error_is_one_line_with_the_traceback_in_a_log(out, monkeypatch, capsys):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug in the lab")

    monkeypatch.setattr("lab.report.render_report", bug)
    monkeypatch.delenv("LAB_DEBUG", raising=False)
    before = snapshot(out)
    line = one_error_line(main(["report", "--out", str(out)]), capsys.readouterr().err, EXIT_INTERNAL)
    assert "internal error (ZeroDivisionError: a bug in the lab)" in line
    log = Path(re.search(r"traceback in (\S+?);", line).group(1))
    assert "Traceback" in log.read_text() and "a bug in the lab" in log.read_text()
    log.unlink()
    assert_unchanged(out, before)
    monkeypatch.setenv("LAB_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["report", "--out", str(out)])


def test_paths_the_terminal_cannot_encode_are_printed_escaped(out):
    odd = out.parent / "r\u00e9sum\u00e9-\u65e5\u672c"
    out.rename(odd)
    proc = subprocess.run([sys.executable, "-m", "lab", "run", "deep_init", "--out", str(odd), *QUICK],
                          cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "deep_init: cached" in proc.stdout and "\\xe9" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "lab", "report", "--out", str(odd / "sub")], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, env={**os.environ, "PYTHONIOENCODING": "ascii"}, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert len(bad.stderr.splitlines()) == 1 and bad.stderr.startswith("error: no gate results at ")
    assert "\\xe9" in bad.stderr or "\\u00e9" in bad.stderr or "\\udc" in bad.stderr  # escaped, not a crash
