"""What every experiment run needs besides its config: device, profile, progress-bar policy.

    ctx = RunContext(device=resolve_device("auto"), profile="quick")
    for step in ctx.progress(range(1000), desc="sweep"): ...
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Iterable, Mapping, TypeVar

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
    # phase -> estimated seconds of the whole phase (lab.cost, at the rate measured before the run): the bars of a
    # phase say what the whole phase should take, beside tqdm's own ETA for the bar
    eta_s: Mapping[str, float] = field(default_factory=dict)

    def progress(self, iterable: Iterable[T] | None = None, phase: str | None = None, **kwargs) -> Iterable[T]:
        """A tqdm bar on stderr, disabled with --quiet or when stderr is not a TTY (CI logs stay clean)."""
        disable = self.quiet or not sys.stderr.isatty()
        if phase is not None:
            eta = self.eta_s.get(phase)
            kwargs["desc"] = f"[{phase}{f' ~{_duration(eta)} est.' if eta is not None else ''}] {kwargs.get('desc', '')}"
        return tqdm(iterable, file=sys.stderr, disable=disable, leave=False, dynamic_ncols=True, **kwargs)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


__all__ = ["DEVICE_CHOICES", "RunContext", "resolve_device"]
