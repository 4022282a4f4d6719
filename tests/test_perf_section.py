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
