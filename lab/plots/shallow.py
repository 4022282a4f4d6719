"""Part 1 figures: rings, loss curves, decision boundaries and the sigma sweep, drawn from saved numbers.

    plot_loss_curves(metrics["init_arms"]["good"], ax, color=arm_color("good"))

Compute-free: every function reads lists from the results JSON (None = diverged / not reached) and draws.
"""

from __future__ import annotations

import numpy as np

from lab.plots import COLORS, nan_array

_FALLBACK = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd", "#ff7f0e"]
CLASS_COLORS = ("#1f77b4", "#d62728")  # inner ring (class 0), outer ring (class 1)


def arm_color(key: str, i: int = 0) -> str:
    """One colour per arm everywhere in Part 1 (picks and Glorot from the shared palette)."""
    return COLORS.get(key, _FALLBACK[i % len(_FALLBACK)])


_arr = nan_array  # JSON list (None for missing) -> float array with NaN


def _finite(v) -> float | None:
    """A JSON number, or None for null / inf / NaN (diverged, never reached)."""
    return None if v is None or not np.isfinite(v) else float(v)


def plot_rings(points, labels, ax, *, background=None, background_labels=None, title: str = "") -> None:
    """Training points by class, optionally over a faint sample of validation points."""
    if background is not None:
        bg, bl = np.asarray(background, dtype=float), np.asarray(background_labels)
        for c, color in enumerate(CLASS_COLORS):
            ax.scatter(bg[bl == c, 0], bg[bl == c, 1], s=3, color=color, alpha=0.12, lw=0)
    pts, lab = np.asarray(points, dtype=float), np.asarray(labels)
    for c, color in enumerate(CLASS_COLORS):
        ax.scatter(pts[lab == c, 0], pts[lab == c, 1], s=14, color=color, edgecolor="k", lw=0.4,
                   label=f"class {c} ({'inner' if c == 0 else 'outer'} ring)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)


def plot_loss_curves(arm: dict, ax, *, color: str, ln2: float, label: str | None = None, band: bool = True,
                     val: bool = True, ls: str = "-") -> None:
    """Training loss per step (median, min-max band over seeds) and validation loss (dots); log y.

    A seed that diverged ends its curve; the step is marked with an x on the top edge.
    """
    c = arm["curve"]
    steps, med = np.asarray(c["steps"]), _arr(c["median"])
    name = label or arm["label"]
    ax.plot(steps, med, color=color, lw=1.6, ls=ls, label=f"{name} (train)" if val else name)
    if band:
        ax.fill_between(steps, _arr(c["lo"]), _arr(c["hi"]), color=color, alpha=0.18, lw=0)
    if val:
        v = arm["val_curve"]
        ax.plot(v["steps"], _arr(v["median"]), ls="none", marker="o", ms=3, color=color, mfc="white",
                label=f"{name} (validation)")
    for at in arm["diverged_at"]:
        if at is not None:
            ax.plot([at], [1.0], marker="x", ms=9, mew=2, color=color, transform=ax.get_xaxis_transform(),
                    clip_on=False)
    ax.axhline(ln2, color="k", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")


def plot_decision_boundary(grid: dict, points, labels, ax, *, title: str = ""):
    """P(outer ring) over the input plane (colour), the 0.5 contour, and the training points."""
    x0, x1, y0, y1 = grid["extent"]
    prob = np.array([_arr(row) for row in grid["prob"]])
    im = ax.imshow(prob, origin="lower", extent=(x0, x1, y0, y1), cmap="RdBu_r", vmin=0, vmax=1, aspect="auto",
                   alpha=0.75)
    if np.nanmin(prob) < 0.5 < np.nanmax(prob):
        xs, ys = np.linspace(x0, x1, prob.shape[1]), np.linspace(y0, y1, prob.shape[0])
        ax.contour(xs, ys, prob, levels=[0.5], colors="k", linewidths=1.2)
    pts, lab = np.asarray(points, dtype=float), np.asarray(labels)
    for c, color in enumerate(CLASS_COLORS):
        ax.scatter(pts[lab == c, 0], pts[lab == c, 1], s=9, color=color, edgecolor="k", lw=0.3)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x1 (normalised)")
    ax.set_ylabel("x2 (normalised)")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return im


def plot_sweep(sweep: list[dict], key: str, ax, *, picks: dict | None = None, glorot: dict | None = None,
               glorot_x: float | None = None, scale: float = 1.0, missing_at: float | None = None,
               color: str = "#333333", label: str | None = None) -> None:
    """Median over seeds (line) and min-max band of ``key`` vs sigma; picks as coloured markers.

    ``scale`` divides the values (e.g. by ln 2); ``missing_at`` draws values that are None (never
    reached / diverged) as open triangles at that height instead of leaving a silent gap.
    """
    sig = np.array([e["sigma"] for e in sweep])
    med = _arr([e["median"][key] for e in sweep]) / scale
    lo = _arr([e["min"][key] for e in sweep]) / scale
    hi = _arr([e["max"][key] for e in sweep]) / scale
    ax.plot(sig, med, color=color, marker="o", ms=3, lw=1.2, label=label or "median over seeds")
    ax.fill_between(sig, lo, hi, color=color, alpha=0.15, lw=0, label=None if label else "min-max over seeds")
    if missing_at is not None:
        gone = np.isnan(med)
        if gone.any():
            ax.plot(sig[gone], np.full(gone.sum(), missing_at), ls="none", marker="^", mfc="white", color=color,
                    label="median not reached")
    for name in ("slow", "good", "large") if picks else ():
        p = picks.get(name) or {}
        if p.get("sigma") is not None:
            y = med[p["index"]]
            ax.axvline(p["sigma"], color=arm_color(name), lw=1, ls="--", alpha=0.7)
            ax.plot([p["sigma"]], [missing_at if np.isnan(y) and missing_at is not None else y], marker="D", ms=7,
                    color=arm_color(name), ls="none", label=f"{name}: sigma {p['sigma']:g}")
    if glorot is not None and glorot_x is not None:
        g = _finite(glorot["median"].get(key))
        if g is not None:  # a missing min/max (diverged seed) draws no bar on that side rather than failing
            g /= scale
            lo_g, hi_g = (_finite(glorot[s].get(key)) for s in ("min", "max"))
            err = [[0.0 if lo_g is None else max(0.0, g - lo_g / scale)],
                   [0.0 if hi_g is None else max(0.0, hi_g / scale - g)]]
            ax.errorbar([glorot_x], [g], yerr=err, marker="*", ms=11,
                        color=arm_color("glorot"), ls="none", capsize=3, label="Glorot (at its mean weight std)")
    ax.set_xscale("log")
    ax.set_xlabel("weight std sigma")


def plot_arms(arms: dict, ax, *, ln2: float, keys=None) -> None:
    """Median training-loss curves of several arms on one axis; log y, log-like x (symlog: step 0 included).

    Line styles alternate because broken runs often sit on the same value (ln 2, or one frozen loss).
    """
    for i, key in enumerate(keys or list(arms)):
        plot_loss_curves(arms[key], ax, color=arm_color(key, i), ln2=ln2, band=False, val=False,
                         ls=("-", "--", "-.", ":")[i % 4])
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=0)
    ax.set_xlabel("step (linear to 10, log beyond)")
    ax.legend(loc="best", fontsize=7)


__all__ = ["CLASS_COLORS", "arm_color", "plot_arms", "plot_decision_boundary", "plot_loss_curves", "plot_rings",
           "plot_sweep"]
