"""Result records (ExperimentResult, CheckResult), atomic JSON save/load, and provenance.

    save_result(result, out / "data" / "deep_init.json");  result = load_result(path)
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lab import PROJECT_ROOT
from lab.errors import LabError

# Bump when the layout of a results file changes incompatibly; older files are refused, not misread.
SCHEMA_VERSION = 3  # 3: Part 3 per training seed (arms[...]["runs"], mc["runs"]); 2: MC seeds of different length

_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass
class CheckResult:
    """One sanity check: did it pass, what was measured against what was expected, and why."""

    name: str
    passed: bool
    measured: str  # formatted measured value(s), e.g. "0.701"
    expected: str  # value or band it had to meet, e.g. "0.693 +/- 0.104"
    detail: str  # one line a person can act on
    scope: str = "gate"  # "gate": blocks the report; "finding": shown, never blocks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExperimentResult:
    """Everything an experiment measured: config, numbers (plain JSON types) and provenance."""

    experiment: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)  # CheckResult dicts of scope "finding"
    schema: int = SCHEMA_VERSION


def to_jsonable(obj: Any) -> Any:
    """Tensors/arrays/numpy scalars -> lists/floats; non-finite floats -> None (JSON has no NaN)."""
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_json(obj: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=1, allow_nan=False) + "\n")


def load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabError(f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise LabError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); delete it and rerun") from None


def save_result(result: ExperimentResult, path: Path) -> None:
    save_json(asdict(result), path)


def load_result(path: Path) -> ExperimentResult:
    """Load and validate a results file; an older schema or a foreign file is a LabError."""
    raw = load_json(path)
    required = {"experiment", "config", "metrics", "provenance", "schema"}
    if not isinstance(raw, dict) or not required <= set(raw):
        raise LabError(f"{path}: not a results file of this lab; delete it and rerun")
    if raw.get("schema") != SCHEMA_VERSION:
        raise LabError(
            f"{path}: results schema {raw.get('schema')} is incompatible with this version ({SCHEMA_VERSION});"
            " rerun with --force or delete the file"
        )
    known = {"experiment", "config", "metrics", "provenance", "findings", "schema"}
    return ExperimentResult(**{k: v for k, v in raw.items() if k in known})


def git_state() -> dict[str, Any]:
    """Commit hash and dirty flag of the project checkout (None outside a git repository)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def provenance(*, seed: int, profile: str, device: str, wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """Where a number came from: code version, library versions, device, seed, profile, wall time."""
    return {
        **git_state(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "threads": torch.get_num_threads(),
        "seed": seed,
        "profile": profile,
        "wall_time_s": round(wall_time_s, 3),
        **extra,
    }


__all__ = [
    "SCHEMA_VERSION",
    "CheckResult",
    "ExperimentResult",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_json",
    "load_result",
    "provenance",
    "GateRecord",
    "load_checks",
    "load_gate_record",
    "save_checks",
    "save_json",
    "save_result",
    "to_jsonable",
]


@dataclass
class GateRecord:
    """A complete gate run: its checks in gate order, the entry name of each, and provenance."""

    checks: list[CheckResult]
    entries: list[str]  # gate entry names ("dropout.labels_aligned"), parallel to checks
    provenance: dict[str, Any]


def save_checks(checks: list[CheckResult], path: Path, entries: list[str] | None = None, **prov: Any) -> None:
    """The gate's outcome, for the report's checklist (only ever called for a complete gate run)."""
    entries = entries if entries is not None else [c.name for c in checks]
    save_json({"schema": SCHEMA_VERSION, "checks": [c.to_dict() for c in checks], "entries": entries,
               "provenance": prov}, path)


def load_gate_record(path: Path) -> GateRecord:
    """Load and validate a gate record; anything else (an older layout, damage, wrong shapes) is a LabError."""
    raw = load_json(path)
    fix = "rerun the gate (make check)"
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA_VERSION or not isinstance(raw.get("checks"), list):
        raise LabError(f"{path}: not a checks file of this version; {fix}")
    fields = {"name", "passed", "measured", "expected", "detail", "scope"}
    required = {"name", "passed", "measured", "expected", "detail"}
    checks = raw["checks"]
    if not all(isinstance(c, dict) and required <= set(c) <= fields and isinstance(c["passed"], bool)
               and all(isinstance(c[k], str) for k in c if k != "passed") for c in checks):
        raise LabError(f"{path}: malformed checks file; {fix}")
    entries = raw.get("entries")
    if not isinstance(entries, list) or len(entries) != len(checks) or not all(isinstance(e, str) for e in entries):
        raise LabError(f"{path}: checks file without the gate's entry names (older version); {fix}")
    prov = raw.get("provenance")
    if not isinstance(prov, dict):
        raise LabError(f"{path}: malformed checks file (no provenance); {fix}")
    return GateRecord([CheckResult(**c) for c in checks], entries, prov)


def load_checks(path: Path) -> list[CheckResult]:
    return load_gate_record(path).checks
