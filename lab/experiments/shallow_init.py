"""Part 1: a 2-6-3-2 ReLU net on two rings under a sweep of weight scales, Glorot, data scaling and breakers.

    outcome = run(make_config("shallow_init", "quick"), RunContext())   # Outcome(metrics, findings)

Protocol: full-batch SGD on the cross-entropy for ``cfg.steps`` steps, weights N(0, sigma), zero biases.
sigma is swept on a log grid over several model seeds (all members trained at once by lab.batched);
the "slow", "good" and "large" sigmas are then *picked from the sweep* by the criteria stated in
ShallowInitConfig, never hard-coded. The same training then runs with Glorot, with rescaled inputs,
and with one thing broken at a time. Everything returned is plain numbers; lab.sections.shallow_init
turns them into figures and prose.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from lab.arms import ArmSpec, layer_std
from lab.batched import BatchedFit, Stack, fit_batched, init_stack, single_thread
from lab.config import ShallowInitConfig
from lab.context import RunContext
from lab.data import Split, rings_split
from lab.experiments import Outcome
from lab.inits import parse_init, weight_std
from lab.models import MLP
from lab.recipe import check_init_loss
from lab.hooks import ArmTrace, GateData, GateHooks, InitCase, PathPair, StepTrace, rings_spec
from lab.train import evaluate, fit_full_batch

LN2 = math.log(2)  # -log(1/2): the loss of a net that outputs equal logits for the two classes
N_VAL_SHOWN = 1000  # validation points stored for the data figure (enough to show the rings' shape)


def sigma_grid(cfg: ShallowInitConfig) -> list[float]:
    """The sweep's sigmas, rounded to 4 significant digits so the spec string names exactly the sigma used."""
    return [float(f"{s:.4g}") for s in np.geomspace(cfg.sigma_min, cfg.sigma_max, cfg.n_sigmas)]


def log_steps(last: int, n: int) -> list[int]:
    """About n integers in [0, last], log-spaced: dense early, where the loss moves fastest."""
    points = np.round(np.geomspace(1, last + 1, n)).astype(int) - 1
    return sorted(set(points.tolist()) | {0, last})


def plateau_length(losses: np.ndarray, rel_tol: float) -> int:
    """Leading steps whose loss stays within rel_tol * ln 2 of ln 2 (a NaN ends the plateau)."""
    off = ~(np.abs(losses - LN2) <= rel_tol * LN2)
    return int(np.argmax(off)) if off.any() else len(losses)


def first_below(losses: np.ndarray, threshold: float) -> int | None:
    hits = np.flatnonzero(losses <= threshold)
    return int(hits[0]) if hits.size else None


def _as_loss(values: np.ndarray) -> np.ndarray:
    """Losses for medians: a NaN (the run diverged before this point) counts as +inf, worse than any loss."""
    return np.where(np.isnan(values), np.inf, values)


