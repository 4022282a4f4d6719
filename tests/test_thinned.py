"""Thinned networks (lab.thinned): equal to the masked full net, the same estimator as per-image masks in
expectation, and the gate fails when a bug is planted in them.

    pytest tests/test_thinned.py -q
"""

from __future__ import annotations

import math

import pytest
import torch

from lab import thinned
from lab.context import RunContext
from lab.experiments import dropout as P3
from lab.models import MLP

CTX = RunContext(device=torch.device("cpu"), quiet=True)


def net(p_input: float = 0.2, p_hidden: float = 0.5, widths=(30, 64, 64, 6), seed: int = 0) -> MLP:
    """A small dropout net with random biases: zero biases would hide a bias taken from the wrong units, and
    with them a missing 1/(1-p) would only rescale the logits (ReLU nets are positively homogeneous)."""
    g = torch.Generator().manual_seed(seed)
    model = MLP(list(widths), p_input=p_input, p_hidden=p_hidden, init="he", generator=g)
    with torch.no_grad():
        for layer in model.layers:
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.5)
    return model


def inputs(n: int = 500, d: int = 30, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


# ----- the thinned net is the masked full net -----


def test_thinned_logits_equal_the_full_net_with_the_same_masks():
    model, x = net(), inputs()
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        masks = thinned.draw_masks(model, gen)
        fast = thinned.thinned_logits(model, masks, thinned.as_columns(x))
        ref = thinned.masked_logits(model, masks, x)
        assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-5)


def test_the_thinned_weights_are_smaller_and_scaled_on_their_columns():
    model = net(widths=(784, 800, 800, 10))
    masks = thinned.draw_masks(model, torch.Generator().manual_seed(0))
    (w1, b1), (w2, b2), (w3, b3) = thinned.thin(model, masks)
    n_in, n1, n2 = (len(m) for m in masks)
    assert w1.shape == (n1, n_in) and w2.shape == (n2, n1) and w3.shape == (10, n2)
    assert b1.shape == (n1,) and b3.shape == (10,)
    # about 80 % of the inputs and half the units survive: a third of the multiply-adds of the full net
    assert 0.75 < n_in / 784 < 0.85 and 0.45 < n1 / 800 < 0.55 and 0.45 < n2 / 800 < 0.55
    macs = n_in * n1 + n1 * n2 + n2 * 10
    assert 0.28 < macs / (784 * 800 + 800 * 800 + 800 * 10) < 0.38
    # inverted dropout: the kept columns carry 1/(1-p) of the layer below, the rows and biases are untouched
    full = model.layers[1]
    i, j = int(masks[2][0]), int(masks[1][0])
    assert w2[0, 0] == pytest.approx(float(full.weight.detach()[i, j]) * 2.0)
    assert float(b2[0]) == float(full.bias.detach()[i])
    assert w1[0, 0] == pytest.approx(float(model.layers[0].weight.detach()[int(masks[1][0]), int(masks[0][0])]) / 0.8)


def test_at_p0_a_thinned_net_is_the_eval_mode_net():
    model = net(0.0, 0.0).eval()
    x = inputs()
    masks = thinned.draw_masks(model, torch.Generator().manual_seed(0))
    assert [len(m) for m in masks] == list(model.widths[:-1])
    with torch.no_grad():
        assert torch.allclose(thinned.thinned_logits(model, masks, thinned.as_columns(x)), model(x), rtol=1e-6, atol=1e-6)


