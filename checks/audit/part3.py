"""Audit of Part 3 (dropout on MNIST): recompute the report's numbers from the saved weights with plain torch.

    rows = audit(json.load(open("report/data/dropout.json")), torch.device("cpu"), out=Path("report"))

What it recomputes (the seeding contract is in checks/audit/__init__.py; tolerances are stated per row):
- per arm and training seed, from OUT/data/weights/dropout/seed<s>_<arm>.pt: eval-mode training and validation
  loss and error, against the final numbers (arms table) and the last point of the per-epoch curves;
- the Monte-Carlo study of each seed's dropout net: which images were scored (the first n_mc validation
  images) and with which mask seeds; the eval-mode (weight-scaling) point; thinned-network ensembles rebuilt
  from the mask contract at k = 1 and the grid points up to K_EXACT, both averaging modes; the per-image
  reference rebuilt the same way (CPU runs); and, independently of any mask sampler, plain train-mode
  nn.Dropout members against the reported k = 1 and largest-k reference errors within their binomial spread;
- the paired differences and 95 % Student-t intervals of the arms and of the ensembles, from the per-seed numbers
  (against what the report derived, handed in as `reported`);
- a retrain of the last training seed's two arms for one epoch from the seeding contract, against the stored
  curves at epoch 0 and 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from checks.audit.stats import t_quantile

TABLE_ARMS = "Part 3 arms table (final numbers)"
TABLE_CURVES = "Part 3 learning curves"
TABLE_PAIRED = "Part 3 paired comparison table"
TABLE_MC = "Part 3 Monte-Carlo ensemble table"
TABLE_MC_PAIRED = "Part 3 Monte-Carlo paired table"
TABLE_DESIGN = "Part 3 design (images, seeds)"

LOSS_RTOL = 1e-4  # eval-mode losses: float32 sums in another order (measured < 1e-6 relative)
NLL_RTOL = 1e-3  # ensemble NLL: averaged logits of thinned nets summed in another order than the lab's
# One epoch retrained with plain AdamW (the lab's is fused, and may run on other threads): round-off differences grow
# with every step. Measured: 3e-6 relative after the quick profile's 10 steps; the full profile's 50 steps of the
# dropout arm (seed 20) 1.4e-3 on the validation loss and 3 images of 10,000. Tolerance per step of the epoch:
RETRAIN_RTOL = 1e-4  # ... relative on the losses (10 steps: 1e-3; 50 steps: 5e-3)
RETRAIN_IMAGES = 0.2  # ... images on the errors, at least 2 (10 steps: 2; 50 steps: 10)
K_EXACT = 5  # largest k of the ensembles rebuilt member by member from the mask contract (grid points 1, 2, 3, 5)
K_PLAIN = 10  # plain nn.Dropout members per seed for the estimator-independent check (reused as one ensemble)
Z_BINOMIAL = 4.0  # half-width of the binomial tolerance in standard deviations (false alarm ~ 6e-5 per number)
SEED_STRIDE = 10  # training seeds: seed + 10 i (contract)
EVAL_CHUNK = 5_000


# ------------------------------------------------------------------------------------------------ data and nets
def data_root() -> Path:
    """The lab's local data folder ($LAB_DATA_DIR or <project root>/data), which `lab run` filled."""
    env = os.environ.get("LAB_DATA_DIR", "").strip()
    return Path(env).expanduser().resolve() if env else Path(__file__).resolve().parents[2] / "data"


def read_idx(path: Path) -> torch.Tensor:
    """An MNIST idx file (uncompressed, as the lab keeps it under data/MNIST/raw): big-endian header, then uint8."""
    raw = path.read_bytes()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


