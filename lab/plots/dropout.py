"""Part 3 figures: learning curves of both arms, sample digits, Monte-Carlo dropout ensembles; from saved numbers.

    plot_curves(metrics, "loss", ax); plot_mc_error(metrics["mc"], "logits", ax)
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from lab.plots import COLORS, nan_array

ARMS = ("dropout", "no_dropout")
SRIVASTAVA_K = 50  # Srivastava et al. 2014, JMLR, section 7.5: MC averaging matches weight scaling at k ~ 50


def _arm_items(metrics: dict):
    return [(arm, metrics["arms"][arm]) for arm in ARMS if arm in metrics["arms"]]


_values = nan_array  # JSON lists may hold None (a NaN/Inf that was measured): plot those as gaps


def plot_curves(metrics: dict, what: str, ax, legend: bool = True) -> None:
    """Training (dashed) and validation (solid) loss or error % per epoch for both arms, both in eval mode.

    what = "loss" also draws the training loss as seen during training (mean minibatch loss, dropout on)
    as dots at mid-epoch; loss is drawn on a log axis because the no-dropout training loss falls to ~1e-4.
    """
    short = {"dropout": "dropout", "no_dropout": "no dropout"}
    key = {"loss": "loss", "error": "error_pct"}[what]
    for arm, d in _arm_items(metrics):
        color = COLORS.get(arm)
        epochs = np.arange(len(d["val_loss"]))
        name = short.get(arm, arm)
        ax.plot(epochs, _values(d[f"val_{key}"]), color=color, lw=1.6, label=f"{name}: validation")
        ax.plot(epochs, _values(d[f"train_{key}"]), color=color, lw=1.2, ls="--", label=f"{name}: training")
        if what == "loss":
            run = _values(d["run_loss"])
            ax.plot(epochs[1:] - 0.5, run[1:], color=color, lw=0, marker=".", ms=3, alpha=0.7,
                    label=f"{name}: training, as seen while training")
        if d.get("diverged_at") is not None:
            ax.axvline(d["diverged_at"], color=color, ls=":", lw=1)
    ax.set_xlabel("epoch (0 = at init)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # short runs: no 1.25-epoch ticks
    if what == "loss":
        ax.set_yscale("log")
        ax.set_ylabel("cross-entropy")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top * 100)  # headroom for the legend above the curves (log axis)
    else:
        ax.set_yscale("symlog", linthresh=1.0)  # linear below 1 %, so a training error of exactly 0 still shows
        ax.set_ylabel("error (%), linear below 1 %")
    if legend:
        ax.legend(loc="upper right", fontsize=6.5, ncol=2)


def plot_gap(metrics: dict, ax, what: str = "loss") -> None:
    """Generalization gap per epoch: validation minus training (eval mode), for both arms."""
    key = {"loss": "loss", "error": "error_pct"}[what]
    for arm, d in _arm_items(metrics):
        gap = _values(d[f"val_{key}"]) - _values(d[f"train_{key}"])
        epochs = np.arange(len(gap))
        ax.plot(epochs[1:], gap[1:], color=COLORS.get(arm), lw=1.6, label=d["label"])
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation - training " + ("loss" if what == "loss" else "error (percentage points)"))
    ax.legend(loc="best")


def plot_digits(samples: dict, axes, vlim: float | None = None):
    """A grid of normalised training digits with their labels, on one shared colour scale; returns the image."""
    images = np.asarray(samples["images"], dtype=float).reshape(-1, *samples["shape"])
    flat = axes.ravel()
    vlim = vlim or float(np.abs(images).max())
    im = None
    for ax, img, label in zip(flat, images, samples["labels"]):
        im = ax.imshow(img, cmap="RdBu_r", vmin=-vlim, vmax=vlim, interpolation="nearest")
        ax.set_title(f"label {label}", fontsize=8, pad=2)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
    return im


def _spread(errors: list[list[float | None]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min, max over the mask seeds that reached each k (None = that seed stopped at a smaller k)."""
    e = nan_array(errors)  # [seed, k]
    return np.nanmean(e, 0), np.nanmin(e, 0), np.nanmax(e, 0)


def plot_mc_error(mc: dict, mode: str, ax) -> None:
    """Error of the k-pass MC ensemble vs k (log x): mean over mask seeds, min-max band, eval-mode line."""
    ks = np.asarray(mc["k_grid"])
    mean, lo, hi = _spread(mc[mode]["error_pct"])
    color = COLORS["dropout"]
    n_seeds = len(mc[mode]["error_pct"])
    per = mc.get("k_max_per_seed") or [int(ks[-1])] * n_seeds
    who = f"mean of {n_seeds} mask seeds" + (f"; 1 seed beyond k = {min(per[1:])}" if len(set(per)) > 1 else "")
    ax.plot(ks, mean, marker="o", ms=3, color=color, label=f"MC dropout, {mode} averaged ({who})")
    if n_seeds > 1:
        ax.fill_between(ks, lo, hi, color=color, alpha=0.2, lw=0, label="min-max over mask seeds")
    ax.axhline(mc["eval_error_pct"], color=COLORS["eval"], ls="--", lw=1.2,
               label=f"eval mode (weight scaling): {mc['eval_error_pct']:.2f} %")
    meet = mc[mode].get("meet_k")  # read off the first mask seed's curve (the one that reaches k_max), not the mean
    if meet is not None:
        whose = "first mask seed: " if n_seeds > 1 else ""
        ax.axvline(meet, color=color, ls=":", lw=1.0, label=f"{whose}first k at or below eval mode: {meet}")
    if ks.max() >= SRIVASTAVA_K:
        ax.axvline(SRIVASTAVA_K, color="#7f7f7f", ls="-.", lw=0.9, label=f"Srivastava et al.: k ~ {SRIVASTAVA_K}")
    ax.set_xscale("log")
    ax.set_xlabel("k (train-mode passes averaged)")
    ax.set_ylabel("validation error (%)")
    ax.legend(loc="upper right", fontsize=7)


def plot_mc_modes(mc: dict, what: str, ax) -> None:
    """Logit averaging vs probability averaging: error (%) or NLL of the ensemble against k."""
    ks = np.asarray(mc["k_grid"])
    styles = {"logits": ("#1f77b4", "-", "average logits"), "probs": ("#ff7f0e", "--", "average probabilities")}
    for mode, (color, ls, label) in styles.items():
        key = "error_pct" if what == "error" else "nll"
        mean, lo, hi = _spread(mc[mode][key])
        ax.plot(ks, mean, color=color, ls=ls, marker="o", ms=3, label=label)
        if len(mc[mode][key]) > 1:
            ax.fill_between(ks, lo, hi, color=color, alpha=0.15, lw=0)
    base = mc["eval_error_pct"] if what == "error" else mc["eval_loss"]
    ax.axhline(base, color=COLORS["eval"], ls=":", lw=1.2, label="eval mode (weight scaling)")
    ax.set_xscale("log")
    if what != "error":
        ax.set_yscale("log")  # a single pass's NLL is several times the ensemble's
    ax.set_xlabel("k (train-mode passes averaged)")
    ax.set_ylabel("validation error (%)" if what == "error" else "validation NLL of the ensemble")
    ax.legend(loc="upper right", fontsize=7)


__all__ = ["ARMS", "SRIVASTAVA_K", "plot_curves", "plot_digits", "plot_gap", "plot_mc_error", "plot_mc_modes"]
