"""Training-step and forward-pass speed of the code the experiments run, against a same-run matmul roofline.

    make bench          # or: pytest benchmarks --benchmark-only --benchmark-json report/data/bench.json

Every case calls the experiments' own functions (lab.train.train_step, lab.models, the Part 3 model
and optimizer builders, the Monte-Carlo ensembles' member passes), never a re-implementation. Inputs are
random tensors of the real shapes: speed does not depend on pixel values, and the benchmarks then need no
dataset.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
import torch

from benchmarks.conftest import ROOFLINE_N, mlp_flops, sync
from lab.config import make_config
from lab.experiments.dropout import ensemble_members, make_model, make_optimizer
from lab.models import MLP, activation_stats
from lab.train import train_step

MNIST_WIDTHS = (784, 800, 800, 10)
VAL_IMAGES = 10_000
THINNED_TARGET = 0.5  # issue 11: a thinned-network pass at most half an eval pass over the same images
SIDE_BY_SIDE_ROUNDS = 15  # interleaved eval / per-image / thinned passes for the ratios (noise hits all three)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_matmul_roofline(benchmark, perf, device):
    """The reference: fp32 GFLOP/s of a large square matmul on the same device, in the same run."""
    n = perf.size(ROOFLINE_N, 256)
    a, b = torch.randn(n, n, generator=gen(1)).to(device), torch.randn(n, n, generator=gen(2)).to(device)
    out = perf.measure(benchmark, lambda: a @ b, flops=2.0 * n**3, batch=n, group="roofline", role="roofline")
    assert out.shape == (n, n)


def test_shallow_gd_step(benchmark, perf, device):
    """Part 1: one full-batch SGD step of the 2-6-3-2 net on 100 points."""
    cfg = make_config("shallow_init")
    widths = (2, *cfg.hidden, 2)
    model = MLP(widths, init="glorot", generator=gen()).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    x = torch.randn(cfg.n_train, 2, generator=gen(3)).to(device)
    y = (torch.arange(cfg.n_train) % 2).to(device)
    loss = perf.measure(benchmark, lambda: train_step(model, opt, x, y), flops=mlp_flops(widths, cfg.n_train, True),
                        batch=cfg.n_train, group="part1")
    assert torch.isfinite(loss)


def test_deep_forward_with_stats(benchmark, perf, device):
    """Part 2: forward pass of the 20x100 net recording |activation| statistics per layer."""
    cfg = make_config("deep_init")
    n = perf.size(cfg.n_samples, 500)
    widths = [2] + [cfg.width] * cfg.depth + [2]
    model = MLP(widths, init="he", generator=gen()).to(device)
    x = torch.randn(n, 2, generator=gen(4)).to(device)
    stats = perf.measure(benchmark, lambda: activation_stats(model, x), flops=mlp_flops(widths, n, False), batch=n,
                         group="part2")
    assert len(stats["mean_abs"]) == cfg.depth


@pytest.mark.parametrize("arm", ["dropout", "no_dropout"])
def test_mnist_train_step(benchmark, perf, device, arm):
    """Part 3: one AdamW step of 784-800-800-10 at the experiment's batch size, with and without dropout."""
    cfg = make_config("dropout")
    p_in, p_hid = (cfg.p_input, cfg.p_hidden) if arm == "dropout" else (0.0, 0.0)
    model = make_model(cfg, p_in, p_hid, device).train()
    opt = make_optimizer(cfg, model)
    x = torch.randn(cfg.batch_size, 784, generator=gen(5)).to(device)
    y = torch.randint(0, 10, (cfg.batch_size,), generator=gen(6)).to(device)
    loss = perf.measure(benchmark, lambda: train_step(model, opt, x, y),
                        flops=mlp_flops(MNIST_WIDTHS, cfg.batch_size, True), batch=cfg.batch_size, group="part3-step",
                        arm=arm)
    assert torch.isfinite(loss)


