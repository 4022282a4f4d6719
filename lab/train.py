"""One train step, fit loops and evaluation; everything returns numbers, nothing prints.

    loss = train_step(model, optimizer, x, y)       # the step the experiments and benchmarks share
    metrics = evaluate(model, x_val, y_val)         # {"loss": ..., "error_pct": ..., "acc": ...}
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One optimisation step on (x, y); returns the detached loss tensor (no host sync)."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> dict[str, float]:
    """Mean cross-entropy, accuracy and error (%) in eval mode; restores the model's previous mode."""
    was_training = model.training
    model.eval()
    n = x.shape[0]
    step = batch_size or n
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for start in range(0, n, step):
        logits = model(x[start : start + step])
        target = y[start : start + step]
        loss_sum += F.cross_entropy(logits, target, reduction="sum").double()
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    loss, acc = float(loss_sum) / n, int(correct) / n
    return {"loss": loss, "acc": acc, "error_pct": 100.0 * (1.0 - acc)}


def fit_full_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict:
    """Full-batch gradient descent (SGD, no momentum, unless an optimizer is given). A NaN/Inf loss stops the
    run: divergence is a result.

    Returns train_loss per step, the final validation loss/accuracy when given, and ``diverged_at``.
    """
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=lr)
    losses = torch.empty(steps, dtype=torch.float32, device=x.device)
    diverged_at = None
    done = 0
    for step in range(steps):
        losses[step] = train_step(model, optimizer, x, y)
        done = step + 1
        if not math.isfinite(float(losses[step])):
            diverged_at = step
            break
    out = {"train_loss": [float(v) for v in losses[:done]], "diverged_at": diverged_at}
    if x_val is not None:
        final = evaluate(model, x_val, y_val)
        out.update(val_steps=[done], val_loss=[final["loss"]], val_acc=[final["acc"]])
    return out


__all__ = ["evaluate", "fit_full_batch", "train_step"]
