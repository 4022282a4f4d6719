"""Karpathy-recipe sanity checks as pure functions returning CheckResult (they never assert).

    result = check_init_loss(model, x, y)   # CheckResult(name, passed, measured, expected, detail)

``gate_checks(device)`` runs them on the default configurations of the lab; ``checks/`` wraps them in
pytest and ``make report`` refuses to render when one fails. Each check exists to catch one bug, and
tests/test_recipe.py feeds it that bug.
"""

from __future__ import annotations

import math

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
) -> CheckResult:
    """A few examples must be driven to ~0 loss and 100 % accuracy; a net that cannot learn fails.

    Trains in eval mode (no dropout), as the recipe says: regularisation off while proving capacity.
    The model is trained in place: pass a fresh copy.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    expected = f"loss <= {max_loss:g}, acc = 100 % within {steps} steps"
    if not params:
        return CheckResult(name, False, "no trainable parameters", expected, "every parameter is frozen", scope)
    optimizer = torch.optim.Adam(params, lr=lr)
    model.eval()
    try:
        for _ in range(steps):
            train_step(model, optimizer, x, y)
    except RuntimeError as exc:  # e.g. a detached graph: "element 0 of tensors does not require grad"
        return CheckResult(name, False, "backward failed", expected, f"cannot backpropagate: {exc}".splitlines()[0], scope)
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
) -> CheckResult:
    """Per-layer std of |activation| must stay within max_ratio across the whole depth."""
    stds = activation_stats(model, x)["std_abs"]
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


__all__ = [
    "ACTIVATION_MAX_RATIO",
    "INIT_LOSS_REL_TOL",
    "OVERFIT_MAX_LOSS",
    "check_activation_stability",
    "check_batch_independence",
    "check_disjoint",
    "check_eval_determinism",
    "check_gradients_reach_all",
    "check_init_loss",
    "check_normalized",
    "check_overfit_batch",
]
