"""Named weight initialisations, applied after construction with ``model.apply(make_init(spec))``.

    model.apply(make_init("normal:0.1"))   # weights N(0, 0.1), biases 0

Specs: ``normal:SIGMA``, ``uniform:A`` (U(-A, A)), ``glorot`` (xavier_normal_), ``glorot_uniform``,
``he`` (kaiming_normal_ for ReLU, fan_in), ``he_uniform``, ``zeros``, ``torch`` (PyTorch's default
nn.Linear init, left untouched). Every init sets biases to zero, as the lab prescribes, except ``torch``.
Built on torch.nn.init; an optional torch.Generator makes draws reproducible without global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lab.errors import LabError

_PARAM_FREE = ("glorot", "glorot_uniform", "he", "he_uniform", "zeros", "torch")
_WITH_PARAM = ("normal", "uniform")


@dataclass(frozen=True)
class InitSpec:
    name: str
    param: float | None = None

    @property
    def label(self) -> str:
        """Human label used in figures and tables."""
        if self.name == "normal":
            return f"N(0, {self.param:g})"
        if self.name == "uniform":
            return f"U(-{self.param:g}, {self.param:g})"
        return {
            "glorot": "Glorot (xavier_normal_)",
            "glorot_uniform": "Glorot uniform",
            "he": "He (kaiming_normal_)",
            "he_uniform": "He uniform",
            "zeros": "all zeros",
            "torch": "PyTorch default",
        }[self.name]


def parse_init(spec: str) -> InitSpec:
    """'normal:0.1' -> InitSpec('normal', 0.1); unknown names or bad parameters raise LabError."""
    name, _, param = spec.strip().partition(":")
    if name in _WITH_PARAM:
        try:
            value = float(param)
        except ValueError:
            raise LabError(f"init '{spec}': '{name}' needs a number, e.g. '{name}:0.1'") from None
        if not (value > 0 and math.isfinite(value)):
            raise LabError(f"init '{spec}': the scale must be a positive finite number")
        return InitSpec(name, value)
    if name in _PARAM_FREE:
        if param:
            raise LabError(f"init '{spec}': '{name}' takes no parameter")
        return InitSpec(name)
    raise LabError(f"unknown init '{spec}' (choose from: normal:SIGMA, uniform:A, {', '.join(_PARAM_FREE)})")


def init_weight_(weight: torch.Tensor, spec: InitSpec, generator: torch.Generator | None = None) -> None:
    """Initialise one weight matrix (out_features x in_features) in place according to spec."""
    g = generator
    if spec.name == "normal":
        nn.init.normal_(weight, 0.0, spec.param, generator=g)
    elif spec.name == "uniform":
        nn.init.uniform_(weight, -spec.param, spec.param, generator=g)
    elif spec.name == "glorot":
        nn.init.xavier_normal_(weight, generator=g)
    elif spec.name == "glorot_uniform":
        nn.init.xavier_uniform_(weight, generator=g)
    elif spec.name == "he":
        nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu", generator=g)
    elif spec.name == "he_uniform":
        nn.init.kaiming_uniform_(weight, mode="fan_in", nonlinearity="relu", generator=g)
    elif spec.name == "zeros":
        nn.init.zeros_(weight)
    elif spec.name != "torch":  # pragma: no cover - parse_init guards the names
        raise LabError(f"unknown init {spec.name}")


def weight_std(spec: InitSpec, fan_in: int, fan_out: int) -> float:
    """The standard deviation the init gives a weight: used by the variance-propagation prediction."""
    if spec.name == "normal":
        return float(spec.param)
    if spec.name == "uniform":
        return float(spec.param) / math.sqrt(3.0)
    if spec.name in ("glorot", "glorot_uniform"):
        return math.sqrt(2.0 / (fan_in + fan_out))
    if spec.name in ("he", "he_uniform"):
        return math.sqrt(2.0 / fan_in)
    if spec.name == "zeros":
        return 0.0
    return 1.0 / math.sqrt(3.0 * fan_in)  # torch's kaiming_uniform_(a=sqrt(5)) default for nn.Linear


def make_init(spec: str | InitSpec, generator: torch.Generator | None = None) -> Callable[[nn.Module], None]:
    """A function for ``model.apply``: initialises every nn.Linear's weight and zeroes its bias."""
    parsed = parse_init(spec) if isinstance(spec, str) else spec

    def apply(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            with torch.no_grad():
                init_weight_(module.weight, parsed, generator)
                if module.bias is not None and parsed.name != "torch":
                    module.bias.zero_()

    return apply


__all__ = ["InitSpec", "init_weight_", "make_init", "parse_init", "weight_std"]
