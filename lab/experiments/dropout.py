"""Lab part 3: a 784-800-800-10 MLP on MNIST with and without dropout, then Monte-Carlo dropout ensembles.

    outcome = run(make_config("dropout", "quick"), RunContext())

Two arms share the init draw and the minibatch order: dropout (20 % on the input, 50 % after each hidden
layer) and no dropout. Each epoch both are scored in eval mode on the full training and validation sets.
The pair is trained under n_train_seeds training seeds (each changes the init draw, the minibatch order and
the training masks), so every number comes with its spread and the arms are compared per seed.
Afterwards each seed's dropout net becomes an ensemble: k thinned networks (one dropout mask per pass,
shared by every image, run as a smaller dense net: lab.thinned) are averaged (logits, or probabilities) for
k on a log grid up to k_max, every k read off one run of passes with running sums. The ordinary train-mode
pass (a fresh mask per image) is the reference estimator, run to a smaller k; both are compared with the
usual eval-mode (weight-scaling) prediction.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from lab import thinned
from lab.arms import ArmSpec, layer_std
from lab.batched import single_thread
from lab.config import DropoutConfig, with_derived_seed
from lab.context import RunContext
from lab.data import MnistSplit, Split, mnist_split
from lab.experiments import Outcome
from lab.experiments.deep_init import predicted_stats
from lab.hooks import ArmTrace, GateData, GateHooks, PathPair, StepTrace
from lab.inits import parse_init
from lab.models import MLP
from lab.recipe import Tap, check_disjoint_content, check_init_loss, check_normalized
from lab.results import CheckResult
from lab.train import evaluate, train_step

N_SAMPLE_DIGITS = 16  # normalised training images stored for the "as the network sees them" figure
EVAL_BATCH = 5_000  # evaluation chunk: bounds memory, does not change the numbers
# The gate's short training (label check): 3 epochs on 2,000 images reach ~85 % validation accuracy against
# ~11 % with the inputs zeroed, in ~2 s on 2 CPU cores; a label shuffle or shift stays at the baseline.
GATE_FIT_ROWS = (2_000, 2_000)
GATE_FIT_EPOCHS = 3
# train_arm draws the init from seed, the minibatch order from seed + 1 and the training masks from seed + 2:
# training seeds 10 apart never share a stream.
SEED_STRIDE = 10
ESTIMATORS = ("thinned", "per_image")  # one mask per pass shared by all images (the study's), or one per image
GATE_PATH_ROWS, GATE_PATH_MASKS = 500, 3  # the thinned-network path check: validation rows x mask draws
# The gate runs each sampled arm's train_arm for all its epochs on GATE_ARM_ROWS training rows (one minibatch, so
# one step per epoch) and scores GATE_ARM_ROWS validation rows after each: ~80 small steps per arm.
GATE_ARM_ROWS = 8
GATE_PLAIN_EPOCHS = 3
GATE_PROBE_ROWS = 200  # training rows of the gate's one-epoch seed probes (two minibatches)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (dropout masks read it) inside fork_rng: no state leaks to the caller."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def k_grid(k_max: int) -> list[int]:
    """1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, ... up to and including k_max (log-spaced, 50 on it)."""
    ks = [m * 10**d for d in range(int(math.log10(k_max)) + 1) for m in (1, 2, 3, 5, 7)]
    return sorted({k for k in ks if k < k_max} | {k_max})


def predicted_logit_std(widths: tuple[int, ...], sigma: float, input_sq_mean: float) -> float:
    """Variance propagation at init (zero biases), through Part 2's predicted_stats; the logits get no ReLU."""
    last_rms = predicted_stats(list(widths), f"normal:{sigma}", input_sq_mean)["rms"][-1]
    return math.sqrt(widths[-2] * sigma**2 * last_rms**2)


def make_model(cfg: DropoutConfig, p_input: float, p_hidden: float, device: torch.device) -> MLP:
    # Same generator seed for both arms: they start from identical weights.
    gen = torch.Generator().manual_seed(cfg.seed)
    widths = (784, *cfg.hidden, 10)
    # nn.Linear's constructor draws its default init from the global RNG before ours overwrites it: fork, so
    # building a model leaves the caller's random state alone.
    with torch.random.fork_rng(devices=[]):
        model = MLP(widths, p_input=p_input, p_hidden=p_hidden, init=f"normal:{cfg.sigma}", generator=gen)
    return model.to(device)


def make_optimizer(cfg: DropoutConfig, model: MLP) -> torch.optim.AdamW:
    # fused=True: one kernel per parameter for the whole AdamW update instead of ~10 elementwise passes;
    # measured 4.5 vs 5.8 ms per batch-100 step on the 2-core CPU (the update is memory-bound).
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def load_data(cfg: DropoutConfig, device: torch.device) -> MnistSplit:
    """The lab's split (first n_train training images, the next n_val for validation), on the device."""
    data = mnist_split(cfg.n_train, cfg.n_val, with_test=cfg.final)
    s = data.split.to(device)
    return MnistSplit(s, data.train_range, data.val_range,
                      None if data.x_test is None else data.x_test.to(device),
                      None if data.y_test is None else data.y_test.to(device),
                      data.x_test_raw)


