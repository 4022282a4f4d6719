"""Audit of Part 1 (shallow_init): retrain every sweep net and every arm with independent code, compare.

    rows = audit(json.loads(Path("report/data/shallow_init.json").read_text()), torch.device("cpu"))

What the lab says (its text and ShallowInitConfig), rebuilt here without importing the lab:
two rings (checks/audit/_ref.py has the data and weight seeding contract), n_train training and n_val
validation points from ``default_rng(cfg.seed)``, standardised with the training statistics; a
2-(hidden)-2 ReLU MLP, weights N(0, sigma), zero biases; full-batch SGD (no momentum) at cfg.lr on the
mean cross-entropy for cfg.steps steps. Recorded per net: the training loss at step t is the loss of the
net after t updates (computed before update t), so "loss at init" is step 0, "after 100 steps" is step
cfg.early_step and the final training loss is step steps - 1; validation loss/accuracy and training
accuracy are of the final net (after cfg.steps updates). A net whose training loss turns NaN/Inf has
diverged at that step and has no later values (null).

Sweep and arms, as the run's seeding contract has them: model seeds cfg.seed + k, k < n_seeds (member k
of every arm draws its weights from ``torch.Generator().manual_seed(cfg.seed + k)``); sigmas
geomspace(sigma_min, sigma_max, n_sigmas) rounded to 4 significant digits; Glorot (xavier_normal_) on
the same data and lr. The three picks follow the criteria of ShallowInitConfig on the sweep's medians
over seeds (losses: a diverged seed counts as +inf; accuracies: median over the seeds that did not
diverge). Every scaling arm and breaker starts from the good pick's N(0, sigma) (Glorot when there is no
good pick): "unnormalised" trains on the raw coordinates; "normalised x f" multiplies the normalised
inputs of both sets by f, for f in cfg.scale_factors; breakers: all-zero weights; lr cfg.lr_big;
lr cfg.lr_overflow; no biases; inputs x cfg.small_data_scale with lr cfg.small_data_lr; training labels
permuted by ``default_rng([cfg.seed, 1]).permutation(n_train)`` (validation labels untouched). The arms'
settings come from the config and these words, never from the fields stored beside the arm: an arm
whose settings differ from its label then fails on its numbers.

Tolerances. float32 training in another summation order drifts by round-off; how far that moves a
number depends on the arm (the good sigma: ~1e-7; unnormalised inputs, lr 10 or a huge init: chaotic,
up to 1e-2 after 1000 steps). So every net is trained with TWINS copies whose initial weights are
multiplied by (1 + 1e-6 N(0, 1)) (round-off-sized perturbations), and a number's tolerance is
max(floor, K x the largest twin-reference difference): tight where the training is well conditioned,
loose exactly where it is chaotic. Floors: losses 1e-4 x |value| + 1e-6 (well-conditioned nets agree to
1e-9..1e-7 on this machine; lr 10 arms reach ~1e-5 at their peak, where one update is 10x the weights);
accuracies the fraction of points whose top-2 logit margin is within 1e-5 of the logit scale (they may
flip in another summation order); step counts 1 step (a threshold crossing may move by one step). A
net's drift, the largest twin-reference difference of its training loss at any step, also bounds its
losses and accuracies from below (K x drift): once a chaotic run has moved by that much, any later
value may have. A net still on the ln 2 plateau at the end (|final loss - ln 2| <= plateau_tol ln 2)
predicts by logit differences at round-off level: its accuracies are not verifiable (tolerance 1).
A number that is missing (diverged / never) in the reference and all twins must be missing in the
report; missing in some copies only (chaotic divergence) accepts either. Medians get the largest
per-seed tolerance (a median moves at most as far as its worst member).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._ref import LN2, STRUCTURE, broken, draw_weights, finite, rings, row, standardise, train_members

K = 4.0  # tolerance = K x the largest twin-reference difference (floors below it)
TWINS = 2
PERTURB = 1e-6
LOSS_RTOL, LOSS_ATOL = 1e-4, 1e-6  # the floor of a loss's tolerance

T_DATA = "Figure p1_data (two-rings data)"
T_SWEEPFIG = "Figure p1_sweep (the sweep)"
T_PICKS = "Table p1_picks (the three sigmas)"
T_SWEEP = "Table p1_sweep_points (every sweep point)"
T_INIT = "Table p1_init_arms (picked sigmas and Glorot)"
T_CURVES = "Figure p1_init_curves (loss curves)"
T_BOUNDARY = "Figure p1_boundaries (decision boundaries)"
T_SCALING = "Table p1_scaling (scaling the data)"
T_BREAKERS = "Table p1_breakers (breaking convergence)"

LOSSES = ("init_loss", "early_loss", "final_train_loss", "final_val_loss", "peak_loss")
ACCS = ("final_val_acc", "final_train_acc")
COUNTS = ("plateau_steps", "steps_to_reach", "diverged_at")
NAMES = {"init_loss": "loss at init", "early_loss": "loss after early_step steps", "final_train_loss":
         "final training loss", "final_val_loss": "final validation loss", "peak_loss": "largest finite training loss",
         "final_val_acc": "final validation accuracy", "final_train_acc": "final training accuracy",
         "plateau_steps": "plateau at ln 2 (steps)", "steps_to_reach": "steps to reach_loss",
         "diverged_at": "diverged at step"}
BREAKERS = ("zeros", "lr_big", "lr_overflow", "no_bias", "small_data_big_lr", "shuffled")


def sigma_grid(cfg: dict) -> list[float]:
    return [float(f"{s:.4g}") for s in np.geomspace(cfg["sigma_min"], cfg["sigma_max"], cfg["n_sigmas"])]


# ---------------------------------------------------------------------------------------------------------
# Per-net numbers and medians, by the lab's stated rules


def net_numbers(out: dict, cfg: dict, n_val: int, n_train: int) -> dict:
    steps, early = cfg["steps"], cfg["early_step"]
    loss = out["loss"].copy()
    bad = np.flatnonzero(~np.isfinite(loss))
    at = int(bad[0]) if bad.size else None
    if at is not None:
        loss[at + 1:] = np.nan  # the run stops at the divergence
    val_loss, val_acc, val_amb = out["val"][steps]
    tol = cfg["plateau_tol"] * LN2
    off = ~(np.abs(loss - LN2) <= tol)
    hits = np.flatnonzero(loss <= cfg["reach_loss"])
    fin = loss[np.isfinite(loss)]
    probes = {t: (None if at is not None and t > at else v[0], None if at is not None and t > at else v[1])
              for t, v in out["val"].items()}
    return {
        "init_loss": finite(loss[0]),
        "early_loss": finite(loss[early]) if early < steps else None,
        "final_train_loss": finite(loss[-1]),
        "final_val_loss": None if at is not None else finite(val_loss),
        "final_val_acc": None if at is not None else finite(val_acc),
        "final_train_acc": None if at is not None else finite(out["train_acc"]),
        "peak_loss": float(fin.max()) if fin.size else None,
        "plateau_steps": float(np.argmax(off)) if off.any() else float(len(loss)),
        "steps_to_reach": float(hits[0]) if hits.size else None,
        "diverged_at": None if at is None else float(at),
        "amb_val": val_amb / n_val, "amb_train": out["train_ambiguous"] / n_train,
        "loss_curve": loss, "probes": probes,
    }


def _stat(fn, values: list, key: str):
    """The lab's rule: losses and step counts count a missing value (diverged / never) as +inf; accuracies
    (and the largest finite loss, missing only for a net non-finite from step 0) are taken over the seeds
    that have one. None where nothing finite results."""
    if key in ACCS or key == "peak_loss":
        kept = [v for v in values if v is not None]
        return float(fn(kept)) if kept else None
    return finite(fn([math.inf if v is None else v for v in values]))


def floor_for(key: str, nets: list[dict], rec: float | None) -> float:
    """The smallest tolerance of a number of these reference nets (see the module docstring)."""
    if key in ACCS:
        if any(n.get("stuck") for n in nets):
            return 1.0  # still on the ln 2 plateau: its predictions are logit differences at round-off level
        amb = "amb_val" if key == "final_val_acc" else "amb_train"
        return max(max(n[amb], K * n.get("drift", 0.0)) for n in nets) + 1e-9
    if key in COUNTS:
        return 1.0
    return max(LOSS_RTOL * abs(rec or 0.0) + LOSS_ATOL, K * max(n.get("drift", 0.0) for n in nets))


# A loss beyond BLOWN nats says only "the net blew up": two such values agree whatever their digits (a net at
# 1e13 or 1.5e13 is the same finding; float32 round-off decides the digits).
BLOWN = 1e6
# Float32 round-off (2^-23 relative) times a learning rate >= 1 / 2^-23 moves a weight by O(1) in one step: at such a
# learning rate (the lr_overflow breaker, or any --set lr that large) a gradient that is zero in exact arithmetic
# but a few ulps off in another summation order can blow a net up in one code and not in the other. Where either
# side blew up, the number is not reproducible by independent code and is not compared (the arm's settings still
# are: it is rebuilt from the config, and the gate traces the arm's own loop). Such an arm's numbers are compared
# and recorded, but a disagreement is not a finding.
ROUNDOFF_LR = 2.0**23
UNCOMPARED = 1e300  # the tolerance of such a number: any value agrees (finite, so the record stays plain JSON)


def _blown(v: Any) -> bool:
    return v is None or abs(v) > BLOWN


def judge(reported: Any, copies: list, floor: float, chaotic: bool = False) -> tuple[bool, float, float | None]:
    """(ok, tol, recomputed) of a reported value against the reference (copies[0]) and its twins. ``chaotic``:
    the arm's learning rate amplifies round-off past float32 (ROUNDOFF_LR)."""
    rep = finite(reported)
    vals = [finite(v) for v in copies]
    rec = vals[0]
    if rep is not None and rec is not None and abs(rep) > BLOWN and abs(rec) > BLOWN:
        return True, UNCOMPARED, rec  # both blew up
    if chaotic:  # round-off decides (see ROUNDOFF_LR): compared as below, but a disagreement is not a finding
        ok, tol, rec = judge(reported, copies, floor)
        return (ok, tol, rec) if ok else (True, UNCOMPARED, rec)
    fin = [v for v in vals if v is not None]
    if not fin:
        return rep is None, floor, rec
    if len(fin) == len(vals):
        tol = max(floor, K * max(abs(v - rec) for v in fin))
        return rep is not None and abs(rep - rec) <= tol, tol, rec
    tol = max(floor, K * (max(fin) - min(fin)))  # chaotic divergence: missing or within the twins' range
    return rep is None or min(fin) - tol <= rep <= max(fin) + tol, tol, rec


