"""Run experiments with caching: results land atomically in <out>/data/<name>.json, keyed by config+code.

    result = run_experiment("deep_init", profile="quick", ctx=ctx, out=Path("report"))
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from lab import PROJECT_ROOT
from lab.config import config_to_dict, make_config
from lab.context import RunContext
from lab.errors import LabError
from lab.experiments import get_experiment
from lab.results import ExperimentResult, load_result, provenance, save_result

# Files whose change can change a measured number. Rendering code (plots, sections, report, CLI) is
# left out on purpose: a template or figure tweak re-renders without retraining.
_RENDER_ONLY = {"report.py", "__main__.py", "pdf.py", "gate.py", "hooks.py"}  # gate.py, hooks.py: checks, not numbers
_RENDER_DIRS = {"plots", "sections"}


def code_version() -> str:
    """Hash of the compute-side sources of the lab package."""
    h = hashlib.sha256()
    pkg = PROJECT_ROOT / "lab"
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        if rel.parts[0] in _RENDER_DIRS or rel.name in _RENDER_ONLY and len(rel.parts) == 1:
            continue
        h.update(str(rel).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(experiment: str, config: Mapping[str, Any], device: str) -> str:
    payload = json.dumps({"experiment": experiment, "config": config, "device": device}, sort_keys=True)
    return hashlib.sha256((payload + code_version()).encode()).hexdigest()[:16]


def result_path(out: Path, experiment: str) -> Path:
    return Path(out) / "data" / f"{experiment}.json"


def cached_result(path: Path, key: str) -> ExperimentResult | None:
    """The stored result if it exists, loads, and was made with the same key; else None (stale)."""
    if not path.exists():
        return None
    try:
        result = load_result(path)
    except LabError:
        return None  # an old or damaged file is stale, and is replaced by the rerun
    return result if result.provenance.get("cache_key") == key else None


def run_experiment(
    name: str,
    *,
    ctx: RunContext,
    out: Path,
    overrides: Mapping[str, Any] | None = None,
    seed: int | None = None,
    force: bool = False,
) -> tuple[ExperimentResult, bool]:
    """Run one experiment (or reuse its fresh cached result). Returns (result, was_cached)."""
    module = get_experiment(name)
    merged = dict(overrides or {})
    if seed is not None:
        merged["seed"] = seed
    cfg = make_config(name, ctx.profile, merged)
    cfg_dict = config_to_dict(cfg)
    key = cache_key(name, cfg_dict, ctx.device.type)
    path = result_path(out, name)
    if not force and (hit := cached_result(path, key)) is not None:
        return hit, True
    # Experiments seed their own generators; this only pins anything that still reads global state,
    # so running one part alone gives the same numbers as running it inside the whole report. fork_rng:
    # the caller's global RNG is left as it was (no state leaks out of an experiment either).
    devices = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)
        start = time.perf_counter()
        outcome = module.run(cfg, ctx)
        wall = time.perf_counter() - start
    result = ExperimentResult(
        experiment=name,
        config=cfg_dict,
        metrics=outcome.metrics,
        findings=[f.to_dict() for f in outcome.findings],
        provenance=provenance(
            seed=cfg.seed, profile=ctx.profile, device=str(ctx.device), wall_time_s=wall, cache_key=key
        ),
    )
    save_result(result, path)
    return load_result(path), False  # reload: callers see exactly what the JSON holds


__all__ = ["cache_key", "code_version", "result_path", "run_experiment"]
