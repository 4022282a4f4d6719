"""Part 3: the dropout experiment end to end (quick profile, real MNIST) and its report section.

    pytest tests/test_dropout.py -x -q
"""

from __future__ import annotations

import copy
import json
import math
import types

import pytest
import torch

from lab.config import config_to_dict, make_config
from lab.context import RunContext
from lab.experiments import dropout as P3
from lab.models import MLP
from lab.report import _section_view, template_env
from lab.results import ExperimentResult, to_jsonable
from lab.runner import run_experiment
from lab.sections import FigureSink, build_section
from lab.sections import dropout as S3

CTX = RunContext(device=torch.device("cpu"), profile="quick", quiet=True)
TINY = {"n_train": 200, "n_val": 300, "hidden": (64, 64), "epochs": 2, "k_max": 7, "n_mask_seeds": 2, "n_mc": 100}


# ----- pieces that need no dataset -----


def test_k_grid_is_log_spaced_monotone_and_ends_at_k_max():
    assert P3.k_grid(1000) == [1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 200, 300, 500, 700, 1000]
    assert P3.k_grid(50)[-1] == 50 and 50 in P3.k_grid(1000)
    assert P3.k_grid(1) == [1]
    assert P3.k_grid(64)[-2:] == [50, 64]


def test_first_meeting():
    assert P3.first_meeting([1, 2, 5], [9.0, 4.0, 3.0], 4.0) == 2
    assert P3.first_meeting([1, 2, 5], [9.0, 8.0, 7.0], 4.0) is None


def test_mc_running_average_equals_explicit_average_of_the_same_masks():
    """All k from one run: the value at k must be the average of exactly the first k passes."""
    model = MLP([20, 32, 32, 4], p_input=0.2, p_hidden=0.5, init="he", generator=torch.Generator().manual_seed(0))
    x = torch.randn(300, 20, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(2))
    out = P3.mc_ensemble(model, x, y, [1, 3, 5], seed=7, ctx=CTX)
    model.train()
    with P3.seeded(7, x.device), torch.no_grad():
        passes = [model(x) for _ in range(5)]
    for i, k in enumerate([1, 3, 5]):
        mean_logits = torch.stack(passes[:k]).mean(0)
        mean_probs = torch.stack([p.softmax(1) for p in passes[:k]]).mean(0)
        assert out["logits"]["error_pct"][i] == pytest.approx(100 * float((mean_logits.argmax(1) != y).float().mean()))
        assert out["probs"]["error_pct"][i] == pytest.approx(100 * float((mean_probs.argmax(1) != y).float().mean()))
    assert out["logits"]["error_pct"][0] == out["probs"]["error_pct"][0]  # one member: both averages agree


def test_seeded_masks_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    with P3.seeded(3, torch.device("cpu")):
        torch.rand(10)
    assert torch.equal(state, torch.get_rng_state())


