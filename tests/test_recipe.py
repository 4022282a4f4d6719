"""Each sanity check passes on a sound model and fails on the bug it exists to catch.

    pytest tests/test_recipe.py
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lab.data import rings_split
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


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def rings():
    return rings_split(100, 2000, seed=0)


def shallow(init="glorot", seed=0, **kw):
    return MLP([2, 6, 3, 2], init=init, generator=gen(seed), **kw)


# --- 1. loss at init ---------------------------------------------------------------------------------

def test_init_loss_passes_for_glorot(rings):
    r = check_init_loss(shallow("glorot"), rings.x_val, rings.y_val)
    assert r.passed, r.detail
    assert r.expected.startswith("0.6931")


def test_init_loss_fails_for_badly_scaled_init(rings):
    r = check_init_loss(shallow("normal:3"), rings.x_val, rings.y_val)
    assert not r.passed
    assert "confident" in r.detail


def test_init_loss_uses_ln10_for_ten_classes():
    model = MLP([20, 32, 10], init="torch", generator=gen())
    x, y = torch.randn(256, 20, generator=gen(1)), torch.randint(0, 10, (256,), generator=gen(2))
    r = check_init_loss(model, x, y, n_classes=10)
    assert r.expected.startswith("2.303") and r.passed
    big = MLP([20, 32, 10], init="normal:2", generator=gen())
    assert not check_init_loss(big, x, y, n_classes=10).passed


# --- 2. overfit one batch ------------------------------------------------------------------------------

def test_overfit_passes_on_a_learnable_net(rings):
    r = check_overfit_batch(shallow(), rings.x_train[:10], rings.y_train[:10])
    assert r.passed, r.detail


def test_overfit_fails_when_first_layer_is_frozen_at_zero(rings):
    model = shallow()
    with torch.no_grad():
        model.layers[0].weight.zero_()
        model.layers[0].bias.zero_()
    model.layers[0].requires_grad_(False)  # the bug: a frozen (dead) layer nothing can flow through
    r = check_overfit_batch(model, rings.x_train[:10], rings.y_train[:10])
    assert not r.passed


class Detached(nn.Module):
    """The bug: the forward pass cuts the graph (a stray .detach()), so nothing can learn."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).detach()


def test_overfit_fails_on_a_detached_graph(rings):
    r = check_overfit_batch(Detached(shallow()), rings.x_train[:10], rings.y_train[:10])
    assert not r.passed
    assert "backpropagate" in r.detail


def test_overfit_fails_with_no_trainable_parameters(rings):
    model = shallow().requires_grad_(False)
    assert not check_overfit_batch(model, rings.x_train[:10], rings.y_train[:10]).passed


# --- 3. eval-mode determinism -----------------------------------------------------------------------

class DropoutIgnoringEval(nn.Module):
    """The bug: dropout that always drops, whatever model.eval() says."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, training=True)


def dropout_net():
    return MLP([30, 64, 64, 10], p_input=0.2, p_hidden=0.5, init="he", generator=gen())


def test_eval_determinism_passes_with_nn_dropout():
    r = check_eval_determinism(dropout_net(), torch.randn(16, 30, generator=gen(3)), expect_train_stochastic=True)
    assert r.passed, r.detail


def test_eval_determinism_fails_when_dropout_ignores_eval():
    model = dropout_net()
    model.drops[0] = DropoutIgnoringEval(0.5)
    r = check_eval_determinism(model, torch.randn(16, 30, generator=gen(3)), expect_train_stochastic=True)
    assert not r.passed
    assert "eval()" in r.detail


def test_eval_determinism_fails_when_dropout_is_missing_in_train_mode():
    model = MLP([30, 64, 64, 10], init="he", generator=gen())  # claims dropout, has none
    r = check_eval_determinism(model, torch.randn(16, 30, generator=gen(3)), expect_train_stochastic=True)
    assert not r.passed
    assert check_eval_determinism(model, torch.randn(16, 30), expect_train_stochastic=False).passed


def test_eval_determinism_restores_training_mode():
    model = dropout_net().train()
    check_eval_determinism(model, torch.randn(4, 30), expect_train_stochastic=True)
    assert model.training


# --- 4. stable deep activations -------------------------------------------------------------------

@pytest.fixture(scope="module")
def deep_x():
    return rings_split(100, 2000, seed=0).x_val


def deep(init, seed=0):
    return MLP([2] + [100] * 20 + [2], init=init, generator=gen(seed))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_activation_stability_passes_under_he(deep_x, seed):
    r = check_activation_stability(deep(init="he", seed=seed), deep_x)
    assert r.passed, r.detail


@pytest.mark.parametrize("init", ["normal:1", "glorot"])
def test_activation_stability_fails_under_bad_init(deep_x, init):
    r = check_activation_stability(deep(init), deep_x)
    assert not r.passed
    assert "explode or vanish" in r.detail


# --- 5. batch independence -----------------------------------------------------------------------

class MixesBatch(nn.Module):
    """The bug: a layer that looks across the batch (here: subtracting the batch mean)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x - x.mean(0, keepdim=True))


