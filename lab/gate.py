"""The gate: lab.recipe's checks applied to each experiment's own code, through its gate_hooks().

    results = run_gate(torch.device("cpu"))          # list[CheckResult], in gate_names() order
    names = gate_names()                             # "dropout.labels_aligned", "deep_init.init[he]", ...

gate.py only pairs hooks with checks: every experiment module in lab/experiments/ that defines
``gate_hooks(cfg, device) -> lab.hooks.GateHooks`` is gated, on its default configuration, by every check
whose pieces its hooks provide. A check that raises is a failed check naming the exception and the line
of lab/ it came from, never a traceback. ``checks/test_gate.py`` runs each entry as one pytest test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import copy
import hashlib
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

from lab import PROJECT_ROOT
from lab.batched import single_thread
from lab.config import make_config
from lab.errors import LabError
from lab.experiments import EXPERIMENTS, get_experiment
from lab.hooks import GateData, GateHooks
from lab.recipe import (
    check_activation_record,
    check_activation_stability,
    check_architecture,
    check_arm_inputs,
    check_arm_promises,
    check_arm_training,
    check_seed_bookkeeping,
    check_seed_effects,
    check_batch_independence,
    check_class_balance,
    check_disjoint_content,
    check_dropout_rates,
    check_dropout_scaling,
    check_ensemble_reduces_to_eval,
    check_ensemble_stochastic,
    check_epoch_coverage,
    check_eval_determinism,
    check_evaluate,
    check_finite_inputs,
    check_finite_training,
    check_gradients_reach_all,
    check_init_loss,
    check_init_statistics,
    check_labels_learnable,
    check_layers_matter,
    check_loss_decreases,
    check_normalized,
    check_normalized_with_train_stats,
    check_optimizer,
    check_overfit_batch,
    check_params_update,
    check_paths_agree,
    check_split_scores,
    check_step_matches_reference,
)
from lab.results import CheckResult, GateRecord, provenance, save_checks

WIRING_ROWS = 64  # validation rows fed to the wiring checks (architecture, layers, gradients, mixing)
EVAL_ROWS = 1_000  # rows for the ensemble checks; evaluate() gets every validation row (its chunking included)


class Session:
    """One gate run: each experiment's hooks and data are built once and shared by its checks."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._hooks: dict[str, GateHooks] = {}
        self._data: dict[str, GateData] = {}

    def hooks(self, experiment: str) -> GateHooks:
        if experiment not in self._hooks:
            self._hooks[experiment] = build_hooks(experiment, self.device)
        return self._hooks[experiment]

    def data(self, experiment: str) -> GateData:
        if experiment not in self._data:
            self._data[experiment] = self.hooks(experiment).data()
        return self._data[experiment]


def build_hooks(experiment: str, device: torch.device) -> GateHooks:
    module = get_experiment(experiment)
    return module.gate_hooks(make_config(experiment), device)


@dataclass(frozen=True)
class GateCheck:
    """One kind of check: when it applies to an experiment's hooks, and how to run it there."""

    key: str
    applies: Callable[[GateHooks], bool]
    run: Callable[[Session, GateHooks, str], CheckResult]  # (session, hooks, variant) -> result
    variants: Callable[[GateHooks], list[str]] = lambda h: [""]


def _name(h: GateHooks, text: str) -> str:
    return f"{h.label}: {text}"


def _wiring_x(s: Session, h: GateHooks) -> torch.Tensor:
    return s.data(h.experiment).x_val[:WIRING_ROWS]


def _rows(x: torch.Tensor, n: int | None) -> torch.Tensor:
    return x if n is None else x[:n]


def _fresh(h: GateHooks, dropout: bool = True):
    """A fresh model and (if the experiment has one) its optimiser, as the experiment builds them."""
    model = h.build_model(dropout=dropout)
    return model, (h.make_optimizer(model) if h.make_optimizer else None)


