"""The results schemas (lab/schema.py) cover every key the sections and templates read, and every damage is stale.

    pytest tests/test_schema_coverage.py

A quick run's results are rendered once with their metrics and config wrapped in recording dicts: every key read
with ``[...]`` (or a template's attribute access) is logged. Deleting any one of them from the file must make
lab.results.result_problem name it (so `run` recomputes and `report` says which file, which field and the
--force command) instead of reaching a section as a KeyError or a template error.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from lab.experiments import EXPERIMENTS
from lab.results import record_digest, result_problem
from lab.schema import field_path, record_problem

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_pixel_figures(monkeypatch):
    """Keys are what these tests look at, not pixels: a 1x1 PNG instead of seconds of savefig per rendering."""
    import lab.plots

    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")

    def tiny(fig):
        lab.plots.plt.close(fig)
        return png
    monkeypatch.setattr(lab.plots, "figure_png", tiny)


class _Dict(dict):
    """A dict that logs the paths of the keys read through it (hard reads only: ``.get`` may miss by design)."""

    def __init__(self, data, path, log):
        super().__init__(data)
        self._path, self._log = path, log

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self._log.add((*self._path, key))
        return _track(value, (*self._path, key), self._log)

    def get(self, key, default=None):
        if dict.__contains__(self, key):
            return _track(dict.__getitem__(self, key), (*self._path, key), self._log)
        return default

    # iterating a mapping reads whichever keys it holds (a smaller run holds fewer): only what lies below them
    def items(self):
        return [(k, _track(dict.__getitem__(self, k), (*self._path, k), self._log)) for k in dict.keys(self)]

    def values(self):
        return [v for _, v in self.items()]


class _List(list):
    def __init__(self, data, path, log):
        super().__init__(data)
        self._path, self._log = path, log

    def __getitem__(self, index):
        value = super().__getitem__(index)
        if isinstance(index, slice):
            return value
        return _track(value, (*self._path, index if index >= 0 else len(self) + index), self._log)

    def __iter__(self):
        return (_track(v, (*self._path, i), self._log) for i, v in enumerate(list.__iter__(self)))


def _track(value, path, log):
    if isinstance(value, dict) and not isinstance(value, _Dict):
        return _Dict(value, path, log)
    if isinstance(value, list) and not isinstance(value, _List):
        return _List(value, path, log)
    return value


def _reads(result, tmp_path) -> set[tuple]:
    """Every key path that building and rendering the result's section read with [...]."""
    from lab.report import _section_view, render_section
    from lab.results import ExperimentResult
    from lab.sections import FigureSink, build_section

    log: set[tuple] = set()
    tracked = ExperimentResult(result.experiment, _track(result.config, ("config",), log),
                               _track(result.metrics, ("metrics",), log), result.provenance, result.findings)
    part, title = EXPERIMENTS[result.experiment]
    sec = build_section(result.experiment, part, title, tracked, FigureSink(tmp_path / result.experiment))
    render_section(result.experiment, _section_view(sec), tracked)
    return log


def _render_error(raw: dict, tmp_path) -> BaseException | None:
    """None when the section builds and renders, or refuses in one line; else the exception it crashed with."""
    import jinja2

    from lab.errors import LabError
    from lab.report import _section_view, render_section
    from lab.results import ExperimentResult
    from lab.sections import FigureSink, build_section

    result = ExperimentResult(raw["experiment"], raw["config"], raw["metrics"], raw["provenance"], raw["findings"])
    part, title = EXPERIMENTS[result.experiment]
    try:
        sec = build_section(result.experiment, part, title, result, FigureSink(tmp_path / "damaged"))
        render_section(result.experiment, _section_view(sec), result)
    except (LabError, jinja2.UndefinedError):
        return None
    except Exception as exc:  # noqa: BLE001 - what the test is looking for
        return exc
    return None


def _delete(raw: dict, path: tuple) -> dict:
    """A copy of raw without the key at path (only the containers along the path are copied: the rest is shared)."""
    damaged = copy.copy(raw)
    node = damaged
    for key in path[:-1]:
        node[key] = copy.copy(node[key])
        node = node[key]
    del node[path[-1]]
    return damaged


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_key_the_report_reads_is_in_the_schema(name, rendered, tmp_path):
    from lab.results import load_result

    path = rendered / "data" / f"{name}.json"
    result = load_result(path, name)
    raw = json.loads(path.read_text())
    reads = _reads(result, tmp_path)
    # one representative per list position pattern (sweep[0].sigma stands for sweep[i].sigma)
    seen, todo = set(), []
    for p in sorted(reads, key=lambda p: (len(p), [str(x) for x in p])):
        if isinstance(p[-1], int):
            continue  # list items: lengths are checked by the schema's length rules
        pattern = tuple("#" if isinstance(x, int) else x for x in p)
        if pattern not in seen:
            seen.add(pattern)
            todo.append(p)
    assert len(todo) > 20, f"only {len(todo)} keys read: the recorder is not seeing the section's reads"
    # the schema alone (the digest would catch any deletion anyway: lab.results.result_problem checks both)
    uncovered = [p for p in todo if record_problem(_delete(raw, p), name) is None]
    # Keys the schema may let go missing (arms by name: which exist depends on the run) must then make the section
    # say so in one line (LabError, or a template's UndefinedError that lab.report turns into one), never crash.
    crashes = [f"{field_path(p)}: {exc!r}" for p in uncovered
               if (exc := _render_error(copy.deepcopy(_delete(raw, p)), tmp_path))]
    assert not crashes, f"keys the report reads whose absence is neither in the schema nor a one-line error: {crashes}"
    assert len(uncovered) < len(todo) / 4, [field_path(p) for p in uncovered]  # the schema names most fields itself


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_the_saved_quick_run_fits_its_schema_and_digest(name, rendered):
    raw = json.loads((rendered / "data" / f"{name}.json").read_text())
    assert result_problem(raw, name) is None
    assert raw["provenance"]["content_digest"] == record_digest(raw)
    raw["provenance"]["wall_time_s"] += 1  # even a change outside the metrics is a changed file
    assert re.search(r"changed after it was written", result_problem(raw, name))
