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


def spread(arm: dict, key: str, digits: int = 3, pct: bool = False) -> str:
    """'median [min-max]' over seeds; 'diverged' when every seed diverged before the value existed."""
    med, lo, hi = arm["median"][key], arm["min"][key], arm["max"][key]
    if med is None:
        return "diverged" if arm["n_diverged"] else "never"
    f = (lambda v: f"{100 * v:.1f} %") if pct else (lambda v: fmt(v, digits))
    if len(arm["seeds"]) == 1 or lo is None or hi is None or lo == hi:
        return f(med)
    return f"{f(med)} [{f(lo)}-{f(hi)}]" if not (math.isinf(hi)) else f"{f(med)} [{f(lo)}-diverged]"


def _sig(sigma: float) -> str:
    """A sigma as the sweep names it (4 significant digits), so text and spec strings match."""
    return f"{sigma:.4g}"


def _steps(v) -> str:
    return "never" if v is None or (isinstance(v, float) and math.isinf(v)) else f"{v:g}"


def diverged_text(arm: dict) -> str:
    at = sorted(d for d in arm["diverged_at"] if d is not None)
    if not at:
        return ""
    where = f"step {at[0]}" if at[0] == at[-1] else f"steps {at[0]}-{at[-1]}"
    return f"diverged (NaN/Inf) at {where} in {len(at)}/{len(arm['seeds'])} seeds"


