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
import textwrap
from pathlib import Path
from typing import Any, Callable

import jinja2
import torch

from lab import TEMPLATES_DIR
from lab.errors import LabError
from lab.answers import answer_rows
from lab.experiments import EXPERIMENTS
from lab.numbering import Numbering, md_escape, template_filters
from lab.outdir import clean_temp_files, make_temp_dir
from lab.results import ExperimentResult, as_text, atomic_write_text, load_gate_record, load_json, load_result
from lab.runner import current_key, made_by_this_code, rerun_command, rerun_hint, result_path
from lab.sections import FigureSink, Section, build_section
from lab.sections.protocol import part_status

TITLE = "Training from Scratch: Initialization & Regularization"


def md_cell(value: object) -> str:
    """A value shown as written inside a Markdown pipe-table cell (markup characters and pipes escaped)."""
    return md_escape(value)


# result cells of the checklist -> the CSS class that colours them
RESULT_CLASS = {"pass": "pass", "within": "pass", "FAIL": "fail", "outside": "finding"}


def template_env(numbers: Numbering | None = None, markdown: bool = False) -> jinja2.Environment:
    """StrictUndefined: a misspelt key fails loudly. Autoescape on for HTML templates only.

    ``numbers`` numbers figures and tables as the templates place them; the ``refs`` filter turns reference
    tokens ([[fig:name]]) into numbered links, for HTML or (``markdown``) for Markdown.
    """
    numbers = numbers if numbers is not None else Numbering()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["mdcell"] = md_cell
    env.filters["mdesc"] = md_escape
    env.filters.update(template_filters(numbers, markdown))
    env.globals["numbers"] = numbers
    env.globals["RESULT_CLASS"] = RESULT_CLASS
    # the report's context names its appendices; a section rendered on its own (tests) gets the usual letters
    env.globals["appendix_letter"] = appendix_letters(details=True, performance=False)
    return env


def appendix_letters(details: bool, performance: bool) -> dict[str, str]:
    """Letters of the appendices in report order: checklist, discussion, then those present."""
    names = ["checks", "discussion", *(["tables"] if details else []), *(["performance"] if performance else []),
             "provenance"]
    return dict(zip(names, "ABCDEF"))


def checks_path(out: Path) -> Path:
    return Path(out) / "data" / "checks.json"


def load_gate(out: Path):
    """The gate's checks; refusing to render when missing or failed."""
    path = checks_path(out)
    if not path.exists():
        raise LabError(f"no gate results at {path}: run the sanity checks first (make check or python -m lab check)")
    from lab.gate import gate_names, verify_record

    record = load_gate_record(path, expected=gate_names())
    verify_record(record, path)
    return record


