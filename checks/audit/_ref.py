"""Independent reference pieces for the audit of Parts 1 and 2: data, weight draws, a batched trainer, rows.

    x_tr, y_tr, x_va, y_va = rings(n_train=100, n_val=10_000, seed=0)
    weights = draw_weights([2, 6, 3, 2], "normal:0.1", seed=3)

Written from the lab's text and the seeding contract below, with torch and numpy only: nothing here
imports the lab (tests/test_audit_part12.py fails if it starts to). The contract is what the run does,
read once from lab/data.py, lab/inits.py, lab/models.py and lab/batched.py, so that this code can
rebuild the very nets the run trained; where the lab's code departs from it, the audit fails.

Seeding contract (Parts 1 and 2)
--------------------------------
Two rings. ``numpy.random.default_rng(seed)``, one generator for both sets: the training set is drawn
first, then the validation set (Part 2: the "training" sample gives the normalisation statistics and
the n_samples "validation" points are the measured sample). Per set of n points, in this order:
labels = rng.permutation(arange(n) % 2) (balanced, shuffled); radius = (1, 4)[label] +
rng.uniform(-1, 1, n); angle = rng.uniform(0, 2 pi, n); x = radius (cos, sin) + (10, 10), in float64,
then stored as float32. Normalisation: (x - mean) / std with the per-feature mean and std (torch's
unbiased std) of the raw float32 training points, for both sets.

Weights. One ``torch.Generator().manual_seed(s)`` (CPU) per net; the Linear layers are drawn in order
from input to output, each weight as a [out, in] tensor with ``tensor.normal_(0, std, generator=g)``:
normal:SIGMA -> std SIGMA (uniform:A, glorot_uniform, he_uniform: uniform_(-a, a) with a = A, sqrt(6 / (in + out)),
sqrt(6 / in)); glorot (xavier_normal_) -> sqrt(2 / (in + out)); he (kaiming_normal_,
fan_in, ReLU gain) -> sqrt(2) / sqrt(in). zeros draws nothing. Biases are zero and draw nothing, and a
net without biases draws the same weights. Each net is then moved to the run's device.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

RADII = (1.0, 4.0)  # class 0 on the inner ring, class 1 on the outer
NOISE = 1.0  # radial noise U(-1, 1)
CENTRE = (10.0, 10.0)
LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------------------
# Data


def _ring_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    radius = np.array(RADII)[labels] + rng.uniform(-NOISE, NOISE, size=n)
    angle = rng.uniform(0.0, 2.0 * math.pi, size=n)
    xy = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]) + np.array(CENTRE)
    return xy.astype(np.float32), labels


def rings(n_train: int, n_val: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw (unnormalised) float32 training and validation points with their labels, by the contract."""
    rng = np.random.default_rng(seed)
    x_tr, y_tr = _ring_points(n_train, rng)
    x_va, y_va = _ring_points(n_val, rng)
    return torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_va), torch.from_numpy(y_va)


def standardise(x_train_raw: torch.Tensor, *others: torch.Tensor):
    """(normalised training set, each other set normalised with the training statistics..., mean, std)."""
    mean, std = x_train_raw.mean(0), x_train_raw.std(0)
    return ((x_train_raw - mean) / std, *((x - mean) / std for x in others), mean, std)


# ---------------------------------------------------------------------------------------------------------
# Weights


def init_std(spec: str, fan_in: int, fan_out: int) -> float | None:
    """The std a spec gives one weight matrix; None for all-zero weights. Unknown specs raise ValueError."""
    name, _, param = spec.partition(":")
    if name == "normal":
        return float(param)
    if name == "glorot" and not param:
        return math.sqrt(2.0 / float(fan_in + fan_out))
    if name == "he" and not param:
        return math.sqrt(2.0) / math.sqrt(fan_in)
    if name == "zeros" and not param:
        return None
    bound = uniform_bound(spec, fan_in, fan_out)
    if bound is not None:
        return bound / math.sqrt(3.0)  # U(-a, a) has std a / sqrt 3
    raise ValueError(f"the audit's reference has no init '{spec}'")