def loss_story(arm: dict, ln2: float, steps: int, early_step: int) -> str:
    """What the training loss did, in words chosen by the arm's medians."""
    med = arm["median"]
    div = diverged_text(arm)
    if arm["n_diverged"] == len(arm["seeds"]):
        return div
    init, final, peak, early = med["init_loss"], med["final_train_loss"], med["peak_loss"], med["early_loss"]
    plateau = med["plateau_steps"]
    if plateau >= steps:
        story = f"stayed at ln 2 ({fmt(final, 4)}) for all {steps} steps"
    elif final > init and early is not None and abs(early - final) <= 1e-3 * max(1.0, final):
        story = f"jumped to {fmt(peak)} and froze at {fmt(final, 4)} (> ln 2) by step {early_step}"
    elif final > init:
        story = f"rose from {fmt(init)} to {fmt(final)}"
    elif plateau >= 0.1 * steps:
        story = f"sat at ln 2 for {plateau:g} steps, then fell to {fmt(final)}"
    elif final > 0.5 * ln2:
        story = f"fell only from {fmt(init)} to {fmt(final)} ({final / ln2:.2f} ln 2)"
    else:
        story = f"fell from {fmt(init)} to {fmt(final)}"
    return f"{div}; the other seeds: {story}" if div else story


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
    ax.set_title("loss at init (green band: recipe's +-15 %)")
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
        f"Scaling the data instead of the weights: weights {m['base_init']} (the good pick), inputs unnormalised or "
        "normalised and multiplied by each factor. Left: training loss (log scale, dotted line at ln 2); right: "
        "validation accuracy."))

    fig, ax = new_figure(width=7.5, height=4.0)
    ref_key, ref = reference_arm(m)
    plot_loss_curves(ref, ax, color="#333333", ln2=ln2, band=False, val=False, label="nothing broken (reference)")
    plot_arms(m["breakers"], ax, ln2=ln2)
    ax.set_title("breaking convergence, one thing at a time (x on the top edge: diverged)")
    figs["breakers"] = sink.add("p1_breakers", fig, (
        "Median training loss per step of each breaker against the unbroken reference (same weights "
        f"{m['base_init']}, lr {cfg['lr']:g}, normalised inputs); log scale, dotted line at ln 2. A run whose loss "
        "became NaN/Inf stops there and is marked with an x."))
    return figs


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
            measured = f"plateau {r['plateau']:g} steps, final validation accuracy {100 * r['acc']:.1f} %"
        elif name == "good":
            measured = (f"plateau {r['plateau']:g} steps, loss at init {r['init_ratio']:.3g} ln 2, "
                        f"final validation loss {fmt(r['val_loss'])}")
        else:
            measured = (f"loss at init {fmt(r['init_ratio'])} ln 2, final validation loss {fmt(r['val_loss'])} = "
                        f"{r['val_ratio']:.3g}x the good one's, final training loss {fmt(r['train_loss'])}")
        others = [_sig(s) for s in p["candidates"] if s != p["sigma"]]
        rows.append([name, _sig(p["sigma"]), p["rule"], measured, ", ".join(others) or "-"])
    tabs["picks"] = Table(
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
        rows.append([_sig(e["sigma"]), fmt(med["init_loss"] / ln2 if med["init_loss"] is not None else None),
                     f"{med['plateau_steps']:g}", _steps(med["steps_to_reach"]), fmt(med["final_train_loss"]),
                     fmt(med["final_val_loss"]), fmt(crit["val_ratio"]),
                     f"{100 * med['final_val_acc']:.1f} %" if med["final_val_acc"] is not None else "n/a",
                     f"{e['n_diverged']}/{len(m['seeds'])}",
                     picked.get(e["sigma"], "")])
    tabs["sweep"] = Table(
        caption="Every sweep point with the values the criteria use (medians over seeds)",
        columns=["sigma", "loss at init / ln 2", "plateau (steps)", f"steps to loss {cfg['reach_loss']:g}",
                 "final train loss", "final val loss", "x good's val loss", "final val acc", "diverged", "pick"],
        rows=rows,
        note=f"Plateau: leading steps with |loss - ln 2| <= {cfg['plateau_tol']:.0%} of ln 2. The 'x good' column "
             f"divides by {fmt(picks['reference_val_loss'])}, the good pick's final validation loss.",
    )

    def arm_row(label: str, arm: dict, extra: list) -> list:
        med = arm["median"]
        return [label, *extra, spread(arm, "init_loss"),
                fmt(med["init_loss"] / ln2) if med["init_loss"] is not None else "n/a",
                spread(arm, "early_loss"), spread(arm, "final_train_loss"), spread(arm, "final_val_loss"),
                spread(arm, "final_train_acc", pct=True), spread(arm, "final_val_acc", pct=True),
                _steps(med["steps_to_reach"])]

    cols = ["loss at init", "/ ln 2", f"after {cfg['early_step']} steps", "final train loss", "final val loss",
            "final train acc", "final val acc", f"steps to {cfg['reach_loss']:g}"]
    arms = m["init_arms"]
    tabs["init_arms"] = Table(
        caption=f"The picked sigmas and Glorot: median [min-max] over {len(m['seeds'])} seeds",
        columns=["arm", *cols],
        rows=[arm_row(arms[k]["label"], arms[k], []) for k in (*PICKS, "glorot") if k in arms],
        note=f"-log(1/2) = ln 2 = {ln2:.4f}: the loss of a net that outputs equal logits for both classes.",
    )
    base_sigma = _base_sigma(m)
    rows = []
    for key, arm in m["scaling"].items():
        factor = _factor(key)
        equiv = fmt(base_sigma * factor ** (1 / 3)) if factor is not None and base_sigma is not None else "-"
        rows.append(arm_row(arm["label"], arm, [fmt(arm["input_std"]), equiv]))
    tabs["scaling"] = Table(
        caption=f"Scaling the data with weights {m['base_init']}: median [min-max] over {len(m['seeds'])} seeds",
        columns=["inputs", "input std", "same logits at init as sigma", *cols],
        rows=rows,
        note="With zero biases the ReLU net is positively homogeneous: inputs x c give the same logits at init as "
             "each of the three weight matrices x c^(1/3), i.e. sigma x c^(1/3) (third column).",
    )
    ref_key, ref = reference_arm(m)
    rows = [["nothing (reference)", loss_story(ref, ln2, steps, cfg["early_step"]), spread(ref, "final_train_loss"),
             spread(ref, "final_val_acc", pct=True)]]
    for arm in m["breakers"].values():
        rows.append([arm["label"], loss_story(arm, ln2, steps, cfg["early_step"]), spread(arm, "final_train_loss"),
                     spread(arm, "final_val_acc", pct=True)])
    tabs["breakers"] = Table(
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
    """Sentences chosen by the measured numbers of this run."""
    ln2, picks, steps, n = m["ln2"], m["picks"], cfg["steps"], len(m["seeds"])
    arms = m["init_arms"]
    lines = []
    slow, good, large = (arms.get(k) for k in PICKS)
    if slow:
        s = slow["median"]
        lines.append(
            f"Slow (sigma = {_sig(slow['sigma'])}): the training loss stayed within {cfg['plateau_tol']:.0%} of ln 2 for "
            f"a median of {s['plateau_steps']:g} of {steps} steps (median over {n} seeds), yet the final validation "
            f"accuracy is {100 * s['final_val_acc']:.1f} %: tiny weights give near-zero logits and gradients, so "
            "learning starts late but still ends in a good solution.")
    else:
        best = max(picks["criteria_table"], key=lambda r: r["plateau"] if r["acc"] and r["acc"] >= cfg["slow_min_acc"] else -1)
        lines.append(
            f"No sigma met the slow criterion (plateau >= {picks['min_plateau_steps']:g} steps and validation accuracy "
            f">= {cfg['slow_min_acc']:.0%}); among the sigmas reaching that accuracy the longest plateau was "
            f"{best['plateau']:g} steps (sigma {_sig(best['sigma'])}).")
    if good:
        g = good["median"]
        txt = (f"Good (sigma = {_sig(good['sigma'])}): loss at init {fmt(g['init_loss'])} ({g['init_loss'] / ln2:.3g} ln 2), "
               f"final validation loss {fmt(g['final_val_loss'])} and accuracy {100 * g['final_val_acc']:.1f} %; "
               f"training loss {cfg['reach_loss']:g} was reached after {_steps(g['steps_to_reach'])} steps")
        if slow and slow["median"]["steps_to_reach"] is not None:
            txt += f", against {_steps(slow['median']['steps_to_reach'])} for the slow sigma"
        lines.append(txt + ".")
    else:
        lines.append("No sigma met the good criterion: " + picks["good"]["missing_reason"] + ".")
    if large:
        lg = large["median"]
        txt = (f"Large (sigma = {_sig(large['sigma'])}): loss at init {fmt(lg['init_loss'])} = {lg['init_loss'] / ln2:.3g} ln 2 "
               f"(confident, random logits). Training still brought the training loss to {fmt(lg['final_train_loss'])}, "
               f"but the final validation loss {fmt(lg['final_val_loss'])} is "
               f"{picks['large']['measured']['val_ratio']:.3g}x the good sigma's and accuracy is "
               f"{100 * lg['final_val_acc']:.1f} %")
        if good:
            gap_l = lg["final_val_loss"] / lg["final_train_loss"]
            gap_g = good["median"]["final_val_loss"] / good["median"]["final_train_loss"]
            if gap_l > 2 * gap_g:
                txt += (f"; its validation loss is {gap_l:.3g}x its training loss against {gap_g:.3g}x for the good "
                        "sigma, so the large init fits the training points with a boundary that generalises worse")
        lines.append(txt + ".")
    else:
        lines.append("No sigma met the large criterion: " + picks["large"]["missing_reason"] + ".")
    glorot = arms.get("glorot")
    if glorot and good:
        gv, lo, hi = glorot["median"]["final_val_loss"], good["min"]["final_val_loss"], good["max"]["final_val_loss"]
        where = ("within the seed range of the good sigma" if lo <= gv <= hi else
                 "below the good sigma's best seed" if gv < lo else "above the good sigma's worst seed")
        lines.append(
            f"Glorot (per-layer std {', '.join(fmt(s) for s in m['glorot_layer_std'])}): loss at init "
            f"{fmt(glorot['median']['init_loss'])} ({glorot['median']['init_loss'] / ln2:.3g} ln 2), final validation loss "
            f"{fmt(gv)}, {where} ({fmt(lo)}-{fmt(hi)}); no sweep was needed to find it.")
    lines += _scaling_lines(m, cfg)
    lines += _breaker_lines(m, cfg)
    cc = m["crosscheck"]
    lines.append(
        f"The batched trainer (all {m['n_members_sweep']} sweep nets as one model) and the plain per-model path "
        f"(nn.Module + torch.optim.SGD) agree: for {cc['init']}, seed {cc['seed']}, the largest difference in training "
        f"loss over {steps} steps is {cc['max_abs_diff_train_loss']:.2g}.")
    return lines


def _scaling_lines(m: dict, cfg: dict) -> list[str]:
    ln2, lines = m["ln2"], []
    sc = m["scaling"]
    _, ref = reference_arm(m)
    ref_acc = ref["median"]["final_val_acc"]
    base_sigma = _base_sigma(m)
    if "raw" in sc:
        r = sc["raw"]["median"]
        verdict = ("far below" if r["final_val_acc"] is not None and r["final_val_acc"] < ref_acc - 0.05 else
                   "close to")
        lines.append(
            f"Unnormalised inputs (input std {fmt(sc['raw']['input_std'])}, centred near (10, 10)): loss at init "
            f"{fmt(r['init_loss'])} ({r['init_loss'] / ln2:.3g} ln 2), final validation accuracy "
            f"{_pct(r['final_val_acc'])}, {verdict} the normalised run's {_pct(ref_acc)}.")
    sweep = {e["sigma"]: e for e in m["sweep"]}
    for key, arm in sc.items():
        f = _factor(key)
        if f is None or f == 1.0 or base_sigma is None:
            continue
        med = arm["median"]
        equiv = base_sigma * f ** (1 / 3)
        near = min(sweep, key=lambda s: abs(math.log(s / equiv)))
        txt = (f"Inputs x {f:g}: loss at init {fmt(med['init_loss'])} ({med['init_loss'] / ln2:.3g} ln 2), final "
               f"validation accuracy {_pct(med['final_val_acc'])}")
        if abs(math.log(near / equiv)) < 0.01:
            s_med = sweep[near]["median"]
            same = abs(s_med["init_loss"] - med["init_loss"]) <= 1e-3 * max(1.0, med["init_loss"])
            txt += (f". At init this {'is' if same else 'should be'} the same as weights sigma = {_sig(near)} "
                    f"(= {_sig(base_sigma)} x {f:g}^(1/3)) on normalised inputs: loss at init {fmt(s_med['init_loss'])} "
                    f"in the sweep")
            acc_s, acc_d = s_med["final_val_acc"], med["final_val_acc"]
            if acc_s is not None and acc_d is not None:
                txt += (f"; after training the two differ (accuracy {_pct(acc_d)} vs {_pct(acc_s)}), because the "
                        "gradients do not scale alike" if abs(acc_s - acc_d) > 0.02 else
                        f", and training ends alike too (accuracy {_pct(acc_d)} vs {_pct(acc_s)})")
        lines.append(txt + ".")
    return lines


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _breaker_lines(m: dict, cfg: dict) -> list[str]:
    ln2, steps, lines = m["ln2"], cfg["steps"], []
    br = m["breakers"]
    _, ref = reference_arm(m)
    ref_acc = ref["median"]["final_val_acc"]
    for key, arm in br.items():
        med = arm["median"]
        story = loss_story(arm, ln2, steps, cfg["early_step"])
        acc = med["final_val_acc"]
        line = f"{arm['label'][0].upper()}{arm['label'][1:]}: the training loss {story}"
        line += f"; final validation accuracy {_pct(acc)} (reference {_pct(ref_acc)})" if acc is not None else ""
        flat = med.get("flat_units")
        if key == "zeros" and med["plateau_steps"] >= steps:
            line += (". Every hidden unit computes the same 0, so all weights of a layer get the same (zero) gradient "
                     f"and never move: symmetry is never broken ({_pct(flat)} of hidden units output a constant at the end)")
        elif key == "no_bias" and acc is not None and acc < 0.6:
            line += (". Without biases the ReLU net is positively homogeneous, f(cx) = c f(x): each ray from the "
                     "origin (the normalised rings' centre) gets one class, so inner and outer ring cannot be told apart")
        elif key == "shuffled" and acc is not None and med["final_train_loss"] < med["init_loss"]:
            line += ". It still trains (the training loss fell) but learns nothing that transfers to true labels"
        elif key in ("lr_big", "small_data_big_lr") and "constant_output" in arm and med["final_train_loss"] is not None:
            const = sum(v == 1.0 for v in arm["constant_output"] if v is not None)
            if const >= len(arm["seeds"]) / 2 and med["final_train_loss"] > ln2:
                line += (f". After training the output is the same for every training point in {const}/{len(arm['seeds'])} "
                         f"seeds ({_pct(flat)} of hidden units flat: dead ReLUs, or fed only by dead ones): the "
                         "oversized steps killed the net, and a constant output cannot get below ln 2")
        elif key == "lr_overflow" and arm["n_diverged"]:
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
        "sigmas": m["sigmas"],
    }


__all__ = ["build", "diverged_text", "discussion", "loss_story", "spread"]