def gather(out: Path) -> tuple[dict[str, ExperimentResult], dict[str, Any] | None]:
    results = {}
    for name in EXPERIMENTS:
        path = result_path(out, name)
        if path.exists() or path.is_symlink():
            results[name] = load_result(path, name, fix=rerun_hint(name, path, out), complete=True)
    bench = Path(out) / "data" / "bench.json"
    return results, (as_text(load_json(bench, fix=BENCH_FIX)) if bench.exists() else None)


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
    from lab.sections import perf as perf_section

    view = perf_section.phase_view(results)  # the phases' costs, from the results (lab.cost)
    if bench is None and view is not None:
        perf = perf_section.build(None, sink, results)
    if bench is not None:
        try:
            perf = perf_section.build(bench, sink, results)
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
    protocol = off_protocol(sections, results)
    findings = [
        {**f, "source": name} for name, r in results.items() for f in r.findings
    ]
    gate_s = _number(gate.provenance.get("wall_time_s"))
    passed = sum(c.passed for c in checks)
    outside_findings = [f for f in findings if not f.get("passed")]
    # After every file was read and every section built (their errors name the file): the audit's record, rerun
    # when missing or stale; numbers it could not reproduce raise AuditFailed and nothing is rendered.
    from lab.audit import verified_record

    audit = verified_record(out, "cpu")
    gate_line = (f"{passed} of {len(checks)} gate checks passed{f' in {gate_s:.0f} s' if gate_s is not None else ''}; "
                 f"{len(findings)} findings, {len(outside_findings)} outside their band; {audit.summary()}")
    outside = [[c.name, "gate (FAILED)", c.measured, c.expected] for c in checks if not c.passed]
    outside += [[f["name"], f"finding ({f['source']})", f["measured"], f["expected"]] for f in outside_findings]
    appendix_tables = [t for sec in sections for t in sec.tables if t.appendix]
    appendix_figures = [f for sec in sections for f in sec.figures if f.appendix]
    appendix_letter = appendix_letters(bool(appendix_tables or appendix_figures), perf is not None)
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
        "gate_time_s": gate_s,
        "gate_line": gate_line,
        "gate_failed": passed < len(checks),
        "outside": outside,
        "answers": answer_rows(sections),
        "protocol": protocol,
        "part_titles": {s.part: _title(s) for s in sections},
        "appendix_tables": appendix_tables,
        "appendix_figures": appendix_figures,
        "appendix_letter": appendix_letter,
        "findings": findings,
        "sections": [_section_view(s) for s in sections],
        "results": results,
        "same_code": same_code,
        "warnings": warnings,
        "perf": perf,
    }


def off_protocol(sections: list[Section], results: dict[str, ExperimentResult]) -> dict[str, Any]:
    """Each part's distance from the lab's protocol (the full profile), stored on its section for the answers and
    the section's note; ``off``: some part differs; ``mixed``: the parts ran under different profiles."""
    parts = []
    for sec in sections:
        if sec.extra.get("missing"):
            continue
        r = results[sec.experiment]
        status = part_status(sec.experiment, sec.part, str(r.provenance.get("profile", "unknown")), r.config)
        sec.extra["protocol"] = status
        parts.append(status)
    return {"parts": parts, "off": any(p["off"] for p in parts),
            "mixed": len({p["profile"] for p in parts}) > 1}