def _twins(h: GateHooks):
    """Two identical fresh nets without dropout, each with its own optimiser (the reference step's pair)."""
    a = h.build_model(dropout=False)
    b = copy.deepcopy(a)
    return a, h.make_optimizer(a), b, h.make_optimizer(b)


# --- data --------------------------------------------------------------------------------------------------

def _data_finite(s, h, _):
    d = s.data(h.experiment)
    return check_finite_inputs({"train": d.x_train, "validation": d.x_val, "test": d.x_test},
                               name=_name(h, "inputs finite (train, validation, test)"))


def _data_disjoint(s, h, _):
    d = s.data(h.experiment)
    what = "train/validation/test" if d.x_test is not None else "train/validation"
    return check_disjoint_content(d.x_train, d.x_val, test=d.x_test,
                                  name=_name(h, f"{what} disjoint by content (row hashes)"))


def _data_normalized(s, h, _):
    d = s.data(h.experiment)
    how = "per feature" if d.per_feature else "over all pixels"
    return check_normalized(d.x_train, per_feature=d.per_feature,
                            name=_name(h, f"training inputs normalised (mean 0, std 1 {how})"))


def _data_same_transform(s, h, _):
    d = s.data(h.experiment)
    parts = {"train": (d.x_train, d.raw_train), "validation": (d.x_val, d.raw_val), "test": (d.x_test, d.raw_test)}
    return check_normalized_with_train_stats(
        d.raw_train, {k: v for k, v in parts.items() if v[0] is not None and v[1] is not None},
        per_feature=d.per_feature, name=_name(h, "every split normalised with the raw training statistics"))


def _data_classes(s, h, _):
    d = s.data(h.experiment)
    return check_class_balance(d.y_train, d.y_val, d.n_classes,
                               name=_name(h, "every class present in train and validation, plausible frequencies"))


def _data_spec(s, h, _):
    return dataclasses.replace(h.data_spec(s.data(h.experiment)),
                               name=_name(h, "raw data follow the lab's two-rings specification"))


# --- labels ------------------------------------------------------------------------------------------------

def _labels(s, h, _):
    d = s.data(h.experiment)
    n_tr, n_va = h.fit_rows or (None, None)
    return check_labels_learnable(h.short_fit, _rows(d.x_train, n_tr), _rows(d.y_train, n_tr), _rows(d.x_val, n_va),
                                  _rows(d.y_val, n_va),
                                  name=_name(h, "labels aligned: short training beats the input-free baseline"))


# --- wiring ------------------------------------------------------------------------------------------------

def _architecture(s, h, _):
    return check_architecture(h.build_model(), h.widths, _wiring_x(s, h), bias=h.bias,
                              name=_name(h, f"architecture {'-'.join(map(str, h.widths))} with ReLU, as configured"
                                         if len(h.widths) <= 6 else
                                         f"architecture {h.widths[0]}-{len(h.widths) - 2}x{h.widths[1]}-{h.widths[-1]}"
                                         " with ReLU, as configured"))


def _layers_matter(s, h, _):
    return check_layers_matter(h.build_model(), _wiring_x(s, h), name=_name(h, "every layer influences the output"))


def _gradients(s, h, _):
    d = s.data(h.experiment)
    return check_gradients_reach_all(h.build_model(), d.x_val[:WIRING_ROWS], d.y_val[:WIRING_ROWS],
                                     name=_name(h, "every parameter gets a non-zero gradient"))


def _batch_independence(s, h, _):
    with torch.random.fork_rng(devices=_cuda(s)):
        torch.manual_seed(0)  # train-mode masks: seeded, so the recorded detail repeats
        return check_batch_independence(h.build_model(), _wiring_x(s, h), index=3,
                                        name=_name(h, "no mixing across the batch"))


def _cuda(s: Session) -> list[int]:
    return [s.device.index or 0] if s.device.type == "cuda" else []


