"""Karpathy-recipe sanity checks as pure functions returning CheckResult (they never assert).

    result = check_init_loss(model, x, y)   # CheckResult(name, passed, measured, expected, detail)

``gate_checks(device)`` runs them on the default configurations of the lab; ``checks/`` wraps them in
pytest and ``make report`` refuses to render when one fails. Each check exists to catch one bug, and
tests/test_recipe.py feeds it that bug.
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lab.models import activation_stats
from lab.results import CheckResult
from lab.train import train_step

INIT_LOSS_REL_TOL = 0.15  # loss at init within 15 % of ln(C): logits near zero, no confident guess
OVERFIT_MAX_LOSS = 0.05  # "near zero" for a handful of examples
ACTIVATION_MAX_RATIO = 4.0  # per-layer std of |activation| may drift by at most 4x over the whole depth
NORMALIZED_TOL = 0.05  # |mean| and |std - 1| of normalised training inputs


def check_init_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int | None = None,
    rel_tol: float = INIT_LOSS_REL_TOL,
    name: str = "loss at init ~ ln(C)",
    scope: str = "gate",
) -> CheckResult:
    """Untrained net: mean cross-entropy ~ -log(1/C). Far above it, the init is confidently wrong."""
    n_classes = n_classes or int(y.max()) + 1
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = float(F.cross_entropy(logits, y))
    model.train(was_training)
    expected = math.log(n_classes)
    tol = rel_tol * expected
    passed = math.isfinite(loss) and abs(loss - expected) <= tol
    ratio = loss / expected if math.isfinite(loss) else float("inf")
    detail = (
        f"loss {loss:.4g} is {ratio:.3g}x ln({n_classes}); logit std {float(logits.std()):.3g}"
        + ("" if passed else ": the init makes confident random guesses (scale the weights down)")
    )
    return CheckResult(name, passed, f"{loss:.4g}", f"{expected:.4g} +/- {tol:.3g}", detail, scope)


def check_overfit_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int = 500,
    lr: float = 1e-2,
    max_loss: float = OVERFIT_MAX_LOSS,
    name: str = "overfit one batch",
    scope: str = "gate",
    step: Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor], object] = train_step,
) -> CheckResult:
    """A few examples must be driven to ~0 loss and 100 % accuracy; a net that cannot learn fails.

    Regularisation off while proving capacity, as the recipe says: pass a net without dropout (the model is
    put in eval mode; a ``step`` from an experiment may switch it to train mode, which is then the same net).
    ``step(model, optimizer, x, y)``: the experiment's own training pass over (x, y). The model is trained
    in place: pass a fresh copy.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    expected = f"loss <= {max_loss:g}, acc = 100 % within {steps} steps"
    if not params:
        return CheckResult(name, False, "no trainable parameters", expected, "every parameter is frozen", scope)
    optimizer = torch.optim.Adam(params, lr=lr)
    model.eval()
    try:
        for _ in range(steps):
            step(model, optimizer, x, y)
    except RuntimeError as exc:  # e.g. a detached graph: "element 0 of tensors does not require grad"
        return CheckResult(name, False, "backward failed", expected, f"cannot backpropagate: {exc}".splitlines()[0], scope)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        final = float(F.cross_entropy(logits, y))
        acc = float((logits.argmax(1) == y).float().mean())
    passed = final <= max_loss and acc == 1.0
    detail = f"{x.shape[0]} examples, Adam lr {lr:g}, {steps} steps: final loss {final:.3g}, accuracy {100 * acc:.0f} %"
    if not passed:
        detail += ": the net cannot fit a handful of points (frozen/detached layer, wrong labels, bad loss?)"
    return CheckResult(name, passed, f"loss {final:.3g}, acc {100 * acc:.0f} %", expected, detail, scope)


def check_eval_determinism(
    model: nn.Module,
    x: torch.Tensor,
    expect_train_stochastic: bool,
    name: str = "eval-mode determinism",
    scope: str = "gate",
) -> CheckResult:
    """Two eval passes must be identical; with dropout, two train passes must differ."""
    was_training = model.training
    with torch.no_grad():
        model.eval()
        a, b = model(x), model(x)
        model.train()
        c, d = model(x), model(x)
    model.train(was_training)
    eval_same = torch.equal(a, b)
    train_differ = not torch.equal(c, d)
    passed = eval_same and (train_differ or not expect_train_stochastic)
    measured = f"eval identical: {'yes' if eval_same else 'no'}; train passes differ: {'yes' if train_differ else 'no'}"
    expected = "eval identical" + ("; train passes differ" if expect_train_stochastic else "")
    if not eval_same:
        detail = "eval() does not switch off randomness (dropout ignoring self.training?)"
    elif expect_train_stochastic and not train_differ:
        detail = "dropout has no effect in train mode (p=0 or dropout not applied)"
    else:
        detail = f"max |eval difference| 0, max |train difference| {float((c - d).abs().max()):.3g}"
    return CheckResult(name, passed, measured, expected, detail, scope)


def check_activation_stability(
    model: nn.Module,
    x: torch.Tensor,
    max_ratio: float = ACTIVATION_MAX_RATIO,
    name: str = "stable deep activations",
    scope: str = "gate",
    stats_fn: Callable[[nn.Module, torch.Tensor], dict] = activation_stats,
) -> CheckResult:
    """Per-layer std of |activation| must stay within max_ratio across the whole depth.

    ``stats_fn``: the recorder whose numbers the report shows (an experiment passes its own).
    """
    stds = [float(s) for s in stats_fn(model, x)["std_abs"]]
    if not stds:
        return CheckResult(name, False, "no layers recorded", f"<= {max_ratio:g}",
                           "the activation recorder returned no hidden layers (record= not filled?)", scope)
    lo, hi = min(stds), max(stds)
    ratio = hi / lo if lo > 0 else float("inf")
    passed = math.isfinite(ratio) and ratio <= max_ratio
    per_layer = (stds[-1] / stds[0]) ** (1 / max(len(stds) - 1, 1)) if stds[0] > 0 and stds[-1] > 0 else float("nan")
    detail = f"{len(stds)} layers: std|a| from {stds[0]:.3g} (first) to {stds[-1]:.3g} (last), x{per_layer:.3g} per layer"
    if not passed:
        detail += ": activations explode or vanish with depth (use He init for ReLU)"
    return CheckResult(name, passed, f"max/min = {ratio:.3g}", f"<= {max_ratio:g}", detail, scope)


def check_batch_independence(
    model: nn.Module, x: torch.Tensor, index: int = 0, name: str = "no mixing across the batch", scope: str = "gate"
) -> CheckResult:
    """Gradient of example i's output w.r.t. the inputs must be zero for every other example."""
    was_training = model.training
    model.train()  # train mode is where batch-mixing layers (BatchNorm, bad reshapes) bite
    x = x.detach().clone().requires_grad_(True)
    model(x)[index].sum().backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    grad = x.grad
    others = torch.cat([grad[:index], grad[index + 1 :]])
    leak = float(others.abs().max()) if others.numel() else 0.0
    own = float(grad[index].abs().max())
    passed = leak == 0.0 and own > 0.0
    detail = f"|d out[{index}] / d x[j]| for j != {index}: max {leak:.3g}; own input {own:.3g}"
    if not passed:
        detail += ": " + ("samples mix inside the batch" if leak else "the output ignores its own input")
    return CheckResult(name, passed, f"max leak {leak:.3g}", "0 (and own gradient > 0)", detail, scope)


def check_gradients_reach_all(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str = "every parameter gets a gradient", scope: str = "gate"
) -> CheckResult:
    """After one backward pass every parameter must require grad and receive a non-zero gradient."""
    model.zero_grad(set_to_none=True)
    problems: list[str] = []
    try:
        F.cross_entropy(model(x), y).backward()
    except RuntimeError as exc:
        return CheckResult(name, False, "backward failed", "all non-zero", str(exc).splitlines()[0], scope)
    params = list(model.named_parameters())
    for pname, p in params:
        if not p.requires_grad:
            problems.append(f"{pname} frozen")
        elif p.grad is None:
            problems.append(f"{pname} got no gradient (detached?)")
        elif not bool(p.grad.abs().sum() > 0):
            problems.append(f"{pname} gradient is all zero")
    model.zero_grad(set_to_none=True)
    ok = len(params) - len(problems)
    detail = "; ".join(problems[:3]) if problems else f"all {len(params)} parameter tensors have non-zero gradients"
    return CheckResult(name, not problems, f"{ok}/{len(params)}", f"{len(params)}/{len(params)}", detail, scope)