def mnist_split(n_train: int, n_val: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The lab's text: first n_train training images train, the next n_val validate; one scalar mean/std of the
    training pixels (scaled to [0, 1]) standardises both."""
    raw = data_root() / "MNIST" / "raw"
    images = read_idx(raw / "train-images-idx3-ubyte")[:n_train + n_val]
    y = read_idx(raw / "train-labels-idx1-ubyte")[:n_train + n_val].long()
    x = images.reshape(images.shape[0], -1).float() / 255.0
    x_tr, x_va = x[:n_train], x[n_train:n_train + n_val]
    mean, std = x_tr.mean(), x_tr.std()
    return (x_tr - mean) / std, y[:n_train], (x_va - mean) / std, y[n_train:n_train + n_val]


def plain_net(widths: list[int], p_input: float = 0.0, p_hidden: float = 0.0) -> nn.Sequential:
    """Dropout(p_input), then Linear, ReLU, Dropout(p_hidden) per hidden layer, then the logits' Linear."""
    layers: list[nn.Module] = [nn.Dropout(p_input)]
    for a, b in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(p_hidden)]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def linears(net: nn.Sequential) -> list[nn.Linear]:
    return [m for m in net if isinstance(m, nn.Linear)]


def load_weights(net: nn.Sequential, path: Path) -> None:
    """The saved state_dict (layers.<i>.weight / .bias of the i-th Linear) into the plain net."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.no_grad():
        for i, lin in enumerate(linears(net)):
            lin.weight.copy_(state[f"layers.{i}.weight"])
            lin.bias.copy_(state[f"layers.{i}.bias"])


@torch.no_grad()
def eval_scores(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Eval-mode mean cross-entropy and error (%)."""
    net.eval()
    loss, wrong = 0.0, 0
    for i in range(0, x.shape[0], EVAL_CHUNK):
        logits = net(x[i:i + EVAL_CHUNK])
        loss += float(F.cross_entropy(logits, y[i:i + EVAL_CHUNK], reduction="sum").double())
        wrong += int((logits.argmax(1) != y[i:i + EVAL_CHUNK]).sum())
    return loss / x.shape[0], 100.0 * wrong / x.shape[0]


