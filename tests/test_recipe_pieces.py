"""The recipe checks on an experiment's pieces, on plain modules and tensors: each passes on a sound setup
and fails on the bug it exists for (tests/test_gate_mutations.py then plants the same bugs in the lab).

    pytest tests/test_recipe_pieces.py -q
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lab.models import MLP, activation_stats
from lab.recipe import (
    check_activation_record,
    check_architecture,
    check_class_balance,
    check_disjoint_content,
    check_dropout_rates,
    check_dropout_scaling,
    check_ensemble_reduces_to_eval,
    check_ensemble_stochastic,
    check_epoch_coverage,
    check_evaluate,
    check_finite_inputs,
    check_finite_training,
    check_init_statistics,
    check_labels_learnable,
    check_layers_matter,
    check_loss_decreases,
    check_normalized_with_train_stats,
    check_optimizer,
    check_params_update,
    check_paths_agree,
    check_split_scores,
    check_step_matches_reference,
)
from lab.train import evaluate, train_step


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


WIDTHS = (20, 32, 32, 4)


def net(p_in=0.2, p_hid=0.5, seed=0, init="he"):
    return MLP(WIDTHS, p_input=p_in, p_hidden=p_hid, init=init, generator=gen(seed))


@pytest.fixture(scope="module")
def xy():
    x = torch.randn(400, 20, generator=gen(1))
    w = torch.randn(20, 4, generator=gen(2))
    return x, (x @ w).argmax(1)  # a learnable labelling


def epoch_fn(batch_size=50):
    """A sound minibatch epoch, like the lab's train_epoch."""

    def run(model, optimizer, x, y):
        model.train()
        perm = torch.randperm(x.shape[0], generator=gen(5))
        losses = [train_step(model, optimizer, x[idx], y[idx]) for idx in perm.split(batch_size)]
        return torch.stack(losses).mean()

    return run


def adam(model, lr=1e-2):
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)


# --- data ------------------------------------------------------------------------------------------------

def test_finite_inputs():
    x = torch.randn(10, 3)
    assert check_finite_inputs({"train": x, "test": None}).passed
    x[3, 1] = float("nan")
    r = check_finite_inputs({"train": x})
    assert not r.passed and "train (1)" in r.detail


def test_disjoint_by_content_not_by_index():
    a = torch.randn(50, 8, generator=gen())
    assert check_disjoint_content(a[:30], a[30:]).passed
    r = check_disjoint_content(a[:30], torch.cat([a[25:30], torch.randn(5, 8)]))  # 5 rows leak, other indices
    assert not r.passed and r.measured == "5 shared"


def test_normalized_with_train_stats():
    raw_tr, raw_va = torch.rand(200, 5) * 10 + 3, torch.rand(100, 5) * 10 + 3
    m, s = raw_tr.mean(0), raw_tr.std(0)
    good = {"train": ((raw_tr - m) / s, raw_tr), "validation": ((raw_va - m) / s, raw_va)}
    assert check_normalized_with_train_stats(raw_tr, good).passed
    own = {"train": good["train"], "validation": ((raw_va - raw_va.mean(0)) / raw_va.std(0), raw_va)}
    r = check_normalized_with_train_stats(raw_tr, own)
    assert not r.passed and "validation off" in r.detail
    # a population std instead of the sample std is a convention, not a bug
    pop = {"train": ((raw_tr - m) / raw_tr.std(0, correction=0), raw_tr)}
    assert check_normalized_with_train_stats(raw_tr, pop).passed
    # one scalar over all values (MNIST) vs per feature
    g = {"validation": ((raw_va - raw_tr.mean()) / raw_tr.std(), raw_va)}
    assert check_normalized_with_train_stats(raw_tr, g, per_feature=False).passed
    assert not check_normalized_with_train_stats(raw_tr, g, per_feature=True).passed


def test_class_balance():
    y = torch.arange(1000) % 10
    assert check_class_balance(y, y[:500], 10).passed
    r = check_class_balance(y[y < 9], y, 10)  # class 9 missing from train
    assert not r.passed and "no example of class 9" in r.detail
    skew = torch.cat([torch.zeros(900, dtype=torch.long), torch.arange(100) % 10])
    assert not check_class_balance(skew, y, 10).passed
    assert not check_class_balance(y.float(), y, 10).passed