def check_normalized(
    x: torch.Tensor, tol: float = NORMALIZED_TOL, name: str = "inputs normalised", scope: str = "gate", per_feature: bool = True
) -> CheckResult:
    """Normalised training inputs: mean ~0 and std ~1 (per feature, or over all values)."""
    if per_feature:
        mean, std = x.mean(0), x.std(0)
        worst_mean, worst_std = float(mean.abs().max()), float((std - 1).abs().max())
    else:
        worst_mean, worst_std = abs(float(x.mean())), abs(float(x.std()) - 1)
    passed = worst_mean <= tol and worst_std <= tol
    measured = f"|mean| {worst_mean:.2g}, |std-1| {worst_std:.2g}"
    detail = "normalised with the training statistics" if passed else "inputs are not standardised"
    return CheckResult(name, passed, measured, f"both <= {tol:g}", detail, scope)


def check_disjoint(
    a: torch.Tensor, b: torch.Tensor, name: str = "train/validation disjoint", scope: str = "gate"
) -> CheckResult:
    """No example index may sit in both splits (leakage inflates validation scores)."""
    shared = int(torch.isin(a, b).sum())
    detail = f"{a.numel()} train and {b.numel()} validation indices, {shared} shared"
    return CheckResult(name, shared == 0, f"{shared} shared", "0 shared", detail, scope)


# ---------------------------------------------------------------------------------------------------------
# Checks on an experiment's own pieces (lab.gate feeds them through lab.hooks.GateHooks). Each takes plain
# modules, tensors and callables, so it gates any MLP-like setup, not only this lab's.

NORM_ATOL = 1e-4  # |x - (raw - mean) / std| allowed for float32 round-off of standardised inputs
CLASS_FREQ_BAND = (0.4, 2.5)  # each class's frequency within [0.4, 2.5] x 1/C: present and plausible
LABEL_MARGIN = 0.25  # short training must beat the input-free baseline by 25 accuracy points
INIT_SIGMAS = 6.0  # sampling tolerance of measured init statistics, in standard errors
DROP_SIGMAS = 6.0  # tolerance of a measured dropout rate, in binomial standard errors (+ DROP_ATOL)
DROP_ATOL = 0.005
SCALE_RTOL = 1e-3  # kept units must be scaled by exactly 1 / (1 - p), up to float32 round-off
MEAN_RTOL = 0.03  # train-mode mean |input| over a batch vs eval mode (inverted dropout keeps it)
PATH_NAME = "optimised path agrees with its reference"


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's nn.Linear layers in registration order (the order an MLP applies them)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


class Tap:
    """Forward hooks recording what entered the model, what entered and left each nn.Linear, per call.

        with Tap(model) as tap: model(x)
        tap.model_in[0], tap.ins[layer][0], tap.outs[layer][0]
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.linears = linear_layers(model)
        self.model_in: list[torch.Tensor] = []
        self.ins: list[list[torch.Tensor]] = [[] for _ in self.linears]
        self.outs: list[list[torch.Tensor]] = [[] for _ in self.linears]
        self._handles: list = []

    def __enter__(self) -> "Tap":
        grab = lambda t: t.detach().clone()  # noqa: E731 - clone: in-place dropout must not rewrite what we saw
        self._handles.append(self.model.register_forward_pre_hook(lambda m, args: self.model_in.append(grab(args[0]))))
        for i, layer in enumerate(self.linears):
            self._handles.append(layer.register_forward_pre_hook(lambda m, args, i=i: self.ins[i].append(grab(args[0]))))
            self._handles.append(layer.register_forward_hook(lambda m, args, out, i=i: self.outs[i].append(grab(out))))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()


def _mode(model: nn.Module) -> str:
    return "train" if model.training else "eval"


def _g(value) -> str:
    """A hyperparameter for a message: 0.003 rather than 0.0030000000000000005."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# --- data --------------------------------------------------------------------------------------------------

def check_finite_inputs(tensors: dict[str, torch.Tensor | None], name: str = "inputs finite",
                        scope: str = "gate") -> CheckResult:
    """No NaN or Inf anywhere in the inputs a net will see (a 0/0 in a normalisation, a bad parse)."""
    bad = {k: int((~torch.isfinite(t)).sum()) for k, t in tensors.items() if t is not None and t.is_floating_point()}
    total = sum(t.numel() for t in tensors.values() if t is not None)
    worst = {k: v for k, v in bad.items() if v}
    detail = (f"{total:,} values in {', '.join(bad)}: all finite" if not worst else
              "non-finite values in " + ", ".join(f"{k} ({v:,})" for k, v in worst.items())
              + ": a division by a zero std or a corrupt load; fix the data pipeline before training")
    return CheckResult(name, not worst, f"{sum(bad.values()):,} non-finite", "0 non-finite", detail, scope)


def _row_hashes(x: torch.Tensor) -> list[bytes]:
    rows = x.detach().cpu().contiguous().reshape(x.shape[0], -1).numpy()
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows]


def check_disjoint_content(a: torch.Tensor, b: torch.Tensor, name: str = "train/validation disjoint by content",
                           scope: str = "gate", test: torch.Tensor | None = None) -> CheckResult:
    """No example of b (validation) is byte-for-byte an example of a (training), hashes of whole rows whatever the
    indices say; with ``test``, no test example is a training or validation example either (the test split must
    stay untouched: a split drawn from it, or from an overlapping range, shows here)."""
    seen = set(_row_hashes(a))
    hb = _row_hashes(b)
    shared = sum(h in seen for h in hb)
    detail = f"{len(seen):,} distinct training rows, {len(hb):,} validation rows, {shared:,} identical to a training row"
    problems = []
    if shared:
        problems.append("validation examples leak from the training set (overlapping index ranges?)")
    measured = f"{shared:,} shared"
    if test is not None:
        ht = _row_hashes(test)
        seen_val = set(hb)
        t_train, t_val = sum(h in seen for h in ht), sum(h in seen_val for h in ht)
        detail += f"; of {len(ht):,} test rows, {t_train:,} in training and {t_val:,} in validation"
        measured += f", test: {t_train + t_val:,} shared"
        if t_train or t_val:
            problems.append("test examples appear in training or validation (a split drawn from the test set?); "
                            "the test split must stay untouched")
        shared += t_train + t_val
    if problems:
        detail += ": " + "; ".join(problems) + "; make the splits disjoint"
    return CheckResult(name, shared == 0, measured, "0 shared", detail, scope)


def check_rings_geometry(raw: torch.Tensor, y: torch.Tensor, radii: tuple[float, float], noise: float,
                         center: tuple[float, float], name: str = "data follow the two-rings specification",
                         scope: str = "gate") -> CheckResult:
    """Raw 2-D points against the lab's generator: each class lies on its own ring (distance from ``center``
    within radius +- noise) and fills it (the radial noise spans U(-noise, noise): min and max within a few
    expected gaps of the bounds), the two classes on the two rings, and the points centred on ``center``."""
    xy = raw.detach().double().reshape(raw.shape[0], -1).cpu()
    if xy.shape[1] != 2:
        return CheckResult(name, False, f"{xy.shape[1]}-D inputs", "2-D points", "the data are not 2-D points", scope)
    c = torch.tensor(center, dtype=torch.float64)
    r = (xy - c).pow(2).sum(1).sqrt()
    yy = y.detach().cpu()
    problems, cells, used = [], [], set()
    for k in sorted(set(yy.tolist())):
        rk = r[yy == k]
        n = rk.numel()
        ring = min(radii, key=lambda R: abs(R - float(rk.median())))
        used.add(ring)
        lo, hi = float(rk.min()), float(rk.max())
        gap = max(0.05, 20 * 2 * noise / max(n, 1))  # the expected gap to a bound is 2 noise / (n + 1)
        cells.append(f"class {k}: radius {lo:.2f}-{hi:.2f} (ring {ring:g})")
        if lo < ring - noise - 1e-3 or hi > ring + noise + 1e-3:
            problems.append(f"class {k} has radii {lo:.2f}-{hi:.2f}, outside ring {ring:g} +- {noise:g} (wrong radius "
                            "or noise, or labels not tied to the ring)")
        elif lo > ring - noise + gap or hi < ring + noise - gap:
            problems.append(f"class {k} has radii {lo:.2f}-{hi:.2f}, narrower than ring {ring:g} +- {noise:g} (radial "
                            f"noise drawn from less than U(-{noise:g}, {noise:g})?)")
    if len(used) < len(radii):
        problems.append("the classes do not occupy one ring each (labels not tied to the ring?)")
    shift = float((xy.mean(0) - c).norm())
    shift_tol = 6 * max(radii) / math.sqrt(2 * max(xy.shape[0], 1)) + 0.01
    if shift > shift_tol:
        problems.append(f"points centred {shift:.2f} away from ({center[0]:g}, {center[1]:g}) (wrong centre, or angles "
                        "not uniform over the circle)")
    detail = f"{xy.shape[0]:,} raw points; " + ", ".join(cells) + f"; centroid {shift:.3f} from the centre"
    if problems:
        detail = "; ".join(problems) + f"; see lab.data.two_rings ({detail})"
    return CheckResult(name, not problems, ", ".join(cells), f"radii {radii[0]:g} and {radii[1]:g} +- {noise:g}, "
                       f"centre ({center[0]:g}, {center[1]:g})", detail, scope)


