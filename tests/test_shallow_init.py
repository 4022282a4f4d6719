"""Part 1 end to end on the quick profile: picks, divergence, breakers, findings, section and templates.

    pytest tests/test_shallow_init.py -q
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lab.config import ShallowInitConfig, config_to_dict, make_config
from lab.context import RunContext
from lab.errors import LabError
from lab.experiments.shallow_init import LN2, log_steps, pick_sigmas, plateau_length, run
from lab.report import template_env
from lab.results import ExperimentResult, load_result, save_result
from lab.sections import FigureSink
from lab.sections.shallow_init import build, discussion, loss_story


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick run, saved and reloaded: the tests see exactly what the JSON holds (None, not NaN)."""
    cfg = make_config("shallow_init", "quick")
    outcome = run(cfg, RunContext(quiet=True))
    path = tmp_path_factory.mktemp("p1") / "shallow_init.json"
    save_result(ExperimentResult("shallow_init", config_to_dict(cfg), outcome.metrics,
                                 findings=[f.to_dict() for f in outcome.findings]), path)
    return cfg, outcome, load_result(path), path


def _median(entry: dict, key: str) -> float:
    """Median over seeds from the per-seed list, recomputed here (None = diverged/never = +inf)."""
    return float(np.median([math.inf if v is None else v for v in entry[key]]))


def test_helpers_measure_what_they_say():
    assert plateau_length(np.array([LN2, LN2 * 1.005, LN2 * 0.97, LN2]), 0.01) == 2
    assert plateau_length(np.array([LN2, np.nan, LN2]), 0.01) == 1  # a divergence ends the plateau
    assert plateau_length(np.full(5, LN2), 0.01) == 5
    steps = log_steps(999, 40)
    assert steps[0] == 0 and steps[-1] == 999 and steps == sorted(set(steps)) and len(steps) <= 40


def test_config_rejects_bad_values():
    with pytest.raises(LabError):
        ShallowInitConfig(lr_overflow=0)
    with pytest.raises(LabError):
        ShallowInitConfig(slow_min_plateau=1.5)
    with pytest.raises(LabError):
        ShallowInitConfig(scale_factors=(1.0, -2.0))


def test_picks_come_from_the_grid_and_meet_their_criteria(quick):
    cfg, _, result, _ = quick
    m = result.metrics
    sweep = {e["sigma"]: e for e in m["sweep"]}
    picks = m["picks"]
    assert len(m["sigmas"]) == cfg.n_sigmas and m["sigmas"][0] == cfg.sigma_min and m["sigmas"][-1] == cfg.sigma_max
    min_plateau = cfg.slow_min_plateau * cfg.steps
    good_val = None
    if picks["good"]["sigma"] is not None:
        e = sweep[picks["good"]["sigma"]]
        assert _median(e, "plateau_steps") < min_plateau
        assert abs(_median(e, "init_loss") / LN2 - 1) <= cfg.init_loss_tol
        good_val = _median(e, "final_val_loss")
        # the lowest validation loss among every sigma that passes the same tests
        rivals = [_median(o, "final_val_loss") for o in m["sweep"] if _median(o, "plateau_steps") < min_plateau
                  and abs(_median(o, "init_loss") / LN2 - 1) <= cfg.init_loss_tol and o["n_diverged"] == 0]
        assert good_val == min(rivals)
    for name in ("slow", "large"):
        p = picks[name]
        if p["sigma"] is None:  # reported missing: then nothing on the grid may meet it
            assert p["missing_reason"] and p["candidates"] == []
            continue
        e = sweep[p["sigma"]]
        assert e["spec"] == f"normal:{p['sigma']:.4g}"
        if name == "slow":
            assert _median(e, "plateau_steps") >= min_plateau
            assert float(np.median(e["final_val_acc"])) >= cfg.slow_min_acc
        else:
            assert _median(e, "init_loss") > cfg.large_init_factor * LN2
            assert _median(e, "final_val_loss") >= cfg.large_val_factor * good_val
            assert e["n_diverged"] == 0 and _median(e, "final_train_loss") < LN2
    # the quick profile is meant to find all three (it keeps the lab's 1000 steps); ordered small -> large
    s, g, lg = (picks[k]["sigma"] for k in ("slow", "good", "large"))
    assert s is not None and g is not None and lg is not None and s < g < lg


def test_a_pick_that_nothing_meets_is_reported_missing(quick):
    cfg, _, result, _ = quick
    m = result.metrics
    impossible = replace(cfg, slow_min_acc=1.0, slow_min_plateau=0.99)  # a plateau of 99 % of the steps AND 100 %
    picks = pick_sigmas([{**e, "median": {k: (math.inf if v is None else v) for k, v in e["median"].items()}}
                         for e in m["sweep"]], impossible)
    assert picks["slow"]["sigma"] is None and "no sigma" in picks["slow"]["missing_reason"]
    text = " ".join(discussion({**m, "picks": picks, "init_arms": {k: v for k, v in m["init_arms"].items()
                                                                       if k != "slow"}}, config_to_dict(impossible)))
    assert "No sigma met the slow criterion" in text


