"""The gate: recipe checks applied to the lab's default configurations; the report renders only if all pass.

    results = run_gate(torch.device("cpu"))      # list[CheckResult], in GATE order

Each entry builds what it needs from ``make_config(...)`` defaults, so the gate checks the setup the
experiments really use; ``checks/test_gate.py`` runs each entry as one pytest test.
"""

from __future__ import annotations

from typing import Callable

import torch

from lab.config import make_config
from functools import lru_cache

from lab.data import MnistSplit, mnist_split, rings_split
from lab.experiments.dropout import make_model as make_dropout_model
from lab.experiments.dropout import seeded
from lab.models import MLP
from lab.recipe import (
    check_activation_stability,
    check_batch_independence,
    check_disjoint,
    check_eval_determinism,
    check_gradients_reach_all,
    check_init_loss,
    check_normalized,
    check_overfit_batch,
)
from lab.errors import LabError
from lab.results import CheckResult

GATE_INIT = "glorot"  # the default init of the shallow net for the gate: logits near 0 at init
OVERFIT_N = 10  # examples in the "overfit one batch" check


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rings(device: torch.device):
    cfg = make_config("shallow_init")
    return cfg, rings_split(cfg.n_train, cfg.n_val, cfg.seed).to(device)


def _shallow(cfg, device: torch.device) -> MLP:
    return MLP([2, *cfg.hidden, 2], init=GATE_INIT, generator=_gen(cfg.seed)).to(device)


def _dropout_net(device: torch.device) -> tuple[MLP, torch.Tensor]:
    """The part-3 net exactly as the experiment builds it (its make_model); random inputs (no data needed)."""
    cfg = make_config("dropout")
    model = make_dropout_model(cfg, cfg.p_input, cfg.p_hidden, device)
    x = torch.randn(64, 784, generator=_gen(cfg.seed)).to(device)
    return model, x


@lru_cache(maxsize=1)
def _mnist() -> MnistSplit:
    """The part-3 split of the default config, loaded once per gate run (from MNIST_MIRROR when set)."""
    cfg = make_config("dropout")
    return mnist_split(cfg.n_train, cfg.n_val)


def gate_mnist_normalized(device: torch.device) -> CheckResult:
    return check_normalized(_mnist().split.x_train, per_feature=False,
                            name="MNIST training inputs normalised (mean 0, std 1 over all pixels)")


def gate_mnist_disjoint(device: torch.device) -> CheckResult:
    data = _mnist()
    return check_disjoint(torch.arange(*data.train_range), torch.arange(*data.val_range),
                          name="MNIST train/validation indices disjoint")


def gate_mnist_overfit(device: torch.device) -> CheckResult:
    """The part-3 net with its N(0, 0.1) init must memorise 10 real images (loss near 0)."""
    cfg = make_config("dropout")
    s = _mnist().split
    model = make_dropout_model(cfg, cfg.p_input, cfg.p_hidden, device)
    return check_overfit_batch(model, s.x_train[:OVERFIT_N].to(device), s.y_train[:OVERFIT_N].to(device),
                               steps=200, lr=1e-3, name=f"overfit one batch ({OVERFIT_N} MNIST images, 784-800-800-10)")


def gate_rings_normalized(device: torch.device) -> CheckResult:
    _, split = _rings(device)
    return check_normalized(split.x_train, name="two-rings inputs normalised (train mean 0, std 1)")


def gate_shallow_init_loss(device: torch.device) -> CheckResult:
    cfg, split = _rings(device)
    return check_init_loss(_shallow(cfg, device), split.x_val, split.y_val,
                           name=f"loss at init ~ ln 2 (2-6-3-2, {GATE_INIT})")


def gate_shallow_overfit(device: torch.device) -> CheckResult:
    cfg, split = _rings(device)
    return check_overfit_batch(_shallow(cfg, device), split.x_train[:OVERFIT_N], split.y_train[:OVERFIT_N],
                               name=f"overfit one batch ({OVERFIT_N} two-rings points)")


def gate_shallow_gradients(device: torch.device) -> CheckResult:
    cfg, split = _rings(device)
    return check_gradients_reach_all(_shallow(cfg, device), split.x_train, split.y_train,
                                     name="every parameter gets a gradient (2-6-3-2)")


def gate_dropout_eval_determinism(device: torch.device) -> CheckResult:
    model, x = _dropout_net(device)
    with seeded(0, device):  # the train-mode passes draw masks: seeded, so the recorded detail repeats
        return check_eval_determinism(model, x, expect_train_stochastic=True,
                                      name="eval-mode determinism (784-800-800-10 with dropout)")


def gate_dropout_batch_independence(device: torch.device) -> CheckResult:
    model, x = _dropout_net(device)
    with seeded(0, device):
        return check_batch_independence(model, x, index=3, name="no mixing across the batch (784-800-800-10)")


def gate_deep_he_stability(device: torch.device) -> CheckResult:
    cfg = make_config("deep_init")
    split = rings_split(cfg.n_train, cfg.n_samples, cfg.seed).to(device)
    model = MLP([2] + [cfg.width] * cfg.depth + [2], init="he", generator=_gen(cfg.seed)).to(device)
    return check_activation_stability(model, split.x_val,
                                      name=f"stable activations under He init ({cfg.depth}x{cfg.width})")


GATE: dict[str, Callable[[torch.device], CheckResult]] = {
    "rings_normalized": gate_rings_normalized,
    "shallow_init_loss": gate_shallow_init_loss,
    "shallow_overfit": gate_shallow_overfit,
    "shallow_gradients": gate_shallow_gradients,
    "dropout_eval_determinism": gate_dropout_eval_determinism,
    "dropout_batch_independence": gate_dropout_batch_independence,
    "deep_he_stability": gate_deep_he_stability,
    "mnist_normalized": gate_mnist_normalized,
    "mnist_disjoint": gate_mnist_disjoint,
    "mnist_overfit": gate_mnist_overfit,
}


def run_check(name: str, device: torch.device) -> CheckResult:
    """One gate entry; missing or damaged data make it a failed check with the fix, not a traceback."""
    try:
        return GATE[name](device)
    except LabError as exc:
        return CheckResult(name, False, "could not run", "runs", str(exc))


def run_gate(device: torch.device, names: list[str] | None = None) -> list[CheckResult]:
    return [run_check(name, device) for name in (names or list(GATE))]


__all__ = ["GATE", "run_check", "run_gate"]
