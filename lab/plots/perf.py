"""Performance figure: achieved GFLOP/s of each benchmark as a fraction of the same-run matmul roofline.

    plot_roofline_fractions(rows, ax)
"""

from __future__ import annotations


def plot_roofline_fractions(rows: list[dict], ax) -> None:
    """Horizontal bars, one per benchmark case with a FLOP count; a line at 1.0 = the matmul roofline."""
    rows = [r for r in rows if r["fraction"] is not None]
    names = [r["case"] for r in rows]
    values = [r["fraction"] for r in rows]
    colors = ["#2ca02c" if v >= 0.5 else "#ff7f0e" if v >= 0.1 else "#d62728" for v in values]
    bars = ax.barh(range(len(rows)), values, color=colors)
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=1, ls="--")
    ax.set_xlabel("achieved GFLOP/s / same-run fp32 matmul GFLOP/s")
    for bar, v in zip(bars, values):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:.0%}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.15, max(values, default=0) * 1.15))


__all__ = ["plot_roofline_fractions"]