def test_masks_are_seeded_and_keep_one_minus_p():
    model = net()
    a = [thinned.draw_masks(model, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert all(torch.equal(u, v) for u, v in zip(*a))
    gen = torch.Generator().manual_seed(6)
    kept = torch.tensor([[len(m) for m in thinned.draw_masks(model, gen)] for _ in range(400)], dtype=torch.float)
    fractions = kept.mean(0) / torch.tensor(model.widths[:-1], dtype=torch.float)
    assert fractions[0] == pytest.approx(0.8, abs=0.01) and fractions[1:].sub(0.5).abs().max() < 0.01


def test_thinned_ensemble_leaves_the_global_rng_and_the_mode_alone():
    model, x = net().eval(), inputs()
    y = torch.zeros(x.shape[0], dtype=torch.long)
    state = torch.get_rng_state()
    a = P3.mc_ensemble(model, x, y, [1, 3], seed=4, ctx=CTX)
    assert torch.equal(state, torch.get_rng_state()) and not model.training
    b = P3.mc_ensemble(model, x, y, [1, 3], seed=4, ctx=CTX)
    assert a["logits"] == b["logits"] and torch.equal(a["mean_logits"], b["mean_logits"])


# ----- the same estimator as per-image masks, in expectation -----

AGREE_KS = [1, 3, 10]
AGREE_SEEDS = 30


def mean_errors(model: MLP, x, y, estimator: str) -> torch.Tensor:
    """[mask seed, k] logit-averaged ensemble errors (%) over AGREE_SEEDS mask seeds."""
    return torch.tensor([P3.mc_ensemble(model, x, y, AGREE_KS, seed, CTX, estimator)["logits"]["error_pct"]
                         for seed in range(AGREE_SEEDS)])


def z_scores(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(mean a - mean b) / standard error of that difference, per k (independent seeds on both sides)."""
    se = (a.var(0) / a.shape[0] + b.var(0) / b.shape[0]).sqrt()
    return (a.mean(0) - b.mean(0)) / se


@pytest.fixture(scope="module")
def agreement():
    """A small net with random biases scored against its own eval-mode labels (so eval mode errs on 0 %)."""
    model, x = net(), inputs()
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    return model, x, y, mean_errors(model, x, y, "per_image")


def test_thinned_and_per_image_ensembles_agree_in_expectation(agreement):
    """For every image both average k independent thinned nets: the mean error over mask seeds must agree
    within 4 standard errors of the difference (a false alarm about 1 in 16,000 per k)."""
    model, x, y, per_image = agreement
    thin = mean_errors(model, x, y, "thinned")
    z = z_scores(thin, per_image)
    assert z.abs().max() < 4.0, f"thinned vs per-image mean errors differ by {z.tolist()} standard errors"
    # the correlation across images: one mask for all images makes a seed's error vary far more
    assert (thin.std(0) > per_image.std(0)).all()


def test_the_agreement_test_fails_when_the_thinned_net_is_scaled_wrong(agreement, monkeypatch):
    """The planted bug: no 1/(1-p) on the columns. The mean error moves out of the interval above."""
    model, x, y, per_image = agreement
    right = thinned.thin

    def unscaled(model, masks):
        return [(w * (1.0 - p), b) for (w, b), p in zip(right(model, masks), thinned.dropout_rates(model))]

    monkeypatch.setattr(thinned, "thin", unscaled)
    z = z_scores(mean_errors(model, x, y, "thinned"), per_image)
    assert z.abs().max() > 4.0


# ----- the gate catches bugs planted in the thinned-network code (real MNIST) -----

PATH, P0 = "dropout.path[thinned networks]", "dropout.ensemble_p0"


def gate(*names: str) -> dict[str, bool]:
    from lab.gate import gate_names, run_gate

    assert set(names) <= set(gate_names())
    return {name: r.passed for name, r in zip(names, run_gate(torch.device("cpu"), list(names)))}


def test_gate_passes_the_thinned_networks_as_they_are(real_mnist):
    assert gate(PATH, P0) == {PATH: True, P0: True}


def test_gate_fails_on_a_missing_inverse_keep_scale(real_mnist, monkeypatch):
    """At p = 0 the scale is 1, so only the path check can see it: that is what the path check is for."""
    right = thinned.thin
    monkeypatch.setattr(thinned, "thin", lambda model, masks: [
        (w * (1.0 - p), b) for (w, b), p in zip(right(model, masks), thinned.dropout_rates(model))])
    assert gate(PATH, P0) == {PATH: False, P0: True}


def test_gate_fails_on_a_wrong_selection_of_units(real_mnist, monkeypatch):
    """The first n units' rows and biases instead of the n kept ones: the same shapes, the wrong net. At p = 0 all
    units are kept, so the first n are the kept ones and only the path check can see it."""
    rates = thinned.dropout_rates

    def first_rows(model, masks):
        out = []
        for i, layer in enumerate(model.layers):
            w, b = layer.weight, layer.bias
            if i < len(masks) - 1:
                n = len(masks[i + 1])
                w, b = w[:n], b[:n]  # the bug
            out.append((w.index_select(1, masks[i]) / (1.0 - rates(model)[i]), b))
        return out

    monkeypatch.setattr(thinned, "thin", first_rows)
    assert gate(PATH, P0) == {PATH: False, P0: True}


def test_gate_fails_on_a_wrong_average_of_the_members(real_mnist, monkeypatch):
    """The ensemble check at p = 0 catches what does not depend on p: here one member counted twice."""
    right = thinned.thinned_logits
    calls = {"n": 0}

    def doubled_first(model, masks, x):
        calls["n"] += 1
        return right(model, masks, x) * (2.0 if calls["n"] == 1 else 1.0)

    monkeypatch.setattr(thinned, "thinned_logits", doubled_first)
    assert gate(P0)[P0] is False


def test_estimators_are_named():
    with pytest.raises(ValueError, match="unknown estimator"):
        with P3.ensemble_members(net(), inputs(), 0, "per_batch"):
            pass
    assert P3.ESTIMATORS == ("thinned", "per_image")


def test_the_t_table_is_students():
    """lab.sections.paired's 95 % t quantiles against mpmath (installed with torch's sympy), where present."""
    mpmath = pytest.importorskip("mpmath")
    from lab.sections.paired import T975

    for df, t in enumerate(T975, 1):
        two_sided = mpmath.betainc(df / 2, 0.5, 0, df / (df + t * t), regularized=True)
        assert float(two_sided) == pytest.approx(0.05, abs=2e-4), df
    assert math.isfinite(T975[-1])
