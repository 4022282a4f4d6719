"""What a run will cost, from the configuration alone: FLOPs per part and phase, and the expected wall time.

    plan = estimate("dropout", make_config("dropout")); plan.seconds(measure_rates())  # FLOPs per phase, then time

FLOPs are multiply-adds x 2 of the matrix products (nn.Linear, bmm): elementwise work (ReLU, dropout masks,
softmax, the AdamW update) is not counted, as torch.utils.flop_counter does not count it either;
tests/test_cost.py checks every part against FlopCounterMode on the experiments' own run() at small sizes.

Time is modelled per phase as ``flops / (rate x efficiency) + steps x overhead``: ``rate`` is measured just before
the run on one of two kernels, the 2048 x 2048 fp32 matmul (benchmarks' roofline: big products) or a training
step's products (batch 100 through 784-800-800, which a loaded machine slows far more than big ones: training and
Part 2's 100-wide layers follow it),
``efficiency`` the fraction of it the phase's products reach, and ``overhead`` the fixed cost of one step
(Python, kernel launches, the elementwise work), which is what the tiny nets of Part 1 are made of. Both constants were measured on
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

    efficiency: float  # achieved FLOP/s of the phase's products / the rate of its reference kernel
    overhead_s: float = 0.0  # fixed cost of one step (a Python iteration: launches, elementwise work, bookkeeping)
    kernel: str = "matmul"  # reference kernel: "matmul" (2048^2, big products) or "step" (a training step's shapes)


# Measured on the 2-core x86-64 CPU of this project (torch 2.14, 2 threads; Part 1 on one thread, as it runs), in
# the least loaded runs of 2026-11-29 (roofline 180-185 GFLOP/s): the quick profile end to end, Parts 1 and 2 at
# full size, Part 3's phases at full width and sizes on slices (benchmarks/bench_phases.py); each phase's time
# fitted by flops / (rate x efficiency) + steps x overhead with the rate measured in the same process. On a loaded
# machine the small products of training lose far more than the roofline does (README, "Cost model").
PHASE_SPEED: dict[tuple[str, str], Speed] = {
    # Part 1: 2-6-3-2 nets on one thread, a few kFLOP per member and step: bmm at ~2 GFLOP/s plus launches
    ("shallow_init", "sweep"): Speed(0.012, 0.05e-3),  # measured 1.17 s for 100 nets x 1,020 steps and scorings
    ("shallow_init", "arms"): Speed(0.012, 0.08e-3),  # 0.94 s for 10 arms x 5 nets x 1,020 steps
    ("shallow_init", "grids"): Speed(0.012, 1.0e-3),
    ("shallow_init", "one_model_loop"): Speed(0.012, 1.4e-3),  # autograd + SGD + a host sync per step: 1.35 s
    # Part 2: 20 x 100 layers over 10,000 points, one forward and backward per net: products of 100-wide layers
    # (0.18-0.24 of the 2048^2 rate when the machine was quiet, 0.1 of the step kernel's when it was loaded)
    ("deep_init", "nets"): Speed(0.2, 0.0, "step"),
    # Part 3: 784-800-800-10
    ("dropout", "init"): Speed(0.6, 0.0),
    # batch-100 products and the fused AdamW update: 0.44 of the 2048^2 rate when quiet (README: 0.48), but 0.03-0.08
    # of it on a loaded machine, where two threads wait on each other at every small product; against the step
    # kernel, which suffers alike, 0.35-0.75 in both
    ("dropout", "train"): Speed(0.55, 0.0, "step"),
    ("dropout", "score"): Speed(0.80, 0.0),  # 5,000-image chunks: 0.54-1.2 (large GEMMs can beat the 2048^2 kernel)
    # the passes over the Monte-Carlo images: 0.55-0.82 of the 2048^2 rate when quiet; under load anywhere between
    # 0.12 and 1.5 (neither kernel measured in one second predicts them there: README, "Cost model")
    ("dropout", "ensembles"): Speed(0.55, 0.0),  # thinned nets: a gather of kept rows/columns per member
    ("dropout", "reference"): Speed(0.55, 0.0),  # per-image masks, a random draw per activation
    ("dropout", "timing"): Speed(0.6, 0.0),  # eval, thinned and per-image passes over the MC images
    ("dropout", "final"): Speed(0.80, 0.0),
    ("audit", "dropout_eval"): Speed(0.80, 0.0),
    ("audit", "dropout_mc"): Speed(0.55, 0.0),
    ("audit", "shallow_retrain"): Speed(0.012, 0.08e-3),
}
# Seconds every part spends outside its phases (data loading, building the results): measured, machine-bound.
FIXED_S = {"shallow_init": 0.2, "deep_init": 0.1, "dropout": 1.0, "audit": 3.0}


@dataclass(frozen=True)
class Rates:
    """GFLOP/s of the two reference kernels, measured just before a run (measure_rates)."""

    matmul: float  # a 2048 x 2048 fp32 matmul: the roofline the Performance appendix divides by
    step: float | None = None  # a training step's products (batch 100 through 784-800-800): None = not measured

    @staticmethod
    def of(rates: "Rates | float") -> "Rates":
        return rates if isinstance(rates, Rates) else Rates(float(rates))

    def get(self, kernel: str) -> float:
        if kernel == "step" and self.step:
            return self.step
        # not measured (a --rate given, an older result): the step kernel's typical share of the matmul rate when
        # the machine is quiet (STEP_SHARE)
        return self.matmul * (STEP_SHARE if kernel == "step" else 1.0)


STEP_SHARE = 0.8  # step kernel / 2048^2 matmul on the quiet 2-core CPU (0.1 when loaded: measure it when you can)


@dataclass(frozen=True)
class Phase:
    experiment: str
    name: str  # the key of the part's metrics["timing_s"] that times it
    what: str  # one line for people
    flops: float
    steps: int = 0  # Python-level steps, for the overhead term

    def seconds(self, rates: Rates | float) -> float:
        speed = PHASE_SPEED[(self.experiment, self.name)]
        rate = Rates.of(rates).get(speed.kernel)
        return self.flops / (rate * 1e9 * speed.efficiency) + self.steps * speed.overhead_s


@dataclass
class Plan:
    experiment: str
    phases: list[Phase] = field(default_factory=list)

    @property
    def flops(self) -> float:
        return sum(p.flops for p in self.phases)

    def seconds(self, rates: Rates | float) -> float:
        return FIXED_S.get(self.experiment, 0.0) + sum(p.seconds(rates) for p in self.phases)


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
    t = metrics.get("timing_s")
    t = t if isinstance(t, dict) else {}  # a hand-edited or older file: no phase times, never a crash

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
    def positive(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    rate = positive(provenance.get("matmul_gflops"))
    rates = Rates(rate, positive(provenance.get("step_gflops"))) if rate else None
    seconds = measured_seconds(experiment, metrics, provenance)
    rows = []
    for p in estimate(experiment, cfg).phases:
        wall = seconds.get(p.name)
        gflops = p.flops / wall / 1e9 if wall else None
        rows.append({"experiment": experiment, "phase": p.name, "what": p.what, "flops": p.flops,
                     "estimate_s": p.seconds(rates) if rates else None, "wall_s": wall, "gflops": gflops,
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


_RECENT: dict[str, tuple[float, Rates]] = {}  # device -> (when, GFLOP/s) of the last measurement in this process
RECENT_S = 120.0  # a rate measured this recently in the same process is reused (several runs in one session)


def measure_step_rate(seconds: float = 0.3, device: Any = None, batch: int = 100) -> float:
    """GFLOP/s of a training step's products: a batch of 100 through 784 -> 800 -> 800, repeated for ``seconds``."""
    import torch

    device = torch.device(device or "cpu")
    gen = torch.Generator().manual_seed(1)
    x, w1, w2 = (torch.randn(*shape, generator=gen).to(device) for shape in ((batch, 784), (784, 800), (800, 800)))
    h1, h2 = torch.empty(batch, 800, device=device), torch.empty(batch, 800, device=device)

    def once() -> None:
        torch.mm(x, w1, out=h1)
        torch.mm(h1, w2, out=h2)

    once()
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < seconds:
        once()
        n += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n * 2.0 * batch * (784 * 800 + 800 * 800) / (time.perf_counter() - start) / 1e9


