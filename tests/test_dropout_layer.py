"""The CPU-cheap Dropout behaves like nn.Dropout: keep rate, scaling, eval identity, gradients, no leaks."""

import pytest
import torch

from lab.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_keep_rate_matches_one_minus_p(p):
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([1000, 1000]), p, torch.device("cpu"))
    assert mask.dtype == torch.bool
    assert abs(float(mask.float().mean()) - (1 - p)) < 0.002  # 1e6 draws: 4 standard errors


@pytest.mark.parametrize("p", [0.5, 0.2])  # 0.5: the 1-bit path (8 units per byte); 0.2: four int16 per int64
def test_masks_are_not_correlated_across_units(p):
    torch.manual_seed(0)
    m = keep_mask(torch.Size([20000, 8]), p, torch.device("cpu")).float()
    corr = torch.corrcoef(m.T)
    off_diagonal = corr - torch.eye(8)
    assert float(off_diagonal.abs().max()) < 0.04  # units cut from the same random word must be independent


def test_train_mode_scales_kept_units_and_eval_is_identity():
    layer = Dropout(0.25)
    x = torch.ones(64, 100)
    y = layer(x)
    assert torch.unique(y).tolist() == pytest.approx([0.0, 1 / 0.75])
    layer.eval()
    assert torch.equal(layer(x), x)


def test_gradient_is_the_mask_times_scale():
    torch.manual_seed(1)
    x = torch.randn(32, 50, requires_grad=True)
    y = Dropout(0.5, inplace=True)(x)  # inplace is ignored under autograd
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2.0)
    assert x.grad is not None and not torch.equal(x.detach(), y.detach())


def test_inplace_only_without_autograd_and_input_untouched_otherwise():
    x = torch.randn(16, 40)
    keep = x.clone()
    with torch.no_grad():
        dropout(x, 0.5, training=True, inplace=False)
        assert torch.equal(x, keep)
        out = dropout(x, 0.5, training=True, inplace=True)
    assert out.data_ptr() == x.data_ptr()


def test_seeded_masks_reproduce():
    a = keep_mask(torch.Size([100, 10]), 0.5, torch.device("cpu"), torch.Generator().manual_seed(3))
    b = keep_mask(torch.Size([100, 10]), 0.5, torch.device("cpu"), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_rejects_bad_p():
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_recorded_activations_survive_in_place_hidden_dropout():
    from lab.models import MLP

    model = MLP([8, 16, 16, 2], p_hidden=0.5, init="he", generator=torch.Generator().manual_seed(0)).train()
    x = torch.randn(32, 8)
    acts = []
    with torch.no_grad():
        model(x, record=acts)
        first = torch.relu(model.layers[0](x))
    assert torch.equal(acts[0], first)  # not zeroed by the in-place mask that followed