def test_batch_independence_passes_for_mlp():
    assert check_batch_independence(dropout_net(), torch.randn(8, 30, generator=gen(4))).passed


@pytest.mark.parametrize("make_bug", [
    lambda: MixesBatch(dropout_net()),
    lambda: nn.Sequential(nn.Linear(30, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)),
])
def test_batch_independence_fails_when_samples_mix(make_bug):
    r = check_batch_independence(make_bug(), torch.randn(8, 30, generator=gen(4)))
    assert not r.passed
    assert "mix" in r.detail


# --- 6. every parameter gets a gradient ----------------------------------------------------------

def test_gradients_reach_all_passes(rings):
    assert check_gradients_reach_all(shallow(), rings.x_train, rings.y_train).passed


def test_gradients_reach_all_fails_on_frozen_layer(rings):
    model = shallow()
    model.layers[1].weight.requires_grad_(False)
    r = check_gradients_reach_all(model, rings.x_train, rings.y_train)
    assert not r.passed and "frozen" in r.detail


class SkipsALayer(nn.Module):
    """The bug: a layer is built (and would be optimised) but the forward pass never uses it."""

    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x):
        return self.used(x)


def test_gradients_reach_all_fails_on_unused_layer(rings):
    r = check_gradients_reach_all(SkipsALayer(), rings.x_train, rings.y_train)
    assert not r.passed and "no gradient" in r.detail


# --- 7. data checks ---------------------------------------------------------------------------------

def test_normalized_passes_and_fails(rings):
    assert check_normalized(rings.x_train).passed
    raw = rings_split(100, 10, seed=0, normalize=False).x_train  # the rings sit at (10, 10)
    r = check_normalized(raw)
    assert not r.passed
    assert not check_normalized(rings.x_train * 100).passed


def test_disjoint_passes_and_fails():
    assert check_disjoint(torch.arange(0, 50), torch.arange(50, 150)).passed
    r = check_disjoint(torch.arange(0, 50), torch.arange(40, 150))
    assert not r.passed and r.measured == "10 shared"


def test_checks_return_results_never_raise(rings):
    """A model whose forward raises in backward is a failed CheckResult with a reason, not an exception."""
    r = check_gradients_reach_all(Detached(shallow()), rings.x_train[:4], rings.y_train[:4])
    assert r.passed is False and r.measured == "backward failed" and "grad" in r.detail


def test_gate_entry_without_data_is_a_failed_check_with_the_fix(tmp_path, monkeypatch):
    """No MNIST and no mirror: the gate reports a failed check naming MNIST_MIRROR instead of crashing."""
    from lab import gate

    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MNIST_MIRROR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    r = gate.run_check("dropout.data_disjoint", torch.device("cpu"))
    assert not r.passed and "MNIST_MIRROR" in r.detail
