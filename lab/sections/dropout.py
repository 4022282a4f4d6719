"""Part 3 section: figures, tables and generated discussion from dropout's results JSON.

    built = build(load_result(path), FigureSink(staging / "figures"))

Every number is a mean and a spread over the training seeds; every comparison between the arms is a paired
difference per seed, claimed as an effect only under lab.sections.paired's rule. The Monte-Carlo ensembles
are lab.sections.dropout_mc's.
"""

from __future__ import annotations

import math

import numpy as np

from lab.plots import new_figure
from lab.plots.dropout import plot_curves, plot_digits, plot_gap
from lab.results import ExperimentResult
from lab.sections import FigureSink, Table, fmt
from lab.sections.dropout_mc import mc_discussion, mc_figures, mc_seed_table, mc_table
from lab.sections.paired import CANNOT_TELL, RULE, Paired, diffs_text, interval_text, paired, range_text, spread, verdict_cell

VAL_LOSS_RISE_TOL = 0.01  # a rise of the validation loss above its minimum smaller than this is "flat"
FAR_WORSE_RATIO = 2.0  # masked (running) training loss / eval-mode training loss above this: "far worse"


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} %"


def _first_epoch(values: list, pred) -> int | None:
    return next((i for i, v in enumerate(values) if v is not None and pred(v)), None)


def finals(arm: dict, key: str) -> list:
    """One final-epoch (summary) number per training seed."""
    return [r["summary"].get(key) for r in arm["runs"]]


def _r(arm: dict, key: str, digits: int = 2, suffix: str = "") -> str:
    """Mean [min, max] over training seeds of a summary number."""
    return range_text(spread(finals(arm, key)), digits, suffix)


def _epochs(values: list) -> str:
    """'12, 15, never' per training seed."""
    return ", ".join("never" if v is None else f"{v:,}" for v in values)


def seeds_text(m: dict) -> str:
    n = len(m.get("train_seeds") or [])
    return f"{n} training seed{'s' if n != 1 else ''}"


def build(result: ExperimentResult, sink: FigureSink) -> dict:
    m = result.metrics
    figures = []
    band = f"mean over {seeds_text(m)}, band: min-max over them" if len(m["train_seeds"]) > 1 else "one training seed"

    fig, axes = new_figure(ncols=2, width=5.4, height=4.0)
    plot_curves(m, "loss", axes[0, 0])
    axes[0, 0].set_title("cross-entropy per epoch")
    plot_curves(m, "error", axes[0, 1], legend=False)  # same lines and colours as on the left
    axes[0, 1].set_title("error per epoch")
    figures.append(sink.add(
        "p3_curves", fig,
        f"Training (dashed) and validation (solid) loss and error of both arms, scored in eval mode on all "
        f"{m['data']['n_train']:,} training and {m['data']['n_val']:,} validation images after every epoch "
        f"(epoch 0 = at init; {band}); dots: the training loss as seen during training (mean minibatch loss, "
        f"dropout on)."))

    fig, axes = new_figure(ncols=2, width=5.0, height=3.4)
    plot_gap(m, axes[0, 0], "loss")
    axes[0, 0].set_title("generalization gap: loss")
    plot_gap(m, axes[0, 1], "error")
    axes[0, 1].set_title("generalization gap: error")
    figures.append(sink.add(
        "p3_gap", fig, f"Generalization gap (validation minus training, both in eval mode) per epoch for both arms "
                       f"({band})."))

    samples = m["samples"]
    n = len(samples["labels"])
    ncols = min(8, n)
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=1.1, height=1.25)
    axes = np.atleast_2d(axes)
    vlim = float(np.abs(np.asarray(samples["images"], dtype=float)).max())
    plot_digits(samples, axes, vlim)
    figures.append(sink.add(
        "p3_digits", fig,
        f"The first {n} training images as the network sees them: pixels scaled to [0, 1], then standardised with "
        f"the training mean {m['data']['pixel_mean']:.4f} and std {m['data']['pixel_std']:.4f}, so the background is "
        f"{-m['data']['pixel_mean'] / m['data']['pixel_std']:.2f} (light blue) and ink up to {vlim:.2f} (red); one "
        f"diverging colour scale from {-vlim:.2f} to {vlim:.2f}, white = 0. The net gets them flattened to 784 inputs.",
        appendix=True))

    mc = m.get("mc")
    tables = [arm_table(m), paired_table(m), data_table(m)]
    if mc:
        figures.extend(mc_figures(mc, sink))
        tables.extend([mc_table(mc), mc_seed_table(mc)])
    # The test table is kept out of `tables`: the template shows it in its own, labelled subsection.
    return {
        "figures": figures,
        "tables": tables,
        "discussion": discussion(m),
        "final_test_table": final_test_table(m) if m.get("test") else None,
        "rule": RULE,
        "answers": _with_question(answers(m), result.config),
        "lead": lead(mc is not None, bool(m.get("test"))),
    }