def _standardize_like(raw_train: torch.Tensor, raw: torch.Tensor, per_feature: bool) -> tuple[torch.Tensor, float]:
    """(raw - mean) / std with the statistics recomputed from raw_train (float64), and the tolerance for the
    unbiased/biased std convention (a population std is a choice, not a bug)."""
    rt = raw_train.detach().double().reshape(raw_train.shape[0], -1)
    r = raw.detach().double().reshape(raw.shape[0], -1)
    if per_feature:
        mean, std, n = rt.mean(0), rt.std(0), rt.shape[0]
    else:
        mean, std, n = rt.mean(), rt.std(), rt.numel()
    return (r - mean) / std, math.sqrt(n / max(n - 1, 1)) - 1


def check_normalized_with_train_stats(
    raw_train: torch.Tensor,
    parts: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
    per_feature: bool = True,
    name: str = "validation normalised with the training statistics",
    scope: str = "gate",
    max_rows: int = 2_000,
) -> CheckResult:
    """Every split must be (raw - mean_train) / std_train, with the statistics recomputed from all raw
    training rows. ``parts``: split name -> (as the net sees it, the same rows raw). The first ``max_rows``
    rows of each split are compared: a wrong transform is wrong on every row."""
    worst, where = 0.0, []
    for part, (x, raw) in parts.items():
        if raw is None or x is None:
            continue
        if x.shape[0] != raw.shape[0]:
            where.append(f"{part}: {x.shape[0]} rows but {raw.shape[0]} raw rows")
            worst = math.inf
            continue
        x, raw = x[:max_rows], raw[:max_rows]
        expected, rel = _standardize_like(raw_train, raw, per_feature)
        diff = (x.detach().double().reshape(x.shape[0], -1) - expected).abs()
        tol = NORM_ATOL + 1.01 * rel * float(expected.abs().max())
        err = float(diff.max()) if diff.numel() else 0.0
        if not math.isfinite(err) or err > tol:
            where.append(f"{part} off by up to {err:.3g}")
        worst = max(worst, err) if math.isfinite(err) else math.inf
    detail = (f"{', '.join(parts)} equal (raw - training mean) / training std, "
              f"{'per feature' if per_feature else 'one scalar over all values'}, within {NORM_ATOL:g}")
    if where:
        detail = ("; ".join(where) + ": not standardised with the statistics of the raw training rows (own "
                  "statistics per split, a missing or extra scaling step, or stats from another split); compute mean "
                  "and std once on the training rows and apply them to every split")
    return CheckResult(name, not where, f"max |diff| {worst:.3g}", f"<= {NORM_ATOL:g}", detail, scope)


def check_class_balance(y_train: torch.Tensor, y_val: torch.Tensor, n_classes: int, band: tuple[float, float] = CLASS_FREQ_BAND,
                        name: str = "every class present with a plausible frequency", scope: str = "gate") -> CheckResult:
    """Labels are integers in [0, C); each class holds between band[0]/C and band[1]/C of each split."""
    lo, hi = band[0] / n_classes, band[1] / n_classes
    problems, extremes = [], []
    for part, y in (("train", y_train), ("validation", y_val)):
        y = y.detach().cpu()
        if y.is_floating_point() or y.ndim != 1:
            problems.append(f"{part} labels are {y.dtype} of shape {tuple(y.shape)}, not integer class indices")
            continue
        if y.numel() == 0 or int(y.min()) < 0 or int(y.max()) >= n_classes:
            problems.append(f"{part} labels outside [0, {n_classes})")
            continue
        freq = torch.bincount(y, minlength=n_classes).double() / y.numel()
        extremes.append(f"{part} {100 * float(freq.min()):.1f}-{100 * float(freq.max()):.1f} %")
        missing = [c for c in range(n_classes) if freq[c] == 0]
        odd = [c for c in range(n_classes) if not lo <= float(freq[c]) <= hi and freq[c] > 0]
        if missing:
            problems.append(f"{part} has no example of class {', '.join(map(str, missing))}")
        if odd:
            problems.append(f"{part} class {', '.join(map(str, odd))} at "
                            + ", ".join(f"{100 * float(freq[c]):.1f} %" for c in odd))
    passed = not problems
    detail = f"{n_classes} classes; per-class frequency: {'; '.join(extremes)}"
    if problems:
        detail = "; ".join(problems) + ": labels were remapped, filtered or sliced wrongly; check how y is built"
    return CheckResult(name, passed, "; ".join(extremes) or "n/a", f"each class {100 * lo:.1f}-{100 * hi:.1f} %", detail, scope)


# --- labels ------------------------------------------------------------------------------------------------

def check_labels_learnable(
    fit: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict],
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
    margin: float = LABEL_MARGIN, name: str = "labels aligned with inputs (short training beats input-free baseline)",
    scope: str = "gate",
) -> CheckResult:
    """Karpathy's input-independent baseline: a short training through the experiment's own loop must score
    clearly better on validation with the real inputs than with all inputs zeroed (and than the majority class)."""
    real = fit(x_train, y_train, x_val, y_val)
    zero = fit(torch.zeros_like(x_train), y_train, torch.zeros_like(x_val), y_val)
    counts = torch.bincount(y_val.detach().cpu().long())
    majority = float(counts.max()) / y_val.numel()
    baseline = max(majority, float(zero["acc"]))
    acc = float(real["acc"])
    passed = math.isfinite(acc) and acc >= baseline + margin
    detail = (f"validation accuracy {100 * acc:.1f} % after a short training with the real inputs, "
              f"{100 * float(zero['acc']):.1f} % with inputs zeroed, majority class {100 * majority:.1f} %")
    if not passed:
        detail += (": the net learns nothing beyond the label frequencies. Labels misaligned with their inputs "
                   "(shuffled or shifted labels, x and y indexed differently in the minibatch loop), or a training "
                   "loop that does not learn")
    return CheckResult(name, passed, f"{100 * acc:.1f} % vs {100 * baseline:.1f} %",
                       f">= baseline + {100 * margin:.0f} points", detail, scope)


# --- wiring ------------------------------------------------------------------------------------------------

def check_architecture(model: nn.Module, widths: tuple[int, ...] | list[int], x: torch.Tensor, bias: bool = True,
                       name: str = "architecture as configured", scope: str = "gate") -> CheckResult:
    """Linear widths and parameter count as configured; in eval mode the input reaches the first layer
    unchanged, each next layer gets ReLU of the previous one, and the logits are the last layer's output."""
    widths = [int(w) for w in widths]
    layers = linear_layers(model)
    got = [layers[0].in_features] + [l.out_features for l in layers] if layers else []
    expected_params = sum(a * b + (b if bias else 0) for a, b in zip(widths[:-1], widths[1:]))
    n_params = sum(p.numel() for p in model.parameters())
    problems = []
    if got != widths:
        problems.append(f"layer widths {got} instead of {widths} (a layer dropped, added or mis-sized in the model builder)")
    if n_params != expected_params:
        problems.append(f"{n_params:,} parameters instead of {expected_params:,}")
    if not problems:
        was = model.training
        model.eval()
        with torch.no_grad(), Tap(model) as tap:
            out = model(x)
        model.train(was)
        calls = [len(v) for v in tap.ins]
        if calls != [1] * len(layers):
            problems.append(f"layers called {calls} times in one forward pass (expected once each)")
        else:
            if not torch.equal(tap.ins[0][0], x.detach()):
                problems.append("in eval mode the first layer does not get the input unchanged")
            for i in range(len(layers) - 1):
                if not torch.allclose(tap.ins[i + 1][0], torch.relu(tap.outs[i][0]), atol=1e-6, rtol=1e-5):
                    problems.append(f"layer {i + 2} does not get ReLU of layer {i + 1}'s output (activation missing, "
                                    "wrong or applied to the wrong tensor)")
                    break
            if not torch.allclose(out, tap.outs[-1][0], atol=1e-6, rtol=1e-5):
                problems.append("the logits are not the last layer's output (an activation or dropout on the logits?)")
    detail = (f"widths {got}, {n_params:,} parameters, ReLU between layers, raw logits" if not problems else
              "; ".join(problems) + "; fix the model builder / MLP.forward")
    return CheckResult(name, not problems, f"{got}, {n_params:,} params", f"{widths}, {expected_params:,} params",
                       detail, scope)


def check_layers_matter(model: nn.Module, x: torch.Tensor, name: str = "every layer influences the output",
                        scope: str = "gate") -> CheckResult:
    """Perturbing any layer's weights must change the output (a layer the forward pass skips does not)."""
    layers = linear_layers(model)
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(0)
    dead = []
    with torch.no_grad():
        base = model(x)
        scale = float(base.abs().max()) or 1.0
        for i, layer in enumerate(layers):
            saved = layer.weight.detach().clone()
            noise = torch.randn(saved.shape, generator=gen).to(saved.device)
            layer.weight.add_(0.5 * (float(saved.abs().mean()) or 1.0) * noise)
            change = float((model(x) - base).abs().max()) / scale
            layer.weight.copy_(saved)
            if not change > 1e-6:
                dead.append(i + 1)
    model.train(was)
    detail = (f"perturbing each of the {len(layers)} layers' weights changes the logits" if not dead else
              f"layer{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))} of {len(layers)} do not influence the "
              "output: the forward pass skips or overwrites them; fix the loop over layers in forward()")
    return CheckResult(name, not dead, f"{len(layers) - len(dead)}/{len(layers)} matter",
                       f"{len(layers)}/{len(layers)}", detail, scope)