def _number(value: Any) -> float | None:
    """A number the templates may format, or None (a hand-edited record may hold anything there)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _title(sec: Section) -> str:
    """A part's heading: the section's own, worded from its run (its net's size), else the lab's name for it."""
    return sec.extra.get("title") or sec.title


def _section_view(sec: Section) -> dict[str, Any]:
    view = {"experiment": sec.experiment, "part": sec.part, "title": _title(sec), "figures": sec.figures,
            "tables": sec.tables, "discussion": sec.discussion, "extra": sec.extra,
            "missing": bool(sec.extra.get("missing")), "protocol": sec.extra.get("protocol")}
    return view


def _swap_in(staging: Path, out: Path) -> None:
    """Move the finished rendering into place: the figures folder, then report.md (which shows those figures), then
    index.html (self-contained). A failure part-way puts back what was moved: old page with old figures, or new
    with new, never a mix."""
    old = make_temp_dir(out, ".old-figures-")
    done: list[tuple[Path, Path]] = []  # (from, to) renames made, undone in reverse on failure
    try:
        for name in ("figures", "report.md", "index.html"):
            if os.path.lexists(out / name):  # a link there is moved itself, never followed
                os.replace(out / name, old / name)
                done.append((out / name, old / name))
            os.replace(staging / name, out / name)
            done.append((staging / name, out / name))
    except BaseException:
        for src, dst in reversed(done):
            with contextlib.suppress(OSError):
                os.replace(dst, src)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C / SIGTERM wait until the swap is done: figures and documents are replaced together or not at all.

    The handlers are swapped for ones that only note the signal (a signal that arrived just before is handled by
    them too: Python runs a handler at the next bytecode, looking it up then); once the swap is over the previous
    handlers are restored and a noted signal is delivered to them.
    """
    caught: list[int] = []

    def note(signum, frame):
        caught.append(signum)

    try:
        previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: the swap is short anyway
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                if caught[0] == signal.SIGINT:
                    raise KeyboardInterrupt
                os.kill(os.getpid(), caught[0])


def render_documents(ctx: dict[str, Any]) -> tuple[str, str]:
    """index.html and report.md from one context, numbered alike.

    Pass 1 renders the HTML to learn the order in which figures and tables are placed; pass 2 renders it again
    knowing every number (the answers table refers forward to figures placed later); the Markdown must place
    the same items in the same order, and every reference must have a target (Numbering.check).
    """
    first = Numbering()
    template_env(first).get_template("report.html.j2").render(**ctx)
    order = first.order()
    placed = set(order)
    for a in ctx["answers"]:  # evidence only where this run placed it (a diverged arm draws fewer figures)
        a["evidence"] = ", ".join(f"[[{r}]]" for r in a["refs"] if r in placed)
    html_numbers, md_numbers = Numbering(order), Numbering(order)
    html = template_env(html_numbers).get_template("report.html.j2").render(**ctx)
    html_numbers.check(html, "html")
    md = template_env(md_numbers, markdown=True).get_template("report.md.j2").render(**ctx)
    md_numbers.check(md, "markdown")
    return html, md


def render_section(experiment: str, view: dict[str, Any], result: ExperimentResult) -> tuple[str, str]:
    """One part's section on its own, as HTML and Markdown (each numbered from 1; references to items of other
    parts or the appendix stay unnumbered): for tests and for looking at one part."""
    html = template_env(Numbering()).get_template(f"sections/{experiment}.html.j2").render(sec=view, result=result)
    md = template_env(Numbering(), markdown=True).get_template(f"sections/{experiment}.md.j2").render(
        sec=view, result=result)
    return html, md


def summary(ctx: dict[str, Any], paths: dict[str, Path]) -> list[str]:
    """The terminal's one-screen summary: where the report is, the gate line, each part's headline answer."""
    lines = [f"report: {paths['html']} (self-contained) and {paths['markdown']}", f"gate: {ctx['gate_line']}"]
    for p in ctx["protocol"]["parts"]:  # the terminal says it too: nobody should submit a smoke run's numbers
        if p["off"]:
            lines.append(textwrap.shorten(f"NOT the lab's protocol: Part {p['part']} (profile {p['profile']}): "
                                          f"{p['full']}", 320, placeholder=" ..."))
    for part in sorted({a["part"] for a in ctx["answers"]}):
        first = next(a for a in ctx["answers"] if a["part"] == part)
        off = " (off the lab's protocol)" if first["off_protocol"] else ""
        lines.append(textwrap.shorten(f"Part {part}{off}: {first['answer']}", 320, placeholder=" ..."))
    return lines


def render_report(out: Path, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Render index.html (self-contained) and report.md (+ figures/) under ``out``; returns their paths and
    ``summary``, the lines the terminal shows (lab.report.summary).

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
    staging = make_temp_dir(out, ".staging-")
    try:
        ctx = build_context(out, staging)
        html, md = render_documents(ctx)
        atomic_write_text(staging / "index.html", html)
        atomic_write_text(staging / "report.md", md)
        clean_temp_files(staging / "figures")  # its journal of temp names: every one is renamed, none goes public
        with _signals_deferred():
            _swap_in(staging, out)
        for message in ctx["warnings"] if warn else ():
            warn(message)
    except jinja2.UndefinedError as exc:
        raise LabError(f"template error, report not rendered: {exc.message}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    paths = {"html": out / "index.html", "markdown": out / "report.md", "figures": out / "figures"}
    return {**paths, "summary": summary(ctx, paths)}


__all__ = ["TITLE", "build_context", "checks_path", "load_gate", "render_documents", "render_report", "render_section",
           "summary",
           "template_env"]
