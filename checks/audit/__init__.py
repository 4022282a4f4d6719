"""The audit: independent reference code that recomputes a sample of every table's numbers from what the run saved.

    record = run_audit(Path("report"), torch.device("cpu"), reported=lab.audit.reported_numbers)

It runs after `python -m lab run` and before `python -m lab report` (`python -m lab audit`, a step of
`make report`). It is written from the lab's text and the seeding contract below, never from the lab's code:
nothing under checks/audit imports lab.experiments, lab.models, lab.train, lab.dropout, lab.thinned, lab.batched,
lab.inits, lab.data or lab.sections (tests/test_audit.py fails if it starts to). It reads the results JSON with
plain `json`, the saved weights with `torch.load`, MNIST with torchvision's reader, and rebuilds the nets as plain
`nn.Sequential` of `nn.Linear`, `nn.ReLU` and `nn.Dropout`. Numbers the lab derives only while rendering (the
paired differences and their intervals) are handed in by the caller (`reported`, from lab.audit) and recomputed
here from the per-seed numbers.

One module per lab part (checks/audit/part1.py, part2.py, part3.py), each `audit(result, device, **kw) -> rows`,
a row being one recomputed number: table, row, quantity, reported, recomputed, tol, ok. A part whose module is
absent is "not audited" and the record says so.

Seeding contract of Part 3 (lab/experiments/dropout.py; what this code rebuilds):

- Data: MNIST's training split as torchvision reads it; the first n_train images train, the next n_val validate;
  pixels / 255, flattened to 784, standardised with ONE scalar mean and std (torch's unbiased std) over all
  training pixels; validation uses the training statistics.
- Training seeds: seed + 10 i for i < n_train_seeds. Under training seed s:
  * init: a torch.Generator seeded s; every Linear layer in order (input to output) draws its weight
    [out, in] with normal_(0, sigma, generator); biases are zero. Both arms of a seed share it.
  * minibatch order: a torch.Generator seeded s + 1; each epoch torch.randperm(n_train, generator) cut into
    batches of batch_size (the last one shorter). Both arms share it.
  * training masks: torch's global RNG seeded s + 2 (torch.manual_seed) right before epoch 1; each train step's
    forward draws the input mask [batch, 784] (p_input), then one [batch, width] mask per hidden layer (p_hidden)
    after its ReLU, with the sampler below; kept units are scaled by 1 / (1 - p) (inverted dropout).
  * step: AdamW(lr, weight_decay; betas 0.9/0.999, eps 1e-8) on the mean cross-entropy of the batch.
  * scoring: eval mode (no dropout) on all training and validation images, at epoch 0 and after every epoch.
- Mask sampler (lab.dropout's, written down so that masks can be rebuilt): for p = 0.5, ceil(m / 64) int64 words
  from torch.randint(-2**63, 2**63 - 1, (words,), dtype=int64, generator), viewed as bytes; element 8 b + j is
  kept when bit j (least significant first) of byte b is set. For other p: ceil(m / 4) words viewed as int16,
  the first m used; kept when the value >= round(p * 65536) - 32768. m = number of elements of the mask.
- Monte-Carlo ensembles of training seed s's dropout net, scored on the FIRST n_mc validation images: mask seeds
  1000 (s + 1) + j for j < n_mask_seeds, then one more (the per-image reference). A thinned member of mask seed
  q: torch.Generator seeded q; per member, one mask per droppable layer (the input's 784, then each hidden
  layer's width) drawn on the CPU with the sampler above from that generator, shared by every image. The
  per-image reference: the global RNG seeded with the reference seed, one ordinary train-mode pass per member
  (masks drawn as in training, for all n_mc images at once). At each k the ensemble averages the k members'
  logits ("logits") or softmax probabilities ("probs") and scores error and NLL; eval mode is weight scaling.
- Saved weights: OUT/data/weights/dropout/seed<s>_<arm>.pt, a state_dict with keys layers.<i>.weight and
  layers.<i>.bias for the i-th Linear layer; their sha256 are in the results file's provenance["artifacts"].
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

AUDIT_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = AUDIT_DIR.parent.parent
RECORD_NAME = "audit.json"
RECORD_SCHEMA = 1
# results file -> the audit module of its lab part
PART_MODULES = {"shallow_init": "part1", "deep_init": "part2", "dropout": "part3"}
ROW_KEYS = ("table", "row", "quantity", "reported", "recomputed", "tol", "ok")


@dataclass
class AuditRecord:
    """A complete audit: every recomputed number, what was not audited and why, and what it vouches for."""

    rows: list[dict[str, Any]]  # ROW_KEYS plus "experiment"
    not_audited: dict[str, str]  # experiment -> why
    vouches_for: dict[str, Any]  # code hash, and the sha256 of every results and weights file audited
    wall_s: float
    schema: int = RECORD_SCHEMA
    device: str = "cpu"

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r["ok"]]

    @property
    def ok(self) -> bool:
        return not self.failures

    def tables(self) -> list[str]:
        return sorted({r["table"] for r in self.rows})

    def summary(self) -> str:
        """The report's gate-line clause: what the audit recomputed."""
        return (f"audit: {len(self.rows)} numbers of {len(self.tables())} tables recomputed by independent code"
                + (f", {len(self.failures)} not reproduced" if self.failures else "")
                + (f" ({', '.join(sorted(self.not_audited))} not audited)" if self.not_audited else ""))