def measure_dropout(model: nn.Module, run: Callable[[nn.Module], object]) -> list[dict]:
    """Run the experiment's own training pass with taps; per layer: dropped fraction of live units and the
    factor kept units were multiplied by. Layer 0 = the input (vs the batch fed to the model); layer l >= 1 =
    the input of Linear l+1 vs ReLU of Linear l's output, in the same forward call."""
    with Tap(model) as tap:
        run(model)
    n_layers = len(tap.linears)
    stats = []
    for layer in range(n_layers):
        live = dropped = 0
        ratios, sum_in, sum_ref = [], 0.0, 0.0
        n_calls = len(tap.ins[layer])
        for c in range(n_calls):
            got = tap.ins[layer][c]
            ref = tap.model_in[c] if layer == 0 else torch.relu(tap.outs[layer - 1][c])
            if ref.shape != got.shape:
                continue
            alive = ref != 0
            live += int(alive.sum())
            dropped += int((alive & (got == 0)).sum())
            kept = alive & (got != 0)
            if kept.any():
                ratios.append((got[kept] / ref[kept]).double())
            sum_in += float(got.abs().double().sum())
            sum_ref += float(ref.abs().double().sum())
        r = torch.cat(ratios) if ratios else torch.ones(1, dtype=torch.float64)
        stats.append({"layer": layer, "calls": n_calls, "live": live, "rate": dropped / live if live else 0.0,
                      "scale_min": float(r.min()), "scale_max": float(r.max()),
                      "mean_ratio": sum_in / sum_ref if sum_ref > 0 else math.nan})
    return stats[: n_layers]  # the input and each hidden layer: the logits layer's input is the last hidden


def _layer_name(layer: int) -> str:
    return "input" if layer == 0 else f"hidden {layer}"


def check_dropout_rates(model: nn.Module, run: Callable[[nn.Module], object], p_input: float, p_hidden: float,
                        name: str = "dropout active in training at the configured rates", scope: str = "gate") -> CheckResult:
    """The fraction of live units zeroed inside the experiment's own training pass must match the
    configured p on the input and after every hidden layer (binomial tolerance)."""
    stats = measure_dropout(model, run)
    problems, cells = [], []
    if not stats or stats[0]["calls"] == 0:
        return CheckResult(name, False, "no forward pass", f"input {p_input:g}, hidden {p_hidden:g}",
                           "the training pass never called the model", scope)
    for s in stats:
        p = p_input if s["layer"] == 0 else p_hidden
        tol = DROP_SIGMAS * math.sqrt(max(p * (1 - p), 1e-12) / max(s["live"], 1)) + DROP_ATOL
        cells.append(f"{_layer_name(s['layer'])} {s['rate']:.3f}")
        if abs(s["rate"] - p) > tol:
            other = p_hidden if s["layer"] == 0 else p_input
            if s["rate"] <= tol:
                why = "no dropout there (left off in the training loop, model.eval() while training, or skipped)"
            elif abs(s["rate"] - (1 - p)) <= tol:
                why = "it drops 1 - p: keep and drop probabilities swapped"
            elif abs(s["rate"] - other) <= tol:
                why = "the other layer kind's rate: input and hidden rates swapped or passed to the wrong layer"
            else:
                why = "drawn with the wrong probability, or dropout applied twice or misplaced"
            problems.append(f"{_layer_name(s['layer'])} drops {s['rate']:.3f} of its units, configured {p:g}: {why}")
    detail = f"measured in the experiment's training loop over {stats[0]['calls']} minibatch(es): " + ", ".join(cells)
    if problems:
        detail = "; ".join(problems)
    return CheckResult(name, not problems, ", ".join(cells), f"input {p_input:g}, hidden {p_hidden:g}", detail, scope)


def check_dropout_scaling(model: nn.Module, run: Callable[[nn.Module], object], p_input: float, p_hidden: float,
                          name: str = "inverted dropout scaling (train-mode mean matches eval)",
                          scope: str = "gate") -> CheckResult:
    """Kept units must be multiplied by exactly 1 / (1 - p), so the train-mode mean activation equals eval
    mode's: the input layer's mean |input| over the batch within MEAN_RTOL of eval mode."""
    stats = measure_dropout(model, run)
    problems, cells = [], []
    for s in stats:
        p = p_input if s["layer"] == 0 else p_hidden
        want = 1.0 / (1.0 - p)
        cells.append(f"{_layer_name(s['layer'])} x{s['scale_max']:.4g}")
        if abs(s["scale_min"] - want) > SCALE_RTOL * want or abs(s["scale_max"] - want) > SCALE_RTOL * want:
            problems.append(f"{_layer_name(s['layer'])} keeps units scaled by {s['scale_min']:.4g}-{s['scale_max']:.4g} "
                            f"instead of 1/(1-{p:g}) = {want:.4g}")
    if stats and math.isfinite(stats[0]["mean_ratio"]) and abs(stats[0]["mean_ratio"] - 1) > MEAN_RTOL:
        problems.append(f"mean |input| in training is {stats[0]['mean_ratio']:.3f}x eval mode's")
    detail = "kept units scaled by 1/(1-p): " + ", ".join(cells)
    if stats:
        detail += f"; train/eval mean |input| {stats[0]['mean_ratio']:.3f}"
    if problems:
        detail = ("; ".join(problems) + ": the 1/(1-p) rescaling of inverted dropout is missing or wrong, so eval "
                  "mode sees other activation scales than training")
    return CheckResult(name, not problems, ", ".join(cells), "x 1/(1-p) per layer, mean ratio 1", detail, scope)


def check_evaluate(evaluate: Callable[[nn.Module, torch.Tensor, torch.Tensor], dict], model: nn.Module,
                   x: torch.Tensor, y: torch.Tensor, name: str = "evaluate() deterministic, mode-preserving and exact",
                   scope: str = "gate") -> CheckResult:
    """evaluate(model, x, y) must score in eval mode, give the same numbers twice, leave the model in the
    mode it found it, and agree with cross-entropy and argmax recomputed on the eval-mode logits."""
    problems = []
    was = model.training
    model.train()
    a = evaluate(model, x, y)
    if not model.training:
        problems.append("it left a model that was in train mode in eval mode (training would continue without dropout)")
    model.train()
    b = evaluate(model, x, y)
    model.eval()
    c = evaluate(model, x, y)
    if model.training:
        problems.append("it left a model that was in eval mode in train mode")
    with torch.no_grad():
        logits = model(x)
        loss = float(F.cross_entropy(logits, y))
        err = 100.0 * float((logits.argmax(1) != y).double().mean())
    model.train(was)
    keys = ("loss", "error_pct")
    if not all(k in r for r in (a, b, c) for k in keys):
        return CheckResult(name, False, "missing keys", "loss, error_pct", f"evaluate() returned {sorted(a)}", scope)
    if (a["loss"], a["error_pct"]) != (b["loss"], b["error_pct"]):
        problems.append("two calls gave different numbers (dropout still on while scoring: model.eval() missing?)")
    if not math.isclose(a["loss"], c["loss"], rel_tol=1e-6, abs_tol=1e-9) or a["error_pct"] != c["error_pct"]:
        problems.append("train-mode and eval-mode callers got different numbers")
    if not math.isclose(c["loss"], loss, rel_tol=1e-4, abs_tol=1e-6):
        problems.append(f"loss {c['loss']:.6g} but cross-entropy of the eval logits is {loss:.6g}")
    if abs(c["error_pct"] - err) > 1e-6:
        problems.append(f"error {c['error_pct']:.4g} % but argmax of the eval logits errs on {err:.4g} %")
    if "acc" in c and abs(100.0 * (1.0 - c["acc"]) - c["error_pct"]) > 1e-6:
        problems.append(f"acc {c['acc']:.4g} and error {c['error_pct']:.4g} % disagree")
    detail = (f"loss {c['loss']:.4g}, error {c['error_pct']:.3g} % on {x.shape[0]:,} rows, same twice and from "
              "either mode; the model's mode is restored") if not problems else "evaluate(): " + "; ".join(problems)
    return CheckResult(name, not problems, f"loss {c['loss']:.4g}, error {c['error_pct']:.3g} %",
                       f"loss {loss:.4g}, error {err:.3g} %", detail, scope)


