"""Part 3 section: figures, tables and generated discussion from dropout's results JSON.

    built = build(load_result(path), FigureSink(staging / "figures"))
"""

from __future__ import annotations

import math

import numpy as np

from lab.plots import nan_array, new_figure
from lab.plots.dropout import SRIVASTAVA_K, plot_curves, plot_digits, plot_gap, plot_mc_error, plot_mc_modes
from lab.results import ExperimentResult
from lab.sections import FigureSink, Table, fmt

VAL_LOSS_RISE_TOL = 0.01  # a rise of the validation loss above its minimum smaller than this is "flat"
NEAR_IMAGES = 2  # "close to weight scaling": within this many validation images
EFFECT_IMAGES = 5  # the arms' final validation errors must differ by this many images before we call it an effect
FAR_WORSE_RATIO = 2.0  # masked (running) training loss / eval-mode training loss above this: "far worse"
MODE_LABEL = {"logits": "averaged logits", "probs": "averaged probabilities"}


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} %"


def _first_epoch(values: list, pred) -> int | None:
    return next((i for i, v in enumerate(values) if v is not None and pred(v)), None)


def _seed_matrix(rows: list[list[float | None]]) -> np.ndarray:
    """[seed, k] as floats; NaN where a seed stopped at a smaller k than the grid's."""
    return nan_array(rows)