def _eval_determinism(s, h, _):
    with torch.random.fork_rng(devices=_cuda(s)):
        torch.manual_seed(0)
        return check_eval_determinism(h.build_model(), _wiring_x(s, h), expect_train_stochastic=True,
                                      name=_name(h, "eval-mode determinism (and train-mode passes differ)"))


def _dropout_pass(s, h):
    """The experiment's own training loop over two minibatches: the pass the dropout checks tap."""
    d = s.data(h.experiment)
    rows = 2 * (h.batch_size or d.x_train.shape[0])
    x, y = d.x_train[:rows], d.y_train[:rows]

    def run(model):
        optimizer = h.make_optimizer(model)
        with torch.random.fork_rng(devices=_cuda(s)):
            torch.manual_seed(0)
            h.train_epoch(model, optimizer, x, y)
    return run


def _dropout_rates(s, h, _):
    return check_dropout_rates(h.build_model(), _dropout_pass(s, h), h.p_input, h.p_hidden,
                               name=_name(h, f"dropout active in the training loop (input {h.p_input:g}, hidden "
                                             f"{h.p_hidden:g})"))


def _dropout_scaling(s, h, _):
    return check_dropout_scaling(h.build_model(), _dropout_pass(s, h), h.p_input, h.p_hidden,
                                 name=_name(h, "inverted dropout: kept units x 1/(1-p), train mean = eval mean"))


def _evaluate(s, h, _):
    d = s.data(h.experiment)
    with torch.random.fork_rng(devices=_cuda(s)):
        torch.manual_seed(0)
        return check_evaluate(h.evaluate, h.build_model(), d.x_val, d.y_val,
                              name=_name(h, "evaluate() deterministic, restores the mode, exact loss and error"))


def _split_scores(s, h, _):
    d = s.data(h.experiment)
    model = h.build_model()
    with torch.random.fork_rng(devices=_cuda(s)):
        torch.manual_seed(0)
        scores = h.split_scores(model, d)
    return check_split_scores(scores, model, {"train": (d.x_train, d.y_train), "validation": (d.x_val, d.y_val)},
                              name=_name(h, "recorded train/validation scores are those of their split"))


def _each_estimator(h: GateHooks, check, name: str) -> CheckResult:
    """One check over every Monte-Carlo estimator the experiment runs: it fails where any of them fails, and the
    detail names each estimator with its own result."""
    results = {est: check(fn) for est, fn in h.ensemble.items()}
    failed = [est for est, r in results.items() if not r.passed]
    shown = failed or list(results)
    first = results[shown[0]]
    detail = "; ".join(f"{est}: {results[est].detail}" for est in shown)
    measured = "; ".join(f"{est}: {results[est].measured}" for est in shown)
    return CheckResult(_name(h, name), not failed, measured, first.expected, detail, first.scope)


def _ensemble(s, h, _):
    d = s.data(h.experiment)
    return _each_estimator(h, lambda fn: check_ensemble_reduces_to_eval(fn, h.build_model(dropout=False),
                                                                        d.x_val[:EVAL_ROWS]),
                           "Monte-Carlo ensemble code = eval prediction at p = 0")


def _ensemble_stochastic(s, h, _):
    d = s.data(h.experiment)
    return _each_estimator(h, lambda fn: check_ensemble_stochastic(fn, h.build_model(), d.x_val[:EVAL_ROWS]),
                           "Monte-Carlo members are random dropout nets, reproducible per seed")


# --- optimisation ------------------------------------------------------------------------------------------

def _coverage(s, h, _):
    d = s.data(h.experiment)
    x, y = _rows(d.x_train, h.progress_rows), _rows(d.y_train, h.progress_rows)
    model, opt = _fresh(h)
    with torch.random.fork_rng(devices=_cuda(s)):
        torch.manual_seed(0)
        return check_epoch_coverage(model, opt, h.train_epoch, x, y,
                                    name=_name(h, "one training pass feeds every training row exactly once"))


