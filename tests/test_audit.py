"""The audit (checks/audit) recomputes the report's numbers with independent code and stops what it cannot reproduce.

    pytest tests/test_audit.py -q

One tiny Part 3 run (quick profile shrunk with overrides) is shared by the tests that feed the audit a wrong
number or a wrong artefact; each planted bug (tests/plant.py, one at a time in the lab's own functions) gets its
own tiny run, and the audit must fail with a line pointing at the bug. The audit's reference code must not import
what it audits: checked by parsing its imports and by importing it in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from lab import PROJECT_ROOT
from lab.__main__ import main
from lab.audit import AuditFailed, audit_out, failure_lines, verified_record
from lab.results import seal_record
from lab.context import RunContext
from lab.runner import run_experiment
from plant import plant

sys.path.insert(0, str(PROJECT_ROOT))
import checks.audit as audit_pkg  # noqa: E402
from checks.audit import part3  # noqa: E402
from checks.audit.stats import t_quantile  # noqa: E402

CPU = torch.device("cpu")
# Part 3 at toy size: every table of the part exists (2 training seeds for the paired rows, 2 epochs, a thinned
# ensemble to k = 7 and a per-image reference to k = 5), in a few seconds per run.
TINY = {"n_train": "300", "n_val": "300", "hidden": "64,64", "epochs": "2", "n_train_seeds": "2", "k_max": "7",
        "n_mask_seeds": "1", "k_max_reference": "5", "n_mc": "200", "batch_size": "50"}
FORBIDDEN = ("lab.experiments", "lab.models", "lab.train", "lab.dropout", "lab.thinned", "lab.batched", "lab.inits",
             "lab.data", "lab.sections")


def tiny_run(out: Path) -> Path:
    ctx = RunContext(device=CPU, profile="quick", quiet=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy-size matmuls: a second thread only spins on a shared machine
    try:
        run_experiment("dropout", ctx=ctx, out=out, overrides=TINY, force=True)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, real_mnist) -> Path:
    """One unmutated tiny run with its audit record."""
    out = tiny_run(tmp_path_factory.mktemp("audit-tiny"))
    record = audit_out(out, CPU)
    assert record.ok, failure_lines(record)
    return out


@pytest.fixture
def copy(tiny, tmp_path) -> Path:
    dst = tmp_path / "out"
    shutil.copytree(tiny, dst)
    return dst


def _failures(record) -> str:
    return "\n".join(failure_lines(record))


# ------------------------------------------------------------------------------------------------ the unmutated run
def test_unmutated_run_passes_and_covers_every_part3_table(tiny):
    record = audit_pkg.load_record(audit_pkg.record_path(tiny))
    assert record is not None and record.ok and audit_pkg.stale_reason(record, tiny) is None
    tables = set(record.tables())
    assert {part3.TABLE_ARMS, part3.TABLE_CURVES, part3.TABLE_PAIRED, part3.TABLE_MC, part3.TABLE_MC_PAIRED} <= tables
    quantities = " ".join(r["quantity"] for r in record.rows)
    for what in ("final val_error_pct", "thinned ensemble error", "per-image-mask ensemble error", "binomial",
                 "95 % interval half-width", "val_loss at epoch 1", "sha256"):
        assert what in quantities
    assert record.summary().startswith(f"audit: {len(record.rows)} numbers of {len(tables)} tables recomputed")
    # the record vouches for the files it audited
    assert set(record.vouches_for["files"]["dropout"]["artifacts"]) == {
        f"weights/dropout/seed{s}_{a}.pt" for s in (0, 10) for a in ("dropout", "no_dropout")}


def test_cli_audit_exit_codes(copy, capsys):
    assert main(["audit", "--out", str(copy), "--device", "cpu", "--quiet"]) == 0
    assert "recomputed by independent code" in capsys.readouterr().out
    _edit(copy, lambda m: m["arms"]["no_dropout"]["runs"][1]["summary"].__setitem__("train_loss", 9.5))
    assert main(["audit", "--out", str(copy), "--device", "cpu", "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("audit failed: Part 3 arms table (final numbers), no dropout, training seed 10: "
                               "final train_loss reported 9.5, recomputed") for line in err), err


# ------------------------------------------------------------------------------------------------ wrong inputs
def _edit(out: Path, fn) -> None:
    path = out / "data" / "dropout.json"
    raw = json.loads(path.read_text())
    fn(raw["metrics"])
    # re-sealed: the lab writing wrong numbers (a bug) is what the audit is for; a hand edit is refused on load
    path.write_text(json.dumps(seal_record(raw)))


def test_wrong_number_fails_naming_table_row_and_values(copy):
    _edit(copy, lambda m: m["arms"]["dropout"]["runs"][0]["summary"].__setitem__(
        "val_error_pct", m["arms"]["dropout"]["runs"][0]["summary"]["val_error_pct"] + 1.0))
    record = audit_out(copy, CPU)
    lines = failure_lines(record)
    assert len(lines) == 1, lines
    assert "Part 3 arms table (final numbers), dropout (input 20%, hidden 50%), training seed 0: final val_error_pct" \
        in lines[0] and "reported" in lines[0] and "recomputed" in lines[0]


def test_wrong_mc_point_fails(copy):
    _edit(copy, lambda m: m["mc"]["runs"][1]["thinned"]["logits"]["error_pct"][0].__setitem__(
        2, m["mc"]["runs"][1]["thinned"]["logits"]["error_pct"][0][2] + 3.0))
    text = _failures(audit_out(copy, CPU))
    assert "training seed 10, mask seed 11000, k = 3, logits averaged: thinned ensemble error" in text


def test_wrong_curve_fails_the_binomial_check(copy):
    """The plain nn.Dropout check can fail: a per-image reference curve off by 30 points is outside its spread."""
    def shift(m):
        curve = m["mc"]["runs"][0]["per_image"]["logits"]["error_pct"]
        curve[0] = curve[0] + 30.0 if curve[0] < 60 else curve[0] - 30.0
    _edit(copy, shift)
    rows = [r for r in audit_out(copy, CPU).failures if "binomial" in r["quantity"]]
    assert rows and rows[0]["row"] == "training seed 0, per-image reference, k = 1" and rows[0]["tol"] < 30


def test_swapped_weights_fail(copy):
    w = copy / "data" / "weights" / "dropout"
    a, b = w / "seed0_dropout.pt", w / "seed10_dropout.pt"
    tmp = w / "tmp.pt"
    a.rename(tmp), b.rename(a), tmp.rename(b)
    text = _failures(audit_out(copy, CPU))
    assert "sha256 of weights/dropout/seed0_dropout.pt" in text
    # the same swap with its hashes "fixed" in the results file: the recomputed numbers still give it away
    raw = json.loads((copy / "data" / "dropout.json").read_text())
    arts = raw["provenance"]["artifacts"]
    arts["weights/dropout/seed0_dropout.pt"], arts["weights/dropout/seed10_dropout.pt"] = (
        arts["weights/dropout/seed10_dropout.pt"], arts["weights/dropout/seed0_dropout.pt"])
    (copy / "data" / "dropout.json").write_text(json.dumps(seal_record(raw)))
    record = audit_out(copy, CPU)
    assert not any("sha256" in r["quantity"] for r in record.failures)
    assert "dropout (input 20%, hidden 50%), training seed 0: final val_loss" in _failures(record)


def test_report_refuses_a_failed_or_stale_record(copy, monkeypatch, capsys):
    from lab.results import GateRecord

    monkeypatch.setattr("lab.report.load_gate", lambda out: GateRecord([], [], {"wall_time_s": 1.0}))
    assert main(["report", "--out", str(copy)]) == 0  # the record of the fixture is current: reused
    assert "recomputed by independent code" in (copy / "report.md").read_text()
    before = (copy / "report.md").read_text()
    # a results file edited after its audit: the record is stale, report re-audits, and refuses
    _edit(copy, lambda m: m["mc"]["runs"][0].__setitem__("eval_error_pct", m["mc"]["runs"][0]["eval_error_pct"] + 2))
    assert audit_pkg.stale_reason(audit_pkg.load_record(audit_pkg.record_path(copy)), copy) == \
        "dropout.json changed since it was audited"
    capsys.readouterr()
    assert main(["report", "--out", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "audit failed: Part 3 Monte-Carlo ensemble table, training seed 0: eval-mode (weight scaling) error %" in err
    assert (copy / "report.md").read_text() == before  # nothing rendered
    with pytest.raises(AuditFailed):  # the failed record now on disk is refused as it is
        verified_record(copy, CPU)


def test_changed_weights_make_the_cached_result_stale(copy):
    from lab.results import load_result
    from lab.runner import artifacts_problem

    result = load_result(copy / "data" / "dropout.json")
    assert artifacts_problem(result, copy / "data") is None
    (copy / "data" / "weights" / "dropout" / "seed10_no_dropout.pt").write_bytes(b"edited")
    assert "seed10_no_dropout.pt was changed" in artifacts_problem(result, copy / "data")
    (copy / "data" / "weights" / "dropout" / "seed10_no_dropout.pt").unlink()
    assert "seed10_no_dropout.pt is missing" in artifacts_problem(result, copy / "data")


def test_a_cached_result_whose_weights_changed_reruns(copy):
    ctx = RunContext(device=CPU, profile="quick", quiet=True)
    _, cached = run_experiment("dropout", ctx=ctx, out=copy, overrides=TINY)
    assert cached
    (copy / "data" / "weights" / "dropout" / "seed0_no_dropout.pt").unlink()
    notes = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, cached = run_experiment("dropout", ctx=ctx, out=copy, overrides=TINY, note=notes.append)
    finally:
        torch.set_num_threads(threads)
    assert not cached and any("seed0_no_dropout.pt is missing" in n for n in notes), notes
    assert (copy / "data" / "weights" / "dropout" / "seed0_no_dropout.pt").is_file()


# ------------------------------------------------------------------------------------------------ independence
def test_audit_imports_nothing_it_audits():
    files = sorted((PROJECT_ROOT / "checks" / "audit").glob("*.py"))
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            bad = [n for n in names if n.startswith(FORBIDDEN)]
            assert not bad, f"{path.name} imports {bad}: the audit must not use the code it audits"
    mods = ", ".join(f"checks.audit.{p.stem}" for p in files if p.stem != "__init__")
    code = (f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r}); import checks.audit, {mods}; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('lab')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in loaded if m.startswith(FORBIDDEN)], loaded


def test_t_quantile_matches_the_table():
    for df, value in ((1, 12.706), (2, 4.303), (3, 3.182), (10, 2.228), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(value, abs=6e-4)
    assert t_quantile(0.95, 5) == pytest.approx(2.015, abs=6e-4)


def test_binomial_tolerance_follows_the_spread():
    steady = torch.zeros(10, 1000, dtype=torch.bool)  # every member right on every image: no spread
    assert part3.binomial_var(steady) == 0.0
    coin = torch.rand(10, 1000, generator=torch.Generator().manual_seed(0)) < 0.5
    var = part3.binomial_var(coin)
    assert var == pytest.approx(0.25 / 1000, rel=0.1)
    # 4 standard deviations of a difference of two such draws, plus one image
    assert part3.binomial_tol(var, 1000, 2.0) == pytest.approx(100 * (4 * (2 * 0.25 / 1000) ** 0.5 + 1e-3), rel=0.1)


# ------------------------------------------------------------------------------------------------ planted bugs
@dataclass(frozen=True)
class Bug:
    id: str
    target: str
    old: str
    new: str
    hint: str  # words of a failure line that point at the bug


BUGS = [
    Bug("val_on_train_split", "lab.experiments.dropout.score",
        "va = evaluate_rows(model, s.x_val, s.y_val)", "va = evaluate_rows(model, s.x_train, s.y_train)",
        "final val_error_pct"),
    Bug("val_labels_shifted", "lab.experiments.dropout.score",
        "va = evaluate_rows(model, s.x_val, s.y_val)", "va = evaluate_rows(model, s.x_val, s.y_val.roll(1))",
        "final val_loss"),
    Bug("weights_of_wrong_arm", "lab.experiments.dropout.run",
        "for k, v in models[arm].state_dict().items()", "for k, v in next(iter(models.values())).state_dict().items()",
        "no dropout, training seed 0: final train_loss"),
    Bug("mc_first_member_only", "lab.experiments.dropout.mc_ensemble",
        "logits = member()\n", "logits = member() if k == 1 else logits\n", "k = 2, logits averaged: thinned ensemble error"),
    Bug("mc_not_first_images", "lab.experiments.dropout.mc_images",
        "return s.x_val[:n], s.y_val[:n]", "return s.x_val[-n:], s.y_val[-n:]", "eval-mode (weight scaling) NLL"),
    Bug("mc_reference_eval_mode", "lab.experiments.dropout.ensemble_members",
        "model.train()  # dropout on", "model.eval()  # dropout on", "k = 1, logits averaged: per-image-mask ensemble error"),
    Bug("same_mask_seeds_every_training_seed", "lab.experiments.dropout.arms",
        "mask_seeds=tuple(mask_seeds(seed, cfg.n_mask_seeds))",
        "mask_seeds=tuple(mask_seeds(cfg.seed, cfg.n_mask_seeds))", "training seed 10: mask seeds"),
    Bug("training_masks_from_base_seed", "lab.experiments.dropout.train_arm",
        "with seeded(cfg.seed + 2, ctx.device):", "with seeded(2, ctx.device):",
        "training seed 10, epoch 1 retrained: train_loss at epoch 1"),
    Bug("order_from_init_seed", "lab.experiments.dropout.train_arm",
        "torch.Generator().manual_seed(cfg.seed + 1)", "torch.Generator().manual_seed(cfg.seed)",
        "no dropout, training seed 10, epoch 1 retrained: train_loss at epoch 1"),
    Bug("paired_interval_unpaired", "lab.sections.paired.paired",
        "half = t975(n - 1) * sd / math.sqrt(n)",
        "half = t975(n - 1) * math.sqrt((float(np.var(a, ddof=1)) + float(np.var(b, ddof=1))) / n)",
        "val_error_pct: 95 % interval half-width"),
    Bug("gap_sign_flipped", "lab.sections.dropout._gaps",
        "else v - t", "else t - v", "gap_error_pct: per-seed differences"),
]


@pytest.mark.parametrize("bug", BUGS, ids=[b.id for b in BUGS])
def test_planted_bug_is_stopped_by_the_audit(bug, monkeypatch, tmp_path, real_mnist):
    plant(monkeypatch, bug.target, bug.old, bug.new)
    record = audit_out(tiny_run(tmp_path), CPU)
    text = _failures(record)
    assert not record.ok, f"{bug.id}: the audit passed"
    assert bug.hint in text, f"{bug.id}: no failure line points at it:\n{text[:2000]}"


def test_make_report_audits_between_run_and_render():
    lines = subprocess.run(["make", "--no-print-directory", "-n", "-W", "pyproject.toml", "report", "PROFILE=quick",
                            "OUT=/tmp/lab-make-n"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                           timeout=60).stdout
    assert lines.index("lab run all") < lines.index("lab audit") < lines.index("lab report")
