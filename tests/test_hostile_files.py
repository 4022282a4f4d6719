"""Hostile files, links, interruptions and environments (issue 16): nothing outside OUT is written or deleted, a
changed results file is never trusted, every failure is one line naming the path and the fix.

    pytest tests/test_hostile_files.py

Most cases copy the session's rendered quick report (tests/conftest.py `rendered`) into tmp_path/out, plant
something, run one command in-process and compare the whole of tmp_path before and after: outside OUT, every
file, folder and link must be exactly as it was (nothing written through a link, nothing created or deleted).
No case trains more than a tiny Part 2 (a few milliseconds of compute); none runs the gate.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import PROJECT_ROOT
from lab.__main__ import main
from lab.outdir import JOURNAL_NAME, lock_out, make_temp_dir, make_temp_file
from lab.results import seal_record

pytestmark = pytest.mark.slow

TINY = ["--profile", "quick", "--quiet", "--set", "n_samples=20", "--set", "n_nets=1", "--set", "depth=2",
        "--set", "width=4"]
VICTIM = b"a file outside OUT that the lab must never touch\n"

# --------------------------------------------------------------------------------------------------------
# helpers


def tree(root: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Every entry under root (links not followed): kind and content; ``skip`` (OUT) left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if skip is not None and (path == skip or skip in path.parents):
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[str(path)] = ("dir",)
            else:
                out[str(path)] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode))
    return out


def one_error_line(code: int, err: str, expected_code: int = 2) -> str:
    assert code == expected_code, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                     "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest.fixture(autouse=True)
def _one_pixel_figures(monkeypatch):
    """The figures' pixels are not what these cases test: a 1x1 PNG instead of seconds of savefig per render."""
    import lab.plots

    def tiny(fig):
        lab.plots.plt.close(fig)
        return _PNG
    monkeypatch.setattr(lab.plots, "figure_png", tiny)