def _optimizer(s, h, _):
    model, opt = _fresh(h)
    return check_optimizer(opt, model, h.optimizer_expected, name=_name(h, "optimiser as configured, over every parameter"))


def _progress_data(s, h):
    d = s.data(h.experiment)
    return _rows(d.x_train, h.progress_rows), _rows(d.y_train, h.progress_rows)


def _loss_decreases(s, h, _):
    x, y = _progress_data(s, h)
    model, opt = _fresh(h)
    with torch.random.fork_rng(devices=_cuda(s)):
        torch.manual_seed(0)
        return check_loss_decreases(model, opt, h.train_epoch, x, y, h.progress_epochs,
                                    name=_name(h, f"loss decreases over the first {h.progress_epochs} training passes"))


def _finite_training(s, h, _):
    x, y = _progress_data(s, h)
    model, opt = _fresh(h)
    with torch.random.fork_rng(devices=_cuda(s)):
        torch.manual_seed(0)
        return check_finite_training(model, opt, h.train_epoch, x, y, h.progress_epochs,
                                     name=_name(h, "no NaN/Inf in loss or weights after a few training passes"))


def _params_update(s, h, _):
    d = s.data(h.experiment)
    rows = h.batch_size or d.x_train.shape[0]
    model, opt = _fresh(h)
    with torch.random.fork_rng(devices=_cuda(s)):
        torch.manual_seed(0)
        return check_params_update(model, opt, h.train_epoch, d.x_train[:rows], d.y_train[:rows],
                                   name=_name(h, "one training step moves every parameter tensor"))


def _step_reference(s, h, _):
    d = s.data(h.experiment)
    # A minibatch loop shuffles rows, so a multi-row batch would differ from the reference by summation
    # order, which Adam's normalisation can blow up to a visible difference: one row, where order is moot.
    rows = 1 if h.batch_size else d.x_train.shape[0]
    a, opt_a, b, opt_b = _twins(h)
    return check_step_matches_reference(a, opt_a, b, opt_b, h.train_epoch, d.x_train[:rows], d.y_train[:rows],
                                        name=_name(h, "training step = zero_grad, cross-entropy, backward, step"))


def _overfit(s, h, _):
    d = s.data(h.experiment)
    n = h.overfit["n"]
    model = h.build_model(dropout=False)
    return check_overfit_batch(model, d.x_train[:n], d.y_train[:n], steps=h.overfit["steps"], lr=h.overfit["lr"],
                               step=h.train_epoch, name=_name(h, f"overfit one batch of {n} training examples"))


# --- init ----------------------------------------------------------------------------------------------------

def _init_loss(s, h, _):
    d = s.data(h.experiment)
    return check_init_loss(h.build_model(), d.x_val, d.y_val, n_classes=d.n_classes,
                           name=_name(h, f"loss at init ~ ln {d.n_classes}"))


def _init(s, h, key):
    case = h.inits[key]
    return check_init_statistics(case.build, case.spec,
                                 name=_name(h, f"init {key} as configured ({case.path}): weight std, zero biases"))


def _stability(s, h, key):
    d = s.data(h.experiment)
    return check_activation_stability(h.inits[key].build(0), d.x_val, stats_fn=h.activation_stats,
                                      name=_name(h, f"stable activations under {key} init over the whole depth"))


def _activation_record(s, h, _):
    d = s.data(h.experiment)
    return check_activation_record(h.activation_stats, h.build_model(), d.x_val[:EVAL_ROWS],
                                   name=_name(h, "activation statistics recorded as forward hooks see them"))


def _path(s, h, key):
    pair = h.paths[key]
    return check_paths_agree(lambda: pair.run(s.data(h.experiment)), pair.tol, pair.what, pair.fix,
                             name=_name(h, f"optimised path agrees with its reference: {key}"))


