"""Performance section: each part's phases against the cost model (from the results), and ``make bench``'s cases
when OUT/data/bench.json exists (pytest-benchmark JSON).

    built = build(load_json(out / "data" / "bench.json"), sink, results)   # bench may be None
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


PART = {"shallow_init": "Part 1", "deep_init": "Part 2", "dropout": "Part 3"}


def _config(name: str, config: dict) -> Any:
    from lab.config import CONFIG_CLASSES

    return CONFIG_CLASSES[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


def phase_view(results: dict) -> dict | None:
    """Per part and phase: FLOPs (lab.cost), estimated and measured wall time, GFLOP/s and the fraction of the matmul
    rate measured before that part ran. None when no result records its phases (an older run, or none)."""
    from lab import cost
    from lab.config import EXPERIMENT_ORDER

    parts = []
    for name in EXPERIMENT_ORDER:
        r = results.get(name)
        if r is None or name not in cost.PHASES:
            continue
        try:
            cfg = _config(name, r.config)
        except Exception:  # noqa: BLE001 - settings of another version: its phases cannot be counted by this one
            continue
        rows = cost.phase_rows(name, cfg, r.metrics, r.provenance)
        rate = r.provenance.get("matmul_gflops")
        wall = r.provenance.get("wall_time_s")
        plan = cost.estimate(name, cfg)
        flops = plan.flops
        step = r.provenance.get("step_gflops")
        rates = cost.Rates(rate, step if isinstance(step, (int, float)) and step > 0 else None) if rate else None
        parts.append({"experiment": name, "part": PART.get(name, name), "rows": rows, "rate": rate, "wall_s": wall,
                      "flops": flops, "estimate_s": plan.seconds(rates) if rates else None,
                      "gflops": flops / wall / 1e9 if wall else None,
                      "fraction": flops / wall / 1e9 / rate if wall and rate else None})
    if not any(p["rate"] for p in parts):
        return None
    return {"parts": parts}


def _pct(v: float | None) -> str:
    return f"{v:.0%}" if v is not None else "n/a"


def phase_table(view: dict) -> Table:
    from lab.cost import fmt_flops

    rows = []
    for p in view["parts"]:
        for r in p["rows"]:
            rows.append([p["part"], r["phase"], fmt_flops(r["flops"]), fmt(r["estimate_s"], 3), fmt(r["wall_s"], 3),
                         fmt(r["gflops"]), _pct(r["fraction"])])
        rows.append([p["part"], "whole part", fmt_flops(p["flops"]), fmt(p["estimate_s"], 3), fmt(p["wall_s"], 3),
                     fmt(p["gflops"]), _pct(p["fraction"])])
    rates = ", ".join(f"{p['part']} {fmt(p['rate'])}" for p in view["parts"] if p["rate"])
    return Table(
        name="perf_phases",
        caption="Cost of each part and phase: FLOPs from the configuration (lab.cost), the time the cost model "
                "expected, the time measured, and the achieved rate",
        columns=["part", "phase", "FLOPs", "expected (s)", "measured (s)", "GFLOP/s", "fraction of matmul rate"],
        rows=rows,
        note=f"FLOPs are multiply-adds x 2 of the matrix products; the matmul rate (a 2048x2048 fp32 product, GFLOP/s) "
             f"was measured just before each part ran: {rates}. A whole part's time includes data loading and work "
             "outside its phases; n/a: a phase the run does not time on its own.")


def phase_discussion(view: dict) -> list[str]:
    from lab.cost import fmt_duration

    lines = []
    for p in view["parts"]:
        if p["estimate_s"] is None or not p["wall_s"]:
            continue
        off = p["wall_s"] / p["estimate_s"] - 1
        lines.append(f"{p['part']}: expected {fmt_duration(p['estimate_s'])} at {fmt(p['rate'])} GFLOP/s, took "
                     f"{fmt_duration(p['wall_s'])} ({off:+.0%}), {_pct(p['fraction'])} of the matmul rate overall.")
    return lines


def build(bench: dict | None, sink: FigureSink, results: dict | None = None) -> dict[str, Any] | None:
    """The section's figures, tables and sentences; None when there is neither a benchmark file nor phase timings."""
    view = phase_view(results or {})
    if bench is None and view is None:
        return None
    out: dict[str, Any] = {"figures": [], "tables": [], "discussion": [], "phases": view is not None,
                           "bench": bench is not None}
    if view is not None:
        out["tables"].append(phase_table(view))
        out["discussion"] += phase_discussion(view)
    if bench is not None:
        built = build_bench(bench, sink)
        out["figures"] += built["figures"]
        out["tables"] += built["tables"]
        out["discussion"] += built["discussion"]
    return out


def build_bench(bench: dict, sink: FigureSink) -> dict[str, Any]:
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


__all__ = ["build", "build_bench", "phase_table", "phase_view", "rows_from"]
