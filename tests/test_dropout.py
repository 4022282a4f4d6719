"""Part 3: the dropout experiment end to end (quick profile, real MNIST) and its report section.

    pytest tests/test_dropout.py -x -q
"""

from __future__ import annotations

import copy
import json
import math
import re
import types

import pytest
import torch

from lab.config import config_to_dict, make_config
from lab.context import RunContext
from lab.experiments import dropout as P3
from lab.models import MLP
from lab.report import _section_view, render_section
from lab.results import ExperimentResult, load_result, to_jsonable
from lab.sections import FigureSink, build_section
from lab.sections import dropout as S3
from lab.sections import dropout_mc as S3MC

CTX = RunContext(device=torch.device("cpu"), profile="quick", quiet=True)
TINY = {"n_train": 200, "n_val": 300, "hidden": (64, 64), "epochs": 2, "n_train_seeds": 2, "k_max": 7, "n_mask_seeds": 2,
        "k_max_reference": 3, "n_mc": 100}


# ----- pieces that need no dataset -----


def test_k_grid_is_log_spaced_monotone_and_ends_at_k_max():
    assert P3.k_grid(1000) == [1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 200, 300, 500, 700, 1000]
    assert P3.k_grid(50)[-1] == 50 and 50 in P3.k_grid(1000)
    assert P3.k_grid(1) == [1]
    assert P3.k_grid(64)[-2:] == [50, 64]


def test_first_meeting_and_near_from():
    assert S3MC.first_meeting([1, 2, 5], [9.0, 4.0, 3.0], 4.0) == 2
    assert S3MC.first_meeting([1, 2, 5], [9.0, 8.0, 7.0], 4.0) is None
    # within 2 images (0.2 points on 1,000 images) from k = 5 on, though k = 2 dipped in and out before
    assert S3MC.near_from([1, 2, 3, 5, 7], [9.0, 4.1, 4.5, 4.2, 4.0], 4.0, 0.1) == 5
    assert S3MC.near_from([1, 2], [9.0, 4.5], 4.0, 0.1) is None


def test_training_and_mask_seeds_never_share_a_stream():
    cfg = make_config("dropout", "full", {"seed": 3})
    seeds = P3.train_seeds(cfg)
    assert seeds == [3, 13, 23]
    streams = [s + j for s in seeds for j in range(3)]  # train_arm: init, order, masks
    assert len(set(streams)) == len(streams)
    masks = [m for s in seeds for m in P3.mask_seeds(s, 2)]
    assert len(set(masks)) == len(masks) == 9 and not set(masks) & set(streams)


@pytest.mark.parametrize("estimator", P3.ESTIMATORS)
def test_mc_running_average_equals_explicit_average_of_the_same_masks(estimator):
    """All k from one run: the value at k must be the average of exactly the first k members."""
    model = MLP([20, 32, 32, 4], p_input=0.2, p_hidden=0.5, init="he", generator=torch.Generator().manual_seed(0))
    x = torch.randn(300, 20, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(2))
    out = P3.mc_ensemble(model, x, y, [1, 3, 5], seed=7, ctx=CTX, estimator=estimator)
    with P3.ensemble_members(model, x, 7, estimator) as member, torch.no_grad():
        passes = [member() for _ in range(5)]
    for i, k in enumerate([1, 3, 5]):
        mean_logits = torch.stack(passes[:k]).mean(0)
        mean_probs = torch.stack([p.softmax(1) for p in passes[:k]]).mean(0)
        assert out["logits"]["error_pct"][i] == pytest.approx(100 * float((mean_logits.argmax(1) != y).float().mean()))
        assert out["probs"]["error_pct"][i] == pytest.approx(100 * float((mean_probs.argmax(1) != y).float().mean()))
    assert out["logits"]["error_pct"][0] == out["probs"]["error_pct"][0]  # one member: both averages agree
    assert model.training  # left in the mode the caller had (a fresh MLP is in train mode)
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
def quick_result(real_mnist, rendered):
    """The quick profile through the runner, saved atomically and reloaded: the session's end-to-end run
    (tests/conftest.py's ``rendered``) already made exactly this file, so it is read, not run a second time.

    real_mnist (tests/conftest.py) skips where MNIST is neither present nor reachable through MNIST_MIRROR.
    """
    path = rendered / "data" / "dropout.json"
    result = load_result(path, "dropout")
    assert result.provenance["profile"] == "quick" and result.provenance["device"] == "cpu"
    assert result.config == config_to_dict(make_config("dropout", "quick"))
    return result, rendered


