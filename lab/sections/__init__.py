"""Report sections: one module per experiment turns its results JSON into figures, tables and prose.

    sec = build_section("deep_init", result, sink)   # -> dict for templates/sections/deep_init.*.j2

A section module defines ``build(result, sink) -> dict`` with at least: ``figures`` (list[Figure]),
``tables`` (list[Table]) and ``discussion`` (list[str], every sentence chosen by measured numbers).
It reads numbers only; it never trains.
"""

from __future__ import annotations

import base64
import importlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.plots import save_figure
from lab.results import ExperimentResult


@dataclass
class Figure:
    name: str
    caption: str
    rel_path: str  # relative to the report folder, for report.md
    data_uri: str  # embedded PNG, for the self-contained index.html
    appendix: bool = False  # detail beyond the lab's questions: placed in the appendix, referred to from the body


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    name: str = ""  # anchor and numbering key (tab-<name>); every table the report places has one
    appendix: bool = False  # detail (every sweep point, every k): placed in the appendix, referred to from the body


class FigureSink:
    """Writes figures under <staging>/figures/ and remembers them for both renderings."""

    def __init__(self, fig_dir: Path) -> None:
        self.fig_dir = Path(fig_dir)
        self.fig_dir.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, fig, caption: str, appendix: bool = False) -> Figure:
        png = save_figure(fig, self.fig_dir / f"{name}.png")
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return Figure(name=name, caption=caption, rel_path=f"figures/{name}.png", data_uri=uri, appendix=appendix)


@dataclass
class Section:
    experiment: str
    part: int
    title: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    discussion: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers for tables and prose: significant digits, None/NaN shown as 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.{max(digits - 1, 1)}e}"
        if abs(value) >= 10 ** digits:
            return f"{value:,.0f}"  # 1,289 rather than 1.29e+03
        return f"{value:.{digits}g}"  # significant digits, also below 1 (0.00156, not 0.002)
    return str(value)


def build_section(name: str, part: int, title: str, result: ExperimentResult, sink: FigureSink,
                  fix: str | None = None) -> Section:
    """Build one part's section; a results file it cannot draw is one LabError ending in ``fix``."""
    module = importlib.import_module(f"lab.sections.{name}")
    try:
        with warnings.catch_warnings():
            # A diverged part is a result, not a problem: numpy's all-NaN notes and matplotlib's "nothing positive
            # to log-scale" notes would only clutter the terminal (lab.plots.guard_log_axes marks such panels).
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message=r".*(log-scale|log-scaled|non-positive|No artists).*")
            built = module.build(result, sink)
    except (MemoryError, OSError):
        raise  # the machine's problem, not the file's: lab.__main__ says so
    except Exception as exc:  # noqa: BLE001 - whatever the numbers make the drawing code raise
        # A results file this code cannot draw (older layout, hand edits, a shape no run makes): one line, not a
        # traceback. The fix the caller passes keeps what was asked for (the same settings), never a bare --force
        # with defaults, and says when the file is exactly what this checkout computed (then it is a bug).
        if os.environ.get("LAB_DEBUG", "").strip() not in ("", "0"):
            raise
        msg = (str(exc).strip().splitlines() or [""])[0][:200]
        raise LabError(
            f"cannot render section '{name}' from its results ({type(exc).__name__}: {msg}); "
            f"{fix or f'rerun python -m lab run {name} --force with the settings it was run with'}"
        ) from None
    known = {"figures", "tables", "discussion"}
    return Section(
        experiment=name,
        part=part,
        title=title,
        figures=built.get("figures", []),
        tables=built.get("tables", []),
        discussion=built.get("discussion", []),
        extra={k: v for k, v in built.items() if k not in known},
    )


__all__ = ["Figure", "FigureSink", "Section", "Table", "build_section", "fmt"]