@pytest.fixture()
def out(rendered, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(rendered, copy, ignore=shutil.ignore_patterns(".lock", JOURNAL_NAME))
    return copy


@pytest.fixture()
def outside(tmp_path) -> Path:
    """A folder beside OUT with a victim file and a victim folder that links will point at."""
    where = tmp_path / "outside"
    (where / "folder").mkdir(parents=True)
    (where / "victim").write_bytes(VICTIM)
    (where / "folder" / "inside").write_bytes(VICTIM)
    return where


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _write(path: Path, raw, sealed: bool) -> None:
    path.write_text(json.dumps(seal_record(raw) if sealed else raw))


def _fake_chromium(tmp_path: Path, slow: bool = False) -> Path:
    """A stand-in for Chromium: writes a PDF to --print-to-pdf; ``slow``: keeps a helper writing into its profile
    (like Chromium's own helpers) and never finishes by itself."""
    script = tmp_path / "fake-chromium"
    body = ['#!/bin/bash', 'for a in "$@"; do case "$a" in --print-to-pdf=*) out="${a#--print-to-pdf=}";; '
            '--user-data-dir=*) prof="${a#--user-data-dir=}";; esac; done']
    if slow:
        body += ['(while true; do touch "$prof/f$RANDOM" 2>/dev/null; sleep 0.01; done) &', 'touch "$prof/started"',
                 'sleep 60']
    body += ["printf '%%PDF-1.4 fake' > \"$out\""]
    script.write_text("\n".join(body) + "\n")
    script.chmod(0o755)
    return script


# --------------------------------------------------------------------------------------------------------
# class 1: links and look-alikes planted in OUT: the lab refuses or replaces the link itself, never its target

def _link(rel: str, to: str = "victim"):
    def plant(out: Path, outside: Path) -> None:
        path = out / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        path.symlink_to(outside / to)
    return plant


def _hard_link(rel: str):
    def plant(out: Path, outside: Path) -> None:
        os.link(outside / "victim", out / rel)
    return plant


def _journal(*names: str):
    def plant(out: Path, outside: Path) -> None:
        (out / "data" / JOURNAL_NAME).write_text("".join(f"{n}\n" for n in names))
    return plant


REPORT, RUN = ["report"], ["run", "deep_init", *TINY]

# (id, plant(out, outside), argv, exit code, regex of the error line or None when it must succeed, paths (relative
#  to OUT) that must afterwards be plain files/folders of the lab: the link replaced, not followed)
LINK_CASES = [
    ("lock-symlink-report", _link(".lock"), REPORT, 2, r"\.lock is a symbolic link", ()),
    ("lock-symlink-run", _link(".lock"), RUN, 2, r"\.lock is a symbolic link", ()),
    ("lock-dangling-symlink", _link(".lock", "not-there"), REPORT, 2, r"\.lock is a symbolic link", ()),
    ("lock-hard-link", _hard_link(".lock"), REPORT, 2, r"\.lock is a hard link", ()),
    ("journal-symlink-report", _link(JOURNAL_NAME), REPORT, 2, r"out/\.lab-temp is a symbolic link", ()),
    ("journal-symlink-run", _link(JOURNAL_NAME), RUN, 0, None, ()),  # nothing journalled in OUT itself: left alone
    ("data-journal-symlink-run", _link(f"data/{JOURNAL_NAME}"), RUN, 2, r"data/\.lab-temp is a symbolic link", ()),
    ("checks-json-symlink-check", _link("data/checks.json"), ["check"], 2, r"checks\.json is a symbolic link", ()),
    ("data-folder-symlink-run", _link("data", "folder"), RUN, 2, r"out/data is a symbolic link", ()),
    ("data-folder-symlink-report", _link("data", "folder"), REPORT, 2, r"out/data is a symbolic link", ()),
    ("figures-symlink-report", _link("figures", "folder"), REPORT, 2, r"out/figures is a symbolic link", ()),
    ("index-html-symlink-report", _link("index.html"), REPORT, 0, None, ("index.html",)),
    ("report-md-symlink-report", _link("report.md"), REPORT, 0, None, ("report.md",)),
    ("results-symlink-run-force", _link("data/deep_init.json"), [*RUN, "--force"], 0, None, ("data/deep_init.json",)),
    ("results-symlink-run-stale", _link("data/deep_init.json"), RUN, 0, None, ("data/deep_init.json",)),
    ("journal-names-outside", _journal("../../outside/victim", "/etc/hostname", "..", "checks.json"), RUN, 0, None, ()),
    ("old-style-temp-symlink", _link("data/.deep_init.json.k3j_9x2a.tmp"), RUN, 0, None, ()),
]


@pytest.mark.parametrize("case_id, plant, argv, code, pattern, replaced", LINK_CASES, ids=[c[0] for c in LINK_CASES])
def test_a_planted_link_is_never_followed(case_id, plant, argv, code, pattern, replaced, out, outside, tmp_path,
                                          capsys):
    plant(out, outside)
    before = tree(tmp_path, skip=out)
    got = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    if pattern:
        assert re.search(pattern, one_error_line(got, err, code))
    else:
        assert got == code, err
    assert tree(tmp_path, skip=out) == before, "something outside OUT was written, created or deleted"
    for rel in replaced:
        assert not (out / rel).is_symlink() and (out / rel).is_file(), rel
    if case_id == "journal-names-outside":
        assert (out / "data" / "checks.json").is_file()  # a journal names no file of the lab's that it may delete
    if case_id == "old-style-temp-symlink":  # named like a leftover, but never journalled: not the lab's to remove
        assert (out / "data" / ".deep_init.json.k3j_9x2a.tmp").is_symlink()


def test_the_pdf_replaces_a_planted_link_not_its_target(out, outside, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHROMIUM", str(_fake_chromium(tmp_path)))
    _link("report.pdf")(out, outside)
    before = tree(tmp_path, skip=out)
    assert main(["pdf", "--out", str(out)]) == 0, capsys.readouterr().err
    assert tree(tmp_path, skip=out) == before
    assert (out / "report.pdf").is_file() and not (out / "report.pdf").is_symlink()
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF-")


def test_leftovers_stay_when_the_command_fails_before_owning_out(out, capsys):
    """Clean-up needs the lock: a second command that cannot take it removes nothing, even journalled leftovers."""
    with lock_out(out):
        fd, leftover = make_temp_file(out / "data", ".dropout.json.", ".tmp")
        os.close(fd)
        staging = make_temp_dir(out, ".staging-")
        one_error_line(main(["report", "--out", str(out)]), capsys.readouterr().err)
        assert leftover.exists() and staging.is_dir()


def test_a_journalled_leftover_that_became_a_link_is_removed_itself(out, outside, capsys):
    fd, leftover = make_temp_file(out / "data", ".deep_init.json.", ".tmp")
    os.close(fd)
    leftover.unlink()
    leftover.symlink_to(outside / "victim")
    folder = make_temp_dir(out, ".staging-")
    shutil.rmtree(folder)
    folder.symlink_to(outside / "folder")
    assert main(["report", "--out", str(out)]) == 0, capsys.readouterr().err
    assert not os.path.lexists(leftover) and not os.path.lexists(folder)
    assert not [p for p in out.rglob(JOURNAL_NAME)]  # no journal is left once the command is over
    assert (outside / "victim").read_bytes() == VICTIM and (outside / "folder" / "inside").read_bytes() == VICTIM


# --------------------------------------------------------------------------------------------------------
# class 1b: the Makefile quotes OUT and checks PROFILE / DEVICE / OUT before any work

def _make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # -o: take the venv as installed (never reinstall it from a test)
    return subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("var, value, message", [
    ("PROFILE", "quik", r"PROFILE=quik is not a profile"),
    ("PROFILE", "quick full", r"PROFILE=quick full is not a profile"),
    ("DEVICE", "gpu", r"DEVICE=gpu is not a device"),
    ("DEVICE", "cpu; rm -rf x", r"DEVICE=cpu; rm -rf x is not a device"),
    ("OUT", " ", r"OUT is empty"),
])
def test_make_checks_its_variables_before_any_work(var, value, message, tmp_path):
    target = tmp_path / "never-made"
    args = [f"OUT={target}", "PROFILE=quick", "DEVICE=cpu"]
    args = [a for a in args if not a.startswith(var + "=")] + [f"{var}={value}"]
    start = time.perf_counter()
    proc = _make("report", *args)
    assert proc.returncode == 2 and re.search(message, proc.stderr), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not target.exists() and time.perf_counter() - start < 30  # nothing ran: no gate, no folder


def test_make_with_a_space_in_out_prints_into_that_folder_only(out, tmp_path):
    spaced = tmp_path / "my report"
    out.rename(spaced)
    (tmp_path / "my").mkdir()
    (tmp_path / "my" / "keep").write_bytes(VICTIM)
    before = tree(tmp_path, skip=spaced)
    proc = _make("pdf", f"OUT={spaced}", env={"CHROMIUM": str(_fake_chromium(tmp_path))})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (spaced / "report.pdf").is_file()
    after = tree(tmp_path, skip=spaced)
    after.pop(str(tmp_path / "fake-chromium"), None)
    before.pop(str(tmp_path / "fake-chromium"), None)
    assert after == before


def test_make_clean_removes_only_a_report_folder(out, tmp_path):
    home = tmp_path / "not a report"
    home.mkdir()
    (home / "thesis.tex").write_bytes(VICTIM)
    proc = _make("clean", f"OUT={home}")
    assert proc.returncode == 2 and "does not look like a report folder" in proc.stderr
    assert (home / "thesis.tex").read_bytes() == VICTIM
    spaced = tmp_path / "my report"
    out.rename(spaced)
    (tmp_path / "my").mkdir()
    assert _make("clean", f"OUT={spaced}").returncode == 0
    assert not spaced.exists() and (tmp_path / "my").is_dir() and home.is_dir()


# --------------------------------------------------------------------------------------------------------
# class 2: a changed or damaged results file is never trusted: report names file, field and --force command

def _metrics(name: str, fn, sealed: bool = True):
    def damage(out: Path) -> None:
        path = out / "data" / name
        raw = _json(path)
        fn(raw)
        _write(path, raw, sealed)
    return damage


def _literal(name: str, old: str, new: str):
    """Replace text in the file as written (NaN / Infinity literals cannot be produced through json.dumps)."""
    def damage(out: Path) -> None:
        path = out / "data" / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
    return damage


def _he(raw):
    return raw["metrics"]["inits"]["he"]


DAMAGE_CASES = [
    ("nan-literal", _literal("deep_init.json", '"growth_per_layer": ', '"growth_per_layer": NaN, "x": '),
     r"deep_init\.json: metrics\.inits\['normal:1'\]\.growth_per_layer is nan \(a NaN/Infinity literal"),
    ("infinity-literal", _literal("dropout.json", '"pixel_std": ', '"pixel_std": -Infinity, "y": '),
     r"dropout\.json: metrics\.data\.pixel_std is -inf"),
    ("overflowing-literal", _literal("dropout.json", '"pixel_std": ', '"pixel_std": 1e999, "y": '),
     r"metrics\.data\.pixel_std is inf"),
    ("number-as-string", _metrics("deep_init.json", lambda r: _he(r).update(growth_per_layer="0.98")),
     r"metrics\.inits\.he\.growth_per_layer is '0\.98', not a number"),
    ("bool-as-number", _metrics("deep_init.json", lambda r: r["metrics"].update(ln_classes=True)),
     r"metrics\.ln_classes is True, not a number"),
    ("missing-metric", _metrics("deep_init.json", lambda r: r["metrics"].pop("ln_classes")),
     r"metrics\.ln_classes is missing"),
    ("missing-config-key-a-template-reads", _metrics("deep_init.json", lambda r: r["config"].pop("n_nets")),
     r"config\.n_nets is missing"),
    ("config-out-of-range", _metrics("deep_init.json", lambda r: r["config"].update(depth=10**9)),
     r"config: depth must be <="),
    ("short-layer-list", _metrics("deep_init.json", lambda r: _he(r)["mean_abs"][0].pop()),
     r"metrics\.inits\.he\.mean_abs\[0\] holds \d+ layers, not \d+"),
    ("error-pct-out-of-range", _metrics("dropout.json",
                                        lambda r: r["metrics"]["arms"]["dropout"]["runs"][0]["val_error_pct"].__setitem__(1, 150.0)),
     r"metrics\.arms\.dropout\.runs\[0\]\.val_error_pct\[1\] is 150\.0, outside \[0, 100\]"),
    ("missing-seed-run", _metrics("dropout.json", lambda r: r["metrics"]["arms"]["no_dropout"]["runs"].pop()),
     r"metrics\.arms\.no_dropout\.runs holds \d+ runs, not \d+"),
    ("dict-for-list", _metrics("shallow_init.json", lambda r: r["metrics"].update(sigmas={"a": 1})),
     r"metrics\.sigmas is \{'a': 1\}, not a list"),
    ("hand-edited-number", _metrics("dropout.json", lambda r: r["metrics"]["init"].update(sigma=0.2), sealed=False),
     r"dropout\.json: changed after it was written \(its content no longer matches provenance\.content_digest\)"),
    ("hand-edited-profile", _metrics("deep_init.json", lambda r: r["provenance"].update(profile="full"), sealed=False),
     r"changed after it was written"),
    ("digest-removed", _metrics("deep_init.json", lambda r: r["provenance"].pop("content_digest"), sealed=False),
     r"provenance\.content_digest is missing"),
    ("markup-in-profile", _metrics("deep_init.json", lambda r: r["provenance"].update(profile="quick** `x`")),
     r"provenance\.profile is 'quick\*\* `x`', not a profile of this lab"),
    ("escape-in-device", _metrics("deep_init.json", lambda r: r["provenance"].update(device="cpu\x1b[2J")),
     r"provenance\.device is 'cpu\\x1b\[2J', not a device"),
    ("huge-integer", _literal("deep_init.json", '"layers": [', '"layers": [1' + "0" * 400 + ', '),
     r"metrics\.layers\[0\] is an integer too large"),
]


@pytest.mark.parametrize("case_id, damage, pattern", DAMAGE_CASES, ids=[c[0] for c in DAMAGE_CASES])
def test_a_damaged_results_file_is_named_with_its_field_and_the_force_command(case_id, damage, pattern, out, capsys):
    damage(out)
    html = (out / "index.html").read_bytes()
    line = one_error_line(main(["report", "--out", str(out)]), capsys.readouterr().err)
    assert re.search(pattern, line), line
    assert re.search(r"python -m lab run (deep_init|dropout|shallow_init)\b.*--force", line), line
    assert (out / "index.html").read_bytes() == html


@pytest.mark.parametrize("case_id", ["hand-edited-metric", "nan-literal", "number-as-string"])
def test_run_says_stale_and_recomputes_a_changed_file(case_id, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "deep_init", *TINY, "--out", str(out)]) == 0
    path = out / "data" / "deep_init.json"
    raw = _json(path)
    if case_id == "hand-edited-metric":
        raw["metrics"]["ln_classes"] = 1.0
        _write(path, raw, sealed=False)
    elif case_id == "nan-literal":
        path.write_text(path.read_text().replace('"ln_classes": ', '"ln_classes": NaN, "x": ', 1))
    else:
        raw["metrics"]["n_samples"] = "20"
        _write(path, raw, sealed=True)
    capsys.readouterr()
    assert main(["run", "deep_init", *TINY, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"note: stale: {path}" in captured.err and "ran in" in captured.out and "cached" not in captured.out
    from lab.results import load_result

    assert load_result(path, "deep_init").metrics["ln_classes"] == pytest.approx(0.6931471805599453)


def _gate_edit(fn, sealed=True):
    def damage(out: Path) -> None:
        path = out / "data" / "checks.json"
        raw = _json(path)
        fn(raw)
        _write(path, raw, sealed)
    return damage


def _duplicate(raw):
    raw["checks"].append(raw["checks"][0])
    raw["entries"].append(raw["entries"][0])


def _foreign_entry(raw):
    raw["checks"].append(dict(raw["checks"][0], name="made up"))
    raw["entries"].append("dropout.made_up")


GATE_CASES = [
    ("duplicate-entry", _gate_edit(_duplicate), r"entries\[\d+\] repeats '[\w.]+': each gate entry is recorded once"),
    ("foreign-entry", _gate_edit(_foreign_entry), r"entries\[\d+\] is 'dropout\.made_up', not an entry of the current"),
    ("flipped-result", _gate_edit(lambda r: r["checks"][0].update(passed=False), sealed=False),
     r"checks\.json: changed after it was written"),
    ("nan-in-record", _literal("checks.json", '"wall_time_s": ', '"wall_time_s": NaN, "w": '),
     r"provenance\.wall_time_s is nan"),
]


@pytest.mark.parametrize("case_id, damage, pattern", GATE_CASES, ids=[c[0] for c in GATE_CASES])
def test_the_gate_record_holds_the_current_gate_exactly_once(case_id, damage, pattern, out, capsys):
    damage(out)
    line = one_error_line(main(["report", "--out", str(out)]), capsys.readouterr().err)
    assert re.search(pattern, line) and "rerun the gate (make check)" in line, line


# --------------------------------------------------------------------------------------------------------
# class 3: interruptions, escaping, messages, permissions

def _mark_old(out: Path) -> None:
    for name in ("index.html", "report.md"):
        (out / name).write_text((out / name).read_text() + "\nOLD-RENDERING\n")
    (out / "figures" / "OLD-RENDERING.png").write_bytes(b"old")


def _consistent(out: Path) -> str:
    marks = {"index.html": "OLD-RENDERING" in (out / "index.html").read_text(),
             "report.md": "OLD-RENDERING" in (out / "report.md").read_text(),
             "figures": (out / "figures" / "OLD-RENDERING.png").exists()}
    assert len(set(marks.values())) == 1, f"old and new rendering mixed: {marks}"
    return "old" if marks["figures"] else "new"


@pytest.mark.parametrize("when", [1, 2, 3])
def test_ctrl_c_during_the_swap_publishes_all_or_nothing(when, out, monkeypatch, capsys):
    """SIGINT lands after the 1st, 2nd or 3rd rename of the swap (or just before it): old or new, never mixed."""
    import lab.report as report

    _mark_old(out)
    real, count = os.replace, [0]

    def replace(src, dst):
        real(src, dst)
        if Path(src).parent.name.startswith(".staging-") and Path(dst).parent == out:  # the swap's renames
            count[0] += 1
            if count[0] == when:
                os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(report.os, "replace", replace)
    assert main(["report", "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert _consistent(out) == "new"  # the signal waited for the swap to finish
    assert not list(out.glob(".staging-*")) and not list(out.glob(".old-figures-*"))


def test_a_failure_during_the_swap_puts_the_old_report_back(out, monkeypatch, capsys):
    import lab.report as report

    _mark_old(out)
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == "index.html" and Path(src).parent.name.startswith(".staging-"):
            raise OSError(errno.EIO, "Input/output error", str(dst))
        real(src, dst)
    monkeypatch.setattr(report.os, "replace", replace)
    line = one_error_line(main(["report", "--out", str(out)]), capsys.readouterr().err)
    assert "index.html: Input/output error" in line
    assert _consistent(out) == "old"


def test_ctrl_c_during_pdf_exits_130_and_leaves_no_profile(out, tmp_path):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {**os.environ, "CHROMIUM": str(_fake_chromium(tmp_path, slow=True)), "TMPDIR": str(tmpdir),
           "PYTHONUNBUFFERED": "1"}
    before = tree(out)
    proc = subprocess.Popen([sys.executable, "-m", "lab", "pdf", "--out", str(out)], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmpdir.glob("lab-chromium-*/started")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted"), err
    assert not list(tmpdir.iterdir()), "Chromium's profile folder was left behind"
    assert tree(out) == before  # no new report.pdf, no temp file, no journal: OUT as it was


def test_a_full_disk_while_recording_the_gate_is_one_line_exit_2(tmp_path, monkeypatch):
    """pytest checks --checks-json: the record's write fails in pytest_sessionfinish (the gate itself passed)."""
    import importlib.util

    import lab.gate
    from lab.results import CheckResult

    spec = importlib.util.spec_from_file_location("gate_conftest", PROJECT_ROOT / "checks" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    names = ["dropout.a", "dropout.b"]
    monkeypatch.setattr(lab.gate, "gate_names", lambda: names)
    conftest._COLLECTED[:] = [(n, CheckResult(n, True, "1", "1", "ok")) for n in names]

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("lab.results.os.fsync", full)
    lines = []

    class Reporter:
        def ensure_newline(self):
            pass

        def write_line(self, line, **kw):
            lines.append(line)

    class Config:
        def getoption(self, name):
            return {"--checks-json": str(tmp_path / "data" / "checks.json"), "--lab-device": "cpu"}[name]

        class pluginmanager:  # noqa: N801 - pytest's attribute name
            @staticmethod
            def get_plugin(name):
                return Reporter()

    class Session:
        config = Config()
        exitstatus = 0

    session = Session()
    conftest.pytest_sessionfinish(session, 0)
    assert session.exitstatus == 2
    assert len(lines) == 1 and re.search(r"error: gate record NOT written: .*checks\.json: No space left on device; "
                                         r"free some disk space", lines[0]), lines
    assert not (tmp_path / "data" / "checks.json").exists() and not list((tmp_path / "data").glob(".*.tmp"))


def test_lab_check_on_a_full_disk_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import lab.gate
    from lab.results import CheckResult

    monkeypatch.setattr(lab.gate, "run_gate", lambda device, names: [CheckResult(n, True, "1", "1", "ok") for n in names])

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("lab.results.os.fsync", full)
    line = one_error_line(main(["check", "--out", str(tmp_path), "--device", "cpu"]), capsys.readouterr().err)
    assert re.search(r"data/checks\.json: No space left on device; free some disk space", line), line


def test_text_from_a_results_file_is_text_terminal_and_references_alike(out, capsys):
    path = out / "data" / "deep_init.json"
    raw = _json(path)
    _he(raw)["label"] = "He \x1b[2J\x1b]0;owned\x07 [[fig:p1_sweep]] [[tab:nowhere]]"
    _write(path, raw, sealed=True)
    assert main(["report", "--out", str(out)]) == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "\x1b" not in stdout and "\x07" not in stdout and "\\x1b[2J" in stdout  # shown, not obeyed
    html = (out / "index.html").read_text()
    assert "[\u2060[tab:nowhere]]" in html  # a token-like label is text: no reference to a table that is not there


def test_an_error_line_never_carries_raw_control_characters(tmp_path, capsys):
    line = one_error_line(main(["report", "--out", str(tmp_path / "x\x1b[31mred\rback")]), capsys.readouterr().err)
    assert "\x1b" not in line and "\r" not in line and "\\x1b[31mred\\rback" in line


def test_a_full_disk_while_taking_the_lock_names_the_lock(out, monkeypatch, capsys):
    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("lab.outdir.os.pwrite", full)
    line = one_error_line(main(["report", "--out", str(out)]), capsys.readouterr().err)
    assert re.search(r"out/\.lock: No space left on device; free some disk space", line), line


def test_an_unreadable_mirror_is_named_as_the_mirror(tmp_path, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("MNIST_MIRROR", str(mirror))
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "data"))
    real = os.listdir

    def denied(path="."):  # as root a chmod cannot make it unreadable: the OS refusal is simulated
        if Path(path) == mirror:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr("lab.data.os.listdir", denied)
    line = one_error_line(main(["run", "dropout", "--profile", "quick", "--quiet", "--out", str(tmp_path / "o")]),
                          capsys.readouterr().err)
    assert f"cannot read the folder MNIST_MIRROR={mirror} (Permission denied)" in line, line
    assert "LAB_DATA_DIR" not in line


def test_an_unwritable_tmpdir_for_pdf_is_named(out, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHROMIUM", str(_fake_chromium(tmp_path)))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "no" / "such" / "tmp"))
    line = one_error_line(main(["pdf", "--out", str(out)]), capsys.readouterr().err)
    assert f"in {tmp_path / 'no' / 'such' / 'tmp'} (TMPDIR)" in line and "set TMPDIR to a writable folder" in line
    assert not list(out.glob(".report.pdf.*"))


def test_list_to_a_full_device_is_one_line_naming_it():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "lab", "list"], cwd=PROJECT_ROOT, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    line = one_error_line(proc.returncode, proc.stderr)
    assert "cannot write the output to /dev/full: No space left on device" in line


def test_every_file_the_lab_writes_follows_the_umask(out, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHROMIUM", str(_fake_chromium(tmp_path)))
    old = os.umask(0o027)
    try:
        assert main(["run", "deep_init", *TINY, "--out", str(out)]) == 0
        assert main(["report", "--out", str(out)]) == 0
        assert main(["pdf", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    for rel in ("data/deep_init.json", "index.html", "report.md", "report.pdf", "figures/p2_activations.png"):
        assert stat.S_IMODE((out / rel).stat().st_mode) == 0o640, rel
    assert stat.S_IMODE((out / "figures").stat().st_mode) == 0o750


def test_the_table_of_hostile_cases_is_large():
    assert len(LINK_CASES) + len(DAMAGE_CASES) + len(GATE_CASES) >= 36