def uniform_bound(spec: str, fan_in: int, fan_out: int) -> float | None:
    """The bound a of the uniform families, U(-a, a): uniform:A; glorot_uniform (xavier_uniform_) sqrt(6 / (in +
    out)); he_uniform (kaiming_uniform_, fan_in, ReLU gain sqrt 2) sqrt(6 / in). None for the normal families."""
    name, _, param = spec.partition(":")
    if name == "uniform":
        return float(param)
    if name == "glorot_uniform" and not param:
        return math.sqrt(6.0 / float(fan_in + fan_out))
    if name == "he_uniform" and not param:
        return math.sqrt(6.0 / float(fan_in))
    return None


def draw_weights(widths: Sequence[int], spec: str, seed: int) -> list[torch.Tensor]:
    """Every layer's weight [out, in] of one net, drawn by the contract (CPU generator, layer order)."""
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        w = torch.zeros(fan_out, fan_in)
        bound = uniform_bound(spec, fan_in, fan_out)
        if bound is not None:
            w.uniform_(-bound, bound, generator=gen)
        else:
            std = init_std(spec, fan_in, fan_out)
            if std is not None:
                w.normal_(0.0, std, generator=gen)
        out.append(w)
    return out


# ---------------------------------------------------------------------------------------------------------
# Training: plain autograd on stacked weights, one independent net per member


@contextlib.contextmanager
def one_thread(device: torch.device):
    """Tiny tensors: a second CPU thread only adds barrier waits on a shared machine."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _forward(ws, bs, x):
    """Logits [M, C, N] of inputs [M, d, N]. Feature-major: each layer is one bmm of [M, out, in] weights
    without transposes, and the softmax runs over a non-innermost dimension (several times faster on CPU
    than over an innermost dimension of size 2)."""
    h = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = torch.bmm(w, h) + b[:, :, None]
        if i < len(ws) - 1:
            h = torch.relu(h)
    return h


def _mean_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-member mean cross-entropy [M] of logits [M, C, N] against labels [M, N]."""
    return F.cross_entropy(logits, y, reduction="none").mean(1)


def train_members(members: list[dict], steps: int, device: torch.device, probe_steps: Iterable[int] = ()) -> list[dict]:
    """Full-batch SGD (no momentum) on the mean cross-entropy, every member at once and independently.

    Member: {"weights": [w [out, in]], "bias": bool, "lr": float, "x", "y", "x_val", "y_val"} (all members
    with the same number of training and of validation points). The loss of member m is its own mean
    cross-entropy; the summed loss's gradient w.r.t. member m's parameters is that member's gradient alone.
    Returns per member: "loss" (numpy [steps], loss of the net after t updates, computed before update t),
    validation loss and accuracy after every step in probe_steps and after the last ("val": {t: (loss, acc)}),
    and the final net's accuracy on its own training points ("train_acc").
    """
    n_layers = len(members[0]["weights"])
    ws = [torch.stack([m["weights"][i] for m in members]).to(device).requires_grad_(True) for i in range(n_layers)]
    bs = [torch.zeros(len(members), w.shape[1], device=device, requires_grad=True) for w in ws]
    bias_on = torch.tensor([float(m["bias"]) for m in members], device=device)[:, None]
    lr = torch.tensor([float(m["lr"]) for m in members], device=device)
    x = torch.stack([m["x"].T for m in members]).to(device, torch.float32)
    y = torch.stack([m["y"] for m in members]).to(device)
    x_val = torch.stack([m["x_val"].T for m in members]).to(device, torch.float32)
    y_val = torch.stack([m["y_val"] for m in members]).to(device)
    losses = torch.empty(steps, len(members), device=device)
    probes = sorted({int(t) for t in probe_steps if 0 <= int(t) < steps} | {steps})
    val: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def biases():
        return [b * bias_on for b in bs]  # a net without biases: its bias stays 0 and gets no gradient

    @torch.no_grad()
    def score(t: int) -> None:
        """Validation loss, accuracy and the number of points whose top-2 logit margin is within float32
        round-off (their predicted class may flip under another summation order): chunks of members keep
        the activations small."""
        parts = []
        for lo in range(0, len(members), 64):
            sl = slice(lo, lo + 64)
            logits = _forward([w[sl] for w in ws], [b[sl] for b in biases()], x_val[sl])
            parts.append(_scores(logits, y_val[sl]))
        val[t] = tuple(torch.cat(p) for p in zip(*parts))

    with one_thread(device):
        for t in range(steps):
            if t in probes:
                score(t)
            loss = _mean_ce(_forward(ws, biases(), x), y)
            losses[t] = loss.detach()
            grads = torch.autograd.grad(loss.sum(), ws + bs)
            with torch.no_grad():
                for p, g in zip(ws + bs, grads):
                    p -= lr.view(-1, *([1] * (p.dim() - 1))) * g
        score(steps)
        with torch.no_grad():
            _, train_acc, train_amb = _scores(_forward(ws, biases(), x), y)
    loss_np = losses.T.double().cpu().numpy()
    val = {t: [v.cpu().numpy() for v in vs] for t, vs in val.items()}
    out = []
    for k in range(len(members)):
        out.append({"loss": loss_np[k], "train_acc": float(train_acc[k]), "train_ambiguous": int(train_amb[k]),
                    "val": {t: (float(v[0][k]), float(v[1][k]), int(v[2][k])) for t, v in val.items()}})
    return out


