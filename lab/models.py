"""The MLP used by every part: widths, ReLU, optional dropout; a forward that can record activations.

    model = MLP([2, 6, 3, 2], init="normal:0.5", generator=torch.Generator().manual_seed(0))
    acts = []; logits = model(x, record=acts); stats = activation_stats(acts)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lab.dropout import Dropout
from lab.inits import make_init


class MLP(nn.Module):
    """Linear layers with ReLU between them; dropout on the input and after each hidden activation.

    ``init`` (a spec such as "normal:0.1", "glorot", "he") is applied after construction with
    ``self.apply``, so the experiments can swap it; ``generator`` makes the draw reproducible.
    """

    def __init__(
        self,
        widths: Sequence[int],
        *,
        p_input: float = 0.0,
        p_hidden: float = 0.0,
        bias: bool = True,
        init: str | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"an MLP needs at least input and output widths, got {list(widths)}")
        self.widths = tuple(int(w) for w in widths)
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(self.widths[:-1], self.widths[1:]))
        # Identity where p == 0: no mask work at all, and eval/train behave the same. lab.dropout.Dropout is
        # nn.Dropout with cheaper CPU masks (the MC-dropout passes of part 3 are mask-bound). Hidden layers
        # mask in place under no_grad (their input is a fresh ReLU output); the input layer never does,
        # because its input is the caller's batch.
        self.drop_in = Dropout(p_input) if p_input > 0 else nn.Identity()
        self.drops = nn.ModuleList(
            Dropout(p_hidden, inplace=True) if p_hidden > 0 else nn.Identity() for _ in range(len(self.layers) - 1)
        )
        if init is not None:
            self.apply(make_init(init, generator))

    @property
    def n_classes(self) -> int:
        return self.widths[-1]

    def forward(self, x: torch.Tensor, record: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits. If ``record`` is a list, each hidden layer's post-ReLU activation is appended to it."""
        h = self.drop_in(x)
        for layer, drop in zip(self.layers[:-1], self.drops):
            h = torch.relu(layer(h))
            if record is not None:
                record.append(h)
                if getattr(drop, "inplace", False):
                    h = h.clone()  # the recorded activation must not be masked in place
            h = drop(h)
        return self.layers[-1](h)


def abs_stats(tensors: Sequence[torch.Tensor]) -> dict[str, list[float]]:
    """Per-tensor mean and std of |values| (over all samples and units), as float lists."""
    means, stds = [], []
    for t in tensors:
        std, mean = torch.std_mean(t.detach().abs())  # one |.| pass, one fused reduction
        means.append(float(mean))
        stds.append(float(std))
    return {"mean_abs": means, "std_abs": stds}


def activation_stats(model: MLP, x: torch.Tensor) -> dict[str, list[float]]:
    """Mean and std of |activation| per hidden layer for one forward pass in eval mode."""
    acts: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(x, record=acts)
    model.train(was_training)
    return abs_stats(acts)


__all__ = ["MLP", "abs_stats", "activation_stats"]
