"""Answers at a glance (lab/answers.py) and figure/table numbering (lab/numbering.py): each sentence follows its
facts (a paired verdict, a growth factor, a missing pick or part), never the other way round.

    pytest tests/test_answers.py
"""

from __future__ import annotations

import pytest

from lab.answers import QUESTIONS, WRITERS, answer_rows
from lab.errors import LabError
from lab.numbering import Numbering
from lab.sections import Section


def paired(verdict: str, mean: float, lo: float | None = None, hi: float | None = None) -> dict:
    return {"verdict": verdict, "mean": f"{mean:+.2f}", "abs": f"{abs(mean):.2f}", "n": 3, "digits": 2,
            "interval": "n/a" if lo is None else f"{lo:+.2f} to {hi:+.2f}", "lo": lo, "hi": hi}


def p3_facts(err: dict, gap: dict) -> tuple[dict, dict]:
    common = {"diverged": False, "seeds": 3, "val_err_drop": "5.60 %", "val_err_plain": "9.00 %",
              "train_err_drop": "0.50 %", "train_err_plain": "0.00 %", "val_loss_drop": "0.2", "val_loss_plain": "0.4",
              "train_loss_drop": "0.01", "train_loss_plain": "0.001", "err": err, "loss": err}
    reg = {"diverged": False, "gap_err_drop": "5.1", "gap_err_plain": "9.0", "gap_loss_drop": "0.2",
           "gap_loss_plain": "0.4", "gap_err": gap, "gap_loss": gap, "err_effect": err["verdict"]}
    return common, reg


def test_dropout_answer_follows_the_paired_verdict():
    lower, _ = p3_facts(paired("higher", 3.4, 2.9, 3.9), paired("higher", 3.9, 3.0, 4.8))
    text = WRITERS["p3_dropout"](lower)
    assert "dropout lowers the validation error by 3.40 points (95 % interval 2.90 to 3.90)" in text
    worse, _ = p3_facts(paired("lower", -2.0, -2.5, -1.5), paired("higher", 1.0, 0.5, 1.5))
    assert "dropout raises the validation error by 2.00 points (95 % interval 1.50 to 2.50)" in WRITERS["p3_dropout"](worse)
    unsure, _ = p3_facts(paired("cannot tell", 0.3, -0.8, 1.4), paired("cannot tell", 0.1, -1.0, 1.2))
    text = WRITERS["p3_dropout"](unsure)
    assert "cannot tell" in text and "lowers" not in text and "raises" not in text


def test_regulariser_claimed_only_with_a_narrower_gap_and_a_lower_error():
    _, both = p3_facts(paired("higher", 3.4, 2.9, 3.9), paired("higher", 3.9, 3.0, 4.8))
    assert "it regularises" in WRITERS["p3_regulariser"](both)
    _, gap_only = p3_facts(paired("cannot tell", 0.3, -0.8, 1.4), paired("higher", 3.9, 3.0, 4.8))
    text = WRITERS["p3_regulariser"](gap_only)
    assert "narrows the gap" in text and "regularises" not in text and "without a lower validation error" in text
    _, no_gap = p3_facts(paired("higher", 3.4, 2.9, 3.9), paired("cannot tell", 0.2, -1.0, 1.4))
    text = WRITERS["p3_regulariser"](no_gap)
    assert "cannot tell" in text and "regularises" not in text
    diverged = {"diverged": True}
    assert "diverged" in WRITERS["p3_regulariser"](diverged) and "diverged" in WRITERS["p3_dropout"](diverged)


def test_large_ensemble_against_weight_scaling():
    facts = {"k_max": "1,000", "large": "5.60 %", "eval": "5.62 %", "images": "2",
             "vs_eval": paired("cannot tell", -0.02, -0.1, 0.06)}
    text = WRITERS["p3_mc_large"](facts)
    assert "cannot tell the large ensemble from weight scaling" in text and "about 2 images" in text
    facts["vs_eval"] = paired("lower", -0.3, -0.4, -0.2)
    assert "errs less than the eval-mode net, by 0.30 points" in WRITERS["p3_mc_large"](facts)


def test_deep_answer_claims_agreement_with_the_prediction_only_within_tolerance():
    inits = [{"label": "He", "growth": "0.987", "verdict": "stays stable", "first": "0.4", "last": "0.3",
              "growth_v": 0.987, "predicted_v": 1.0, "predicted": "1"}]
    assert "within 10% of its prediction" in WRITERS["p2_stats"]({"inits": inits, "depth": 20, "width": 100})
    inits[0]["growth_v"] = 1.3
    assert "within" not in WRITERS["p2_stats"]({"inits": inits, "depth": 20, "width": 100})


def test_missing_sigma_pick_is_said():
    arm = {"sigma": "0.2", "init": "0.69", "init_ratio": "1", "val_loss": "0.01", "val_acc": "100 %",
           "plateau": "0", "reach": "never", "diverged": 0, "acc_v": 1.0, "ratio_v": 1.0}
    facts = {"slow": None, "good": arm, "large": None, "steps": 1000, "ref_name": "the good sigma's",
             "large_val_ratio": "n/a", "missing": ["slow", "large"], "reach_loss": "0.2", "plateau_tol": "1%"}
    text = WRITERS["p1_sigmas"](facts)
    assert "No sigma of the sweep met the slow and large criterion" in text
    assert "loss 0.2 reached never" in text