class Arm:
    """One trained condition: per seed, the reference net and its twins (copies[c][s])."""

    def __init__(self, key: str, copies: list[list[dict]], plateau_tol: float, lr: float = 0.0):
        self.key, self.copies = key, copies
        self.chaotic = lr >= ROUNDOFF_LR
        for s, net in enumerate(copies[0]):
            # drift: how far round-off-sized perturbations moved the training loss at any step so far. Once a
            # chaotic run (lr 10, unnormalised inputs, a huge init) has moved by that much, any later loss may.
            drift = 0.0
            for twin in (c[s] for c in copies[1:]):
                both = np.isfinite(net["loss_curve"]) & np.isfinite(twin["loss_curve"])
                if both.any():
                    drift = max(drift, float(np.abs(net["loss_curve"][both] - twin["loss_curve"][both]).max()))
            net["drift"] = drift
            final = net["final_train_loss"]
            net["stuck"] = final is not None and abs(final - LN2) <= plateau_tol * LN2

    def stat(self, key: str, which: str, c: int):
        fn = {"median": np.median, "min": np.min, "max": np.max}[which]
        return _stat(fn, [n[key] for n in self.copies[c]], key)

    def judge_stat(self, reported: Any, key: str, which: str) -> tuple[bool, float, float | None]:
        copies = [self.stat(key, which, c) for c in range(len(self.copies))]
        nets = self.copies[0]
        floor = max(floor_for(key, [n], n[key]) for n in nets)
        return judge(reported, copies, floor, self.chaotic)