def check_split_scores(scores: dict[str, dict], model: nn.Module, splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
                       name: str = "recorded scores belong to their split", scope: str = "gate") -> CheckResult:
    """The loss and error the experiment records for each split must be those of that split (eval mode):
    catches a train/validation mix-up where numbers are assembled for the curves and tables."""
    was = model.training
    model.eval()
    problems, cells = [], []
    with torch.no_grad():
        for split, (x, y) in splits.items():
            logits = model(x)
            loss = float(F.cross_entropy(logits, y))
            err = 100.0 * float((logits.argmax(1) != y).double().mean())
            got = scores.get(split)
            if got is None:
                problems.append(f"no {split} scores recorded")
                continue
            cells.append(f"{split} {got['loss']:.4g} / {got['error_pct']:.3g} %")
            if not math.isclose(got["loss"], loss, rel_tol=1e-4, abs_tol=1e-6) or abs(got["error_pct"] - err) > 1e-6:
                problems.append(f"{split}: recorded loss {got['loss']:.5g}, error {got['error_pct']:.4g} %, but that split "
                                f"gives {loss:.5g} and {err:.4g} %")
    model.train(was)
    detail = "loss / error per split as recorded: " + ", ".join(cells) if not problems else (
        "; ".join(problems) + ": the numbers recorded for the curves and tables are not the split's own (a train/"
        "validation mix-up, or scored in the wrong mode)")
    return CheckResult(name, not problems, ", ".join(cells) or "none", "recomputed per split", detail, scope)


def check_ensemble_reduces_to_eval(
    ensemble: Callable[[nn.Module, torch.Tensor, int, int], torch.Tensor], model_p0: nn.Module, x: torch.Tensor,
    k: int = 3, name: str = "Monte-Carlo ensemble = eval prediction at p = 0", scope: str = "gate",
) -> CheckResult:
    """With dropout probability 0 every ensemble member is the full net: the averaged logits must equal the
    eval-mode logits, and the model's mode must be left as it was."""
    was = model_p0.training
    model_p0.eval()
    with torch.no_grad():
        ref = model_p0(x)
    avg = ensemble(model_p0, x, k, 0)
    mode_ok = not model_p0.training
    model_p0.train(was)
    diff = float((avg - ref).abs().max()) if avg.shape == ref.shape else math.inf
    tol = 1e-4 * max(1.0, float(ref.abs().max()))
    passed = diff <= tol and mode_ok
    detail = f"k = {k} members averaged vs one eval pass over {x.shape[0]:,} rows: max |diff| {diff:.3g}"
    if diff > tol:
        detail += (": the ensemble does not reduce to the plain net without dropout (wrong average, wrong "
                   "scaling of kept units, or a member that is not the trained net)")
    if not mode_ok:
        detail += "; the ensemble left the model in train mode"
    return CheckResult(name, passed, f"max |diff| {diff:.3g}", f"<= {tol:.2g}", detail, scope)


def check_ensemble_stochastic(
    ensemble: Callable[[nn.Module, torch.Tensor, int, int], torch.Tensor], model: nn.Module, x: torch.Tensor,
    name: str = "Monte-Carlo members are random dropout nets, reproducible per mask seed", scope: str = "gate",
) -> CheckResult:
    """With dropout on, one-member ensembles of two mask seeds must differ from each other and from the eval
    prediction (the members really are thinned nets), and the same mask seed must give the same member."""
    was = model.training
    a, again, b = ensemble(model, x, 1, 0), ensemble(model, x, 1, 0), ensemble(model, x, 1, 1)
    model.eval()
    with torch.no_grad():
        ref = model(x)
    model.train(was)
    problems = []
    if torch.equal(a, b):
        problems.append("two mask seeds gave the same member (the mask seed is ignored, or no dropout is drawn)")
    if a.shape == ref.shape and torch.allclose(a, ref, atol=1e-6, rtol=1e-5):
        problems.append("a member equals the eval-mode net (dropout off while sampling: model.train() missing?)")
    if not torch.equal(a, again):
        problems.append("the same mask seed gave different members (masks not drawn from the seeded generator)")
    diff = float((a - b).abs().max()) if a.shape == b.shape else math.inf
    detail = f"max |member(seed 0) - member(seed 1)| {diff:.3g}; same seed identical" if not problems else (
        "; ".join(problems))
    return CheckResult(name, not problems, f"member difference {diff:.3g}", "> 0, same seed = same member", detail, scope)


def check_epoch_coverage(model: nn.Module, optimizer: torch.optim.Optimizer, train_epoch: TrainEpoch,
                         x: torch.Tensor, y: torch.Tensor, name: str = "one epoch feeds every training row once",
                         scope: str = "gate") -> CheckResult:
    """The rows the model receives during one pass of the experiment's loop must be exactly the training
    rows, each once (no row skipped, repeated or cut off by the minibatch slicing)."""
    with Tap(model) as tap:
        train_epoch(model, optimizer, x, y)
    fed = torch.cat([t.reshape(t.shape[0], -1) for t in tap.model_in]) if tap.model_in else x[:0]
    want, got = sorted(_row_hashes(x)), sorted(_row_hashes(fed))
    distinct = len(set(got))
    passed = want == got
    detail = f"{len(got):,} rows fed in {len(tap.model_in)} forward call(s), {distinct:,} distinct, of {len(want):,}"
    if not passed:
        detail += (": the loop skips, repeats or invents rows (minibatch slicing, sampling with replacement, an "
                   "epoch cut short?); iterate over a permutation of all rows")
    return CheckResult(name, passed, f"{len(got):,} fed, {distinct:,} distinct", f"{len(want):,} once each", detail, scope)


TrainEpoch = Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor], object]


# --- optimisation --------------------------------------------------------------------------------------------

def check_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module, expected: dict,
                    name: str = "optimiser as configured, over every parameter", scope: str = "gate") -> CheckResult:
    """Type and hyperparameters as configured; every model parameter in it exactly once, nothing else."""
    problems = []
    kind = type(optimizer).__name__
    if "type" in expected and kind != expected["type"]:
        problems.append(f"{kind} instead of {expected['type']}")
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    for key, want in expected.items():
        if key == "type":
            continue
        got = group.get(key)
        same = got == want if not isinstance(want, float) else (got is not None and math.isclose(got, want, rel_tol=1e-9))
        if not same:
            problems.append(f"{key} {_g(got)} instead of {_g(want)}")
    in_opt = [p for g in optimizer.param_groups for p in g["params"]]
    ids = [id(p) for p in in_opt]
    model_ids = {id(p) for p in model.parameters()}
    missing = sum(1 for p in model.parameters() if id(p) not in set(ids))
    if missing:
        problems.append(f"{missing} parameter tensor(s) of the model are not optimised")
    if len(ids) != len(set(ids)):
        problems.append("a parameter is listed twice")
    if any(i not in model_ids for i in ids):
        problems.append("it optimises tensors that are not the model's (built for another model?)")
    shown = ", ".join(f"{k} {_g(group.get(k))}" for k in expected if k != "type")
    detail = f"{kind}, {shown}, {len(set(ids))} parameter tensors" if not problems else (
        "; ".join(problems) + ": fix the optimiser builder")
    want = ", ".join(f"{k} {_g(v)}" for k, v in expected.items())
    return CheckResult(name, not problems, f"{kind}, {shown}", want, detail, scope)


def _eval_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was = model.training
    model.eval()
    with torch.no_grad():
        loss = float(F.cross_entropy(model(x), y))
    model.train(was)
    return loss


def check_loss_decreases(model: nn.Module, optimizer: torch.optim.Optimizer, train_epoch: TrainEpoch,
                         x: torch.Tensor, y: torch.Tensor, epochs: int, min_drop: float = 0.1,
                         name: str = "loss decreases over the first steps", scope: str = "gate") -> CheckResult:
    """A few passes of the experiment's own loop over a small set must lower its (eval-mode) loss by min_drop."""
    before = _eval_loss(model, x, y)
    for _ in range(epochs):
        train_epoch(model, optimizer, x, y)
    after = _eval_loss(model, x, y)
    passed = math.isfinite(after) and after <= (1 - min_drop) * before
    detail = f"cross-entropy on {x.shape[0]} rows: {before:.4g} before, {after:.4g} after {epochs} pass(es) of the training loop"
    if not passed:
        detail += (f" (needs a {100 * min_drop:.0f} % drop): the loop does not descend the loss (sign flipped, step "
                   "skipped, gradients zeroed before the step, learning rate 0 or far too large?)")
    return CheckResult(name, passed, f"{before:.4g} -> {after:.4g}", f"<= {1 - min_drop:g} x start", detail, scope)