def test_predicted_logit_std_matches_a_fresh_net():
    model = MLP([784, 800, 800, 10], init="normal:0.1", generator=torch.Generator().manual_seed(0)).eval()
    x = torch.randn(2000, 784, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        measured = float(model(x).std())
    predicted = P3.predicted_logit_std(model.widths, 0.1, float((x**2).mean()))
    assert predicted == pytest.approx(0.1 * math.sqrt(784) * (0.1 * math.sqrt(400)) ** 2, rel=1e-3)
    assert measured == pytest.approx(predicted, rel=0.2)


# ----- the experiment on real MNIST -----


@pytest.fixture(scope="module")
def quick_result(real_mnist, tmp_path_factory):
    """The quick profile through the runner: run, save JSON atomically, reload (a few seconds).

    real_mnist (tests/conftest.py) skips where MNIST is neither present nor reachable through MNIST_MIRROR.
    """
    out = tmp_path_factory.mktemp("p3")
    ctx = RunContext(device=torch.device("cpu"), profile="quick", quiet=True)
    result, cached = run_experiment("dropout", ctx=ctx, out=out, force=True)
    assert not cached
    return result, out


def test_curves_cover_init_and_every_epoch(quick_result):
    result, _ = quick_result
    m, epochs = result.metrics, result.config["epochs"]
    assert m["epochs"] == list(range(epochs + 1))
    for arm in ("dropout", "no_dropout"):
        d = m["arms"][arm]
        for key in ("train_loss", "train_error_pct", "val_loss", "val_error_pct", "run_loss", "train_time_s"):
            assert len(d[key]) == epochs + 1, (arm, key)
        assert d["run_loss"][0] is None and d["diverged_at"] is None
    # same init draw: identical numbers at epoch 0
    assert m["arms"]["dropout"]["val_loss"][0] == m["arms"]["no_dropout"]["val_loss"][0]


def test_dropout_arm_fits_the_training_set_less(quick_result):
    arms = quick_result[0].metrics["arms"]
    d, p = arms["dropout"], arms["no_dropout"]
    assert d["train_loss"][-1] > p["train_loss"][-1]
    assert d["run_loss"][-1] > d["train_loss"][-1]  # masks on while training: the thinned nets fit worse
    assert p["train_loss"][-1] < p["train_loss"][0]  # and training does something


def test_mc_study_shape_grid_and_k1_is_worse_than_eval(quick_result):
    result = quick_result[0]
    mc, cfg = result.metrics["mc"], result.config
    ks = mc["k_grid"]
    assert ks[0] == 1 and ks[-1] == cfg["k_max"] and all(a < b for a, b in zip(ks, ks[1:]))
    assert mc["n_images"] == min(cfg["n_mc"], cfg["n_val"])
    for mode in ("logits", "probs"):
        assert len(mc[mode]["error_pct"]) == cfg["n_mask_seeds"]
        assert all(len(row) == len(ks) for row in mc[mode]["error_pct"])
    k1 = sum(row[0] for row in mc["logits"]["error_pct"]) / cfg["n_mask_seeds"]
    assert k1 > mc["eval_error_pct"]  # one stochastic pass is a worse classifier than weight scaling
    assert mc["mc_pass_s"] > 0 and mc["eval_pass_s"] > 0


def test_findings_and_data_facts(quick_result):
    result = quick_result[0]
    by_name = {f["name"]: f for f in result.findings}
    init = next(f for n, f in by_name.items() if n.startswith("MNIST loss at init"))
    assert init["scope"] == "finding" and not init["passed"]  # N(0, 0.1) is far above ln 10
    assert result.metrics["init"]["loss"] > 3 * math.log(10)
    assert all(f["passed"] for n, f in by_name.items() if not n.startswith("MNIST loss at init"))
    d = result.metrics["data"]
    assert d["train_range"] == [0, result.config["n_train"]] and d["val_range"][0] == d["train_range"][1]
    assert abs(d["norm_mean"]) < 1e-4 and abs(d["norm_std"] - 1) < 1e-4
    assert len(result.metrics["samples"]["images"]) == 16 and len(result.metrics["samples"]["images"][0]) == 784
    assert result.metrics["test"] is None  # never touched without --final


def test_saved_json_is_strict(quick_result):
    result, out = quick_result
    text = (out / "data" / "dropout.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.dumps(result.metrics, allow_nan=False)


def render(result: ExperimentResult, tmp_path) -> tuple[dict, str, str]:
    sec = build_section("dropout", 3, "Dropout", result, FigureSink(tmp_path / "figures"))
    view = _section_view(sec)
    env = template_env()
    html = env.get_template("sections/dropout.html.j2").render(sec=view, result=result)
    md = env.get_template("sections/dropout.md.j2").render(sec=view, result=result)
    return view, html, md


def test_section_builds_and_renders(quick_result, tmp_path):
    result = quick_result[0]
    view, html, md = render(result, tmp_path)
    names = [f.name for f in view["figures"]]
    assert names == ["p3_curves", "p3_gap", "p3_digits", "p3_mc", "p3_mc_modes"]
    assert all((tmp_path / "figures" / f"{n}.png").stat().st_size > 5_000 for n in names)
    assert "Monte-Carlo dropout ensembles on" in html and "| k = 1 |" in md
    assert f"minibatches of {result.config['batch_size']}" in md
    assert "Final evaluation on the MNIST test split" not in html  # no --final, no test table
    assert any("Srivastava" in line for line in view["discussion"])


def _with_final_val_errors(result: ExperimentResult, dropout: float, plain: float) -> ExperimentResult:
    fake = copy.deepcopy(result)
    fake.metrics["arms"]["dropout"]["summary"]["val_error_pct"] = dropout
    fake.metrics["arms"]["no_dropout"]["summary"]["val_error_pct"] = plain
    return fake


def test_discussion_follows_the_measured_comparison(quick_result):
    result = quick_result[0]
    better = S3.discussion(_with_final_val_errors(result, 2.0, 4.0).metrics)
    assert any("lowered the validation error from 4.00 % (no dropout) to 2.00 %" in line for line in better)
    worse = S3.discussion(_with_final_val_errors(result, 5.0, 4.0).metrics)
    assert any("did not lower the validation error" in line for line in worse)
    assert not any("lowered the validation error from" in line for line in worse)
    one_image = 100 / result.config["n_val"]  # a single validation image, in points
    tie = S3.discussion(_with_final_val_errors(result, 4.0 - one_image, 4.0).metrics)
    assert any("a difference of 1 image " in line and "too few to call an effect" in line for line in tie)
    assert not any("regularizes" in line or "lowered the validation error from" in line for line in tie)


# ----- edge cases on a tiny net -----


def test_divergence_stops_the_arm_and_stays_json_clean(real_mnist, tmp_path):
    cfg = make_config("dropout", "quick", {**TINY, "lr": 1e30, "epochs": 3})
    outcome = P3.run(cfg, CTX)
    m = outcome.metrics
    for arm in ("dropout", "no_dropout"):
        d = m["arms"][arm]
        assert d["diverged_at"] == 1 and len(d["val_loss"]) == 2
    assert m["mc"] is None
    clean = to_jsonable(m)
    json.dumps(clean, allow_nan=False)
    result = ExperimentResult("dropout", config_to_dict(cfg), clean)
    view, html, _ = render(result, tmp_path)
    assert any("NaN/Inf at epoch 1" in line for line in view["discussion"])
    assert "the dropout arm diverged" in html


def test_final_evaluates_the_test_split_in_its_own_table(real_mnist, tmp_path):
    cfg = make_config("dropout", "quick", {**TINY, "final": True})
    m = to_jsonable(P3.run(cfg, CTX).metrics)
    assert m["test"]["n_test"] == 10_000
    assert set(m["test"]["arms"]) == {"dropout", "no_dropout"}
    assert all(0 <= v["error_pct"] <= 100 for v in m["test"]["arms"].values())
    result = ExperimentResult("dropout", config_to_dict(cfg), m)
    view, html, md = render(result, tmp_path)
    assert "Final evaluation on the MNIST test split" in html and "FINAL: MNIST test split" in md
    assert all("FINAL" not in t.caption for t in view["tables"])  # kept out of the validation tables


def test_same_seed_same_numbers_and_no_global_rng_use(real_mnist):
    cfg = make_config("dropout", "quick", {**TINY, "epochs": 1, "k_max": 3, "n_mask_seeds": 1})
    state = torch.get_rng_state()
    a = P3.run(cfg, CTX).metrics
    assert torch.equal(state, torch.get_rng_state())  # masks come from seeded, forked RNG state only
    torch.manual_seed(12345)  # whatever the caller did to the global RNG must not change the numbers
    b = P3.run(cfg, CTX).metrics
    for key in ("train_loss", "val_loss", "run_loss"):
        assert a["arms"]["dropout"][key] == b["arms"]["dropout"][key]
    assert a["mc"]["logits"]["error_pct"] == b["mc"]["logits"]["error_pct"]


def test_extra_mask_seeds_stop_at_k_max_spread_and_are_padded_not_invented(real_mnist):
    """The first mask seed runs to k_max, the others to k_max_spread; beyond it their entries are None."""
    from lab.sections.dropout import mc_table

    cfg = make_config("dropout", "quick", {**TINY, "epochs": 1, "k_max": 20, "k_max_spread": 5, "n_mask_seeds": 3})
    mc = P3.run(cfg, CTX).metrics["mc"]
    ks = mc["k_grid"]
    assert mc["k_max_per_seed"] == [20, 5, 5]
    for mode in ("logits", "probs"):
        first, *others = mc[mode]["error_pct"]
        assert all(v is not None for v in first)
        for row in others:
            assert [v is None for v in row] == [k > 5 for k in ks]
        # the mean uses only the seeds that reached k: beyond k_max_spread it is the first seed itself
        assert mc[mode]["error_pct_mean"][-1] == pytest.approx(first[-1])
    rows = mc_table(mc).rows
    assert rows[-1][1].endswith("(1 seed)") and "+/-" in rows[1][1]
    for mode in ("logits", "probs"):  # the meeting point is read off the first seed's full curve
        assert mc[mode]["meet_k"] == mc[mode]["meet_k_per_seed"][0]


# ----- sentences and meeting points on made-up numbers (no dataset) -----


def _summary(val_error: float, val_loss: float) -> dict:
    return {"epoch": 10, "val_error_pct": val_error, "val_loss": val_loss, "train_loss": 0.01, "train_error_pct": 0.0,
            "best_val_error_pct": val_error, "best_val_error_epoch": 10}


def test_comparison_needs_a_few_images_and_picks_the_loss_verb_by_sign():
    n_val = 10_000  # one image = 0.01 points, 5 images = 0.05
    big = S3.comparison(_summary(2.0, 0.08), _summary(3.0, 0.12), n_val)
    assert big.startswith("Dropout regularizes here") and "lowered the validation loss from 0.120 to 0.080" in big
    assert "100 of 10,000 images" in big
    loss_up = S3.comparison(_summary(2.0, 0.15), _summary(3.0, 0.12), n_val)
    assert "raised the validation loss from 0.120 to 0.150" in loss_up and "regularizes" not in loss_up
    assert "lowered the validation loss" not in loss_up
    tiny = S3.comparison(_summary(2.97, 0.08), _summary(3.0, 0.12), n_val)  # 3 images fewer: not an effect
    assert "a difference of 3 images" in tiny and "too few to call an effect" in tiny
    assert "regularizes" not in tiny and "lowered the validation error from" not in tiny
    edge = S3.comparison(_summary(2.95, 0.08), _summary(3.0, 0.12), n_val)  # exactly 5 images: just an effect
    assert edge.startswith("Dropout regularizes here")
    worse = S3.comparison(_summary(3.2, 0.12), _summary(3.0, 0.12), n_val)
    assert "raised it from 3.00 % (no dropout) to 3.20 %" in worse and "left the validation loss unchanged" in worse


def test_a_diverged_arm_is_not_compared():
    def arm(label, diverged_at, val_error):
        return {"label": label, "diverged_at": diverged_at, "summary": _summary(val_error, 0.1),
                "train_error_pct": [90.0, 0.0], "val_error_pct": [90.0, val_error], "run_loss": [None, 0.1]}

    lines = S3.arm_discussion(arm("dropout", None, 2.0), arm("no dropout", 3, 90.0), 10_000)
    assert any("no dropout: the training loss became NaN/Inf at epoch 3" in line for line in lines)
    assert any(line.startswith("No comparison of the arms: the no dropout arm diverged at epoch 3") for line in lines)
    assert not any("regularizes" in line or "lowered the validation error" in line for line in lines)


def _mc(first: list[float], other: list[float | None], base: float = 2.0, nll=((0.10, 0.09), (0.08, 0.07))) -> dict:
    """A made-up MC study on a 1,000-image grid of k = 1, 2, 3, 5; the second seed stops at k = 3."""
    ks = [1, 2, 3, 5]
    meet = [P3.first_meeting(ks, first, base), P3.first_meeting(ks[:3], other[:3], base)]
    (nl_first, nl_other), (np_first, np_other) = nll
    def mode(nll_first, nll_other):
        return {"error_pct": [first, other], "nll": [[nll_first] * 4, [nll_other] * 3 + [None]],
                "meet_k": meet[0], "meet_k_per_seed": meet}
    return {"k_grid": ks, "n_images": 1_000, "eval_error_pct": base, "eval_loss": 0.075, "mask_seeds": [1, 2],
            "k_max_per_seed": [5, 3], "logits": mode(nl_first, nl_other), "probs": mode(np_first, np_other),
            "pass_cost_ratio": 1.5, "wall_s": 1.0, "mc_pass_s": 0.01, "eval_pass_s": 0.007}


def test_mc_sentences_follow_the_curve():
    narrows = S3.mc_discussion(_mc([3.0, 2.6, 2.3, 1.9], [3.2, 2.8, 2.4, None]))
    assert "Averaging k passes narrows the gap to eval mode" in narrows[0]
    flat = S3.mc_discussion(_mc([3.0, 3.1, 3.0, 3.2], [3.0, 3.1, 3.2, None]))
    assert "does not lower the error here" in flat[0] and "narrows" not in flat[0]
    past = S3.mc_discussion(_mc([2.5, 1.5, 1.2, 1.0], [2.5, 1.5, 1.2, None]))
    assert "past eval mode" in past[0] and "narrows" not in past[0]
    # the meeting point is the first seed's, and the sentence says so
    assert any("the first mask seed's ensemble (the only one run to k = 5) first reached the eval-mode error at k = 5"
               in line for line in narrows[1:])


def test_nll_sentence_says_more_only_when_the_relative_nll_difference_is_larger():
    more = S3.nll_sentence(1000, 2.0, 2.0, 0.10, 0.08, 0.09)  # 0 % apart in error, 25 % in NLL
    assert "differ more than by error" in more and "averaged probabilities give the lowest NLL" in more
    less = S3.nll_sentence(1000, 2.0, 3.0, 0.10, 0.099, 0.05)  # 50 % apart in error, 1 % in NLL
    assert "differ less than by error" in less and "weight scaling gives the lowest NLL" in less


def test_meet_k_comes_from_the_first_seed_not_from_the_mean_that_switches_seeds(monkeypatch):
    """Seeds 2 and 3 dip below eval mode at k = 3 and stop there; the first seed never does: no meeting point."""
    curves = {0: [5.0, 4.0, 3.0, 2.5, 2.2, 2.1], 1: [5.0, 1.0, 0.0], 2: [5.0, 1.0, 0.0]}  # grid 1, 2, 3, 5, 7, 10

    def fake_ensemble(model, x, y, ks, seed, ctx):
        e = curves[seed % 1000][: len(ks)]
        return {"logits": {"error_pct": e, "nll": e}, "probs": {"error_pct": e, "nll": e}, "wall_s": 0.0}

    monkeypatch.setattr(P3, "mc_ensemble", fake_ensemble)
    monkeypatch.setattr(P3, "evaluate_rows", lambda model, x, y: {"error_pct": 2.0, "loss": 0.1})
    monkeypatch.setattr(P3, "time_pass", lambda model, x, train_mode: 1.0)
    cfg = types.SimpleNamespace(n_mc=10, k_max=10, k_max_spread=3, seed=0, n_mask_seeds=3)
    split = types.SimpleNamespace(x_val=torch.zeros(10, 4), y_val=torch.zeros(10, dtype=torch.long))
    data = types.SimpleNamespace(split=split, val_range=(0, 10))
    mc = P3.mc_study(cfg, None, data, CTX)
    assert mc["k_max_per_seed"] == [10, 3, 3]
    assert mc["logits"]["error_pct_mean"][2] < 2.0  # the mean does dip below eval mode at k = 3 ...
    assert mc["logits"]["meet_k"] is None  # ... but the first seed never gets there
    assert mc["logits"]["meet_k_per_seed"] == [None, 2, 2]


def test_init_finding_detail_follows_the_check():
    x = torch.randn(500, 784, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(1))
    data = types.SimpleNamespace(split=types.SimpleNamespace(x_train=x, y_train=y))
    for sigma, passed in ((0.1, False), (0.001, True)):
        model = MLP([784, 100, 100, 10], init=f"normal:{sigma}", generator=torch.Generator().manual_seed(2))
        _, check = P3.init_finding(model, data, types.SimpleNamespace(sigma=sigma))
        assert check.passed is passed
        assert ("confident and mostly wrong" in check.detail) is (not passed)