def test_curves_cover_init_and_every_epoch_for_every_training_seed(quick_result):
    result, _ = quick_result
    m, cfg = result.metrics, result.config
    epochs = cfg["epochs"]
    assert m["epochs"] == list(range(epochs + 1))
    assert m["train_seeds"] == [cfg["seed"] + 10 * i for i in range(cfg["n_train_seeds"])]
    for arm in ("dropout", "no_dropout"):
        runs = m["arms"][arm]["runs"]
        assert [r["train_seed"] for r in runs] == m["train_seeds"]
        for r in runs:
            for key in ("train_loss", "train_error_pct", "val_loss", "val_error_pct", "run_loss", "train_time_s"):
                assert len(r[key]) == epochs + 1, (arm, key)
            assert r["run_loss"][0] is None and r["diverged_at"] is None
    for d, p in zip(m["arms"]["dropout"]["runs"], m["arms"]["no_dropout"]["runs"]):
        assert d["val_loss"][0] == p["val_loss"][0]  # one seed: the same init draw in both arms
    inits = [r["val_loss"][0] for r in m["arms"]["dropout"]["runs"]]
    assert len(set(inits)) == len(inits)  # another seed: another init draw
    assert len(set(m["init"]["loss"])) == len(inits)


def test_dropout_arm_fits_the_training_set_less_in_every_seed(quick_result):
    arms = quick_result[0].metrics["arms"]
    for d, p in zip(arms["dropout"]["runs"], arms["no_dropout"]["runs"]):
        assert d["train_loss"][-1] > p["train_loss"][-1]
        assert d["run_loss"][-1] > d["train_loss"][-1]  # masks on while training: the thinned nets fit worse
        assert p["train_loss"][-1] < p["train_loss"][0]  # and training does something


def test_every_training_seed_has_its_ensemble_to_k_max_and_a_per_image_reference(quick_result):
    result = quick_result[0]
    mc, cfg = result.metrics["mc"], result.config
    ks = mc["k_grid"]
    assert ks[0] == 1 and ks[-1] == cfg["k_max"] and all(a < b for a, b in zip(ks, ks[1:]))
    assert mc["k_grid_reference"] == P3.k_grid(cfg["k_max_reference"])
    assert mc["n_images"] == min(cfg["n_mc"], cfg["n_val"])
    assert [r["train_seed"] for r in mc["runs"]] == result.metrics["train_seeds"]
    for r in mc["runs"]:
        assert len(r["mask_seeds"]) == cfg["n_mask_seeds"] and r["reference_seed"] not in r["mask_seeds"]
        for mode in ("logits", "probs"):
            assert len(r["thinned"][mode]["error_pct"]) == cfg["n_mask_seeds"]
            assert all(len(row) == len(ks) and None not in row for row in r["thinned"][mode]["error_pct"])
            assert len(r["per_image"][mode]["error_pct"]) == len(mc["k_grid_reference"])
        k1 = sum(row[0] for row in r["thinned"]["logits"]["error_pct"]) / cfg["n_mask_seeds"]
        assert k1 > r["eval_error_pct"]  # one stochastic pass is a worse classifier than weight scaling
    assert set(mc["pass_time_s"]) == {"eval", "thinned", "per_image"} and min(mc["pass_time_s"].values()) > 0


def test_findings_and_data_facts(quick_result):
    result = quick_result[0]
    by_name = {f["name"]: f for f in result.findings}
    init = next(f for n, f in by_name.items() if n.startswith("MNIST loss at init"))
    assert init["scope"] == "finding" and not init["passed"]  # N(0, 0.1) is far above ln 10
    assert min(result.metrics["init"]["loss"]) > 3 * math.log(10)
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
    html, md = render_section("dropout", view, result)
    return view, html, md


