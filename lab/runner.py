"""Run experiments with caching: results land atomically in <out>/data/<name>.json, keyed by config+code.

    result = run_experiment("deep_init", profile="quick", ctx=ctx, out=Path("report"))
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from lab import DEFAULT_OUT, PROJECT_ROOT
from lab.config import CONFIG_CLASSES, PROFILES, config_to_dict, make_config
from lab.context import RunContext
from lab.errors import LabError
from lab.experiments import get_experiment
from lab.results import ExperimentResult, atomic_write_bytes, digest_problem, load_result, provenance, save_result, to_jsonable
from lab.outdir import file_hash

# Files whose change can change a measured number. Rendering code (plots, sections, report, CLI) is
# left out on purpose: a template or figure tweak re-renders without retraining.
_RENDER_ONLY = {"report.py", "__main__.py", "pdf.py", "gate.py", "hooks.py", "outdir.py", "schema.py", "answers.py",
                "numbering.py", "audit.py",  # checks, I/O and words, not numbers
                "cost.py"}  # estimates: they predict a run's time, they change no number of it
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
    """Config + device type + the lab's compute code + the torch build: a change to any of them reruns."""
    payload = json.dumps({"experiment": experiment, "config": config, "device": device, "torch": torch.__version__},
                         sort_keys=True)
    return hashlib.sha256((payload + code_version()).encode()).hexdigest()[:16]


def current_key(result: ExperimentResult) -> str | None:
    """The key this checkout would give the result's config on the result's device type (None if unknowable)."""
    device = str(result.provenance.get("device", "")).split(":")[0]
    if device not in ("cpu", "cuda"):
        return None
    return cache_key(result.experiment, result.config, device)


def made_by_this_code(result: ExperimentResult) -> bool | None:
    """True: this checkout (code, torch, config) computed exactly these numbers; False: other code, or the file was
    changed after it was written; None: cannot tell (the device type is unknown)."""
    key = current_key(result)
    if key is None:
        return None
    return key == result.provenance.get("cache_key") and digest_problem(dataclasses.asdict(result)) is None


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_cli_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def rerun_command(name: str, config: Any, profile: Any, device: Any = None, out: Path | None = None) -> str | None:
    """The `python -m lab run` command that recomputes exactly this config (profile, every override, seed,
    device type, --out) with --force; None when the stored config cannot be reproduced by this version."""
    try:
        if name not in CONFIG_CLASSES or profile not in PROFILES or not isinstance(config, dict):
            return None
        defaults = config_to_dict(make_config(name, profile))
        if set(config) - set(defaults):
            return None  # settings this version does not know: no command of this version reproduces them
        args = ["python", "-m", "lab", "run", name, "--profile", profile]
        device = str(device or "").split(":")[0]
        if device in ("cpu", "cuda"):
            args += ["--device", device]
        if out is not None and Path(out).resolve() != DEFAULT_OUT:
            args += ["--out", str(out)]
        sets = {}
        for key, value in config.items():
            if value != defaults[key]:
                sets[key] = _cli_value(value)
        if "seed" in sets:
            args += ["--seed", sets.pop("seed")]
        if name == "dropout" and sets.get("final") == "true":
            args.append("--final")
        overrides = {k: v for k, v in sets.items() if not (k == "final" and v == "true")}
        for key, value in overrides.items():
            args += ["--set", f"{key}={value}"]
        rebuilt = config_to_dict(make_config(name, profile, {**sets, **({"seed": str(config["seed"])}
                                                                         if "seed" in config else {})}))
        if any(rebuilt[k] != v for k, v in config.items()):
            return None
        return shlex.join([*args, "--force"])
    except (LabError, TypeError, ValueError, KeyError):
        return None


def rerun_hint(name: str, path: Path, out: Path | None = None) -> str:
    """How to replace a results file this code cannot use, keeping what was asked for when the file says it."""
    try:
        if not Path(path).is_file():  # a folder, a FIFO (reading would block): nothing to learn from it
            raise ValueError(path)
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        cmd = rerun_command(name, raw.get("config"), raw.get("provenance", {}).get("profile"),
                            raw.get("provenance", {}).get("device"), out)
    except (OSError, ValueError, AttributeError, RecursionError):
        cmd = None
    if cmd:
        return f"rerun it with the same settings: {cmd}"
    return (f"rerun that experiment to replace it (python -m lab run {name} --force, with the --profile, --seed "
            "and --set values you want)")


def result_path(out: Path, experiment: str) -> Path:
    return Path(out) / "data" / f"{experiment}.json"