# ------------------------------------------------------------------------------------------------ mask contract
def keep_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The contract's mask sampler (checks/audit/__init__.py), from the given or the global generator."""
    m = math.prod(shape)
    if p == 0.5:
        words = torch.randint(-(1 << 63), (1 << 63) - 1, (-(-m // 64),), dtype=torch.int64, generator=generator)
        bits = (words.view(torch.uint8).unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1
        return bits.reshape(-1)[:m].reshape(shape).bool()
    words = torch.randint(-(1 << 63), (1 << 63) - 1, (-(-m // 4),), dtype=torch.int64, generator=generator)
    return words.view(torch.int16)[:m].reshape(shape) >= int(round(p * 65536)) - 32768


def masked_logits(net: nn.Sequential, x: torch.Tensor, masks: list[torch.Tensor], rates: list[float]) -> torch.Tensor:
    """The net with the given keep masks (one per droppable layer, broadcast over images) as inverted dropout."""
    lins = linears(net)
    h = x
    for i, lin in enumerate(lins):
        if rates[i] > 0:
            h = h * masks[i].to(h.dtype) / (1.0 - rates[i])
        h = lin(h)
        if i < len(lins) - 1:
            h = torch.relu(h)
    return h


@torch.no_grad()
def thinned_logits(net: nn.Sequential, x: torch.Tensor, masks: list[torch.Tensor], rates: list[float]) -> torch.Tensor:
    """masked_logits for one mask shared by every image, computed on the kept units only (dropped inputs and
    hidden units contribute nothing): the same numbers for about a third of the multiply-adds."""
    lins = linears(net)
    kept = [mk.nonzero().squeeze(1) for mk in masks]
    h = x.index_select(1, kept[0])
    for i, lin in enumerate(lins):
        w, b = lin.weight, lin.bias
        if i < len(lins) - 1:
            w, b = w.index_select(0, kept[i + 1]), b.index_select(0, kept[i + 1])
        h = F.linear(h, w.index_select(1, kept[i]) / (1.0 - rates[i]), b)
        if i < len(lins) - 1:
            h = torch.relu(h)
    return h


# ------------------------------------------------------------------------------------------------ rows
def _row(table: str, row: str, quantity: str, reported: Any, recomputed: Any, tol: Any, ok: bool) -> dict:
    return {"table": table, "row": row, "quantity": quantity, "reported": reported, "recomputed": recomputed,
            "tol": tol, "ok": bool(ok)}


def _num_row(table: str, row: str, quantity: str, reported, recomputed: float, *, rtol: float = 0.0,
             atol: float = 0.0) -> dict:
    if not math.isfinite(recomputed):  # a diverged arm: the run saved null (JSON has no NaN) or the same non-number
        return _row(table, row, quantity, reported, str(recomputed), "both not finite",
                    reported is None or not math.isfinite(float(reported)))
    tol = atol + rtol * abs(recomputed)
    ok = reported is not None and math.isfinite(float(reported)) and abs(float(reported) - recomputed) <= tol
    return _row(table, row, quantity, reported, recomputed, tol, ok)


def _same_row(table: str, row: str, quantity: str, reported, recomputed) -> dict:
    return _row(table, row, quantity, reported, recomputed, 0, reported == recomputed)


def _image_tol(n: int) -> float:
    """One image of n, in percentage points (plus float rounding of the stored percentage)."""
    return 100.0 / n + 1e-9


# ------------------------------------------------------------------------------------------------ the audit
def audit(result: dict, device: torch.device, out: Path | None = None, reported: dict | None = None,
          retrain: bool = True) -> list[dict]:
    out = Path(out) if out is not None else None
    cfg, m = result["config"], result["metrics"]
    widths = list(m["widths"])
    x_tr, y_tr, x_va, y_va = mnist_split(cfg["n_train"], cfg["n_val"])
    seeds = [cfg["seed"] + SEED_STRIDE * i for i in range(cfg["n_train_seeds"])]
    rows = [_same_row(TABLE_DESIGN, "training seeds", "seeds (seed + 10 i)", m["train_seeds"], seeds),
            _same_row(TABLE_DESIGN, "data", "training range", m["data"]["train_range"], [0, cfg["n_train"]]),
            _same_row(TABLE_DESIGN, "data", "validation range", m["data"]["val_range"],
                      [cfg["n_train"], cfg["n_train"] + cfg["n_val"]])]
    arts = (result.get("provenance") or {}).get("artifacts") or {}
    nets: dict[tuple[int, str], nn.Sequential] = {}
    for arm, d in m["arms"].items():
        for i, run in enumerate(d["runs"]):
            seed = run["train_seed"]
            rel = f"weights/dropout/seed{seed}_{arm}.pt"
            label = f"{d['label']}, training seed {seed}"
            path = out / "data" / rel if out is not None else None
            if path is None or not path.is_file() or rel not in arts:
                rows.append(_row(TABLE_ARMS, label, "saved final weights", rel, "missing", "file present", False))
                continue
            from checks.audit import sha256_file

            sha = sha256_file(path)
            rows.append(_same_row(TABLE_ARMS, label, f"sha256 of {rel}", arts[rel], sha))
            net = plain_net(widths)
            load_weights(net, path)
            nets[(seed, arm)] = net
            rows += _arm_rows(net, run, label, x_tr, y_tr, x_va, y_va)
    if reported is not None:
        rows += _paired_rows(m, reported.get("paired", {}))
    if m.get("mc"):
        rows += _mc_rows(cfg, m, nets, x_va, y_va, result.get("provenance", {}).get("device", "cpu"))
    if retrain:  # the last training seed: it exercises the stride and the init/order/mask offsets of the contract
        rows += _retrain_rows(cfg, m, widths, seeds[-1], x_tr, y_tr, x_va, y_va)
    return rows


def _arm_rows(net, run: dict, label: str, x_tr, y_tr, x_va, y_va) -> list[dict]:
    tr_loss, tr_err = eval_scores(net, x_tr, y_tr)
    va_loss, va_err = eval_scores(net, x_va, y_va)
    rows = []
    for key, value, n in (("train_loss", tr_loss, None), ("train_error_pct", tr_err, x_tr.shape[0]),
                          ("val_loss", va_loss, None), ("val_error_pct", va_err, x_va.shape[0])):
        kw = {"rtol": LOSS_RTOL} if n is None else {"atol": _image_tol(n)}
        rows.append(_num_row(TABLE_ARMS, label, f"final {key}", run["summary"].get(key), value, **kw))
        rows.append(_num_row(TABLE_CURVES, label, f"{key} at the last epoch", run[key][-1], value, **kw))
    return rows


# ------------------------------------------------------------------------------------------------ paired
def paired_stats(a: list, b: list) -> dict[str, Any]:
    """a_i - b_i over the seeds where both are finite; mean and 95 % t half-width (NaN below 2 seeds)."""
    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x - y)]
    n = len(diffs)
    if n == 0:
        return {"diffs": [], "mean": math.nan, "half_width": math.nan}
    mean = sum(diffs) / n
    if n < 2:
        return {"diffs": diffs, "mean": mean, "half_width": math.nan}
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if not sd > 1e-9 * max(abs(d) for d in diffs):
        # identical differences in every seed: a zero variance estimate gives no interval (README: the paired rule)
        return {"diffs": diffs, "mean": mean, "half_width": math.nan}
    return {"diffs": diffs, "mean": mean, "half_width": t_quantile(0.975, n - 1) * sd / math.sqrt(n)}


def _finals(arm: dict, key: str) -> list:
    return [r["summary"].get(key) for r in arm["runs"]]


def _gap(arm: dict, what: str) -> list:
    return [None if v is None or t is None else v - t
            for v, t in zip(_finals(arm, f"val_{what}"), _finals(arm, f"train_{what}"))]


def expected_pairs(m: dict) -> dict[str, tuple[str, dict]]:
    """name -> (table, paired stats) for every paired comparison the report shows, from the per-seed numbers."""
    drop, plain = m["arms"]["dropout"], m["arms"]["no_dropout"]
    out = {
        "val_error_pct": (TABLE_PAIRED, paired_stats(_finals(plain, "val_error_pct"), _finals(drop, "val_error_pct"))),
        "val_loss": (TABLE_PAIRED, paired_stats(_finals(plain, "val_loss"), _finals(drop, "val_loss"))),
        "gap_error_pct": (TABLE_PAIRED, paired_stats(_gap(plain, "error_pct"), _gap(drop, "error_pct"))),
        "gap_loss": (TABLE_PAIRED, paired_stats(_gap(plain, "loss"), _gap(drop, "loss"))),
    }
    mc = m.get("mc")
    if mc:
        ks, runs = mc["k_grid"], mc["runs"]

        def col(k, mode="logits", key="error_pct", est="thinned"):
            if est == "thinned":
                j = ks.index(k)
                return [sum(c[j] for c in r["thinned"][mode][key]) / len(r["thinned"][mode][key]) for r in runs]
            j = mc["k_grid_reference"].index(k)
            return [r["per_image"][mode][key][j] for r in runs if r.get("per_image")]

        ev = [r["eval_error_pct"] for r in runs]
        ev_nll = [r["eval_loss"] for r in runs]
        top = ks[-1]
        mcp = {
            "k1_vs_eval": paired_stats(col(1), ev),
            "kmax_vs_eval": paired_stats(col(top), ev),
            "kmax_probs_vs_eval": paired_stats(col(top, "probs"), ev),
            "probs_vs_logits": paired_stats(col(top, "probs"), col(top)),
            "nll_probs_vs_logits": paired_stats(col(top, "probs", "nll"), col(top, "logits", "nll")),
            "nll_probs_vs_eval": paired_stats(col(top, "probs", "nll"), ev_nll),
            "nll_logits_vs_eval": paired_stats(col(top, "logits", "nll"), ev_nll),
        }
        ref = mc["k_grid_reference"]
        for k in sorted({ref[0], ref[-1]}) if ref else []:
            mcp[f"thinned_vs_per_image_k{k}"] = paired_stats(col(k), col(k, est="per_image"))
        out.update({k: (TABLE_MC_PAIRED, v) for k, v in mcp.items()})
    return out


def _paired_rows(m: dict, reported: dict) -> list[dict]:
    rows = []
    for name, (table, exp) in expected_pairs(m).items():
        rep = reported.get(name)
        if rep is None:
            rows.append(_row(table, name, "paired difference", "absent", exp["mean"], 0, False))
            continue
        rows.append(_same_row(table, name, "per-seed differences (rounded to 1e-9)",
                              [round(d, 9) for d in rep["diffs"]], [round(d, 9) for d in exp["diffs"]]))
        rows.append(_num_row(table, name, "mean paired difference", rep["mean"], exp["mean"], atol=1e-9, rtol=1e-9))
        if not math.isfinite(exp["half_width"]):
            shown = rep["half_width"]
            none = shown is None or (isinstance(shown, float) and not math.isfinite(shown))
            rows.append(_row(table, name, "95 % interval half-width (none: one seed or identical differences)",
                             "none" if none else shown, "none", 0, none))
        else:
            # the lab's t table has 3-4 significant digits: 1e-3 relative covers that, not a wrong formula
            rows.append(_num_row(table, name, "95 % interval half-width", rep["half_width"], exp["half_width"],
                                 rtol=1e-3, atol=1e-9))
    return rows


# ------------------------------------------------------------------------------------------------ Monte-Carlo
def mask_seeds(train_seed: int, n: int) -> list[int]:
    return [1000 * (train_seed + 1) + j for j in range(n + 1)]


def _ensemble_scores(sum_logits, sum_probs, k: int, y) -> dict:
    ml, mp = sum_logits / k, sum_probs / k
    n = y.shape[0]
    return {"logits": {"error_pct": 100.0 * int((ml.argmax(1) != y).sum()) / n,
                       "nll": float(F.cross_entropy(ml, y))},
            "probs": {"error_pct": 100.0 * int((mp.argmax(1) != y).sum()) / n,
                      "nll": float(-mp.gather(1, y[:, None]).clamp_min(1e-12).log().mean())}}


@torch.no_grad()
def rebuilt_curve(net, x, y, ks: list[int], members) -> dict[int, dict]:
    """Ensemble scores at each k of ks from members() (one logits tensor per call), running sums."""
    sum_l = torch.zeros(x.shape[0], 10 if net is None else linears(net)[-1].out_features)
    sum_p = torch.zeros_like(sum_l)
    out = {}
    for k in range(1, max(ks) + 1):
        logits = members()
        sum_l += logits
        sum_p += torch.softmax(logits, 1)
        if k in ks:
            out[k] = _ensemble_scores(sum_l, sum_p, k, y)
    return out


def _mc_rows(cfg: dict, m: dict, nets: dict, x_va, y_va, device: str) -> list[dict]:
    mc = m["mc"]
    n = min(cfg["n_mc"], cfg["n_val"])
    x, y = x_va[:n], y_va[:n]
    rows = [_same_row(TABLE_MC, "scored images", "number of validation images", mc["n_images"], n),
            _same_row(TABLE_MC, "scored images", "image range (the first n_mc validation images)",
                      mc["image_range"], [cfg["n_train"], cfg["n_train"] + n])]
    widths = list(m["widths"])
    rates = [cfg["p_input"]] + [cfg["p_hidden"]] * (len(widths) - 2)
    ks = mc["k_grid"]
    for r in mc["runs"]:
        seed = r["train_seed"]
        label = f"training seed {seed}"
        net = nets.get((seed, "dropout"))
        *want_masks, want_ref = mask_seeds(seed, cfg["n_mask_seeds"])
        rows.append(_same_row(TABLE_MC, label, "mask seeds (1000 (s + 1) + j)", r["mask_seeds"], want_masks))
        if net is None:
            rows.append(_row(TABLE_MC, label, "dropout net", "saved weights", "missing", "present", False))
            continue
        loss, err = eval_scores(net, x, y)
        rows.append(_num_row(TABLE_MC, label, "eval-mode (weight scaling) error %", r["eval_error_pct"], err,
                             atol=_image_tol(n)))
        rows.append(_num_row(TABLE_MC, label, "eval-mode (weight scaling) NLL", r["eval_loss"], loss, rtol=LOSS_RTOL))
        # thinned networks rebuilt from the mask contract, per mask seed, at every grid k <= K_EXACT
        check_ks = [k for k in ks if k <= K_EXACT]
        for j, ms in enumerate(r["mask_seeds"][:len(want_masks)]):
            gen = torch.Generator().manual_seed(want_masks[j])

            def thinned_member(gen=gen):
                masks = [keep_mask((w,), p, gen) for w, p in zip(widths[:-1], rates)]
                return thinned_logits(net, x, masks, rates)

            got = rebuilt_curve(net, x, y, check_ks, thinned_member)
            for k in check_ks:
                for mode in ("logits", "probs"):
                    where = f"{label}, mask seed {want_masks[j]}, k = {k}, {mode} averaged"
                    rows.append(_num_row(TABLE_MC, where, "thinned ensemble error %",
                                         r["thinned"][mode]["error_pct"][j][ks.index(k)], got[k][mode]["error_pct"],
                                         atol=_image_tol(n)))
                    rows.append(_num_row(TABLE_MC, where, "thinned ensemble NLL", r["thinned"][mode]["nll"][j][ks.index(k)],
                                         got[k][mode]["nll"], rtol=NLL_RTOL))
        ref_ks = mc["k_grid_reference"]
        if r.get("per_image") and ref_ks:
            rows.append(_same_row(TABLE_MC, label, "per-image reference mask seed", r["reference_seed"], want_ref))
            if str(device).startswith("cpu"):  # on CUDA the lab's training-mode masks come from torch's own kernel
                rows += _per_image_exact(net, x, y, r, ref_ks, want_ref, widths, rates, label)
            rows += _plain_dropout_rows(net, x, y, r, ref_ks, cfg, label)
    return rows


def _per_image_exact(net, x, y, r, ref_ks, ref_seed, widths, rates, label) -> list[dict]:
    """The per-image reference rebuilt from the contract: global RNG seeded ref_seed, one train-mode pass each."""
    n = x.shape[0]
    check_ks = [k for k in ref_ks if k <= K_EXACT]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ref_seed)

        def member():
            masks = [keep_mask((n, w), p) if p > 0 else None for w, p in zip(widths[:-1], rates)]
            return masked_logits(net, x, masks, rates)

        got = rebuilt_curve(net, x, y, check_ks, member)
    rows = []
    for k in check_ks:
        for mode in ("logits", "probs"):
            where = f"{label}, reference seed {ref_seed}, k = {k}, {mode} averaged"
            rows.append(_num_row(TABLE_MC, where, "per-image-mask ensemble error %",
                                 r["per_image"][mode]["error_pct"][ref_ks.index(k)], got[k][mode]["error_pct"],
                                 atol=_image_tol(n)))
    return rows


def binomial_var(member_wrong: torch.Tensor) -> float:
    """Variance of one member's error fraction, per-image masks (images independent given the net).

    member_wrong: [members, images] booleans. Per image, q_i = the fraction of members that get it wrong; the
    error fraction over n images has variance sum_i q_i (1 - q_i) / n^2 (unbiased over the members). Used as an
    upper estimate for larger k too: averaging members makes each image's verdict steadier, never less steady.
    """
    n_members, n = member_wrong.shape
    q = member_wrong.float().mean(0)
    return float((q * (1 - q)).sum()) * n_members / max(n_members - 1, 1) / n**2


def binomial_tol(var: float, n: int, draws: float) -> float:
    """Z_BINOMIAL standard deviations (percentage points) of a difference of error fractions whose variance is
    `draws` x var, plus one image for the discreteness of the count."""
    return 100.0 * (Z_BINOMIAL * math.sqrt(var * draws) + 1.0 / n)


@torch.no_grad()
def _plain_dropout_rows(net, x, y, r, ref_ks, cfg, label) -> list[dict]:
    """Plain train-mode nn.Dropout (torch's own sampler, per-image masks), independent of the lab's mask code:
    the reported per-image reference at k = 1 against the mean of K_PLAIN members, and at the largest reference
    k <= K_PLAIN against the ensemble of our first k members, each within the binomial spread."""
    lins = linears(net)
    plain = plain_net([lins[0].in_features, *[lin.out_features for lin in lins]], cfg["p_input"], cfg["p_hidden"])
    plain.load_state_dict(net.state_dict())
    plain.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # our own stream, independent of every mask seed of the run
        logits = [plain(x) for _ in range(K_PLAIN)]
    n = x.shape[0]
    wrong = torch.stack([lg.argmax(1) != y for lg in logits])
    var = binomial_var(wrong)
    rows = [_num_row(TABLE_MC, f"{label}, per-image reference, k = 1",
                     "error % vs the mean of plain nn.Dropout members (binomial spread)",
                     r["per_image"]["logits"]["error_pct"][0], 100.0 * float(wrong.float().mean()),
                     atol=binomial_tol(var, n, 1.0 + 1.0 / K_PLAIN))]
    k = max(k for k in ref_ks if k <= K_PLAIN)
    if k > 1:
        ens = 100.0 * float((sum(logits[:k]).argmax(1) != y).float().mean())
        rows.append(_num_row(TABLE_MC, f"{label}, per-image reference, k = {k}",
                             "error % vs a plain nn.Dropout ensemble of the same k (binomial spread)",
                             r["per_image"]["logits"]["error_pct"][ref_ks.index(k)], ens, atol=binomial_tol(var, n, 2.0)))
    return rows


# ------------------------------------------------------------------------------------------------ retraining
def _retrain_rows(cfg: dict, m: dict, widths: list[int], seed: int, x_tr, y_tr, x_va, y_va) -> list[dict]:
    """Both arms of one training seed retrained for one epoch from the contract; compared at epoch 1."""
    rows = []
    arms = {"dropout": (cfg["p_input"], cfg["p_hidden"]), "no_dropout": (0.0, 0.0)}
    for arm, (p_in, p_hid) in arms.items():
        runs = [r for r in m["arms"][arm]["runs"] if r["train_seed"] == seed]
        if not runs:
            continue
        run = runs[0]
        label = f"{m['arms'][arm]['label']}, training seed {seed}, epoch 1 retrained"
        net = plain_net(widths)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for lin in linears(net):
                lin.weight.normal_(0.0, cfg["sigma"], generator=gen)
                lin.bias.zero_()
        init_loss, _ = eval_scores(net, x_tr, y_tr)
        rows.append(_num_row(TABLE_CURVES, label, "train_loss at epoch 0 (init)", run["train_loss"][0], init_loss,
                             rtol=LOSS_RTOL))
        if len(run["train_loss"]) < 2:
            continue
        opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], foreach=False)
        order = torch.Generator().manual_seed(seed + 1)
        rates = [p_in] + [p_hid] * (len(widths) - 2)
        net.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            perm = torch.randperm(x_tr.shape[0], generator=order)
            for idx in perm.split(cfg["batch_size"]):
                xb = x_tr[idx]
                masks = [keep_mask((xb.shape[0], w), p) if p > 0 else None for w, p in zip(widths[:-1], rates)]
                opt.zero_grad()
                F.cross_entropy(masked_logits(net, xb, masks, rates), y_tr[idx]).backward()
                opt.step()
        steps = len(perm.split(cfg["batch_size"]))
        for key, x, y in (("train", x_tr, y_tr), ("val", x_va, y_va)):
            loss, err = eval_scores(net, x, y)
            rows.append(_num_row(TABLE_CURVES, label, f"{key}_loss at epoch 1", run[f"{key}_loss"][1], loss,
                                 rtol=RETRAIN_RTOL * steps))
            rows.append(_num_row(TABLE_CURVES, label, f"{key}_error_pct at epoch 1", run[f"{key}_error_pct"][1], err,
                                 atol=max(2.0, RETRAIN_IMAGES * steps) * _image_tol(x.shape[0])))
    return rows


__all__ = ["audit", "binomial_tol", "keep_mask", "paired_stats", "plain_net"]