def check_params_update(model: nn.Module, optimizer: torch.optim.Optimizer, train_epoch: TrainEpoch,
                        x: torch.Tensor, y: torch.Tensor, name: str = "every parameter tensor updated by one step",
                        scope: str = "gate") -> CheckResult:
    """One step of the experiment's own loop must move every parameter tensor by its gradient (beyond what
    weight decay alone does)."""
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    shrink = 1.0 - float(group.get("lr", 0.0)) * float(group.get("weight_decay", 0.0) or 0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_epoch(model, optimizer, x, y)
    frozen = []
    for n, p in model.named_parameters():
        moved = (p.detach() - before[n] * shrink).abs().max()
        if not float(moved) > 0:
            frozen.append(n)
    n_all = len(before)
    detail = f"all {n_all} parameter tensors moved by their gradient after one step" if not frozen else (
        f"{', '.join(frozen[:4])}{' ...' if len(frozen) > 4 else ''} did not move: not in the optimiser, frozen, "
        "detached from the loss, or gradients cleared between backward() and step()")
    return CheckResult(name, not frozen, f"{n_all - len(frozen)}/{n_all}", f"{n_all}/{n_all}", detail, scope)


def check_finite_training(model: nn.Module, optimizer: torch.optim.Optimizer, train_epoch: TrainEpoch,
                          x: torch.Tensor, y: torch.Tensor, epochs: int, name: str = "no NaN/Inf after a few steps",
                          scope: str = "gate") -> CheckResult:
    """Loss and every parameter stay finite over a few passes of the experiment's own loop."""
    losses = []
    for _ in range(epochs):
        out = train_epoch(model, optimizer, x, y)
        losses.append(float(out) if out is not None else _eval_loss(model, x, y))
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    final = _eval_loss(model, x, y)
    passed = not bad and all(math.isfinite(v) for v in losses) and math.isfinite(final)
    detail = f"{epochs} passes: losses {', '.join(f'{v:.3g}' for v in losses[:6])}; all parameters finite"
    if not passed:
        detail = (f"after {epochs} passes: loss {', '.join(f'{v:.3g}' for v in losses[:6])}; non-finite parameters: "
                  f"{', '.join(bad[:4]) or 'none'}: the update blows up (learning rate, loss computed on logits "
                  "instead of log-probabilities, a division by zero?)")
    return CheckResult(name, passed, f"final loss {final:.3g}", "finite", detail, scope)


def check_step_matches_reference(
    model: nn.Module, optimizer: torch.optim.Optimizer, ref_model: nn.Module, ref_optimizer: torch.optim.Optimizer,
    train_epoch: TrainEpoch, x: torch.Tensor, y: torch.Tensor, steps: int = 2, rtol: float = 1e-4,
    name: str = "training step = zero_grad, cross-entropy, backward, step", scope: str = "gate",
) -> CheckResult:
    """``steps`` passes of the experiment's loop over one batch must move the parameters exactly like the
    textbook step on an identical copy (same optimiser class and settings): catches a missing zero_grad,
    a wrong loss, a doubled or skipped step. Pass models without dropout (nothing random)."""
    model.train()
    ref_model.train()
    for _ in range(steps):
        train_epoch(model, optimizer, x, y)
        ref_optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(ref_model(x), y).backward()
        ref_optimizer.step()
    worst, where = 0.0, ""
    for (n, p), q in zip(model.named_parameters(), ref_model.parameters()):
        diff = float(((p.detach() - q.detach()).abs() / q.detach().abs().clamp_min(1.0)).max())
        if not diff <= worst:
            worst, where = diff, n
    passed = worst <= rtol
    detail = f"after {steps} steps on {x.shape[0]} row(s): max relative parameter difference {worst:.3g}"
    if not passed:
        detail += (f" (largest in {where}): the training step differs from optimizer.zero_grad(); "
                   "F.cross_entropy(model(x), y).backward(); optimizer.step() (gradients accumulate across steps, "
                   "another loss, a doubled or missing step?)")
    return CheckResult(name, passed, f"max rel diff {worst:.3g}", f"<= {rtol:g}", detail, scope)


# --- init ----------------------------------------------------------------------------------------------------

def _kurtosis(v: torch.Tensor) -> float:
    v = v.double()
    c = v - v.mean()
    var = float((c**2).mean())
    return float((c**4).mean()) / var**2 if var > 0 else math.nan


def check_init_statistics(build: Callable[[int], nn.Module], spec: str, n_target: int = 5_000, max_draws: int = 200,
                          name: str = "init matches the configured distribution", scope: str = "gate",
                          expected_std: tuple[float, ...] | None = None, bias: bool | None = None) -> CheckResult:
    """Per layer, weights pooled over seeded draws have mean 0 and the std the init prescribes (within
    INIT_SIGMAS standard errors), the right shape (normal vs uniform by kurtosis), zero biases; the same seed
    gives the same weights and another seed other weights. ``expected_std``: the per-layer std an arm's label
    promises (default: what the spec's rule gives); ``bias``: whether the layers must (True) or must not (False)
    have biases (None: not checked)."""
    from lab.inits import parse_init, weight_std  # local: recipe stays importable without the init table

    parsed = parse_init(spec)
    first = build(0)
    layers = linear_layers(first)
    if not layers:
        return CheckResult(name, False, "no layers", spec, "the builder returned a model without nn.Linear layers", scope)
    per_draw = min(l.weight.numel() for l in layers)
    draws = max(1, min(max_draws, math.ceil(n_target / per_draw)))
    pools: list[list[torch.Tensor]] = [[l.weight.detach().flatten().cpu()] for l in layers]
    bias_max = max((float(l.bias.detach().abs().max()) for l in layers if l.bias is not None), default=0.0)
    for seed in range(1, draws):
        for pool, l in zip(pools, linear_layers(build(seed))):
            pool.append(l.weight.detach().flatten().cpu())
    problems, cells = [], []
    if expected_std is not None and len(expected_std) != len(layers):
        problems.append(f"{len(layers)} layers built, {len(expected_std)} promised")
    if bias is not None and any((l.bias is not None) != bias for l in layers):
        problems.append(f"layers built {'without' if bias else 'with'} biases, the arm promises "
                        f"{'biases' if bias else 'none'}")
    for i, (pool, l) in enumerate(zip(pools, layers)):
        w = torch.cat(pool).double()
        n = w.numel()
        want = (expected_std[i] if expected_std is not None and i < len(expected_std)
                else weight_std(parsed, l.in_features, l.out_features))
        std, mean = float(w.std()), float(w.mean())
        cells.append(f"{std:.3g}")
        if want == 0:
            if float(w.abs().max()) != 0:
                problems.append(f"layer {i + 1} weights are not all zero")
            continue
        if abs(std - want) > INIT_SIGMAS * want / math.sqrt(2 * n) + 1e-7:
            problems.append(f"layer {i + 1} ({l.in_features}->{l.out_features}) weight std {std:.4g}, expected {want:.4g}")
        if abs(mean) > INIT_SIGMAS * want / math.sqrt(n):
            problems.append(f"layer {i + 1} weight mean {mean:.3g}, expected 0")
        shape = {"normal": 3.0, "glorot": 3.0, "he": 3.0, "uniform": 1.8, "glorot_uniform": 1.8, "he_uniform": 1.8}
        if parsed.name in shape and n >= 1000:
            k = _kurtosis(w)
            if abs(k - shape[parsed.name]) > INIT_SIGMAS * math.sqrt(24.0 / n) + 0.05:
                problems.append(f"layer {i + 1} weights have kurtosis {k:.2f}, a {parsed.name} init has "
                                f"{shape[parsed.name]:g} (normal and uniform swapped?)")
    if parsed.name != "torch" and bias_max != 0.0:
        problems.append(f"biases start at up to {bias_max:.3g}, configured zero")
    again = linear_layers(build(0))
    if not all(torch.equal(a.weight, b.weight) for a, b in zip(layers, again)):
        problems.append("the same seed gives different weights (a draw ignores the seeded generator)")
    if parsed.name != "zeros":  # always (even when one draw gave enough weights): a seed that is ignored
        other = linear_layers(build(1))
        if all(torch.equal(a.weight, b.weight) for a, b in zip(layers, other)):
            problems.append("another seed gives the same weights (the seed is not used, or a draw ignores the seeded "
                            "generator)")
    detail = (f"{draws} seeded draw(s); per-layer weight std {', '.join(cells)}; biases zero; reproducible per seed"
              if not problems else "; ".join(problems) + f": the {spec} init is not applied as configured; see lab.inits")
    expected = ", ".join(f"{v:.3g}" for v in (expected_std if expected_std is not None else
                                               [weight_std(parsed, l.in_features, l.out_features) for l in layers]))
    return CheckResult(name, not problems, f"std {', '.join(cells)}", f"std {expected}, bias 0", detail, scope)


def check_activation_record(stats_fn: Callable[[nn.Module, torch.Tensor], dict], model: nn.Module, x: torch.Tensor,
                            name: str = "activation statistics recorded correctly", scope: str = "gate") -> CheckResult:
    """The recorder the report's per-layer figure uses must match mean/std of |ReLU(layer output)| taken
    independently with forward hooks on the nn.Linear layers (eval mode)."""
    stats = stats_fn(model, x)
    was = model.training
    model.eval()
    with torch.no_grad(), Tap(model) as tap:
        model(x)
    model.train(was)
    ref_mean, ref_std = [], []
    for outs in tap.outs[:-1]:
        a = torch.relu(outs[0]).abs()
        std, mean = torch.std_mean(a)
        ref_mean.append(float(mean))
        ref_std.append(float(std))
    got_mean, got_std = [float(v) for v in stats["mean_abs"]], [float(v) for v in stats["std_abs"]]
    problems = []
    if len(got_mean) != len(ref_mean):
        problems.append(f"{len(got_mean)} layers recorded, the net has {len(ref_mean)} hidden layers")
    else:
        for i, (g, r, gs, rs) in enumerate(zip(got_mean, ref_mean, got_std, ref_std)):
            if not (math.isclose(g, r, rel_tol=1e-4, abs_tol=1e-12) and math.isclose(gs, rs, rel_tol=1e-4, abs_tol=1e-12)):
                problems.append(f"layer {i + 1}: recorded mean/std |a| {g:.4g}/{gs:.4g}, hooks see {r:.4g}/{rs:.4g}")
                break
    detail = f"{len(ref_mean)} hidden layers, recorder = hooks within 1e-4" if not problems else (
        "; ".join(problems) + ": the recorder reads the wrong tensor (pre-activation, after dropout, another layer) or "
        "computes the statistics wrongly")
    return CheckResult(name, not problems, f"{len(got_mean)} layers", f"{len(ref_mean)} layers, rel diff <= 1e-4",
                       detail, scope)


def check_paths_agree(run: Callable[[], tuple[torch.Tensor, torch.Tensor]], tol: float, what: str, fix: str = "",
                      name: str = PATH_NAME, scope: str = "gate") -> CheckResult:
    """An optimised path (batched training, thinned networks) against its plain reference on the same inputs."""
    fast, ref = run()
    fast, ref = torch.as_tensor(fast).double().cpu(), torch.as_tensor(ref).double().cpu()
    if fast.shape != ref.shape:
        return CheckResult(name, False, f"shape {tuple(fast.shape)}", f"shape {tuple(ref.shape)}",
                           f"{what}: shapes differ. {fix}", scope)
    same_nan = torch.equal(torch.isnan(fast), torch.isnan(ref))
    ok = ~torch.isnan(ref)
    diff = ((fast - ref).abs() / ref.abs().clamp_min(1.0))[ok]
    worst = float(diff.max()) if diff.numel() else 0.0
    passed = same_nan and math.isfinite(worst) and worst <= tol
    detail = f"{what}: max relative difference {worst:.3g}"
    if not same_nan:
        detail += "; NaN in one path only"
    if not passed:
        detail += f". {fix}"
    return CheckResult(name, passed, f"max rel diff {worst:.3g}", f"<= {tol:g}", detail, scope)



# --- arms (lab.arms): each arm is what its label says ----------------------------------------------------------

def rule_std(init: str, fan_in: int, fan_out: int) -> float:
    """The weight std each init rule gives, from the rules' definitions (independent of lab.inits' table)."""
    name, _, param = init.partition(":")
    if name == "normal":
        return float(param)
    if name == "uniform":
        return float(param) / math.sqrt(3.0)
    if name in ("glorot", "glorot_uniform"):
        return math.sqrt(2.0 / (fan_in + fan_out))
    if name in ("he", "he_uniform"):
        return math.sqrt(2.0 / fan_in)
    if name == "zeros":
        return 0.0
    return math.nan


def _same(got, want) -> bool:
    if isinstance(want, (tuple, list)):
        return isinstance(got, (tuple, list)) and len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want))
    if isinstance(want, float) or isinstance(got, float):
        try:
            return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return got == want


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return _g(value)