def test_divergent_arm_stops_and_is_recorded_without_nan(quick):
    cfg, _, result, path = quick
    arm = result.metrics["breakers"]["lr_overflow"]
    diverged = [d for d in arm["diverged_at"] if d is not None]
    assert diverged and arm["n_diverged"] == len(diverged)
    first = min(diverged)
    steps = arm["curve"]["steps"]
    after = [i for i, s in enumerate(steps) if s > first]
    if arm["n_diverged"] == len(arm["seeds"]):  # every seed stopped: nothing after the divergence exists
        assert all(arm["curve"]["median"][i] is None for i in after)
        assert arm["median"]["final_val_acc"] is None
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    json.loads(path.read_text())  # strict JSON
    assert loss_story(arm, LN2, cfg.steps, cfg.early_step).startswith("diverged (NaN/Inf) at step")


def test_breakers_break_what_they_say(quick):
    cfg, _, result, _ = quick
    m = result.metrics
    ref = m["init_arms"]["good"]["median"]
    br = {k: a["median"] for k, a in m["breakers"].items()}
    # shuffled labels: it still trains (training loss falls) but ends worse on true validation labels
    assert br["shuffled"]["final_train_loss"] < br["shuffled"]["init_loss"]
    assert br["shuffled"]["final_val_acc"] < ref["final_val_acc"] - 0.1
    # all-zero init: symmetry is never broken, the loss never leaves ln 2, every hidden unit is flat
    assert br["zeros"]["plateau_steps"] == cfg.steps and br["zeros"]["flat_units"] == 1.0
    # no biases: a positively homogeneous net cannot separate the rings
    assert br["no_bias"]["final_val_acc"] < 0.6 < ref["final_val_acc"]
    # lr far too large: the loss ends above chance, the output ignores the input in most seeds
    assert br["lr_big"]["final_train_loss"] > LN2
    assert sum(m["breakers"]["lr_big"]["constant_output"]) >= len(m["seeds"]) / 2


def test_data_scaling_matches_weight_scaling_at_init(quick):
    _, _, result, _ = quick
    m = result.metrics
    base = float(m["base_init"].split(":")[1])
    sweep = {e["sigma"]: e for e in m["sweep"]}
    for key, factor in (("x0.01", 0.01), ("x100", 100.0)):
        equiv = base * factor ** (1 / 3)
        near = min(sweep, key=lambda s: abs(math.log(s / equiv)))
        if abs(math.log(near / equiv)) < 0.01:  # on the grid: same seeds, so the same logits up to rounding
            assert m["scaling"][key]["init_loss"] == pytest.approx(sweep[near]["init_loss"], rel=2e-3)


def test_findings_cover_every_arm_and_flag_the_large_init(quick):
    _, outcome, result, _ = quick
    m = result.metrics
    names = [f.name for f in outcome.findings]
    assert len(names) == len(m["init_arms"]) + len(m["scaling"])
    assert all(f.scope == "finding" for f in outcome.findings)
    by_label = {f.name.split(": ", 1)[1]: f for f in outcome.findings}
    assert not by_label[m["init_arms"]["large"]["label"]].passed  # ~80 ln 2: far off, reported, never a gate
    assert by_label[m["init_arms"]["good"]["label"]].passed


def test_batched_sweep_agrees_with_the_per_model_path(quick):
    _, _, result, _ = quick
    assert result.metrics["crosscheck"]["max_abs_diff_train_loss"] < 1e-5


def test_section_builds_figures_tables_and_a_discussion_that_cites_numbers(quick, tmp_path):
    cfg, _, result, _ = quick
    m = result.metrics
    built = build(result, FigureSink(tmp_path))
    names = [f.name for f in built["figures"]]
    assert names == ["p1_data", "p1_sweep", "p1_init_curves", "p1_boundaries", "p1_scaling", "p1_breakers"]
    assert all((tmp_path / f"{n}.png").stat().st_size > 5000 for n in names)
    assert len(built["tables"]) == 5 and all(t.rows for t in built["tables"])
    breakers = built["tab"]["breakers"]
    assert any("diverged (NaN/Inf) at step" in row[1] for row in breakers.rows)
    text = " ".join(built["discussion"])
    slow = m["init_arms"]["slow"]
    assert f"sigma = {slow['sigma']:.4g}" in text and f"{slow['median']['plateau_steps']:g} of {cfg.steps} steps" in text
    assert f"{m['picks']['large']['measured']['val_ratio']:.3g}x the good sigma's" in text
    shuffled_acc = m["breakers"]["shuffled"]["median"]["final_val_acc"]
    assert f"{100 * shuffled_acc:.1f} %" in text


def test_templates_render_the_section(quick, tmp_path):
    _, _, result, _ = quick
    from lab.report import _section_view
    from lab.sections import build_section

    sec = _section_view(build_section("shallow_init", 1, "Part 1", result, FigureSink(tmp_path)))
    env = template_env()
    html = env.get_template("sections/shallow_init.html.j2").render(sec=sec, result=result)
    md = env.get_template("sections/shallow_init.md.j2").render(sec=sec, result=result)
    for doc in (html, md):
        assert "The sweep and the three picked" in doc and "Other ways of breaking convergence" in doc
        assert f"{result.config['n_sigmas']} log-spaced values" in doc
    assert html.count("<figure") == 6 and html.count("<table>") == 5
    assert md.count("](figures/p1_") == 6
    assert Path(tmp_path / "p1_sweep.png").exists()
