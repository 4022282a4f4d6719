"""Part 1 section: figures, tables and generated discussion from shallow_init's results JSON.

    built = build(load_result(path), FigureSink(staging / "figures"))   # -> templates/sections/shallow_init.*.j2

Reads numbers only. Every sentence of the discussion is chosen by a comparison of measured values,
so a run where an effect does not appear says so.
"""

from __future__ import annotations

import math

import numpy as np

from lab.plots import new_figure
from lab.plots.shallow import arm_color, plot_arms, plot_decision_boundary, plot_loss_curves, plot_rings, plot_sweep
from lab.results import ExperimentResult
from lab.sections import FigureSink, Table, fmt

PICKS = ("slow", "good", "large")
CROSSCHECK_TOL = 1e-5  # batched vs per-model training loss: float32 round-off over the run stays far below this
CHANCE_SIGMAS = 3.0  # "at chance": accuracy within this many binomial standard errors of 0.5


def _num(v) -> float | None:
    """A measured value, or None where there is none: null in the JSON (diverged / never) or a non-finite float."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _n_seeds(arm: dict) -> int:
    return len(arm["seeds"]) if "seeds" in arm else len(arm["init_loss"])


def _missing(arm: dict) -> str:
    """What a missing median means: the seeds diverged, or (no divergence recorded) the value does not exist."""
    return "diverged" if arm.get("n_diverged") else "n/a"


def _div_note(arm: dict) -> str:
    """' (k/n seeds diverged)' when some seed diverged: a median or accuracy next to it is not over all seeds alike."""
    k = arm.get("n_diverged") or 0
    return f" ({k}/{_n_seeds(arm)} seeds diverged)" if k else ""


def _val(arm: dict, key: str, digits: int = 3) -> str:
    v = _num(arm["median"].get(key))
    return _missing(arm) if v is None else fmt(v, digits)


def _acc(arm: dict, key: str = "final_val_acc") -> str:
    v = _num(arm["median"].get(key))
    return _missing(arm) if v is None else _pct(v)


def _pct(v) -> str:
    v = _num(v)
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _ln2(v, ln2: float) -> str:
    v = _num(v)
    return "n/a" if v is None else f"{v / ln2:.3g} ln 2"


def _g(v) -> str:
    v = _num(v)
    return "n/a" if v is None else f"{v:g}"


def _sci(v: float) -> str:
    """2 significant digits, exponent without padding: 1e-5, 1.8e-7."""
    s = f"{v:.2g}"
    mant, _, exp = s.partition("e")
    return f"{mant}e{int(exp)}" if exp else s


def spread(arm: dict, key: str, digits: int = 3, pct: bool = False) -> str:
    """'median [min-max]' over seeds; 'diverged' when the median run diverged before the value existed.

    A max that is missing (null after the JSON round trip, inf before it) is a seed that diverged. Whenever
    some seed diverged the cell says how many, since accuracies are then medians over the survivors only.
    """
    med, lo, hi = (_num(arm[s][key]) for s in ("median", "min", "max"))
    if med is None:
        return "diverged" if arm["n_diverged"] else "never"
    note = _div_note(arm) if key != "init_loss" else ""  # the loss at init exists before any divergence
    f = (lambda v: f"{100 * v:.1f} %") if pct else (lambda v: fmt(v, digits))
    if _n_seeds(arm) == 1 or lo is None or lo == hi:
        return f(med) + note
    if hi is None:
        return f"{f(med)} [{f(lo)}-{'diverged' if arm['n_diverged'] else 'never'}]" + note
    return f"{f(med)} [{f(lo)}-{f(hi)}]" + note


def _sig(sigma: float) -> str:
    """A sigma as the sweep names it (4 significant digits), so text and spec strings match."""
    return f"{sigma:.4g}"


def _steps(v) -> str:
    v = _num(v)
    return "never" if v is None else f"{v:g}"


def _whole_steps(v) -> str:
    """A median step count as a whole step for prose ('219.5' -> '220'); 'never' where there is none."""
    v = _num(v)
    return "never" if v is None else f"{v:,.0f}"


def diverged_text(arm: dict) -> str:
    at = sorted(d for d in arm["diverged_at"] if d is not None)
    if not at:
        return ""
    where = f"step {at[0]}" if at[0] == at[-1] else f"steps {at[0]}-{at[-1]}"
    return f"diverged (NaN/Inf) at {where} in {len(at)}/{_n_seeds(arm)} seeds"


def loss_story(arm: dict, ln2: float, steps: int, early_step: int) -> str:
    """What the training loss did, in words chosen by the arm's medians (None = diverged / not measured)."""
    med = arm["median"]
    div = diverged_text(arm)
    n, k = _n_seeds(arm), arm["n_diverged"]
    if k == n:
        return div or "diverged in every seed"
    init, final, peak, early, plateau = (_num(med.get(x)) for x in
                                         ("init_loss", "final_train_loss", "peak_loss", "early_loss", "plateau_steps"))
    if final is None:
        story = ("the median run diverged too, so there is no median final loss" if k else
                 "no final loss was recorded")
        return f"{div}; {story}" if div else story
    if init is None:
        story = f"ended at {fmt(final)}"
    elif plateau is not None and plateau >= steps:
        story = f"stayed at ln 2 ({fmt(final, 4)}) for all {steps} steps"
    elif final > init and early is not None and abs(early - final) <= 1e-3 * max(1.0, final):
        above = " (> ln 2)" if final > ln2 else ""
        rise = f"jumped to {fmt(peak)} and froze" if peak is not None else "rose and froze"
        story = f"{rise} at {fmt(final, 4)}{above} by step {early_step}"
    elif final > init:
        story = f"rose from {fmt(init)} to {fmt(final)}"
    elif plateau is not None and plateau >= 0.1 * steps:
        story = f"sat at ln 2 for {plateau:g} steps, then fell to {fmt(final)}"
    elif final > 0.5 * ln2:
        story = f"fell only from {fmt(init)} to {fmt(final)} ({final / ln2:.2f} ln 2)"
    else:
        story = f"fell from {fmt(init)} to {fmt(final)}"
    # With some seeds diverged the medians count them as the worst value: say so instead of "the other seeds".
    return f"{div}; median over all {n} seeds, diverged ones counted as worst: {story}" if div else story