def lead(with_mc: bool, with_test: bool) -> str:
    """The sentence that walks the reader through this part's figures and tables (numbered by the templates)."""
    text = "[[fig:p3_curves]], [[fig:p3_gap]], [[tab:p3_arms]] and [[tab:p3_paired]] compare the arms"
    if with_mc:
        text += "; [[fig:p3_mc]] and [[tab:p3_mc_seeds]] show the ensembles"
    if with_test:
        text += "; [[tab:p3_test]] is the final evaluation on the test split"
    text += (". In the appendix: the data and the initial state ([[tab:p3_data]]) and inputs as the network sees "
             "them ([[fig:p3_digits]])")
    if with_mc:
        text += ", averaging logits against averaging probabilities ([[fig:p3_mc_modes]]) and every k ([[tab:p3_mc_k]])"
    return text + "."


def arm_table(m: dict) -> Table:
    rows = []
    for d in m["arms"].values():
        diverged = [r["diverged_at"] for r in d["runs"]]
        rows.append([
            d["label"], _epochs(finals(d, "epoch")), _r(d, "train_loss", 3), _r(d, "train_error_pct", 2, " %"),
            _r(d, "val_loss", 3), _r(d, "val_error_pct", 2, " %"),
            f"{_r(d, 'best_val_error_pct', 2, ' %')} (epochs {_epochs(finals(d, 'best_val_error_epoch'))})",
            f"{_r(d, 'min_val_loss', 3)} (epochs {_epochs(finals(d, 'min_val_loss_epoch'))})",
            _r(d, "seconds_per_epoch", 3),
            "no" if all(v is None for v in diverged) else ", ".join("no" if v is None else f"at epoch {v}" for v in diverged),
        ])
    return Table(
        name="p3_arms",
        caption="Final and best-epoch numbers per arm (eval mode; validation = MNIST training images "
                f"{m['data']['val_range'][0]:,}-{m['data']['val_range'][1] - 1:,}): mean [min, max] over "
                f"{seeds_text(m)}",
        columns=["arm", "final epoch", "train loss", "train error", "val loss", "val error", "best val error",
                 "min val loss", "s / epoch (training steps)", "diverged"],
        rows=rows,
        note="Best epochs are read off the validation curve, so they are optimistic; the final epoch is the protocol's "
             "number. Epochs are listed per training seed.",
    )


def _gaps(arm: dict, what: str) -> list:
    """Final generalization gap (validation - training, eval mode) per training seed."""
    return [None if v is None or t is None else v - t
            for v, t in zip(finals(arm, f"val_{what}"), finals(arm, f"train_{what}"))]


def arm_pairs(drop: dict, plain: dict) -> dict[str, tuple[list, list]]:
    """(no dropout, dropout) per training seed for each paired comparison of the arms: final validation error
    and loss, and the final generalization gaps in error and loss."""
    return {
        "val_error_pct": (finals(plain, "val_error_pct"), finals(drop, "val_error_pct")),
        "val_loss": (finals(plain, "val_loss"), finals(drop, "val_loss")),
        "gap_error_pct": (_gaps(plain, "error_pct"), _gaps(drop, "error_pct")),
        "gap_loss": (_gaps(plain, "loss"), _gaps(drop, "loss")),
    }


def _diff_cell(a, b, digits: int) -> str:
    return "n/a" if a is None or b is None else f"{a - b:+.{digits}f}"


_verdict_cell = verdict_cell  # one wording for every table of intervals (lab.sections.paired)