# --- labels ------------------------------------------------------------------------------------------------

def short_fit(x_tr, y_tr, x_va, y_va):
    torch.manual_seed(0)
    model = net(0.0, 0.0)
    opt = adam(model)
    for _ in range(30):
        epoch_fn()(model, opt, x_tr, y_tr)
    return evaluate(model, x_va, y_va)


def test_labels_learnable_passes_and_fails_on_shuffled_labels(xy):
    x, y = xy
    assert check_labels_learnable(short_fit, x[:300], y[:300], x[300:], y[300:]).passed
    shuffled = y[:300][torch.randperm(300, generator=gen(9))]
    r = check_labels_learnable(short_fit, x[:300], shuffled, x[300:], y[300:])
    assert not r.passed and "Labels misaligned" in r.detail


# --- wiring ------------------------------------------------------------------------------------------------

class NoReLU(MLP):
    def forward(self, x, record=None):
        h = x
        for layer in self.layers:
            h = layer(h)
        return h


class SkipsMiddle(MLP):
    def forward(self, x, record=None):
        return self.layers[2](torch.relu(self.layers[0](x)))


def test_architecture(xy):
    x, _ = xy
    assert check_architecture(net(), WIDTHS, x[:16]).passed
    assert not check_architecture(MLP((20, 32, 4)), WIDTHS, x[:16]).passed
    r = check_architecture(NoReLU(WIDTHS), WIDTHS, x[:16])
    assert not r.passed and "ReLU" in r.detail
    assert not check_architecture(SkipsMiddle(WIDTHS), WIDTHS, x[:16]).passed


def test_layers_matter(xy):
    x, _ = xy
    assert check_layers_matter(net(), x[:16]).passed
    r = check_layers_matter(SkipsMiddle(WIDTHS, init="he", generator=gen()), x[:16])
    assert not r.passed and "2" in r.detail


class NoScaleDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return x * (torch.rand_like(x) >= self.p) if self.training else x


def dropout_run(x, y):
    def run(model):
        epoch_fn(100)(model, adam(model), x, y)
    return run


def test_dropout_rates_and_scaling(xy):
    x, y = xy
    run = dropout_run(x, y)
    assert check_dropout_rates(net(), run, 0.2, 0.5).passed
    assert check_dropout_scaling(net(), run, 0.2, 0.5).passed
    r = check_dropout_rates(net(0.0, 0.5), run, 0.2, 0.5)  # input dropout missing
    assert not r.passed and "input drops 0.000" in r.detail
    assert not check_dropout_rates(net(0.2, 0.3), run, 0.2, 0.5).passed  # wrong hidden rate
    unscaled = net()
    unscaled.drop_in = NoScaleDropout(0.2)
    assert check_dropout_rates(unscaled, run, 0.2, 0.5).passed
    r = check_dropout_scaling(unscaled, run, 0.2, 0.5)
    assert not r.passed and "1/(1-0.2)" in r.detail

    def eval_loop(model):  # the loop forgets train mode: no dropout while training
        model.eval()
        with torch.no_grad():
            model(x)
    assert not check_dropout_rates(net(), eval_loop, 0.2, 0.5).passed


# --- evaluation / ensembles ---------------------------------------------------------------------------------

def test_evaluate(xy):
    x, y = xy
    ev = lambda m, a, b: evaluate(m, a, b, batch_size=150)  # noqa: E731 - chunked, like the lab's
    assert check_evaluate(ev, net(), x, y).passed

    def no_eval(model, a, b):
        with torch.no_grad():
            logits = model(a)
        return {"loss": float(F.cross_entropy(logits, b)), "error_pct": 100 * float((logits.argmax(1) != b).float().mean())}
    r = check_evaluate(no_eval, net(), x, y)
    assert not r.passed and "dropout still on" in r.detail

    def sticky_eval(model, a, b):
        model.eval()
        return no_eval(model, a, b)
    assert not check_evaluate(sticky_eval, net(), x, y).passed

    def wrong_loss(model, a, b):
        out = evaluate(model, a, b)
        return {**out, "loss": out["loss"] * 1.01}
    assert not check_evaluate(wrong_loss, net(), x, y).passed