def test_section_builds_and_renders(quick_result, tmp_path):
    result = quick_result[0]
    view, html, md = render(result, tmp_path)
    names = [f.name for f in view["figures"]]
    assert names == ["p3_curves", "p3_gap", "p3_digits", "p3_mc", "p3_mc_modes"]
    assert all((tmp_path / "figures" / f"{n}.png").stat().st_size > 5_000 for n in names)
    # every k is an appendix table: the report places it after the parts, not the section
    every_k = next(t for t in view["tables"] if t.name == "p3_mc_k")
    assert every_k.appendix and every_k.caption.startswith("Monte-Carlo dropout ensembles on")
    assert any(row[0] == "k = 1" for row in every_k.rows)
    assert "Ensembles per training seed" in html and "Ensembles per training seed" in md
    text = " ".join(re.sub(r"<[^>]+>", "", html).split())  # the prose a reader sees: no word glued to the next
    assert re.search(r"training seeds \(\d", text) and re.search(r"the first [\d,]+ validation images", text)
    assert f"minibatches of {result.config['batch_size']}" in md
    assert "Final evaluation on the MNIST test split" not in html  # no --final, no test table
    assert any("Srivastava" in line for line in view["discussion"])
    assert "95 % Student-t interval" in md and "thinned networks" in md
    captions = [t.caption for t in view["tables"]]
    assert any(c.startswith("Dropout vs no dropout per training seed") for c in captions)
    assert any(c.startswith("Ensembles per training seed") for c in captions)
    per_seed = next(t for t in view["tables"] if t.caption.startswith("Dropout vs no dropout per training seed"))
    assert [row[0] for row in per_seed.rows[:-2]] == [str(s) for s in result.metrics["train_seeds"]]


# ----- edge cases on a tiny net -----


def test_divergence_stops_the_arm_and_stays_json_clean(real_mnist, tmp_path):
    cfg = make_config("dropout", "quick", {**TINY, "lr": 1e30, "epochs": 3})
    outcome = P3.run(cfg, CTX)
    m = outcome.metrics
    for arm in ("dropout", "no_dropout"):
        for r in m["arms"][arm]["runs"]:
            assert r["diverged_at"] == 1 and len(r["val_loss"]) == 2
    assert m["mc"] is None
    clean = to_jsonable(m)
    json.dumps(clean, allow_nan=False)
    result = ExperimentResult("dropout", config_to_dict(cfg), clean)
    view, html, _ = render(result, tmp_path)
    assert any("NaN/Inf at epoch 1" in line for line in view["discussion"])
    assert any(line.startswith("No comparison of the arms") for line in view["discussion"])
    assert "the dropout arm diverged" in html


def test_final_evaluates_the_test_split_in_its_own_table(real_mnist, tmp_path):
    cfg = make_config("dropout", "quick", {**TINY, "final": True})
    m = to_jsonable(P3.run(cfg, CTX).metrics)
    assert m["test"]["n_test"] == 10_000
    assert set(m["test"]["arms"]) == {"dropout", "no_dropout"}
    for runs in m["test"]["arms"].values():
        assert len(runs) == cfg.n_train_seeds and all(0 <= v["error_pct"] <= 100 for v in runs)
    result = ExperimentResult("dropout", config_to_dict(cfg), m)
    view, html, md = render(result, tmp_path)
    assert "Final evaluation on the MNIST test split" in html and "FINAL: MNIST test split" in md
    assert all("FINAL" not in t.caption for t in view["tables"])  # kept out of the validation tables


def test_same_seed_same_numbers_and_no_global_rng_use(real_mnist):
    cfg = make_config("dropout", "quick", {**TINY, "epochs": 1, "k_max": 3})
    state = torch.get_rng_state()
    a = P3.run(cfg, CTX).metrics
    assert torch.equal(state, torch.get_rng_state())  # masks come from seeded, forked RNG state or own generators
    torch.manual_seed(12345)  # whatever the caller did to the global RNG must not change the numbers
    b = P3.run(cfg, CTX).metrics
    for key in ("train_loss", "val_loss", "run_loss"):
        assert [r[key] for r in a["arms"]["dropout"]["runs"]] == [r[key] for r in b["arms"]["dropout"]["runs"]]
    for ra, rb in zip(a["mc"]["runs"], b["mc"]["runs"]):
        assert ra["thinned"] == rb["thinned"] and ra["per_image"] == rb["per_image"]


def test_one_training_seed_claims_nothing(real_mnist, tmp_path):
    """With a single seed there is no spread: every comparison says the run cannot tell."""
    cfg = make_config("dropout", "quick", {**TINY, "n_train_seeds": 1, "n_mask_seeds": 1})
    m = to_jsonable(P3.run(cfg, CTX).metrics)
    view, _, _ = render(ExperimentResult("dropout", config_to_dict(cfg), m), tmp_path)
    lines = view["discussion"]
    assert any(line.startswith("This run cannot tell whether dropout changes the validation error") for line in lines)
    assert any("no spread to compare it with" in line for line in lines)
    assert not any("an effect by the rule" in line for line in lines)


