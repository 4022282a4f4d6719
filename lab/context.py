"""What every experiment run needs besides its config: device, profile, progress-bar policy.

    ctx = RunContext(device=resolve_device("auto"), profile="quick")
    for step in ctx.progress(range(1000), desc="sweep"): ...
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterable, TypeVar

import torch
from tqdm.auto import tqdm

from lab.errors import LabError

T = TypeVar("T")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without a GPU is a LabError, not a crash later."""
    if name not in DEVICE_CHOICES:
        raise LabError(f"unknown device '{name}' (choose from: {', '.join(DEVICE_CHOICES)})")
    if name == "cuda" and not torch.cuda.is_available():
        raise LabError("--device cuda was asked for, but no CUDA GPU is available here; use --device cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class RunContext:
    device: torch.device = torch.device("cpu")
    profile: str = "full"
    quiet: bool = False  # no progress bars (they are also off when stderr is not a terminal)

    def progress(self, iterable: Iterable[T] | None = None, **kwargs) -> Iterable[T]:
        """A tqdm bar on stderr, disabled with --quiet or when stderr is not a TTY (CI logs stay clean)."""
        disable = self.quiet or not sys.stderr.isatty()
        return tqdm(iterable, file=sys.stderr, disable=disable, leave=False, dynamic_ncols=True, **kwargs)


__all__ = ["DEVICE_CHOICES", "RunContext", "resolve_device"]
