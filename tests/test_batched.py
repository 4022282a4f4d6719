"""The batched trainer (hand-written forward/backward) against autograd and the per-model nn.Module path.

    pytest tests/test_batched.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lab.batched import _Trainer, fit_batched, fit_loop, init_stack, single_thread
from lab.data import rings_split
from lab.models import MLP
from lab.train import evaluate, fit_full_batch

WIDTHS = (2, 6, 3, 2)


@pytest.fixture(scope="module")
def rings():
    return rings_split(100, 500, seed=0)


@pytest.fixture(autouse=True)
def one_thread():
    """As the experiment runs them: tiny nets on one thread (see lab.batched.single_thread)."""
    with single_thread():
        yield


def close(a, b) -> bool:
    """Within 1e-5, relative for losses above 1 (a loss of 15 is stored with float32's ~1e-6 relative precision)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(np.abs(a - b) <= 1e-5 * np.maximum(1.0, np.abs(b))))


@pytest.mark.parametrize("spec", ["normal:0.1", "normal:3", "glorot", "zeros"])
@pytest.mark.parametrize("bias", [True, False])
def test_init_matches_mlp_with_the_same_generator_seed(spec, bias):
    stack = init_stack(WIDTHS, [spec] * 3, [0, 7, 42], bias=bias)
    for m, seed in enumerate([0, 7, 42]):
        ref = MLP(WIDTHS, bias=bias, init=spec, generator=torch.Generator().manual_seed(seed))
        for i, layer in enumerate(ref.layers):
            assert torch.equal(stack.weights[i][m], layer.weight)
            if bias:
                assert torch.equal(stack.biases[i][m], layer.bias)


def test_one_step_equals_autograd_and_torch_sgd(rings):
    """Gradients and the update of the hand-written backward against loss.backward() + optim.SGD."""
    specs, seeds = ["normal:0.5", "normal:2", "glorot"], [1, 2, 3]
    stack = init_stack(WIDTHS, specs, seeds)
    neg_loss = torch.empty(len(seeds))
    _Trainer(stack, rings.x_train, rings.y_train, lr=0.1).step(neg_loss)
    for m, (spec, seed) in enumerate(zip(specs, seeds)):
        model = MLP(WIDTHS, init=spec, generator=torch.Generator().manual_seed(seed))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = F.cross_entropy(model(rings.x_train), rings.y_train)
        loss.backward()
        opt.step()
        assert float(-neg_loss[m]) == pytest.approx(loss.item(), rel=1e-6)
        for i, layer in enumerate(model.layers):
            assert torch.allclose(stack.weights[i][m], layer.weight, atol=1e-6, rtol=1e-5)
            assert torch.allclose(stack.biases[i][m], layer.bias, atol=1e-6, rtol=1e-5)


# The large sigma: 3 starts at ~20 ln 2. Without biases it is 2 (~6 ln 2): at 3, one seed's ReLU pattern sits on
# a knife edge and float rounding (1e-7) flips a unit at step 34 in one path and not the other.
@pytest.mark.parametrize("bias,large", [(True, "normal:3"), (False, "normal:2")])
def test_losses_match_the_per_model_path_over_many_steps(rings, bias, large):
    """Same seeds, same steps: the batched sweep and MLP + lab.train.fit_full_batch give the same curves."""
    specs = ["normal:0.05", "normal:0.3", "normal:1", large, "glorot"]
    seeds = [0, 1] * len(specs)
    specs = [s for s in specs for _ in range(2)]
    steps = 150
    stack = init_stack(WIDTHS, specs, seeds, bias=bias)
    fit = fit_batched(stack, rings.x_train, rings.y_train, steps, 0.1, rings.x_val, rings.y_val, eval_at=[0, 50])
    loop = fit_loop(WIDTHS, specs, seeds, rings.x_train, rings.y_train, steps, 0.1, bias=bias,
                    x_val=rings.x_val, y_val=rings.y_val)
    assert fit.eval_steps == [0, 50, steps]
    for m, ref in enumerate(loop):
        assert fit.diverged_at[m] is None and ref["diverged_at"] is None
        assert close(fit.train_loss[m], ref["train_loss"]), specs[m]
        # The final validation loss after 150 steps of the large sigma differed by 1.8e-5 (relative 1e-4) on one
        # machine and by 1.83e-5 on another (deterministically): float32 round-off of two summation orders,
        # amplified by a sharp large-sigma net. 2e-4 relative.
        assert fit.val_loss[m, -1] == pytest.approx(ref["val_loss"][-1], rel=2e-4, abs=1e-5)
        assert fit.val_acc[m, -1] == pytest.approx(ref["val_acc"][-1])
    assert fit.train_loss[specs.index(large), 0] > 2.5  # the large sigma really starts far from ln 2


def test_trained_member_equals_the_trained_module(rings):
    stack = init_stack(WIDTHS, ["normal:0.5"] * 2, [4, 5])
    fit = fit_batched(stack, rings.x_train, rings.y_train, 100, 0.1)
    loop_model = MLP(WIDTHS, init="normal:0.5", generator=torch.Generator().manual_seed(5))
    fit_full_batch(loop_model, rings.x_train, rings.y_train, 100, 0.1)
    member = stack.member(1)
    for a, b in zip(member.parameters(), loop_model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(stack.logits(rings.x_val)[1], member(rings.x_val), atol=1e-5)
    assert fit.final_train_acc[1] == pytest.approx(evaluate(loop_model, rings.x_train, rings.y_train)["acc"])


def test_divergence_is_recorded_per_member_like_fit_full_batch(rings):
    """lr 1e16 overflows float32 within a step or two: the step is recorded, later values are NaN, others unaffected."""
    specs, seeds, lr = ["normal:0.3"] * 3, [0, 1, 2], 1e16
    stack = init_stack(WIDTHS, specs, seeds)
    fit = fit_batched(stack, rings.x_train, rings.y_train, 20, lr, rings.x_val, rings.y_val, eval_at=[0, 10])
    loop = fit_loop(WIDTHS, specs, seeds, rings.x_train, rings.y_train, 20, lr)
    assert [r["diverged_at"] for r in loop] == fit.diverged_at
    assert any(d is not None for d in fit.diverged_at)
    for m, at in enumerate(fit.diverged_at):
        if at is not None:
            assert not np.isfinite(fit.train_loss[m, at]) and np.isnan(fit.train_loss[m, at + 1 :]).all()
            assert np.isnan(fit.val_loss[m, -1])
    # a healthy member in the same batch is untouched by its neighbours' NaNs
    healthy = init_stack(WIDTHS, ["normal:0.3", "normal:1e13"], [0, 0])
    alone = init_stack(WIDTHS, ["normal:0.3"], [0])
    a = fit_batched(healthy, rings.x_train, rings.y_train, 30, 0.1)
    b = fit_batched(alone, rings.x_train, rings.y_train, 30, 0.1)
    assert a.diverged_at == [None, 0] and np.array_equal(a.train_loss[0], b.train_loss[0])