def thinned_flops(cfg, n: int) -> float:
    """Expected multiply-adds x2 of one thinned net: each weight survives if both its units are kept."""
    keep = [1 - cfg.p_input] + [1 - cfg.p_hidden] * len(cfg.hidden) + [1.0]
    widths = MNIST_WIDTHS
    return 2.0 * n * sum(a * ka * b * kb for a, ka, b, kb in zip(widths[:-1], keep[:-1], widths[1:], keep[1:]))


@contextmanager
def member_pass(model, x, mode: str):
    """One pass over x as the experiment runs it: eval mode, or one ensemble member (mc_train: the per-image-mask
    train-mode pass; thinned: one thinned network), through lab.experiments.dropout.ensemble_members."""
    if mode == "eval":
        model.eval()
        yield lambda: model(x)
        return
    with ensemble_members(model, x, 0, "per_image" if mode == "mc_train" else "thinned") as member:
        yield member


@pytest.mark.parametrize("mode", ["eval", "mc_train", "thinned"])
def test_validation_pass(benchmark, perf, device, mode):
    """Part 3: one pass over the validation images in eval mode (weight scaling), train mode (one per-image-mask
    MC member) or as one thinned network (the ensembles' member)."""
    cfg = make_config("dropout")
    n = perf.size(VAL_IMAGES, 500)
    model = make_model(cfg, cfg.p_input, cfg.p_hidden, device)
    x = torch.randn(n, 784, generator=gen(7)).to(device)
    flops = thinned_flops(cfg, n) if mode == "thinned" else mlp_flops(MNIST_WIDTHS, n, False)
    with member_pass(model, x, mode) as one:

        def one_pass():
            with torch.no_grad():
                return one()

        logits = perf.measure(benchmark, one_pass, flops=flops, batch=n, group="part3-pass", mode=mode)
    assert logits.shape == (n, 10)


def _median(times: list[float]) -> float:
    return sorted(times)[len(times) // 2]


def test_thinned_pass_vs_eval_pass(benchmark, perf, device):
    """The ensembles' member pass against the eval pass and the per-image-mask pass, timed interleaved in one run
    (so a busy neighbour slows all three alike); ratios in extra_info. Under make bench the thinned pass must
    take at most THINNED_TARGET of the eval pass."""
    cfg = make_config("dropout")
    n = perf.size(VAL_IMAGES, 500)
    model = make_model(cfg, cfg.p_input, cfg.p_hidden, device)
    x = torch.randn(n, 784, generator=gen(8)).to(device)
    rounds = perf.size(SIDE_BY_SIDE_ROUNDS, 1)
    times: dict[str, list[float]] = {"eval": [], "mc_train": [], "thinned": []}
    with torch.no_grad(), ensemble_members(model, x, 1, "thinned") as thinned, \
            ensemble_members(model, x, 2, "per_image") as per_image:
        passes = {"eval": lambda: model.eval()(x), "mc_train": lambda: model.train()(x), "thinned": thinned}
        for _ in range(rounds + 1):  # the first round warms up
            for mode, fn in passes.items():
                start = time.perf_counter()
                fn()
                sync(device)
                times[mode].append(time.perf_counter() - start)
        med = {mode: _median(t[1:] or t) for mode, t in times.items()}
        ratio = med["thinned"] / med["eval"]
        out = perf.measure(benchmark, lambda: thinned(), flops=thinned_flops(cfg, n), batch=n,
                           group="part3-thinned-vs-eval", eval_s=med["eval"], mc_train_s=med["mc_train"],
                           thinned_s=med["thinned"], thinned_to_eval=ratio, mc_train_to_eval=med["mc_train"] / med["eval"],
                           rounds_side_by_side=rounds, target=THINNED_TARGET)
    assert out.shape == (n, 10)
    if not perf.disabled:
        assert ratio <= THINNED_TARGET, f"thinned pass {ratio:.2f}x the eval pass (target <= {THINNED_TARGET})"