def cached_result(path: Path, key: str, note: Callable[[str], None] | None = None) -> ExperimentResult | None:
    """The stored result if it exists, loads, and was made with the same key; else None (stale).

    An unreadable file (damaged, not UTF-8, a folder, an older layout) is stale too: ``note`` is told which and
    why, and it is replaced by the rerun (a folder or other non-file is first moved aside, never deleted).
    """
    if not path.exists() and not path.is_symlink():
        return None
    try:
        result = load_result(path, path.stem, fix="rerunning it")
    except LabError as exc:
        if note:
            note(f"stale: {exc}")
        if path.exists() and not path.is_file():
            aside = _free_name(path.with_name(path.name + ".moved-aside"))
            os.replace(path, aside)
            if note:
                note(f"moved {path} (not a results file) to {aside}")
        return None
    if result.provenance.get("cache_key") != key:
        return None
    problem = artifacts_problem(result, path.parent)
    if problem:
        if note:
            note(f"stale: {path}: {problem}")
        return None
    return result


def save_artifacts(artifacts: Mapping[str, Any], data_dir: Path) -> dict[str, str]:
    """torch.save each artifact atomically under data_dir; returns {relative path: sha256 of the file}."""
    hashes = {}
    for rel, obj in artifacts.items():
        _refuse_linked_folders(Path(data_dir), Path(rel).parent)
        buf = io.BytesIO()
        torch.save(obj, buf)
        blob = buf.getvalue()
        atomic_write_bytes(Path(data_dir) / rel, blob)
        hashes[rel] = hashlib.sha256(blob).hexdigest()
    return hashes


def _refuse_linked_folders(base: Path, rel_folder: Path) -> None:
    """The folders under OUT/data that hold weights must be the lab's own: never write through a planted link."""
    folder = base
    for part in rel_folder.parts:
        if part in ("..", "/") or not part:
            raise LabError(f"artefact folder {rel_folder} leaves {base}")
        folder = folder / part
        if folder.is_symlink():
            raise LabError(f"{folder} is a symbolic link where the lab writes its own file; the lab never writes "
                           "through a link it did not make: remove the link (or use another --out) and rerun")


def artifacts_problem(result: ExperimentResult, data_dir: Path) -> str | None:
    """Why the files a result recorded beside it (weights) no longer are what it wrote; None when they are."""
    recorded = result.provenance.get("artifacts") or {}
    if not isinstance(recorded, dict):
        return "its list of saved artefacts is damaged"
    for rel, sha in recorded.items():
        file = Path(data_dir) / rel
        if not file.is_file():
            return f"{file} is missing"
        try:
            if file_hash(file) != sha:
                return f"{file} was changed after the run wrote it (sha256 differs)"
        except OSError as exc:
            return f"{file} cannot be read ({exc.strerror or exc})"
    return None


def _free_name(path: Path) -> Path:
    candidate, i = path, 1
    while candidate.exists() or candidate.is_symlink():
        candidate, i = path.with_name(f"{path.name}-{i}"), i + 1
    return candidate


def is_cached(name: str, cfg: Any, ctx: RunContext, out: Path) -> bool:
    """Whether run_experiment would reuse a stored result for this config (without touching the file)."""
    path = result_path(out, name)
    if not path.is_file():
        return False
    try:
        result = load_result(path, name)
    except LabError:
        return False
    return result.provenance.get("cache_key") == cache_key(name, config_to_dict(cfg), ctx.device.type)


def run_experiment(
    name: str,
    *,
    ctx: RunContext,
    out: Path,
    overrides: Mapping[str, Any] | None = None,
    seed: int | None = None,
    force: bool = False,
    note: Callable[[str], None] | None = None,
    extra_provenance: Mapping[str, Any] | None = None,  # e.g. the matmul rate measured before the run (lab.cost)
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
    hit = cached_result(path, key, note)  # also with --force: a folder in the results file's place is moved aside
    if not force and hit is not None:
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
    metrics, findings = to_jsonable(outcome.metrics), [f.to_dict() for f in outcome.findings]
    # weights and other artefacts first: a results file never names files that are not there yet
    artifacts = save_artifacts(outcome.artifacts, path.parent)
    result = ExperimentResult(
        experiment=name,
        config=cfg_dict,
        metrics=metrics,
        findings=findings,
        provenance=provenance(
            seed=cfg.seed, profile=ctx.profile, device=str(ctx.device), wall_time_s=wall, cache_key=key,
            code_version=code_version(),
            **({"artifacts": artifacts} if artifacts else {}), **(extra_provenance or {}),
        ),
    )
    save_result(result, path)
    return load_result(path, name), False  # reload: callers see exactly what the JSON holds


__all__ = ["artifacts_problem", "cache_key", "code_version", "save_artifacts", "current_key", "is_cached",
           "made_by_this_code", "rerun_command", "rerun_hint", "result_path",
           "run_experiment"]