@contextlib.contextmanager
def _quiet():
    """Silence numpy's all-NaN warnings: an all-diverged column is a result (NaN -> null), not a problem."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _band(values: np.ndarray) -> dict[str, list]:
    """Median and min-max over seeds (axis 0) per column; columns where every seed diverged are NaN."""
    with _quiet():
        return {
            "median": np.nanmedian(values, 0).tolist(),
            "lo": np.nanmin(values, 0).tolist(),
            "hi": np.nanmax(values, 0).tolist(),
        }


def _stat(fn, values: np.ndarray) -> float | None:
    """fn over the seeds that have a value (NaN = no value, e.g. accuracy of a diverged run); None if none."""
    kept = values[~np.isnan(values)]
    return float(fn(kept)) if kept.size else None


@torch.no_grad()
def flat_fraction(stack: Stack, x: torch.Tensor) -> np.ndarray:
    """Per member: fraction of hidden units whose output is the same for every input in x.

    Dead ReLUs (inactive everywhere) and units fed only by dead ones: they carry no information about
    the input, so a net whose units are all flat has a constant output. This is what "the net died"
    means, measured. NaN for a member whose weights are no longer finite.
    """
    h, flat = x.T, []
    biases = stack.biases
    for i, w in enumerate(stack.weights[:-1]):
        h = torch.matmul(w, h)
        if biases is not None:
            h = h + biases[i][:, :, None]
        h = h.clamp_min(0.0)
        flat.append((h == h[:, :, :1]).all(dim=2))
    frac = torch.cat(flat, 1).double().mean(1)
    finite = torch.stack([torch.isfinite(p).flatten(1).all(1) for p in stack.params]).all(0)
    return torch.where(finite, frac, torch.nan).cpu().numpy()


@torch.no_grad()
def constant_output(stack: Stack, x: torch.Tensor) -> np.ndarray:
    """Per member: 1.0 if the logits are identical for every input in x (the net ignores its input), else 0.0."""
    z = stack.logits_fm(x)
    same = (z == z[:, :, :1]).flatten(1).all(1).double()
    finite = torch.isfinite(z).flatten(1).all(1)
    return torch.where(finite, same, torch.nan).cpu().numpy()


def summarize(fit: BatchedFit, idx: list[int], cfg: ShallowInitConfig, curves: bool,
              flat: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Per-seed numbers, their median/min/max, and (optionally) decimated curves for members ``idx``.

    ``flat``: per-member (flat_fraction, constant_output) after training, for the arms.
    """
    tl = fit.train_loss[idx]  # [S, steps], NaN after a divergence
    va_loss, va_acc = fit.val_loss[idx], fit.val_acc[idx]
    diverged = [fit.diverged_at[i] for i in idx]
    early = tl[:, cfg.early_step] if cfg.early_step < cfg.steps else np.full(len(idx), np.nan)
    with _quiet():
        peak = np.nanmax(np.where(np.isfinite(tl), tl, np.nan), 1)  # largest finite loss reached
    per_seed = {
        "init_loss": _as_loss(tl[:, 0]),
        "early_loss": _as_loss(early) if cfg.early_step < cfg.steps else early,
        "final_train_loss": _as_loss(tl[:, -1]),
        "final_val_loss": _as_loss(va_loss[:, -1]),
        "final_val_acc": va_acc[:, -1],  # NaN for a diverged run: it has no accuracy
        "final_train_acc": fit.final_train_acc[idx],
        "peak_loss": peak,
        "plateau_steps": np.array([plateau_length(r, cfg.plateau_tol) for r in tl], dtype=float),
        "steps_to_reach": np.array([np.inf if (s := first_below(r, cfg.reach_loss)) is None else s for r in tl]),
    }
    if flat is not None:
        per_seed["flat_units"] = np.asarray(flat[0], dtype=float)[idx]
        per_seed["constant_output"] = np.asarray(flat[1], dtype=float)[idx]
    out: dict = {k: v.tolist() for k, v in per_seed.items()}
    for name, fn in (("median", np.median), ("min", np.min), ("max", np.max)):
        out[name] = {k: _stat(fn, v) for k, v in per_seed.items()}
    out["diverged_at"] = diverged
    out["n_diverged"] = sum(d is not None for d in diverged)
    if curves:
        steps = log_steps(cfg.steps - 1, cfg.curve_points)
        out["curve"] = {"steps": steps, **_band(tl[:, steps])}
        out["val_curve"] = {"steps": fit.eval_steps, **_band(va_loss), "acc_median": _band(va_acc)["median"]}
    return out


@dataclass
class Arm:
    """One training condition with its data as tensors (the gate's path check builds these directly)."""

    key: str
    label: str
    init: str
    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    lr: float
    bias: bool = True


def train_arm(arm: Arm, cfg: ShallowInitConfig, seeds: list[int], ctx: RunContext, eval_at: list[int]):
    stack = init_stack(widths(cfg), [arm.init] * len(seeds), seeds, bias=arm.bias, device=ctx.device)
    fit = fit_batched(stack, arm.x, arm.y, cfg.steps, arm.lr, arm.x_val, arm.y_val, eval_at=eval_at)
    return stack, fit


# ----------------------------------------------------------------------------------------------------
# The arms, as data (lab.arms): run() trains exactly these; the gate checks each against its label.


def model_seeds(cfg: ShallowInitConfig) -> list[int]:
    """The model seeds every arm runs under: cfg.seed, cfg.seed + 1, ... (the data are drawn from cfg.seed)."""
    return [cfg.seed + k for k in range(cfg.n_seeds)]


def _arm(cfg: ShallowInitConfig, group: str, key: str, label: str, init: str, **kw) -> ArmSpec:
    kw.setdefault("lr", cfg.lr)
    return ArmSpec("shallow_init", group, key, label, init, layer_std(init, widths(cfg)), tuple(model_seeds(cfg)),
                   data_seed=cfg.seed, optimizer="SGD", steps=cfg.steps, **kw)