def measure_rates(seconds: float = 1.0, device: Any = None) -> Rates:
    """Both reference kernels in about ``seconds``: 70 % of it on the 2048^2 matmul, 30 % on the step's products."""
    return Rates(measure_matmul_rate(0.7 * seconds, device=device), measure_step_rate(0.3 * seconds, device=device))


def recent_rates(device: Any = None, seconds: float = 1.0) -> Rates:
    """measure_rates, unless this process measured them on this device less than RECENT_S ago."""
    key = str(device or "cpu")
    now = time.monotonic()
    if key in _RECENT and now - _RECENT[key][0] < RECENT_S:
        return _RECENT[key][1]
    rates = measure_rates(seconds, device=device)
    _RECENT[key] = (now, rates)
    return rates


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


def estimate_line(label: str, plan: Plan, rates: Rates | float, how: str = "measured now") -> str:
    """'Part 3: ~61 TFLOP, about 13 min at 78 GFLOP/s measured now' (the 2048^2 matmul's rate)."""
    r = Rates.of(rates)
    return f"{label}: ~{fmt_flops(plan.flops)}, about {fmt_duration(plan.seconds(r))} at {r.matmul:.0f} GFLOP/s {how}"


__all__ = ["AUDIT_MC_PASSES", "PHASE_SPEED", "Phase", "Plan", "audit_plan", "estimate", "estimate_line",
           "fmt_duration", "fmt_flops", "linear_macs", "Rates", "measure_matmul_rate", "measure_rates", "recent_rates", "thinned_macs", "train_macs"]
