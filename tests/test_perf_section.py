"""The Performance section's sentences from a made-up bench.json (lab.sections.perf; no timing here).

    pytest tests/test_perf_section.py -q
"""

from __future__ import annotations

from lab.sections.perf import discussion, rows_from


def bench(thinned_to_eval: float) -> dict:
    info = {"batch_size": 10_000, "flops_per_call": 8.3e9, "thinned_s": 0.04, "eval_s": 0.04 / thinned_to_eval,
            "mc_train_s": 0.125, "thinned_to_eval": thinned_to_eval, "mc_train_to_eval": 1.25, "rounds_side_by_side": 15,
            "target": 0.5}
    return {"benchmarks": [
        {"name": "test_matmul_roofline", "group": "roofline", "stats": {"median": 0.05},
         "extra_info": {"role": "roofline", "flops_per_call": 2.0 * 2048**3, "batch_size": 2048}},
        {"name": "test_thinned_pass_vs_eval_pass", "group": "part3-thinned-vs-eval", "stats": {"median": 0.04},
         "extra_info": info},
    ]}


def test_the_thinned_pass_sentence_states_the_side_by_side_ratio_and_the_target():
    within = " ".join(discussion(rows_from(bench(0.38))[0]))
    assert "a thinned network took 0.38x the eval-mode pass" in within and "within the target of 0.5" in within
    above = " ".join(discussion(rows_from(bench(0.61))[0]))
    assert "0.61x" in above and "above the target of 0.5" in above and "within the target" not in above


# ----- the per-phase cost table (lab.sections.perf.phase_view / phase_table), from made-up results -----

def _p3_result(train_s: float, rate: float | None):
    from lab.config import config_to_dict, make_config
    from lab.results import ExperimentResult

    cfg = make_config("dropout", "quick")
    timing = {"data": 0.1, "train": {"dropout": train_s / 2, "no_dropout": train_s / 2},
              "eval": {"dropout": 1.0, "no_dropout": 1.0}, "mc": 3.0, "init": 0.2, "ensembles": 2.0,
              "reference": 0.5, "timing": 0.3}
    prov = {"wall_time_s": 10.0, **({"matmul_gflops": rate, "step_gflops": rate / 2} if rate else {})}
    return cfg, ExperimentResult("dropout", config_to_dict(cfg), {"timing_s": timing}, prov)


def test_phase_table_divides_each_phases_flops_by_its_time_and_the_runs_matmul_rate():
    from lab import cost
    from lab.sections.perf import phase_table, phase_view

    cfg, result = _p3_result(train_s=4.0, rate=100.0)
    view = phase_view({"dropout": result})
    rows = {r["phase"]: r for r in view["parts"][0]["rows"]}
    train_flops = next(p.flops for p in cost.dropout_phases(cfg) if p.name == "train")
    assert rows["train"]["wall_s"] == 4.0 and rows["score"]["wall_s"] == 2.0  # both arms summed
    assert rows["train"]["gflops"] == train_flops / 4.0 / 1e9
    assert rows["train"]["fraction"] == rows["train"]["gflops"] / 100.0
    table = phase_table(view)
    assert table.name == "perf_phases" and table.rows[-1][:2] == ["Part 3", "whole part"]
    assert [r[1] for r in table.rows[:-1]] == [p.name for p in cost.dropout_phases(cfg)]


def test_no_rate_recorded_means_no_phase_table():
    """Results from before the cost model (no rate in their provenance) leave the appendix to make bench alone."""
    from lab.sections.perf import build, phase_view

    _, result = _p3_result(train_s=4.0, rate=None)
    assert phase_view({"dropout": result}) is None
    assert build(None, None, {"dropout": result}) is None
