"""Data: the two-rings toy generator and MNIST (torchvision layout, local mirror, checksums). No plotting.

    split = rings_split(n_train=100, n_val=10_000, seed=0)   # normalised with the training statistics
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

RING_RADII = (1.0, 4.0)  # class 0 on the inner ring, class 1 on the outer
RING_NOISE = 1.0  # radial noise U(-1, 1)
RING_CENTER = (10.0, 10.0)  # deliberately off-origin: unnormalised inputs are the lab's trap


def two_rings(
    n: int,
    rng: np.random.Generator,
    radii: tuple[float, float] = RING_RADII,
    noise: float = RING_NOISE,
    center: tuple[float, float] = RING_CENTER,
) -> tuple[np.ndarray, np.ndarray]:
    """n points on two noisy rings, classes balanced and shuffled: (float32 [n, 2], int64 [n])."""
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    radius = np.asarray(radii, dtype=np.float64)[labels] + rng.uniform(-noise, noise, size=n)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    xy = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1) + np.asarray(center)
    return xy.astype(np.float32), labels


@dataclass(frozen=True)
class Split:
    """Train/validation tensors plus the training statistics used to normalise both."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    mean: torch.Tensor  # per-feature mean of the raw training inputs
    std: torch.Tensor  # per-feature std of the raw training inputs
    n_classes: int

    def to(self, device: torch.device | str) -> "Split":
        move = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_val", "y_val", "mean", "std")}
        return Split(**move, n_classes=self.n_classes)


def standardize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean) / std


def rings_split(n_train: int, n_val: int, seed: int, normalize: bool = True) -> Split:
    """Training and validation sets from one seeded generator; validation drawn after training."""
    rng = np.random.default_rng(seed)
    x_tr, y_tr = two_rings(n_train, rng)
    x_va, y_va = two_rings(n_val, rng)
    x_train, x_val = torch.from_numpy(x_tr), torch.from_numpy(x_va)
    mean, std = x_train.mean(0), x_train.std(0)
    if normalize:
        x_train, x_val = standardize(x_train, mean, std), standardize(x_val, mean, std)
    return Split(x_train, torch.from_numpy(y_tr), x_val, torch.from_numpy(y_va), mean, std, n_classes=2)


__all__ = ["RING_CENTER", "RING_NOISE", "RING_RADII", "Split", "rings_split", "standardize", "two_rings"]
