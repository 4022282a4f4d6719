"""Part 2: variance propagation, the quick run's numbers, and the section built from them."""

import math

import pytest

from lab.config import make_config
from lab.context import RunContext
from lab.experiments.deep_init import growth_factor, predicted_stats, run
from lab.results import ExperimentResult, to_jsonable
from lab.sections import FigureSink
from lab.sections.deep_init import build, verdict


def test_prediction_factors_follow_the_fan_in_argument():
    widths = [2] + [100] * 5 + [2]
    assert predicted_stats(widths, "he", 1.0)["factor_per_layer"][1:] == pytest.approx([1.0] * 4)
    assert predicted_stats(widths, "glorot", 1.0)["factor_per_layer"][1:] == pytest.approx([math.sqrt(0.5)] * 4)
    assert predicted_stats(widths, "normal:1", 1.0)["factor_per_layer"][1:] == pytest.approx([math.sqrt(50)] * 4)


def test_growth_factor_and_verdict():
    assert growth_factor(1.0, 2.0**19, 20) == pytest.approx(2.0)
    assert verdict(2.0) == "explodes" and verdict(0.7) == "vanishes" and verdict(1.0) == "stays stable"
    assert math.isnan(growth_factor(0.0, 1.0, 20))


@pytest.fixture(scope="module")
def quick():
    cfg = make_config("deep_init", "quick")
    outcome = run(cfg, RunContext(quiet=True))
    return cfg, outcome


def test_quick_run_separates_the_three_inits(quick):
    cfg, outcome = quick
    inits = outcome.metrics["inits"]
    assert inits["normal:1"]["growth_per_layer"] > 5  # explodes, ~sqrt(50) per layer
    assert inits["glorot"]["growth_per_layer"] < 0.8  # vanishes, ~sqrt(1/2) per layer
    assert 0.9 < inits["he"]["growth_per_layer"] < 1.1
    for d in inits.values():
        assert len(d["mean_abs"]) == cfg.n_nets and len(d["mean_abs"][0]) == cfg.depth
        assert len(d["grad_w_mean_abs"][0]) == cfg.depth + 1  # includes the output layer
        # the RMS prediction is exact in expectation: the median net is within a factor 3 at the last layer
        ratio = d["rms"][0][-1] / d["predicted"]["rms"][-1]
        assert 1 / 3 < ratio < 3


def test_findings_flag_only_unstable_inits(quick):
    _, outcome = quick
    stability = {f.name: f.passed for f in outcome.findings if f.name.startswith("stable")}
    assert stability == {"stable activations: N(0, 1)": False, "stable activations: Glorot (xavier_normal_)": False,
                         "stable activations: He (kaiming_normal_)": True}
    assert all(f.scope == "finding" for f in outcome.findings)


def test_section_discussion_cites_measured_numbers(quick, tmp_path):
    cfg, outcome = quick
    result = ExperimentResult("deep_init", {"depth": cfg.depth}, to_jsonable(outcome.metrics))
    built = build(result, FigureSink(tmp_path))
    assert [f.name for f in built["figures"]] == ["p2_activations", "p2_prediction", "p2_gradients"]
    assert all((tmp_path / f"{f.name}.png").stat().st_size > 5000 for f in built["figures"])
    text = " ".join(built["discussion"])
    he = outcome.metrics["inits"]["he"]["growth_per_layer"]
    assert f"{he:.4g}" in text and "explodes" in text and "vanishes" in text and "stays stable" in text