# --- arms (lab.arms): each arm the experiment runs against what its label promises --------------------------

def _sampled(h: GateHooks) -> list:
    """The arms the costly checks build and train: all, or the hooks' sample (one arm per code path)."""
    return [a for a in h.arms if h.arm_sample is None or a.key in h.arm_sample]


def _each_arm(h: GateHooks, text: str, results: list) -> CheckResult:
    """One gate entry over many arms: it fails where any arm fails, and the message names the failing arms."""
    failed = [(a, r) for a, r in results if not r.passed]
    shown = failed or results[:1]

    def line(a, r):
        return r.detail if r.detail.startswith(f"arm {a.key}") else f"arm {a.key} ({a.label}): {r.detail}"
    detail = "; ".join(line(a, r) for a, r in shown[:3]) + (f" (+{len(failed) - 3} more arms)" if len(failed) > 3 else "")
    if not failed:
        detail = f"{len(results)} arms ({', '.join(a.key for a, _ in results[:8])}{' ...' if len(results) > 8 else ''}); " \
                 + detail
    first = shown[0][1]
    return CheckResult(_name(h, text), not failed, f"{len(results) - len(failed)}/{len(results)} arms",
                       f"{len(results)}/{len(results)}: {first.expected}", detail, first.scope)


def _promised_inputs(arm, d: GateData, rows: int) -> torch.Tensor:
    """The arm's promised training inputs written from its label: raw or normalised rows times its scale."""
    base = d.raw_train if arm.inputs == "raw" else d.x_train
    return base[:rows] * arm.scale


def _arms_declared(s, h, _):
    return check_arm_promises(h.arms, h.arms_expected, h.widths,
                              name=_name(h, f"all {len(h.arms)} arms declared as the lab's design gives them (init and "
                                            "per-layer std, data, dropout, optimiser, seeds, length)"))


def _distinct(arms: list, key) -> list:
    """One arm per distinct key, in order: arms built by the same call with the same arguments are one check."""
    seen, out = set(), []
    for arm in arms:
        if key(arm) not in seen:
            seen.add(key(arm))
            out.append(arm)
    return out


def _arms_init(s, h, _):
    results = []
    # an arm's nets depend on its init rule and bias only (its lr and data do not enter the build): one check each
    for arm in _distinct(_sampled(h), lambda a: (a.init, a.bias, a.p_input, a.p_hidden)):
        results.append((arm, check_init_statistics(lambda seed, arm=arm: h.arm_model(arm, seed), arm.init,
                                                   n_target=600 if h.tiny else 5_000, expected_std=arm.layer_std,
                                                   bias=arm.bias)))
    return _each_arm(h, "each arm's nets drawn with its promised init (per-layer std, shape, biases)", results)


def _arms_data(s, h, _):
    d = s.data(h.experiment)
    results = [(arm, check_arm_inputs(arm, h.arm_inputs(arm, d), d.x_train, d.y_train, d.x_val, d.y_val, d.raw_train,
                                      d.raw_val)) for arm in _sampled(h)]
    return _each_arm(h, "each arm trains on its promised data transform (inputs, scale, labels, every split)", results)


def _arms_training(s, h, _):
    d = s.data(h.experiment)
    results = []
    # whether the loop honours an arm's optimiser, lr, length and data does not depend on the weights it starts
    # from: arms that differ only in their init rule (Part 1's sweep) run once
    for arm in _distinct(_sampled(h), lambda a: (a.optimizer, a.lr, a.momentum, a.weight_decay, a.betas, a.eps,
                                                 a.steps, a.epochs, a.batch_size, a.bias, a.inputs, a.scale, a.labels,
                                                 a.p_input, a.p_hidden)):
        with torch.random.fork_rng(devices=_cuda(s)):
            torch.manual_seed(0)
            trace = h.arm_trace(arm, d)
        y_ref = d.y_train if arm.labels == "as given" else h.arm_inputs(arm, d)[1]
        results.append((arm, check_arm_training(arm, trace, _promised_inputs(arm, d, trace.rows), y_ref[:trace.rows])))
    return _each_arm(h, "each arm's real loop, run its configured length: optimiser settings and early and late steps "
                        "as promised", results)


