"""Answers at a glance: one row per question the lab asks, answered in words chosen by this run's numbers.

    rows = answer_rows(sections)   # [{"id", "part", "question", "answer", "status", "refs"}], lab order

Each report section's ``answers(...)`` (lab/sections/*.py) returns the facts of its questions: measured values
already formatted, the paired verdicts of lab.sections.paired, a status ("answered", "partial",
"inconclusive", "missing") and the figures/tables that show the evidence. This module turns facts into one or
two sentences per question. A sentence states an effect only where its facts carry it (a paired verdict that is
not "cannot tell", a growth factor outside the stable band); otherwise it says that the run cannot tell. A part
without results gets a row that says so. Answers refer to figures and tables with Numbering tokens
([[fig:name]]), which the templates turn into numbered links.
"""

from __future__ import annotations

from typing import Any, Callable

from lab.experiments import EXPERIMENTS
from lab.sections.paired import NO_SPREAD, ONE_SEED, interval_text

# id -> (experiment, question), in the order the lab asks them
QUESTIONS: dict[str, tuple[str, str]] = {
    "p1_sigmas": ("shallow_init", "Which sigma slows early training but still converges, which is so large that "
                                  "training converges without fully recovering, and which is good?"),
    "p1_init_loss": ("shallow_init", "How does the loss at init compare with -log(1/C) = ln 2?"),
    "p1_glorot": ("shallow_init", "How does Glorot initialisation compare with the good sigma?"),
    "p1_scaling": ("shallow_init", "Does scaling the data instead of the weights cause the same failure?"),
    "p1_breakers": ("shallow_init", "What other simple changes break convergence?"),
    "p2_stats": ("deep_init", "How do the mean and std of |activation| evolve over 20 layers under N(0, 1), "
                              "Glorot and He?"),
    "p3_dropout": ("dropout", "Dropout (50 %, 20 % on the input) against none: training and validation loss "
                              "and error?"),
    "p3_regulariser": ("dropout", "Does dropout act as a regulariser?"),
    "p3_mc_small": ("dropout", "A small Monte-Carlo ensemble (train mode, averaged logits) against the eval-mode "
                               "weight-scaled net?"),
    "p3_mc_large": ("dropout", "A very large Monte-Carlo ensemble against the eval-mode weight-scaled net?"),
}

NEAR_CHANCE = (0.8, 1.25)  # an init loss within this factor of ln C "sits at chance"
ACC_HURT = 0.01  # an arm whose validation accuracy is more than 1 point below the reference run's is "hurt"
PREDICTION_RTOL = 0.1  # a measured growth factor within 10 % of the prediction "matches" it


def _refs(items: list[str]) -> str:
    return ", ".join(f"[[{r}]]" for r in items)


def _points(p: dict) -> str:
    """The size of a claimed paired effect: 'X points (95 % interval a to b)', both as magnitudes (the verb
    before it says the direction; an interval that excludes 0 has one sign)."""
    if p.get("lo") is None:
        return f"{p['abs']} points"
    lo, hi = sorted((abs(p["lo"]), abs(p["hi"])))
    return f"{p['abs']} points (95 % interval {interval_text(lo, hi, p.get('digits', 2), sign='')})"


def _why(p: dict) -> str:
    """Why a paired comparison claims nothing, when the reason is not an interval that includes 0."""
    reason = p.get("reason", "")
    if reason == NO_SPREAD:
        return f", identical in all {p['n']} seeds: with no spread no interval can be computed, so"
    if reason == ONE_SEED:
        return ", from one training seed: with no spread to compare it with,"
    return ""


# --- Part 1 ----------------------------------------------------------------------------------------------------

def _p1_sigmas(f: dict) -> str:
    parts = []
    slow, good, large = f["slow"], f["good"], f["large"]
    if slow:
        reached = ("never gets down to loss " + f["reach_loss"] if slow["reach"] == "never"
                   else f"still gets down to loss {f['reach_loss']} by step {slow['reach']}")
        parts.append(f"slow sigma = {slow['sigma']}: the training loss stays within {f['plateau_tol']} of ln 2 for "
                     f"{slow['plateau']} steps (median) and {reached}; validation accuracy {slow['val_acc']}")
    if large:
        parts.append(f"large sigma = {large['sigma']}: it starts at loss {large['init']} and ends with "
                     f"{f['large_val_ratio']}x {f['ref_name']} validation loss ({large['val_acc']})")
    if good:
        reach = "never" if good["reach"] == "never" else f"by step {good['reach']}"
        parts.append(f"good sigma = {good['sigma']}: loss {f['reach_loss']} reached {reach}, validation loss "
                     f"{good['val_loss']} ({good['val_acc']})")
    text = "; ".join(parts)
    text = text[:1].upper() + text[1:] + "." if text else ""
    if f["missing"]:
        text += f" No sigma of the sweep met the {' and '.join(f['missing'])} criterion, so that pick is missing."
    return text.strip()


