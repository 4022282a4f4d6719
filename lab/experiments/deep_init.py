"""Lab part 2: per-layer |activation| and gradient statistics of an untrained 20x100 ReLU net.

    outcome = run(make_config("deep_init", "quick"), RunContext())

For each init (N(0,1), Glorot, He) and several weight draws, one forward pass over a large two-rings
sample records mean/std of |activation| per hidden layer, one backward pass records the gradient
statistics, and the variance-propagation argument (E[a_l^2] = n_in Var[W] E[a_{l-1}^2] / 2 for ReLU)
gives the prediction drawn beside the measurement.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lab.arms import ArmSpec, layer_std
from lab.config import DeepInitConfig
from lab.context import RunContext
from lab.data import Split, rings_split
from lab.experiments import Outcome
from lab.hooks import GateData, GateHooks, InitCase, rings_spec
from lab.inits import parse_init, weight_std
from lab.models import MLP, abs_stats
from lab.recipe import check_activation_stability, check_init_loss

# For z ~ N(0, s^2) and a = relu(z): E[a] = s / sqrt(2 pi), std(a) = s * sqrt(1/2 - 1/(2 pi)).
_RELU_MEAN = 1.0 / math.sqrt(2.0 * math.pi)
_RELU_STD = math.sqrt(0.5 - 1.0 / (2.0 * math.pi))


def predicted_stats(widths: list[int], spec: str, input_sq_mean: float) -> dict[str, list[float]]:
    """Variance propagation through ReLU layers, expectation over weight draws (He et al. 2015, eq. 9)."""
    parsed = parse_init(spec)
    sq = input_sq_mean  # E[a_0^2]: mean square of the (normalised) inputs
    mean_abs, std_abs, rms, factors = [], [], [], []
    for fan_in, fan_out in zip(widths[:-2], widths[1:-1]):
        var_w = weight_std(parsed, fan_in, fan_out) ** 2
        var_z = fan_in * var_w * sq
        s = math.sqrt(var_z)
        mean_abs.append(s * _RELU_MEAN)
        std_abs.append(s * _RELU_STD)
        factors.append(math.sqrt(fan_in * var_w / 2.0))
        sq = var_z / 2.0
        rms.append(math.sqrt(sq))
    # rms is exact in expectation; mean/std of |a| assume Gaussian pre-activations (Jensen makes the
    # measured mean |a| smaller when per-sample scales vary, as they do for ring inputs).
    return {"mean_abs": mean_abs, "std_abs": std_abs, "rms": rms, "factor_per_layer": factors}


def measure_net(model: MLP, x: torch.Tensor, y: torch.Tensor) -> dict:
    """One forward (activations) and one backward (gradients) pass of an untrained net."""
    acts: list[torch.Tensor] = []
    model.train()  # no dropout in this net; train mode only so autograd records the graph
    logits = model(x, record=acts)
    for a in acts:
        a.retain_grad()
    loss = F.cross_entropy(logits, y)
    loss.backward()
    act = abs_stats(acts)
    grad_a = abs_stats([a.grad for a in acts])
    grad_w = abs_stats([layer.weight.grad for layer in model.layers])
    return {
        "mean_abs": act["mean_abs"],
        "std_abs": act["std_abs"],
        "rms": [float(a.detach().pow(2).mean().sqrt()) for a in acts],
        "grad_act_mean_abs": grad_a["mean_abs"],
        "grad_w_mean_abs": grad_w["mean_abs"],
        "grad_w_std_abs": grad_w["std_abs"],
        "loss_at_init": float(loss.detach()),
        "logit_std": float(logits.detach().std()),
    }


def growth_factor(first: float, last: float, n_layers: int) -> float:
    """Geometric mean factor per layer between the first and last hidden layer."""
    if first <= 0 or last <= 0 or not (math.isfinite(first) and math.isfinite(last)):
        return float("nan")
    return (last / first) ** (1.0 / (n_layers - 1))


def widths(cfg: DeepInitConfig) -> list[int]:
    return [2] + [cfg.width] * cfg.depth + [2]


def load_data(cfg: DeepInitConfig, device: torch.device) -> Split:
    """n_train points give the normalisation statistics; the n_samples validation points are the large sample."""
    return rings_split(cfg.n_train, cfg.n_samples, cfg.seed).to(device)


def net_seed(cfg: DeepInitConfig, net: int) -> int:
    """The seed of weight draw ``net``. The same for every init (common random numbers): the nets of one draw
    differ only by the weight scale the init chooses."""
    return cfg.seed * 1000 + net


def net_seeds(cfg: DeepInitConfig) -> list[int]:
    return [net_seed(cfg, net) for net in range(cfg.n_nets)]


def build_net(cfg: DeepInitConfig, init: str, seed: int, device: torch.device) -> MLP:
    """The deep net under one init, its weights drawn from a generator seeded with ``seed``."""
    return MLP(widths(cfg), init=init, generator=torch.Generator().manual_seed(seed)).to(device)


def make_model(cfg: DeepInitConfig, spec: str, net: int, device: torch.device) -> MLP:
    """Weight draw ``net`` of the deep net under one init."""
    return build_net(cfg, spec, net_seed(cfg, net), device)


def arms(cfg: DeepInitConfig) -> list[ArmSpec]:
    """Each configured init with its weight-draw seeds (lab.arms): run() measures exactly these nets."""
    return [ArmSpec("deep_init", "inits", spec, parse_init(spec).label, spec, layer_std(spec, widths(cfg)),
                    tuple(net_seeds(cfg)), data_seed=cfg.seed) for spec in cfg.inits]


def run(cfg: DeepInitConfig, ctx: RunContext) -> Outcome:
    split = load_data(cfg, ctx.device)
    x, y = split.x_val, split.y_val  # the large sample, normalised with training statistics
    widths_ = widths(cfg)
    input_sq_mean = float((x**2).mean())
    per_init: dict[str, dict] = {}
    findings = []
    jobs = [(arm, net, seed) for arm in arms(cfg) for net, seed in enumerate(arm.seeds)]
    runs: dict[str, list[dict]] = {spec: [] for spec in cfg.inits}
    for arm, net, seed in ctx.progress(jobs, phase="nets", desc="deep_init nets"):
        spec = arm.key
        model = build_net(cfg, arm.init, seed, ctx.device)
        runs[spec].append(measure_net(model, x, y))
        if net == 0:
            label = parse_init(spec).label
            findings.append(check_activation_stability(model, x, name=f"stable activations: {label}", scope="finding"))
            findings.append(check_init_loss(model, x, y, name=f"deep net loss at init: {label}", scope="finding"))
    for spec in cfg.inits:
        nets = runs[spec]
        stacked = {k: [n[k] for n in nets] for k in nets[0]}
        median_mean = np.median(np.asarray(stacked["mean_abs"], dtype=float), 0)  # the section uses np.median too
        per_init[spec] = {
            "label": parse_init(spec).label,
            **stacked,  # per net: lists over layers (or one scalar per net)
            "predicted": predicted_stats(widths_, spec, input_sq_mean),
            "growth_per_layer": growth_factor(float(median_mean[0]), float(median_mean[-1]), cfg.depth),
        }
    metrics = {
        "layers": list(range(1, cfg.depth + 1)),
        "widths": widths_,
        "n_samples": cfg.n_samples,
        "input_sq_mean": input_sq_mean,
        "norm_mean": split.mean.tolist(),
        "norm_std": split.std.tolist(),
        "ln_classes": math.log(2),
        "inits": per_init,
    }
    return Outcome(metrics=metrics, findings=findings)


def gate_hooks(cfg: DeepInitConfig, device: torch.device) -> GateHooks:
    """What the gate checks of this part: the data, the net under every configured init, and measure_net
    (the recorder whose numbers the figures show)."""

    def data() -> GateData:
        s = load_data(cfg, device)
        return GateData(s.x_train, s.y_train, s.x_val, s.y_val, 2, s.x_train_raw, s.x_val_raw,
                        source=f"two rings, seed {cfg.seed}")

    def stats(model, x):
        return measure_net(model, x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device))

    def builder(spec: str):
        """Draw ``seed`` of the net under ``spec``, through build_net and net_seed as run() builds its arms."""
        return lambda seed: build_net(cfg, spec, net_seed(cfg, seed), device)

    stable = "he" if "he" in cfg.inits else cfg.inits[-1]
    # The lab's text, from the config (never from arms()): each init on the nets of seeds 1000 * seed + net.
    expected = [{"key": spec, "init": spec, "seeds": tuple(cfg.seed * 1000 + n for n in range(cfg.n_nets)),
                 "bias": True, "inputs": "normalised", "scale": 1.0, "p_input": 0.0, "p_hidden": 0.0, "optimizer": ""}
                for spec in cfg.inits]
    return GateHooks(
        experiment="deep_init",
        label="Part 2",
        data=data,
        data_spec=rings_spec,
        widths=(2, *[cfg.width] * cfg.depth, 2),  # from the config, not from widths(): the check's expectation
        build_model=lambda dropout=True, seed=None: make_model(cfg, stable, 0 if seed is None else seed, device),
        # each init arm's own rule and nets (its per-layer std is its check): the arms' init check for this part
        inits={arm.key: InitCase(arm.init, builder(arm.init), "build_net") for arm in arms(cfg)},
        stable_inits=("he",) if "he" in cfg.inits else (),
        activation_stats=stats,
        arms=arms(cfg),
        arms_expected=expected,
        arm_probe=lambda arm, d, seed: {"init": torch.cat([p.detach().flatten() for p in
                                                           build_net(cfg, arm.init, seed, device).parameters()])},
    )


__all__ = ["arms", "build_net", "gate_hooks", "net_seed", "net_seeds", "load_data", "make_model", "widths", "growth_factor", "measure_net", "predicted_stats", "run"]