def arm_rows(table: str, name: str, arm: Arm, stored: dict, keys: tuple, which=("median", "min", "max"),
             per_seed: tuple = ()) -> list[dict]:
    rows = []
    for key in keys:
        for w in which:
            ok, tol, rec = arm.judge_stat(stored[w][key], key, w)
            rows.append(row(table, name, f"{NAMES[key]} ({w} over seeds)", stored[w][key], rec, tol, ok))
    for key in per_seed:
        values = stored["diverged_at"] if key == "diverged_at" else stored[key]
        worst = None
        for s, rep in enumerate(values):
            copies = [arm.copies[c][s][key] for c in range(len(arm.copies))]
            ok, tol, rec = judge(rep, copies, floor_for(key, [arm.copies[0][s]], arm.copies[0][s][key]), arm.chaotic)
            d = abs(finite(rep) - rec) / tol if finite(rep) is not None and rec is not None and tol > 0 else 0.0
            score = (not ok, d)
            if worst is None or score > worst[0]:
                worst = (score, s, rep, rec, tol, ok)
        if len(values) != len(arm.copies[0]):
            rows.append(row(table, name, f"{NAMES[key]}: {len(values)} seeds stored, {len(arm.copies[0])} trained",
                            len(values), len(arm.copies[0]), 0.0, False))
        elif worst is not None:
            _, s, rep, rec, tol, ok = worst
            rows.append(row(table, name, f"{NAMES[key]}, every seed (worst: seed index {s})", rep, rec, tol, ok))
    return rows