def _near(ratio: float | None) -> str:
    if ratio is None:
        return "diverged"
    return "close to ln 2" if NEAR_CHANCE[0] <= ratio <= NEAR_CHANCE[1] else "far from ln 2"


def _p1_init_loss(f: dict) -> str:
    bits = []
    for key, name in (("good", "the good sigma"), ("glorot", "Glorot"), ("slow", "the slow sigma"),
                      ("large", "the large sigma")):
        a = f.get(key)
        if a:
            bits.append(f"{name} {a['init']} ({a['init_ratio']}x, {_near(a['ratio_v'])})")
    text = f"Median initial loss against ln 2 = {f['ln2']}: " + "; ".join(bits) + "."
    large = f.get("large")
    if large and large["ratio_v"] is not None and large["ratio_v"] > NEAR_CHANCE[1]:
        text += (" Large weights give large logits, confidently wrong on about half the points, so the loss at init "
                 "is far above chance.")
    return text


def _p1_glorot(f: dict) -> str:
    g, good = f["glorot"], f["good"]
    if not g:
        return "No Glorot arm in this run."
    text = (f"Glorot (per-layer std {f['layer_std']}) ends at validation loss {g['val_loss']} ({g['val_acc']}), "
            f"loss {g['init']} at init")
    if good and f["where"]:
        text += (f"; the good sigma's seeds end at {f['good_range']}, so Glorot's median lies {f['where']} "
                 "that range")
    return text + "."


def _p1_scaling(f: dict) -> str:
    ref = f.get("ref_acc_v")
    cells, hurt = [], []
    for a in f["arms"]:
        if a["key"] == "x1":
            continue
        cells.append(f"{a['label']}: init loss {a['init_ratio']}x ln 2, validation accuracy {a['val_acc']}")
        if ref is not None and (a["acc_v"] is None or a["acc_v"] < ref - ACC_HURT):
            hurt.append(a["label"])
    text = f"Against {f['ref_acc']} for normalised inputs: " + "; ".join(cells) + "."
    if hurt:
        text += f" Rescaling the data hurts in {len(hurt)} of {len(cells)} arms ({', '.join(hurt)})."
    else:
        text += " None of the rescalings costs more than a point of accuracy in this run."
    return text


def _p1_breakers(f: dict) -> str:
    cells = [f"{a['label']}: {a['story']} ({a['val_acc']})" for a in f["arms"]]
    return f"Against {f['ref_acc']} for the unbroken run: " + "; ".join(cells) + "."


# --- Part 2 ----------------------------------------------------------------------------------------------------

def _p2_stats(f: dict) -> str:
    cells, matched = [], True
    for a in f["inits"]:
        if a["verdict"] == "degenerate":
            cells.append(f"{a['label']}: diverged (activations overflow to inf/NaN or collapse to 0), no factor")
            matched = False
            continue
        cells.append(f"{a['label']} x{a['growth']} per layer ({a['verdict']}: {a['first']} -> {a['last']})")
        g, p = a.get("growth_v"), a.get("predicted_v")
        if g is None or p is None or not (abs(g - p) <= PREDICTION_RTOL * abs(p)):
            matched = False
    text = (f"Mean |activation| over {f['depth']} layers of {f['width']} units changes by " + "; ".join(cells) + ".")
    if matched and f["inits"]:
        preds = ", ".join(a["predicted"] for a in f["inits"])
        text += f" Each factor is within {PREDICTION_RTOL:.0%} of its prediction sigma_w * sqrt(fan_in / 2) ({preds})."
    return text


# --- Part 3 ----------------------------------------------------------------------------------------------------

def _p3_dropout(f: dict) -> str:
    if f.get("diverged"):
        return "A training run of one of the arms diverged, so the arms cannot be compared in this run."
    text = (f"Over {f['seeds']} training seeds, validation error {f['val_err_drop']} with dropout vs "
            f"{f['val_err_plain']} without (loss {f['val_loss_drop']} vs {f['val_loss_plain']}); training error "
            f"{f['train_err_drop']} vs {f['train_err_plain']}. ")
    e = f["err"]
    if e["verdict"] == "higher":
        text += f"Paired per seed, dropout lowers the validation error by {_points(e)}."
    elif e["verdict"] == "lower":
        text += f"Paired per seed, dropout raises the validation error by {_points(e)}."
    else:
        interval = f" (95 % interval {e['interval']})" if e["interval"] != "n/a" else ""
        text += (f"Paired per seed, no-dropout minus dropout error is {e['mean']} points{interval}{_why(e) or ':'} "
                 "the run cannot tell the arms apart.")
    return text


