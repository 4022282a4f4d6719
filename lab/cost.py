"""What a run will cost, from the configuration alone: FLOPs per part and phase, and the expected wall time.

    plan = estimate("dropout", make_config("dropout"), rate_gflops=measure_matmul_rate())  # Plan with phases

FLOPs are multiply-adds x 2 of the matrix products (nn.Linear, bmm): elementwise work (ReLU, dropout masks,
softmax, the AdamW update) is not counted, as torch.utils.flop_counter does not count it either;
tests/test_cost.py checks every part against FlopCounterMode on the experiments' own run() at small sizes.

Time is modelled per phase as ``flops / (rate x efficiency) + steps x overhead``: ``rate`` is the 2048 x 2048
fp32 matmul rate measured just before the run (benchmarks' roofline kernel), ``efficiency`` the fraction of it
the phase's products reach, and ``overhead`` the fixed cost of one step (Python, kernel launches, the
elementwise work), which is what the tiny nets of Parts 1 and 2 are made of. Both constants were measured on
this project's 2-core CPU (see PHASE_SPEED); the Performance appendix shows the fractions each run reached.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

MNIST_PIXELS, MNIST_CLASSES = 784, 10
RING_FEATURES, RING_CLASSES = 2, 2
MNIST_TEST = 10_000  # images in MNIST's test split (scored once per arm and seed with --final)
ROOFLINE_N = 2048  # the benchmarks' roofline kernel: an n x n fp32 matmul (benchmarks/conftest.py)

# The audit (python -m lab audit, after the run): what it recomputes, as its issue describes it. Its passes are
# estimated from the configuration like every phase; these counts say how many of each it runs.
AUDIT_MC_PASSES = 5  # thinned-network passes per training seed's dropout net over the Monte-Carlo images


@dataclass(frozen=True)
class Speed:
    """How fast a phase runs relative to the machine: fraction of the matmul rate, and seconds per step."""

    efficiency: float  # achieved FLOP/s of the phase's products / the 2048^2 matmul's
    overhead_s: float = 0.0  # fixed cost of one step (a Python iteration: launches, elementwise work, bookkeeping)


# Measured on the 2-core x86-64 CPU of this project (torch 2.14, 2 threads; Part 1 on one thread, as it runs):
# each phase run alone at full size (Part 3 sliced by --set, see README "Cost model"), its wall time fitted by
# flops / (rate x efficiency) + steps x overhead with the roofline measured in the same process.
PHASE_SPEED: dict[tuple[str, str], Speed] = {
    # Part 1: 2-6-3-2 nets, a few kFLOP per member and step: launch-bound, the FLOPs barely matter
    ("shallow_init", "sweep"): Speed(0.05, 2.0e-3),
    ("shallow_init", "arms"): Speed(0.05, 0.25e-3),
    ("shallow_init", "grids"): Speed(0.05, 1.0e-3),
    ("shallow_init", "one_model_loop"): Speed(0.05, 0.25e-3),
    # Part 2: 20 x 100 layers over 10,000 points: moderately large products, one step per net
    ("deep_init", "nets"): Speed(0.30, 0.05),
    # Part 3: 784-800-800-10
    ("dropout", "setup"): Speed(1.0, 0.0),
    ("dropout", "init"): Speed(0.5, 0.0),
    ("dropout", "train"): Speed(0.50, 0.5e-3),  # batch-100 products and the fused AdamW update per step
    ("dropout", "score"): Speed(0.60, 0.0),
    ("dropout", "ensembles"): Speed(0.45, 1.0e-3),  # thinned nets: gather the kept rows/columns, then a dense pass
    ("dropout", "reference"): Speed(0.35, 0.0),  # per-image masks: a random draw per activation
    ("dropout", "timing"): Speed(0.45, 0.0),
    ("dropout", "final"): Speed(0.60, 0.0),
    ("audit", "dropout_eval"): Speed(0.60, 0.0),
    ("audit", "dropout_mc"): Speed(0.45, 1.0e-3),
    ("audit", "shallow_retrain"): Speed(0.05, 2.0e-3),
}
# Seconds every part spends outside its phases (data loading, building the results): measured, machine-bound.
FIXED_S = {"shallow_init": 1.0, "deep_init": 0.5, "dropout": 1.5, "audit": 3.0}


@dataclass(frozen=True)
class Phase:
    experiment: str
    name: str  # the key of the part's metrics["timing_s"] that times it
    what: str  # one line for people
    flops: float
    steps: int = 0  # Python-level steps, for the overhead term

    def seconds(self, rate_gflops: float) -> float:
        speed = PHASE_SPEED[(self.experiment, self.name)]
        return self.flops / (rate_gflops * 1e9 * speed.efficiency) + self.steps * speed.overhead_s


@dataclass
class Plan:
    experiment: str
    phases: list[Phase] = field(default_factory=list)

    @property
    def flops(self) -> float:
        return sum(p.flops for p in self.phases)

    def seconds(self, rate_gflops: float) -> float:
        return FIXED_S.get(self.experiment, 0.0) + sum(p.seconds(rate_gflops) for p in self.phases)


# ---------------------------------------------------------------------------------------------- counting

def linear_macs(widths: tuple[int, ...] | list[int], bias_row: bool = False) -> int:
    """Multiply-adds of one forward pass of one sample through Linear layers of these widths."""
    return sum((a + int(bias_row)) * b for a, b in zip(widths[:-1], widths[1:]))


def train_macs(widths: tuple[int, ...] | list[int], bias_row: bool = False) -> int:
    """Forward + backward of one sample: weight gradients of every layer, input gradients of all but the first
    (the inputs need no gradient)."""
    fwd = linear_macs(widths, bias_row)
    first = (widths[0] + int(bias_row)) * widths[1]
    return 3 * fwd - first


def thinned_macs(widths: tuple[int, ...] | list[int], keep: list[float]) -> float:
    """Expected multiply-adds of one thinned net: a weight survives when both its units are kept (keep[i]: the
    keep probability of layer i's units; the logits are never dropped)."""
    k = list(keep) + [1.0] * (len(widths) - len(keep))
    return sum(a * ka * b * kb for a, ka, b, kb in zip(widths[:-1], k[:-1], widths[1:], k[1:]))


def log_steps_count(last: int, n: int) -> int:
    """Distinct evaluation points of Part 1 (lab.experiments.shallow_init.log_steps plus the final step)."""
    from lab.experiments.shallow_init import log_steps  # the experiment's own grid, not a copy of it

    return len({int(t) for t in log_steps(last, n) if 0 <= int(t) <= last} | {last})


def k_grid_len(k_max: int) -> int:
    from lab.experiments.dropout import k_grid

    return len(k_grid(k_max))


# ---------------------------------------------------------------------------------------------- per part

def shallow_phases(cfg: Any) -> list[Phase]:
    widths = (RING_FEATURES, *cfg.hidden, RING_CLASSES)
    # lab.batched: the training step multiplies by [weights | bias] against inputs with a row of ones (forward and
    # weight gradients), the input gradients by the weights alone; scoring adds the biases elementwise
    fwd = linear_macs(widths)
    trn = 2 * linear_macs(widths, bias_row=True) + fwd - widths[0] * widths[1]
    members = (cfg.n_sigmas + 1) * cfg.n_seeds  # the sigma grid and Glorot, every model seed
    n_evals = log_steps_count(cfg.steps, cfg.n_eval)

    def fit(m: int) -> float:  # one batched fit: every step on the training set, scoring on validation
        return 2.0 * m * (cfg.steps * cfg.n_train * trn + n_evals * cfg.n_val * fwd + 2 * cfg.n_train * fwd)

    n_arms = 1 + len(cfg.scale_factors) + 6  # raw data, each scale factor, six breakers (shallow_init._run)
    return [
        Phase("shallow_init", "sweep", f"batched sweep: {members} nets x {cfg.steps:,} full-batch steps",
              fit(members), cfg.steps + n_evals),
        Phase("shallow_init", "arms", f"{n_arms} arms (data scaling, breakers) x {cfg.n_seeds} seeds",
              n_arms * fit(cfg.n_seeds), n_arms * (cfg.steps + n_evals)),
        Phase("shallow_init", "grids", f"decision grids ({cfg.grid_size}^2 points, 4 arms)",
              2.0 * 4 * cfg.grid_size**2 * fwd, 4),
        Phase("shallow_init", "one_model_loop", "one net on the plain per-model loop (cross-check)",
              2.0 * (cfg.steps * cfg.n_train * trn + cfg.n_val * fwd), cfg.steps),
    ]


def deep_phases(cfg: Any) -> list[Phase]:
    widths = [RING_FEATURES] + [cfg.width] * cfg.depth + [RING_CLASSES]
    nets = len(cfg.inits) * cfg.n_nets
    # every net: one forward + backward (activation and gradient statistics); the first net of each init also
    # runs the stability check's and the init-loss check's forward passes
    flops = 2.0 * cfg.n_samples * (nets * train_macs(widths) + 2 * len(cfg.inits) * linear_macs(widths))
    return [Phase("deep_init", "nets", f"{nets} nets ({len(cfg.inits)} inits x {cfg.n_nets}): forward + backward "
                  f"over {cfg.n_samples:,} points", flops, nets)]


def dropout_phases(cfg: Any) -> list[Phase]:
    widths = (MNIST_PIXELS, *cfg.hidden, MNIST_CLASSES)
    fwd, trn = linear_macs(widths), train_macs(widths)
    seeds, arms = cfg.n_train_seeds, 2
    batches = math.ceil(cfg.n_train / cfg.batch_size)
    n_mc = min(cfg.n_mc, cfg.n_val)
    keep = [1 - cfg.p_input] + [1 - cfg.p_hidden] * len(cfg.hidden)
    thin = thinned_macs(widths, keep)
    k_ref = min(cfg.k_max_reference, cfg.k_max)
    members = seeds * cfg.n_mask_seeds * cfg.k_max
    phases = [
        # the loss-at-init finding of every training seed (one pass over the training images, and the check's)
        Phase("dropout", "init", "loss at init of each training seed's net", 2.0 * seeds * 2 * cfg.n_train * fwd),
        Phase("dropout", "train", f"training: {seeds} seeds x {arms} arms x {cfg.epochs} epochs x {batches} AdamW steps",
              2.0 * seeds * arms * cfg.epochs * cfg.n_train * trn, seeds * arms * cfg.epochs * batches),
        Phase("dropout", "score", f"eval-mode scoring of train + validation ({cfg.n_train + cfg.n_val:,} images) at "
              f"init and after every epoch", 2.0 * seeds * arms * (cfg.epochs + 1) * (cfg.n_train + cfg.n_val) * fwd),
        Phase("dropout", "ensembles", f"{members:,} thinned networks over {n_mc:,} images, plus the eval-mode "
              "baseline", 2.0 * (members * n_mc * thin + seeds * n_mc * fwd), members),
        Phase("dropout", "reference", f"per-image-mask reference: {seeds} x {k_ref} train-mode passes",
              2.0 * seeds * k_ref * n_mc * fwd),
        # time_passes: on the first net, a warm-up and 3 timed passes of each kind (eval, thinned, per-image)
        Phase("dropout", "timing", "timing passes (eval, thinned, per-image; warm-up + 3 each)",
              2.0 * 4 * n_mc * (2 * fwd + thin)),
    ]
    if cfg.final:
        phases.append(Phase("dropout", "final", "test split, once per arm and seed",
                            2.0 * seeds * arms * MNIST_TEST * fwd))
    return phases


def audit_phases(cfgs: dict[str, Any]) -> list[Phase]:
    """The audit after the run (python -m lab audit): Part 3's saved nets scored again on train + validation, a
    few Monte-Carlo passes per dropout net, and Part 1's tiny nets retrained by independent code."""
    out = []
    if "dropout" in cfgs:
        c = cfgs["dropout"]
        widths = (MNIST_PIXELS, *c.hidden, MNIST_CLASSES)
        keep = [1 - c.p_input] + [1 - c.p_hidden] * len(c.hidden)
        out += [
            Phase("audit", "dropout_eval", "Part 3: every saved net on train + validation",
                  2.0 * c.n_train_seeds * 2 * (c.n_train + c.n_val) * linear_macs(widths)),
            Phase("audit", "dropout_mc", f"Part 3: {AUDIT_MC_PASSES} Monte-Carlo passes per dropout net",
                  2.0 * c.n_train_seeds * AUDIT_MC_PASSES * min(c.n_mc, c.n_val) * thinned_macs(widths, keep),
                  c.n_train_seeds * AUDIT_MC_PASSES),
        ]
    if "shallow_init" in cfgs:
        sweep, arms = shallow_phases(cfgs["shallow_init"])[:2]
        out.append(Phase("audit", "shallow_retrain", "Part 1: every tiny net retrained", sweep.flops + arms.flops,
                         sweep.steps + arms.steps))
    return out


PHASES = {"shallow_init": shallow_phases, "deep_init": deep_phases, "dropout": dropout_phases}


def estimate(experiment: str, cfg: Any) -> Plan:
    return Plan(experiment, PHASES[experiment](cfg))


def audit_plan(cfgs: dict[str, Any]) -> Plan:
    return Plan("audit", audit_phases(cfgs))


# ---------------------------------------------------------------------------------------------- measured

def measured_seconds(experiment: str, metrics: dict, provenance: dict) -> dict[str, float | None]:
    """Wall time of each phase as the run recorded it (metrics["timing_s"], the provenance's wall time for a part
    timed as a whole); None for a phase the run did not time on its own."""
    t = metrics.get("timing_s") or {}

    def num(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def total(v: Any) -> float | None:
        return sum(num(x) or 0.0 for x in v.values()) if isinstance(v, dict) else num(v)

    if experiment == "shallow_init":
        return {"sweep": num(t.get("sweep_batched")), "arms": num(t.get("arms_batched")), "grids": None,
                "one_model_loop": num(t.get("one_model_loop"))}
    if experiment == "deep_init":
        return {"nets": num(provenance.get("wall_time_s"))}
    if experiment == "dropout":
        return {"init": num(t.get("init")), "train": total(t.get("train")), "score": total(t.get("eval")),
                "ensembles": num(t.get("ensembles")), "reference": num(t.get("reference")),
                "timing": num(t.get("timing")), "final": None}
    return {}


def phase_rows(experiment: str, cfg: Any, metrics: dict, provenance: dict) -> list[dict]:
    """Per phase: FLOPs, estimated and measured seconds, achieved GFLOP/s and its fraction of the matmul rate
    measured before the run (None where the run recorded no rate or no time for the phase)."""
    rate = provenance.get("matmul_gflops")
    rate = float(rate) if isinstance(rate, (int, float)) and rate > 0 else None
    seconds = measured_seconds(experiment, metrics, provenance)
    rows = []
    for p in estimate(experiment, cfg).phases:
        wall = seconds.get(p.name)
        gflops = p.flops / wall / 1e9 if wall else None
        rows.append({"experiment": experiment, "phase": p.name, "what": p.what, "flops": p.flops,
                     "estimate_s": p.seconds(rate) if rate else None, "wall_s": wall, "gflops": gflops,
                     "fraction": gflops / rate if gflops is not None and rate else None})
    return rows


# ---------------------------------------------------------------------------------------------- the rate

def measure_matmul_rate(seconds: float = 1.0, n: int = ROOFLINE_N, device: Any = None) -> float:
    """GFLOP/s of an n x n fp32 matmul on ``device`` (the benchmarks' roofline kernel), the median of as many
    products as fit in about ``seconds`` after one warm-up."""
    import torch

    device = torch.device(device or "cpu")
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen).to(device), torch.randn(n, n, generator=gen).to(device)
    out = torch.empty(n, n, device=device)

    def once() -> float:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    once()
    times, spent = [], 0.0
    while spent < seconds or len(times) < 3:
        times.append(once())
        spent += times[-1]
    return 2.0 * n**3 / sorted(times)[len(times) // 2] / 1e9


_RECENT: dict[str, tuple[float, float]] = {}  # device -> (when, GFLOP/s) of the last measurement in this process
RECENT_S = 120.0  # a rate measured this recently in the same process is reused (several runs in one session)


def recent_matmul_rate(device: Any = None, seconds: float = 1.0) -> float:
    """measure_matmul_rate, unless this process measured it on this device less than RECENT_S ago."""
    key = str(device or "cpu")
    now = time.monotonic()
    if key in _RECENT and now - _RECENT[key][0] < RECENT_S:
        return _RECENT[key][1]
    rate = measure_matmul_rate(seconds, device=device)
    _RECENT[key] = (now, rate)
    return rate


# ---------------------------------------------------------------------------------------------- words

def fmt_flops(flops: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops:.3g} FLOP"


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def estimate_line(label: str, plan: Plan, rate_gflops: float, how: str = "measured now") -> str:
    """'Part 3: ~61 TFLOP, about 13 min at 78 GFLOP/s measured now'."""
    return (f"{label}: ~{fmt_flops(plan.flops)}, about {fmt_duration(plan.seconds(rate_gflops))} at "
            f"{rate_gflops:.0f} GFLOP/s {how}")


def phase_eta(plan: Plan, name: str, rate_gflops: float) -> float:
    return next((p.seconds(rate_gflops) for p in plan.phases if p.name == name), 0.0)


__all__ = ["AUDIT_MC_PASSES", "PHASE_SPEED", "Phase", "Plan", "audit_plan", "estimate", "estimate_line",
           "fmt_duration", "fmt_flops", "linear_macs", "measure_matmul_rate", "recent_matmul_rate", "thinned_macs", "train_macs"]