def curve_rows(table: str, name: str, arm: Arm, stored: dict) -> list[dict]:
    """The training-loss curve's median at every stored step and the validation loss at the probed steps."""
    rows = []
    curve = stored["curve"]
    steps = curve["steps"]
    meds = []
    for c in range(len(arm.copies)):  # the band's median: over the seeds still running at that step (nanmedian)
        stack = np.stack([n["loss_curve"] for n in arm.copies[c]])[:, steps]
        alive = ~np.isnan(stack)
        meds.append([float(np.median(stack[alive[:, i], i])) if alive[:, i].any() else None for i in range(len(steps))])
    worst = None
    for i, t in enumerate(steps):
        rep = curve["median"][i]
        rec_vals = [m[i] for m in meds]
        floor = floor_for("final_train_loss", arm.copies[0], finite(rec_vals[0]))
        ok, tol, rec = judge(rep, rec_vals, floor, arm.chaotic)
        d = abs(finite(rep) - rec) / tol if ok and math.isfinite(tol) and finite(rep) is not None and rec is not None else math.inf
        if not ok or worst is None or d > worst[0]:
            worst = (d if ok else math.inf, t, rep, rec, tol, ok)
        if not ok:
            break
    if worst:
        _, t, rep, rec, tol, ok = worst
        rows.append(row(table, name, f"median training loss at step {t} (worst of {len(steps)} curve points)",
                        rep, rec, tol, ok))
    vc = stored["val_curve"]
    for t in arm.copies[0][0]["probes"]:
        if t not in vc["steps"]:
            continue
        i = vc["steps"].index(t)
        copies = []
        for c in range(len(arm.copies)):
            vals = [n["probes"][t][0] for n in arm.copies[c]]
            kept = [v for v in vals if v is not None]
            copies.append(float(np.median(kept)) if kept else None)
        floor = floor_for("final_val_loss", arm.copies[0], copies[0])
        ok, tol, rec = judge(vc["median"][i], copies, floor, arm.chaotic)
        rows.append(row(table, name, f"median validation loss after {t} updates", vc["median"][i], rec, tol, ok))
    return rows


# ---------------------------------------------------------------------------------------------------------
# Picks, by the criteria stated in ShallowInitConfig


def criteria_rows(sweep_meds: list[dict], n_div: list[int], sigmas: list[float]) -> list[dict]:
    """The values the pick criteria read, per sigma; a missing loss (diverged) is +inf, as in the medians."""
    def loss(v):
        v = finite(v)
        return math.inf if v is None else v

    rows = []
    for sigma, med, k in zip(sigmas, sweep_meds, n_div):
        rows.append({"sigma": sigma, "plateau": med["plateau_steps"], "acc": finite(med["final_val_acc"]),
                     "init_ratio": loss(med["init_loss"]) / LN2, "val_loss": loss(med["final_val_loss"]),
                     "train_loss": loss(med["final_train_loss"]), "n_diverged": k})
    return rows

def derive_picks(rows: list[dict], cfg: dict) -> dict:
    """slow: median plateau >= slow_min_plateau x steps, median validation accuracy >= slow_min_acc, no
    diverged seed, the longest plateau (smaller sigma on a tie); good: plateau below that, median loss at
    init within init_loss_tol of ln 2, no diverged seed, the lowest median final validation loss; large:
    loss at init > large_init_factor ln 2, final validation loss >= large_val_factor x the good one's (the
    sweep minimum's without a good pick), no diverged seed, final training loss < ln 2, the smallest sigma."""
    min_plateau = cfg["slow_min_plateau"] * cfg["steps"]
    ok = [r for r in rows if r["n_diverged"] == 0]
    slow_c = [r for r in ok if r["plateau"] >= min_plateau and r["acc"] is not None and r["acc"] >= cfg["slow_min_acc"]]
    good_c = [r for r in ok if r["plateau"] < min_plateau and abs(r["init_ratio"] - 1) <= cfg["init_loss_tol"]]
    slow = max(slow_c, key=lambda r: (r["plateau"], -r["sigma"])) if slow_c else None
    good = min(good_c, key=lambda r: r["val_loss"]) if good_c else None
    ref = good["val_loss"] if good else min(r["val_loss"] for r in rows)
    large_c = [r for r in ok if r["init_ratio"] > cfg["large_init_factor"]
               and r["val_loss"] >= cfg["large_val_factor"] * ref and r["train_loss"] < LN2]
    large = min(large_c, key=lambda r: r["sigma"]) if large_c else None
    return {"slow": slow and slow["sigma"], "good": good and good["sigma"], "large": large and large["sigma"],
            "ref": ref}


# ---------------------------------------------------------------------------------------------------------


