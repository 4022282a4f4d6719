"""What an experiment hands the gate: its own data, builders, train loop, evaluation and fast paths.

    hooks = module.gate_hooks(make_config(name), device)    # lab.gate pairs them with lab.recipe's checks

Every hook is a thin closure over the experiment module's *own* functions, looked up by name when it is
called, so the gate exercises exactly the code ``run()`` uses (and a bug planted there, by an edit or a
monkeypatch, reaches the gate). A field left at None means "this experiment has no such piece": the
checks that need it are simply not part of that experiment's gate. A new experiment in
``lab/experiments/`` is gated by defining ``gate_hooks(cfg, device) -> GateHooks``; see README.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn


@dataclass(frozen=True)
class GateData:
    """The experiment's data exactly as its run() feeds the net, plus the same rows before normalisation."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_classes: int
    raw_train: torch.Tensor | None = None  # the same training rows before standardisation (any scale)
    raw_val: torch.Tensor | None = None
    x_test: torch.Tensor | None = None  # only where the experiment loads a test split
    raw_test: torch.Tensor | None = None
    per_feature: bool = True  # standardised per input feature (rings) or with one scalar over all values (MNIST)
    source: str = ""  # where the rows come from, for messages ("MNIST training images 0-4,999")


@dataclass(frozen=True)
class InitCase:
    """One configured initialisation and how the experiment builds a net with it (seeded)."""

    spec: str  # lab.inits spec, e.g. "normal:0.1", "glorot", "he"
    build: Callable[[int], nn.Module]  # seed -> a fresh net initialised as the experiment does it
    path: str = ""  # which code path builds it ("MLP", "batched sweep stack", ...), for messages


@dataclass(frozen=True)
class PathPair:
    """An optimised code path and its plain reference, run on the same inputs; they must agree."""

    run: Callable[[GateData], tuple[torch.Tensor, torch.Tensor]]  # data -> (optimised, reference), same shape
    tol: float  # max |optimised - reference| / max(1, |reference|)
    what: str  # what the numbers are, for the message ("training loss over 100 steps, 6 nets")
    fix: str  # where to look when they disagree


@dataclass
class StepTrace:
    """One optimisation step of an arm's real training loop, as observed: the net just before and just after it."""

    when: str  # "epoch 80 of 80", "step 1000 of 1000"
    before: nn.Module  # a copy of the net before the step (its dropout layers as built)
    after: nn.Module  # a copy of the net after the step
    x: torch.Tensor | None = None  # the batch the step fed (None: the arm's promised training inputs)
    y: torch.Tensor | None = None
    rng_state: torch.Tensor | None = None  # torch's CPU RNG state at the step's forward pass (its dropout masks)
    cuda_rng_state: torch.Tensor | None = None
    opt_state: dict[int, dict] | None = None  # optimiser state before the step, by parameter index


@dataclass
class ArmTrace:
    """What the gate sees of an arm trained through the experiment's own loop for its configured length."""

    length: str  # "80 epochs of train_arm on 100 training rows"
    rows: int  # the training rows used (the first ``rows`` of the arm's training inputs)
    steps: list[StepTrace]
    optimizer: str | None = None  # type name of the torch optimiser the loop used (None: no torch optimiser)
    param_groups: list[dict] | None = None  # its settings after the last epoch, without "params"