# ----- sentences on made-up numbers (no dataset) -----


def _run(seed: int, val_error: float, val_loss: float, train_loss: float = 0.01, train_error: float = 0.0) -> dict:
    summary = {"epoch": 10, "val_error_pct": val_error, "val_loss": val_loss, "train_loss": train_loss,
               "train_error_pct": train_error, "best_val_error_pct": val_error, "best_val_error_epoch": 10,
               "min_val_loss": val_loss, "min_val_loss_epoch": 10, "val_loss_rise": 0.0, "seconds_per_epoch": 0.5}
    return {"train_seed": seed, "diverged_at": None, "summary": summary, "train_error_pct": [90.0, train_error],
            "val_error_pct": [90.0, val_error], "run_loss": [None, 3 * train_loss]}


def _arm(label: str, errors: list[float], losses: list[float]) -> dict:
    return {"label": label, "runs": [_run(10 * i, e, l) for i, (e, l) in enumerate(zip(errors, losses))]}


def test_comparison_claims_an_effect_only_when_the_paired_interval_excludes_zero():
    n_val = 10_000
    plain = _arm("no dropout", [9.0, 9.5, 8.8], [0.30, 0.31, 0.29])
    big = S3.comparison(_arm("dropout", [5.6, 5.7, 5.5], [0.18, 0.19, 0.18]), plain, n_val)
    assert big.startswith("Dropout regularizes here") and "an effect by the rule" in big
    assert "per seed +3.40, +3.80, +3.30 points" in big and "lowered the validation loss" in big
    # the same means, but one seed goes the other way: the interval includes 0
    noisy = S3.comparison(_arm("dropout", [5.0, 5.2, 10.0], [0.18, 0.19, 0.35]), plain, n_val)
    assert noisy.startswith("This run cannot tell whether dropout changes the validation error")
    assert "the interval includes 0" in noisy and "regularizes" not in noisy and "an effect" not in noisy
    assert "cannot tell whether it changed the validation loss" in noisy
    # error lower in every seed by a consistent margin, loss not: no "regularizes"
    loss_up = S3.comparison(_arm("dropout", [5.6, 5.7, 5.5], [0.35, 0.36, 0.33]), plain, n_val)
    assert loss_up.startswith("Dropout lowered the validation error here, but not measurably the loss")
    assert "raised the validation loss" in loss_up
    worse = S3.comparison(_arm("dropout", [10.0, 10.6, 9.9], [0.40, 0.41, 0.39]), plain, n_val)
    assert worse.startswith("Dropout did not lower the validation error in this run: it raised it")
    assert "lowered the validation error" not in worse


def test_a_diverged_arm_is_not_compared():
    drop = _arm("dropout", [2.0, 2.1], [0.1, 0.1])
    plain = _arm("no dropout", [3.0, 90.0], [0.1, 0.1])
    plain["runs"][1]["diverged_at"] = 3
    lines = S3.arm_discussion(drop, plain, 10_000)
    assert any("no dropout, training seed 10: the training loss became NaN/Inf at epoch 3" in line for line in lines)
    assert any(line.startswith("No comparison of the arms: the no dropout arm diverged at epoch 3") for line in lines)
    assert not any("regularizes" in line or "lowered the validation error" in line for line in lines)


def _mc(thinned: list[list[float]], eval_errors: list[float], reference: list[list[float]] | None = None,
        nll=(0.10, 0.08), eval_nll: float = 0.09) -> dict:
    """A made-up MC study on 1,000 images and the grid 1, 2, 3, 5: one thinned curve per training seed."""
    ks = [1, 2, 3, 5]
    reference = reference or [row[:2] for row in thinned]
    runs = []
    for i, (row, ev, ref) in enumerate(zip(thinned, eval_errors, reference)):
        nl, npb = nll
        runs.append({"train_seed": 10 * i, "mask_seeds": [1000 * (10 * i + 1)], "eval_error_pct": ev,
                     "eval_loss": eval_nll + 0.001 * i,
                     "thinned": {"logits": {"error_pct": [row], "nll": [[nl + 0.001 * i] * 4]},
                                 "probs": {"error_pct": [[e + 0.1 for e in row]], "nll": [[npb + 0.002 * i] * 4]}},
                     "per_image": {"logits": {"error_pct": ref, "nll": [nl] * 2},
                                   "probs": {"error_pct": ref, "nll": [npb] * 2}}})
    return {"k_grid": ks, "k_grid_reference": [1, 2], "n_images": 1_000, "runs": runs, "wall_s": 1.0,
            "pass_time_s": {"eval": 0.01, "thinned": 0.004, "per_image": 0.013}}


