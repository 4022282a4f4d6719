"""Part 1 end to end on the quick profile: picks, divergence, breakers, findings, section and templates.

    pytest tests/test_shallow_init.py -q
"""

from __future__ import annotations

import copy
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
from lab.report import render_section
from lab.results import ExperimentResult, load_result, save_result, to_jsonable
from lab.sections import FigureSink
from lab.sections.shallow_init import CROSSCHECK_TOL, build, discussion, loss_story


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
    no_slow = {k: v for k, v in m["init_arms"].items() if k != "slow"}
    text = " ".join(discussion({**m, "picks": picks, "init_arms": no_slow}, config_to_dict(impossible)))
    assert "No sigma met the slow criterion" in text
    reaching = [r for r in picks["criteria_table"] if r["acc"] is not None and r["acc"] >= 1.0 and not r["n_diverged"]]
    assert ("among the sigmas reaching that accuracy" in text) == bool(reaching)
    # No sigma reaches the accuracy bar at all: the text must say so, not name a "longest plateau" among none.
    low = [{**e, "median": {**{k: (math.inf if v is None else v) for k, v in e["median"].items()},
                            "final_val_acc": 0.4}} for e in m["sweep"]]
    picks = pick_sigmas(low, cfg)
    assert picks["slow"]["sigma"] is None
    text = " ".join(discussion({**m, "picks": picks, "init_arms": no_slow}, config_to_dict(cfg)))
    assert "no sigma reached that accuracy" in text
    assert "among the sigmas reaching that accuracy" not in text and "longest plateau was" not in text


def test_slow_pick_excludes_a_sigma_with_a_diverged_seed(quick):
    cfg, _, result, _ = quick
    m = result.metrics
    slow = m["picks"]["slow"]["sigma"]
    sweep = [{**e, "median": {k: (math.inf if v is None else v) for k, v in e["median"].items()}} for e in m["sweep"]]
    assert pick_sigmas(sweep, cfg)["slow"]["sigma"] == slow
    for e in sweep:
        if e["sigma"] == slow:
            e["n_diverged"] = 1  # its accuracy median would be over the survivors only
    picks = pick_sigmas(sweep, cfg)
    assert picks["slow"]["sigma"] != slow and slow not in picks["slow"]["candidates"]
    assert "no diverged seed" in picks["slow"]["rule"]


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
    assert result.metrics["crosscheck"]["max_abs_diff_train_loss"] < CROSSCHECK_TOL == 1e-5


def _diverge(arm: dict, n: int, keep_acc: bool = False) -> None:
    """Make an arm look like one whose median seed diverged: inf losses (null after JSON), k = n - 1 (>= 1)."""
    k = max(n - 1, 1)
    acc = arm["median"].get("final_val_acc")
    arm["median"] = {key: math.inf for key in arm["median"]}
    arm["median"]["final_val_acc"] = acc if keep_acc else math.nan
    arm["max"] = {key: math.inf for key in arm["max"]}
    arm["n_diverged"], arm["diverged_at"] = k, [7] * k + [None] * (n - k)


def _render(result: ExperimentResult, tmp_path) -> tuple[dict, str, str]:
    from lab.report import _section_view
    from lab.sections import build_section

    sec = build_section("shallow_init", 1, "Part 1", result, FigureSink(tmp_path))
    html, md = render_section("shallow_init", _section_view(sec), result)
    return sec, html, md


def test_section_renders_when_medians_diverged(quick, tmp_path):
    """Medians that are inf/NaN become null in the JSON: every sentence and cell must cope and say 'diverged'."""
    _, _, result, _ = quick
    m = copy.deepcopy(result.metrics)
    n = len(m["seeds"])
    for group in ("init_arms", "scaling", "breakers"):
        for arm in m[group].values():
            _diverge(arm, n)
    for e in m["sweep"][:3]:
        _diverge(e, n)
    m["crosscheck"]["max_abs_diff_train_loss"] = math.nan
    data = to_jsonable(m)
    assert data["init_arms"]["good"]["median"]["final_val_loss"] is None  # the round trip made them null
    assert data["init_arms"]["good"]["max"]["final_train_loss"] is None
    sec, html, md = _render(ExperimentResult("shallow_init", result.config, data), tmp_path)
    lines = sec.discussion
    k = max(n - 1, 1)
    for name in ("Slow", "Good", "Large"):
        line = next(line for line in lines if line.startswith(name + " (sigma"))
        assert f"{k}/{n} seeds diverged" in line and "diverged" in line.split(":", 1)[1], line
    glorot = next(line for line in lines if line.startswith("Glorot"))
    assert "final validation loss diverged" in glorot and "no sweep was needed" not in glorot
    shuffled = next(line for line in lines if line.startswith("Training labels shuffled"))
    assert "no median final loss" in shuffled and "learns nothing" not in shuffled
    assert any("DISAGREE" in line for line in lines)
    for doc in (html, md):
        assert "DISAGREES with the per-model" in doc and "agrees with" not in doc
    init_tab = sec.extra["tab"]["init_arms"]
    assert all("diverged" in row[4] for row in init_tab.rows)  # final train loss column


