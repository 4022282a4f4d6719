"""Result records (ExperimentResult, CheckResult), atomic JSON save/load, and provenance.

    save_result(result, out / "data" / "deep_init.json");  result = load_result(path)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lab import PROJECT_ROOT
from lab.errors import LabError
from lab.outdir import make_temp_file

# Bump when the layout of a results file changes incompatibly; older files are refused, not misread.
SCHEMA_VERSION = 3  # 3: Part 3 per training seed (arms[...]["runs"], mc["runs"]); 2: MC seeds of different length



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
    """Write to a new temp file in the same folder (O_EXCL, never through a link; mode 0666 minus the umask, like
    any file the user makes), fsync, then rename: readers never see half a file, and a symbolic link planted at
    ``path`` is replaced itself, its target never written."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = make_temp_file(path.parent, f".{path.name}.", ".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp), tmp):
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


DIGEST_FIELD = "content_digest"  # in provenance: a hash of everything else the file holds


def record_digest(raw: dict[str, Any]) -> str:
    """Hash of a record as saved (every key, provenance included, except the digest itself): a file edited or
    damaged after it was written no longer matches. The audit and any reader can call it on a parsed file."""
    body = dict(raw)
    if isinstance(body.get("provenance"), dict):
        body["provenance"] = {k: v for k, v in body["provenance"].items() if k != DIGEST_FIELD}
    text = json.dumps(body, sort_keys=True, ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seal_record(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a record (results file or gate record) with its digest stamped, as the lab saves it."""
    raw = to_jsonable(raw)
    raw["provenance"] = {k: v for k, v in (raw.get("provenance") or {}).items() if k != DIGEST_FIELD}
    raw["provenance"][DIGEST_FIELD] = record_digest(raw)
    return raw


def digest_problem(raw: dict[str, Any]) -> str | None:
    """None when the stored digest matches the content, else what is wrong (the field it concerns)."""
    prov = raw.get("provenance")
    stored = prov.get(DIGEST_FIELD) if isinstance(prov, dict) else None
    if not isinstance(stored, str):
        return f"provenance.{DIGEST_FIELD} is missing (written by an older version, or by hand)"
    if stored != record_digest(raw):
        return (f"changed after it was written (its content no longer matches provenance.{DIGEST_FIELD}): "
                "not trusted")
    return None


def save_result(result: ExperimentResult, path: Path) -> None:
    """Save with a digest of the whole record (provenance.content_digest), checked on every load."""
    save_json(seal_record(asdict(result)), path)


RERUN = "rerun that experiment to replace it"

# Provenance fields the report reads, with the JSON types they must have (None allowed where listed).
_PROVENANCE_TYPES: dict[str, tuple[type, ...]] = {
    "profile": (str,), "device": (str,), "seed": (int,), "wall_time_s": (int, float), "cache_key": (str,),
    "git_commit": (str, type(None)), "git_dirty": (bool, type(None)), "torch": (str,), "threads": (int,),
    "matmul_gflops": (int, float, type(None)),  # the roofline rate measured before the run (lab.cost); older: absent
    "step_gflops": (int, float, type(None)),  # the training-step kernel's rate measured with it (lab.cost)
}


# What the lab writes in the provenance fields the report prints (its header, the Reproducibility table): a value of
# another form was not written by the lab, and is refused rather than shown (or interpreted as markup).
_PROVENANCE_FORMS: dict[str, tuple[Any, str]] = {
    "profile": (lambda v: v in ("quick", "full"), "a profile of this lab (quick, full)"),
    "device": (re.compile(r"(cpu|cuda(:[0-9]{1,3})?|mps(:[0-9]{1,3})?)").fullmatch, "a device (cpu, cuda, cuda:N)"),
    "git_commit": (re.compile(r"[0-9a-f]{7,64}").fullmatch, "a git commit hash"),
    "torch": (re.compile(r"[0-9A-Za-z.+_-]{1,64}").fullmatch, "a torch version"),
    "cache_key": (re.compile(r"[0-9a-f]{16}").fullmatch, "a cache key"),
    "seed": (lambda v: 0 <= v < 2**63, "a seed"),
    "threads": (lambda v: 0 < v < 1 << 20, "a thread count"),
    "wall_time_s": (lambda v: math.isfinite(v) and v >= 0, "a duration in seconds"),
}


def _provenance_ok(key: str, value: Any) -> bool:
    try:
        return bool(_PROVENANCE_FORMS[key][0](value))
    except (TypeError, ValueError, OverflowError):
        return False


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
        if key in _PROVENANCE_FORMS and value is not None and not _provenance_ok(key, value):
            return f"provenance.{key} is {value!r}, not {_PROVENANCE_FORMS[key][1]}"
    findings = raw.get("findings", [])
    fields = {"name", "passed", "measured", "expected", "detail", "scope"}
    if not isinstance(findings, list) or not all(
            isinstance(f, dict) and fields <= set(f) and isinstance(f["passed"], bool)
            and all(isinstance(f[k], str) for k in fields - {"passed"}) for f in findings):
        return "'findings' is not a list of checks"
    return None


def result_problem(raw: Any, experiment: str | None = None, complete: bool = False) -> str | None:
    """Everything a reader must know before trusting a parsed results file: its layout, its schema (lab.schema:
    types, finiteness, ranges, lengths of what the report reads) and its content digest. None when it is sound;
    else the field and what is wrong with it (for the audit, ``run`` and ``report`` alike)."""
    from lab.schema import record_problem

    problem = result_shape_problem(raw, experiment, complete)
    if problem is None:
        problem = record_problem(raw, raw["experiment"]) or digest_problem(raw)
    return problem


def load_result(path: Path, experiment: str | None = None, fix: str = RERUN, complete: bool = False) -> ExperimentResult:
    """Load and validate a results file; an older schema, damage or a wrong layout is a LabError naming it
    and ``fix``; so is a file that does not fit its schema or was changed after it was written (result_problem).
    With ``experiment``, a file holding another experiment is refused too; with ``complete``, one
    without every provenance field the report shows."""
    raw = load_json(path, fix=fix)
    problem = result_problem(raw, experiment, complete)
    if problem:
        raise LabError(f"{path}: {problem}; {fix}")
    known = {"experiment", "config", "metrics", "provenance", "findings", "schema"}
    return ExperimentResult(**{k: (v if k == "config" else as_text(v)) for k, v in raw.items() if k in known})


_WORD_JOINER = "\u2060"  # invisible: "[[" from a file still reads "[[", but no longer forms a reference token


def as_text(obj: Any) -> Any:
    """Strings read from a file are text, never markup of the report: a "[[fig:...]]" inside a label must not be
    taken for a reference (lab.numbering.TOKEN), so its "[[" is split by an invisible word joiner. Keys too."""
    if isinstance(obj, str):
        return obj.replace("[[", "[" + _WORD_JOINER + "[") if "[[" in obj else obj
    if isinstance(obj, dict):
        return {as_text(k): as_text(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [as_text(v) for v in obj]
    return obj


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
    "record_digest",
    "result_problem",
    "seal_record",
    "digest_problem",
    "as_text",
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
    save_json(seal_record({"schema": SCHEMA_VERSION, "checks": [c.to_dict() for c in checks], "entries": entries,
                       "provenance": prov}), path)


def load_gate_record(path: Path, expected: list[str] | None = None) -> GateRecord:
    """Load and validate a gate record; anything else (an older layout, damage, wrong shapes, a change after it
    was written) is a LabError. With ``expected`` (lab.gate.gate_names()), each entry must be one of the current
    gate's and appear once (a missing one is lab.gate.verify_record's to report)."""
    fix = "rerun the gate (make check)"
    raw = load_json(path, fix=fix)
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
    from lab.schema import _non_finite, field_path

    problem = _non_finite(raw, ()) or digest_problem(raw)
    if problem is None and expected is not None:
        current, seen = set(expected), set()
        for i, entry in enumerate(entries):
            if entry not in current:
                problem = f"{field_path(('entries', i))} is {entry!r}, not an entry of the current gate"
            elif entry in seen:
                problem = f"{field_path(('entries', i))} repeats {entry!r}: each gate entry is recorded once"
            seen.add(entry)
            if problem:
                break
    if problem:
        raise LabError(f"{path}: {problem}; {fix}")
    return GateRecord([CheckResult(**as_text(c)) for c in checks], entries, prov)


def load_checks(path: Path) -> list[CheckResult]:
    return load_gate_record(path).checks
