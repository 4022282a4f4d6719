"""Part 2 figures: per-layer statistics of the deep net, one line per init, from saved numbers.

    plot_layer_stat(metrics, "mean_abs", ax)
"""

from __future__ import annotations

import numpy as np

from lab.plots import COLORS

_FALLBACK = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def init_color(spec: str, i: int) -> str:
    return COLORS.get(spec, _FALLBACK[i % len(_FALLBACK)])


def plot_layer_stat(metrics: dict, key: str, ax, ylabel: str, predicted_key: str | None = None) -> None:
    """Median over weight draws (line) and min-max band; optional dashed prediction; log y."""
    layers: list[int] = []
    for i, (spec, d) in enumerate(metrics["inits"].items()):
        values = np.asarray(d[key], dtype=float)  # [nets, layers]; weight gradients include the output layer
        layers = list(range(1, values.shape[1] + 1))
        color = init_color(spec, i)
        ax.plot(layers, np.median(values, 0), marker="o", ms=3, color=color, label=d["label"])
        if values.shape[0] > 1:
            ax.fill_between(layers, values.min(0), values.max(0), color=color, alpha=0.2, lw=0)
        if predicted_key:
            ax.plot(layers, d["predicted"][predicted_key], ls="--", color=color, lw=1.2, alpha=0.9)
    if predicted_key:
        ax.plot([], [], ls="--", color="k", lw=1.2, label="prediction: x sqrt(n Var[W] / 2) per layer")
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer" if len(layers) == len(metrics["layers"]) else "linear layer (last = output)")
    ax.set_ylabel(ylabel)
    ax.set_xticks(layers[::2] if len(layers) > 10 else layers)
    ax.legend(loc="best")


__all__ = ["plot_layer_stat"]