def _p3_regulariser(f: dict) -> str:
    if f.get("diverged"):
        return "A training run diverged: no gap to compare."
    g = f["gap_err"]
    text = (f"Validation minus training error: {f['gap_err_drop']} points with dropout, {f['gap_err_plain']} without. ")
    if g["verdict"] == "higher":
        text += f"Dropout narrows the gap by {_points(g)}"
        if f["err_effect"] == "higher":
            text += " and lowers the validation error: it regularises."
        else:
            text += (", but without a lower validation error in this run: less overfitting, not (yet) better "
                     "generalisation.")
    elif g["verdict"] == "lower":
        text += f"Dropout widens the gap by {_points(g)}: no regularising effect in this run."
    else:
        text += (f"The run cannot tell whether dropout changes the gap"
                 f"{' (the paired differences are identical in all seeds: no interval)' if g.get('reason') == NO_SPREAD else ''}.")
    return text


def _mc_compare(p: dict) -> str:
    """The predicate of 'the ensemble ...' against the eval-mode net, by the paired verdict."""
    if p["verdict"] == "higher":
        return f"errs more than the eval-mode net, by {_points(p)}"
    if p["verdict"] == "lower":
        return f"errs less than the eval-mode net, by {_points(p)}"
    why = {NO_SPREAD: ", identical in every seed: no interval", ONE_SEED: ", one seed"}.get(p.get("reason", ""), "")
    return f"cannot be told apart from the eval-mode net (paired difference {p['mean']} points{why})"


def _p3_mc_small(f: dict) -> str:
    return (f"Eval mode (weight scaling): {f['eval']}; one thinned net (k = 1): {f['k1']}; k = {f['small_k']}: "
            f"{f['small']}. Paired per seed, k = 1 {_mc_compare(f['k1_vs_eval'])}; k = {f['small_k']} "
            f"{_mc_compare(f['small_vs_eval'])}.")


def _p3_mc_large(f: dict) -> str:
    v = f["vs_eval"]
    text = f"k = {f['k_max']}: {f['large']} against eval mode {f['eval']}. "
    if v["verdict"] == "cannot tell":
        within = {NO_SPREAD: "is identical in every seed, so no interval can be computed",
                  ONE_SEED: "comes from one seed, with no spread to compare it with"}.get(v.get("reason", ""),
                                                                                    "is within its spread")
        return text + (f"The paired difference, {v['mean']} points (about {f['images']} images), {within}: the run "
                       "cannot tell the large ensemble from weight scaling.")
    return text + f"Paired per seed, the ensemble {_mc_compare(v)}."


WRITERS: dict[str, Callable[[dict], str]] = {
    "p1_sigmas": _p1_sigmas, "p1_init_loss": _p1_init_loss, "p1_glorot": _p1_glorot, "p1_scaling": _p1_scaling,
    "p1_breakers": _p1_breakers, "p2_stats": _p2_stats, "p3_dropout": _p3_dropout,
    "p3_regulariser": _p3_regulariser, "p3_mc_small": _p3_mc_small, "p3_mc_large": _p3_mc_large,
}

STATUS_WORD = {"answered": "", "partial": "Partly answered: ", "inconclusive": "Inconclusive: ", "missing": ""}


def answer_rows(sections: list[Any]) -> list[dict]:
    """One row per question, in QUESTIONS order, from the built sections (lab.sections.Section)."""
    by_id: dict[str, dict] = {}
    present = set()
    protocol: dict[str, dict] = {}
    for sec in sections:
        if sec.extra.get("missing"):
            continue
        present.add(sec.experiment)
        if sec.extra.get("protocol"):
            protocol[sec.experiment] = sec.extra["protocol"]
        for a in sec.extra.get("answers", []):
            by_id[a["id"]] = a
    rows = []
    for qid, (experiment, question) in QUESTIONS.items():
        part = EXPERIMENTS[experiment][0]
        a = by_id.get(qid)
        if experiment not in present:
            status, text, refs = "missing", f"No results for Part {part}: run python -m lab run {experiment}.", []
        elif a is None or a["status"] == "missing" and not a["facts"]:
            status, text, refs = "missing", "This run holds no evidence for it.", []
        else:
            status, refs = a["status"], list(a["refs"])
            text = STATUS_WORD[status] + WRITERS[qid](a["facts"])
            question = a.get("question", question)  # worded from the run where the run chose (inits, rates)
        off = protocol.get(experiment) if status != "missing" else None
        rows.append({"id": qid, "part": part, "question": question, "answer": text, "status": status,
                     "refs": refs, "evidence": _refs(refs),
                     # what this part's run changed from the lab's protocol ("" when none): the templates say it
                     "off_protocol": off["short"] if off and off["off"] else ""})
    return rows


__all__ = ["QUESTIONS", "answer_rows"]