def _mc_stats(mc: dict, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the seeds that reached each k, and half the min-max range (0 where one seed did)."""
    e = _seed_matrix(mc[mode]["error_pct"])
    return np.nanmean(e, 0), (np.nanmax(e, 0) - np.nanmin(e, 0)) / 2.0


def _seeds_at(mc: dict) -> np.ndarray:
    """How many mask seeds reached each k of the grid."""
    return (~np.isnan(_seed_matrix(mc["logits"]["error_pct"]))).sum(0)


def seeds_text(mc: dict) -> str:
    """'3 mask seeds' or '3 mask seeds (the first to k = 1,000, the others to k = 300)'."""
    per = mc.get("k_max_per_seed") or [mc["k_grid"][-1]] * len(mc["mask_seeds"])
    text = f"{len(per)} mask seed{'s' if len(per) > 1 else ''}"
    if len(set(per)) > 1:
        text += f" (the first to k = {per[0]:,}, the others to k = {min(per[1:]):,}; beyond that, one seed)"
    return text


def build(result: ExperimentResult, sink: FigureSink) -> dict:
    m = result.metrics
    figures = []

    fig, axes = new_figure(ncols=2, width=5.4, height=4.0)
    plot_curves(m, "loss", axes[0, 0])
    axes[0, 0].set_title("cross-entropy per epoch")
    plot_curves(m, "error", axes[0, 1], legend=False)  # same lines and colours as on the left
    axes[0, 1].set_title("error per epoch")
    figures.append(sink.add(
        "p3_curves", fig,
        f"Training (dashed) and validation (solid) loss and error of both arms, scored in eval mode on all "
        f"{m['data']['n_train']:,} training and {m['data']['n_val']:,} validation images after every epoch "
        f"(epoch 0 = at init); dots: the training loss as seen during training (mean minibatch loss, dropout on)."))

    fig, axes = new_figure(ncols=2, width=5.0, height=3.4)
    plot_gap(m, axes[0, 0], "loss")
    axes[0, 0].set_title("generalization gap: loss")
    plot_gap(m, axes[0, 1], "error")
    axes[0, 1].set_title("generalization gap: error")
    figures.append(sink.add(
        "p3_gap", fig, "Generalization gap (validation minus training, both in eval mode) per epoch for both arms."))

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
        f"diverging colour scale from {-vlim:.2f} to {vlim:.2f}, white = 0. The net gets them flattened to 784 inputs."))

    mc = m.get("mc")
    if mc:
        fig, ax = new_figure(width=6.4, height=4.0)
        plot_mc_error(mc, "logits", ax)
        ax.set_title("Monte-Carlo dropout ensemble vs weight scaling")
        figures.append(sink.add(
            "p3_mc", fig,
            f"Error of the dropout net kept in train mode, averaging the logits of k stochastic passes over "
            f"{mc['n_images']:,} validation images; every k of a mask seed comes from one run of passes with running "
            f"averages (band: min-max over {seeds_text(mc)}). Dashed: the same net in eval mode."))
        fig, axes = new_figure(ncols=2, width=5.0, height=3.6)
        plot_mc_modes(mc, "error", axes[0, 0])
        axes[0, 0].set_title("error: logits vs probabilities averaged")
        plot_mc_modes(mc, "nll", axes[0, 1])
        axes[0, 1].set_title("NLL: logits vs probabilities averaged")
        figures.append(sink.add(
            "p3_mc_modes", fig,
            "Averaging logits (a geometric mean of the members' distributions, renormalised) against averaging "
            "probabilities (the arithmetic mean), by error and by negative log-likelihood; bands: min-max over mask seeds."))

    tables = [arm_table(m), data_table(m)]
    if mc:
        tables.append(mc_table(mc))
    # The test table is kept out of `tables`: the template shows it in its own, labelled subsection.
    return {
        "figures": figures,
        "tables": tables,
        "discussion": discussion(m),
        "final_test_table": final_test_table(m) if m.get("test") else None,
    }


def arm_table(m: dict) -> Table:
    rows = []
    for arm, d in m["arms"].items():
        s = d["summary"]
        rows.append([
            d["label"], fmt(s["epoch"]), fmt(s["train_loss"], 3), _pct(s["train_error_pct"]), fmt(s["val_loss"], 3),
            _pct(s["val_error_pct"]),
            f"{_pct(s.get('best_val_error_pct'))} (epoch {fmt(s.get('best_val_error_epoch'))})",
            f"{fmt(s.get('min_val_loss'), 3)} (epoch {fmt(s.get('min_val_loss_epoch'))})",
            fmt(s["seconds_per_epoch"], 3),
            "no" if d["diverged_at"] is None else f"at epoch {d['diverged_at']}",
        ])
    return Table(
        caption="Final and best-epoch numbers per arm (eval mode; validation = MNIST training images "
                f"{m['data']['val_range'][0]:,}-{m['data']['val_range'][1] - 1:,})",
        columns=["arm", "final epoch", "train loss", "train error", "val loss", "val error", "best val error",
                 "min val loss", "s / epoch (training steps)", "diverged"],
        rows=rows,
        note="Best epochs are read off the validation curve, so they are optimistic; the final epoch is the protocol's number.",
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
        ["loss at init (N(0, sigma) weights) vs ln 10", f"{_or_diverged(init['loss'], '.3f')} vs {init['ln_classes']:.3f}"],
        ["logit std at init: measured / predicted",
         f"{_or_diverged(init['logit_std'], '.3g')} / {_or_diverged(init['logit_std_predicted'], '.3g')}"],
    ]
    return Table(caption="Data and initial state", columns=["quantity", "value"], rows=rows,
                 note="One scalar mean and std over all training pixels; validation (and test) reuse them.")


def mc_table(mc: dict) -> Table:
    ks = mc["k_grid"]
    (lm, ls), (pm, ps) = _mc_stats(mc, "logits"), _mc_stats(mc, "probs")
    ratio = mc.get("pass_cost_ratio")
    rows = [["eval mode (weight scaling)", _pct(mc["eval_error_pct"]), _pct(mc["eval_error_pct"]), "1", fmt(mc["eval_pass_s"], 3)]]
    counts = _seeds_at(mc)
    for i, k in enumerate(ks):
        cost = fmt(k * ratio, 3) if ratio is not None else "n/a"
        if counts[i] > 1:
            cells = [f"{lm[i]:.2f} +/- {ls[i]:.2f} %", f"{pm[i]:.2f} +/- {ps[i]:.2f} %"]
        else:
            cells = [f"{lm[i]:.2f} % (1 seed)", f"{pm[i]:.2f} % (1 seed)"]
        rows.append([f"k = {k:,}", *cells, cost, fmt(k * mc["mc_pass_s"], 3)])
    return Table(
        caption=f"Monte-Carlo dropout ensembles on {mc['n_images']:,} validation images: error mean +/- half the "
                f"min-max range over {seeds_text(mc)}",
        columns=["ensemble", "logits averaged", "probabilities averaged", "cost (eval passes)", "time (s)"],
        rows=rows,
        note=f"One train-mode pass took {fmt(mc['mc_pass_s'] * 1e3, 3)} ms and one eval-mode pass "
             f"{fmt(mc['eval_pass_s'] * 1e3, 3)} ms over these images (median of 3, measured in this run), so a "
             f"member costs {fmt(ratio, 3)} eval passes; one image is {100 / mc['n_images']:.3f} percentage points.",
    )


def final_test_table(m: dict) -> Table:
    t = m["test"]
    rows = [[m["arms"][arm]["label"], fmt(v["loss"], 3), _pct(v["error_pct"])] for arm, v in t["arms"].items()]
    return Table(caption=f"FINAL: MNIST test split ({t['n_test']:,} images), evaluated once per arm after training",
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
    if None in (init["loss"], init["logit_std"], init["logit_std_predicted"]):  # null: overflowed at init (diverged)
        init = {k: math.inf if v is None else v for k, v in init.items()}
    lines.append(
        f"At init the N(0, {sigma:g}) net has a training loss of {init['loss']:.2f}"
        + (f", {init['loss'] / init['ln_classes']:.1f}x the ln 10 = {init['ln_classes']:.3f} of uniform guessing. "
           if init["loss"] > 1.5 * init["ln_classes"] else f", close to ln 10 = {init['ln_classes']:.3f}. ")
        + f"Its logits have std {init['logit_std']:.3g}; variance propagation predicts {init['logit_std_predicted']:.3g}: "
        f"the first pre-activations have std sigma sqrt({w[0]} E[x^2]) = {first:.2f}, and every further layer multiplies "
        f"it by sigma sqrt(fan_in / 2) = {sigma * math.sqrt(w[1] / 2):.2f} (ReLU halves E[a^2])"
        + (", so the softmax starts confident and mostly wrong." if init["logit_std"] > 3 else ".")
    )
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


def _loss_clause(before: float | None, after: float | None) -> str:
    """'lowered / raised / left unchanged the validation loss ...', by the sign of the measured change."""
    if before is None or after is None:
        return "the validation loss is not available for both arms"
    if after < before:
        return f"lowered the validation loss from {before:.3f} to {after:.3f}"
    if after > before:
        return f"raised the validation loss from {before:.3f} to {after:.3f}"
    return f"left the validation loss unchanged at {before:.3f}"


def comparison(sd: dict, sp: dict, n_val: int) -> str:
    """Dropout vs no dropout at the final epoch, with an effect claimed only beyond EFFECT_IMAGES images."""
    dv, pv = sd["val_error_pct"], sp["val_error_pct"]
    point = 100.0 / n_val  # one validation image, in percentage points
    diff = pv - dv  # > 0: dropout has fewer errors
    images = round(abs(diff) / point)
    loss = _loss_clause(sp.get("val_loss"), sd.get("val_loss"))
    best = f"best epochs: {_pct(sd.get('best_val_error_pct'))} with dropout vs {_pct(sp.get('best_val_error_pct'))} without"
    if diff >= EFFECT_IMAGES * point - 1e-9:
        loss_down = sd.get("val_loss") is not None and sp.get("val_loss") is not None and sd["val_loss"] < sp["val_loss"]
        head = "Dropout regularizes here" if loss_down else "Dropout lowered the validation error here, but not the loss"
        return (f"{head}: after {sd['epoch']} epochs it lowered the validation error from {pv:.2f} % (no dropout) to "
                f"{dv:.2f} % ({diff:.2f} points = {images} of {n_val:,} images, {100 * diff / pv:.0f} % fewer errors) and "
                f"{loss}; {best}.")
    if -diff >= EFFECT_IMAGES * point - 1e-9:
        return (f"Dropout did not lower the validation error in this run: it raised it from {pv:.2f} % (no dropout) to "
                f"{dv:.2f} % after {sd['epoch']} epochs ({images} of {n_val:,} images more) and {loss}; {best}.")
    return (f"Dropout did not lower the validation error measurably in this run: {dv:.2f} % with dropout vs {pv:.2f} % "
            f"without after {sd['epoch']} epochs, a difference of {images} image{'s' if images != 1 else ''} "
            f"(under {EFFECT_IMAGES} of {n_val:,}, too few to call an effect); it {loss}; {best}.")


def arm_discussion(drop: dict, plain: dict, n_val: int) -> list[str]:
    """Regularization, overfitting, gap and training cost: dropout arm vs no-dropout arm."""
    lines: list[str] = []
    sd, sp = drop["summary"], plain["summary"]
    diverged = [arm for arm in (drop, plain) if arm["diverged_at"] is not None]
    for arm in diverged:
        lines.append(f"{arm['label']}: the training loss became NaN/Inf at epoch {arm['diverged_at']}; the arm was stopped there.")
    if diverged:
        # A diverged net still has a finite error % (argmax of NaN logits), so "beating" it would mean nothing.
        lines.append(
            "No comparison of the arms: "
            + " and ".join(f"the {a['label']} arm diverged at epoch {a['diverged_at']}" for a in diverged)
            + f", so {'its' if len(diverged) == 1 else 'their'} final numbers are not those of a trained net."
        )
        return lines
    keys = ("train_loss", "val_loss", "train_error_pct", "val_error_pct")
    if not all(summary.get(k) is not None for summary in (sd, sp) for k in keys):
        return lines  # no final numbers to compare
    lines.append(comparison(sd, sp, n_val))
    zero = _first_epoch(plain["train_error_pct"], lambda v: v == 0.0)
    rise = sp.get("val_loss_rise")
    if zero is not None:
        over = f"The no-dropout arm reached 0 % training error at epoch {zero} and ended at training loss {sp['train_loss']:.2g}"
        if rise is not None and rise > VAL_LOSS_RISE_TOL:
            over += (f"; its validation loss rose from its minimum {sp['min_val_loss']:.3f} (epoch {sp['min_val_loss_epoch']}) "
                     f"to {sp['val_loss']:.3f}: classic overfitting.")
        elif rise is not None:
            over += (f", yet its validation loss did not rise (minimum {sp['min_val_loss']:.3f} at epoch "
                     f"{sp['min_val_loss_epoch']}, final {sp['val_loss']:.3f}): it overfits in the sense of the gap "
                     f"(validation loss {sp['val_loss'] / max(sp['train_loss'], 1e-12):,.0f}x the training loss), not of "
                     f"a rising validation curve.")
        else:
            over += "."
    else:
        over = (f"The no-dropout arm ended at {sp['train_error_pct']:.2f} % training error (training loss "
                f"{sp['train_loss']:.2g}): it had not memorised the training set within {sp['epoch']} epochs")
        if rise is not None and rise > VAL_LOSS_RISE_TOL:
            over += f", though its validation loss already rose from {sp['min_val_loss']:.3f} to {sp['val_loss']:.3f}."
        else:
            over += "."
    lines.append(over)
    lines.append(
        f"Generalization gap at the end (validation - training, eval mode): dropout {sd['val_loss'] - sd['train_loss']:.3f} "
        f"in loss and {sd['val_error_pct'] - sd['train_error_pct']:.2f} points in error; no dropout "
        f"{sp['val_loss'] - sp['train_loss']:.3f} and {sp['val_error_pct'] - sp['train_error_pct']:.2f} points."
    )
    run = [v for v in drop["run_loss"] if v is not None]
    if run and sd["train_loss"] and sd["train_loss"] > 0:
        ratio = run[-1] / sd["train_loss"]
        if ratio > FAR_WORSE_RATIO:
            why = ("each step trains a random thinned net, which fits the data far worse than the full net it "
                   "averages into.")
        elif ratio > 1:
            why = (f"each step trains a random thinned net, which fits the data worse than the full net it averages "
                   f"into, though by less than {FAR_WORSE_RATIO:g}x here.")
        else:
            why = ("here the thinned nets seen while training fit the data no worse than the full net in eval mode "
                   "(the running loss also averages over the epoch, when the net was still improving).")
        lines.append(
            f"The dropout arm's training loss as seen while training (masks on) ended at {run[-1]:.3f}, "
            f"{ratio:.1f}x its eval-mode training loss {sd['train_loss']:.3f}: {why}"
        )
    if sd["seconds_per_epoch"] and sp["seconds_per_epoch"]:
        best, best_epoch = sp.get("best_val_error_pct"), sp.get("best_val_error_epoch")
        catch = _first_epoch(drop["val_error_pct"], lambda v: best is not None and v <= best)
        if catch is None:
            speed = f"the dropout arm never reached the no-dropout arm's best validation error ({_pct(best)}) within the run."
        else:
            speed = (f"the dropout arm first reached the no-dropout arm's best validation error ({_pct(best)}, its epoch "
                     f"{best_epoch}) at epoch {catch}.")
        lines.append(
            f"Cost in training: a dropout epoch took {sd['seconds_per_epoch']:.2f} s vs {sp['seconds_per_epoch']:.2f} s "
            f"without ({sd['seconds_per_epoch'] / sp['seconds_per_epoch']:.2f}x: mask sampling and the masked products), "
            f"and in epochs: {speed} Wall times are single measurements on the machine of this run (see Reproducibility) and are noisy."
        )
    return lines


def _first_seed(mc: dict, mode: str, key: str = "error_pct") -> np.ndarray:
    """The first mask seed's curve: the only one that reaches k_max."""
    return _seed_matrix(mc[mode][key])[0]


def mc_discussion(mc: dict) -> list[str]:
    lines = []
    ks = mc["k_grid"]
    base = mc["eval_error_pct"]
    lm, ls = _mc_stats(mc, "logits")
    pm, _ = _mc_stats(mc, "probs")
    resolution = 100.0 / mc["n_images"]
    gap1, gapk = lm[0] - base, lm[-1] - base
    if lm[-1] < lm[0] and abs(gapk) < abs(gap1):
        verb = (f"Averaging k passes narrows the gap to eval mode (from {gap1:+.2f} to {gapk:+.2f} points at "
                f"k = {ks[-1]:,})")
    elif lm[-1] < lm[0]:
        verb = (f"Averaging k passes lowers the error past eval mode's (from {gap1:+.2f} to {gapk:+.2f} points at "
                f"k = {ks[-1]:,}), so the gap does not shrink")
    else:
        verb = (f"Averaging k passes does not lower the error here (from {gap1:+.2f} to {gapk:+.2f} points against "
                f"eval mode at k = {ks[-1]:,})")
    lines.append(
        f"A single train-mode pass (k = 1, what a forgotten model.eval() gives) errs on {lm[0]:.2f} % of the "
        f"{mc['n_images']:,} validation images vs {base:.2f} % in eval mode. {verb}: "
        + ", ".join(f"k = {k:,}: {lm[i]:.2f} %" for i, k in enumerate(ks) if k in (2, 10, ks[-1]) or k == SRIVASTAVA_K)
        + " (logits averaged, mean over the mask seeds that reached each k)."
    )
    for mode in ("logits", "probs"):
        meet = mc[mode]["meet_k"]  # on the first mask seed's curve, the one that runs to k_max
        reach = mc.get("k_max_per_seed") or [ks[-1]] * len(mc[mode]["meet_k_per_seed"])
        per_seed = ", ".join(
            (f"{k:,}" if k is not None else "never" if top == ks[-1] else f"not by k = {top:,}")
            for k, top in zip(mc[mode]["meet_k_per_seed"], reach)
        )
        first = _first_seed(mc, mode)
        who = ("the ensemble" if len(reach) == 1 else "the first mask seed's ensemble" if len(set(reach)) == 1
               else f"the first mask seed's ensemble (the only one run to k = {reach[0]:,})")
        if meet is None:
            lines.append(
                f"With {MODE_LABEL[mode]} {who} never reached the eval-mode error within k = {ks[-1]:,} "
                f"(best {np.nanmin(first):.2f} % vs {base:.2f} %; per mask seed: {per_seed}); Srivastava et al. (2014, "
                f"section 7.5) found the two matching at about k = {SRIVASTAVA_K} on MNIST."
            )
        else:
            rel = ("sooner than" if meet < SRIVASTAVA_K else "at the same k as" if meet == SRIVASTAVA_K else "later than")
            lines.append(
                f"With {MODE_LABEL[mode]} {who} first reached the eval-mode error at k = {meet:,} "
                f"(per mask seed: {per_seed}), {rel} the k ~ {SRIVASTAVA_K} Srivastava et al. (2014, section 7.5) "
                f"found on MNIST; at k = {ks[-1]:,} it errs on {first[-1]:.2f} % vs {base:.2f} % for weight scaling."
            )
    first = _first_seed(mc, "logits")
    within = [e - base <= NEAR_IMAGES * resolution + 1e-4 for e in first]  # 1e-4: float32 rounding of whole images
    near = next((k for i, k in enumerate(ks) if all(within[i:])), None)  # from this k on, every larger k too
    if near is not None:
        lines.append(
            f"The strict meeting point rests on single images ({resolution:.3f} points each): the first mask seed's "
            f"logit-averaged ensemble is within {NEAR_IMAGES} images ({NEAR_IMAGES * resolution:.3f} points) of weight "
            f"scaling from k = {near:,} on."
        )
    diff = lm[-1] - base
    images = abs(diff) / resolution
    several = np.flatnonzero(_seeds_at(mc) > 1)
    j = int(several[-1]) if several.size else len(ks) - 1  # largest k that several mask seeds reached
    spread = f"+/- {ls[j]:.2f}" + ("" if j == len(ks) - 1 else f" at k = {ks[j]:,}")
    if abs(diff) <= max(ls[j], resolution):
        lines.append(
            f"The largest ensemble and weight scaling agree: at k = {ks[-1]:,} the difference is {diff:+.2f} points "
            f"({images:.0f} images), within the mask-seed spread ({spread}); weight scaling gets there in one pass."
        )
    elif diff < 0:
        lines.append(
            f"The k = {ks[-1]:,} ensemble beats weight scaling by {-diff:.2f} points ({images:.0f} images; mask-seed "
            f"spread {spread}), at {ks[-1] * (mc.get('pass_cost_ratio') or 1):,.0f}x the cost of one eval pass."
        )
    else:
        lines.append(
            f"Even k = {ks[-1]:,} stays {diff:.2f} points ({images:.0f} images) above weight scaling (mask-seed spread "
            f"{spread}): the one-pass approximation is at least as good as the sampled ensemble here."
        )
    better = "probabilities" if pm[-1] < lm[-1] else "logits" if lm[-1] < pm[-1] else None
    lines.append(
        f"Logits vs probabilities at k = {ks[-1]:,}: {lm[-1]:.2f} % vs {pm[-1]:.2f} %"
        + (f"; averaging {better} is lower here" if better else "; no difference")
        + f", and at k = {ks[min(2, len(ks) - 1)]:,} {lm[min(2, len(ks) - 1)]:.2f} % vs {pm[min(2, len(ks) - 1)]:.2f} %."
    )
    ln = np.nanmean(_seed_matrix(mc["logits"]["nll"]), 0)
    pn = np.nanmean(_seed_matrix(mc["probs"]["nll"]), 0)
    lines.append(nll_sentence(ks[-1], lm[-1], pm[-1], ln[-1], pn[-1], mc["eval_loss"]))
    if mc.get("pass_cost_ratio"):
        lines.append(
            f"Cost: one stochastic pass cost {mc['pass_cost_ratio']:.2f} eval passes (fresh masks for every unit), so "
            f"k = {ks[-1]:,} costs {ks[-1] * mc['pass_cost_ratio']:,.0f} eval passes; the whole MC study took "
            f"{mc['wall_s']:.0f} s for {seeds_text(mc)}."
        )
    return lines


def _relative(a: float, b: float) -> float:
    """|a - b| relative to the smaller of the two (0 when equal, inf when the smaller is 0)."""
    low = min(a, b)
    return 0.0 if a == b else math.inf if low <= 0 else abs(a - b) / low


def nll_sentence(k: int, err_logits: float, err_probs: float, nll_logits: float, nll_probs: float, nll_eval: float) -> str:
    """Logits vs probabilities by NLL, with 'more' / 'less' than by error decided by the relative differences."""
    rel_nll, rel_err = _relative(nll_logits, nll_probs), _relative(err_logits, err_probs)
    how = "more" if rel_nll > rel_err else "less" if rel_nll < rel_err else "as much"
    rel = lambda r: "n/a" if math.isinf(r) else f"{100 * r:.0f} %"
    scores = {"averaged probabilities": nll_probs, "averaged logits": nll_logits, "weight scaling": nll_eval}
    lowest = min(scores, key=scores.get)
    return (
        f"By negative log-likelihood the two averages differ {how} than by error (relative difference {rel(rel_nll)} "
        f"in NLL vs {rel(rel_err)} in error): at k = {k:,} averaged probabilities reach {nll_probs:.4f}, averaged "
        f"logits {nll_logits:.4f}, weight scaling {nll_eval:.4f}; {lowest} {'give' if lowest.startswith('averaged') else 'gives'} "
        f"the lowest NLL here."
    )


__all__ = ["arm_discussion", "arm_table", "build", "comparison", "data_table", "discussion", "mc_table",
           "final_test_table", "nll_sentence"]