def sweep_arms(cfg: ShallowInitConfig) -> list[ArmSpec]:
    """Each sigma of the sweep and Glorot: same data, same lr, trained as one batched stack."""
    out = [_arm(cfg, "sweep", f"normal:{s:.4g}", f"N(0, {s:.4g})", f"normal:{s:.4g}") for s in sigma_grid(cfg)]
    out.append(_arm(cfg, "sweep", "glorot", "Glorot (xavier_normal_)", "glorot"))
    return out


def arms(cfg: ShallowInitConfig, base: str = "glorot", centre: tuple[float, float] | None = None) -> list[ArmSpec]:
    """Every arm of Part 1: the sweep (with Glorot), then the data-scaling arms and the breakers, each relative to
    ``base`` (the good sigma's init, known after the sweep). ``centre``: the raw rings' centre, for the label."""
    where = f" (rings centred at ({centre[0]:.1f}, {centre[1]:.1f}))" if centre is not None else ""
    s_small = cfg.small_data_scale
    out = sweep_arms(cfg)
    out.append(_arm(cfg, "scaling", "raw", f"unnormalised{where}", base, inputs="raw"))
    out += [_arm(cfg, "scaling", f"x{f:g}", f"normalised x {f:g}", base, scale=f) for f in cfg.scale_factors]
    out += [
        _arm(cfg, "breakers", "zeros", "all-zero weights (symmetry never broken)", "zeros"),
        _arm(cfg, "breakers", "lr_big", f"learning rate {cfg.lr_big:g} ({cfg.lr_big / cfg.lr:g}x)", base, lr=cfg.lr_big),
        _arm(cfg, "breakers", "lr_overflow", f"learning rate {cfg.lr_overflow:g} (float32 overflow)", base,
             lr=cfg.lr_overflow),
        _arm(cfg, "breakers", "no_bias", "no biases", base, bias=False),
        _arm(cfg, "breakers", "small_data_big_lr", f"inputs x {s_small:g} with learning rate {cfg.small_data_lr:g}",
             base, scale=s_small, lr=cfg.small_data_lr),
        _arm(cfg, "breakers", "shuffled", "training labels shuffled", base, labels="shuffled"),
    ]
    return out


