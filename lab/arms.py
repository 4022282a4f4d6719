"""Arms as data: every training condition an experiment runs, with what its label promises.

    for arm in module.arms(cfg): ...        # run() builds and trains each arm from its ArmSpec; the gate checks it

An ArmSpec states what the report says about one arm (its init rule and the per-layer weight std that rule
gives, the data transform, the dropout rates, the optimiser and its settings, the seeds, the length of
training). run() consumes the declaration to build and train the arm, and the gate (lab.gate, through each
experiment's GateHooks) compares the declaration with the lab's text and the pieces run() actually builds
from it with the declaration. Labels are generated from the same fields, so a label cannot drift from the
values it names.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from lab.inits import parse_init, weight_std

# param_groups keys that are implementation switches, not settings a label promises (every other key is compared)
IMPLEMENTATION_KEYS = ("params", "foreach", "fused", "capturable", "differentiable", "initial_lr", "decoupled_weight_decay")


@dataclass(frozen=True)
class ArmSpec:
    """One arm: a training condition (and the seeds it runs under) as the report labels it."""

    experiment: str
    group: str  # where its results land: "sweep", "scaling", "breakers" (Part 1), "inits" (Part 2), the arm (Part 3)
    key: str  # unique within the experiment, e.g. "lr_big", "normal:0.1", "dropout@10"
    label: str  # generated from the fields below
    init: str  # lab.inits spec of the weights
    layer_std: tuple[float, ...]  # the weight std that rule gives each layer, input to output
    seeds: tuple[int, ...]  # the model seeds the arm runs under (init draw; Part 3: also order and masks)
    bias: bool = True
    inputs: str = "normalised"  # "normalised" (training statistics) or "raw"
    scale: float = 1.0  # inputs multiplied by this, every split
    labels: str = "as given"  # or "shuffled" (training labels only)
    data_seed: int | None = None  # the seed the data (and a label shuffle) are drawn from
    p_input: float = 0.0
    p_hidden: float = 0.0
    optimizer: str = ""  # torch.optim class name; "" = not trained
    lr: float = 0.0
    momentum: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] | None = None
    eps: float | None = None
    steps: int = 0  # full-batch steps (Part 1)
    epochs: int = 0  # passes over the training rows (Part 3)
    batch_size: int | None = None  # minibatch size (None: full batch)
    mask_seeds: tuple[int, ...] = ()  # Part 3: the Monte-Carlo ensembles' mask seeds of this arm's net

    def optimizer_settings(self) -> dict:
        """The optimiser settings the promise names (for a fresh torch.optim.<optimizer> of the same settings)."""
        out = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer == "SGD":
            out["momentum"] = self.momentum
        if self.betas is not None:
            out["betas"] = tuple(self.betas)
        if self.eps is not None:
            out["eps"] = self.eps
        return out

    def promise(self) -> dict:
        """Every promised field (for comparisons and messages), label excluded."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("label", "experiment")}


def layer_std(init: str, widths: tuple[int, ...] | list[int]) -> tuple[float, ...]:
    """The weight std the init rule gives each layer of a net of these widths."""
    parsed = parse_init(init)
    return tuple(weight_std(parsed, a, b) for a, b in zip(widths[:-1], widths[1:]))


__all__ = ["ArmSpec", "IMPLEMENTATION_KEYS", "layer_std"]