def _arms_seeds(s, h, _):
    d = s.data(h.experiment)
    arms = h.arms
    sample = _sampled(h)
    first = sample[0]
    # every seed of every kind of arm: the sample, plus the arms under seeds the sample does not run; arms whose
    # seeds drive the same build (same init rule, bias, dropout, seeds) are probed once
    covered = {seed for a in sample for seed in a.seeds}
    probed = _distinct(sample + [a for a in arms if not set(a.seeds) <= covered],
                       lambda a: (a.init, a.bias, a.p_input, a.p_hidden, a.seeds))
    probes = [(first, first.seeds[0], h.arm_probe(first, d, first.seeds[0]))]
    probes += [(arm, seed, h.arm_probe(arm, d, seed)) for arm in probed for seed in arm.seeds]
    # quantities with no randomness to draw: all-zero weights, the masks of an arm without dropout
    fixed = {"init": {a.group for a in arms if a.init == "zeros"},
             "masks": {a.group for a in arms if not (a.p_input or a.p_hidden)}}
    effects = check_seed_effects(probes, shared=h.arm_shared, fixed=fixed)
    members = []
    if h.arm_members is not None:
        for arm, seed, net in h.arm_members():
            ref = h.arm_model(arm, seed)
            same = all(torch.equal(p, q) for p, q in zip(net.state_dict().values(), ref.state_dict().values()))
            members.append((f"{arm.key}, seed {seed}", same))
    data_seed = None
    if h.data_draw is not None:
        data_seed = (first.data_seed, bool(torch.equal(h.data_draw(first.data_seed).cpu(), d.raw_train.cpu())))
    masks = {a.seeds[0]: tuple(a.mask_seeds) for a in arms if a.mask_seeds}
    books = check_seed_bookkeeping(members, data_seed, masks)
    passed = effects.passed and books.passed
    detail = "; ".join(r.detail for r in (effects, books) if not r.passed) if not passed else (
        f"{effects.detail}; {books.detail}")
    return CheckResult(_name(h, "seeds: distinct seeds give distinct inits (and orders, masks), the same seed the same; "
                               "labels and data seeds line up"),
                       passed, f"{effects.measured}; {books.measured}", "as documented", detail)


def _arms_dropout(s, h, _):
    d = s.data(h.experiment)
    results = []
    for arm in _sampled(h):
        model, run = h.arm_dropout_pass(arm, d)
        with torch.random.fork_rng(devices=_cuda(s)):
            torch.manual_seed(0)
            results.append((arm, check_dropout_rates(model, run, arm.p_input, arm.p_hidden)))
    return _each_arm(h, "each arm's dropout rates in its training loop as its label says", results)


def _has_dropout(h: GateHooks) -> bool:
    return h.p_input > 0 or h.p_hidden > 0


def _trains(h: GateHooks) -> bool:
    return h.train_epoch is not None and h.make_optimizer is not None