def _data_rows(m: dict, cfg: dict, raw_tr, y_tr, raw_va, y_va, x_tr, x_va, mean, std) -> list[dict]:
    d = m["data"]
    rows = []
    for i in range(2):
        rows.append(row(T_DATA, "training statistics", f"mean of feature {i}", d["mean"][i], float(mean[i]), 1e-5))
        rows.append(row(T_DATA, "training statistics", f"std of feature {i}", d["std"][i], float(std[i]), 1e-5))
    # stored rounded to 4 decimals: 5e-5 of rounding plus float32 round-off
    for name, stored, mine in (("training points, raw", d["train_raw"], raw_tr), ("training points, normalised",
                               d["train_norm"], x_tr), ("validation points shown, raw", d["val_raw"], raw_va),
                               ("validation points shown, normalised", d["val_norm"], x_va)):
        stored = np.asarray(stored, dtype=float)
        n = len(stored)
        if stored.shape != (n, 2) or n > len(mine) or n == 0:
            rows.append(row(T_DATA, name, f"number of points stored ({n})", n, len(mine), 0.0, False))
            continue
        diff = float(np.abs(stored - mine[:n].double().numpy()).max())
        rows.append(row(T_DATA, name, f"largest coordinate difference over {n} points", diff, 0.0, 1e-4))
    for name, stored, mine in (("training labels", d["train_labels"], y_tr), ("validation labels shown",
                                                                             d["val_labels"], y_va)):
        n = len(stored)
        wrong = int((np.asarray(stored) != mine[:n].numpy()).sum()) if 0 < n <= len(mine) else n or 1
        rows.append(row(T_DATA, name, f"labels differing from the regenerated ones, of {n}", wrong, 0, 0.0))
    return rows


def audit(result: dict, device: torch.device) -> list[dict]:
    """Recompute Part 1's tables; one row per number compared (see the module docstring)."""
    rows: list[dict] = []
    try:
        _audit(result, device, rows)
    except STRUCTURE as exc:  # a shape no section expected: the rows so far, and one failed row saying where
        rows.append(broken(T_SWEEP, "results", exc))
    return rows


def _audit(result: dict, device: torch.device, rows: list[dict]) -> None:
    try:
        cfg, m = result["config"], result["metrics"]
        seeds = [cfg["seed"] + k for k in range(cfg["n_seeds"])]
        widths = [2, *cfg["hidden"], 2]
        raw_tr, y_tr, raw_va, y_va = rings(cfg["n_train"], cfg["n_val"], cfg["seed"])
        x_tr, x_va, mean, std = standardise(raw_tr, raw_va)
    except STRUCTURE as exc:
        rows.append(broken(T_DATA, "config", exc))
        return
    try:
        rows += _data_rows(m, cfg, raw_tr, y_tr, raw_va, y_va, x_tr, x_va, mean, std)
    except STRUCTURE as exc:
        rows.append(broken(T_DATA, "metrics.data", exc))

    sigmas = sigma_grid(cfg)
    try:
        stored_sigmas = [e["sigma"] for e in m["sweep"]]
        rows.append(row(T_SWEEP, "all", "sigmas of the sweep differ from the config's grid (count)",
                        sum(a != b for a, b in zip(stored_sigmas, sigmas)) + abs(len(stored_sigmas) - len(sigmas)),
                        0, 0.0))
        stored_rows = criteria_rows([e["median"] for e in m["sweep"]], [e["n_diverged"] for e in m["sweep"]],
                                    stored_sigmas)
        from_stored = derive_picks(stored_rows, cfg)
    except STRUCTURE as exc:
        rows.append(broken(T_SWEEP, "metrics.sweep", exc))
        return
    base = f"normal:{from_stored['good']:.4g}" if from_stored["good"] is not None else "glorot"
    try:
        rows.append(row(T_SCALING, "all arms", "base init of the scaling arms and breakers (the good pick's)",
                        m["base_init"], base, 0.0))
    except STRUCTURE as exc:
        rows.append(broken(T_SCALING, "metrics.base_init", exc))

    # Every net the tables rest on, as (key, init, lr, x, y, x_val, bias)
    groups = [(f"normal:{s:.4g}", f"normal:{s:.4g}", cfg["lr"], x_tr, y_tr, x_va, True) for s in sigmas]
    groups.append(("glorot", "glorot", cfg["lr"], x_tr, y_tr, x_va, True))
    groups.append(("raw", base, cfg["lr"], raw_tr, y_tr, raw_va, True))
    groups += [(f"x{f:g}", base, cfg["lr"], x_tr * f, y_tr, x_va * f, True) for f in cfg["scale_factors"]]
    small = cfg["small_data_scale"]
    shuffled = y_tr[torch.as_tensor(np.random.default_rng([cfg["seed"], 1]).permutation(cfg["n_train"]))]
    groups += [
        ("zeros", "zeros", cfg["lr"], x_tr, y_tr, x_va, True),
        ("lr_big", base, cfg["lr_big"], x_tr, y_tr, x_va, True),
        ("lr_overflow", base, cfg["lr_overflow"], x_tr, y_tr, x_va, True),
        ("no_bias", base, cfg["lr"], x_tr, y_tr, x_va, False),
        ("small_data_big_lr", base, cfg["small_data_lr"], x_tr * small, y_tr, x_va * small, True),
        ("shuffled", base, cfg["lr"], x_tr, shuffled, x_va, True),
    ]
    members, index = [], []
    for g, (key, init, lr, x, y, xv, bias) in enumerate(groups):
        for s, seed in enumerate(seeds):
            w0 = draw_weights(widths, init, seed)
            for c in range(TWINS + 1):
                w = w0
                if c:
                    gen = torch.Generator().manual_seed(7919 * c + s)
                    w = [wi * (1 + PERTURB * torch.randn(wi.shape, generator=gen)) for wi in w0]
                members.append({"weights": w, "bias": bias, "lr": lr, "x": x, "y": y, "x_val": xv, "y_val": y_va})
                index.append((g, s, c))
    probes = _probe_steps(m, cfg)
    outs = train_members(members, cfg["steps"], device, probe_steps=probes)
    nets = [net_numbers(o, cfg, cfg["n_val"], cfg["n_train"]) for o in outs]
    arms: dict[str, Arm] = {}
    for g, (key, _init, lr, *_) in enumerate(groups):
        copies = [[None] * len(seeds) for _ in range(TWINS + 1)]
        for (gi, s, c), n in zip(index, nets):
            if gi == g:
                copies[c][s] = n
        arms[key] = Arm(key, copies, cfg["plateau_tol"], lr)

    rows += _sweep_rows(m, cfg, sigmas, arms, from_stored)
    rows += _pick_rows(m, cfg, sigmas, arms, from_stored)
    inputs = {key: float(x.std(0).mean()) for key, _, _, x, *_ in groups}  # "input std": mean per-feature std
    rows += _arm_table_rows(m, cfg, arms, from_stored, inputs)