def arm_data(arm: ArmSpec, split: Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The arm's (x_train, y_train, x_val, y_val) from the data split: raw or normalised inputs times the arm's
    scale, training labels shuffled from the data seed's own stream (the data draws stay unchanged)."""
    x, xv = (split.x_train_raw, split.x_val_raw) if arm.inputs == "raw" else (split.x_train, split.x_val)
    if arm.scale != 1.0:
        x, xv = x * arm.scale, xv * arm.scale
    y = split.y_train
    if arm.labels == "shuffled":
        shuffle = np.random.default_rng([arm.data_seed, 1]).permutation(y.shape[0])
        y = y[torch.as_tensor(shuffle, device=y.device)]
    return x, y, xv, split.y_val


def arm_stack(cfg: ShallowInitConfig, arms_: list[ArmSpec], device: torch.device) -> tuple[Stack, dict[str, list[int]]]:
    """One batched stack holding every (arm, seed) member, and which members belong to which arm."""
    if len({a.bias for a in arms_}) != 1:
        raise ValueError("one stack holds arms of one bias setting")
    stack = init_stack(widths(cfg), [a.init for a in arms_ for _ in a.seeds], [s for a in arms_ for s in a.seeds],
                       bias=arms_[0].bias, device=device)
    members, start = {}, 0
    for a in arms_:
        members[a.key] = list(range(start, start + len(a.seeds)))
        start += len(a.seeds)
    return stack, members


def train_arms(cfg: ShallowInitConfig, arms_: list[ArmSpec], data: tuple, ctx: RunContext, eval_at: list[int],
               progress=None, on_step=None) -> tuple[Stack, dict[str, list[int]], BatchedFit]:
    """Train arms that share data, lr and length as one batched stack: the arm's promised lr and steps.
    ``on_step(t, stack)``, if given, sees the stack before each step t: the gate watches the real loop through it."""
    if len({(a.lr, a.steps) for a in arms_}) != 1:
        raise ValueError("arms trained in one stack must share lr and steps")
    x, y, xv, yv = data
    stack, members = arm_stack(cfg, arms_, ctx.device)
    steps = progress
    if on_step is not None:
        def steps(it, _inner=progress):
            for t in _inner(it) if _inner is not None else it:
                on_step(t, stack)
                yield t
    fit = fit_batched(stack, x, y, arms_[0].steps, arms_[0].lr, xv, yv, eval_at=eval_at, progress=steps)
    return stack, members, fit


def widths(cfg: ShallowInitConfig) -> list[int]:
    return [2, *cfg.hidden, 2]


def load_data(cfg: ShallowInitConfig, device: torch.device) -> Split:
    """Two rings: n_train training and n_val validation points, standardised with the training statistics
    (the raw coordinates ride along in x_train_raw / x_val_raw for the unnormalised arm)."""
    return rings_split(cfg.n_train, cfg.n_val, cfg.seed).to(device)


def make_model(cfg: ShallowInitConfig, init: str, seed: int, device: torch.device, bias: bool = True) -> MLP:
    """One 2-6-3-2 net on the plain per-model path, initialised from its own seeded generator."""
    return MLP(widths(cfg), bias=bias, init=init, generator=torch.Generator().manual_seed(seed)).to(device)


def make_optimizer(cfg: ShallowInitConfig, model: nn.Module, lr: float | None = None) -> torch.optim.SGD:
    """Full-batch gradient descent: plain SGD, no momentum, no weight decay (the batched trainer's update)."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr if lr is None else lr)


def representative(summary: dict, idx: list[int]) -> int:
    """The member with the median final validation loss (the lower median for an even count)."""
    order = np.argsort(np.asarray(summary["final_val_loss"]), kind="stable")
    return idx[int(order[(len(idx) - 1) // 2])]


def probability_grid(stack: Stack, member: int, x_train: torch.Tensor, n: int) -> dict:
    """P(class 1) on an n x n grid spanning the training inputs (+15 % margin): the decision-boundary data."""
    lo, hi = x_train.min(0).values, x_train.max(0).values
    margin = 0.15 * (hi - lo)
    lo, hi = (lo - margin).tolist(), (hi + margin).tolist()
    gx = torch.linspace(lo[0], hi[0], n, device=x_train.device)
    gy = torch.linspace(lo[1], hi[1], n, device=x_train.device)
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    prob = torch.softmax(stack.logits(pts)[member], dim=1)[:, 1].reshape(n, n)
    return {"extent": [lo[0], hi[0], lo[1], hi[1]], "prob": np.round(prob.cpu().numpy(), 4).tolist()}


# ----------------------------------------------------------------------------------------------------
# Picks


def pick_sigmas(sweep: list[dict], cfg: ShallowInitConfig) -> dict:
    """Apply the stated criteria to the sweep's medians. A pick that nothing meets is None, with the reason."""
    min_plateau = cfg.slow_min_plateau * cfg.steps
    rows = []
    for entry in sweep:
        med = entry["median"]
        rows.append({
            "sigma": entry["sigma"],
            "plateau": med["plateau_steps"],
            "acc": med["final_val_acc"],
            "init_ratio": med["init_loss"] / LN2,
            "val_loss": med["final_val_loss"],
            "train_loss": med["final_train_loss"],
            "n_diverged": entry["n_diverged"],
        })
    # slow and good exclude any diverged seed: a diverged run has no accuracy, so the accuracy median would be
    # over the survivors only and could read "99 %" with most seeds gone.
    slow_c = [r for r in rows if r["plateau"] >= min_plateau and r["acc"] is not None and r["acc"] >= cfg.slow_min_acc
              and r["n_diverged"] == 0]
    good_c = [r for r in rows if r["plateau"] < min_plateau and abs(r["init_ratio"] - 1) <= cfg.init_loss_tol
              and r["n_diverged"] == 0]
    # slow: the longest stall that still ends in a good solution; good: the lowest final validation loss.
    slow = max(slow_c, key=lambda r: (r["plateau"], -r["sigma"])) if slow_c else None
    good = min(good_c, key=lambda r: r["val_loss"]) if good_c else None
    # The large criterion compares with the good pick's validation loss (the sweep's best if there is none).
    ref = good["val_loss"] if good else min(r["val_loss"] for r in rows)
    large_c = [r for r in rows if r["init_ratio"] > cfg.large_init_factor and r["val_loss"] >= cfg.large_val_factor * ref
               and r["n_diverged"] == 0 and r["train_loss"] < LN2]
    large = min(large_c, key=lambda r: r["sigma"]) if large_c else None  # the first sigma past the threshold
    for r in rows:
        r["val_ratio"] = r["val_loss"] / ref if 0 < ref < math.inf else math.nan  # NaN -> null: no finite reference
    index = {r["sigma"]: i for i, r in enumerate(rows)}

    def pick(row, candidates, rule, missing):
        return {
            "sigma": row["sigma"] if row else None,
            "index": index[row["sigma"]] if row else None,
            "measured": row,
            "candidates": [c["sigma"] for c in candidates],
            "rule": rule,
            "missing_reason": None if row else missing,
        }

    return {
        "criteria_table": rows,
        "reference_val_loss": ref,
        "min_plateau_steps": min_plateau,
        "slow": pick(slow, slow_c, (
            f"median plateau (|loss - ln 2| <= {cfg.plateau_tol:.0%} of ln 2) >= {min_plateau:g} steps and median "
            f"final validation accuracy >= {cfg.slow_min_acc:g}, no diverged seed; among those, the longest plateau"),
            "no sigma stalls that long and still reaches the accuracy bar without a diverged seed"),
        "good": pick(good, good_c, (
            f"no stall (median plateau < {min_plateau:g} steps), median loss at init within {cfg.init_loss_tol:.0%} "
            "of ln 2 (the recipe's check), no divergence; among those, the lowest median final validation loss"),
            "every sigma stalls, starts away from ln 2, or diverges"),
        "large": pick(large, large_c, (
            f"median loss at init > {cfg.large_init_factor:g} ln 2, median final validation loss >= "
            f"{cfg.large_val_factor:g}x the good sigma's (the sweep minimum's if there is no good sigma), no divergence and final training loss < ln 2 (it did "
            "converge); among those, the smallest sigma"),
            "no sigma starts that far above ln 2 and still converges to a clearly worse solution"),
    }


# ----------------------------------------------------------------------------------------------------
# The experiment


def run(cfg: ShallowInitConfig, ctx: RunContext) -> Outcome:
    with single_thread(ctx.device):  # every net here is tiny: see lab.batched.single_thread
        return _run(cfg, ctx)


def _run(cfg: ShallowInitConfig, ctx: RunContext) -> Outcome:
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    dev = ctx.device
    split = load_data(cfg, dev)
    seeds = model_seeds(cfg)
    eval_at = log_steps(cfg.steps, cfg.n_eval)
    net = widths(cfg)
    S = len(seeds)

    # 1. The sweep (and Glorot, same data and lr): one batched model, every sigma x seed a member.
    sigmas = sigma_grid(cfg)
    sweep_specs = sweep_arms(cfg)
    specs = [a.init for a in sweep_specs]
    t = time.perf_counter()
    stack, members, fit = train_arms(cfg, sweep_specs, arm_data(sweep_specs[0], split), ctx, eval_at,
                                     progress=lambda it: ctx.progress(it, phase="sweep", desc="shallow_init sweep"))
    timing["sweep_batched"] = time.perf_counter() - t
    sweep = []
    for sigma, sp in zip(sigmas, specs):
        sweep.append({"sigma": sigma, "spec": sp, **summarize(fit, members[sp], cfg, curves=False)})
    picks = pick_sigmas(sweep, cfg)

    # 2. The init arms: the three picks and Glorot, with curves and a decision-boundary grid each.
    init_arms: dict[str, dict] = {}
    for key in ("slow", "good", "large"):
        if picks[key]["sigma"] is not None:
            sp = specs[picks[key]["index"]]
            init_arms[key] = {"label": f"{key}: {parse_init(sp).label}", "init": sp, "sigma": picks[key]["sigma"]}
    init_arms["glorot"] = {"label": parse_init("glorot").label, "init": "glorot", "sigma": None}
    flat = flat_fraction(stack, split.x_train), constant_output(stack, split.x_train)
    for key, arm in init_arms.items():
        idx = members[arm["init"]]
        arm.update(summarize(fit, idx, cfg, curves=True, flat=flat), seeds=seeds)
        rep = representative(arm, idx)
        arm["grid"] = {"seed": seeds[idx.index(rep)], **probability_grid(stack, rep, split.x_train, cfg.grid_size)}

    # 3. Data scaling and breakers, each relative to the good sigma (Glorot if no sigma was good).
    base = specs[picks["good"]["index"]] if picks["good"]["sigma"] is not None else "glorot"
    xt, yt, xv, yv = split.x_train, split.y_train, split.x_val, split.y_val
    later = [a for a in arms(cfg, base, (float(split.mean[0]), float(split.mean[1]))) if a.group != "sweep"]
    t = time.perf_counter()
    results: dict[str, dict[str, dict]] = {"scaling": {}, "breakers": {}}
    for arm in ctx.progress(later, phase="arms", desc="shallow_init arms"):
        x_arm = arm_data(arm, split)
        arm_stack_, _, arm_fit = train_arms(cfg, [arm], x_arm, ctx, eval_at)
        results[arm.group][arm.key] = {
            "label": arm.label, "init": arm.init, "lr": arm.lr, "bias": arm.bias,
            "input_std": float(x_arm[0].std(0).mean()), "seeds": list(arm.seeds),
            **summarize(arm_fit, list(range(len(arm.seeds))), cfg, curves=True,
                        flat=(flat_fraction(arm_stack_, x_arm[0]), constant_output(arm_stack_, x_arm[0])))}
    scaling, breakers = results["scaling"], results["breakers"]
    timing["arms_batched"] = time.perf_counter() - t

    # 4. Cross-check: one member on the plain per-model path (MLP + lab.train.fit_full_batch).
    t = time.perf_counter()
    model = make_model(cfg, base, seeds[0], dev)
    ref = fit_full_batch(model, xt, yt, cfg.steps, cfg.lr, xv, yv, optimizer=make_optimizer(cfg, model))
    timing["one_model_loop"] = time.perf_counter() - t
    member = members[base][0]
    loop_losses = np.asarray(ref["train_loss"])
    crosscheck = {
        "init": base,
        "seed": seeds[0],
        "max_abs_diff_train_loss": float(np.max(np.abs(loop_losses - fit.train_loss[member, : len(loop_losses)]))),
        "final_val_loss_batched": float(fit.val_loss[member, -1]),
        "final_val_loss_loop": float(ref["val_loss"][-1]),
    }

    # 5. Findings: loss at init vs ln 2 for every arm (a far-off value is reported, never blocks).
    findings = []
    finding_arms = [(a["label"], a["init"], xt, a) for a in init_arms.values()]
    finding_arms += [(scaling[a.key]["label"], a.init, arm_data(a, split)[0], scaling[a.key])
                     for a in later if a.group == "scaling"]
    for label, spec, x_arm, summary in finding_arms:
        first = make_model(cfg, spec, seeds[0], dev)
        res = check_init_loss(first, x_arm, yt, n_classes=2, rel_tol=cfg.init_loss_tol,
                              name=f"Part 1 loss at init: {label}", scope="finding")
        med = summary["median"]["init_loss"]
        res.detail += f" (seed {seeds[0]}; median over {S} seeds {med:.4g} = {med / LN2:.3g}x ln 2)"
        findings.append(res)

    timing["total"] = time.perf_counter() - t0
    n_show = min(N_VAL_SHOWN, cfg.n_val)
    metrics = {
        "ln2": LN2,
        "widths": net,
        "seeds": seeds,
        "sigmas": sigmas,
        "eval_steps": fit.eval_steps,
        "n_members_sweep": stack.n_members,
        "data": {
            "mean": split.mean.tolist(),
            "std": split.std.tolist(),
            "train_raw": np.round(split.x_train_raw.cpu().numpy(), 4).tolist(),
            "train_norm": np.round(split.x_train.cpu().numpy(), 4).tolist(),
            "train_labels": split.y_train.cpu().tolist(),
            "val_raw": np.round(split.x_val_raw[:n_show].cpu().numpy(), 4).tolist(),
            "val_norm": np.round(split.x_val[:n_show].cpu().numpy(), 4).tolist(),
            "val_labels": split.y_val[:n_show].cpu().tolist(),
        },
        "sweep": sweep,
        "picks": picks,
        "glorot_layer_std": [weight_std(parse_init("glorot"), a, b) for a, b in zip(net[:-1], net[1:])],
        "init_arms": init_arms,
        "base_init": base,
        "scaling": scaling,
        "breakers": breakers,
        "crosscheck": crosscheck,
        "timing_s": timing,
    }
    return Outcome(metrics=metrics, findings=findings)


# The gate (lab.gate) checks this part through the hooks below. GATE_INIT: the net used for the wiring and
# loss-at-init checks (Glorot: logits near 0 at init, whatever sigma the sweep picks).
GATE_INIT = "glorot"
# Batched sweep vs per-model path: slow, good and large sigmas and Glorot, with and without biases, 100 steps.
GATE_PATH_SPECS = ("normal:0.05", "normal:0.3", "normal:2", "glorot")
GATE_PATH_STEPS = 100
GATE_ARM_ROWS = 200  # training rows each arm's real loop runs on in the gate (its full cfg.steps: ~40 ms per arm)


def _crosscheck_paths(cfg: ShallowInitConfig, d: GateData, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Training loss per step (and final validation loss) of train_arm's batched trainer vs make_model +
    make_optimizer + fit_full_batch, the per-model path run() cross-checks against, on the same seeds."""
    short = replace(cfg, steps=GATE_PATH_STEPS)
    seeds = [cfg.seed, cfg.seed + 1]
    fast, ref = [], []
    ctx = RunContext(device=device, quiet=True)
    for spec, bias in [(s, True) for s in GATE_PATH_SPECS] + [("normal:0.3", False)]:
        arm = Arm("gate", "gate", spec, d.x_train, d.y_train, d.x_val, d.y_val, cfg.lr, bias)
        _, fit = train_arm(arm, short, seeds, ctx, eval_at=[])
        for m, seed in enumerate(seeds):
            fast.append(np.append(fit.train_loss[m], fit.val_loss[m, -1]))
            model = make_model(cfg, spec, seed, device, bias=bias)
            loop = fit_full_batch(model, d.x_train, d.y_train, short.steps, cfg.lr, d.x_val, d.y_val,
                                  optimizer=make_optimizer(cfg, model))
            ref.append(np.append(np.asarray(loop["train_loss"] + [math.nan] * (short.steps - len(loop["train_loss"]))),
                                 loop["val_loss"][-1]))
    return torch.as_tensor(np.stack(fast)), torch.as_tensor(np.stack(ref))


def gate_hooks(cfg: ShallowInitConfig, device: torch.device) -> GateHooks:
    """What the gate checks of this part: closures over this module's own loader, builders and trainers."""

    def data() -> GateData:
        s = load_data(cfg, device)
        return GateData(s.x_train, s.y_train, s.x_val, s.y_val, 2, s.x_train_raw, s.x_val_raw,
                        source=f"two rings, seed {cfg.seed}")

    def build(dropout: bool = True, seed: int | None = None) -> MLP:
        return make_model(cfg, GATE_INIT, cfg.seed if seed is None else seed, device)

    def step(model, optimizer, x, y):
        """One full-batch step, through fit_full_batch (the per-model path run() cross-checks)."""
        return fit_full_batch(model, x, y, 1, cfg.lr, optimizer=optimizer)["train_loss"][0]

    def short_fit(x_tr, y_tr, x_va, y_va) -> dict:
        """train_arm itself (the batched trainer of the sweep) for cfg.steps steps, one Glorot net."""
        arm = Arm("gate", "gate", GATE_INIT, x_tr, y_tr, x_va, y_va, cfg.lr)
        _, fit = train_arm(arm, cfg, [cfg.seed], RunContext(device=device, quiet=True), eval_at=[])
        return {"acc": float(fit.val_acc[0, -1]), "loss": float(fit.val_loss[0, -1])}

    # --- the arms: the declaration run() consumes, each arm's pieces through run()'s own functions -------------
    grid = sigma_grid(cfg)
    base = f"normal:{grid[len(grid) // 2]:.4g}"  # stands for the good sigma (known only after the sweep)
    declared = arms(cfg, base)
    seeds = tuple(cfg.seed + k for k in range(cfg.n_seeds))
    # The lab's text, from the config (never from arms()): every arm trains by plain full-batch SGD for cfg.steps
    # under the model seeds, on the data of cfg.seed; each changes one thing.
    plain = dict(seeds=seeds, data_seed=cfg.seed, optimizer="SGD", lr=cfg.lr, momentum=0.0, weight_decay=0.0,
                 steps=cfg.steps, bias=True, inputs="normalised", scale=1.0, labels="as given", p_input=0.0,
                 p_hidden=0.0, batch_size=None)
    expected = [{"key": f"normal:{sg:.4g}", **plain, "init": f"normal:{sg:.4g}"}
                for sg in np.geomspace(cfg.sigma_min, cfg.sigma_max, cfg.n_sigmas)]
    expected.append({"key": "glorot", **plain, "init": "glorot"})
    expected.append({"key": "raw", **plain, "init": base, "inputs": "raw"})
    expected += [{"key": f"x{f:g}", **plain, "init": base, "scale": f} for f in cfg.scale_factors]
    expected += [{"key": "zeros", **plain, "init": "zeros"},
                 {"key": "lr_big", **plain, "init": base, "lr": cfg.lr_big},
                 {"key": "lr_overflow", **plain, "init": base, "lr": cfg.lr_overflow},
                 {"key": "no_bias", **plain, "init": base, "bias": False},
                 {"key": "small_data_big_lr", **plain, "init": base, "scale": cfg.small_data_scale, "lr": cfg.small_data_lr},
                 {"key": "shuffled", **plain, "init": base, "labels": "shuffled"}]
    sweep_keys = [a.key for a in declared if a.group == "sweep"]
    sample = (sweep_keys[0], sweep_keys[len(grid) // 2], sweep_keys[len(grid) - 1], "glorot",
              *(a.key for a in declared if a.group != "sweep"))

    def as_split(d: GateData) -> Split:
        return Split(d.x_train, d.y_train, d.x_val, d.y_val, torch.zeros(2), torch.ones(2), 2, d.raw_train, d.raw_val)

    def arm_model(arm: ArmSpec, seed: int) -> MLP:
        return arm_stack(cfg, [replace(arm, seeds=(seed,))], device)[0].member(0)

    def arm_trace(arm: ArmSpec, d: GateData) -> ArmTrace:
        """train_arms itself for the arm's steps, one seed, on the first GATE_ARM_ROWS rows of its data."""
        one = replace(arm, seeds=arm.seeds[:1])
        x, y, _, _ = arm_data(one, as_split(d))
        x, y = x[:GATE_ARM_ROWS], y[:GATE_ARM_ROWS]
        last = one.steps
        snaps: dict[int, list[torch.Tensor]] = {}

        def on_step(t, stack):
            if t in (1, last - 1):
                snaps[t] = [p.clone() for p in stack.params]
            if t == 0:
                snaps[0] = [p.clone() for p in stack.params]

        stack, _, _ = train_arms(cfg, [one], (x, y, None, None), RunContext(device=device, quiet=True), [],
                                 on_step=on_step)
        snaps[last] = [p.clone() for p in stack.params]
        net = lambda params: Stack(stack.widths, params, stack.bias).member(0)  # noqa: E731
        steps = [StepTrace(f"step 1 of {last}", net(snaps[0]), net(snaps.get(1, snaps[last])))]
        if last > 1:
            steps.append(StepTrace(f"step {last} of {last}", net(snaps[last - 1]), net(snaps[last])))
        return ArmTrace(f"{last} full-batch steps of train_arms on {x.shape[0]} rows", x.shape[0], steps)

    def sweep_members():
        sweep = [a for a in declared if a.group == "sweep"]
        stack, members = arm_stack(cfg, sweep, device)
        return [(a, seed, stack.member(m)) for a in sweep for seed, m in zip(a.seeds, members[a.key])]

    # the sweep's own inits (init_stack) are checked per arm (arms_init); the per-model path here
    inits = {}
    inits["per-model Glorot"] = InitCase("glorot", lambda seed: make_model(cfg, "glorot", seed, device), "make_model")
    return GateHooks(
        experiment="shallow_init",
        label="Part 1",
        data=data,
        data_spec=rings_spec,
        widths=(2, *cfg.hidden, 2),  # from the config, not from widths(): the check's expectation
        build_model=build,
        inits=inits,
        calibrated_init=True,
        make_optimizer=lambda model: make_optimizer(cfg, model),
        optimizer_expected={"type": "SGD", "lr": cfg.lr, "momentum": 0, "weight_decay": 0},
        train_epoch=step,
        short_fit=short_fit,
        fit_rows=(cfg.n_train, min(cfg.n_val, 2_000)),
        progress_epochs=100,
        progress_rows=None,
        evaluate=lambda model, x, y: evaluate(model, x, y),
        paths={"batched sweep": PathPair(
            lambda d: _crosscheck_paths(cfg, d, device), tol=1e-4,
            what=(f"training loss at each of {GATE_PATH_STEPS} steps and final validation loss, batched trainer vs "
                  f"per-model loop, {len(GATE_PATH_SPECS) + 1} inits x 2 seeds"),
            fix="lab.batched's hand-written forward/backward/update no longer matches autograd + torch.optim.SGD")},
        overfit={"n": 10, "steps": 500, "lr": 1e-2},
        tiny=True,
        arms=declared,
        arms_expected=expected,
        arm_sample=sample,
        arm_model=arm_model,
        arm_inputs=lambda arm, d: arm_data(arm, as_split(d)),
        arm_trace=arm_trace,
        arm_probe=lambda arm, d, seed: {"init": torch.cat([p.detach().flatten() for p in arm_model(arm, seed).parameters()])},
        arm_members=sweep_members,
        data_draw=lambda seed: rings_split(cfg.n_train, cfg.n_val, seed).x_train_raw,
    )


__all__ = ["Arm", "arm_data", "arm_stack", "arms", "model_seeds", "sweep_arms", "train_arms", "gate_hooks", "load_data", "make_model", "make_optimizer", "constant_output", "flat_fraction", "log_steps", "pick_sigmas", "plateau_length", "run", "sigma_grid",
           "summarize"]
