"""Part 3's phases side by side with the roofline: a short slice of each, timed interleaved with the matmul.

    make bench ARGS="-k part3_phases"        # or: python -m benchmarks.bench_phases  (prints the table)

Each slice runs the experiment's own functions (lab.experiments.dropout: train_epoch, evaluate_rows,
mc_ensemble with both estimators) at the full profile's widths, on random inputs of MNIST's shape (speed does
not depend on pixel values), and its FLOPs come from lab.cost, the model the run's estimate uses. Rounds
alternate the roofline kernel and every slice, so a busy neighbour slows both alike; the ratio of medians is
recorded per phase, and the whole of Part 3 is projected from them: its FLOPs over the time the phases would
take at these rates, as a fraction of the roofline (no assertion: a timing is a measurement, not a test).
"""

from __future__ import annotations

import time

import torch

from lab import cost
from lab.config import make_config
from lab.context import RunContext
from lab.experiments.dropout import evaluate_rows, make_model, make_optimizer, mc_ensemble, train_epoch

ROUNDS = 5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def slices(cfg, device: torch.device, small: bool) -> dict[str, tuple]:
    """phase -> (callable running one slice, FLOPs of that slice by lab.cost's counting)."""
    widths = (cost.MNIST_PIXELS, *cfg.hidden, cost.MNIST_CLASSES)
    fwd, trn = cost.linear_macs(widths), cost.train_macs(widths)
    keep = [1 - cfg.p_input] + [1 - cfg.p_hidden] * len(cfg.hidden)
    thin = cost.thinned_macs(widths, keep)
    n_train = 200 if small else 1_000  # 10 AdamW steps at the protocol's batch size
    n_eval = 500 if small else cfg.n_train + cfg.n_val  # one epoch's scoring: train + validation images
    n_mc = 500 if small else min(cfg.n_mc, cfg.n_val)
    k_thin, k_ref = (2, 1) if small else (10, 2)
    x = torch.randn(max(n_train, n_eval, n_mc), cost.MNIST_PIXELS, generator=_gen(1)).to(device)
    y = torch.randint(0, cost.MNIST_CLASSES, (x.shape[0],), generator=_gen(2)).to(device)
    drop = make_model(cfg, cfg.p_input, cfg.p_hidden, device)
    opt = make_optimizer(cfg, drop)
    quiet = RunContext(device=device, quiet=True)
    batch = min(cfg.batch_size, n_train)
    return {
        "train": (lambda: train_epoch(drop, opt, x[:n_train], y[:n_train], batch, _gen(3)), 2.0 * n_train * trn),
        "score": (lambda: evaluate_rows(drop, x[:n_eval], y[:n_eval]), 2.0 * n_eval * fwd),
        "ensembles": (lambda: mc_ensemble(drop, x[:n_mc], y[:n_mc], [k_thin], 4, quiet), 2.0 * k_thin * n_mc * thin),
        "reference": (lambda: mc_ensemble(drop, x[:n_mc], y[:n_mc], [k_ref], 5, quiet, "per_image"),
                      2.0 * k_ref * n_mc * fwd),
    }


def measure(device: torch.device, small: bool = False, rounds: int = ROUNDS) -> dict:
    """Median seconds of each slice and of the roofline over interleaved rounds; GFLOP/s and ratios; Part 3 projected."""
    cfg = make_config("dropout")
    cases = slices(cfg, device, small)
    n = 256 if small else cost.ROOFLINE_N
    times: dict[str, list[float]] = {name: [] for name in cases}
    roof: list[float] = []
    for r in range(rounds + 1):  # the first round warms up
        roof.append(cost.measure_matmul_rate(0.0 if small else 0.3, n=n, device=device))
        for name, (fn, _) in cases.items():
            start = time.perf_counter()
            out = fn()
            if isinstance(out, torch.Tensor):
                float(out)  # train_epoch returns its loss without a host sync: wait for it
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - start)
    med = lambda v: sorted(v[1:] or v)[len(v[1:] or v) // 2]  # noqa: E731
    rate = med(roof)
    phases = {}
    for name, (_, flops) in cases.items():
        gflops = flops / med(times[name]) / 1e9
        phases[name] = {"flops": flops, "seconds": med(times[name]), "gflops": gflops, "fraction": gflops / rate}
    # Part 3 at the full profile: every phase at the rate its slice reached (phases without a slice here, the small
    # init and timing passes, at the score's and the ensembles' rates)
    full = {p.name: p.flops for p in cost.estimate("dropout", cfg).phases}
    alias = {"init": "score", "timing": "ensembles", "final": "score"}
    seconds = sum(f / (phases[alias.get(name, name)]["gflops"] * 1e9) for name, f in full.items())
    part3 = sum(full.values()) / seconds / 1e9
    return {"roofline_gflops": rate, "phases": phases, "part3_gflops": part3, "part3_fraction": part3 / rate,
            "part3_seconds": seconds, "rounds": rounds, "threads": torch.get_num_threads()}


def test_part3_phases(benchmark, perf, device):
    """Records each Part 3 phase's fraction of the roofline (extra_info) and the projected whole-part fraction."""
    result = measure(device, small=perf.disabled, rounds=1 if perf.disabled else ROUNDS)
    assert set(result["phases"]) == {"train", "score", "ensembles", "reference"}
    assert all(p["seconds"] > 0 and p["flops"] > 0 for p in result["phases"].values())
    cfg = make_config("dropout")
    fn, flops = slices(cfg, device, perf.disabled)["score"]
    perf.measure(benchmark, fn, flops=flops, batch=cfg.n_train + cfg.n_val if not perf.disabled else 500,
                 group="part3-phases", part3_phases=result["phases"], part3_fraction=result["part3_fraction"],
                 part3_gflops=result["part3_gflops"], roofline_gflops_interleaved=result["roofline_gflops"])


if __name__ == "__main__":
    import sys

    from lab.context import resolve_device

    if len(sys.argv) > 1:  # python -m benchmarks.bench_phases THREADS: the same slices on that many threads
        torch.set_num_threads(int(sys.argv[1]))
    r = measure(resolve_device("auto"))
    print(f"roofline {r['roofline_gflops']:.0f} GFLOP/s ({r['threads']} threads, medians of {r['rounds']} interleaved rounds)")
    for name, p in r["phases"].items():
        print(f"  {name:10s} {p['flops'] / 1e9:8.1f} GFLOP in {p['seconds'] * 1e3:8.1f} ms: {p['gflops']:6.1f} GFLOP/s, "
              f"{p['fraction']:.0%} of the roofline")
    print(f"Part 3 (full profile) projected: {r['part3_gflops']:.0f} GFLOP/s = {r['part3_fraction']:.0%} of the roofline, "
          f"{r['part3_seconds'] / 60:.1f} min")