def test_partial_divergence_is_reported_next_to_the_accuracy(quick, tmp_path):
    _, _, result, _ = quick
    m = copy.deepcopy(result.metrics)
    n = len(m["seeds"])
    _diverge(m["breakers"]["shuffled"], n, keep_acc=True)
    _diverge(m["init_arms"]["large"], n, keep_acc=True)
    sec, _, _ = _render(ExperimentResult("shallow_init", result.config, to_jsonable(m)), tmp_path)
    k = max(n - 1, 1)
    shuffled = next(line for line in sec.discussion if line.startswith("Training labels shuffled"))
    assert f"seeds that did not diverge ({k}/{n} seeds diverged)" in shuffled
    row = next(r for r in sec.extra["tab"]["init_arms"].rows if r[0] == m["init_arms"]["large"]["label"])
    assert row[7].endswith(f"({k}/{n} seeds diverged)")  # final val acc: a median over the survivors only


def test_shuffled_labels_say_nothing_transfers_only_at_chance(quick):
    cfg, _, result, _ = quick
    m = copy.deepcopy(result.metrics)
    c = config_to_dict(cfg)
    band = 3 * math.sqrt(0.25 / cfg.n_val)

    def line():
        return next(x for x in discussion(m, c) if x.startswith("Training labels shuffled"))

    acc = m["breakers"]["shuffled"]["median"]["final_val_acc"]
    if abs(acc - 0.5) > band:  # the quick run: clearly above chance
        assert "learns nothing" not in line() and f"{100 * (acc - 0.5):+.1f} points from chance" in line()
    m["breakers"]["shuffled"]["median"]["final_val_acc"] = 0.5 + band / 2
    assert "learns nothing that transfers to true labels" in line()
    m["breakers"]["shuffled"]["median"]["final_val_acc"] = 0.5 + 2 * band
    assert "learns nothing" not in line() and "part of what it fitted does transfer" in line()


def test_conditional_clauses_follow_the_numbers(quick, tmp_path):
    cfg, _, result, _ = quick
    m = copy.deepcopy(result.metrics)
    c = config_to_dict(cfg)
    good = m["init_arms"]["good"]
    glorot = m["init_arms"]["glorot"]

    def say(prefix):
        return next(x for x in discussion(m, c) if x.startswith(prefix))

    glorot["median"]["final_val_loss"] = 1.01 * good["max"]["final_val_loss"]  # above the good sigma's worst seed
    assert "no sweep was needed" not in say("Glorot") and "above the good sigma's worst seed" in say("Glorot")
    glorot["median"]["final_val_loss"] = (good["min"]["final_val_loss"] + good["max"]["final_val_loss"]) / 2
    assert "within the seed range" in say("Glorot") and "no sweep was needed" in say("Glorot")
    # a raw-input accuracy above the reference is not "close to" it
    ref_acc = good["median"]["final_val_acc"]
    m["scaling"]["raw"]["median"]["final_val_acc"] = ref_acc - 0.2
    assert "20.0 points below" in say("Unnormalised")
    m["scaling"]["raw"]["median"]["final_val_acc"] = None
    assert "close to" not in say("Unnormalised")
    mean = m["data"]["mean"]
    assert "near (10, 10)" not in say("Unnormalised") and f"{mean[0]:.3g}" in say("Unnormalised")
    # a frozen loss below ln 2 is not labelled "(> ln 2)"
    arm = copy.deepcopy(m["breakers"]["lr_big"])
    arm["median"].update(init_loss=0.1, final_train_loss=0.5, early_loss=0.5, peak_loss=0.9)
    story = loss_story(arm, LN2, cfg.steps, cfg.early_step)
    assert "froze at 0.5" in story and "> ln 2" not in story
    assert "> ln 2" in loss_story(m["breakers"]["lr_big"], LN2, cfg.steps, cfg.early_step)
    # no good pick: the large sentence and the sweep note name the sweep minimum, not "the good sigma"
    m["picks"] = {**m["picks"], "good": {**m["picks"]["good"], "sigma": None, "missing_reason": "test"}}
    m["init_arms"] = {k: v for k, v in m["init_arms"].items() if k != "good"}
    assert "the sweep minimum's" in say("Large") and "the good sigma's" not in say("Large")
    built = build(ExperimentResult("shallow_init", c, m), FigureSink(tmp_path))
    assert "the good pick's" not in built["tab"]["sweep"].note and "sweep's lowest" in built["tab"]["sweep"].note


def test_sweep_figure_title_states_the_configured_band(quick, tmp_path):
    cfg, _, result, _ = quick
    titles = []

    class Recording(FigureSink):
        def add(self, name, fig, caption):
            titles.extend(ax.get_title() for ax in fig.axes)
            return super().add(name, fig, caption)

    c = {**result.config, "init_loss_tol": 0.2}
    build(ExperimentResult("shallow_init", c, result.metrics), Recording(tmp_path))
    assert "loss at init (green band: recipe's +-20%)" in titles and not any("+-15" in t for t in titles)


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
    html, md = render_section("shallow_init", sec, result)
    for doc in (html, md):
        assert "The sweep and the three picked" in doc and "Other ways of breaking convergence" in doc
        assert f"{result.config['n_sigmas']} log-spaced values" in doc
    # every sweep point and the breakers' numbers are appendix tables: the report places them, not the section
    assert html.count("<figure") == 6 and html.count("<table id=") == 3
    assert md.count("](figures/p1_") == 6
    assert [t.name for t in sec["tables"] if t.appendix] == ["p1_sweep_points", "p1_breakers"]
    assert Path(tmp_path / "p1_sweep.png").exists()