def paired_table(m: dict) -> Table:
    drop, plain = m["arms"]["dropout"], m["arms"]["no_dropout"]
    values = arm_pairs(drop, plain)
    pairs = {k: paired(*ab) for k, ab in values.items()}
    cols = [("val_error_pct", 2), ("val_loss", 3), ("gap_error_pct", 2), ("gap_loss", 3)]
    rows = []
    for i, seed in enumerate(m["train_seeds"]):
        rows.append([f"{seed}", _pct(values["val_error_pct"][0][i]), _pct(values["val_error_pct"][1][i]),
                     fmt(values["val_loss"][0][i], 3), fmt(values["val_loss"][1][i], 3)]
                    + [_diff_cell(values[k][0][i], values[k][1][i], dg) for k, dg in cols])
    rows.append(["mean [min, max]", _r(plain, "val_error_pct", 2, " %"), _r(drop, "val_error_pct", 2, " %"),
                 _r(plain, "val_loss", 3), _r(drop, "val_loss", 3)] + [f"{pairs[k].mean:+.{dg}f}" for k, dg in cols])
    rows.append(["95 % interval of the mean difference", "", "", "", ""] + [_verdict_cell(pairs[k], dg) for k, dg in cols])
    return Table(
        name="p3_paired",
        caption="Dropout vs no dropout per training seed (final epoch, eval mode); differences are no dropout minus "
                "dropout, so > 0 means dropout is lower",
        columns=["training seed", "val error: no dropout", "val error: dropout", "val loss: no dropout",
                 "val loss: dropout", "difference: val error (points)", "difference: val loss",
                 "difference: gap in error (points)", "difference: gap in loss"],
        rows=rows,
        note=f"Rule: {RULE}. The two arms of one seed share the init draw and the minibatch order.",
    )


def _or_diverged(value, spec: str) -> str:
    """A number that overflowed is saved as null: the table says so instead of failing to format it."""
    return "diverged (inf/NaN)" if value is None else format(value, spec)


def data_table(m: dict) -> Table:
    d, init = m["data"], m["init"]
    rows = [
        ["training images", f"MNIST training split [{d['train_range'][0]:,}, {d['train_range'][1]:,})"],
        ["validation images", f"MNIST training split [{d['val_range'][0]:,}, {d['val_range'][1]:,})"],
        ["pixel mean / std (training, [0, 1] scale)", f"{d['pixel_mean']:.4f} / {d['pixel_std']:.4f}"],
        ["normalised training inputs: mean / std", f"{d['norm_mean']:.2g} / {d['norm_std']:.4f}"],
        ["normalised validation inputs: mean / std", f"{d['val_norm_mean']:.4f} / {d['val_norm_std']:.4f}"],
        ["training seeds (init draw, minibatch order, training masks)", ", ".join(str(s) for s in m["train_seeds"])],
        ["loss at init (N(0, sigma) weights) vs ln 10", f"{range_text(spread(init['loss']), 3)} vs {init['ln_classes']:.3f}"],
        ["logit std at init: measured / predicted",
         f"{range_text(spread(init['logit_std']), 3)} / {_or_diverged(init['logit_std_predicted'], '.3g')}"],
    ]
    return Table(name="p3_data", appendix=True, caption="Data and initial state", columns=["quantity", "value"], rows=rows,
                 note="One scalar mean and std over all training pixels; validation (and test) reuse them. Init "
                      "numbers: mean [min, max] over the training seeds' init draws.")


def final_test_table(m: dict) -> Table:
    t = m["test"]
    rows = [[m["arms"][arm]["label"], range_text(spread([v["loss"] for v in runs]), 3),
             range_text(spread([v["error_pct"] for v in runs]), 2, " %")] for arm, runs in t["arms"].items()]
    return Table(name="p3_test", caption=f"FINAL: MNIST test split ({t['n_test']:,} images), evaluated once per arm and training seed "
                         f"after training: mean [min, max] over the seeds",
                 columns=["arm", "test loss", "test error"], rows=rows,
                 note="Made by python -m lab run dropout --final; every choice above was made on the validation "
                      "set only.")


def discussion(m: dict) -> list[str]:
    """Sentences chosen by the measured numbers of this run."""
    lines: list[str] = []
    arms = m["arms"]
    drop, plain = arms.get("dropout"), arms.get("no_dropout")
    init = m["init"]
    w, sigma = m["widths"], init["sigma"]
    first = sigma * math.sqrt(w[0] * init["input_sq_mean"])
    loss, std = spread(init["loss"]), spread(init["logit_std"])
    if loss.n == 0 or std.n == 0 or init["logit_std_predicted"] is None:  # null: overflowed at init
        lines.append(f"At init the N(0, {sigma:g}) net's loss or logits overflowed (inf/NaN) in every training seed: "
                     "the initial weights are far too large for float32.")
    else:
        lines.append(_init_sentence(init, loss, std, sigma, w, first, m))
    d = m["data"]
    lines.append(
        f"Inputs were standardised with the training pixels' mean {d['pixel_mean']:.4f} and std {d['pixel_std']:.4f}: "
        f"the training inputs then have mean {d['norm_mean']:.1g} and std {d['norm_std']:.3f}, the validation inputs "
        f"{d['val_norm_mean']:.3f} and {d['val_norm_std']:.3f} (other images, same transform)."
    )
    if drop and plain:
        lines.extend(arm_discussion(drop, plain, m["data"]["n_val"]))
    if m.get("mc"):
        lines.extend(mc_discussion(m["mc"]))
    return lines