def test_every_question_gets_a_row_and_a_missing_part_says_so():
    shallow = Section("shallow_init", 1, "t", extra={"answers": []})
    rows = answer_rows([shallow, Section("deep_init", 2, "t", extra={"missing": True})])
    assert [r["id"] for r in rows] == list(QUESTIONS)
    deep = next(r for r in rows if r["id"] == "p2_stats")
    assert deep["status"] == "missing" and "run python -m lab run deep_init" in deep["answer"]
    sig = next(r for r in rows if r["id"] == "p1_sigmas")
    assert sig["status"] == "missing" and "no evidence" in sig["answer"]


def test_numbering_numbers_in_placement_order_and_resolves_forward_references():
    first = Numbering()
    first.html("see [[fig:b]]")  # referred to before it is placed: unknown in pass 1
    first.place("fig", "a")
    first.place("tab", "t")
    first.place("fig", "b")
    final = Numbering(first.order())
    assert "Figure 2" in final.html("see [[fig:b]]") and 'href="#fig-b"' in final.html("[[fig:b]]")
    for kind, name in (("fig", "a"), ("tab", "t"), ("fig", "b")):
        final.place(kind, name)
    final.check()
    assert final.markdown("[[tab:t]] x_y") == "[Table 1](#tab-t) x\\_y"
    assert final.plain("[[fig:a]]") == "Figure 1"


def test_numbering_refuses_dangling_references_duplicates_and_reordering():
    n = Numbering()
    n.place("fig", "a")
    n.html("[[fig:nowhere]]")
    with pytest.raises(LabError, match="fig:nowhere"):
        n.check()
    with pytest.raises(LabError, match="twice"):
        n.place("fig", "a")
    order = Numbering()
    order.place("fig", "a")
    order.place("fig", "b")
    swapped = Numbering(order.order())
    swapped.place("fig", "b")
    swapped.place("fig", "a")
    with pytest.raises(LabError, match="differs"):
        swapped.check()


def test_html_references_escape_the_text_around_them():
    n = Numbering()
    n.place("tab", "t")
    out = str(n.html("<b>x</b> [[tab:t]]"))
    assert out.startswith("&lt;b&gt;x&lt;/b&gt; ") and '<a class="ref" href="#tab-t">Table 1</a>' in out


def test_zero_variance_or_one_seed_never_claims_an_effect_in_the_answers():
    """Two seeds with identical differences (+1.50, +1.50) used to read "dropout lowers the validation error by
    1.50 points (95 % interval 1.50 to 1.50)"; one seed has no spread either. The facts come from the section's
    own _paired_facts, the words from the writers."""
    from lab.sections.dropout import _paired_facts
    from lab.sections.paired import paired as pair

    for a, b, why in (([9.0, 8.0], [7.5, 6.5], "identical in all 2 seeds"), ([9.0], [7.5], "one training seed")):
        facts = _paired_facts(pair(a, b))
        common, reg = p3_facts(facts, facts)
        for qid, f in (("p3_dropout", common), ("p3_regulariser", reg)):
            text = WRITERS[qid](f)
            assert "lowers" not in text and "raises" not in text and "narrows" not in text, text
            assert "1.50 to 1.50" not in text and "cannot tell" in text.lower(), text
        assert why in WRITERS["p3_dropout"](common)
        mc = {"k_max": "1,000", "large": "5.60 %", "eval": "5.62 %", "images": "2", "vs_eval": facts}
        text = WRITERS["p3_mc_large"](mc)
        assert "cannot tell" in text and "errs" not in text
        small = {"eval": "5 %", "k1": "6 %", "small_k": 10, "small": "5 %", "k1_vs_eval": facts, "small_vs_eval": facts}
        assert "errs" not in WRITERS["p3_mc_small"](small)


def test_a_branch_not_taken_refers_to_nothing():
    """Jinja folds a filter on a constant at compile time; a reference inside an {% if %} that is not taken was
    counted ("refers to tab:gate_outside, which it does not contain" for a run with nothing outside its band)."""
    from lab.report import template_env

    numbers = Numbering()
    numbers.place("tab", "here")
    source = '{{ "[[tab:here]]" | refs }}{% if show %} and {{ "[[tab:elsewhere]]" | refs }}{% endif %}'
    for markdown in (False, True):
        final = Numbering(numbers.order())
        final.place("tab", "here")
        out = template_env(final, markdown=markdown).from_string(source).render(show=False)
        final.check(out, "markdown" if markdown else "html")  # the branch not taken refers to nothing
        final.check()
        shown = template_env(final, markdown=markdown).from_string(source).render(show=True)
        with pytest.raises(LabError, match="tab:elsewhere"):
            final.check(shown, "markdown" if markdown else "html")
