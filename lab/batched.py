"""Many small MLPs trained at once: stacked weights, batched matmuls, hand-written ReLU-MLP backward.

    stack = init_stack([2, 6, 3, 2], inits=["normal:0.1"] * 5, seeds=range(5))
    fit = fit_batched(stack, x, y, steps=1000, lr=0.1, x_val=xv, y_val=yv, eval_at=[0, 10, 100, 1000])

Why this exists: a sweep of ~100 tiny nets (2-6-3-2) trained one after another spends almost all its
time in per-kernel and autograd overhead, not in arithmetic. Member m of a Stack holds layer l as
``params[l][m]`` = [nn.Linear weight | bias column] and follows the maths of ``lab.train.fit_full_batch``
on ``MLP(widths, init=spec, generator=torch.Generator().manual_seed(seed_m))``: full-batch SGD without
momentum on the mean cross-entropy. The backward pass is written out by hand (about 17 kernels per
step for all members together, no autograd graph) because that is where the speed comes from:
~75-150x faster than the per-model loop for 100 nets (benchmarks/bench_sweep.py). tests/test_batched.py
checks it against autograd and against the per-model path. Use ``lab.train`` for anything else.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lab.inits import init_weight_, parse_init
from lab.models import MLP
from lab.train import fit_full_batch

_relu_backward = torch.ops.aten.threshold_backward.grad_input  # what autograd runs for ReLU, with out=


@contextlib.contextmanager
def single_thread(device: torch.device | str = "cpu"):
    """Run tiny-tensor CPU work on one intra-op thread, restoring the previous count afterwards.

    Kernels here touch a few thousand numbers: a second thread gains nothing (measured 0.25 s vs
    0.23 s for 100 nets x 1000 steps on an idle 2-core machine), and when another process keeps a
    core busy, OpenMP's per-kernel barriers wait for a descheduled thread and the same run took
    6-18 s. One thread makes the timing robust on a shared machine. No effect on GPU work.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Stack:
    """M MLPs of the same widths. ``params[l]`` is [M, out, in + 1]: nn.Linear's weight with its bias
    as an extra last column (no extra column when the nets have no bias).

    Folding the bias into the weight lets one batched matmul against inputs carrying a row of ones
    do both the affine map and, in the backward pass, the bias gradient (a sum over samples).
    """

    widths: tuple[int, ...]
    params: list[torch.Tensor]
    bias: bool = True

    @property
    def n_members(self) -> int:
        return self.params[0].shape[0]

    @property
    def weights(self) -> list[torch.Tensor]:
        """Views [M, out, in], laid out like nn.Linear.weight."""
        return [p[:, :, : p.shape[2] - self.bias] for p in self.params]

    @property
    def biases(self) -> list[torch.Tensor] | None:
        """Views [M, out], or None for nets without bias."""
        return [p[:, :, -1] for p in self.params] if self.bias else None

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [M, N, C] of every member for inputs [N, d] shared by all members."""
        return self.logits_fm(x).transpose(1, 2)

    @torch.no_grad()
    def logits_fm(self, x: torch.Tensor) -> torch.Tensor:
        """Logits feature-major, [M, C, N]: the layout the training step uses (see _Trainer)."""
        h = x.T  # [d, N]: the first matmul folds all members into one large GEMM
        biases = self.biases
        for i, w in enumerate(self.weights):
            h = torch.matmul(w, h)
            if biases is not None:
                h += biases[i][:, :, None]  # in place: fresh multi-MB buffers cost more than the arithmetic
            if i < len(self.params) - 1:
                h.clamp_min_(0.0)
        return h

    def member(self, m: int) -> MLP:
        """Member m as a plain nn.Module (a copy), e.g. to cross-check against the per-model path."""
        model = MLP(self.widths, bias=self.bias)
        biases = self.biases
        with torch.no_grad():
            for i, layer in enumerate(model.layers):
                layer.weight.copy_(self.weights[i][m])
                if biases is not None:
                    layer.bias.copy_(biases[i][m])
        return model.to(self.params[0].device)


def init_stack(
    widths: Sequence[int],
    inits: Sequence[str],
    seeds: Sequence[int],
    *,
    bias: bool = True,
    device: torch.device | str = "cpu",
) -> Stack:
    """Member m is initialised exactly like ``MLP(widths, init=inits[m], generator=Generator().manual_seed(seeds[m]))``.

    MLP.__init__ applies the init to its Linear layers in order, each weight drawn as [out, in] from
    the member's generator, biases zero; the same draws happen here in the same order.
    """
    widths = tuple(int(w) for w in widths)
    inits, seeds = list(inits), [int(s) for s in seeds]
    if len(inits) != len(seeds) or not seeds:
        raise ValueError(f"need one init per seed, got {len(inits)} inits and {len(seeds)} seeds")
    specs = {spec: parse_init(spec) for spec in set(inits)}
    if any(s.name == "torch" for s in specs.values()):
        raise ValueError("init 'torch' draws from the global RNG; the batched path needs seeded inits")
    params = [torch.zeros(len(seeds), fan_out, fan_in + bias) for fan_in, fan_out in zip(widths[:-1], widths[1:])]
    for m, (spec, seed) in enumerate(zip(inits, seeds)):
        gen = torch.Generator().manual_seed(seed)
        for p in params:
            w = torch.empty(p.shape[1], p.shape[2] - bias)
            init_weight_(w, specs[spec], gen)
            p[m, :, : w.shape[1]] = w
    return Stack(widths, [p.to(device) for p in params], bias)


def _argmax_dim1(z: torch.Tensor) -> torch.Tensor:
    """z.argmax(1) for [M, C, N] with small C (first index wins ties, as argmax does).

    torch's argmax over a non-innermost dimension of size 2 took 150 ms for [100, 2, 10000] on CPU;
    a loop over the C classes takes ~10 ms.
    """
    best, idx = z[:, 0].clone(), torch.zeros(z.shape[0], z.shape[2], dtype=torch.long, device=z.device)
    for c in range(1, z.shape[1]):
        better = z[:, c] > best
        best = torch.where(better, z[:, c], best)
        idx.masked_fill_(better, c)
    return idx


@dataclass
class BatchedFit:
    """Per-member curves as numpy arrays. After a member diverges its later values are NaN."""

    train_loss: np.ndarray  # [M, steps]: loss at step t = loss of the net after t updates
    diverged_at: list[int | None]  # first step whose training loss was NaN/Inf, per member
    eval_steps: list[int]  # validation points: after t updates (t = steps is the final net)
    val_loss: np.ndarray  # [M, len(eval_steps)]
    val_acc: np.ndarray  # [M, len(eval_steps)]
    final_train_acc: np.ndarray  # [M]: accuracy of the final net on the training inputs (NaN if diverged)


class _Trainer:
    """Preallocated buffers and one SGD step for all members (no autograd, no host sync).

    Activations are kept feature-major, [M, features, N] with a last row of ones when the nets have
    biases: then every layer is one bmm, and log_softmax runs over a non-innermost dimension of size
    C, which is several times faster on CPU than over an innermost dimension of size 2.
    """

    def __init__(self, stack: Stack, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        self.stack, self.lr = stack, float(lr)
        m, n, bias = stack.n_members, x.shape[0], int(stack.bias)
        dev, dt = stack.params[0].device, stack.params[0].dtype
        # Inputs (and ones row) copied per member once: bmm wants a real batch dimension.
        self.h = [torch.ones(m, w + bias, n, device=dev, dtype=dt) for w in stack.widths[:-1]]
        self.h[0][:, : x.shape[1], :] = x.to(dev, dt).T
        self.h_t = [h.transpose(1, 2) for h in self.h]
        self.act = [h[:, :w, :] for h, w in zip(self.h[1:], stack.widths[1:-1])]  # post-ReLU rows
        self.z = [torch.empty(m, w, n, device=dev, dtype=dt) for w in stack.widths[1:]]  # pre-activations
        self.w_t = [w.transpose(1, 2) for w in stack.weights]  # views: follow the in-place updates
        self.y_idx = y.to(dev).view(1, 1, n).expand(m, 1, n).contiguous()
        # -onehot / N: the gradient the mean NLL sends back to the log-probabilities, as autograd has it.
        self.neg_target = torch.zeros(m, stack.widths[-1], n, device=dev, dtype=dt).scatter_(1, self.y_idx, -1.0 / n)
        self.inv_n = 1.0 / n
        self.picked = torch.empty(m, 1, n, device=dev, dtype=dt)
        self.grads = [torch.empty_like(p) for p in stack.params]

    def step(self, neg_loss_out: torch.Tensor) -> None:
        """One full-batch SGD step; writes minus the per-member mean cross-entropy into neg_loss_out [M]."""
        params, n_layers = self.stack.params, len(self.stack.params)
        for i in range(n_layers):
            torch.bmm(params[i], self.h[i], out=self.z[i])
            if i < n_layers - 1:
                torch.clamp_min(self.z[i], 0.0, out=self.act[i])
        # Cross-entropy as F.cross_entropy computes it: log_softmax, pick the target, mean over samples.
        logp = torch.log_softmax(self.z[-1], dim=1)
        torch.gather(logp, 1, self.y_idx, out=self.picked)
        torch.mean(self.picked.squeeze(1), dim=1, out=neg_loss_out)  # sign flipped once at the end
        # log_softmax backward: g - softmax * sum(g) with g = -onehot/N, sum(g) = -1/N.
        dz = torch.add(self.neg_target, logp.exp_(), alpha=self.inv_n)
        for i in range(n_layers - 1, -1, -1):
            torch.bmm(dz, self.h_t[i], out=self.grads[i])  # weight and bias (ones row) gradients
            if i > 0:
                da = torch.bmm(self.w_t[i], dz, out=self.z[i - 1])  # z[i-1] is no longer needed
                dz = _relu_backward(da, self.act[i - 1], 0.0, grad_input=da)
        # torch.optim.SGD's update (lr, no momentum, no weight decay), fused over all tensors.
        torch._foreach_add_(params, self.grads, alpha=-self.lr)


def fit_batched(
    stack: Stack,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    eval_at: Sequence[int] = (),
    progress=None,
) -> BatchedFit:
    """Train every member of ``stack`` in place by full-batch SGD for ``steps`` steps.

    ``eval_at``: numbers of updates after which the validation set is scored (the final net, after
    ``steps`` updates, always is). ``progress`` optionally wraps the step range (e.g. ctx.progress).
    A member whose loss turns NaN/Inf is marked diverged at that step; the others are unaffected
    (members share no arithmetic), and the loop never syncs with the host until the end.
    """
    trainer = _Trainer(stack, x, y, lr)
    m, dev = stack.n_members, stack.params[0].device
    neg_loss = torch.empty(steps, m, device=dev, dtype=stack.params[0].dtype)
    eval_steps = sorted({int(t) for t in eval_at if 0 <= int(t) <= steps} | {steps}) if x_val is not None else []
    eval_index = {t: k for k, t in enumerate(eval_steps)}
    val_loss = torch.empty(len(eval_steps), m, device=dev, dtype=torch.float64)
    val_acc = torch.empty(len(eval_steps), m, device=dev, dtype=torch.float64)
    if x_val is not None:
        x_val, y_val = x_val.to(dev, stack.params[0].dtype), y_val.to(dev)

    def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (_argmax_dim1(logits) == target.view(1, -1)).double().mean(1)

    def score(t: int) -> None:
        logp = torch.log_softmax(stack.logits_fm(x_val), dim=1)  # [M, C, N]
        target = y_val.view(1, 1, -1).expand(m, 1, -1)
        val_loss[eval_index[t]] = -logp.gather(1, target).squeeze(1).double().mean(1)
        val_acc[eval_index[t]] = accuracy(logp, y_val)

    steps_iter = range(steps) if progress is None else progress(range(steps))
    with torch.no_grad(), single_thread(dev):
        for t in steps_iter:
            if t in eval_index:
                score(t)
            trainer.step(neg_loss[t])
        if steps in eval_index:
            score(steps)
        train_acc = accuracy(stack.logits_fm(x.to(dev, stack.params[0].dtype)), y.to(dev)).cpu().numpy()

    train_loss = (-neg_loss).T.double().cpu().numpy()
    v_loss, v_acc = val_loss.T.cpu().numpy(), val_acc.T.cpu().numpy()
    diverged_at: list[int | None] = []
    for k in range(m):
        bad = np.flatnonzero(~np.isfinite(train_loss[k]))
        at = int(bad[0]) if bad.size else None
        diverged_at.append(at)
        if at is not None:  # like fit_full_batch: the run stops there; nothing after it is a result
            train_loss[k, at + 1 :] = math.nan
            after = np.asarray(eval_steps) > at
            v_loss[k, after], v_acc[k, after] = math.nan, math.nan
            train_acc[k] = math.nan
    return BatchedFit(train_loss, diverged_at, eval_steps, v_loss, v_acc, train_acc)


def fit_loop(
    widths: Sequence[int],
    inits: Sequence[str],
    seeds: Sequence[int],
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    *,
    bias: bool = True,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
) -> list[dict]:
    """The plain per-model path on the same work: one MLP + lab.train.fit_full_batch per member."""
    out = []
    for spec, seed in zip(inits, seeds):
        model = MLP(widths, bias=bias, init=spec, generator=torch.Generator().manual_seed(int(seed))).to(x.device)
        out.append(fit_full_batch(model, x, y, steps, lr, x_val, y_val))
    return out


__all__ = ["BatchedFit", "Stack", "fit_batched", "fit_loop", "init_stack", "single_thread"]