def _probe_steps(m: dict, cfg: dict) -> list[int]:
    """Two stored validation points besides the final one: the first after one update, and the one nearest
    early_step (where the loss still moves: an off-by-one in when the validation set is scored shows)."""
    try:
        steps = [t for t in m["eval_steps"] if 0 < t < cfg["steps"]]
    except (KeyError, TypeError):
        return []
    if not steps:
        return []
    return sorted({steps[0], min(steps, key=lambda t: abs(t - cfg["early_step"]))})


def _sweep_rows(m: dict, cfg: dict, sigmas: list[float], arms: dict[str, Arm], from_stored: dict) -> list[dict]:
    rows = []
    try:
        seeds = [cfg["seed"] + k for k in range(cfg["n_seeds"])]
        rows.append(row(T_SWEEP, "all", "model seeds (seed + k, k < n_seeds)", str(m["seeds"]), str(seeds), 0.0))
        # the reference of the x column: the good pick's median final validation loss (the sweep minimum's)
        good = from_stored["good"]
        ref_arm = arms[f"normal:{good:.4g}"] if good is not None else None
        ref_copies = ([ref_arm.stat("final_val_loss", "median", c) for c in range(len(ref_arm.copies))]
                      if ref_arm is not None else None)
        crit = m["picks"]["criteria_table"]
        for e, sigma, cr in zip(m["sweep"], sigmas, crit):
            arm = arms[f"normal:{sigma:.4g}"]
            name = f"sigma {sigma:.4g}"
            rows += arm_rows(T_SWEEP, name, arm, e, ("init_loss", "plateau_steps", "steps_to_reach",
                                                     "final_train_loss", "final_val_loss", "final_val_acc"),
                             which=("median",), per_seed=("init_loss", "final_train_loss", "final_val_loss",
                                                          "final_val_acc", "final_train_acc", "diverged_at"))
            copies = [sum(n["diverged_at"] is not None for n in arm.copies[c]) for c in range(len(arm.copies))]
            ok, tol, rec = judge(e["n_diverged"], copies, 0.0)
            if arm.chaotic and not ok:  # round-off decides which seeds blow up at such a learning rate
                ok, tol = True, UNCOMPARED
            rows.append(row(T_SWEEP, name, "seeds diverged", e["n_diverged"], rec, tol, ok))
            # the criteria columns as the picks read them
            for key, med_key in (("plateau", "plateau_steps"), ("acc", "final_val_acc"), ("val_loss", "final_val_loss"),
                                 ("train_loss", "final_train_loss")):
                ok, tol, rec = arm.judge_stat(cr[key], med_key, "median")
                rows.append(row(T_SWEEP, name, f"criteria column '{key}'", cr[key], rec, tol, ok))
            if ref_copies is not None:  # "x good's val loss": the median final validation loss / the reference's
                num = [arm.stat("final_val_loss", "median", c) for c in range(len(arm.copies))]
                ratios = [n / r if n is not None and r not in (None, 0) else None for n, r in zip(num, ref_copies)]
                _, tol_num, _ = arm.judge_stat(num[0], "final_val_loss", "median")
                _, tol_ref, _ = ref_arm.judge_stat(ref_copies[0], "final_val_loss", "median")
                floor = (abs(ratios[0]) * (tol_num / abs(num[0]) + tol_ref / abs(ref_copies[0]))
                         if ratios[0] is not None and num[0] else 0.0)
                ok, tol, rec = judge(cr["val_ratio"], ratios, floor)
                rows.append(row(T_SWEEP, name, "final validation loss / the reference's (x column)", cr["val_ratio"],
                                rec, tol, ok))
            ok, tol, rec = arm.judge_stat(None if cr["init_ratio"] is None else cr["init_ratio"] * LN2, "init_loss",
                                          "median")
            rows.append(row(T_SWEEP, name, "loss at init / ln 2", cr["init_ratio"], None if rec is None else rec / LN2,
                            tol / LN2, ok))
    except STRUCTURE as exc:
        rows.append(broken(T_SWEEP, "metrics.sweep / picks.criteria_table", exc))
    try:
        glorot = [math.sqrt(2.0 / (a + b)) for a, b in zip([2, *cfg["hidden"]], [*cfg["hidden"], 2])]
        worst = max(abs(x - y) for x, y in zip(m["glorot_layer_std"], glorot))
        rows.append(row(T_SWEEPFIG, "Glorot", "per-layer weight std sqrt(2 / (in + out)), largest difference",
                        worst + (0.0 if len(m["glorot_layer_std"]) == len(glorot) else math.inf), 0.0, 1e-12))
    except STRUCTURE as exc:
        rows.append(broken(T_SWEEPFIG, "metrics.glorot_layer_std", exc))
    return rows


