"""Part 3 figures: learning curves of both arms, sample digits, Monte-Carlo dropout ensembles; from saved numbers.

    plot_curves(metrics, "loss", ax); plot_mc_error(metrics["mc"], "logits", ax)
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lab.plots import COLORS, nan_array

ARMS = ("dropout", "no_dropout")
SRIVASTAVA_K = 50  # Srivastava et al. 2014, JMLR, section 7.5: MC averaging matches weight scaling at k ~ 50
REFERENCE_COLOR = "#2ca02c"  # the per-image-mask reference estimator


def _arm_items(metrics: dict):
    return [(arm, metrics["arms"][arm]) for arm in ARMS if arm in metrics["arms"]]


_values = nan_array  # JSON lists may hold None (a NaN/Inf that was measured): plot those as gaps


def seed_matrix(rows: list[list[float | None]]) -> np.ndarray:
    """[seed, step] as floats, rows of different length (a diverged arm stops early) padded with NaN."""
    width = max((len(r) for r in rows), default=0)
    return nan_array([list(r) + [None] * (width - len(r)) for r in rows])


def arm_curves(arm: dict, key: str) -> np.ndarray:
    """One curve of an arm as [training seed, epoch]."""
    return seed_matrix([run[key] for run in arm["runs"]])


def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over axis 0 (training seeds), ignoring NaN; all-NaN columns stay NaN without warnings."""
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v)
    count = ok.sum(0)
    total = np.where(ok, v, 0.0).sum(0)
    mean = np.divide(total, count, out=np.full(v.shape[1:], np.nan), where=count > 0)
    lo = np.where(count > 0, np.where(ok, v, np.inf).min(0), np.nan)
    hi = np.where(count > 0, np.where(ok, v, -np.inf).max(0), np.nan)
    return mean, lo, hi


def _line_band(ax, x, values: np.ndarray, color, label=None, **kwargs) -> None:
    mean, lo, hi = band(values)
    ax.plot(x, mean, color=color, label=label, **kwargs)
    if values.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)


def plot_curves(metrics: dict, what: str, ax, legend: bool = True) -> None:
    """Training (dashed) and validation (solid) loss or error % per epoch for both arms, both in eval mode:
    mean over training seeds, band = min-max over them.

    what = "loss" also draws the training loss as seen during training (mean minibatch loss, dropout on)
    as dots at mid-epoch; loss is drawn on a log axis because the no-dropout training loss falls to ~1e-4.
    """
    short = {"dropout": "dropout", "no_dropout": "no dropout"}
    key = {"loss": "loss", "error": "error_pct"}[what]
    for arm, d in _arm_items(metrics):
        color = COLORS.get(arm)
        val = arm_curves(d, f"val_{key}")
        epochs = np.arange(val.shape[1])
        name = short.get(arm, arm)
        _line_band(ax, epochs, val, color, f"{name}: validation", lw=1.6)
        _line_band(ax, epochs, arm_curves(d, f"train_{key}"), color, f"{name}: training", lw=1.2, ls="--")
        if what == "loss":
            run = band(arm_curves(d, "run_loss"))[0]
            ax.plot(epochs[1:] - 0.5, run[1:], color=color, lw=0, marker=".", ms=3, alpha=0.7,
                    label=f"{name}: training, as seen while training")
        for r in d["runs"]:
            if r.get("diverged_at") is not None:
                ax.axvline(r["diverged_at"], color=color, ls=":", lw=1)
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
    """Generalization gap per epoch: validation minus training (eval mode), for both arms; mean and min-max band
    over training seeds (each seed's gap first, then the band)."""
    key = {"loss": "loss", "error": "error_pct"}[what]
    for arm, d in _arm_items(metrics):
        gap = arm_curves(d, f"val_{key}") - arm_curves(d, f"train_{key}")
        epochs = np.arange(gap.shape[1])
        _line_band(ax, epochs[1:], gap[:, 1:], COLORS.get(arm), d["label"], lw=1.6)
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


def thinned_curve(run: dict, mode: str, key: str = "error_pct") -> list[float]:
    """One training seed's thinned-network ensemble curve over k: the mean over its mask seeds."""
    return [float(v) for v in np.mean(np.asarray(run["thinned"][mode][key], dtype=float), axis=0)]


def mc_matrix(mc: dict, mode: str, key: str = "error_pct", estimator: str = "thinned") -> np.ndarray:
    """[training seed, k]: the thinned ensemble (mean over mask seeds) or the per-image reference."""
    if estimator == "thinned":
        return seed_matrix([thinned_curve(r, mode, key) for r in mc["runs"]])
    return seed_matrix([r["per_image"][mode][key] for r in mc["runs"] if r.get("per_image")])