def failure_line(row: dict[str, Any]) -> str:
    """One line per number the audit could not reproduce: table, row, quantity, reported and recomputed value."""
    return (f"audit failed: {row['table']}, {row['row']}: {row['quantity']} reported {_show(row['reported'])}, "
            f"recomputed {_show(row['recomputed'])} (tolerance {_show(row['tol'])})")


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def code_hash() -> str:
    """The code an audit vouches for: this package's sources and the lab's (any change re-audits)."""
    h = hashlib.sha256()
    for folder in (AUDIT_DIR, PROJECT_ROOT / "lab"):
        for path in sorted(folder.rglob("*.py")):
            h.update(str(path.relative_to(PROJECT_ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def results_files(out: Path) -> dict[str, Path]:
    """experiment -> its results JSON in OUT/data (only the lab's parts; checks.json, audit.json are not results)."""
    data = Path(out) / "data"
    return {name: data / f"{name}.json" for name in PART_MODULES if (data / f"{name}.json").is_file()}


def artefacts_of(result: dict) -> dict[str, str]:
    """Files the run saved beside a results file (relative to OUT/data) -> the sha256 it recorded."""
    arts = (result.get("provenance") or {}).get("artifacts") or {}
    return dict(arts) if isinstance(arts, dict) else {}


def current_state(out: Path) -> dict[str, Any]:
    """What an audit of OUT now would vouch for: code hash and the sha256 of each results and weights file."""
    files: dict[str, Any] = {}
    for name, path in results_files(out).items():
        entry: dict[str, Any] = {"results_sha256": sha256_file(path), "artifacts": {}}
        try:
            arts = artefacts_of(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            arts = {}
        for rel in arts:
            file = Path(out) / "data" / rel
            entry["artifacts"][rel] = sha256_file(file) if file.is_file() else None
        files[name] = entry
    return {"code": code_hash(), "files": files}


def _call_part(module, result: dict, device: torch.device, **kw) -> list[dict[str, Any]]:
    """Call module.audit with the keyword arguments it accepts (part modules may take only result and device)."""
    params = inspect.signature(module.audit).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return module.audit(result, device, **{k: v for k, v in kw.items() if takes_all or k in params})


def run_audit(out: Path, device: torch.device | str = "cpu",
              reported: Callable[[str, dict], dict] | None = None) -> AuditRecord:
    """Audit every results file in OUT/data with its part's module; `reported(experiment, result)` gives the
    numbers the report derives while rendering (paired differences...), to be recomputed here."""
    start = time.perf_counter()
    device = torch.device(device)
    threads = torch.get_num_threads()
    # One CPU thread: the audit's passes are small, and on a shared 2-core machine two threads spin against other
    # processes (measured: the quick audit's toy-size part took 8.5 s with 2 threads, 0.7 s with 1, load ~8).
    torch.set_num_threads(1)
    try:
        return _run_audit(out, device, reported, start)
    finally:
        torch.set_num_threads(threads)


def _run_audit(out: Path, device: torch.device, reported, start: float) -> AuditRecord:
    state = current_state(out)  # before reading: a file changed while auditing makes the record stale, never wrong
    rows: list[dict[str, Any]] = []
    not_audited: dict[str, str] = {}
    for name, path in results_files(out).items():
        try:
            module = importlib.import_module(f"checks.audit.{PART_MODULES[name]}")
        except ModuleNotFoundError as exc:
            if exc.name != f"checks.audit.{PART_MODULES[name]}":
                raise
            not_audited[name] = f"no audit module checks/audit/{PART_MODULES[name]}.py"
            continue
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
            derived = reported(name, result) if reported is not None else None
            part_rows = _call_part(module, result, device, out=Path(out), reported=derived)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - a file the reference cannot read is a number it cannot reproduce
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            part_rows = [{"table": f"{name}.json", "row": "whole file", "quantity": "audit",
                          "reported": "a results file the reference code can read",
                          "recomputed": f"{type(exc).__name__}: {first}", "tol": "none", "ok": False}]
        for row in part_rows:
            missing = set(ROW_KEYS) - set(row)
            if missing:
                raise ValueError(f"checks/audit/{PART_MODULES[name]}.py returned a row without {sorted(missing)}")
            rows.append({"experiment": name, **{k: row[k] for k in ROW_KEYS}, "ok": bool(row["ok"])})
    return AuditRecord(rows=rows, not_audited=not_audited, vouches_for=state, wall_s=time.perf_counter() - start,
                       device=str(device))


def record_path(out: Path) -> Path:
    return Path(out) / "data" / RECORD_NAME


def _plain(value: Any) -> Any:
    """JSON types only: a non-finite float (a diverged arm's number) is written as its name, "nan" or "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def record_to_json(record: AuditRecord) -> str:
    return json.dumps(_plain(asdict(record)), indent=1, allow_nan=False) + "\n"


def load_record(path: Path) -> AuditRecord | None:
    """The saved record, or None when it is missing or not a record of this version (then the audit reruns)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("schema") != RECORD_SCHEMA:
            return None
        record = AuditRecord(**raw)
        if not all(isinstance(r, dict) and set(ROW_KEYS) <= set(r) for r in record.rows):
            return None
        return record
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def stale_reason(record: AuditRecord, out: Path) -> str | None:
    """Why a record no longer vouches for OUT (other code, a results or weights file added, changed or gone)."""
    now = current_state(out)
    then = record.vouches_for
    if then.get("code") != now["code"]:
        return "made by other code than this checkout (checks/audit or lab changed)"
    if set(then.get("files", {})) != set(now["files"]):
        return "made for another set of results files"
    for name, entry in now["files"].items():
        old = then["files"][name]
        if old.get("results_sha256") != entry["results_sha256"]:
            return f"{name}.json changed since it was audited"
        if old.get("artifacts") != entry["artifacts"]:
            return f"the saved weights of {name} changed since they were audited"
    return None


__all__ = ["AuditRecord", "PART_MODULES", "code_hash", "current_state", "failure_line", "load_record", "record_path",
           "record_to_json", "run_audit", "stale_reason"]
