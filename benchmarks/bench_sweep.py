"""Part 1's batched sweep against the plain per-model loop on the same work, timed side by side in one run.

    pytest benchmarks/bench_sweep.py --benchmark-only     # speedup in extra_info["speedup"]

The work is the full profile's sweep exactly as lab.experiments.shallow_init trains it: 19 sigmas plus
Glorot, 5 seeds each = 100 nets x 1000 full-batch SGD steps on the 100 training points. The batched
side is lab.batched.init_stack + fit_batched (what the experiment calls); the loop side is
lab.batched.fit_loop, i.e. MLP + lab.train.fit_full_batch per net. Both run on one intra-op thread,
as the experiment does (lab.batched.single_thread). The loop takes ~40 s, so it runs once; the batched
sweep runs as many rounds as pytest-benchmark wants. Under --benchmark-disable the work shrinks to 4
nets x 30 steps and the test only checks that both paths agree.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.conftest import mlp_flops
from lab.batched import fit_batched, fit_loop, init_stack, single_thread
from lab.config import make_config
from lab.data import rings_split
from lab.experiments.shallow_init import sigma_grid


def sweep_members(cfg) -> tuple[list[str], list[int]]:
    """The experiment's sweep members: every sigma of the grid and Glorot, each with every model seed."""
    specs = [f"normal:{s:.4g}" for s in sigma_grid(cfg)] + ["glorot"]
    seeds = [cfg.seed + k for k in range(cfg.n_seeds)]
    return [sp for sp in specs for _ in seeds], seeds * len(specs)


def test_shallow_sweep_batched_vs_loop(benchmark, perf, device):
    cfg = make_config("shallow_init")
    widths = (2, *cfg.hidden, 2)
    specs, seeds = sweep_members(cfg)
    n_models, steps = perf.size(len(specs), 4), perf.size(cfg.steps, 30)
    pick = np.linspace(0, len(specs) - 1, n_models).round().astype(int)  # all of them at full size
    specs, seeds = [specs[i] for i in pick], [seeds[i] for i in pick]
    split = rings_split(cfg.n_train, 2, cfg.seed).to(device)  # validation scoring is not part of the timed work
    x, y = split.x_train, split.y_train

    def batched():
        stack = init_stack(widths, specs, seeds, device=device)
        return fit_batched(stack, x, y, steps, cfg.lr)

    with single_thread(device):
        start = time.perf_counter()
        loop = fit_loop(widths, specs, seeds, x, y, steps, cfg.lr)
        loop_s = time.perf_counter() - start
        start = time.perf_counter()
        fit = perf.measure(benchmark, batched, flops=mlp_flops(widths, cfg.n_train, True) * n_models * steps,
                           batch=n_models, group="part1-sweep", steps=steps, loop_s=loop_s)
        once_s = time.perf_counter() - start
    stats = getattr(benchmark, "stats", None)
    batched_s = stats.stats.median if stats is not None and not perf.disabled else once_s
    benchmark.extra_info.update(batched_s=batched_s, speedup=loop_s / batched_s)
    # The same work: the same initial losses, and the same first steps. Exact agreement is tests/test_batched.py's
    # job; here sigma = 10 starts at a loss of ~1000, where float32 rounding (1e-4) is amplified step by step.
    ref = np.array([r["train_loss"][: min(steps, 10)] for r in loop])
    got = fit.train_loss[:, : ref.shape[1]]
    rel = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
    assert rel[:, 0].max() <= 1e-5 and rel.max() <= 1e-3
    if not perf.disabled:
        assert loop_s / batched_s > 30, f"batched sweep only {loop_s / batched_s:.1f}x faster than the loop"