def check_arm_promises(arms: list, expected: list[dict], widths: tuple[int, ...] | list[int],
                       name: str = "every arm declared as the lab describes it", scope: str = "gate") -> CheckResult:
    """Each declared arm (lab.arms.ArmSpec) against the lab's text for it (``expected``: one dict per arm with its
    "key" and the fields the text fixes): same arms, and field by field the same init, per-layer std (from the
    rule's definition), data transform, dropout rates, optimiser settings, seeds and length."""
    problems = []
    declared = {a.key: a for a in arms}
    if len(declared) != len(arms):
        problems.append("two arms share a key")
    for e in expected:
        key = e["key"]
        arm = declared.get(key)
        if arm is None:
            problems.append(f"arm {key}: not declared (the lab's design runs it)")
            continue
        for field_name, want in e.items():
            if field_name == "key":
                continue
            got = getattr(arm, field_name, None)
            if not _same(got, want):
                problems.append(f"arm {key} ({arm.label}): {field_name} {_show(got)}, the lab's design says {_show(want)}")
        if "init" in e:
            want_std = tuple(rule_std(e["init"], a, b) for a, b in zip(widths[:-1], widths[1:]))
            if not _same(tuple(arm.layer_std), want_std):
                problems.append(f"arm {key}: promised per-layer weight std {_show(tuple(arm.layer_std))}, the {e['init']} "
                                f"rule gives {_show(want_std)}")
    extra = [k for k in declared if k not in {e["key"] for e in expected}]
    problems += [f"arm {k}: declared but not part of the lab's design" for k in extra]
    detail = (f"{len(arms)} arms, each with the init (and per-layer std), data, dropout, optimiser, seeds and length the "
              "lab's design gives it") if not problems else "; ".join(problems[:6]) + (
        f" (+{len(problems) - 6} more)" if len(problems) > 6 else "") + ": fix the experiment's arms() declaration"
    return CheckResult(name, not problems, f"{len(arms)} arms, {len(problems)} mismatch(es)", f"{len(expected)} arms as "
                       "designed", detail, scope)


def check_arm_inputs(arm, got: tuple, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
                     y_val: torch.Tensor, raw_train: torch.Tensor | None = None, raw_val: torch.Tensor | None = None,
                     name: str = "the arm's data are the promised transform", scope: str = "gate") -> CheckResult:
    """The (x_train, y_train, x_val, y_val) an arm trains on must be the promised transform of the normalised data:
    raw or normalised inputs times the arm's scale on every split; training labels as given, or (``labels ==
    "shuffled"``) a permutation of them that moved many labels; validation labels untouched."""
    problems = []
    gx, gy, gxv, gyv = got
    base = {"raw": (raw_train, raw_val), "normalised": (x_train, x_val)}.get(arm.inputs)
    if base is None or base[0] is None:
        problems.append(f"unknown input kind {arm.inputs!r}")
    else:
        for split, g, b in (("training", gx, base[0]), ("validation", gxv, base[1])):
            if g.numel() != b.numel():
                problems.append(f"{split} inputs have {tuple(g.shape)} values, the data {tuple(b.shape)}")
                continue
            if arm.scale == 1.0 and torch.equal(g, b.reshape(g.shape)):
                continue  # exactly the data (the common case: one cheap comparison)
            want = b.reshape(g.shape) * arm.scale
            err = float(((g.double() - want.double()).abs() / want.double().abs().clamp_min(1e-6 * max(arm.scale, 1e-30))).max())
            if not err <= 1e-5:
                ratio = float(g.double().abs().mean() / b.double().abs().mean().clamp_min(1e-30))
                problems.append(f"{split} inputs are not the {arm.inputs} data x {arm.scale:g} (measured scale "
                                f"{ratio:.4g} of the {arm.inputs} data, max rel diff {err:.3g})")
    if not torch.equal(gyv.cpu(), y_val.cpu()):
        problems.append("validation labels changed")
    if arm.labels == "shuffled":
        moved = float((gy.cpu() != y_train.cpu()).double().mean()) if gy.shape == y_train.shape else math.nan
        if gy.shape != y_train.shape or not torch.equal(torch.bincount(gy.cpu()), torch.bincount(y_train.cpu())):
            problems.append("training labels are not a permutation of the data's labels")
        elif not moved >= 0.25:
            problems.append(f"only {moved:.1%} of the training labels moved: not shuffled")
    elif not torch.equal(gy.cpu(), y_train.cpu()):
        problems.append(f"training labels differ from the data's ({float((gy.cpu() != y_train.cpu()).double().mean()):.1%}"
                        " moved), the arm promises them as given" if gy.shape == y_train.shape else
                        "training labels have another length than the data's")
    desc = f"{arm.inputs} inputs x {arm.scale:g}, labels {arm.labels}"
    detail = f"arm {arm.key}: {desc}" if not problems else f"arm {arm.key} ({arm.label}): " + "; ".join(problems)
    return CheckResult(name, not problems, desc if not problems else "; ".join(problems)[:120], desc, detail, scope)


def _flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten().cpu() for p in model.parameters()])