def _init_sentence(init: dict, loss, std, sigma: float, w: list, first: float, m: dict) -> str:
    return (
        f"At init the N(0, {sigma:g}) net has a training loss of {range_text(loss)} (mean [min, max] over the "
        f"{seeds_text(m)}' init draws)"
        + (f", close to ln 10 = {init['ln_classes']:.3f}. "
           if 0.85 <= loss.lo / init["ln_classes"] and loss.hi / init["ln_classes"] <= 1.15 else
           f", {loss.mean / init['ln_classes']:.1f}x the ln 10 = {init['ln_classes']:.3f} of uniform guessing. ")
        + f"Its logits have std {range_text(std, 3)}; variance propagation predicts {init['logit_std_predicted']:.3g}: "
        f"the first pre-activations have std sigma sqrt({w[0]} E[x^2]) = {first:.2f}, and every further layer multiplies "
        f"it by sigma sqrt(fan_in / 2) = {sigma * math.sqrt(w[1] / 2):.2f} (ReLU halves E[a^2])"
        + (", so the softmax starts confident and mostly wrong." if std.lo > 3 else ".")
    )


def _loss_clause(p: Paired, plain: str, drop: str) -> str:
    """What dropout did to the validation loss, by the paired verdict (> 0: dropout lower)."""
    if p.n == 0:
        return "the validation loss is not available for both arms"
    if p.verdict == "higher":
        return f"lowered the validation loss from {plain} to {drop} ({diffs_text(p, digits=3)})"
    if p.verdict == "lower":
        return f"raised the validation loss from {plain} to {drop} ({diffs_text(p, digits=3)})"
    return f"this run cannot tell whether it changed the validation loss ({drop} vs {plain}; {diffs_text(p, digits=3)})"


def comparison(drop: dict, plain: dict, n_val: int) -> str:
    """Dropout vs no dropout at the final epoch: paired per training seed, an effect only under the rule."""
    err = paired(finals(plain, "val_error_pct"), finals(drop, "val_error_pct"))  # > 0: dropout has fewer errors
    loss_p = paired(finals(plain, "val_loss"), finals(drop, "val_loss"))
    dv, pv = _r(drop, "val_error_pct", 2, " %"), _r(plain, "val_error_pct", 2, " %")
    loss = _loss_clause(loss_p, _r(plain, "val_loss", 3), _r(drop, "val_loss", 3))
    epochs = _epochs(sorted(set(finals(drop, "epoch"))))
    n = err.n
    images = round(abs(err.mean) / (100.0 / n_val)) if n else 0
    best = (f"best epochs: {_r(drop, 'best_val_error_pct', 2, ' %')} with dropout vs "
            f"{_r(plain, 'best_val_error_pct', 2, ' %')} without")
    where = f"after {epochs} epochs (mean [min, max] over {n} training seed{'s' if n != 1 else ''})"
    if err.verdict == "higher":
        head = ("Dropout regularizes here" if loss_p.verdict == "higher"
                else "Dropout lowered the validation error here, but not measurably the loss")
        rel = 100 * err.mean / spread(finals(plain, "val_error_pct")).mean
        return (f"{head}: {where} it lowered the validation error from {pv} (no dropout) to {dv}; no dropout "
                f"minus dropout {diffs_text(err, 'points')} ({images} of {n_val:,} images, {rel:.0f} % fewer "
                f"errors on average): an effect by the rule. It {loss}; {best}.")
    if err.verdict == "lower":
        return (f"Dropout did not lower the validation error in this run: it raised it from {pv} (no dropout) to {dv} "
                f"{where}; no dropout minus dropout {diffs_text(err, 'points')}: an effect by the rule. "
                f"It {loss}; {best}.")
    return (f"This run cannot tell whether dropout changes the validation error: {dv} with dropout vs {pv} without "
            f"{where}; no dropout minus dropout {diffs_text(err, 'points')}"
            + (", and the interval includes 0" if err.has_interval else "") + f". It {loss}; {best}.")


