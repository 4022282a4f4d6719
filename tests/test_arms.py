"""The arms' checks (lab.recipe) on plain data, each fed the bug it exists for; the declarations run() consumes.

    pytest tests/test_arms.py -q
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from lab.arms import ArmSpec, layer_std
from lab.config import make_config
from lab.hooks import ArmTrace, StepTrace
from lab.recipe import (
    check_arm_inputs,
    check_arm_promises,
    check_arm_training,
    check_seed_bookkeeping,
    check_seed_effects,
    rule_std,
)

WIDTHS = (2, 6, 3, 2)


def _arm(**kw) -> ArmSpec:
    init = kw.pop("init", "glorot")
    return ArmSpec("t", kw.pop("group", "g"), kw.pop("key", "a"), "label", init, layer_std(init, WIDTHS),
                   kw.pop("seeds", (0, 1)), optimizer=kw.pop("optimizer", "SGD"), lr=kw.pop("lr", 0.1), **kw)


def test_layer_std_follows_the_rules_definitions():
    for init in ("normal:0.3", "glorot", "he", "uniform:0.5", "zeros"):
        assert layer_std(init, WIDTHS) == tuple(rule_std(init, a, b) for a, b in zip(WIDTHS[:-1], WIDTHS[1:]))


def test_promises_pass_as_designed_and_name_the_arm_that_differs():
    arm = _arm(key="lr_big", lr=10.0)
    want = {"key": "lr_big", "init": "glorot", "lr": 10.0, "seeds": (0, 1)}
    assert check_arm_promises([arm], [want], WIDTHS).passed
    bad = check_arm_promises([replace(arm, lr=0.1)], [want], WIDTHS)
    assert not bad.passed and "arm lr_big (label): lr 0.1, the lab's design says 10" in bad.detail
    wrong_std = check_arm_promises([replace(arm, layer_std=(1.0, 1.0, 1.0))], [want], WIDTHS)
    assert not wrong_std.passed and "the glorot rule gives" in wrong_std.detail
    missing = check_arm_promises([], [want], WIDTHS)
    assert not missing.passed and "not declared" in missing.detail
    extra = check_arm_promises([arm, replace(arm, key="other")], [want], WIDTHS)
    assert not extra.passed and "arm other: declared but not part of the lab's design" in extra.detail


def test_inputs_must_be_the_promised_transform():
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(50, 2, generator=g), torch.randn(20, 2, generator=g)
    y, yv = torch.arange(50) % 2, torch.arange(20) % 2
    arm = _arm(key="x0.01", scale=0.01)
    assert check_arm_inputs(arm, (x * 0.01, y, xv * 0.01, yv), x, y, xv, yv).passed
    bad = check_arm_inputs(arm, (x, y, xv * 0.01, yv), x, y, xv, yv)
    assert not bad.passed and "training inputs are not the normalised data x 0.01" in bad.detail
    shuffled = _arm(key="shuffled", labels="shuffled")
    assert check_arm_inputs(shuffled, (x, y[torch.randperm(50, generator=g)], xv, yv), x, y, xv, yv).passed
    same = check_arm_inputs(shuffled, (x, y, xv, yv), x, y, xv, yv)
    assert not same.passed and "not shuffled" in same.detail
    assert not check_arm_inputs(arm, (x * 0.01, y, xv * 0.01, 1 - yv), x, y, xv, yv).passed  # validation labels


def _trace(model: nn.Module, opt: torch.optim.Optimizer, x, y, steps: int, extra=None) -> ArmTrace:
    """A loop of ``steps`` SGD steps; ``extra(t, model)`` runs between backward and step (the planted bug)."""
    seen = []
    for t in range(steps):
        before = copy.deepcopy(model)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        if extra:
            extra(t, model, opt)
        opt.step()
        if t in (0, steps - 1):
            seen.append(StepTrace(f"step {t + 1}", before, copy.deepcopy(model)))
    return ArmTrace(f"{steps} steps", x.shape[0], seen, type(opt).__name__,
                    [{k: v for k, v in grp.items() if k != "params"} for grp in opt.param_groups])


def test_training_trace_catches_changes_switched_on_late():
    torch.manual_seed(0)
    x, y = torch.randn(32, 2), torch.randint(2, (32,))
    arm = _arm(lr=0.1)

    def fresh():
        torch.manual_seed(1)
        m = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 2))
        return m, torch.optim.SGD(m.parameters(), lr=0.1)

    m, opt = fresh()
    assert check_arm_training(arm, _trace(m, opt, x, y, 40), x, y).passed
    m, opt = fresh()
    late_clip = _trace(m, opt, x, y, 40, lambda t, mm, o: t > 30 and nn.utils.clip_grad_norm_(mm.parameters(), 1e-3))
    res = check_arm_training(arm, late_clip, x, y)
    assert not res.passed and "step 40: the update differs" in res.detail
    assert "step 1: the update differs" not in res.detail  # clipping starts after the warm-up

    def momentum(t, mm, o):
        if t == 30:
            o.param_groups[0]["momentum"] = 0.9
    m, opt = fresh()
    res = check_arm_training(arm, _trace(m, opt, x, y, 40, momentum), x, y)
    assert not res.passed and "momentum 0.9 after 40 steps, promised 0" in res.detail
    m, opt = fresh()
    res = check_arm_training(replace(arm, lr=1.0), _trace(m, opt, x, y, 5), x, y)  # trained at 0.1, promised 1
    assert not res.passed and "lr 0.1 after 5 steps, promised 1" in res.detail


def test_seed_effects_and_bookkeeping():
    a, b = _arm(key="a", group="dropout"), _arm(key="b", group="plain")
    w = {s: {"init": torch.tensor([float(s)]), "order": torch.tensor([s, s + 1])} for s in (0, 10)}
    good = [(a, 0, w[0]), (a, 0, w[0]), (a, 10, w[10]), (b, 0, w[0]), (b, 10, w[10])]
    assert check_seed_effects(good, shared=("init", "order")).passed
    same = [(a, 0, w[0]), (a, 0, w[0]), (a, 10, w[0])]
    res = check_seed_effects(same)
    assert not res.passed and "seeds 0 and 10 give the same init" in res.detail
    apart = [(a, 0, w[0]), (a, 0, w[0]), (b, 0, {"init": w[0]["init"], "order": torch.tensor([1, 0])})]
    res = check_seed_effects(apart, shared=("order",))
    assert not res.passed and "do not share their order" in res.detail
    again = [(a, 0, w[0]), (a, 0, w[10])]
    assert not check_seed_effects(again).passed  # the same seed, another draw

    assert check_seed_bookkeeping([("a, seed 0", True)], (0, True), {0: (1000, 1001), 10: (11000, 11001)}).passed
    assert "share masks" in check_seed_bookkeeping([], None, {0: (1000,), 10: (1000,)}).detail
    assert "data seed 0" in check_seed_bookkeeping([], (0, False), {}).detail
    assert "no longer line up" in check_seed_bookkeeping([("a, seed 1", False)], None, {}).detail


def test_declarations_cover_every_arm_run_trains():
    from lab.experiments import deep_init, dropout, shallow_init

    p1 = make_config("shallow_init", "quick")
    keys = [a.key for a in shallow_init.arms(p1, "normal:0.1")]
    assert len(keys) == len(set(keys)) == p1.n_sigmas + 1 + 1 + len(p1.scale_factors) + 6
    assert {a.lr for a in shallow_init.arms(p1) if a.key in ("lr_big", "small_data_big_lr")} == {p1.lr_big, p1.small_data_lr}
    p2 = make_config("deep_init", "quick")
    assert [a.init for a in deep_init.arms(p2)] == list(p2.inits)
    p3 = make_config("dropout", "quick")
    arms = dropout.arms(p3)
    assert [a.key for a in arms] == [f"{n}@{s}" for s in dropout.train_seeds(p3) for n in ("dropout", "no_dropout")]
    masks = [m for a in arms for m in a.mask_seeds]
    assert len(masks) == len(set(masks)) == p3.n_train_seeds * (p3.n_mask_seeds + 1)
    cfg = dropout.arm_config(p3, arms[2])
    assert (cfg.seed, cfg.lr, cfg.weight_decay, cfg.epochs) == (arms[2].seeds[0], p3.lr, p3.weight_decay, p3.epochs)