def test_mc_sentences_follow_the_paired_numbers():
    beats = S3MC.mc_discussion(_mc([[3.0, 2.6, 2.0, 1.5], [3.2, 2.8, 2.1, 1.6], [3.1, 2.5, 2.2, 1.5]], [2.0, 2.1, 2.05]))
    assert any(line.startswith("The k = 5 ensemble beats weight scaling") and "an effect by the rule" in line
               for line in beats)
    assert any("every training seed's ensemble reached its net's eval-mode error" in line for line in beats)
    above = S3MC.mc_discussion(_mc([[3.0, 2.6, 2.5, 2.4], [3.2, 2.8, 2.7, 2.6], [3.1, 2.9, 2.8, 2.5]], [2.0, 2.1, 2.05]))
    assert any(line.startswith("Even k = 5 stays above weight scaling") for line in above)
    assert any("no training seed's ensemble reached" in line for line in above)
    mixed = S3MC.mc_discussion(_mc([[3.0, 2.6, 2.0, 1.5], [3.2, 2.8, 2.7, 2.6], [3.1, 2.5, 2.2, 2.1]], [2.0, 2.1, 2.05]))
    assert any(line.startswith("This run cannot tell the k = 5 ensemble from weight scaling") for line in mixed)
    assert not any("beats weight scaling" in line or "stays above" in line for line in mixed)


def test_thinned_vs_per_image_sentence_says_cannot_tell_unless_the_interval_excludes_zero():
    thinned = [[3.0, 2.6, 2.0, 1.5], [3.2, 2.8, 2.1, 1.6], [3.1, 2.5, 2.2, 1.5]]
    same = S3MC.mc_discussion(_mc(thinned, [2.0, 2.1, 2.05], [[3.1, 2.5], [3.1, 2.9], [3.2, 2.6]]))
    assert any("this run cannot tell them apart, as expected" in line for line in same)
    off = S3MC.mc_discussion(_mc(thinned, [2.0, 2.1, 2.05], [[5.0, 4.6], [5.3, 4.8], [5.05, 4.4]]))
    assert any("they differ by the rule at k = 1, 2" in line for line in off)
    # the same gap with no spread at all (-2.00 at k = 1 in every seed): a tie, no interval, nothing claimed
    tied = S3MC.mc_discussion(_mc(thinned, [2.0, 2.1, 2.05], [[5.0, 4.6], [5.2, 4.8], [5.1, 4.5]]))
    assert not any("they differ by the rule" in line for line in tied)


def test_lowest_nll_is_claimed_only_when_both_pairings_say_so():
    thinned = [[3.0, 2.6, 2.0, 1.5], [3.2, 2.8, 2.1, 1.6], [3.1, 2.5, 2.2, 1.5]]
    probs_best = S3MC.nll_sentence(mc := _mc(thinned, [2.0, 2.1, 2.05], nll=(0.10, 0.07), eval_nll=0.09),
                                   S3MC.seed_pairs(mc))
    assert "averaged probabilities give the lowest NLL" in probs_best
    close = S3MC.nll_sentence(mc := _mc(thinned, [2.0, 2.1, 2.05], nll=(0.10, 0.0898), eval_nll=0.09),
                              S3MC.seed_pairs(mc))
    assert "cannot tell which of the three gives the lowest NLL" in close


def test_init_finding_detail_follows_the_check():
    x = torch.randn(500, 784, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(1))
    data = types.SimpleNamespace(split=types.SimpleNamespace(x_train=x, y_train=y))
    for sigma, passed in ((0.1, False), (0.001, True)):
        model = MLP([784, 100, 100, 10], init=f"normal:{sigma}", generator=torch.Generator().manual_seed(2))
        _, check = P3.init_finding(model, data, types.SimpleNamespace(sigma=sigma))
        assert check.passed is passed
        assert ("confident and mostly wrong" in check.detail) is (not passed)