CHECKS: list[GateCheck] = [
    GateCheck("data_finite", lambda h: True, _data_finite),
    GateCheck("data_disjoint", lambda h: True, _data_disjoint),
    GateCheck("data_normalized", lambda h: True, _data_normalized),
    GateCheck("data_same_transform", lambda h: True, _data_same_transform),
    GateCheck("data_classes", lambda h: True, _data_classes),
    GateCheck("data_spec", lambda h: h.data_spec is not None, _data_spec),
    GateCheck("labels_aligned", lambda h: h.short_fit is not None, _labels),
    GateCheck("architecture", lambda h: True, _architecture),
    GateCheck("layers_matter", lambda h: True, _layers_matter),
    GateCheck("gradients", lambda h: True, _gradients),
    GateCheck("batch_independence", lambda h: True, _batch_independence),
    GateCheck("init_loss", lambda h: h.calibrated_init, _init_loss),
    GateCheck("init", lambda h: bool(h.inits), _init, lambda h: list(h.inits)),
    GateCheck("stability", lambda h: bool(h.stable_inits) and h.activation_stats is not None, _stability,
              lambda h: list(h.stable_inits)),
    GateCheck("activation_record", lambda h: h.activation_stats is not None, _activation_record),
    GateCheck("optimizer", lambda h: h.make_optimizer is not None and h.optimizer_expected is not None, _optimizer),
    GateCheck("epoch_coverage", _trains, _coverage),
    GateCheck("loss_decreases", _trains, _loss_decreases),
    GateCheck("params_update", _trains, _params_update),
    GateCheck("finite_training", _trains, _finite_training),
    GateCheck("step_reference", _trains, _step_reference),
    GateCheck("overfit", lambda h: h.overfit is not None and h.train_epoch is not None, _overfit),
    GateCheck("eval_determinism", _has_dropout, _eval_determinism),
    GateCheck("dropout_rates", lambda h: _has_dropout(h) and _trains(h), _dropout_rates),
    GateCheck("dropout_scaling", lambda h: _has_dropout(h) and _trains(h), _dropout_scaling),
    GateCheck("evaluate", lambda h: h.evaluate is not None, _evaluate),
    GateCheck("split_scores", lambda h: h.split_scores is not None, _split_scores),
    GateCheck("ensemble_p0", lambda h: h.ensemble is not None, _ensemble),
    GateCheck("ensemble_members", lambda h: h.ensemble is not None and _has_dropout(h), _ensemble_stochastic),
    GateCheck("path", lambda h: bool(h.paths), _path, lambda h: list(h.paths)),
    GateCheck("arms_declared", lambda h: bool(h.arms) and bool(h.arms_expected), _arms_declared),
    GateCheck("arms_init", lambda h: bool(h.arms) and h.arm_model is not None, _arms_init),
    GateCheck("arms_data", lambda h: bool(h.arms) and h.arm_inputs is not None, _arms_data),
    GateCheck("arms_training", lambda h: bool(h.arms) and h.arm_trace is not None, _arms_training),
    GateCheck("arms_seeds", lambda h: bool(h.arms) and h.arm_probe is not None, _arms_seeds),
    GateCheck("arms_dropout", lambda h: bool(h.arms) and h.arm_dropout_pass is not None, _arms_dropout),
]
_BY_KEY = {c.key: c for c in CHECKS}


def _entry(experiment: str, key: str, variant: str) -> str:
    return f"{experiment}.{key}[{variant}]" if variant else f"{experiment}.{key}"


def _parse(name: str) -> tuple[str, str, str]:
    experiment, _, rest = name.partition(".")
    key, _, variant = rest.partition("[")
    return experiment, key, variant.rstrip("]")


@lru_cache(maxsize=None)
def _names_for(experiment: str) -> tuple[str, ...]:
    try:
        hooks = build_hooks(experiment, torch.device("cpu"))  # closures only: no data is loaded here
    except Exception:  # noqa: BLE001 - a broken experiment module still gets one (failing) gate entry
        return (f"{experiment}.hooks",)
    return tuple(_entry(experiment, c.key, v) for c in CHECKS if c.applies(hooks) for v in c.variants(hooks))


def gated_experiments() -> list[str]:
    """Experiments that provide gate hooks, in report order."""
    return [name for name in EXPERIMENTS if hasattr(get_experiment(name), "gate_hooks")]


def gate_names() -> list[str]:
    """Every entry of the gate, in order: experiments in report order, checks in CHECKS order."""
    return [n for exp in gated_experiments() for n in _names_for(exp)]


