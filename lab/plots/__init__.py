"""Compute-free drawing: ``plot_x(data, ax)`` draws from numbers already measured; ``save_figure`` writes.

    fig, ax = new_figure(); plot_layer_stats(layers, ax); save_figure(fig, path)

One module per lab part (shallow, deep, dropout, perf); shared style and helpers live here.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lab.results import atomic_write_bytes  # noqa: E402

# One palette for every figure, so an init or an arm has the same colour everywhere in the report.
COLORS = {
    "normal:1": "#d62728",
    "glorot": "#1f77b4",
    "he": "#2ca02c",
    "dropout": "#1f77b4",
    "no_dropout": "#d62728",
    "eval": "#333333",
    # Part 1's picked sigmas (Glorot shares "glorot" above)
    "slow": "#9467bd",
    "good": "#2ca02c",
    "large": "#d62728",
}
DPI = 160  # sharp when the PDF is zoomed (>= 150 dpi at the printed width)

plt.rcParams.update(
    {
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def nan_array(values) -> np.ndarray:
    """JSON numbers (nested lists; None where a value was missing or non-finite) -> float array with NaN."""
    def conv(v):
        return [conv(x) for x in v] if isinstance(v, (list, tuple)) else (np.nan if v is None else v)

    return np.asarray(conv(values), dtype=float)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.4, **kwargs):
    """A figure with a grid of axes sized per panel (inches)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    return fig, (axes[0, 0] if axes.size == 1 else axes)


NOTHING_TO_DRAW = "no finite positive value to draw:\nthe runs diverged (NaN/inf) or are zero"


def _values(ax, dim: int) -> np.ndarray:
    """Every x (dim 0) or y (dim 1) value drawn in data coordinates on the axes: lines, markers and bands."""
    chunks = [np.asarray(line.get_xydata(), dtype=float)[:, dim] for line in ax.get_lines()
              if line.get_transform().contains_branch(ax.transData)]
    chunks += [np.asarray(path.vertices, dtype=float)[:, dim] for coll in ax.collections for path in coll.get_paths()]
    return np.concatenate(chunks) if chunks else np.empty(0)


def guard_log_axes(fig) -> None:
    """A log axis with nothing positive and finite on it (a fully diverged or all-zero part) cannot be drawn:
    such an axis falls back to a linear scale and says why, instead of failing the whole report."""
    for ax in fig.axes:
        if ax.images:
            continue
        noted = False
        for dim, axis, set_scale in ((0, ax.xaxis, ax.set_xscale), (1, ax.yaxis, ax.set_yscale)):
            if axis.get_scale() != "log":
                continue
            values = _values(ax, dim)
            drawable = bool(((values > 0) & np.isfinite(values)).any())
            if drawable:
                try:
                    axis.get_majorticklocs()
                except ValueError:  # "Data cannot be log-scaled because all values are <= 0."
                    drawable = False
            if drawable:
                continue
            set_scale("linear")
            if dim == 1 and not np.isfinite(values).any():
                ax.set_ylim(0, 1)
            if not noted:
                ax.text(0.5, 0.5, NOTHING_TO_DRAW, transform=ax.transAxes, ha="center", va="center", fontsize=8,
                        color="#d62728", bbox={"facecolor": "white", "edgecolor": "#d62728", "alpha": 0.9})
                noted = True


def figure_png(fig) -> bytes:
    """Render and close a figure; PNG bytes with fixed metadata so equal figures are equal files."""
    buf = io.BytesIO()
    guard_log_axes(fig)
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: Path) -> bytes:
    """Write a figure as PNG atomically; returns the bytes (the HTML report embeds them)."""
    data = figure_png(fig)
    atomic_write_bytes(Path(path), data)
    return data


__all__ = ["COLORS", "figure_png", "nan_array", "new_figure", "plt", "save_figure"]