def _overfit_sentence(plain: dict) -> str:
    zeros = [_first_epoch(r["train_error_pct"], lambda v: v == 0.0) for r in plain["runs"]]
    rises = finals(plain, "val_loss_rise")
    n, reached = len(zeros), [z for z in zeros if z is not None]
    rose = [r is not None and r > VAL_LOSS_RISE_TOL for r in rises]
    if len(reached) == n:
        head = (f"The no-dropout arm reached 0 % training error at epoch {_epochs(zeros)} (per training seed) and "
                f"ended at training loss {_r(plain, 'train_loss', 3)}")
    elif reached:
        head = (f"The no-dropout arm reached 0 % training error in {len(reached)} of {n} training seeds (epochs "
                f"{_epochs(zeros)}) and ended at training error {_r(plain, 'train_error_pct', 2, ' %')}")
    else:
        head = (f"The no-dropout arm ended at {_r(plain, 'train_error_pct', 2, ' %')} training error (training loss "
                f"{_r(plain, 'train_loss', 3)}): it had not memorised the training set in any training seed")
    if all(rose):
        return (f"{head}; its validation loss rose above its minimum in every seed (minimum {_r(plain, 'min_val_loss', 3)} "
                f"at epochs {_epochs(finals(plain, 'min_val_loss_epoch'))}, final {_r(plain, 'val_loss', 3)}): classic "
                f"overfitting.")
    if not any(rose):
        ratio = spread([v / max(t, 1e-12) for v, t in zip(finals(plain, "val_loss"), finals(plain, "train_loss"))
                        if v is not None and t is not None])
        return (f"{head}, yet its validation loss did not rise in any seed (minimum {_r(plain, 'min_val_loss', 3)} at "
                f"epochs {_epochs(finals(plain, 'min_val_loss_epoch'))}, final {_r(plain, 'val_loss', 3)}): it overfits "
                f"in the sense of the gap (validation loss {ratio.mean:,.0f}x the training loss on average), not of a "
                f"rising validation curve.")
    return (f"{head}; its validation loss rose above its minimum by more than {VAL_LOSS_RISE_TOL} in {sum(rose)} of "
            f"{n} seeds: this run cannot tell whether it rises.")


def _gap_sentence(drop: dict, plain: dict) -> str:
    err, loss = paired(_gaps(plain, "error_pct"), _gaps(drop, "error_pct")), paired(_gaps(plain, "loss"), _gaps(drop, "loss"))
    verdict = {"higher": "larger without dropout", "lower": "smaller without dropout", CANNOT_TELL: "this run cannot tell which is larger"}
    return (f"Generalization gap at the end (validation - training, eval mode): dropout "
            f"{range_text(spread(_gaps(drop, 'loss')), 3)} in loss and {range_text(spread(_gaps(drop, 'error_pct')))} "
            f"points in error; no dropout {range_text(spread(_gaps(plain, 'loss')), 3)} and "
            f"{range_text(spread(_gaps(plain, 'error_pct')))} points. Paired per seed, the gap in error is "
            f"{verdict[err.verdict]} ({diffs_text(err, 'points')}), the gap in loss {verdict[loss.verdict]} "
            f"({diffs_text(loss, digits=3)}).")


def _running_loss_sentence(drop: dict) -> str | None:
    pairs = [(next((v for v in reversed(r["run_loss"]) if v is not None), None), r["summary"]["train_loss"])
             for r in drop["runs"]]
    ratios = [run / tr for run, tr in pairs if run is not None and tr]
    if not ratios:
        return None
    if min(ratios) > FAR_WORSE_RATIO:
        why = "in every seed each step trains a random thinned net, which fits the data far worse than the full net it averages into."
    elif min(ratios) > 1:
        why = (f"in every seed each step trains a random thinned net, which fits the data worse than the full net it "
               f"averages into, though not by more than {FAR_WORSE_RATIO:g}x in every seed.")
    elif max(ratios) <= 1:
        why = ("here the thinned nets seen while training fit the data no worse than the full net in eval mode "
               "(the running loss also averages over the epoch, when the net was still improving).")
    else:
        why = f"the thinned nets seen while training fit worse than the full net in {sum(r > 1 for r in ratios)} of {len(ratios)} seeds only."
    return (f"The dropout arm's training loss as seen while training (masks on) ended at "
            f"{range_text(spread([p[0] for p in pairs]), 3)}, {range_text(spread(ratios), 1)}x its eval-mode training "
            f"loss {_r(drop, 'train_loss', 3)}: {why}")