def train_epoch(model: MLP, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                order_gen: torch.Generator) -> torch.Tensor:
    """One epoch of minibatch training in train mode (dropout on); returns the mean minibatch loss as a tensor
    (no host sync). The minibatch order comes from order_gen, the dropout masks from the global RNG."""
    model.train()
    perm = torch.randperm(x.shape[0], generator=order_gen).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    batches = perm.split(batch_size)
    for idx in batches:
        loss_sum += train_step(model, optimizer, x[idx], y[idx])
    return loss_sum / len(batches)


def evaluate_rows(model: MLP, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Eval-mode loss and error (%) of (x, y), in chunks of EVAL_BATCH: how every number of this part is scored."""
    return evaluate(model, x, y, EVAL_BATCH)


def score(model: MLP, data: MnistSplit) -> dict[str, float]:
    """Eval-mode loss and error (%) on the full training and validation sets."""
    s = data.split
    tr = evaluate_rows(model, s.x_train, s.y_train)
    va = evaluate_rows(model, s.x_val, s.y_val)
    return {"train_loss": tr["loss"], "train_error_pct": tr["error_pct"], "val_loss": va["loss"], "val_error_pct": va["error_pct"]}


def summarize(curves: dict) -> dict:
    """Final and best-epoch numbers of one arm (the last recorded epoch if it diverged)."""
    val_err, val_loss = curves["val_error_pct"], curves["val_loss"]
    finite = [i for i, v in enumerate(val_loss) if v is not None and math.isfinite(v)]
    last = len(val_loss) - 1
    out = {key: curves[key][last] for key in ("train_loss", "train_error_pct", "val_loss", "val_error_pct")}
    out["epoch"] = last
    if finite:
        best_err = min(finite, key=lambda i: (val_err[i], i))
        best_loss = min(finite, key=lambda i: (val_loss[i], i))
        out.update(
            best_val_error_epoch=best_err,
            best_val_error_pct=val_err[best_err],
            min_val_loss_epoch=best_loss,
            min_val_loss=val_loss[best_loss],
            val_loss_rise=val_loss[last] - val_loss[best_loss],
        )
    times = sorted(t for t in curves["train_time_s"] if t is not None)
    # median, not mean: on a shared CPU a few epochs take 10x longer when another job grabs the cores
    out["seconds_per_epoch"] = times[len(times) // 2] if times else None
    return out


def train_arm(cfg: DropoutConfig, data: MnistSplit, arm: str, p_input: float, p_hidden: float, ctx: RunContext,
              on_epoch: Callable[[int, MLP, torch.optim.Optimizer], bool | None] | None = None) -> tuple[MLP, dict]:
    """Train one arm for cfg.epochs; eval-mode scores at epoch 0 (init) and after every epoch.

    A NaN/Inf training loss ends the arm and records ``diverged_at`` (the epoch); it never raises.
    ``on_epoch(done, model, optimizer)``, if given, is called before each epoch and after the last (``done`` =
    epochs done so far); it returning True ends training there: the gate watches the real loop through it.
    """
    s = data.split
    model = make_model(cfg, p_input, p_hidden, ctx.device)
    optimizer = make_optimizer(cfg, model)
    order_gen = torch.Generator().manual_seed(cfg.seed + 1)  # same minibatch order in both arms
    curves: dict[str, list] = {k: [v] for k, v in score(model, data).items()}
    curves.update(run_loss=[None], train_time_s=[None], eval_time_s=[None])
    diverged_at = None
    with seeded(cfg.seed + 2, ctx.device):  # training dropout masks
        for epoch in ctx.progress(range(1, cfg.epochs + 1), phase="train", desc=f"dropout: {arm}"):
            if on_epoch is not None and on_epoch(epoch - 1, model, optimizer):
                break
            start = time.perf_counter()
            # mean minibatch loss as seen while training
            run_loss = float(train_epoch(model, optimizer, s.x_train, s.y_train, cfg.batch_size, order_gen))
            train_time = time.perf_counter() - start
            start = time.perf_counter()
            for key, value in score(model, data).items():
                curves[key].append(value)
            curves["eval_time_s"].append(time.perf_counter() - start)
            curves["run_loss"].append(run_loss)
            curves["train_time_s"].append(train_time)
            if not math.isfinite(run_loss):
                diverged_at = epoch
                break
        else:
            if on_epoch is not None:
                on_epoch(cfg.epochs, model, optimizer)
    record = {
        "label": arm_label(p_input, p_hidden),
        "p_input": p_input,
        "p_hidden": p_hidden,
        **curves,
        "diverged_at": diverged_at,
        "optimizer": {k: optimizer.defaults[k] for k in ("lr", "betas", "eps", "weight_decay")},
    }
    record["summary"] = summarize(record)
    return model, record


def arm_label(p_input: float, p_hidden: float) -> str:
    return f"dropout (input {p_input:.0%}, hidden {p_hidden:.0%})" if p_input or p_hidden else "no dropout"


def train_seeds(cfg: DropoutConfig) -> list[int]:
    """The training seeds: cfg.seed, cfg.seed + 10, ... (train_arm uses seed, seed + 1 and seed + 2)."""
    return [cfg.seed + SEED_STRIDE * i for i in range(cfg.n_train_seeds)]


def mask_seeds(train_seed: int, n: int) -> list[int]:
    """n thinned-ensemble mask seeds of one training seed's net, then one more for the per-image reference."""
    return [1000 * (train_seed + 1) + j for j in range(n + 1)]


def _median_time(fn, x: torch.Tensor, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@torch.no_grad()
def time_passes(model: MLP, x: torch.Tensor, seed: int, repeats: int = 3) -> dict[str, float]:
    """Median wall time (s) of one pass over x: eval mode, one thinned net, one per-image-mask (train-mode) pass."""
    was_training = model.training
    model.eval()
    out = {"eval": _median_time(lambda: model(x), x, repeats)}
    model.train(was_training)
    with ensemble_members(model, x, seed, "thinned") as member:
        out["thinned"] = _median_time(member, x, repeats)
    with ensemble_members(model, x, seed, "per_image") as member:
        out["per_image"] = _median_time(member, x, repeats)
    return out


@contextmanager
def ensemble_members(model: MLP, x: torch.Tensor, seed: int, estimator: str) -> Iterator:
    """A callable returning the logits (over every row of x) of one new ensemble member per call.

    "thinned": one mask per member, shared by every row, drawn from its own generator (lab.thinned);
    "per_image": the ordinary train-mode pass, a fresh mask for every row, from the seeded global RNG.
    The model's mode is left as it was.
    """
    if estimator == "thinned":
        gen = torch.Generator().manual_seed(seed)
        columns = thinned.as_columns(x)
        yield lambda: thinned.thinned_logits(model, thinned.draw_masks(model, gen), columns)
        return
    if estimator != "per_image":
        raise ValueError(f"unknown estimator {estimator!r} (choose from {ESTIMATORS})")
    was_training = model.training
    model.train()  # dropout on: every pass samples a new mask, i.e. a new member of the ensemble
    try:
        with seeded(seed, x.device):
            yield lambda: model(x)
    finally:
        model.train(was_training)


@torch.no_grad()
def mc_ensemble(model: MLP, x: torch.Tensor, y: torch.Tensor, ks: list[int], seed: int, ctx: RunContext,
                estimator: str = "thinned") -> dict:
    """One run of max(ks) ensemble members with running sums (one mask seed); error (%) and NLL of the average
    at every k in ks. mc_study runs the thinned estimator to k_max and the per-image one as its reference.

    "logits": classify the mean logit (a geometric-mean ensemble); "probs": the mean softmax probability.
    """
    sum_logits = torch.zeros(x.shape[0], model.n_classes, device=x.device)
    sum_probs = torch.zeros_like(sum_logits)
    out: dict[str, dict[str, list[float]]] = {m: {"error_pct": [], "nll": []} for m in ("logits", "probs")}
    wanted, n = set(ks), x.shape[0]
    start = time.perf_counter()
    mean_logits = sum_logits
    with ensemble_members(model, x, seed, estimator) as member:
        for k in ctx.progress(range(1, max(ks) + 1), phase="ensembles" if estimator == "thinned" else "reference",
                               desc=f"MC dropout ({estimator}), mask seed {seed}"):
            logits = member()
            sum_logits += logits
            sum_probs += torch.softmax(logits, dim=1)
            if k in wanted:
                mean_logits, mean_probs = sum_logits / k, sum_probs / k
                out["logits"]["error_pct"].append(100.0 * int((mean_logits.argmax(1) != y).sum()) / n)
                out["logits"]["nll"].append(float(F.cross_entropy(mean_logits, y)))
                out["probs"]["error_pct"].append(100.0 * int((mean_probs.argmax(1) != y).sum()) / n)
                picked = mean_probs.gather(1, y[:, None]).clamp_min(1e-12)
                out["probs"]["nll"].append(float(-picked.log().mean()))
    # mean_logits: the ensemble's averaged logits at the largest k (for the gate; never saved to JSON)
    return {**out, "wall_s": time.perf_counter() - start, "mean_logits": mean_logits}


def mc_images(cfg: DropoutConfig, data: MnistSplit) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n_mc validation images: what every ensemble and its eval-mode baseline are scored on."""
    s = data.split
    n = min(cfg.n_mc, s.x_val.shape[0])
    return s.x_val[:n], s.y_val[:n]


def mc_study(cfg: DropoutConfig, model: MLP, data: MnistSplit, train_seed: int, ctx: RunContext,
             seeds: tuple[int, ...] | None = None) -> dict:
    """One training seed's dropout net as an ensemble: n_mask_seeds thinned-network runs to k_max, the per-image
    reference to k_max_reference, and the eval-mode (weight-scaling) error on the same images. ``seeds``: the mask
    seeds (the last one the reference's), as the arm declares them; default mask_seeds(train_seed, n_mask_seeds)."""
    x, y = mc_images(cfg, data)
    ks = k_grid(cfg.k_max)
    *seeds, ref_seed = seeds if seeds is not None else mask_seeds(train_seed, cfg.n_mask_seeds)
    runs = [mc_ensemble(model, x, y, ks, seed, ctx) for seed in seeds]
    base = evaluate_rows(model, x, y)  # weight scaling: dropout off, activations scaled (inverted dropout)
    out = {
        "train_seed": train_seed,
        "mask_seeds": seeds,
        "eval_error_pct": base["error_pct"],
        "eval_loss": base["loss"],
        # [mask seed][k]; the report reads means, spreads and meeting points off these curves
        "thinned": {mode: {key: [r[mode][key] for r in runs] for key in ("error_pct", "nll")} for mode in ("logits", "probs")},
        "thinned_wall_s": sum(r["wall_s"] for r in runs),
        "reference_seed": None,
        "per_image": None,
        "per_image_wall_s": None,
    }
    if cfg.k_max_reference > 0:
        ref = mc_ensemble(model, x, y, k_grid(min(cfg.k_max_reference, cfg.k_max)), ref_seed, ctx, "per_image")
        out.update(reference_seed=ref_seed, per_image={mode: {key: ref[mode][key] for key in ("error_pct", "nll")}
                                                       for mode in ("logits", "probs")},
                   per_image_wall_s=ref["wall_s"])
    return out


def init_finding(model: MLP, data: MnistSplit, cfg: DropoutConfig) -> tuple[dict, CheckResult]:
    """Loss at init of the N(0, sigma) net against ln 10, with the variance-propagation explanation."""
    s = data.split
    model.eval()
    with torch.no_grad():
        logits = model(s.x_train)
        loss = float(F.cross_entropy(logits, s.y_train))
    input_sq_mean = float((s.x_train**2).mean())
    pred = predicted_logit_std(model.widths, cfg.sigma, input_sq_mean)
    record = {
        "sigma": cfg.sigma,
        "loss": loss,
        "logit_std": float(logits.std()),
        "logit_std_predicted": pred,
        "ln_classes": math.log(10),
        "input_sq_mean": input_sq_mean,
    }
    check = check_init_loss(model, s.x_train, s.y_train, n_classes=10, name=f"MNIST loss at init: N(0, {cfg.sigma:g})", scope="finding")
    fan_in = model.widths[1]
    check.detail += (
        f"; variance propagation predicts logit std {pred:.3g} (N(0, {cfg.sigma:g}) weights multiply the RMS "
        f"activation by {cfg.sigma:g}*sqrt({fan_in}/2) = {cfg.sigma * math.sqrt(fan_in / 2):.3g} per ReLU layer)"
        # the conclusion follows the check's measured verdict, not the expectation for sigma = 0.1
        + (", so the softmax starts confident and mostly wrong" if not check.passed
           else ", so the softmax starts close to uniform, as it should")
    )
    return record, check


def sample_digits(data: MnistSplit, n: int = N_SAMPLE_DIGITS) -> dict:
    """The first n normalised training images, rounded, as the network receives them."""
    s = data.split
    n = min(n, s.x_train.shape[0])
    return {
        "images": [[round(v, 2) for v in row] for row in s.x_train[:n].cpu().tolist()],
        "labels": s.y_train[:n].cpu().tolist(),
        "shape": [28, 28],
    }


def arm_settings(cfg: DropoutConfig) -> dict[str, tuple[float, float]]:
    """arm -> (p_input, p_hidden)."""
    return {"dropout": (cfg.p_input, cfg.p_hidden), "no_dropout": (0.0, 0.0)}


# AdamW's betas and eps: torch's defaults, which the lab keeps (the results record them from the optimiser).
ADAMW_BETAS, ADAMW_EPS = (0.9, 0.999), 1e-8


def arms(cfg: DropoutConfig) -> list[ArmSpec]:
    """Both arms under each training seed, in training order (lab.arms): run() trains exactly these. The dropout
    arm's net also becomes the Monte-Carlo ensembles of its mask seeds."""
    init = f"normal:{cfg.sigma}"
    out = []
    for seed in train_seeds(cfg):
        for name, (p_in, p_hid) in arm_settings(cfg).items():
            out.append(ArmSpec(
                "dropout", name, f"{name}@{seed}", arm_label(p_in, p_hid), init, layer_std(init, (784, *cfg.hidden, 10)),
                (seed,), p_input=p_in, p_hidden=p_hid, optimizer="AdamW", lr=cfg.lr, weight_decay=cfg.weight_decay,
                betas=ADAMW_BETAS, eps=ADAMW_EPS, epochs=cfg.epochs, batch_size=cfg.batch_size,
                mask_seeds=tuple(mask_seeds(seed, cfg.n_mask_seeds)) if name == "dropout" else ()))
    return out


def train_inputs(arm: ArmSpec, data: MnistSplit) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What train_arm feeds an arm: the normalised split as loaded (no arm of this part transforms its data)."""
    s = data.split
    return s.x_train, s.y_train, s.x_val, s.y_val


def run_arm(cfg: DropoutConfig, arm: ArmSpec, data: MnistSplit, ctx: RunContext,
            on_epoch: Callable[[int, MLP, torch.optim.Optimizer], bool | None] | None = None) -> tuple[MLP, dict]:
    """Train one declared arm: train_arm under the arm's config, dropout rates and seed (run() and the gate)."""
    return train_arm(arm_config(cfg, arm), data, f"{arm.group}, seed {arm.seeds[0]}", arm.p_input, arm.p_hidden, ctx,
                     on_epoch=on_epoch)


def arm_config(cfg: DropoutConfig, arm: ArmSpec) -> DropoutConfig:
    """cfg as one arm trains under it: the arm's seed, init scale, optimiser settings and length."""
    out = with_derived_seed(cfg, arm.seeds[0])
    for name, value in (("sigma", parse_init(arm.init).param), ("lr", arm.lr), ("weight_decay", arm.weight_decay),
                        ("epochs", arm.epochs), ("batch_size", arm.batch_size)):
        object.__setattr__(out, name, value)
    return out


def init_records(records: list[dict]) -> dict:
    """The per-seed init records as one: shared quantities once, measured ones as per-seed lists."""
    varying = ("loss", "logit_std")
    return {**{k: v for k, v in records[0].items() if k not in varying}, **{k: [r[k] for r in records] for k in varying}}


def run(cfg: DropoutConfig, ctx: RunContext) -> Outcome:
    t0 = time.perf_counter()
    data = load_data(cfg, ctx.device)
    s = data.split
    data_s = time.perf_counter() - t0
    seeds = train_seeds(cfg)

    t_init = time.perf_counter()
    inits = [init_finding(make_model(with_derived_seed(cfg, seed), 0.0, 0.0, ctx.device), data, cfg) for seed in seeds]
    init_s = time.perf_counter() - t_init
    findings = [
        inits[0][1],  # the first training seed's init; the others' numbers are in metrics["init"]
        check_normalized(s.x_train, per_feature=False, name="MNIST training inputs normalised", scope="finding"),
        check_disjoint_content(s.x_train, s.x_val, name="MNIST train/validation disjoint by content", scope="finding"),
    ]

    declared = arms(cfg)
    arms_ = {arm: {"p_input": p_in, "p_hidden": p_hid, "runs": []} for arm, (p_in, p_hid) in arm_settings(cfg).items()}
    mc_runs, test_runs, optimizer, pass_s = [], [], None, None
    mc_s = timing_passes_s = 0.0
    weights = {}  # final state_dict per training seed and arm: saved beside the JSON, read by the audit (checks/audit)
    for seed in seeds:
        models, specs = {}, {}
        for spec in (a for a in declared if a.seeds == (seed,)):
            arm = spec.group
            models[arm], record = run_arm(cfg, spec, data, ctx)
            specs[arm] = spec
            weights[weight_file(spec.seeds[0], arm)] = {k: v.detach().cpu().clone() for k, v in models[arm].state_dict().items()}
            arms_[arm]["label"] = record.pop("label")
            optimizer = record.pop("optimizer")
            arms_[arm]["runs"].append({"train_seed": spec.seeds[0],
                                       **{k: v for k, v in record.items() if not k.startswith("p_")}})
        t_mc = time.perf_counter()
        if arms_["dropout"]["runs"][-1]["diverged_at"] is None:
            mc_runs.append(mc_study(cfg, models["dropout"], data, seed, ctx, specs["dropout"].mask_seeds))
            if pass_s is None:  # pass costs do not depend on the weights: timed once, on the first trained net
                t_passes = time.perf_counter()
                pass_s = time_passes(models["dropout"], mc_images(cfg, data)[0], specs["dropout"].mask_seeds[-1] + 1)
                timing_passes_s = time.perf_counter() - t_passes
        mc_s += time.perf_counter() - t_mc
        if cfg.final and data.x_test is not None:
            test_runs.append({arm: evaluate_rows(m, data.x_test, data.y_test) for arm, m in models.items()})

    mc = None
    if mc_runs:
        x_mc = mc_images(cfg, data)[0]
        mc = {
            "n_images": int(x_mc.shape[0]),
            "image_range": [data.val_range[0], data.val_range[0] + int(x_mc.shape[0])],
            "k_grid": k_grid(cfg.k_max),
            "k_grid_reference": k_grid(min(cfg.k_max_reference, cfg.k_max)) if cfg.k_max_reference > 0 else [],
            "runs": mc_runs,  # one per training seed whose dropout arm finished
            "pass_time_s": pass_s,
            "wall_s": mc_s,
        }
    test = None
    if test_runs:
        test = {"n_test": int(data.x_test.shape[0]), "arms": {arm: [t[arm] for t in test_runs] for arm in arms_}}

    metrics = {
        "data": {
            "n_train": cfg.n_train,
            "n_val": cfg.n_val,
            "train_range": list(data.train_range),
            "val_range": list(data.val_range),
            "pixel_mean": data.mean,  # of the training pixels scaled to [0, 1]
            "pixel_std": data.std,
            "norm_mean": float(s.x_train.mean()),
            "norm_std": float(s.x_train.std()),
            "val_norm_mean": float(s.x_val.mean()),
            "val_norm_std": float(s.x_val.std()),
        },
        "samples": sample_digits(data),
        "widths": [784, *cfg.hidden, 10],
        "optimizer": {"name": "AdamW", **optimizer},
        "train_seeds": seeds,
        "init": init_records([record for record, _ in inits]),
        "epochs": list(range(cfg.epochs + 1)),  # an arm that diverged has shorter curves
        "arms": arms_,
        "mc": mc,
        "test": test,
        "timing_s": {
            "data": data_s,
            "train": {arm: sum(t for r in arms_[arm]["runs"] for t in r["train_time_s"] if t is not None) for arm in arms_},
            "eval": {arm: sum(t for r in arms_[arm]["runs"] for t in r["eval_time_s"] if t is not None) for arm in arms_},
            "mc": mc_s,
            # the phases of lab.cost (the Performance appendix sets them against their FLOPs)
            "init": init_s,
            "ensembles": sum(r["thinned_wall_s"] for r in mc_runs),
            "reference": sum(r["per_image_wall_s"] or 0.0 for r in mc_runs),
            "timing": timing_passes_s,
        },
    }
    return Outcome(metrics=metrics, findings=findings, artifacts=weights)


def weight_file(train_seed: int, arm: str) -> str:
    """Where an arm's final weights go, relative to OUT/data (README: "The audit")."""
    return f"weights/dropout/seed{train_seed}_{arm}.pt"


def gate_hooks(cfg: DropoutConfig, device: torch.device) -> GateHooks:
    """What the gate checks of this part: closures over this module's own loader, builders, loop and scoring."""

    def data() -> GateData:
        # final=True loads the test inputs too: the gate checks their normalisation and never scores them
        d = load_data(replace(cfg, final=True), device)
        s = d.split
        return GateData(s.x_train, s.y_train, s.x_val, s.y_val, 10, s.x_train_raw, s.x_val_raw, d.x_test,
                        d.x_test_raw, per_feature=False,
                        source=f"MNIST training images {d.train_range[0]:,}-{d.train_range[1] - 1:,} (train) and "
                               f"{d.val_range[0]:,}-{d.val_range[1] - 1:,} (validation)")

    def build(dropout: bool = True, seed: int | None = None) -> MLP:
        c = cfg if seed is None else with_derived_seed(cfg, seed)
        return make_model(c, cfg.p_input if dropout else 0.0, cfg.p_hidden if dropout else 0.0, device)

    def epoch(model, optimizer, x, y):
        return train_epoch(model, optimizer, x, y, cfg.batch_size, torch.Generator().manual_seed(cfg.seed + 1))

    def short_fit(x_tr, y_tr, x_va, y_va) -> dict:
        """train_arm itself (the loop run() uses), for a few epochs on the rows given."""
        n, m = x_tr.shape[0], x_va.shape[0]
        split = Split(x_tr, y_tr, x_va, y_va, torch.zeros(()), torch.ones(()), 10)
        small = replace(cfg, n_train=n, n_val=m, epochs=GATE_FIT_EPOCHS)
        _, record = train_arm(small, MnistSplit(split, (0, n), (n, n + m)), "gate", cfg.p_input, cfg.p_hidden,
                              RunContext(device=device, quiet=True))
        return {"acc": 1.0 - record["summary"]["val_error_pct"] / 100.0, "loss": record["summary"]["val_loss"]}

    def split_scores(model, d: GateData) -> dict:
        """score() itself: the per-epoch numbers of the curves and tables."""
        n, m = d.x_train.shape[0], d.x_val.shape[0]
        split = Split(d.x_train, d.y_train, d.x_val, d.y_val, torch.zeros(()), torch.ones(()), 10)
        r = score(model, MnistSplit(split, (0, n), (n, n + m)))
        return {"train": {"loss": r["train_loss"], "error_pct": r["train_error_pct"]},
                "validation": {"loss": r["val_loss"], "error_pct": r["val_error_pct"]}}

    def mc_pass_vs_autograd(d: GateData):
        """A Monte-Carlo pass (no_grad: hidden dropout masks in place) against the same masks drawn under autograd
        (out of place, as in training): the in-place shortcut must not change a single logit."""
        model = build()
        model.train()
        x = d.x_val[:500]
        with seeded(0, device), torch.no_grad():
            fast = model(x)
        with seeded(0, device):
            ref = model(x).detach()
        return fast, ref

    def ensemble(estimator: str):
        """mc_ensemble's averaged logits under one estimator: the thinned networks the study averages, or the
        per-image train-mode passes of its reference."""
        def run_k(model, x, k, seed):
            y = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            return mc_ensemble(model, x, y, [k], seed, RunContext(device=device, quiet=True), estimator)["mean_logits"]
        return run_k

    def thinned_vs_masked(d: GateData) -> tuple[torch.Tensor, torch.Tensor]:
        """The study's thinned nets against the full net with the same masks (inverted dropout), on a dropout net
        with random biases: a fresh net's zero biases would hide a bias picked from the wrong units."""
        model = build(dropout=True)
        gen = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            for layer in model.layers:
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen).mul_(0.1))
        x = d.x_val[:GATE_PATH_ROWS]
        masks = [thinned.draw_masks(model, gen) for _ in range(GATE_PATH_MASKS)]
        fast = torch.stack([thinned.thinned_logits(model, m, thinned.as_columns(x)) for m in masks])
        return fast, torch.stack([thinned.masked_logits(model, m, x) for m in masks])

    # --- the arms: the declaration run() consumes, each arm's pieces through train_arm itself -------------------
    declared = arms(cfg)
    init = f"normal:{cfg.sigma}"
    # The lab's text, from the config (never from arms()): under training seed cfg.seed + 10 i, the dropout arm
    # (input p_input, hidden p_hidden) and the plain arm, same init rule, AdamW with torch's betas and eps.
    expected = [{"key": f"{name}@{cfg.seed + 10 * i}", "seeds": (cfg.seed + 10 * i,), "init": init, "bias": True,
                 "p_input": p_in, "p_hidden": p_hid, "optimizer": "AdamW", "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                 "betas": (0.9, 0.999), "eps": 1e-8, "momentum": 0.0, "epochs": cfg.epochs,
                 "batch_size": cfg.batch_size, "inputs": "normalised", "scale": 1.0, "labels": "as given"}
                for i in range(cfg.n_train_seeds)
                for name, p_in, p_hid in (("dropout", cfg.p_input, cfg.p_hidden), ("no_dropout", 0.0, 0.0))]
    quiet = RunContext(device=device, quiet=True)

    def rows_of(d: GateData, n: int, m: int) -> MnistSplit:
        split = Split(d.x_train[:n], d.y_train[:n], d.x_val[:m], d.y_val[:m], torch.zeros(()), torch.ones(()), 10)
        return MnistSplit(split, (0, n), (n, n + m))

    def fit(arm, data: MnistSplit, epochs: int | None, on_epoch):
        """run_arm itself (what run() calls for each arm), on the rows given, optionally for fewer epochs. One CPU
        thread: these are tens of rows, where a second thread only waits (lab.batched.single_thread)."""
        with single_thread(device):
            return run_arm(cfg, arm if epochs is None else replace(arm, epochs=epochs), data, quiet, on_epoch=on_epoch)

    def arm_net(arm, seed: int, data: MnistSplit):
        """The net and optimiser train_arm builds for the arm under ``seed`` (stopped before its first epoch)."""
        got = {}

        def stop(done, model, optimizer):
            got.update(model=model, optimizer=optimizer)
            return True
        fit(replace(arm, seeds=(seed,)), data, 1, stop)
        return got["model"], got["optimizer"]

    blank = MnistSplit(Split(torch.zeros(10, 784, device=device), torch.zeros(10, dtype=torch.long, device=device),
                             torch.zeros(10, 784, device=device), torch.zeros(10, dtype=torch.long, device=device),
                             torch.zeros(()), torch.ones(()), 10), (0, 10), (10, 20))

    def row_index(x_rows: torch.Tensor, fed: torch.Tensor) -> torch.Tensor:
        where = {bytes(r.cpu().numpy().tobytes()): i for i, r in enumerate(x_rows)}
        return torch.tensor([where.get(bytes(r.cpu().numpy().tobytes()), -1) for r in fed])

    def arm_trace(arm, d: GateData) -> ArmTrace:
        """train_arm for the arm's epochs on a few rows (one minibatch); the first and the last step observed."""
        n = min(GATE_ARM_ROWS, arm.batch_size)
        data = rows_of(d, n, GATE_ARM_ROWS)
        steps: list[StepTrace] = []
        seen: dict = {}

        def watch(when, model, optimizer):
            handles = []
            snap: dict = {}

            def pre_forward(module, args):
                if module.training and "before" not in snap:
                    snap.update(before=copy.deepcopy(module), x=args[0].detach().clone(), rng=torch.get_rng_state(),
                                cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None)

            def pre_step(opt, args, kwargs):
                params = [p for g in opt.param_groups for p in g["params"]]
                snap["state"] = {i: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()}
                                 for i, p in enumerate(params) if p in opt.state}

            def post_step(opt, args, kwargs):
                for h in handles:
                    h.remove()
                fed = snap["x"]
                idx = row_index(data.split.x_train, fed)
                steps.append(StepTrace(when, snap["before"], copy.deepcopy(model), fed, data.split.y_train[idx.clamp_min(0)],
                                       snap["rng"], snap["cuda"], snap.get("state")))
            handles += [model.register_forward_pre_hook(pre_forward), optimizer.register_step_pre_hook(pre_step),
                        optimizer.register_step_post_hook(post_step)]

        # The dropout arm runs all its epochs (a change switched on late in the loop shows); the plain arm, whose
        # loop is the same train_arm, GATE_PLAIN_EPOCHS of them (its own settings and steps): half the cost.
        epochs = arm.epochs if arm.p_input or arm.p_hidden else min(arm.epochs, GATE_PLAIN_EPOCHS)

        def on_epoch(done, model, optimizer):
            seen["optimizer"] = optimizer
            if done == 0:
                watch(f"epoch 1 of {epochs}", model, optimizer)
            if done == epochs - 1 and done > 0:
                watch(f"epoch {epochs} of {epochs}", model, optimizer)
        fit(arm, data, epochs, on_epoch)
        opt = seen["optimizer"]
        return ArmTrace(f"{epochs} epochs of train_arm on {n} training rows", n, steps, type(opt).__name__,
                        [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])

    def arm_probe(arm, d: GateData, seed: int) -> dict[str, torch.Tensor]:
        """One epoch of train_arm under ``seed``: its init draw, its first minibatch's rows and input masks."""
        n = GATE_PROBE_ROWS
        data = rows_of(d, n, 10)
        got: dict = {}

        def on_epoch(done, model, optimizer):
            if done == 0:
                got["init"] = model.layers[0].weight.detach()[:4].clone()
                got["tap"] = Tap(model).__enter__()
            else:
                got["tap"].__exit__(None, None, None)
        fit(replace(arm, seeds=(seed,)), data, 1, on_epoch)
        tap = got["tap"]
        fed, dropped_in = tap.model_in[0], tap.ins[0][0]
        return {"init": got["init"], "order": row_index(data.split.x_train, fed),
                "masks": (dropped_in == 0) & (fed != 0)}

    def arm_dropout_pass(arm, d: GateData):
        """The net train_arm builds for the arm, and one pass of train_epoch (its loop) over two minibatches."""
        model, optimizer = arm_net(arm, arm.seeds[0], blank)
        rows = 2 * arm.batch_size
        x, y = d.x_train[:rows], d.y_train[:rows]
        def run(m):
            with single_thread(device):
                train_epoch(m, optimizer, x, y, arm.batch_size, torch.Generator().manual_seed(0))
        return model, run

    first_seed = declared[0].seeds
    return GateHooks(
        experiment="dropout",
        label="Part 3",
        data=data,
        widths=(784, *cfg.hidden, 10),  # from the config, not from make_model: the check's expectation
        build_model=build,
        p_input=cfg.p_input,
        p_hidden=cfg.p_hidden,
        # the init is checked per arm (arms_init: the nets train_arm builds, against each arm's promised std)
        make_optimizer=lambda model: make_optimizer(cfg, model),
        optimizer_expected={"type": "AdamW", "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        train_epoch=epoch,
        batch_size=cfg.batch_size,
        short_fit=short_fit,
        fit_rows=GATE_FIT_ROWS,
        evaluate=lambda model, x, y: evaluate_rows(model, x, y),
        split_scores=split_scores,
        ensemble={est: ensemble(est) for est in ESTIMATORS},
        overfit={"n": 10, "steps": 50, "lr": 1e-3},  # measured: loss 0, 100 % after 50 steps
        paths={
            "thinned networks": PathPair(
                thinned_vs_masked, tol=1e-3,  # measured 3e-5: float32 sums in another order; a wrong scale is >= 25 %
                what=(f"logits of {GATE_PATH_MASKS} thinned networks (kept rows and columns, 1/(1-p) on the columns) "
                      f"vs the full net with the same masks as inverted dropout, {GATE_PATH_ROWS} validation images"),
                fix="lab.thinned.thin/thinned_logits no longer builds the masked net: check which units' rows and "
                    "columns are kept and that 1/(1-p) scales the columns fed by a dropped layer, never the bias"),
            "in-place Monte-Carlo pass": PathPair(
                mc_pass_vs_autograd, tol=1e-5,
                what="train-mode logits of 500 validation images under no_grad (in-place masks) vs autograd, same masks",
                fix="lab.dropout.dropout's in-place branch no longer computes what the out-of-place branch computes"),
        },
        arms=declared,
        arms_expected=expected,
        # one training seed's two arms build, train and drop out through every line the other seeds use
        arm_sample=tuple(a.key for a in declared if a.seeds == first_seed),
        arm_model=lambda arm, seed: arm_net(arm, seed, blank)[0],
        arm_inputs=lambda arm, d: train_inputs(arm, rows_of(d, d.x_train.shape[0], d.x_val.shape[0])),
        arm_trace=arm_trace,
        arm_probe=arm_probe,
        arm_shared=("init", "order"),
        arm_dropout_pass=arm_dropout_pass,
    )


__all__ = ["ESTIMATORS", "arm_config", "arm_label", "arms", "run_arm", "train_inputs", "ensemble_members", "gate_hooks", "k_grid", "load_data", "mask_seeds",
           "mc_ensemble", "mc_study", "predicted_logit_std", "run", "seeded", "time_passes", "train_arm", "train_epoch",
           "train_seeds"]
