"""Part 2 section: figures, table and generated discussion from deep_init's results JSON.

    built = build(load_result(path), FigureSink(staging / "figures"))
"""

from __future__ import annotations

import math

import numpy as np

from lab.plots import nan_array, new_figure
from lab.plots.deep import plot_layer_stat
from lab.results import ExperimentResult
from lab.sections import FigureSink, Table, fmt

STABLE_BAND = (0.9, 1.1)  # per-layer growth factor of mean |a| counted as "stable"


def _median(d: dict, key: str) -> np.ndarray:
    """Median over weight draws, per layer; nulls (overflowed values) become NaN."""
    return np.median(nan_array(d[key]), 0)


def _med(values: list) -> float:
    """Median of one number per net; a null (an overflow to inf, saved as null) counts as inf."""
    return float(np.median([np.inf if v is None else v for v in values]))


def cell(value: float) -> str:
    """A per-layer statistic for the table; an overflow (inf, or NaN from inf - inf) reads as diverged, not n/a."""
    return fmt(value) if math.isfinite(value) else "diverged (inf/NaN)"


def verdict(growth: float | None) -> str:
    if growth is None or not math.isfinite(growth):
        return "degenerate"
    if growth > STABLE_BAND[1]:
        return "explodes"
    if growth < STABLE_BAND[0]:
        return "vanishes"
    return "stays stable"


def build(result: ExperimentResult, sink: FigureSink) -> dict:
    m = result.metrics
    layers = m["layers"]
    n_nets = len(next(iter(m["inits"].values()))["mean_abs"])
    band = f"line: median of {n_nets} weight draws, band: min-max" if n_nets > 1 else "one weight draw"

    fig, axes = new_figure(ncols=2, width=5.2, height=3.8)
    plot_layer_stat(m, "mean_abs", axes[0, 0], "mean |activation|")
    axes[0, 0].set_title("mean of |activation| per layer")
    plot_layer_stat(m, "std_abs", axes[0, 1], "std of |activation|")
    axes[0, 1].set_title("std of |activation| per layer")
    f_act = sink.add("p2_activations", fig, f"Mean and std of |activation| after each ReLU layer of the untrained "
                     f"{len(layers)}x{m['widths'][1]} net, {m['n_samples']:,} two-rings inputs, log scale ({band}).")

    fig, ax = new_figure(width=6.0, height=3.8)
    plot_layer_stat(m, "rms", ax, "RMS of activation", predicted_key="rms")
    ax.set_title("measured RMS vs variance-propagation prediction")
    f_pred = sink.add("p2_prediction", fig, "Root-mean-square activation per layer (solid) against the prediction "
                      "E[a_l^2] = n_in Var[W] E[a_{l-1}^2] / 2 (dashed), which is exact in expectation for ReLU nets.")

    fig, axes = new_figure(ncols=2, width=5.2, height=3.8)
    plot_layer_stat(m, "grad_w_mean_abs", axes[0, 0], "mean |dL/dW|")
    axes[0, 0].set_title("weight gradients, one backward pass")
    plot_layer_stat(m, "grad_act_mean_abs", axes[0, 1], "mean |dL/da|")
    axes[0, 1].set_title("gradient w.r.t. activations")
    f_grad = sink.add("p2_gradients", fig, "Gradient statistics per layer from one backward pass of the "
                      "cross-entropy loss at init (beyond the lab: the backward pass explodes or vanishes too).",
                      appendix=True)

    mid = len(layers) // 2 - 1
    rows, growth_rows = [], []
    for spec, d in m["inits"].items():
        mean_abs, std_abs = _median(d, "mean_abs"), _median(d, "std_abs")
        rows.append([d["label"], *(cell(float(v[i])) for v in (mean_abs, std_abs) for i in (0, mid, -1))])
        pred = d["predicted"]["factor_per_layer"][-1]
        v = verdict(d["growth_per_layer"])
        growth_rows.append([d["label"], fmt(d["growth_per_layer"], 4), fmt(pred, 4),
                            "diverged (inf/NaN or 0): no factor" if v == "degenerate" else v,
                            fmt(_med(d["loss_at_init"]), 4), fmt(_med(d["logit_std"]))])
    table = Table(
        name="p2_layers", appendix=True,
        caption=f"Mean and std of |activation| at layers 1, {mid + 1} and {len(layers)} (median over draws)",
        columns=["init", "mean L1", f"mean L{mid + 1}", f"mean L{len(layers)}", "std L1", f"std L{mid + 1}",
                 f"std L{len(layers)}"],
        rows=rows,
    )
    growth = Table(
        name="p2_growth",
        caption="Per-layer growth factor of mean |activation| (geometric mean, layer 1 to last) and loss at init",
        columns=["init", "measured factor", "predicted sqrt(n Var[W]/2)", "verdict", "loss at init", "logit std"],
        rows=growth_rows,
        note=f"ln 2 = {m['ln_classes']:.4f}. Verdict: stable when the factor lies in "
             f"[{STABLE_BAND[0]}, {STABLE_BAND[1]}].",
    )
    return {"figures": [f_act, f_pred, f_grad], "tables": [table, growth], "discussion": discussion(m),
            "answers": answers(m), "intro": intro(m, n_nets, mid),
            "title": f"Deep net initialization ({len(layers)} x {m['widths'][1]} ReLU layers)"}  # as run


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def intro(m: dict, n_nets: int, mid: int) -> dict:
    """What the introduction names, from the run: its inits, its draws, the layers the table shows."""
    from lab.inits import parse_init  # local: lab.inits imports torch

    specs = list(m["inits"])
    normal = all(parse_init(s).name in ("normal", "glorot", "he") for s in specs)
    n = len(m["layers"])
    layers = sorted({1, mid + 1, n})
    return {
        "inits": _and([d["label"] for d in m["inits"].values()]),
        "n_inits": len(specs),
        "draws": (f"{n_nets} independent weight draw{'s' if n_nets != 1 else ''}"
                  + ("" if len(specs) == 1 else
                     " per init (the same standard-normal draws, scaled per init)" if normal else
                     " per init (the same generator seed for every init)")),
        "layers": _and([str(layer) for layer in layers]),
    }