def _cost_sentence(drop: dict, plain: dict) -> str | None:
    sd, sp = spread(finals(drop, "seconds_per_epoch")), spread(finals(plain, "seconds_per_epoch"))
    if not (sd.n and sp.n and sp.mean > 0):
        return None
    catches = []
    for rd, rp in zip(drop["runs"], plain["runs"]):
        best = rp["summary"].get("best_val_error_pct")
        catches.append(_first_epoch(rd["val_error_pct"], lambda v: best is not None and v <= best))
    reached = ("never reached the same seed's best no-dropout validation error in any seed" if all(c is None for c in catches)
               else f"first reached the same seed's best no-dropout validation error at epoch {_epochs(catches)} (per "
                    f"training seed)")
    return (f"Cost in training: a dropout epoch took {sd.mean:.2f} s vs {sp.mean:.2f} s without ({sd.mean / sp.mean:.2f}x: "
            f"mask sampling and the masked products; means over the seeds), and in epochs: the dropout arm {reached} "
            f"(those bests: {_r(plain, 'best_val_error_pct', 2, ' %')}). Wall times are measured on the machine of this "
            f"run (see Reproducibility) and are noisy.")


def arm_discussion(drop: dict, plain: dict, n_val: int) -> list[str]:
    """Regularization, overfitting, gap and training cost: dropout arm vs no-dropout arm, over training seeds."""
    lines: list[str] = []
    diverged = [(arm, r) for arm in (drop, plain) for r in arm["runs"] if r["diverged_at"] is not None]
    for arm, r in diverged:
        lines.append(f"{arm['label']}, training seed {r['train_seed']}: the training loss became NaN/Inf at epoch "
                     f"{r['diverged_at']}; the arm was stopped there.")
    if diverged:
        # A diverged net still has a finite error % (argmax of NaN logits), so "beating" it would mean nothing.
        lines.append(
            "No comparison of the arms: "
            + " and ".join(f"the {a['label']} arm diverged at epoch {r['diverged_at']} (seed {r['train_seed']})"
                           for a, r in diverged)
            + ", so not every seed's final numbers are those of a trained net."
        )
        return lines
    keys = ("train_loss", "val_loss", "train_error_pct", "val_error_pct")
    if not all(v is not None for arm in (drop, plain) for k in keys for v in finals(arm, k)):
        return lines  # no final numbers to compare
    lines.append(comparison(drop, plain, n_val))
    lines.append(_overfit_sentence(plain))
    lines.append(_gap_sentence(drop, plain))
    lines.extend(line for line in (_running_loss_sentence(drop), _cost_sentence(drop, plain)) if line)
    return lines


__all__ = ["answers", "arm_discussion", "arm_pairs", "arm_table", "build", "comparison", "data_table", "discussion",
           "final_test_table", "finals", "paired_table"]


# Answers at a glance (words: templates/answers.txt.j2). Every comparison is the paired verdict of
# lab.sections.paired; an arm that diverged, or a missing ensemble, makes the answer say it cannot tell.

SMALL_K = 10  # "a small ensemble": the first grid k at or above this


def _paired_facts(p: Paired, digits: int = 2) -> dict:
    lo, hi = p.interval
    return {"verdict": p.verdict, "mean": f"{p.mean:+.{digits}f}" if p.n else "n/a", "n": p.n,
            "abs": f"{abs(p.mean):.{digits}f}" if p.n else "n/a", "digits": digits,
            "lo": lo if p.has_interval else None, "hi": hi if p.has_interval else None,
            "interval": interval_text(lo, hi, digits) if p.has_interval else "n/a", "reason": p.reason}


def _with_question(rows: list[dict], cfg: dict) -> list[dict]:
    """The dropout question names the rates this run used, not the lab's default 50 % / 20 %."""
    for row in rows:
        if row["id"] == "p3_dropout":
            row["question"] = (f"Dropout ({cfg['p_hidden'] * 100:g} % after each hidden layer, {cfg['p_input'] * 100:g} % "
                               "on the input) against none: training and validation loss and error?")
    return rows