def _where(exc: BaseException) -> str:
    """The innermost frame of the lab's own code in a traceback: 'lab/models.py:57 in forward'."""
    lab_dir = str(PROJECT_ROOT / "lab")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(lab_dir)]
    if not frames:
        return ""
    f = frames[-1]
    rel = f.filename[len(str(PROJECT_ROOT)) + 1 :]
    return f" at {rel}:{f.lineno} in {f.name}"


def run_check(name: str, device: torch.device, session: Session | None = None) -> CheckResult:
    """One gate entry. Missing data, a broken hook or any exception become a failed check with the reason."""
    session = session or Session(device)
    experiment, key, variant = _parse(name)
    try:
        if key == "hooks" or key not in _BY_KEY:
            session.hooks(experiment)  # raises the construction error, if that is what failed
            raise LabError(f"unknown gate entry {name}")
        hooks = session.hooks(experiment)
        with single_thread(device) if hooks.tiny else contextlib.nullcontext():
            result = _BY_KEY[key].run(session, hooks, variant)
    except LabError as exc:
        return CheckResult(f"{experiment}: {key}", False, "could not run", "runs", str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug in the experiment is a failed check, not a crash of the gate
        msg = (str(exc).strip().splitlines() or [""])[0][:300]
        return CheckResult(f"{experiment}: {key}{f' [{variant}]' if variant else ''}", False,
                           f"raised {type(exc).__name__}", "runs",
                           f"the experiment's own code raised {type(exc).__name__}: {msg}{_where(exc)}")
    return result


def run_gate(device: torch.device, names: list[str] | None = None) -> list[CheckResult]:
    """Every gate entry (or the named ones), sharing one session: each experiment's data load once."""
    session = Session(device)
    return [run_check(name, device, session) for name in (names or gate_names())]


def gate_code_version() -> str:
    """Hash of the code a gate record vouches for: the compute-side sources (runner.code_version) and the
    gate's own pairing of hooks and checks."""
    from lab.runner import code_version

    h = hashlib.sha256(code_version().encode())
    for name in ("gate.py", "hooks.py"):
        h.update((PROJECT_ROOT / "lab" / name).read_bytes())
    return h.hexdigest()[:16]


def write_record(path: Path, entries: list[str], results: list[CheckResult], device: torch.device,
                 wall_time_s: float) -> None:
    """Save a gate record. Only for a complete run: every entry of the current gate, none left out."""
    missing = [n for n in gate_names() if n not in entries]
    if missing or len(entries) != len(results):
        raise LabError(f"refusing to record an incomplete gate ({len(entries)} of {len(gate_names())} checks ran)")
    save_checks(results, Path(path), entries=entries,
                **provenance(seed=0, profile="default", device=str(device), wall_time_s=wall_time_s,
                             gate_code=gate_code_version(), n_checks=len(entries)))


def verify_record(record: GateRecord, path: Path) -> None:
    """Refuse (LabError) a record that is not a complete, passing gate of the current code."""
    current = gate_names()
    missing = [n for n in current if n not in set(record.entries)]
    if missing:
        raise LabError(f"{path} holds {len(current) - len(missing)} of the {len(current)} checks of the current gate "
                       f"(missing {missing[0]}{' ...' if len(missing) > 1 else ''}): an interrupted or partial gate "
                       "run is no gate; rerun it (make check)")
    if record.provenance.get("gate_code") != gate_code_version():
        raise LabError(f"{path} was recorded for other code than this checkout (lab/ changed since the gate ran); "
                       "rerun the gate (make check)")
    failed = [c for c in record.checks if not c.passed]
    if failed:
        raise LabError(f"gate failed, no report rendered: {failed[0].name}: {failed[0].detail}")


__all__ = ["CHECKS", "Session", "gate_code_version", "gate_names", "gated_experiments", "run_check", "run_gate",
           "verify_record", "write_record"]