@dataclass
class GateHooks:
    """Everything the gate may check of one experiment. None = not applicable to this experiment."""

    experiment: str
    label: str  # short human name used in check names, e.g. "Part 3 (784-800-800-10, MNIST)"
    data: Callable[[], GateData]  # loaded through the experiment's own loader; cached by the gate per run
    widths: tuple[int, ...]  # configured Linear widths, input to output
    build_model: Callable[..., nn.Module]  # build_model(dropout: bool = True) -> the net as run() builds it
    bias: bool = True  # the configured nets have biases
    p_input: float = 0.0  # configured dropout on the input ...
    p_hidden: float = 0.0  # ... and after each hidden layer
    inits: dict[str, InitCase] = field(default_factory=dict)  # every init the experiment configures
    calibrated_init: bool = False  # build_model()'s loss at init must be ~ln C (else it is a finding)
    stable_inits: tuple[str, ...] = ()  # keys of ``inits`` whose deep activations must stay stable
    activation_stats: Callable[[nn.Module, torch.Tensor], dict] | None = None  # the experiment's own recorder
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None
    optimizer_expected: dict[str, Any] | None = None  # {"type": "AdamW", "lr": ..., "weight_decay": ...}
    # The experiment's own training loop over (x, y) once: one epoch of minibatches, or one full-batch step.
    train_epoch: Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor], float] | None = None
    batch_size: int | None = None  # minibatch size of train_epoch (None: full batch)
    # A short training run through the experiment's own loop: (x_tr, y_tr, x_val, y_val) -> {"acc", "loss"}.
    short_fit: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict] | None = None
    fit_rows: tuple[int, int] | None = None  # (train, validation) rows short_fit gets; None = all of them
    progress_epochs: int = 3  # passes of train_epoch in the loss-decreases and finite-training checks ...
    progress_rows: int | None = 500  # ... over this many training rows (None = all)
    evaluate: Callable[[nn.Module, torch.Tensor, torch.Tensor], dict] | None = None
    # The per-split numbers the experiment records for a model (what its curves and tables show):
    # (model, data) -> {"train": {"loss", "error_pct"}, "validation": {...}}.
    split_scores: Callable[[nn.Module, GateData], dict[str, dict]] | None = None
    # Monte-Carlo ensemble: (model, x, k, seed) -> averaged logits of k members, one callable per estimator run()
    # uses ({name: callable}; Part 3: the thinned networks of its study and the per-image reference). Every
    # ensemble check runs on each of them.
    # The data's own specification, checked on the raw rows: GateData -> CheckResult (Parts 1 and 2: the lab's
    # two rings, LAB_RINGS), or None.
    data_spec: Callable[[GateData], Any] | None = None
    ensemble: dict[str, Callable[[nn.Module, torch.Tensor, int, int], torch.Tensor]] | None = None
    paths: dict[str, PathPair] = field(default_factory=dict)  # optimised path vs plain reference
    overfit: dict[str, Any] | None = None  # {"n": examples, "steps": ..., "lr": ...} for overfit-one-batch
    tiny: bool = False  # tiny nets: checked on one CPU thread, as run() trains them (lab.batched.single_thread)
    # --- the arms (lab.arms): every arm the experiment's run() trains, checked against what its label promises ---
    arms: list = field(default_factory=list)  # list[ArmSpec]: the declaration run() consumes (gate's configuration)
    # The lab's text for each arm, written from the config in gate_hooks (never from arms()): [{"key", field: value}]
    arms_expected: list[dict] = field(default_factory=list)
    arm_sample: tuple[str, ...] | None = None  # keys of the arms built and trained by the costly checks (None: all)
    arm_model: Callable[[Any, int], nn.Module] | None = None  # (arm, seed) -> its net, built by run()'s own code
    # (arm, data) -> the arm's (x_train, y_train, x_val, y_val) as run() feeds them
    arm_inputs: Callable[[Any, GateData], tuple] | None = None
    arm_trace: Callable[[Any, GateData], ArmTrace] | None = None  # the arm's real loop, its configured length
    # (arm, data, seed) -> what a seed drives in the arm's real loop: {"init": ..., "order": ..., "masks": ...}
    arm_probe: Callable[[Any, GateData, int], dict[str, torch.Tensor]] | None = None
    arm_shared: tuple[str, ...] = ()  # probe quantities the arms of one seed share (Part 3: "init", "order")
    # The nets of a combined build as run() labels them: () -> [(arm, seed, net)] (Part 1: the batched sweep)
    arm_members: Callable[[], list[tuple[Any, int, nn.Module]]] | None = None
    data_draw: Callable[[int], torch.Tensor] | None = None  # data seed -> the lab's raw training rows under it
    # (arm, data) -> (the arm's net as its loop builds it, one pass of its loop over a few rows): dropout checks
    arm_dropout_pass: Callable[[Any, GateData], tuple[nn.Module, Callable[[nn.Module], object]]] | None = None


# The lab's text, not lab.data's constants: two rings of radius 1 and 4, radial noise U(-1, 1), centred at
# (10, 10). An edited constant in lab/data.py must not move what the gate expects.
LAB_RINGS = {"radii": (1.0, 4.0), "noise": 1.0, "center": (10.0, 10.0)}


def rings_spec(d: GateData):
    """The two-rings specification check on every raw row (training and validation) of d."""
    from lab.recipe import check_rings_geometry  # local: hooks stays importable without the recipe

    raw = torch.cat([d.raw_train.reshape(-1, d.raw_train.shape[-1]), d.raw_val.reshape(-1, d.raw_val.shape[-1])])
    return check_rings_geometry(raw, torch.cat([d.y_train, d.y_val]), **LAB_RINGS)


__all__ = ["ArmTrace", "GateData", "GateHooks", "InitCase", "LAB_RINGS", "PathPair", "StepTrace", "rings_spec"]