def _pick_rows(m: dict, cfg: dict, sigmas: list[float], arms: dict[str, Arm], from_stored: dict) -> list[dict]:
    rows = []
    try:
        picks = m["picks"]
        recomputed = []
        for c in range(TWINS + 1):
            meds = [{k: arms[f"normal:{s:.4g}"].stat(k, "median", c) for k in ("init_loss", "plateau_steps",
                    "final_val_acc", "final_val_loss", "final_train_loss")} for s in sigmas]
            n_div = [sum(n["diverged_at"] is not None for n in arms[f"normal:{s:.4g}"].copies[c]) for s in sigmas]
            recomputed.append(derive_picks(criteria_rows(meds, n_div, sigmas), cfg))
        for name in ("slow", "good", "large"):
            stored = picks[name]["sigma"]
            rows.append(row(T_PICKS, name, "sigma by the stated criteria applied to the stored sweep medians",
                            stored, from_stored[name], 0.0, stored == from_stored[name]))
            seen = {r[name] for r in recomputed}  # a pick that flips between twins is within round-off of a threshold
            rows.append(row(T_PICKS, name, "sigma by the stated criteria applied to the recomputed sweep", stored,
                            recomputed[0][name], 0.0, stored in seen))
            if stored is not None and picks[name].get("measured"):
                arm = arms[f"normal:{stored:.4g}"]
                meas = picks[name]["measured"]
                ok, tol, rec = arm.judge_stat(meas["val_loss"], "final_val_loss", "median")
                rows.append(row(T_PICKS, name, "measured: final validation loss", meas["val_loss"], rec, tol, ok))
        ref_copies = [r["ref"] for r in recomputed]
        ok, tol, rec = judge(picks["reference_val_loss"], ref_copies,
                             floor_for("final_val_loss", arms[f"normal:{from_stored['good']:.4g}"].copies[0]
                                       if from_stored["good"] is not None
                                       else [n for sg in sigmas for n in arms[f"normal:{sg:.4g}"].copies[0]],
                                       ref_copies[0]))
        rows.append(row(T_PICKS, "all", "reference validation loss (the good pick's; the x column divides by it)",
                        picks["reference_val_loss"], rec, tol, ok))
        rows.append(row(T_PICKS, "all", "reference validation loss from the stored sweep medians",
                        picks["reference_val_loss"], from_stored["ref"], 1e-12))
    except STRUCTURE as exc:
        rows.append(broken(T_PICKS, "metrics.picks", exc))
    return rows