def crosscheck_summary(cc: dict) -> dict:
    """Batched trainer vs per-model path: agree only when the largest training-loss gap is within CROSSCHECK_TOL."""
    d = _num(cc.get("max_abs_diff_train_loss"))
    return {"agree": d is not None and d <= CROSSCHECK_TOL, "diff": "non-finite" if d is None else _sci(d),
            "tol": _sci(CROSSCHECK_TOL)}


def _ref_name(m: dict) -> str:
    """Whose validation loss the large criterion and the 'x' column divide by."""
    return "the good sigma's" if m["picks"]["good"]["sigma"] is not None else "the sweep minimum's"


# ----------------------------------------------------------------------------------------------------
# Figures


def _figures(m: dict, cfg: dict, sink: FigureSink) -> dict:
    ln2, d = m["ln2"], m["data"]
    figs = {}

    fig, axes = new_figure(ncols=2, width=4.4, height=4.0)
    plot_rings(d["train_raw"], d["train_labels"], axes[0, 0], background=d["val_raw"],
               background_labels=d["val_labels"], title="raw inputs")
    plot_rings(d["train_norm"], d["train_labels"], axes[0, 1], background=d["val_norm"],
               background_labels=d["val_labels"], title="normalised with the training mean/std")
    figs["data"] = sink.add("p1_data", fig, (
        f"The two-rings data: {cfg['n_train']} training points (bold) and {len(d['val_labels']):,} of the "
        f"{cfg['n_val']:,} validation points (faint), raw (left; mean {fmt(d['mean'][0])}, {fmt(d['mean'][1])}, std "
        f"{fmt(d['std'][0])}, {fmt(d['std'][1])}) and normalised with the training statistics (right)."))

    picks, sweep = m["picks"], m["sweep"]
    glorot = m["init_arms"].get("glorot")
    gx = float(np.exp(np.mean(np.log(m["glorot_layer_std"]))))
    fig, axes = new_figure(ncols=3, width=4.2, height=3.6)
    ax = axes[0, 0]
    plot_sweep(sweep, "init_loss", ax, picks=picks, glorot=glorot, glorot_x=gx, scale=ln2)
    ax.axhline(cfg["large_init_factor"], color="#d62728", lw=0.8, ls=":")
    ax.axhspan(1 - cfg["init_loss_tol"], 1 + cfg["init_loss_tol"], color="#2ca02c", alpha=0.12, lw=0)
    ax.set_yscale("log")
    ax.set_ylabel("loss at init / ln 2")
    ax.set_title(f"loss at init (green band: recipe's +-{cfg['init_loss_tol']:.0%})")
    ax.legend(loc="upper left", fontsize=6)
    ax = axes[0, 1]
    plot_sweep(sweep, "plateau_steps", ax, picks=picks, label="plateau at ln 2 (median, min-max band)")
    plot_sweep(sweep, "steps_to_reach", ax, color="#ff7f0e", missing_at=cfg["steps"],
               label=f"steps to training loss {cfg['reach_loss']:g}")
    ax.axhline(cfg["slow_min_plateau"] * cfg["steps"], color=arm_color("slow"), lw=0.8, ls=":")
    ax.set_ylim(-0.03 * cfg["steps"], 1.08 * cfg["steps"])
    ax.set_ylabel("steps")
    ax.set_title(f"plateau at ln 2 and steps to loss {cfg['reach_loss']:g}")
    handles, labels = ax.get_legend_handles_labels()
    keep = [i for i, lab in enumerate(labels) if not lab.startswith(("slow", "good", "large"))]
    ax.legend([handles[i] for i in keep], [labels[i] for i in keep], loc="upper right", fontsize=6)
    ax = axes[0, 2]
    plot_sweep(sweep, "final_val_loss", ax, picks=picks, glorot=glorot, glorot_x=gx)
    ax.set_yscale("log")
    ax.set_ylabel("final validation loss")
    ax.set_title(f"validation loss after {cfg['steps']} steps")
    figs["sweep"] = sink.add("p1_sweep", fig, (
        f"The sweep: {len(sweep)} sigmas x {len(m['seeds'])} seeds, median (line) and min-max over seeds (band). "
        f"Left: loss at init in units of ln 2 (dotted: the large criterion, {cfg['large_init_factor']:g} ln 2). "
        f"Middle: steps the loss stays within {cfg['plateau_tol']:.0%} of ln 2 (dotted: the slow criterion) and "
        f"steps to reach training loss {cfg['reach_loss']:g} (orange; triangles at the top: the median run never "
        f"reached it in {cfg['steps']} steps). "
        "Right: final validation loss. Diamonds and dashed lines: the three picks; star: Glorot, placed at the "
        f"geometric mean of its per-layer weight std ({', '.join(fmt(s) for s in m['glorot_layer_std'])})."))

    arms = m["init_arms"]
    keys = [k for k in (*PICKS, "glorot") if k in arms]
    ncols = 2
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=4.8, height=3.3, sharey=True)
    axes = np.atleast_2d(axes)
    for i, key in enumerate(keys):
        ax = axes.flat[i]
        plot_loss_curves(arms[key], ax, color=arm_color(key), ln2=ln2)
        ax.set_title(arms[key]["label"])
        ax.legend(loc="upper right", fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    figs["init_curves"] = sink.add("p1_init_curves", fig, (
        f"Training loss per step (line: median over {len(m['seeds'])} seeds, band: min-max) and validation loss "
        f"(dots, median) for the three picked sigmas and Glorot; log scale, dotted line at ln 2 = {ln2:.3f}."))

    fig, axes = new_figure(ncols=len(keys), width=3.4, height=3.4)
    axes = np.atleast_2d(axes)
    for i, key in enumerate(keys):
        grid = arms[key]["grid"]
        plot_decision_boundary(grid, d["train_norm"], d["train_labels"], axes[0, i],
                               title=f"{arms[key]['label']}\n(seed {grid['seed']})")
    figs["boundaries"] = sink.add("p1_boundaries", fig, (
        f"Decision boundaries after {cfg['steps']} steps: P(outer ring) on a {cfg['grid_size']}x{cfg['grid_size']} "
        "grid (red = outer, blue = inner, black line = 0.5) with the training points; one representative seed per "
        "arm (the one with the median final validation loss)."))

    fig, axes = new_figure(ncols=2, width=5.0, height=3.6)
    plot_arms(m["scaling"], axes[0, 0], ln2=ln2)
    axes[0, 0].set_title("training loss (median over seeds)")
    for i, (key, arm) in enumerate(m["scaling"].items()):
        v = arm["val_curve"]
        axes[0, 1].plot(v["steps"], [np.nan if a is None else a for a in v["acc_median"]], marker="o", ms=3,
                        color=arm_color(key, i), label=arm["label"])
    axes[0, 1].set_xlabel("step")
    axes[0, 1].set_ylabel("validation accuracy")
    axes[0, 1].set_ylim(0.3, 1.02)
    axes[0, 1].set_title("validation accuracy (median)")
    axes[0, 1].legend(loc="lower right", fontsize=7)
    figs["scaling"] = sink.add("p1_scaling", fig, (
        f"Scaling the data instead of the weights: weights {m['base_init']} ({base_why(m)}), inputs unnormalised or "
        "normalised and multiplied by each factor. Left: training loss (log scale, dotted line at ln 2); right: "
        "validation accuracy."))

    # One panel per breaker: several broken runs sit exactly on ln 2 and would hide each other on one axis.
    ref_key, ref = reference_arm(m)
    keys = list(m["breakers"])
    ncols = 3
    nrows = -(-len(keys) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.6, height=2.7, sharey=True)
    flat = np.asarray(axes).reshape(-1)
    for i, (ax, key) in enumerate(zip(flat, keys)):
        plot_loss_curves(ref, ax, color="#aaaaaa", ln2=ln2, band=False, val=False, label="nothing broken")
        plot_loss_curves(m["breakers"][key], ax, color=arm_color(key, i), ln2=ln2, band=True, val=False)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_title(m["breakers"][key]["label"], fontsize=8)
        ax.set_xlabel("step (linear to 10, log beyond)", fontsize=7)
        ax.legend(loc="lower left", fontsize=6)
    for ax in flat[len(keys):]:
        ax.set_visible(False)
    figs["breakers"] = sink.add("p1_breakers", fig, (
        "Breaking convergence, one thing at a time: median training loss per step (band: min-max over seeds) of "
        f"each breaker against the unbroken reference in grey (same weights {m['base_init']}, lr {cfg['lr']:g}, "
        "normalised inputs); log scale, dotted line at ln 2. A run whose loss became NaN/Inf stops there and is "
        "marked with an x on the top edge."))
    return figs


def base_why(m: dict) -> str:
    """Why the scaling arms and breakers start from m['base_init'] (the experiment falls back to Glorot)."""
    return "the good pick" if m["picks"]["good"]["sigma"] is not None else "no sigma met the good criterion"


def reference_arm(m: dict) -> tuple[str, dict]:
    """The unbroken run the scaling arms and breakers are compared with (same init, lr, normalised data)."""
    key = "good" if m["base_init"] != "glorot" and "good" in m["init_arms"] else "glorot"
    return key, m["init_arms"][key]


# ----------------------------------------------------------------------------------------------------
# Tables


def _tables(m: dict, cfg: dict) -> dict:
    ln2, picks, steps = m["ln2"], m["picks"], cfg["steps"]
    tabs = {}
    rows = []
    for name in PICKS:
        p = picks[name]
        r = p["measured"]
        if p["sigma"] is None:
            rows.append([name, "none found", p["rule"], p["missing_reason"], "-"])
            continue
        if name == "slow":
            measured = f"plateau {_g(r['plateau'])} steps, final validation accuracy {_pct(r['acc'])}"
        elif name == "good":
            measured = (f"plateau {_g(r['plateau'])} steps, loss at init {fmt(r['init_ratio'])} ln 2, "
                        f"final validation loss {fmt(r['val_loss'])}")
        else:
            measured = (f"loss at init {fmt(r['init_ratio'])} ln 2, final validation loss {fmt(r['val_loss'])} = "
                        f"{fmt(r['val_ratio'])}x {_ref_name(m)}, final training loss {fmt(r['train_loss'])}")
        others = [_sig(s) for s in p["candidates"] if s != p["sigma"]]
        rows.append([name, _sig(p["sigma"]), p["rule"], measured, ", ".join(others) or "-"])
    tabs["picks"] = Table(
        name="p1_picks",
        caption="The three sigmas, picked from the sweep by stated criteria (medians over seeds)",
        columns=["pick", "sigma", "criterion", "measured", "other sigmas meeting it"],
        rows=rows,
        note=f"Thresholds are ShallowInitConfig fields (slow_min_plateau={cfg['slow_min_plateau']:g}, "
             f"slow_min_acc={cfg['slow_min_acc']:g}, init_loss_tol={cfg['init_loss_tol']:g}, "
             f"large_init_factor={cfg['large_init_factor']:g}, large_val_factor={cfg['large_val_factor']:g}).",
    )

    picked = {p["sigma"]: name for name, p in ((n, picks[n]) for n in PICKS) if p["sigma"] is not None}
    rows = []
    for e, crit in zip(m["sweep"], picks["criteria_table"]):
        med = e["median"]
        init = _num(med["init_loss"])
        rows.append([_sig(e["sigma"]), fmt(init / ln2 if init is not None else None),
                     _g(med["plateau_steps"]), _steps(med["steps_to_reach"]), _val(e, "final_train_loss"),
                     _val(e, "final_val_loss"), fmt(crit["val_ratio"]), _acc(e) + _div_note(e),
                     f"{e['n_diverged']}/{len(m['seeds'])}",
                     picked.get(e["sigma"], "")])
    has_good = picks["good"]["sigma"] is not None
    tabs["sweep"] = Table(
        name="p1_sweep_points", appendix=True,
        caption="Every sweep point with the values the criteria use (medians over seeds)",
        columns=["sigma", "loss at init / ln 2", "plateau (steps)", f"steps to loss {cfg['reach_loss']:g}",
                 "final train loss", "final val loss", "x good's val loss" if has_good else "x sweep min val loss",
                 "final val acc", "diverged", "pick"],
        rows=rows,
        note=f"Plateau: leading steps with |loss - ln 2| <= {cfg['plateau_tol']:.0%} of ln 2. The 'x' column "
             f"divides by {fmt(picks['reference_val_loss'])}, "
             + ("the good pick's final validation loss." if has_good else
                "the sweep's lowest median final validation loss (no sigma met the good criterion).")
             + " Losses count a diverged seed as the worst value; accuracies are medians over the seeds that did "
               "not diverge, marked '(k/n seeds diverged)'.",
    )

    def arm_row(label: str, arm: dict, extra: list) -> list:
        med = arm["median"]
        init = _num(med["init_loss"])
        return [label, *extra, spread(arm, "init_loss"), fmt(init / ln2) if init is not None else "n/a",
                spread(arm, "early_loss"), spread(arm, "final_train_loss"), spread(arm, "final_val_loss"),
                spread(arm, "final_train_acc", pct=True), spread(arm, "final_val_acc", pct=True),
                _steps(med["steps_to_reach"])]

    cols = ["loss at init", "/ ln 2", f"after {cfg['early_step']} steps", "final train loss", "final val loss",
            "final train acc", "final val acc", f"steps to {cfg['reach_loss']:g}"]
    arms = m["init_arms"]
    tabs["init_arms"] = Table(
        name="p1_init_arms",
        caption=f"The picked sigmas and Glorot: median [min-max] over {len(m['seeds'])} seeds",
        columns=["arm", *cols],
        rows=[arm_row(arms[k]["label"], arms[k], []) for k in (*PICKS, "glorot") if k in arms],
        note=f"-log(1/2) = ln 2 = {ln2:.4f}: the loss of a net that outputs equal logits for both classes.",
    )
    base_sigma = _base_sigma(m)
    rows = []
    n_mat = len(m["widths"]) - 1  # weight matrices of the net as run (3 for the lab's 2-6-3-2)
    for key, arm in m["scaling"].items():
        factor = _factor(key)
        equiv = fmt(base_sigma * factor ** (1 / n_mat)) if factor is not None and base_sigma is not None else "-"
        rows.append(arm_row(arm["label"], arm, [fmt(arm["input_std"]), equiv]))
    tabs["scaling"] = Table(
        name="p1_scaling",
        caption=f"Scaling the data with weights {m['base_init']}: median [min-max] over {len(m['seeds'])} seeds",
        columns=["inputs", "input std", "same logits at init as sigma", *cols],
        rows=rows,
        note="With zero biases the ReLU net is positively homogeneous: inputs x c give the same logits at init as "
             f"each of the {n_mat} weight matrices x c^(1/{n_mat}), i.e. sigma x c^(1/{n_mat}) (third column).",
    )
    ref_key, ref = reference_arm(m)
    rows = [["nothing (reference)", loss_story(ref, ln2, steps, cfg["early_step"]), spread(ref, "final_train_loss"),
             spread(ref, "final_val_acc", pct=True)]]
    for arm in m["breakers"].values():
        rows.append([arm["label"], loss_story(arm, ln2, steps, cfg["early_step"]), spread(arm, "final_train_loss"),
                     spread(arm, "final_val_acc", pct=True)])
    tabs["breakers"] = Table(
        name="p1_breakers", appendix=True,
        caption="Other ways of breaking convergence, each run and measured (median [min-max] over seeds)",
        columns=["what was broken", "what the training loss did", "final train loss", "final val acc"],
        rows=rows,
        note=f"Everything else as in the reference: weights {m['base_init']}, lr {cfg['lr']:g}, normalised inputs, "
             f"{steps} steps. 'diverged': the loss became NaN/Inf and that seed's run stopped there.",
    )
    return tabs


def _factor(key: str) -> float | None:
    return float(key[1:]) if key.startswith("x") else None


def _base_sigma(m: dict) -> float | None:
    base = m["base_init"]
    return float(base.split(":")[1]) if base.startswith("normal:") else None


# ----------------------------------------------------------------------------------------------------
# Discussion


def discussion(m: dict, cfg: dict) -> list[str]:
    """Sentences chosen by the measured numbers of this run (a missing median reads 'diverged' or 'n/a')."""
    arms = m["init_arms"]
    slow, good, large = (arms.get(k) for k in PICKS)
    lines = [_slow_line(m, cfg, slow), _good_line(m, cfg, good, slow), _large_line(m, cfg, large, good)]
    glorot = arms.get("glorot")
    if glorot:
        lines.append(_glorot_line(m, glorot, good))
    lines += _scaling_lines(m, cfg)
    lines += _breaker_lines(m, cfg)
    lines.append(_crosscheck_line(m, cfg))
    return lines


def _head(name: str, arm: dict) -> str:
    """'Good (sigma = 0.3162)', with '; k/n seeds diverged' inside the brackets when any seed did."""
    k = arm.get("n_diverged") or 0
    return f"{name} (sigma = {_sig(arm['sigma'])}{f'; {k}/{_n_seeds(arm)} seeds diverged' if k else ''})"


def _slow_line(m: dict, cfg: dict, slow: dict | None) -> str:
    ln2, picks, steps, n = m["ln2"], m["picks"], cfg["steps"], len(m["seeds"])
    bar = cfg["slow_min_acc"]
    if not slow:
        text = (f"No sigma met the slow criterion (plateau >= {picks['min_plateau_steps']:g} steps, validation "
                f"accuracy >= {bar:.0%}, no diverged seed)")
        reaching = [r for r in picks["criteria_table"]
                    if _num(r["acc"]) is not None and r["acc"] >= bar and not r.get("n_diverged")
                    and _num(r["plateau"]) is not None]
        if not reaching:
            return text + "; no sigma reached that accuracy without diverging, so there is no slow-but-good sigma here."
        best = max(reaching, key=lambda r: (r["plateau"], -r["sigma"]))
        return (text + f"; among the sigmas reaching that accuracy the longest plateau was {best['plateau']:g} steps "
                f"(sigma {_sig(best['sigma'])}).")
    s = slow["median"]
    plateau, acc = _num(s["plateau_steps"]), _num(s["final_val_acc"])
    text = f"{_head('Slow', slow)}: "
    text += (f"the training loss stayed within {cfg['plateau_tol']:.0%} of ln 2 for a median of {plateau:g} of {steps} "
             f"steps (median over {n} seeds)" if plateau is not None else "the plateau length is n/a")
    if acc is None:
        return text + f"; its final validation accuracy is {_missing(slow)}."
    if acc >= bar:
        return (text + f", yet the final validation accuracy is {_pct(acc)}: tiny weights give near-zero logits "
                f"(loss at init {_ln2(s['init_loss'], ln2)}), so learning starts late but still ends in a good solution.")
    return text + f", and the final validation accuracy is only {_pct(acc)}, below the {bar:.0%} bar."


def _good_line(m: dict, cfg: dict, good: dict | None, slow: dict | None) -> str:
    ln2, steps = m["ln2"], cfg["steps"]
    if not good:
        return "No sigma met the good criterion: " + m["picks"]["good"]["missing_reason"] + "."
    g = good["median"]
    text = (f"{_head('Good', good)}: loss at init {_val(good, 'init_loss')} ({_ln2(g['init_loss'], ln2)}), final "
            f"validation loss {_val(good, 'final_val_loss')} and accuracy {_acc(good)}; ")
    reach = _num(g["steps_to_reach"])
    if reach is None:
        text += f"the median run never reached training loss {cfg['reach_loss']:g} in {steps} steps"
    else:
        text += f"training loss {cfg['reach_loss']:g} was reached after {reach:g} steps"
        if slow:
            text += f", against {_steps(slow['median']['steps_to_reach'])} for the slow sigma"
    return text + "."


def _large_line(m: dict, cfg: dict, large: dict | None, good: dict | None) -> str:
    ln2, picks = m["ln2"], m["picks"]
    if not large:
        return "No sigma met the large criterion: " + picks["large"]["missing_reason"] + "."
    lg = large["median"]
    init, train, val = (_num(lg[k]) for k in ("init_loss", "final_train_loss", "final_val_loss"))
    ratio = _num(picks["large"]["measured"]["val_ratio"])
    text = f"{_head('Large', large)}: loss at init {_val(large, 'init_loss')} = {_ln2(init, ln2)}"
    if init is not None and init > cfg["large_init_factor"] * ln2:
        text += " (confident, random logits)"
    worse = ratio is not None and ratio >= cfg["large_val_factor"]
    if train is None:
        text += f". Its final training loss is {_missing(large)}"
    elif train < ln2 and (init is None or train < init):
        text += f". Training still brought the training loss to {fmt(train)}"
    else:
        text += f". Training left the training loss at {fmt(train)}"
    ratio_txt = "n/a" if ratio is None else f"{ratio:.3g}"
    text += (f"{', but' if worse and train is not None and train < ln2 else ';'} the final validation loss "
             f"{_val(large, 'final_val_loss')} is {ratio_txt}x {_ref_name(m)} and accuracy is {_acc(large)}")
    if good and train and val is not None:
        g_train, g_val = _num(good["median"]["final_train_loss"]), _num(good["median"]["final_val_loss"])
        if g_train and g_val is not None:
            gap_l, gap_g = val / train, g_val / g_train
            if gap_l > 2 * gap_g:
                text += (f"; its validation loss is {gap_l:.3g}x its training loss against {gap_g:.3g}x for the good "
                         "sigma, so the large init fits the training points with a boundary that generalises worse")
    return text + "."


def _glorot_line(m: dict, glorot: dict, good: dict | None) -> str:
    ln2 = m["ln2"]
    gm = glorot["median"]
    gv = _num(gm["final_val_loss"])
    text = (f"Glorot (per-layer std {', '.join(fmt(s) for s in m['glorot_layer_std'])}{_div_note(glorot)}): loss at "
            f"init {_val(glorot, 'init_loss')} ({_ln2(gm['init_loss'], ln2)}), final validation loss "
            f"{_val(glorot, 'final_val_loss')}")
    if not good:
        return (text + f"; no sigma met the good criterion, and the sweep's lowest median final validation loss is "
                f"{fmt(m['picks']['reference_val_loss'])}.")
    lo, hi = _num(good["min"]["final_val_loss"]), _num(good["max"]["final_val_loss"])
    if gv is None or lo is None:
        return text + "; it cannot be placed against the good sigma's seeds (a median is missing)."
    hi_txt = fmt(hi) if hi is not None else _missing(good)
    if gv < lo:
        where, found = "below the good sigma's best seed", True
    elif hi is None or gv <= hi:
        where, found = "within the seed range of the good sigma", True
    else:
        where, found = "above the good sigma's worst seed", False
    text += f", {where} ({fmt(lo)}-{hi_txt})"
    if found:
        return text + "; no sweep was needed to find it."
    return text + "; here every seed of the swept good sigma did better than Glorot's median."


def _crosscheck_line(m: dict, cfg: dict) -> str:
    cc = m["crosscheck"]
    s = crosscheck_summary(cc)
    what = (f"The batched trainer (all {m['n_members_sweep']} sweep nets as one model) and the plain per-model path "
            f"(nn.Module + torch.optim.SGD), for {cc['init']}, seed {cc['seed']} over {cfg['steps']} steps: ")
    if s["agree"]:
        return what + f"the training losses agree to {s['diff']} (tolerance {s['tol']})."
    return (what + f"the training losses DISAGREE by {s['diff']} (tolerance {s['tol']}), so the batched numbers above "
            "are not confirmed by the per-model path.")


def _scaling_lines(m: dict, cfg: dict) -> list[str]:
    ln2, lines = m["ln2"], []
    sc = m["scaling"]
    _, ref = reference_arm(m)
    ref_acc = _num(ref["median"]["final_val_acc"])
    base_sigma = _base_sigma(m)
    if "raw" in sc:
        raw = sc["raw"]
        r = raw["median"]
        acc = _num(r["final_val_acc"])
        mean = m["data"]["mean"]
        text = (f"Unnormalised inputs (input std {fmt(raw['input_std'])}, training mean ({fmt(mean[0])}, "
                f"{fmt(mean[1])}){_div_note(raw)}): loss at init {_val(raw, 'init_loss')} "
                f"({_ln2(r['init_loss'], ln2)}), "
                f"final validation accuracy {_acc(raw)}")
        if acc is not None and ref_acc is not None:
            d = acc - ref_acc
            verdict = ("close to (within 5 points of)" if abs(d) <= 0.05 else
                       f"{100 * abs(d):.1f} points {'below' if d < 0 else 'above'}")
            text += f", {verdict} the normalised run's {_pct(ref_acc)}"
        else:
            text += f"; the normalised run: {_acc(ref)}"
        lines.append(text + ".")
    sweep = {e["sigma"]: e for e in m["sweep"]}
    n_mat = len(m["widths"]) - 1  # weight matrices of the net as run: inputs x f = each matrix x f^(1/n_mat)
    for key, arm in sc.items():
        f = _factor(key)
        if f is None or f == 1.0 or base_sigma is None:
            continue
        med = arm["median"]
        init = _num(med["init_loss"])
        equiv = base_sigma * f ** (1 / n_mat)
        near = min(sweep, key=lambda s: abs(math.log(s / equiv)))
        text = (f"Inputs x {f:g}{_div_note(arm)}: loss at init {_val(arm, 'init_loss')} ({_ln2(init, ln2)}), final "
                f"validation accuracy {_acc(arm)}")
        if abs(math.log(near / equiv)) < 0.01:
            s_med = sweep[near]["median"]
            s_init = _num(s_med["init_loss"])
            same = init is not None and s_init is not None and abs(s_init - init) <= 1e-3 * max(1.0, init)
            text += (f". At init this {'is' if same else 'should be'} the same as weights sigma = {_sig(near)} "
                     f"(= {_sig(base_sigma)} x {f:g}^(1/{n_mat})) on normalised inputs: loss at init {fmt(s_init)} "
                     f"in the sweep")
            acc_s, acc_d = _num(s_med["final_val_acc"]), _num(med["final_val_acc"])
            if acc_s is not None and acc_d is not None:
                if abs(acc_s - acc_d) > 0.02:
                    text += f"; after training the two differ (accuracy {_pct(acc_d)} vs {_pct(acc_s)})"
                    text += ": the equivalence holds at init only" if same else ""
                else:
                    text += f", and training ends alike too (accuracy {_pct(acc_d)} vs {_pct(acc_s)})"
        lines.append(text + ".")
    return lines


def _shuffled_clause(med: dict, cfg: dict, acc: float, ref_acc: float | None) -> str:
    """Shuffled labels: 'learns nothing that transfers' only when the accuracy is at chance within binomial noise."""
    init, final = _num(med["init_loss"]), _num(med["final_train_loss"])
    n_val = cfg["n_val"]
    band = CHANCE_SIGMAS * math.sqrt(0.25 / n_val)  # binomial standard error of an accuracy of 0.5 on n_val points
    fell = init is not None and final is not None and final < init
    trains = (f"It still trains (the training loss fell from {fmt(init)} to {fmt(final)})" if fell else
              "Its training loss did not fall")
    chance = (f"chance (50 % +- {100 * band:.1f} points, {CHANCE_SIGMAS:g} binomial standard errors on "
              f"{n_val:,} validation points)")
    if abs(acc - 0.5) <= band:
        return f". {trains}, but its validation accuracy is at {chance}: it learns nothing that transfers to true labels"
    text = f". {trains}; its validation accuracy is {100 * (acc - 0.5):+.1f} points from {chance}"
    if acc > 0.5:
        text += ", so part of what it fitted does transfer to the true labels"
        if ref_acc is not None and acc < ref_acc:
            text += f", yet it stays {100 * (ref_acc - acc):.1f} points below the reference's {_pct(ref_acc)}"
    return text


def _breaker_lines(m: dict, cfg: dict) -> list[str]:
    ln2, steps, lines = m["ln2"], cfg["steps"], []
    br = m["breakers"]
    _, ref = reference_arm(m)
    ref_acc = _num(ref["median"]["final_val_acc"])
    for key, arm in br.items():
        med = arm["median"]
        story = loss_story(arm, ln2, steps, cfg["early_step"])
        acc, final, plateau = (_num(med.get(k)) for k in ("final_val_acc", "final_train_loss", "plateau_steps"))
        n, k = _n_seeds(arm), arm["n_diverged"]
        line = f"{arm['label'][0].upper()}{arm['label'][1:]}: the training loss {story}"
        if acc is not None:
            over = f" over the {n - k}/{n} seeds that did not diverge ({k}/{n} seeds diverged)" if k else ""
            line += f"; final validation accuracy {_pct(acc)}{over} (reference {_pct(ref_acc)})"
        flat = med.get("flat_units")
        if key == "zeros" and plateau is not None and plateau >= steps:
            line += (". Every hidden unit computes the same 0, so all weights of a layer get the same (zero) gradient "
                     f"and never move: symmetry is never broken ({_pct(flat)} of hidden units output a constant at the end)")
        elif key == "no_bias" and acc is not None and acc < 0.6:
            line += (". Without biases the ReLU net is positively homogeneous, f(cx) = c f(x): each ray from the "
                     "origin (the normalised rings' centre) gets one class, so inner and outer ring cannot be told apart")
        elif key == "shuffled" and acc is not None:
            line += _shuffled_clause(med, cfg, acc, ref_acc)
        elif key in ("lr_big", "small_data_big_lr") and "constant_output" in arm and final is not None:
            const = sum(v == 1.0 for v in arm["constant_output"] if v is not None)
            if const >= n / 2 and final > ln2:
                line += (f". After training the output is the same for every training point in {const}/{n} "
                         f"seeds ({_pct(flat)} of hidden units flat: dead ReLUs, or fed only by dead ones): the "
                         "oversized steps killed the net, and a constant output cannot get below ln 2")
        elif key == "lr_overflow" and k:
            line += ". The arm stopped at the divergence and is reported as diverged, not averaged"
        lines.append(line + ".")
    return lines


# ----------------------------------------------------------------------------------------------------


def build(result: ExperimentResult, sink: FigureSink) -> dict:
    m, cfg = result.metrics, result.config
    figs = _figures(m, cfg, sink)
    tabs = _tables(m, cfg)
    order_f = ["data", "sweep", "init_curves", "boundaries", "scaling", "breakers"]
    order_t = ["picks", "sweep", "init_arms", "scaling", "breakers"]
    return {
        "figures": [figs[k] for k in order_f],
        "tables": [tabs[k] for k in order_t],
        "discussion": discussion(m, cfg),
        "fig": figs,
        "tab": tabs,
        "picks": {k: m["picks"][k]["sigma"] for k in PICKS},
        "answers": answers(m, cfg),
        "crosscheck": crosscheck_summary(m["crosscheck"]),
        "sigmas": m["sigmas"],
        "title": f"Shallow net initialization ({'-'.join(str(w) for w in m['widths'])} on two rings)",  # as run
    }


__all__ = ["CROSSCHECK_TOL", "answers", "build", "crosscheck_summary", "diverged_text", "discussion", "loss_story", "spread"]


# ----------------------------------------------------------------------------------------------------
# Answers at a glance: the facts each of the lab's Part 1 questions is answered with. The words are in
# templates/answers.txt.j2; a missing pick or a diverged median makes the answer say so.


def answers(m: dict, cfg: dict) -> list[dict]:
    ln2, picks, arms = m["ln2"], m["picks"], m["init_arms"]

    def arm_facts(key: str) -> dict | None:
        arm = arms.get(key)
        if not arm:
            return None
        med = arm["median"]
        init = _num(med["init_loss"])
        return {"sigma": _sig(arm["sigma"]) if arm.get("sigma") else None, "init": _val(arm, "init_loss"),
                "init_ratio": fmt(init / ln2) if init is not None else "n/a", "val_loss": _val(arm, "final_val_loss"),
                "val_acc": _acc(arm), "plateau": _whole_steps(med["plateau_steps"]),
                "reach": _whole_steps(med["steps_to_reach"]),
                "diverged": arm.get("n_diverged") or 0, "acc_v": _num(med["final_val_acc"]),
                "ratio_v": init / ln2 if init is not None else None}

    slow, good, large, glorot = (arm_facts(k) for k in (*PICKS, "glorot"))
    found = [k for k in PICKS if picks[k]["sigma"] is not None]
    large_ratio = _num(picks["large"]["measured"]["val_ratio"]) if large else None
    out = [{
        "id": "p1_sigmas", "status": "answered" if len(found) == 3 else "partial" if found else "missing",
        "refs": ["fig:p1_sweep", "fig:p1_init_curves", "tab:p1_picks"],
        "facts": {"slow": slow, "good": good, "large": large, "steps": cfg["steps"], "ref_name": _ref_name(m),
                  "reach_loss": f"{cfg['reach_loss']:g}", "plateau_tol": f"{cfg['plateau_tol']:.0%}",
                  "large_val_ratio": fmt(large_ratio) if large_ratio is not None else "n/a",
                  "missing": [k for k in PICKS if k not in found]},
    }]
    out.append({
        "id": "p1_init_loss", "status": "answered" if good or glorot else "missing",
        "refs": ["tab:p1_init_arms", "fig:p1_sweep"],
        "facts": {"ln2": f"{ln2:.3f}", "good": good, "glorot": glorot, "large": large, "slow": slow,
                  "large_factor": f"{cfg['large_init_factor']:g}"},
    })
    where = None
    if glorot and good:
        gv = _num(arms["glorot"]["median"]["final_val_loss"])
        lo, hi = _num(arms["good"]["min"]["final_val_loss"]), _num(arms["good"]["max"]["final_val_loss"])
        if gv is not None and lo is not None:
            where = "below" if gv < lo else "within" if hi is None or gv <= hi else "above"
    out.append({
        "id": "p1_glorot", "status": "answered" if where else "inconclusive" if glorot else "missing",
        "refs": ["fig:p1_init_curves", "fig:p1_boundaries", "tab:p1_init_arms"],
        "facts": {"glorot": glorot, "good": good, "where": where,
                  "good_range": (f"{fmt(_num(arms['good']['min']['final_val_loss']))}-"
                                 f"{fmt(_num(arms['good']['max']['final_val_loss']))}") if good else "n/a",
                  "layer_std": ", ".join(fmt(s) for s in m["glorot_layer_std"])},
    })
    _, ref = reference_arm(m)
    scaled = []
    for key, arm in m["scaling"].items():
        med = arm["median"]
        init = _num(med["init_loss"])
        scaled.append({"key": key, "label": arm["label"], "factor": _factor(key),
                       "init_ratio": fmt(init / ln2) if init is not None else "diverged", "val_acc": _acc(arm),
                       "acc_v": _num(med["final_val_acc"]),
                       "diverged": arm.get("n_diverged") or 0, "acc_v": _num(med["final_val_acc"]),
                "ratio_v": init / ln2 if init is not None else None})
    out.append({
        "id": "p1_scaling", "status": "answered" if scaled else "missing", "refs": ["fig:p1_scaling", "tab:p1_scaling"],
        "facts": {"arms": scaled, "ref_acc": _acc(ref), "ref_acc_v": _num(ref["median"]["final_val_acc"]) if ref else None,
                  "base": m["base_init"]},
    })
    broken = []
    for key, arm in m["breakers"].items():
        broken.append({"key": key, "label": arm["label"], "story": loss_story(arm, ln2, cfg["steps"], cfg["early_step"]),
                       "val_acc": _acc(arm), "acc_v": _num(arm["median"]["final_val_acc"])})
    out.append({
        "id": "p1_breakers", "status": "answered" if broken else "missing", "refs": ["fig:p1_breakers", "tab:p1_breakers"],
        "facts": {"arms": broken, "ref_acc": _acc(ref) if ref else "n/a"},
    })
    return out