def discussion(m: dict) -> list[str]:
    """Sentences chosen by the measured numbers of this run."""
    lines = []
    n = len(m["layers"])
    for spec, d in m["inits"].items():
        g, pred = d["growth_per_layer"], d["predicted"]["factor_per_layer"][-1]
        pred = math.inf if pred is None else pred  # null: the predicted factor overflowed (a huge init)
        mean_abs = _median(d, "mean_abs")
        v = verdict(g)
        if v == "degenerate":
            lines.append(f"{d['label']}: the activations overflowed or vanished to zero within {n} layers "
                         f"(last finite mean |activation| {fmt(float(mean_abs[np.isfinite(mean_abs)][-1]) if np.isfinite(mean_abs).any() else None)}), "
                         "so no per-layer factor can be measured.")
            continue
        lines.append(
            f"{d['label']}: mean |activation| goes from {fmt(mean_abs[0])} at layer 1 to {fmt(mean_abs[-1])} at "
            f"layer {n}, a factor of {fmt(g, 4)} per layer, so the signal {v}. Variance propagation predicts "
            f"sqrt(n Var[W] / 2) = {fmt(pred, 4)} per layer "
            + ("and the measurement agrees within 10 %." if pred > 0 and abs(g / pred - 1) <= 0.1 else
               f"; the measurement differs from it by {abs(g / pred - 1) * 100:.0f} % (the median of a few finite nets, "
               "not the expectation)." if pred > 0 else "; with zero weights there is no signal to propagate.")
        )
    he = [d for s, d in m["inits"].items() if s.startswith("he")]
    glorot = [d for s, d in m["inits"].items() if s.startswith("glorot")]
    if he and glorot:
        h, g = he[0]["growth_per_layer"], glorot[0]["growth_per_layer"]
        lines.append(
            f"Why: each ReLU zeroes half of its inputs, so keeping E[a^2] constant needs Var[W] = 2 / n_in (He). "
            f"Glorot's Var[W] = 2 / (n_in + n_out) = 1 / n_in here is half that, which loses a factor sqrt(1/2) = 0.707 "
            f"per layer (measured {fmt(g, 4)}); He measured {fmt(h, 4)}."
        )
    scales = {}
    for spec, d in m["inits"].items():
        gw = _median(d, "grad_w_mean_abs")
        if gw.min() > 0 and np.isfinite(gw).all():
            scales[d["label"]] = float(np.median(gw))
            lines.append(
                f"{d['label']}: mean |dL/dW| spans a factor {fmt(float(gw.max() / gw.min()))} across the "
                f"{len(gw)} linear layers (first {fmt(gw[0])}, last {fmt(gw[-1])}; median {fmt(scales[d['label']])})."
            )
    if he and len(scales) > 1 and he[0]["label"] in scales:
        ref = scales[he[0]["label"]]
        others = [f"{k} {fmt(v / ref)}x" for k, v in scales.items() if k != he[0]["label"]]
        lines.append(
            "Relative to He, the typical weight-gradient magnitude is " + ", ".join(others)
            + ": a learning rate tuned for one init is off by that factor for the other, before training even starts."
        )
    losses = {d["label"]: _med(d["loss_at_init"]) for d in m["inits"].values()}
    worst = max(losses, key=losses.get)
    lines.append(
        f"Loss at init (ln 2 = {m['ln_classes']:.3f} expected): "
        + ", ".join(f"{k} {fmt(v, 4)}" for k, v in losses.items())
        + f". The largest, {worst}, comes from confidently wrong logits of huge magnitude."
        if losses[worst] > 2 * m["ln_classes"] else
        f"Loss at init (ln 2 = {m['ln_classes']:.3f} expected): " + ", ".join(f"{k} {fmt(v, 4)}" for k, v in losses.items()) + "."
    )
    return lines


__all__ = ["build", "discussion", "verdict"]


def answers(m: dict) -> list[dict]:
    """The facts Part 2's question is answered with (words: templates/answers.txt.j2)."""
    inits = []
    for spec, d in m["inits"].items():
        mean_abs = _median(d, "mean_abs")
        growth = d["growth_per_layer"]
        inits.append({"label": d["label"], "spec": spec, "growth": cell(growth) if growth is not None else "n/a",
                      "predicted": fmt(d["predicted"]["factor_per_layer"][-1], 3), "verdict": verdict(growth),
                      "growth_v": growth, "predicted_v": d["predicted"]["factor_per_layer"][-1],
                      "first": cell(float(mean_abs[0])), "last": cell(float(mean_abs[-1]))})
    labels = _and([a["label"] for a in inits]) if inits else "no init"
    return [{
        "id": "p2_stats", "status": "answered" if inits else "missing",
        "question": f"How do the mean and std of |activation| evolve over {len(m['layers'])} layers under {labels}?",
        "refs": ["fig:p2_activations", "tab:p2_growth", "fig:p2_prediction"],
        "facts": {"inits": inits, "depth": len(m["layers"]), "width": m["widths"][1]},
    }]