def answers(m: dict) -> list[dict]:
    from lab.sections.dropout_mc import _column, eval_values, seed_pairs

    arms = m["arms"]
    drop, plain = arms.get("dropout"), arms.get("no_dropout")
    diverged = not (drop and plain) or any(r["diverged_at"] is not None for a in (drop, plain) for r in a["runs"])
    out = []
    if diverged:
        facts = {"diverged": True}
        out += [{"id": "p3_dropout", "status": "inconclusive", "refs": ["fig:p3_curves", "tab:p3_arms"], "facts": facts},
                {"id": "p3_regulariser", "status": "inconclusive", "refs": ["fig:p3_gap"], "facts": facts}]
    else:
        err = paired(finals(plain, "val_error_pct"), finals(drop, "val_error_pct"))  # > 0: dropout lower
        loss = paired(finals(plain, "val_loss"), finals(drop, "val_loss"))
        out.append({
            "id": "p3_dropout", "status": "answered" if err.effect else "inconclusive",
            "refs": ["fig:p3_curves", "tab:p3_paired", "tab:p3_arms"],
            "facts": {"diverged": False, "seeds": len(m["train_seeds"]),
                      "val_err_drop": _r(drop, "val_error_pct", 2, " %"), "val_err_plain": _r(plain, "val_error_pct", 2, " %"),
                      "train_err_drop": _r(drop, "train_error_pct", 2, " %"),
                      "train_err_plain": _r(plain, "train_error_pct", 2, " %"),
                      "val_loss_drop": _r(drop, "val_loss", 3), "val_loss_plain": _r(plain, "val_loss", 3),
                      "train_loss_drop": _r(drop, "train_loss", 3), "train_loss_plain": _r(plain, "train_loss", 3),
                      "err": _paired_facts(err), "loss": _paired_facts(loss, 3)},
        })
        gap_err = paired(_gaps(plain, "error_pct"), _gaps(drop, "error_pct"))  # > 0: the gap is larger without
        gap_loss = paired(_gaps(plain, "loss"), _gaps(drop, "loss"))
        out.append({
            "id": "p3_regulariser", "status": "answered" if gap_err.effect else "inconclusive",
            "refs": ["fig:p3_gap", "tab:p3_paired"],
            "facts": {"diverged": False, "gap_err_drop": range_text(spread(_gaps(drop, "error_pct"))),
                      "gap_err_plain": range_text(spread(_gaps(plain, "error_pct"))),
                      "gap_loss_drop": range_text(spread(_gaps(drop, "loss")), 3),
                      "gap_loss_plain": range_text(spread(_gaps(plain, "loss")), 3),
                      "gap_err": _paired_facts(gap_err), "gap_loss": _paired_facts(gap_loss, 3),
                      "err_effect": err.verdict},
        })
    mc = m.get("mc")
    if not mc:
        out += [{"id": k, "status": "missing", "refs": [], "facts": {}} for k in ("p3_mc_small", "p3_mc_large")]
        return out
    ks, pairs = mc["k_grid"], seed_pairs(mc)
    small = next((k for k in ks if k >= SMALL_K), ks[-1])
    ev = list(eval_values(mc))
    k_small = paired(_column(mc, small), ev)
    out.append({
        "id": "p3_mc_small", "status": "answered",
        "refs": ["fig:p3_mc", "tab:p3_mc_seeds", "tab:p3_mc_k"],
        "facts": {"k1": range_text(spread(_column(mc, 1)), 2, " %"), "small_k": small,
                  "small": range_text(spread(_column(mc, small)), 2, " %"), "eval": range_text(spread(ev), 2, " %"),
                  "k1_vs_eval": _paired_facts(pairs["k1_vs_eval"]), "small_vs_eval": _paired_facts(k_small)},
    })
    top = ks[-1]
    kmax = pairs["kmax_vs_eval"]
    out.append({
        "id": "p3_mc_large", "status": "answered" if kmax.effect else "inconclusive",
        "refs": ["fig:p3_mc", "tab:p3_mc_seeds"],
        "facts": {"k_max": f"{top:,}", "large": range_text(spread(_column(mc, top)), 2, " %"),
                  "eval": range_text(spread(ev), 2, " %"), "vs_eval": _paired_facts(kmax),
                  "images": f"{abs(kmax.mean) * mc['n_images'] / 100.0:.0f}" if kmax.n else "n/a"},
    })
    return out