def mc(model, x, k, seed):
    """A sound Monte-Carlo ensemble: k seeded train-mode passes, logits averaged, mode restored."""
    was = model.training
    model.train()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        out = torch.stack([model(x) for _ in range(k)]).mean(0)
    model.train(was)
    return out


def test_ensemble_checks(xy):
    x, _ = xy
    assert check_ensemble_reduces_to_eval(mc, net(0.0, 0.0), x).passed
    assert check_ensemble_stochastic(mc, net(), x).passed
    summed = lambda m, a, k, s: mc(m, a, k, s) * k  # noqa: E731 - forgot to divide by k
    assert not check_ensemble_reduces_to_eval(summed, net(0.0, 0.0), x, k=3).passed

    def in_eval(model, a, k, seed):
        model.eval()
        with torch.no_grad():
            return model(a)
    r = check_ensemble_stochastic(in_eval, net(), x)
    assert not r.passed and "model.train() missing" in r.detail

    def unseeded(model, a, k, seed):
        model.train()
        with torch.no_grad():
            return model(a)
    assert not check_ensemble_stochastic(unseeded, net(), x).passed


def test_split_scores(xy):
    x, y = xy
    model = net()
    tr, va = evaluate(model, x[:200], y[:200]), evaluate(model, x[200:], y[200:])
    splits = {"train": (x[:200], y[:200]), "validation": (x[200:], y[200:])}
    assert check_split_scores({"train": tr, "validation": va}, model, splits).passed
    r = check_split_scores({"train": tr, "validation": tr}, model, splits)
    assert not r.passed and "mix-up" in r.detail


# --- optimisation --------------------------------------------------------------------------------------------

def test_optimizer_check():
    model = net()
    want = {"type": "AdamW", "lr": 1e-2, "weight_decay": 0.01}
    assert check_optimizer(adam(model), model, want).passed
    assert not check_optimizer(torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=0.01), model, want).passed
    assert not check_optimizer(adam(model, lr=1e-3), model, want).passed
    r = check_optimizer(torch.optim.AdamW(model.layers[:-1].parameters(), lr=1e-2, weight_decay=0.01), model, want)
    assert not r.passed and "not optimised" in r.detail
    assert not check_optimizer(adam(net()), model, want).passed  # another model's parameters


def no_zero_grad_step(model, optimizer, x, y):
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def test_training_checks_pass_on_a_sound_loop(xy):
    x, y = xy
    model = net()
    assert check_loss_decreases(model, adam(model), epoch_fn(), x[:200], y[:200], 3).passed
    model = net()
    assert check_params_update(model, adam(model), epoch_fn(50), x[:50], y[:50]).passed
    model = net()
    assert check_finite_training(model, adam(model), epoch_fn(), x[:200], y[:200], 3).passed
    model = net()
    assert check_epoch_coverage(model, adam(model), epoch_fn(), x[:230], y[:230]).passed
    a = net(0.0, 0.0)
    b = copy.deepcopy(a)
    assert check_step_matches_reference(a, adam(a), b, adam(b), epoch_fn(), x[:1], y[:1]).passed


def ascent_step(model, optimizer, x, y):
    optimizer.zero_grad()
    (-F.cross_entropy(model(x), y)).backward()
    optimizer.step()


def test_training_checks_fail_on_their_bugs(xy):
    x, y = xy
    model = net()
    r = check_loss_decreases(model, adam(model), ascent_step, x[:200], y[:200], 3)
    assert not r.passed and "does not descend" in r.detail
    model = net()
    frozen_opt = torch.optim.AdamW(model.layers[:-1].parameters(), lr=1e-2, weight_decay=0.01)
    r = check_params_update(model, frozen_opt, epoch_fn(50), x[:50], y[:50])
    assert not r.passed and "layers.2" in r.detail
    model = net()
    r = check_finite_training(model, torch.optim.SGD(model.parameters(), lr=1e6), epoch_fn(), x[:200], y[:200], 3)
    assert not r.passed
    model = net()

    def first_batch_only(m, o, a, b):
        return train_step(m, o, a[:50], b[:50])
    assert not check_epoch_coverage(model, adam(model), first_batch_only, x[:230], y[:230]).passed
    a = net(0.0, 0.0)
    b = copy.deepcopy(a)
    r = check_step_matches_reference(a, adam(a), b, adam(b), no_zero_grad_step, x[:1], y[:1])
    assert not r.passed and "accumulate" in r.detail