TABLE_KEYS = ("init_loss", "early_loss", "final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc")


def _arm_table_rows(m: dict, cfg: dict, arms: dict[str, Arm], from_stored: dict, inputs: dict) -> list[dict]:
    rows = []
    try:
        init_arms = m["init_arms"]
        expected = [k for k in ("slow", "good", "large") if from_stored[k] is not None] + ["glorot"]
        rows.append(row(T_INIT, "all", f"arms present ({', '.join(expected)})", ", ".join(init_arms),
                        ", ".join(expected), 0.0, set(init_arms) == set(expected)))
        for key in expected:
            if key not in init_arms:
                continue
            stored = init_arms[key]
            arm = arms["glorot" if key == "glorot" else f"normal:{from_stored[key]:.4g}"]
            rows += arm_rows(T_INIT, stored.get("label", key), arm, stored, TABLE_KEYS)
            rows += arm_rows(T_INIT, stored.get("label", key), arm, stored, ("steps_to_reach",), which=("median",))
            rows += curve_rows(T_CURVES, stored.get("label", key), arm, stored)
            # the decision-boundary figure's net: the seed with the median final validation loss (lower median)
            copies = []
            for c in range(len(arm.copies)):
                losses = [math.inf if n["final_val_loss"] is None else n["final_val_loss"] for n in arm.copies[c]]
                order = np.argsort(np.asarray(losses), kind="stable")
                copies.append(float(cfg["seed"] + int(order[(len(order) - 1) // 2])))
            ok, tol, rec = judge(stored["grid"]["seed"], copies, 0.0)
            rows.append(row(T_BOUNDARY, stored.get("label", key), "representative seed (median final validation loss)",
                            stored["grid"]["seed"], rec, tol, ok or stored["grid"]["seed"] in copies))
    except STRUCTURE as exc:
        rows.append(broken(T_INIT, "metrics.init_arms", exc))
    try:
        scaling = m["scaling"]
        expected = ["raw"] + [f"x{f:g}" for f in cfg["scale_factors"]]
        rows.append(row(T_SCALING, "all", f"arms present ({', '.join(expected)})", ", ".join(scaling),
                        ", ".join(expected), 0.0, list(scaling) == expected))
        for key in expected:
            if key not in scaling:
                continue
            stored, arm = scaling[key], arms[key]
            x = inputs[key]
            rows.append(row(T_SCALING, stored.get("label", key), "input std (mean over features)",
                            stored["input_std"], x, 1e-5 * max(1.0, abs(x))))
            rows += arm_rows(T_SCALING, stored.get("label", key), arm, stored, TABLE_KEYS,
                             per_seed=("final_val_loss", "final_val_acc"))
            rows += arm_rows(T_SCALING, stored.get("label", key), arm, stored, ("steps_to_reach",), which=("median",))
            rows += curve_rows(T_SCALING, stored.get("label", key), arm, stored)
    except STRUCTURE as exc:
        rows.append(broken(T_SCALING, "metrics.scaling", exc))
    try:
        breakers = m["breakers"]
        rows.append(row(T_BREAKERS, "all", f"arms present ({', '.join(BREAKERS)})", ", ".join(breakers),
                        ", ".join(BREAKERS), 0.0, list(breakers) == list(BREAKERS)))
        for key in BREAKERS:
            if key not in breakers:
                continue
            stored, arm = breakers[key], arms[key]
            name = stored.get("label", key)
            rows += arm_rows(T_BREAKERS, name, arm, stored, ("final_train_loss", "final_val_acc"),
                             per_seed=("diverged_at", "final_train_loss", "final_val_acc"))
            # what the story column is chosen by
            rows += arm_rows(T_BREAKERS, name, arm, stored, ("init_loss", "early_loss", "peak_loss", "plateau_steps"),
                             which=("median",))
            copies = [sum(n["diverged_at"] is not None for n in arm.copies[c]) for c in range(len(arm.copies))]
            ok, tol, rec = judge(stored["n_diverged"], copies, 0.0)
            if arm.chaotic and not ok:  # round-off decides which seeds blow up at such a learning rate
                ok, tol = True, UNCOMPARED
            rows.append(row(T_BREAKERS, name, "seeds diverged", stored["n_diverged"], rec, tol, ok))
    except STRUCTURE as exc:
        rows.append(broken(T_BREAKERS, "metrics.breakers", exc))
    return rows


__all__ = ["audit", "derive_picks"]
