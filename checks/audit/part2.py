"""Audit of Part 2 (deep_init): rebuild every deep net, re-record |activation| with forward hooks, compare.

    rows = audit(json.loads(Path("report/data/deep_init.json").read_text()), torch.device("cpu"))

What the lab says, rebuilt here without importing the lab: an untrained MLP with cfg.depth hidden
layers of cfg.width ReLU units (input 2, output 2), zero biases, fed the cfg.n_samples two-rings points
drawn after an cfg.n_train-point training sample from ``default_rng(cfg.seed)`` and normalised with that
training sample's mean and std (checks/audit/_ref.py holds the data and weight contract). Net k of
every init (k < cfg.n_nets) draws its weights from ``torch.Generator().manual_seed(1000 * cfg.seed + k)``,
the same seed for every init (common random numbers: the draws differ only by the init's scale), layer
by layer from the input: N(0, 1), Glorot (xavier_normal_: std sqrt(2 / (in + out))), He
(kaiming_normal_, ReLU gain: std sqrt(2 / in)). One forward pass over all points: after each ReLU the
mean and the std (unbiased) of |activation| over all samples and units, and the RMS; one backward pass
of the mean cross-entropy against the points' labels: mean |dL/da| per hidden activation and mean / std
of |dL/dW| per Linear layer; loss at init and the std of all logits.

Derived numbers, from the lab's text: the prediction E[a_l^2] = n_in Var[W] E[a_{l-1}^2] / 2 from
E[a_0^2] = the mean square of the normalised inputs (RMS = its square root; mean and std of |a| assume
Gaussian pre-activations: s / sqrt(2 pi) and s sqrt(1/2 - 1/(2 pi)) with s^2 = n_in Var[W] E[a_{l-1}^2]);
the predicted factor per layer sqrt(n_in Var[W] / 2); the measured growth factor, the geometric mean
per layer from layer 1 to layer L = depth: (median over nets of mean |a| at L / same at 1)^(1 / (L - 1)).
The tables show medians over the nets at layers 1, depth // 2 and depth.

Tolerances: the forward pass is the same float32 arithmetic as the run's (nn.Linear), so the recorded
statistics agree to float32 round-off accumulated over 21 layers: relative 1e-4 (activations, loss,
logits), 1e-3 for the gradients (a backward pass through 21 layers in another kernel order). Derived
formulas in float64: relative 1e-9. Non-finite values (an overflow) must be non-finite on both sides.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._ref import STRUCTURE, broken, draw_weights, finite, init_std, one_thread, rings, row, standardise

T_INTRO = "Part 2 introduction (normalisation statistics)"
T_ACT = "Figure p2_activations (mean and std of |activation| per layer)"
T_PRED = "Figure p2_prediction (RMS vs variance propagation)"
T_GRAD = "Figure p2_gradients (gradient statistics)"
T_LAYERS = "Table p2_layers (layers 1, mid, last)"
T_GROWTH = "Table p2_growth (growth factor and loss at init)"

ACT_TOL = 1e-4
GRAD_TOL = 1e-3
FORMULA_TOL = 1e-9
RELU_MEAN = 1.0 / math.sqrt(2.0 * math.pi)  # E[relu(z)] / s for z ~ N(0, s^2)
RELU_STD = math.sqrt(0.5 - 1.0 / (2.0 * math.pi))


def build_net(widths: list[int], spec: str, seed: int, device: torch.device) -> nn.Sequential:
    """A plain nn.Sequential of Linear / ReLU with the contract's weights and zero biases."""
    layers: list[nn.Module] = []
    for i, w in enumerate(draw_weights(widths, spec, seed)):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.zero_()
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).to(device)