def eval_values(mc: dict, key: str = "error_pct") -> np.ndarray:
    """Weight-scaling (eval-mode) error or loss of each training seed's dropout net on the ensemble's images."""
    return np.asarray([r[f"eval_{'error_pct' if key == 'error_pct' else 'loss'}"] for r in mc["runs"]], dtype=float)


def _k_axis(ax) -> None:
    """Log k axis labelled 1, 10, 100, 1000 rather than 10^0, 10^1, ..."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("k (ensemble members averaged)")


SYMLOG_TICKS = (-20, -10, -5, -2, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50)  # points, for the paired panel


def _eval_line(ax, values: np.ndarray, label: str) -> None:
    ax.axhline(float(np.mean(values)), color=COLORS["eval"], ls="--", lw=1.2, label=label)
    if len(values) > 1 and np.ptp(values) > 0:
        ax.axhspan(float(np.min(values)), float(np.max(values)), color=COLORS["eval"], alpha=0.08, lw=0)


def plot_mc_error(mc: dict, mode: str, ax) -> None:
    """Error of the k-member ensemble vs k (log x): thinned networks (every training seed to k_max) and the
    per-image-mask reference, mean over training seeds with min-max bands; eval mode as a dashed line (band)."""
    ks = np.asarray(mc["k_grid"])
    n = len(mc["runs"])
    who = f"mean of {n} training seeds" if n > 1 else "one training seed"
    _line_band(ax, ks, mc_matrix(mc, mode), COLORS["dropout"], f"thinned networks, {mode} averaged ({who})",
               marker="o", ms=3)
    ref = mc_matrix(mc, mode, estimator="per_image")
    if ref.size:
        _line_band(ax, np.asarray(mc["k_grid_reference"]), ref, REFERENCE_COLOR,
                   "per-image masks (reference estimator)", marker="s", ms=3, ls=":")
    ev = eval_values(mc)
    _eval_line(ax, ev, f"eval mode (weight scaling): {np.mean(ev):.2f} %")
    if ks.max() >= SRIVASTAVA_K:
        ax.axvline(SRIVASTAVA_K, color="#7f7f7f", ls="-.", lw=0.9, label=f"Srivastava et al.: k ~ {SRIVASTAVA_K}")
    _k_axis(ax)
    ax.set_ylabel("validation error (%)")
    ax.legend(loc="upper right", fontsize=7)


def plot_mc_paired(mc: dict, mode: str, ax) -> None:
    """Ensemble error minus the same net's eval-mode error, per training seed (thin lines) and their mean."""
    ks = np.asarray(mc["k_grid"])
    diff = mc_matrix(mc, mode) - eval_values(mc)[:, None]
    color = COLORS["dropout"]
    for i, row in enumerate(diff):
        ax.plot(ks, row, color=color, lw=0.8, alpha=0.5, label="one training seed" if i == 0 else None)
    ax.plot(ks, np.nanmean(diff, 0), color=color, lw=1.8, marker="o", ms=3, label="mean over training seeds")
    ax.axhline(0.0, color=COLORS["eval"], ls="--", lw=1.2, label="eval mode (weight scaling)")
    _k_axis(ax)
    ax.set_yscale("symlog", linthresh=0.5)  # k = 1 is several points above, k = 1,000 a few images around 0
    lo, hi = ax.get_ylim()
    ax.yaxis.set_major_locator(FixedLocator([t for t in SYMLOG_TICKS if lo <= t <= hi]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("ensemble - eval-mode error (points),\nlinear within +/- 0.5")
    ax.legend(loc="upper right", fontsize=7)


def plot_mc_modes(mc: dict, what: str, ax) -> None:
    """Logit averaging vs probability averaging: error (%) or NLL of the thinned ensemble against k; mean and
    min-max band over training seeds."""
    ks = np.asarray(mc["k_grid"])
    styles = {"logits": ("#1f77b4", "-", "average logits"), "probs": ("#ff7f0e", "--", "average probabilities")}
    key = "error_pct" if what == "error" else "nll"
    for mode, (color, ls, label) in styles.items():
        _line_band(ax, ks, mc_matrix(mc, mode, key), color, label, ls=ls, marker="o", ms=3)
    _eval_line(ax, eval_values(mc, key), "eval mode (weight scaling)")
    _k_axis(ax)
    if what != "error":
        ax.set_yscale("log")  # a single pass's NLL is several times the ensemble's
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 0.05, 0.1, 0.2, 0.5, 1, 2, 5, ...
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("validation error (%)" if what == "error" else "validation NLL of the ensemble")
    ax.legend(loc="upper right", fontsize=7)


__all__ = ["ARMS", "SRIVASTAVA_K", "arm_curves", "band", "eval_values", "mc_matrix", "plot_curves", "plot_digits",
           "plot_gap", "plot_mc_error", "plot_mc_modes", "plot_mc_paired", "seed_matrix", "thinned_curve"]
