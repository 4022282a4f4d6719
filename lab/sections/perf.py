"""Performance section, rendered only when ``make bench`` left OUT/data/bench.json (pytest-benchmark JSON).

    built = build(load_json(out / "data" / "bench.json"), sink)
"""

from __future__ import annotations

from typing import Any

from lab.plots import new_figure
from lab.plots.perf import plot_roofline_fractions
from lab.sections import FigureSink, Table, fmt


def _case(b: dict) -> str:
    name = b["name"].removeprefix("test_")
    return name


def rows_from(bench: dict) -> tuple[list[dict], float | None]:
    """One row per benchmark: median time, GFLOP/s, fraction of the roofline measured in the same run."""
    roof = None
    for b in bench.get("benchmarks", []):
        if b.get("extra_info", {}).get("role") == "roofline":
            roof = b["extra_info"]["flops_per_call"] / b["stats"]["median"] / 1e9
    rows = []
    for b in bench.get("benchmarks", []):
        info = b.get("extra_info", {})
        median = b["stats"]["median"]
        flops = info.get("flops_per_call")
        gflops = flops / median / 1e9 if flops and median > 0 else None
        rows.append({
            "case": _case(b),
            "group": b.get("group") or info.get("group", ""),
            "median_ms": 1e3 * median,
            "batch": info.get("batch_size"),
            "flops": flops,
            "gflops": gflops,
            "fraction": gflops / roof if gflops is not None and roof else None,
            "info": info,
        })
    return rows, roof


def _find(rows: list[dict], prefix: str) -> dict | None:
    return next((r for r in rows if r["case"].startswith(prefix)), None)


def build(bench: dict, sink: FigureSink) -> dict[str, Any]:
    rows, roof = rows_from(bench)
    machine = bench.get("machine_info", {})
    fig, ax = new_figure(width=7.0, height=0.45 * max(len(rows), 4) + 1.2)
    plot_roofline_fractions(rows, ax)
    ax.set_title(f"fraction of the same-run matmul roofline ({fmt(roof)} GFLOP/s)" if roof else "no roofline case")
    figure = sink.add("perf_roofline", fig, "Achieved GFLOP/s of each benchmarked step as a fraction of a "
                      "2048x2048 fp32 matmul measured in the same run on the same device (dashed line = 100 %).")
    table = Table(
        name="perf_bench",  # the Performance appendix itself
        caption="Benchmarks (median of pytest-benchmark rounds)",
        columns=["case", "batch", "median (ms)", "GFLOP/s", "fraction of roofline"],
        rows=[[r["case"], fmt(r["batch"]), fmt(r["median_ms"], 4), fmt(r["gflops"]),
               f"{r['fraction']:.0%}" if r["fraction"] is not None else "n/a"] for r in rows],
        note=f"Device {rows[0]['info'].get('device', '?') if rows else '?'}, "
             f"{rows[0]['info'].get('threads', '?') if rows else '?'} threads, torch "
             f"{rows[0]['info'].get('torch', '?') if rows else '?'}; CPU {machine.get('cpu', {}).get('brand_raw', 'n/a')}.",
    )
    return {"figures": [figure], "tables": [table], "discussion": discussion(rows)}


def discussion(rows: list[dict]) -> list[str]:
    lines = []
    side = _find(rows, "thinned_pass_vs_eval_pass")
    if side and side["info"].get("thinned_to_eval") is not None:
        info = side["info"]
        target = info.get("target")
        verdict = ("" if target is None else
                   f", within the target of {target:g}" if info["thinned_to_eval"] <= target else
                   f", above the target of {target:g}")
        lines.append(
            f"Monte-Carlo ensemble members over {fmt(side['batch'])} images, timed interleaved in one run "
            f"({info.get('rounds_side_by_side', '?')} rounds, medians): a thinned network took {info['thinned_to_eval']:.2f}x "
            f"the eval-mode pass ({fmt(info['thinned_s'] * 1e3, 4)} ms vs {fmt(info['eval_s'] * 1e3, 4)} ms){verdict}; "
            f"a per-image-mask (train-mode) pass took {info['mc_train_to_eval']:.2f}x "
            f"({fmt(info['mc_train_s'] * 1e3, 4)} ms).")
    else:
        ev, mc = _find(rows, "validation_pass[eval"), _find(rows, "validation_pass[mc_train")
        if ev and mc:
            ratio = mc["median_ms"] / ev["median_ms"]
            lines.append(f"A Monte-Carlo (train-mode) pass over {fmt(mc['batch'])} images took {ratio:.2f}x the "
                         f"eval-mode pass ({fmt(mc['median_ms'], 4)} ms vs {fmt(ev['median_ms'], 4)} ms).")
    d, nd = _find(rows, "mnist_train_step[dropout"), _find(rows, "mnist_train_step[no_dropout")
    if d and nd:
        roof = f"; with dropout it reaches {d['fraction']:.0%} of the matmul roofline" if d["fraction"] is not None else ""
        lines.append(f"One 784-800-800-10 AdamW step at batch {fmt(d['batch'])}: {fmt(d['median_ms'], 4)} ms with dropout, "
                     f"{fmt(nd['median_ms'], 4)} ms without ({d['median_ms'] / nd['median_ms']:.2f}x){roof}.")
    for r in rows:
        speedup = r["info"].get("speedup")
        if speedup:
            lines.append(f"{r['case']}: {speedup:.1f}x faster than the plain per-model loop on the same work, measured "
                         f"side by side in this run.")
    return [line for line in lines if line]


__all__ = ["build", "rows_from"]