def record(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Forward hooks on every ReLU: |activation| statistics; one backward pass for the gradients."""
    acts: list[torch.Tensor] = []

    def hook(module, inputs, output):
        output.retain_grad()
        acts.append(output)

    handles = [m.register_forward_hook(hook) for m in net if isinstance(m, nn.ReLU)]
    try:
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    lins = [m for m in net if isinstance(m, nn.Linear)]

    def mean_std(ts):
        return [float(t.detach().abs().mean()) for t in ts], [float(t.detach().abs().std()) for t in ts]

    mean_abs, std_abs = mean_std(acts)
    gw_mean, gw_std = mean_std([m.weight.grad for m in lins])
    return {"mean_abs": mean_abs, "std_abs": std_abs, "rms": [float(a.detach().pow(2).mean().sqrt()) for a in acts],
            "grad_act_mean_abs": [float(a.grad.abs().mean()) for a in acts], "grad_w_mean_abs": gw_mean,
            "grad_w_std_abs": gw_std, "loss_at_init": float(loss.detach()), "logit_std": float(logits.detach().std())}


def prediction(widths: list[int], spec: str, sq: float) -> dict:
    """Variance propagation through the hidden layers, from E[a_0^2] = sq."""
    out: dict[str, list[float]] = {"mean_abs": [], "std_abs": [], "rms": [], "factor_per_layer": []}
    for fan_in, fan_out in zip(widths[:-2], widths[1:-1]):
        var_w = init_std(spec, fan_in, fan_out) ** 2
        s = math.sqrt(fan_in * var_w * sq)
        out["mean_abs"].append(s * RELU_MEAN)
        out["std_abs"].append(s * RELU_STD)
        out["factor_per_layer"].append(math.sqrt(fan_in * var_w / 2.0))
        sq = fan_in * var_w * sq / 2.0
        out["rms"].append(math.sqrt(sq))
    return out


def _rel(v: float | None, rtol: float) -> float:
    return rtol * abs(v) if v is not None else 0.0


def _median_layers(nets: list[list]) -> np.ndarray:
    return np.median(np.asarray([[math.nan if v is None else v for v in n] for n in nets], dtype=float), 0)


def worst_row(table: str, row_name: str, quantity: str, stored: list, mine: list, rtol: float) -> dict:
    """One row for a per-layer list: the layer with the largest difference relative to its tolerance."""
    if len(stored) != len(mine):
        return row(table, row_name, f"{quantity}: {len(stored)} layers stored, {len(mine)} recomputed",
                   len(stored), len(mine), 0.0, False)
    worst = None
    for i, (a, b) in enumerate(zip(stored, mine)):
        a, b = finite(a), finite(b)
        tol = _rel(b, rtol)
        ok = (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)
        score = (not ok, abs(a - b) / tol if ok and a is not None and tol > 0 else 0.0)
        if worst is None or score > worst[0]:
            worst = (score, i, a, b, tol, ok)
    _, i, a, b, tol, ok = worst
    return row(table, row_name, f"{quantity}, every layer (worst: layer {i + 1})", a, b, tol, ok)


def audit(result: dict, device: torch.device) -> list[dict]:
    """Recompute Part 2's figures and tables; one row per number compared (see the module docstring)."""
    rows: list[dict] = []
    try:
        _audit(result, device, rows)
    except STRUCTURE as exc:  # a shape no section expected: the rows so far, and one failed row saying where
        rows.append(broken(T_ACT, "results", exc))
    return rows


def _audit(result: dict, device: torch.device, rows: list[dict]) -> None:
    try:
        cfg, m = result["config"], result["metrics"]
        widths = [2] + [cfg["width"]] * cfg["depth"] + [2]
        raw_tr, _, raw_va, y_va = rings(cfg["n_train"], cfg["n_samples"], cfg["seed"])
        _, x, mean, std = standardise(raw_tr, raw_va)
        x, y = x.to(device), y_va.to(device)
        sq = float((x.double() ** 2).mean())
    except STRUCTURE as exc:
        rows.append(broken(T_ACT, "config", exc))
        return
    try:
        for i in range(2):
            rows.append(row(T_INTRO, "normalisation", f"training mean of feature {i}", m["norm_mean"][i],
                            float(mean[i]), 1e-5))
            rows.append(row(T_INTRO, "normalisation", f"training std of feature {i}", m["norm_std"][i],
                            float(std[i]), 1e-5))
        rows.append(row(T_PRED, "inputs", "E[a_0^2], mean square of the normalised inputs", m["input_sq_mean"], sq,
                        _rel(sq, 1e-5)))
        rows.append(row(T_ACT, "inputs", "number of points fed", m["n_samples"], cfg["n_samples"], 0.0))
        rows.append(row(T_ACT, "layers", "hidden layers recorded", len(m["layers"]), cfg["depth"], 0.0))
    except STRUCTURE as exc:
        rows.append(broken(T_INTRO, "metrics", exc))
    mid = cfg["depth"] // 2 - 1
    try:
        stored_inits = m["inits"]
        rows.append(row(T_GROWTH, "all", f"inits present ({', '.join(cfg['inits'])})", ", ".join(stored_inits),
                        ", ".join(cfg["inits"]), 0.0, list(stored_inits) == list(cfg["inits"])))
    except STRUCTURE as exc:
        rows.append(broken(T_GROWTH, "metrics.inits", exc))
        return
    for spec in cfg["inits"]:
        if spec not in stored_inits:
            continue
        if spec.partition(":")[0] == "torch":
            # PyTorch's default init is drawn inside nn.Linear from the global RNG: no seeding contract to rebuild it
            rows.append(row(T_ACT, spec, "not recomputed: PyTorch's default init has no seeding contract",
                            "not recomputed", "not recomputed", 0.0, True))
            continue
        try:
            rows += _init_rows(stored_inits[spec], spec, cfg, widths, x, y, sq, mid, device)
        except STRUCTURE as exc:
            rows.append(broken(T_ACT, f"metrics.inits[{spec!r}]", exc))


def _init_rows(d: dict, spec: str, cfg: dict, widths: list[int], x, y, sq: float, mid: int, device) -> list[dict]:
    rows = []
    label = d.get("label", spec)
    with one_thread(device):  # see _ref.one_thread: on a shared machine a second thread mostly waits
        nets = [record(build_net(widths, spec, 1000 * cfg["seed"] + k, device), x, y) for k in range(cfg["n_nets"])]
    n_stored = len(d["mean_abs"])
    rows.append(row(T_ACT, label, "weight draws stored", n_stored, cfg["n_nets"], 0.0))
    for k, net in enumerate(nets[:n_stored]):
        for key, table, rtol in (("mean_abs", T_ACT, ACT_TOL), ("std_abs", T_ACT, ACT_TOL), ("rms", T_PRED, ACT_TOL),
                                 ("grad_act_mean_abs", T_GRAD, GRAD_TOL), ("grad_w_mean_abs", T_GRAD, GRAD_TOL),
                                 ("grad_w_std_abs", T_GRAD, GRAD_TOL)):
            rows.append(worst_row(table, label, f"{key} of net {k} (seed {1000 * cfg['seed'] + k})", d[key][k],
                                  net[key], rtol))
        for key in ("loss_at_init", "logit_std"):
            rows.append(row(T_GROWTH, label, f"{key} of net {k}", d[key][k], net[key], _rel(net[key], ACT_TOL)))
    med_mean = _median_layers([n["mean_abs"] for n in nets])
    med_std = _median_layers([n["std_abs"] for n in nets])
    st_mean = _median_layers(d["mean_abs"])
    st_std = _median_layers(d["std_abs"])
    for name, stored, mine in (("mean |a|", st_mean, med_mean), ("std |a|", st_std, med_std)):
        for i in (0, mid, cfg["depth"] - 1):
            rows.append(row(T_LAYERS, label, f"{name} at layer {i + 1} (median over draws)", stored[i], mine[i],
                            _rel(finite(mine[i]), ACT_TOL)))
    first, last = finite(med_mean[0]), finite(med_mean[-1])
    growth = ((last / first) ** (1.0 / (cfg["depth"] - 1)) if first and last and first > 0 and last > 0 else None)
    rows.append(row(T_GROWTH, label, "measured factor per layer (median mean |a|, last / first)^(1 / (depth - 1))",
                    d["growth_per_layer"], growth, _rel(growth, ACT_TOL)))
    pred = prediction(widths, spec, sq)
    stored_pred = d["predicted"]
    rows.append(row(T_GROWTH, label, "predicted factor sqrt(n_in Var[W] / 2), last layer",
                    stored_pred["factor_per_layer"][-1], pred["factor_per_layer"][-1],
                    _rel(pred["factor_per_layer"][-1], FORMULA_TOL)))
    for key in ("rms", "mean_abs", "std_abs", "factor_per_layer"):
        # the input mean square is float32 data: its round-off carries into every predicted layer
        rows.append(worst_row(T_PRED, label, f"predicted {key}", stored_pred[key], pred[key], 1e-5))
    for key in ("loss_at_init", "logit_std"):
        med = float(np.median([math.inf if v is None else v for v in (n[key] for n in nets)]))
        st = float(np.median([math.inf if v is None else v for v in d[key]]))
        rows.append(row(T_GROWTH, label, f"{key} (median over draws)", st, med, _rel(finite(med), ACT_TOL)))
    return rows


__all__ = ["audit", "build_net", "prediction", "record"]
