"""Render the report from saved results: figures, tables, discussion -> index.html and report.md. Never trains.

    paths = render_report(Path("report"))   # reads report/data/*.json, writes report/index.html, report.md

Rendering happens in a staging folder and is swapped in at the end, so a failure (a missing key, a
broken template, a failed gate) leaves the previous report untouched.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable

import jinja2
import torch

from lab import TEMPLATES_DIR
from lab.errors import LabError
from lab.experiments import EXPERIMENTS
from lab.results import ExperimentResult, atomic_write_text, load_gate_record, load_json, load_result
from lab.runner import current_key, made_by_this_code, rerun_command, rerun_hint, result_path
from lab.sections import FigureSink, Section, build_section

TITLE = "Training from Scratch: Initialization & Regularization"


def md_cell(value: object) -> str:
    """A value safe inside a Markdown pipe-table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def template_env() -> jinja2.Environment:
    """StrictUndefined: a misspelt key fails loudly. Autoescape on for HTML templates only."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["mdcell"] = md_cell
    return env


def checks_path(out: Path) -> Path:
    return Path(out) / "data" / "checks.json"


def load_gate(out: Path):
    """The gate's checks; refusing to render when missing or failed."""
    path = checks_path(out)
    if not path.exists():
        raise LabError(f"no gate results at {path}: run the sanity checks first (make check or python -m lab check)")
    from lab.gate import verify_record

    record = load_gate_record(path)
    verify_record(record, path)
    return record


def gather(out: Path) -> tuple[dict[str, ExperimentResult], dict[str, Any] | None]:
    results = {}
    for name in EXPERIMENTS:
        path = result_path(out, name)
        if path.exists() or path.is_symlink():
            results[name] = load_result(path, name, fix=rerun_hint(name, path, out), complete=True)
    bench = Path(out) / "data" / "bench.json"
    return results, (load_json(bench, fix=BENCH_FIX) if bench.exists() else None)


BENCH_FIX = "delete it or rerun make bench"


def code_check(results: dict[str, ExperimentResult]) -> dict[str, bool | None]:
    """Per result: computed by this checkout's code and torch (True), by other code (False), unknown (None)."""
    same = {}
    for name, r in results.items():
        key = current_key(r)
        same[name] = None if key is None else key == r.provenance.get("cache_key")
    return same


def build_context(out: Path, staging: Path) -> dict[str, Any]:
    gate = load_gate(out)
    checks = gate.checks
    results, bench = gather(out)
    if not results:
        raise LabError(f"no experiment results in {Path(out) / 'data'}: run python -m lab run all first")
    same_code = code_check(results)
    warnings = []  # told only once the report is in place: a failed render prints its one error line alone
    for name, same in same_code.items():
        if same is False:
            cmd = rerun_command(name, results[name].config, results[name].provenance["profile"],
                                results[name].provenance["device"], out)
            warnings.append(f"{result_path(out, name)} was computed by other code or another torch than this "
                            f"checkout; rendered as it is{f' (to refresh it: {cmd})' if cmd else ''}")
    sink = FigureSink(staging / "figures")
    perf = None  # first: a benchmark file of the wrong shape is refused before seconds of drawing
    if bench is not None:
        from lab.sections import perf as perf_section  # only when a benchmark run left numbers

        try:
            perf = perf_section.build(bench, sink)
        except (MemoryError, OSError):
            raise  # the machine's problem, not the file's: lab.__main__ says so
        except Exception as exc:  # noqa: BLE001 - a benchmark file of another shape, whatever it makes the code raise
            if os.environ.get("LAB_DEBUG", "").strip() not in ("", "0"):
                raise
            msg = (str(exc).strip().splitlines() or [""])[0][:200]
            raise LabError(f"{Path(out) / 'data' / 'bench.json'}: not a benchmark file this report can read "
                           f"({type(exc).__name__}: {msg}); {BENCH_FIX}") from None
    sections: list[Section] = []
    for name, (part, title) in EXPERIMENTS.items():
        if name in results:
            r = results[name]
            if made_by_this_code(r):  # rerunning would give the same file: the fault is in rendering
                fix = (f"this checkout computed it, so rerunning will not help: a bug in lab/sections/{name}.py "
                       "(LAB_DEBUG=1 python -m lab report shows the traceback)")
            else:
                fix = rerun_hint(name, result_path(out, name), out)
            sections.append(build_section(name, part, title, r, sink, fix=fix))
        else:
            sections.append(Section(experiment=name, part=part, title=title, extra={"missing": True}))
    findings = [
        {**f, "source": name} for name, r in results.items() for f in r.findings
    ]
    prov = [r.provenance for r in results.values()]
    commits = sorted({p.get("git_commit") or "n/a" for p in prov})
    return {
        "title": TITLE,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "profiles": sorted({p["profile"] for p in prov}),
        "devices": sorted({p["device"] for p in prov}),
        "torch_version": torch.__version__,
        "commit": ", ".join(c[:10] for c in commits),
        "dirty": any(p.get("git_dirty") for p in prov),
        "checks": [c.to_dict() for c in checks],
        "gate_passed": sum(c.passed for c in checks),
        "gate_total": len(checks),
        "gate_time_s": _number(gate.provenance.get("wall_time_s")),
        "findings": findings,
        "sections": [_section_view(s) for s in sections],
        "results": results,
        "same_code": same_code,
        "warnings": warnings,
        "perf": perf,
    }


