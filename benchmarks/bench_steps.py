"""Training-step and forward-pass speed of the code the experiments run, against a same-run matmul roofline.

    make bench          # or: pytest benchmarks --benchmark-only --benchmark-json report/data/bench.json

Every case calls the experiments' own functions (lab.train.train_step, lab.models, the Part 3 model
and optimizer builders), never a re-implementation. Inputs are random tensors of the real shapes:
speed does not depend on pixel values, and the benchmarks then need no dataset.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import ROOFLINE_N, mlp_flops
from lab.config import make_config
from lab.experiments.dropout import make_model, make_optimizer
from lab.models import MLP, activation_stats
from lab.train import train_step

MNIST_WIDTHS = (784, 800, 800, 10)
VAL_IMAGES = 10_000


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


@pytest.mark.parametrize("mode", ["eval", "mc_train"])
def test_validation_pass(benchmark, perf, device, mode):
    """Part 3: one pass over the validation images in eval mode (weight scaling) or train mode (one MC member)."""
    cfg = make_config("dropout")
    n = perf.size(VAL_IMAGES, 500)
    model = make_model(cfg, cfg.p_input, cfg.p_hidden, device)
    model.train(mode == "mc_train")
    x = torch.randn(n, 784, generator=gen(7)).to(device)

    def one_pass():
        with torch.no_grad():
            return model(x)

    logits = perf.measure(benchmark, one_pass, flops=mlp_flops(MNIST_WIDTHS, n, False), batch=n, group="part3-pass",
                          mode=mode)
    assert logits.shape == (n, 10)