def _scores(logits: torch.Tensor, y: torch.Tensor):
    """Per member: mean cross-entropy (float64 mean), accuracy, and how many points are near a tie.

    The predicted class is the first index of the largest logit (argmax's rule), found by a loop over the
    few classes: torch's argmax/topk over the non-innermost class dimension took ~0.2 s per call here.
    """
    loss = F.cross_entropy(logits, y, reduction="none").double().mean(1)
    best = logits[:, 0].clone()
    second = torch.full_like(best, -math.inf)
    pred = torch.zeros_like(y)
    for c in range(1, logits.shape[1]):
        z = logits[:, c]
        better = z > best
        second = torch.where(better, best, torch.maximum(second, z))
        best = torch.where(better, z, best)
        pred = torch.where(better, torch.full_like(pred, c), pred)
    acc = (pred == y).double().mean(1)
    scale = logits.abs().flatten(1).amax(1, keepdim=True)  # [M, 1]
    near_tie = (best - second) <= 1e-5 * scale
    return loss, acc, near_tie.sum(1)

# ---------------------------------------------------------------------------------------------------------
# Rows of the audit record


def finite(v: Any) -> float | None:
    """A number, or None where there is none (null in the JSON, NaN, inf: diverged / never)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def row(table: str, row_name: str, quantity: str, reported: Any, recomputed: Any, tol: float,
        ok: bool | None = None) -> dict:
    """One recomputed number. Without ``ok``: both missing (diverged / never) agree, one missing disagrees,
    two numbers agree when |reported - recomputed| <= tol. Non-finite values are stored as None."""
    if isinstance(reported, str) or isinstance(recomputed, str):
        rep, rec = reported, recomputed
        ok = (rep == rec) if ok is None else ok
    else:
        rep, rec = finite(reported), finite(recomputed)
        if ok is None:
            ok = (rep is None and rec is None) or (rep is not None and rec is not None and abs(rep - rec) <= tol)
    return {"table": table, "row": row_name, "quantity": quantity, "reported": rep, "recomputed": rec,
            "tol": float(tol), "ok": bool(ok)}


# What a results file of another shape raises when read as this one (a missing key, a string for a dict, ...)
STRUCTURE = (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError)


def broken(table: str, what: str, exc: BaseException) -> dict:
    """A results file whose structure the audit cannot read: a failed row, never an exception."""
    return {"table": table, "row": "-", "quantity": f"{what}: unexpected results structure ({type(exc).__name__}: "
            f"{exc})", "reported": None, "recomputed": None, "tol": 0.0, "ok": False}


__all__ = ["LN2", "STRUCTURE", "broken", "draw_weights", "finite", "init_std", "one_thread", "rings", "row", "standardise",
           "train_members"]