def _number(value: Any) -> float | None:
    """A number the templates may format, or None (a hand-edited record may hold anything there)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _section_view(sec: Section) -> dict[str, Any]:
    view = {"experiment": sec.experiment, "part": sec.part, "title": sec.title, "figures": sec.figures,
            "tables": sec.tables, "discussion": sec.discussion, "extra": sec.extra,
            "missing": bool(sec.extra.get("missing"))}
    return view


def _swap_in(staging: Path, out: Path) -> None:
    """Move the finished rendering into place: figures folder first, then the two documents."""
    new_figs, figs = staging / "figures", out / "figures"
    old = None
    if figs.exists():
        old = Path(tempfile.mkdtemp(prefix=".old-figures-", dir=out))
        os.replace(figs, old / "figures")
    os.replace(new_figs, figs)
    for name in ("report.md", "index.html"):
        os.replace(staging / name, out / name)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C / SIGTERM wait until the swap is done: figures and documents are replaced together or not at all."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    except (AttributeError, ValueError, OSError):  # not POSIX, or not the main thread: the swap is short anyway
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def render_report(out: Path, warn: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Render index.html (self-contained) and report.md (+ figures/) under ``out``.

    ``warn`` is told about results computed by other code than this checkout (they are still rendered).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, want_dir in (("index.html", False), ("report.md", False), ("figures", True)):
        path = out / name
        if path.exists() and path.is_dir() != want_dir:
            kind = "a folder" if path.is_dir() else "a file"
            raise LabError(f"{path} is {kind} where the report's {'folder' if want_dir else 'file'} belongs; move it "
                           "away and rerun")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        ctx = build_context(out, staging)
        env = template_env()
        html = env.get_template("report.html.j2").render(**ctx)
        md = env.get_template("report.md.j2").render(**ctx)
        atomic_write_text(staging / "index.html", html)
        atomic_write_text(staging / "report.md", md)
        with _signals_deferred():
            _swap_in(staging, out)
        for message in ctx["warnings"] if warn else ():
            warn(message)
    except jinja2.UndefinedError as exc:
        raise LabError(f"template error, report not rendered: {exc.message}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"html": out / "index.html", "markdown": out / "report.md", "figures": out / "figures"}


__all__ = ["TITLE", "build_context", "checks_path", "load_gate", "render_report", "template_env"]