def reference_step(before: nn.Module, optimizer: str, settings: dict, x: torch.Tensor, y: torch.Tensor,
                   opt_state: dict[int, dict] | None = None, rng_state: torch.Tensor | None = None,
                   cuda_rng_state: torch.Tensor | None = None) -> nn.Module:
    """The textbook step on a copy of ``before``: a fresh torch.optim.<optimizer>(**settings) (its state, if given,
    copied in), cross-entropy on (x, y) in train mode (dropout masks from the given RNG state), backward, step."""
    import copy

    ref = copy.deepcopy(before)
    ref.train()
    params = list(ref.parameters())
    opt = getattr(torch.optim, optimizer)(params, **settings)
    for i, p in enumerate(params):
        if opt_state and i in opt_state:
            opt.state[p] = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt_state[i].items()}
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if rng_state is not None:
            torch.set_rng_state(rng_state)
        if cuda_rng_state is not None and devices:
            torch.cuda.set_rng_state(cuda_rng_state, devices[0])
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ref(x), y).backward()
        opt.step()
    return ref


def check_arm_training(arm, trace, x_ref: torch.Tensor, y_ref: torch.Tensor, rtol: float = 1e-3,
                       name: str = "the arm trains as promised", scope: str = "gate") -> CheckResult:
    """After the arm's real loop ran its configured length: the optimiser is still the promised type with the
    promised settings (every key of its param_groups vs a fresh torch.optim of the promise: a momentum, beta,
    decay or new key switched on mid-training shows), and each observed step (early and late) moved the weights
    exactly like the textbook step of the promised optimiser on the same batch (same dropout masks): catches a
    wrong lr, clipping, momentum or a transform of the data inside the loop, whenever it starts."""
    from lab.arms import IMPLEMENTATION_KEYS  # local: the recipe stays importable without lab.arms

    problems, cells = [], []
    settings = arm.optimizer_settings()
    if trace.param_groups is not None:
        if trace.optimizer != arm.optimizer:
            problems.append(f"{trace.optimizer} instead of {arm.optimizer}")
        fresh = getattr(torch.optim, arm.optimizer)([torch.zeros(1, requires_grad=True)], **settings).param_groups[0]
        for i, group in enumerate(trace.param_groups):
            for key in sorted((set(group) | set(fresh)) - set(IMPLEMENTATION_KEYS)):
                got, want = group.get(key), fresh.get(key)
                if not _same(got, want):
                    problems.append(f"param group {i}: {key} {_show(got)} after {trace.length}, promised {_show(want)}")
    for st in trace.steps:
        x = st.x if st.x is not None else x_ref
        y = st.y if st.y is not None else y_ref
        b = _flat_params(st.before)
        if not bool(torch.isfinite(b).all()):
            cells.append(f"{st.when}: diverged before it (not compared)")
            continue
        ref = reference_step(st.before, arm.optimizer, settings, x, y, st.opt_state, st.rng_state, st.cuda_rng_state)
        d_real, d_ref = _flat_params(st.after) - b, _flat_params(ref) - b
        both_bad = ~torch.isfinite(d_real) & ~torch.isfinite(d_ref)
        ok = ~both_bad
        scale = float(d_ref[ok & torch.isfinite(d_ref)].abs().max()) if bool((ok & torch.isfinite(d_ref)).any()) else 0.0
        diff = (d_real[ok] - d_ref[ok]).abs()
        worst = float(diff.max()) / max(scale, 1e-30) if diff.numel() else 0.0
        if scale == 0.0 and diff.numel():
            worst = 0.0 if float(diff.max()) == 0.0 else math.inf
        cells.append(f"{st.when}: rel diff {worst:.2g}")
        if not worst <= rtol:
            problems.append(f"{st.when}: the update differs from a plain {arm.optimizer}({_show(settings)}) step on the "
                            f"same batch by {worst:.3g} of its size (another lr, momentum or betas, clipping, or other "
                            "inputs inside the loop?)")
    detail = (f"arm {arm.key} after {trace.length}: {arm.optimizer} settings as promised; " + "; ".join(cells)
              if not problems else f"arm {arm.key} ({arm.label}): " + "; ".join(problems))
    return CheckResult(name, not problems, "; ".join(cells) or "no step", f"{arm.optimizer} {_show(settings)}, steps "
                       f"= reference within {rtol:g}", detail, scope)


def check_seed_effects(probes: list[tuple], shared: tuple[str, ...] = (), fixed: dict[str, set] | None = None,
                       name: str = "seeds do what the report says", scope: str = "gate") -> CheckResult:
    """``probes``: [(arm, seed, {quantity: tensor})] from the arms' real code (a quantity is what the seed drives:
    the init draw, the minibatch order, the dropout masks); the first two entries must be the same arm and seed
    probed twice. The same seed must give the same quantities; two seeds of one arm group other ones (except
    ``fixed[quantity]``: groups where the quantity has no randomness, e.g. all-zero weights); the arms of one seed
    share the ``shared`` quantities."""
    fixed = fixed or {}
    problems = []
    (a0, s0, q0), (a1, s1, q1) = probes[0], probes[1]
    for k in q0:
        if not torch.equal(q0[k], q1[k]):
            problems.append(f"arm {a0.key}, seed {s0}: the same seed gave another {k} on a second run")
    rest = probes[1:]
    for i, (a, s, q) in enumerate(rest):
        for b, t, r in rest[i + 1:]:
            for k in q:
                if k not in r or q[k].shape != r[k].shape:
                    continue
                equal = torch.equal(q[k], r[k])
                if a.group == b.group and s != t and equal and a.group not in fixed.get(k, set()):
                    problems.append(f"arms {a.key} and {b.key}: seeds {s} and {t} give the same {k}")
                elif s == t and a.group != b.group and k in shared and not equal:
                    problems.append(f"arms {a.key} and {b.key} of seed {s} do not share their {k}")
    what = ", ".join(sorted({k for _, _, q in probes for k in q}))
    detail = (f"{len(rest)} arm x seed probes ({what}): each seed its own, the same seed the same"
              + (f", {' and '.join(shared)} shared by the arms of a seed" if shared else "")
              if not problems else "; ".join(list(dict.fromkeys(problems))[:5]))
    return CheckResult(name, not problems, f"{len(problems)} problem(s)", "distinct per seed, equal per seed", detail,
                       scope)


def check_seed_bookkeeping(members: list[tuple[str, bool]], data_seed: tuple[int, bool] | None,
                           mask_seeds: dict[int, tuple[int, ...]], name: str = "seeds line up with what they label",
                           scope: str = "gate") -> CheckResult:
    """``members``: (label, whether the net a combined build labels so equals that arm built alone under that seed);
    ``data_seed``: (the promised data seed, whether the loaded data are the lab's draw under it); ``mask_seeds``:
    training seed -> the Monte-Carlo mask seeds of its net, which must all differ across training seeds."""
    problems = []
    off = [label for label, same in members if not same]
    if off:
        problems.append(f"{len(off)} of {len(members)} nets of the combined build are not the arm and seed they are "
                        f"labelled (first: {off[0]}): the inits, seeds and members lists no longer line up")
    if data_seed is not None and not data_seed[1]:
        problems.append(f"the data are not the lab's draw under the data seed {data_seed[0]} (drawn from another seed, "
                        "a model seed?)")
    owner: dict[int, int] = {}
    for train_seed, seeds in mask_seeds.items():
        for m in seeds:
            if m in owner and owner[m] != train_seed:
                problems.append(f"mask seed {m} is used by training seeds {owner[m]} and {train_seed}: their ensembles "
                                "share masks")
                break
            owner[m] = train_seed
        if len(set(seeds)) != len(seeds):
            problems.append(f"training seed {train_seed} repeats a mask seed")
    parts = [f"{len(members)} combined-build nets = their arm and seed" if members else "",
             f"data drawn from seed {data_seed[0]}" if data_seed else "",
             f"mask seeds distinct over {len(mask_seeds)} training seeds" if mask_seeds else ""]
    detail = "; ".join(p for p in parts if p) or "nothing to line up" if not problems else "; ".join(problems)
    return CheckResult(name, not problems, f"{len(problems)} problem(s)", "all line up", detail, scope)

__all__ = [
    "ACTIVATION_MAX_RATIO",
    "INIT_LOSS_REL_TOL",
    "OVERFIT_MAX_LOSS",
    "Tap",
    "check_activation_record",
    "check_arm_inputs",
    "check_arm_promises",
    "check_arm_training",
    "check_seed_bookkeeping",
    "check_seed_effects",
    "check_activation_stability",
    "check_architecture",
    "check_batch_independence",
    "check_class_balance",
    "check_disjoint",
    "check_disjoint_content",
    "check_dropout_rates",
    "check_dropout_scaling",
    "check_ensemble_reduces_to_eval",
    "check_ensemble_stochastic",
    "check_epoch_coverage",
    "check_eval_determinism",
    "check_evaluate",
    "check_finite_inputs",
    "check_finite_training",
    "check_gradients_reach_all",
    "check_init_loss",
    "check_init_statistics",
    "check_labels_learnable",
    "check_layers_matter",
    "check_loss_decreases",
    "check_normalized",
    "check_normalized_with_train_stats",
    "check_optimizer",
    "check_overfit_batch",
    "check_params_update",
    "check_paths_agree",
    "check_split_scores",
    "check_step_matches_reference",
    "linear_layers",
    "measure_dropout",
    "reference_step",
    "rule_std",
]
