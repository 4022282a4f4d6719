"""The lab's side of the audit: run checks/audit on OUT, record it, and refuse to render what it could not reproduce.

    record = audit_out(Path("report"), torch.device("cpu"))     # writes report/data/audit.json

The reference code lives in checks/audit (independent of the lab's experiments); this module only hands it
what the report derives while rendering (`reported_numbers`: the paired differences and intervals, computed
by the same lab.sections functions the report uses) and keeps the record (OUT/data/audit.json: written
atomically for a complete audit only, tied to the code and to the sha256 of every file it audited).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import torch

from lab import PROJECT_ROOT
from lab.errors import LabError
from lab.results import atomic_write_text


class AuditFailed(LabError):
    """Numbers the audit could not reproduce: one line each; rendering is blocked (exit code 1)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _audit_package():
    if str(PROJECT_ROOT) not in sys.path:  # checks/ is a folder of the project root, not an installed package
        sys.path.insert(0, str(PROJECT_ROOT))
    import checks.audit as audit

    return audit


def reported_numbers(experiment: str, result: dict) -> dict[str, Any]:
    """The numbers the report derives from a results file while rendering, as the sections compute them."""
    if experiment != "dropout":
        return {}
    from lab.sections.dropout import arm_pairs
    from lab.sections.dropout_mc import seed_pairs
    from lab.sections.paired import paired

    m = result["metrics"]
    pairs = {k: paired(*ab) for k, ab in arm_pairs(m["arms"]["dropout"], m["arms"]["no_dropout"]).items()}
    if m.get("mc"):
        pairs.update(seed_pairs(m["mc"]))
    return {"paired": {k: {"diffs": list(p.diffs), "mean": p.mean, "half_width": p.half_width}
                       for k, p in pairs.items()}}


def audit_out(out: Path, device: torch.device | str = "cpu", note: Callable[[str], None] | None = None):
    """Audit every results file in OUT/data and write the record (also when numbers fail: report refuses it)."""
    audit = _audit_package()
    if not audit.results_files(out):
        raise LabError(f"no experiment results in {Path(out) / 'data'}: run python -m lab run all first")
    record = audit.run_audit(Path(out), device, reported=reported_numbers)
    atomic_write_text(audit.record_path(out), audit.record_to_json(record))
    for name, why in record.not_audited.items():
        if note:
            note(f"{name} not audited: {why}")
    return record


def verified_record(out: Path, device: torch.device | str = "cpu", note: Callable[[str], None] | None = None):
    """The audit record that vouches for OUT's current results: reused when current, else the audit reruns.
    A record holding a number it could not reproduce raises AuditFailed (one line per number)."""
    audit = _audit_package()
    record = audit.load_record(audit.record_path(out))
    why = "no audit record" if record is None else audit.stale_reason(record, out)
    if why is not None:
        if note:
            note(f"auditing the results first ({why})")
        record = audit_out(out, device, note)
    if not record.ok:
        raise AuditFailed(failure_lines(record))
    return record


def failure_lines(record) -> list[str]:
    """One line per number the audit could not reproduce (table, row, reported and recomputed value)."""
    return [_audit_package().failure_line(r) for r in record.failures]


__all__ = ["AuditFailed", "audit_out", "failure_lines", "reported_numbers", "verified_record"]
