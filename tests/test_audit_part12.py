"""The audit's independent reference for Parts 1 and 2 reproduces a clean run and stops planted design bugs.

    pytest tests/test_audit_part12.py -q

A clean quick run audits clean with hundreds of recomputed numbers; a number edited in the results fails
on its table and row; a damaged results structure gives failed rows, not an exception; and realistic
one-line bugs planted in the lab's own functions (tests/plant.py) make the audit fail on the table that
shows the wrong number. checks/audit/part1.py, part2.py and _ref.py must not import the lab.
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from checks.audit import part1, part2
from lab.context import RunContext
from lab.runner import run_experiment
from plant import plant

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")
AUDIT_DIR = Path(__file__).resolve().parent.parent / "checks" / "audit"
# Part 1 at the lab's 1000 steps (so all three picks exist and the good pick is not the lowest training loss),
# on 7 sigmas around the picks, a smaller validation set and figure grid; Part 2 on fewer points.
SMALL_P1 = {"n_val": 500, "grid_size": 10, "curve_points": 50, "n_eval": 10, "n_sigmas": 7, "sigma_min": 0.0464,
            "sigma_max": 4.642}
SMALL_P2 = {"n_samples": 500}


@pytest.fixture(autouse=True)
def one_thread():
    """Runs and audits here are small: on a shared 2-core machine a second thread mostly waits (see
    lab.batched.single_thread), which made the deep-net runs several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(name: str, out: Path, overrides: dict | None = None) -> dict:
    ctx = RunContext(device=CPU, profile="quick", quiet=True)
    run_experiment(name, ctx=ctx, out=out, overrides=overrides, force=True)  # force: a planted bug is not in the key
    return json.loads((out / "data" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict:
    """The quick profile of both parts, as `python -m lab run shallow_init deep_init --profile quick` saves it."""
    out = tmp_path_factory.mktemp("quick")
    return {"shallow_init": _run("shallow_init", out), "deep_init": _run("deep_init", out)}


def _failed(rows: list[dict]) -> list[dict]:
    return [r for r in rows if not r["ok"]]


def test_reference_imports_nothing_from_the_lab():
    for path in sorted(AUDIT_DIR.glob("*.py")):
        if path.name not in ("_ref.py", "part1.py", "part2.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not any(n == "lab" or n.startswith("lab.") for n in names), f"{path.name} imports {names}"


def test_clean_quick_run_audits_clean(quick):
    rows1 = part1.audit(quick["shallow_init"], CPU)
    rows2 = part2.audit(quick["deep_init"], CPU)
    assert not _failed(rows1), _failed(rows1)[:5]
    assert not _failed(rows2), _failed(rows2)[:5]
    assert len(rows1) >= 300 and len({r["table"] for r in rows1}) >= 7
    assert len(rows2) >= 80 and len({r["table"] for r in rows2}) >= 5
    for r in rows1 + rows2:
        assert set(r) == {"table", "row", "quantity", "reported", "recomputed", "tol", "ok"}
        assert isinstance(r["tol"], float) and r["tol"] >= 0
    json.dumps(rows1 + rows2, allow_nan=False)  # the record is plain JSON


def test_wrong_numbers_fail_on_their_row(quick):
    res = copy.deepcopy(quick["shallow_init"])
    arm = res["metrics"]["breakers"]["no_bias"]
    arm["median"]["final_train_loss"] *= 1.001
    res["metrics"]["sweep"][3]["final_val_acc"][0] -= 0.01
    bad = _failed(part1.audit(res, CPU))
    assert any(r["table"] == part1.T_BREAKERS and r["row"] == arm["label"] and "final training loss (median" in
               r["quantity"] for r in bad), bad
    assert any(r["table"] == part1.T_SWEEP and r["row"] == f"sigma {res['metrics']['sweep'][3]['sigma']:.4g}"
               and "final validation accuracy, every seed" in r["quantity"] for r in bad), bad
    assert len(bad) <= 6, bad  # the two edits, not everything

    res = copy.deepcopy(quick["deep_init"])
    res["metrics"]["inits"]["he"]["growth_per_layer"] *= 1.01
    res["metrics"]["inits"]["glorot"]["std_abs"][1][7] *= 1.01
    bad = _failed(part2.audit(res, CPU))
    assert any(r["table"] == part2.T_GROWTH and "measured factor" in r["quantity"] for r in bad), bad
    assert any(r["table"] == part2.T_ACT and "std_abs of net 1" in r["quantity"] and "layer 8" in r["quantity"]
               for r in bad), bad
    assert len(bad) == 2, bad


def test_damaged_structure_is_a_failed_row_not_an_exception(quick):
    res = copy.deepcopy(quick["shallow_init"])
    del res["metrics"]["breakers"]["lr_big"]["median"]
    res["metrics"]["scaling"]["x100"] = "oops"
    bad = _failed(part1.audit(res, CPU))
    assert any(r["table"] == part1.T_BREAKERS and "unexpected results structure" in r["quantity"] for r in bad), bad
    assert any(r["table"] == part1.T_SCALING and "unexpected results structure" in r["quantity"] for r in bad), bad
    res = copy.deepcopy(quick["deep_init"])
    res["metrics"]["inits"]["he"].pop("predicted")
    bad = _failed(part2.audit(res, CPU))
    assert any("unexpected results structure" in r["quantity"] for r in bad), bad
    assert _failed(part1.audit({"config": {}}, CPU)) and _failed(part2.audit({}, CPU))


@dataclass(frozen=True)
class Bug:
    id: str
    target: str  # qualified name of the lab function edited
    old: str
    new: str
    experiment: str
    table: str  # the table (or figure) a failed row must name
    hint: str  # words of that row's row or quantity text


BUGS = [
    Bug("lr_big_at_lab_lr", "lab.experiments.shallow_init.arms", "base, lr=cfg.lr_big)",
        "base, lr=cfg.lr)",
        "shallow_init", part1.T_BREAKERS, "learning rate 10"),
    Bug("small_data_at_lab_lr", "lab.experiments.shallow_init.arms", "base, scale=s_small, lr=cfg.small_data_lr)",
        "base, scale=s_small, lr=cfg.lr)", "shallow_init", part1.T_BREAKERS, "inputs x 0.01"),
    Bug("no_bias_with_bias", "lab.experiments.shallow_init.arm_stack", "bias=arms_[0].bias, device=device)",
        "bias=True, device=device)",
        "shallow_init", part1.T_BREAKERS, "no biases"),
    Bug("scaled_val_unscaled", "lab.experiments.shallow_init.arm_data", "x, xv = x * arm.scale, xv * arm.scale",
        "x, xv = x * arm.scale, xv", "shallow_init", part1.T_SCALING, "final validation"),
    Bug("glorot_uniform", "lab.inits.init_weight_", "nn.init.xavier_normal_(weight, generator=g)",
        "nn.init.xavier_uniform_(weight, generator=g)", "shallow_init", part1.T_INIT, "Glorot"),
    Bug("data_from_model_seed", "lab.experiments.shallow_init.load_data",
        "rings_split(cfg.n_train, cfg.n_val, cfg.seed)",
        "rings_split(cfg.n_train, cfg.n_val, cfg.seed + 1)", "shallow_init", part1.T_DATA, "training points"),
    Bug("val_acc_on_train", "lab.experiments.shallow_init.summarize", '"final_val_acc": va_acc[:, -1],',
        '"final_val_acc": fit.final_train_acc[idx],', "shallow_init", part1.T_SWEEP, "final validation accuracy"),
    Bug("early_loss_off_by_one", "lab.experiments.shallow_init.summarize", "early = tl[:, cfg.early_step]",
        "early = tl[:, cfg.early_step - 1]", "shallow_init", part1.T_INIT, "loss after early_step steps"),
    Bug("val_scored_after_the_step", "lab.batched.fit_batched",
        "            if t in eval_index:\n                score(t)\n            trainer.step(neg_loss[t])\n",
        "            trainer.step(neg_loss[t])\n            if t in eval_index:\n                score(t)\n",
        "shallow_init", part1.T_CURVES, "median validation loss after"),
    Bug("final_loss_off_by_one", "lab.experiments.shallow_init.summarize", '"final_train_loss": _as_loss(tl[:, -1]),',
        '"final_train_loss": _as_loss(tl[:, -2]),', "shallow_init", part1.T_SWEEP, "final training loss"),
    Bug("good_pick_on_train_loss", "lab.experiments.shallow_init.pick_sigmas",
        'good = min(good_c, key=lambda r: r["val_loss"])', 'good = min(good_c, key=lambda r: r["train_loss"])',
        "shallow_init", part1.T_PICKS, "sigma by the stated criteria"),
    Bug("deep_same_seed", "lab.experiments.deep_init.net_seed", "return cfg.seed * 1000 + net",
        "return cfg.seed * 1000", "deep_init", part2.T_ACT, "of net 1"),
    Bug("deep_std_over_layers", "lab.experiments.deep_init.measure_net", '"std_abs": act["std_abs"],',
        '"std_abs": [float(np.std(act["mean_abs"]))] * len(acts),', "deep_init", part2.T_ACT, "std_abs"),
    Bug("growth_wrong_layers", "lab.experiments.deep_init.growth_factor", "(1.0 / (n_layers - 1))",
        "(1.0 / n_layers)", "deep_init", part2.T_GROWTH, "measured factor"),
    Bug("prediction_no_relu_half", "lab.experiments.deep_init.predicted_stats", "sq = var_z / 2.0", "sq = var_z",
        "deep_init", part2.T_PRED, "predicted rms"),
    Bug("deep_on_training_sample", "lab.experiments.deep_init.run", "x, y = split.x_val, split.y_val",
        "x, y = split.x_train, split.y_train", "deep_init", part2.T_ACT, "mean_abs"),
]


@pytest.mark.parametrize("bug", BUGS, ids=[b.id for b in BUGS])
def test_planted_bug_fails_the_audit(bug, monkeypatch, tmp_path):
    plant(monkeypatch, bug.target, bug.old, bug.new)
    small = SMALL_P1 if bug.experiment == "shallow_init" else SMALL_P2
    result = _run(bug.experiment, tmp_path, small)
    audit = part1.audit if bug.experiment == "shallow_init" else part2.audit
    bad = _failed(audit(result, CPU))
    assert any(r["table"] == bug.table and bug.hint in f"{r['row']} {r['quantity']}" for r in bad), (
        f"{bug.id}: no failed row in {bug.table} mentioning {bug.hint!r}; failed: "
        + "; ".join(f"{r['table']} / {r['row']} / {r['quantity']}" for r in bad[:8]))


def test_small_configs_audit_clean(tmp_path):
    """The plant tests' smaller configs pass unmutated: a failure there is the bug's, not the config's."""
    assert not _failed(part1.audit(_run("shallow_init", tmp_path, SMALL_P1), CPU))
    assert not _failed(part2.audit(_run("deep_init", tmp_path, SMALL_P2), CPU))
