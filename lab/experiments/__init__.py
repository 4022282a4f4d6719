"""Registry of the lab's experiments: one module per part, each with ``run(cfg, ctx) -> Outcome``.

    module = get_experiment("deep_init"); outcome = module.run(cfg, ctx)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from lab.config import EXPERIMENT_ORDER
from lab.errors import LabError
from lab.results import CheckResult

# experiment name -> (lab part, title); order = order in the report
EXPERIMENTS: dict[str, tuple[int, str]] = {
    "shallow_init": (1, "Shallow net initialization (2-6-3-2 on two rings)"),
    "deep_init": (2, "Deep net initialization (20 x 100 ReLU layers)"),
    "dropout": (3, "Dropout on MNIST and Monte-Carlo dropout ensembles"),
}
assert tuple(EXPERIMENTS) == EXPERIMENT_ORDER


@dataclass
class Outcome:
    """What an experiment's run() returns: plain JSON-able numbers plus its report-only findings."""

    metrics: dict[str, Any]
    findings: list[CheckResult] = field(default_factory=list)
    # Files beside the results JSON (path relative to OUT/data -> object for torch.save), e.g. Part 3's final
    # weights: lab.runner writes them atomically and records their sha256 in the result's provenance.
    artifacts: dict[str, Any] = field(default_factory=dict)


def get_experiment(name: str) -> ModuleType:
    if name not in EXPERIMENTS:
        raise LabError(f"unknown experiment '{name}' (choose from: {', '.join(EXPERIMENTS)}, all)")
    return importlib.import_module(f"lab.experiments.{name}")


def expand_names(names: list[str]) -> list[str]:
    """['all'] -> every experiment in report order; unknown names are a LabError."""
    out: list[str] = []
    for name in names:
        for n in EXPERIMENTS if name == "all" else [name]:
            if n not in EXPERIMENTS:
                raise LabError(f"unknown experiment '{n}' (choose from: {', '.join(EXPERIMENTS)}, all)")
            if n not in out:
                out.append(n)
    return out


__all__ = ["EXPERIMENTS", "Outcome", "expand_names", "get_experiment"]
