"""Dropout whose masks are cheap on the CPU: 1 or 16 random bits per element instead of one float draw.

    layer = Dropout(0.5)   # drop-in for nn.Dropout: identity in eval(), inverted dropout in train()

Why: profiling the Monte-Carlo pass (10,000 images, train mode) showed nn.Dropout's Bernoulli draws
costing more than the three matmuls. Here torch's generator yields int64 words that are cut up:
for p = 0.5 each bit is one coin flip (exact, 64 units per draw); for any other p four int16 values
per word are compared with a threshold, so p is resolved to 1/65536 (the keep probability differs
from 1 - p by at most 2^-17). Under no_grad an in-place layer masks its input without new buffers.
On CUDA, torch's fused dropout kernel is already fast and is used as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16  # int16 resolution of the keep/drop threshold


def _random_words(n_words: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(-(1 << 63), (1 << 63) - 1, (n_words,), dtype=torch.int64, device=device, generator=generator)


_SELECT: dict[torch.device, torch.Tensor] = {}


def _bit_select(device: torch.device) -> torch.Tensor:
    """The eight single-bit masks of a byte, built once per device (not on every training step)."""
    device = torch.device(device)
    if device not in _SELECT:
        _SELECT[device] = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=device)
    return _SELECT[device]


def keep_mask(shape: torch.Size, p: float, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean mask, True with probability 1 - p, from the given or the global generator."""
    numel = 1
    for s in shape:
        numel *= s
    if p == 0.5:
        # one bit per unit: unpack the bytes of ceil(numel / 64) words with a bit-select per position
        data = _random_words(-(-numel // 64), device, generator).view(torch.uint8)
        select = _bit_select(device)
        return data.unsqueeze(1).bitwise_and(select).view(-1)[:numel].view(shape).bool()
    r = _random_words(-(-numel // 4), device, generator).view(torch.int16)[:numel].view(shape)
    threshold = int(round(p * _LEVELS)) - (1 << 15)  # r is uniform on [-32768, 32767]
    return r >= threshold


def dropout(
    x: torch.Tensor, p: float, training: bool = True, inplace: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Inverted dropout (scale kept units by 1 / (1 - p)); identity when not training or p == 0.

    ``inplace`` is honoured only where autograd is off (Monte-Carlo passes): there it saves two
    full-size buffers per layer. Never set it for a tensor the caller still needs (the input batch).
    """
    if not training or p == 0.0:
        return x
    if x.is_cuda and generator is None:
        return F.dropout(x, p, training=True)
    mask = keep_mask(x.shape, p, x.device, generator)
    scale = 1.0 / (1.0 - p)
    if inplace and not (torch.is_grad_enabled() and x.requires_grad):
        return x.mul_(mask).mul_(scale)
    # one float mask already scaled: a single product forward and a single product backward
    return x * mask.to(x.dtype).mul_(scale)


class Dropout(nn.Module):
    """nn.Dropout's interface (``p``, train/eval behaviour) with the cheaper CPU mask above."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


__all__ = ["Dropout", "dropout", "keep_mask"]
