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
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            # a full disk fails in write/fsync, which name no file, or names our temp file: name the target
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_json(obj: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=1, allow_nan=False) + "\n")


def load_json(path: Path, fix: str = "delete it and rerun") -> Any:
    """Parse a JSON file; anything unreadable (missing, a folder, not UTF-8, not JSON) is a LabError naming it."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO or device would block or never end
        raise LabError(f"{path}: not a regular file; move it away and rerun")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabError(f"{path}: not found") from None
    except IsADirectoryError:
        raise LabError(f"{path}: is a folder, not a JSON file; {fix}") from None
    except UnicodeDecodeError as exc:
        raise LabError(f"{path}: not UTF-8 text (byte {exc.start}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise LabError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    except RecursionError:
        raise LabError(f"{path}: JSON nested too deeply to be a file of this lab; {fix}") from None
    except OSError as exc:
        raise LabError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from None


def save_result(result: ExperimentResult, path: Path) -> None:
    save_json(asdict(result), path)


RERUN = "rerun that experiment to replace it"

# Provenance fields the report reads, with the JSON types they must have (None allowed where listed).
_PROVENANCE_TYPES: dict[str, tuple[type, ...]] = {
    "profile": (str,), "device": (str,), "seed": (int,), "wall_time_s": (int, float), "cache_key": (str,),
    "git_commit": (str, type(None)), "git_dirty": (bool, type(None)), "torch": (str,), "threads": (int,),
    "matmul_gflops": (int, float, type(None)),  # the roofline rate measured before the run (lab.cost); older: absent
    "step_gflops": (int, float, type(None)),  # the training-step kernel's rate measured with it (lab.cost)
}


def result_shape_problem(raw: Any, experiment: str | None = None, complete: bool = False) -> str | None:
    """What is wrong with the layout of a parsed results file (None when it is a results file of this lab).

    Provenance fields must have their types when present; ``complete`` also requires every one the report reads.
    """
    required = {"experiment", "config", "metrics", "provenance", "schema"}
    if not isinstance(raw, dict) or not required <= set(raw):
        return "not a results file of this lab"
    if raw.get("schema") != SCHEMA_VERSION:
        return f"results schema {raw.get('schema')!r} is incompatible with this version ({SCHEMA_VERSION})"
    if not isinstance(raw["experiment"], str) or (experiment is not None and raw["experiment"] != experiment):
        return f"holds experiment {raw['experiment']!r}, not {experiment!r}"
    for key in ("config", "metrics", "provenance"):
        if not isinstance(raw[key], dict):
            return f"'{key}' is a {type(raw[key]).__name__}, not an object"
    for key, types in _PROVENANCE_TYPES.items():
        if key not in raw["provenance"] and not complete:
            continue
        value = raw["provenance"].get(key)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"provenance.{key} is {value!r}"
    findings = raw.get("findings", [])
    fields = {"name", "passed", "measured", "expected", "detail", "scope"}
    if not isinstance(findings, list) or not all(
            isinstance(f, dict) and fields <= set(f) and isinstance(f["passed"], bool)
            and all(isinstance(f[k], str) for k in fields - {"passed"}) for f in findings):
        return "'findings' is not a list of checks"
    return None


def load_result(path: Path, experiment: str | None = None, fix: str = RERUN, complete: bool = False) -> ExperimentResult:
    """Load and validate a results file; an older schema, damage or a wrong layout is a LabError naming it
    and ``fix``. With ``experiment``, a file holding another experiment is refused too; with ``complete``, one
    without every provenance field the report shows."""
    raw = load_json(path, fix=fix)
    problem = result_shape_problem(raw, experiment, complete)
    if problem:
        raise LabError(f"{path}: {problem}; {fix}")
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