# --- init ---------------------------------------------------------------------------------------------------

def test_init_statistics():
    build = lambda spec: (lambda seed: MLP((30, 40, 5), init=spec, generator=gen(seed)))  # noqa: E731
    for spec in ("normal:0.1", "glorot", "he", "uniform:0.3"):
        assert check_init_statistics(build(spec), spec).passed, spec
    r = check_init_statistics(build("normal:0.01"), "normal:0.1")
    assert not r.passed and "weight std" in r.detail
    r = check_init_statistics(build("glorot_uniform"), "glorot")
    assert not r.passed and "kurtosis" in r.detail
    r = check_init_statistics(lambda seed: MLP((30, 40, 5), init="torch"), "he")  # init never applied, biases too
    assert not r.passed and "biases start at" in r.detail
    r = check_init_statistics(lambda seed: MLP((30, 40, 5), init="normal:0.1"), "normal:0.1")  # generator ignored
    assert not r.passed and "same seed gives different weights" in r.detail
    r = check_init_statistics(lambda seed: MLP((30, 40, 5), init="he", generator=gen(0)), "he")  # seed ignored
    assert not r.passed and "another seed gives the same weights" in r.detail


def test_activation_record(xy):
    x, _ = xy
    model = net(0.0, 0.0)
    assert check_activation_record(activation_stats, model, x).passed

    def pre_relu(m, a):
        with torch.no_grad():
            z = m.layers[0](a)
            z2 = m.layers[1](torch.relu(z))
        return {"mean_abs": [float(z.abs().mean()), float(z2.abs().mean())],
                "std_abs": [float(z.abs().std()), float(z2.abs().std())]}
    r = check_activation_record(pre_relu, model, x)
    assert not r.passed and "wrong tensor" in r.detail


def test_paths_agree():
    a = torch.tensor([1.0, 2.0, float("nan")])
    assert check_paths_agree(lambda: (a, a.clone()), 1e-6, "same").passed
    r = check_paths_agree(lambda: (a + 1e-3, a), 1e-6, "off", fix="look at the fast path")
    assert not r.passed and "look at the fast path" in r.detail
    assert not check_paths_agree(lambda: (torch.tensor([1.0, 2.0, 3.0]), a), 1e-6, "nan in one").passed


def test_rings_geometry_catches_a_generator_off_the_lab_spec():
    import numpy as np

    from lab.hooks import LAB_RINGS
    from lab.recipe import check_rings_geometry

    def rings(n=4000, radii=(1.0, 4.0), low=-1.0, high=1.0, center=(10.0, 10.0), seed=0):
        rng = np.random.default_rng(seed)
        y = rng.permutation(np.arange(n) % 2)
        r = np.asarray(radii)[y] + rng.uniform(low, high, n)
        a = rng.uniform(0, 2 * np.pi, n)
        xy = np.stack([r * np.cos(a), r * np.sin(a)], 1) + np.asarray(center)
        return torch.tensor(xy, dtype=torch.float32), torch.tensor(y)

    assert check_rings_geometry(*rings(), **LAB_RINGS).passed
    assert check_rings_geometry(*rings(n=200), **LAB_RINGS).passed  # a small sample fills its ring less: no alarm
    narrow = check_rings_geometry(*rings(low=0.0), **LAB_RINGS)
    assert not narrow.passed and "narrower than ring" in narrow.detail
    wide = check_rings_geometry(*rings(radii=(1.0, 5.0)), **LAB_RINGS)
    assert not wide.passed and "outside ring" in wide.detail
    moved = check_rings_geometry(*rings(center=(0.0, 0.0)), **LAB_RINGS)
    assert not moved.passed and "centred" in moved.detail
    x, y = rings()
    shuffled = check_rings_geometry(x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))],
                                    **LAB_RINGS)
    assert not shuffled.passed
