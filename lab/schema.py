"""What a results file of each experiment must hold before anything reads it: types, finiteness, ranges, lengths.

    problem = record_problem(raw, "deep_init")   # None, or "metrics.inits['he'].mean_abs[0][3] is 'x', not a number"

One schema per results file, written from what the sections and templates read (tests/test_schema_coverage.py
walks every key a quick run's rendering reads and checks that deleting it is caught here). Extra keys are
tolerated, so an experiment may record more than its section reads. A results file that does not fit is stale:
``run`` recomputes it, ``report`` names the file, the field and the ``--force`` command (lab.results.load_result).

Numbers the lab measured may be null: lab.results.to_jsonable writes a non-finite float (a diverged run) as null.
NaN or Infinity literals are never written by the lab, so one anywhere in a file is damage, whatever the key.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable

from lab.errors import LabError


def field_path(parts: tuple) -> str:
    """metrics.inits['normal:1'].mean_abs[0]: keys read from a file are shown with repr (escaped, one line)."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and p.isidentifier() and p.isascii():
            out += f".{p}" if out else p
        else:
            out += f"[{p!r}]"
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Spec:
    def problem(self, value: Any, path: tuple, parent: Any) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Num(Spec):
    """A finite number (int or float, not bool) within [lo, hi]; ``null`` allows None (a diverged value)."""

    lo: float = -math.inf
    hi: float = math.inf
    null: bool = False
    integer: bool = False

    def problem(self, value, path, parent):
        if value is None and self.null:
            return None
        kind = "an integer" if self.integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.integer and not isinstance(value, int)):
            return f"{field_path(path)} is {_show(value)}, not {kind}"
        try:
            number = float(value)
        except OverflowError:
            return f"{field_path(path)} is an integer too large for this lab"
        if not math.isfinite(number):
            return f"{field_path(path)} is {_show(value)}, not a finite number"
        if not self.lo <= number <= self.hi:
            return f"{field_path(path)} is {_show(value)}, outside [{self.lo:g}, {self.hi:g}]"
        return None


@dataclasses.dataclass(frozen=True)
class Str(Spec):
    null: bool = False

    def problem(self, value, path, parent):
        if isinstance(value, str) or (value is None and self.null):
            return None
        return f"{field_path(path)} is {_show(value)}, not text"


@dataclasses.dataclass(frozen=True)
class Bool(Spec):
    def problem(self, value, path, parent):
        return None if isinstance(value, bool) else f"{field_path(path)} is {_show(value)}, not true/false"


@dataclasses.dataclass(frozen=True)
class Anything(Spec):
    def problem(self, value, path, parent):
        return None


@dataclasses.dataclass(frozen=True)
class List(Spec):
    """A list of ``item``; ``length``: a number, the name of a sibling list whose length it shares, or a callable
    of the parent object; ``min_len`` a lower bound."""

    item: Spec
    length: int | str | Callable[[dict], int | None] | None = None
    min_len: int = 0
    null: bool = False

    def problem(self, value, path, parent):
        if value is None and self.null:
            return None
        if not isinstance(value, list):
            return f"{field_path(path)} is {_show(value)}, not a list"
        want = self.length
        if isinstance(want, str):
            sibling = parent.get(want) if isinstance(parent, dict) else None
            want = len(sibling) if isinstance(sibling, list) else None
        elif callable(want):
            try:
                want = want(parent)
            except (KeyError, TypeError, IndexError, AttributeError):
                want = None
        if want is not None and len(value) != want:
            return f"{field_path(path)} holds {len(value)} values, not {want}"
        if len(value) < self.min_len:
            return f"{field_path(path)} holds {len(value)} values, fewer than {self.min_len}"
        for i, v in enumerate(value):
            found = self.item.problem(v, (*path, i), value)
            if found:
                return found
        return None


@dataclasses.dataclass(frozen=True)
class Obj(Spec):
    """An object with these keys (extra keys tolerated); keys in ``optional`` may be absent."""

    fields: dict[str, Spec]
    optional: frozenset = frozenset()
    null: bool = False

    def problem(self, value, path, parent):
        if value is None and self.null:
            return None
        if not isinstance(value, dict):
            return f"{field_path(path)} is {_show(value)}, not an object"
        for key, spec in self.fields.items():
            if key not in value:
                if key in self.optional:
                    continue
                return f"{field_path((*path, key))} is missing"
            found = spec.problem(value[key], (*path, key), value)
            if found:
                return found
        return None


@dataclasses.dataclass(frozen=True)
class Map(Spec):
    """An object with any text keys, each value of ``value``; at least ``min_len`` entries."""

    value: Spec
    min_len: int = 1

    def problem(self, value, path, parent):
        if not isinstance(value, dict):
            return f"{field_path(path)} is {_show(value)}, not an object"
        if len(value) < self.min_len:
            return f"{field_path(path)} holds {len(value)} entries, fewer than {self.min_len}"
        for key, v in value.items():
            found = self.value.problem(v, (*path, key), value)
            if found:
                return found
        return None


NUM = Num()
NUMN = Num(null=True)  # a measured number that may have diverged (null)
POS = Num(lo=0.0)
POSN = Num(lo=0.0, null=True)
INT = Num(lo=0, integer=True)
INTN = Num(lo=0, integer=True, null=True)
FRAC = Num(lo=0.0, hi=1.0)
FRACN = Num(lo=0.0, hi=1.0, null=True)
PCT = Num(lo=0.0, hi=100.0)
PCTN = Num(lo=0.0, hi=100.0, null=True)
STR = Str()
STRN = Str(null=True)
BOOL = Bool()


def _same_as(key: str) -> Callable[[dict], int]:
    return lambda parent: len(parent[key])


# --- Part 1 -----------------------------------------------------------------------------------------------------

_P1_STATS = ("init_loss", "early_loss", "final_train_loss", "final_val_loss", "final_val_acc", "final_train_acc",
             "peak_loss", "plateau_steps", "steps_to_reach")
_P1_STAT_SPEC = {"final_val_acc": FRACN, "final_train_acc": FRACN, "plateau_steps": POSN, "steps_to_reach": POSN}
_P1_SEEDS = "seeds"  # per-seed lists are as long as metrics.seeds


def _per_seed(spec: Spec = NUMN) -> List:
    return List(spec, min_len=1)


def _p1_stat_block(extra: tuple[str, ...] = ()) -> Obj:
    return Obj({k: _P1_STAT_SPEC.get(k, NUMN) for k in (*_P1_STATS, *extra)})


_P1_RUN = {**{k: _per_seed(_P1_STAT_SPEC.get(k, NUMN)) for k in _P1_STATS},
           "median": _p1_stat_block(), "min": _p1_stat_block(), "max": _p1_stat_block(),
           "diverged_at": List(INTN)}
_P1_CURVE = Obj({"steps": List(INT, min_len=1), "median": List(NUMN, "steps"), "lo": List(NUMN, "steps"),
                 "hi": List(NUMN, "steps")})
_P1_VAL_CURVE = Obj({"steps": List(INT, min_len=1), "median": List(NUMN, "steps"), "lo": List(NUMN, "steps"),
                     "hi": List(NUMN, "steps"), "acc_median": List(FRACN, "steps")})
_P1_MEASURED = Obj({"sigma": POS, "plateau": POSN, "acc": FRACN, "val_ratio": POSN, "init_ratio": POSN,
                    "val_loss": NUMN, "train_loss": NUMN, "n_diverged": INT})
_P1_PICK = Obj({"sigma": Num(lo=0.0, null=True), "index": INTN, "measured": Obj(_P1_MEASURED.fields, null=True),
                "candidates": List(POS), "rule": STR, "missing_reason": STRN})
_P1_EXTRA = ("flat_units", "constant_output")
_P1_ARM_COMMON = {**_P1_RUN, "label": STR, "init": STR, "seeds": List(INT, min_len=1), "n_diverged": INT,
                  "flat_units": _per_seed(FRACN), "constant_output": _per_seed(FRACN),
                  "median": _p1_stat_block(_P1_EXTRA), "min": _p1_stat_block(_P1_EXTRA),
                  "max": _p1_stat_block(_P1_EXTRA), "curve": _P1_CURVE, "val_curve": _P1_VAL_CURVE}
_P1_ARM = Obj({**_P1_ARM_COMMON, "sigma": Num(lo=0.0, null=True),
               "grid": Obj({"seed": INT, "extent": List(NUM, 4), "prob": List(List(FRACN, min_len=1), min_len=1)},
                           null=True)})
_P1_VARIANT = Obj({**_P1_ARM_COMMON, "lr": POS, "bias": BOOL, "input_std": POSN})

SHALLOW_INIT = Obj({
    "ln2": POS,
    "widths": List(Num(lo=1, integer=True), min_len=2),
    "seeds": List(INT, min_len=1),
    "sigmas": List(POS, min_len=1),
    "eval_steps": List(INT, min_len=1),
    "n_members_sweep": Num(lo=1, integer=True),
    "base_init": STR,
    "data": Obj({"mean": List(NUM, 2), "std": List(POS, 2),
                 "train_raw": List(List(NUM, 2), min_len=1), "train_norm": List(List(NUM, 2), "train_raw"),
                 "train_labels": List(INT, "train_raw"),
                 "val_raw": List(List(NUM, 2), min_len=1), "val_norm": List(List(NUM, 2), "val_raw"),
                 "val_labels": List(INT, "val_raw")}),
    "sweep": List(Obj({**_P1_RUN, "sigma": POS, "n_diverged": INT}), min_len=1),
    "picks": Obj({"criteria_table": List(_P1_MEASURED), "reference_val_loss": NUMN,
                  "slow": _P1_PICK, "good": _P1_PICK, "large": _P1_PICK}),
    "glorot_layer_std": List(POS, min_len=1),
    # arms by name: which exist depends on the run (a pick the sweep could not make has no arm); a section that
    # needs one it does not find says so in one line (lab.sections.build_section)
    "init_arms": Map(_P1_ARM, min_len=0),
    "scaling": Map(_P1_VARIANT, min_len=0),
    "breakers": Map(_P1_VARIANT, min_len=0),
    "crosscheck": Obj({"init": STR, "seed": INT, "max_abs_diff_train_loss": POSN, "final_val_loss_batched": NUMN,
                       "final_val_loss_loop": NUMN}),
})

# --- Part 2 -----------------------------------------------------------------------------------------------------

_P2_LAYERS = lambda parent: None  # noqa: E731 - per-layer lists share the length of metrics.layers (checked below)
_P2_PER_NET_LAYER = List(List(POSN, min_len=1), min_len=1)
DEEP_INIT = Obj({
    "layers": List(Num(lo=1, integer=True), min_len=1),
    "widths": List(Num(lo=1, integer=True), min_len=3),
    "n_samples": Num(lo=1, integer=True),
    "ln_classes": POS,
    "norm_mean": List(NUM, min_len=1),
    "norm_std": List(POS, min_len=1),
    "inits": Map(Obj({
        "label": STR,
        "mean_abs": _P2_PER_NET_LAYER, "std_abs": _P2_PER_NET_LAYER, "rms": _P2_PER_NET_LAYER,
        "grad_act_mean_abs": _P2_PER_NET_LAYER, "grad_w_mean_abs": _P2_PER_NET_LAYER,
        "loss_at_init": List(POSN, "mean_abs"), "logit_std": List(POSN, "mean_abs"),
        "predicted": Obj({"mean_abs": List(POSN), "std_abs": List(POSN), "rms": List(POSN),
                          "factor_per_layer": List(POSN, min_len=1)}),
        "growth_per_layer": POSN,
    })),
})

# --- Part 3 -----------------------------------------------------------------------------------------------------

_P3_CURVE = List(NUMN, min_len=1)
_P3_RUN = Obj({
    "train_seed": INT,
    "train_loss": _P3_CURVE, "train_error_pct": List(PCTN, "train_loss"), "val_loss": List(NUMN, "train_loss"),
    "val_error_pct": List(PCTN, "train_loss"), "run_loss": List(NUMN, "train_loss"),
    "diverged_at": INTN,
    "summary": Obj({"train_loss": NUMN, "train_error_pct": PCTN, "val_loss": NUMN, "val_error_pct": PCTN,
                    "epoch": INTN, "best_val_error_epoch": INTN, "best_val_error_pct": PCTN,
                    "min_val_loss_epoch": INTN, "min_val_loss": NUMN, "val_loss_rise": NUMN},
                   # a run that diverged before any finite validation loss has no best epoch (lab.experiments.dropout)
                   optional=frozenset({"best_val_error_epoch", "best_val_error_pct", "min_val_loss_epoch",
                                       "min_val_loss", "val_loss_rise"})),
})
_P3_ARM = Obj({"p_input": FRAC, "p_hidden": FRAC, "label": STR, "runs": List(_P3_RUN, min_len=1)})
_P3_CURVES = Obj({"error_pct": List(List(PCTN, min_len=1)), "nll": List(List(NUMN, min_len=1), "error_pct")})
_P3_ESTIMATOR = Obj({"logits": _P3_CURVES, "probs": _P3_CURVES})  # thinned: one curve per mask seed
_P3_REF_CURVE = Obj({"error_pct": List(PCTN, min_len=1), "nll": List(NUMN, "error_pct")})
_P3_REFERENCE = Obj({"logits": _P3_REF_CURVE, "probs": _P3_REF_CURVE}, null=True)  # per-image masks: one curve
DROPOUT = Obj({
    "data": Obj({"n_train": Num(lo=1, integer=True), "n_val": Num(lo=1, integer=True), "pixel_mean": NUM,
                 "pixel_std": POS, "norm_mean": NUM, "norm_std": POS, "val_norm_mean": NUM, "val_norm_std": POS,
                 "train_range": List(INT, 2), "val_range": List(INT, 2)}),
    "samples": Obj({"images": List(List(NUM, min_len=1), min_len=1), "labels": List(INT, "images"),
                    "shape": List(Num(lo=1, integer=True), 2)}),
    "widths": List(Num(lo=1, integer=True), min_len=2),
    "optimizer": Obj({"name": STR, "lr": POS, "weight_decay": POS, "betas": List(FRAC, 2)}),
    "train_seeds": List(INT, min_len=1),
    "init": Obj({"sigma": POS, "logit_std_predicted": POSN, "ln_classes": POS, "input_sq_mean": POSN,
                 "loss": List(POSN, min_len=1), "logit_std": List(POSN, "loss")}),
    "epochs": List(INT, min_len=1),
    "arms": Obj({"dropout": _P3_ARM, "no_dropout": _P3_ARM}),
    "mc": Obj({
        "n_images": Num(lo=1, integer=True),
        "wall_s": POSN,
        "pass_time_s": Obj({"eval": POSN, "thinned": POSN, "per_image": POSN}, null=True),
        "k_grid": List(Num(lo=1, integer=True), min_len=1),
        "k_grid_reference": List(Num(lo=1, integer=True)),
        "runs": List(Obj({"train_seed": INT, "mask_seeds": List(INT, min_len=1), "eval_error_pct": PCTN,
                          "eval_loss": NUMN, "thinned": _P3_ESTIMATOR, "per_image": _P3_REFERENCE})),
    }, null=True),
    "test": Obj({"n_test": Num(lo=1, integer=True), "arms": Map(List(Obj({"error_pct": PCTN}), min_len=1))},
               null=True),  # --final only
})

SCHEMAS: dict[str, Spec] = {"shallow_init": SHALLOW_INIT, "deep_init": DEEP_INIT, "dropout": DROPOUT}


def _cross_checks(experiment: str, metrics: dict, config: Any) -> str | None:
    """Lengths that tie one part of a file to another (beyond a sibling): per-layer and per-seed lists."""
    if experiment == "deep_init":
        n = len(metrics["layers"])
        for spec, d in metrics["inits"].items():
            for key in ("mean_abs", "std_abs", "rms", "grad_act_mean_abs"):
                for i, row in enumerate(d[key]):
                    if len(row) != n:
                        return f"{field_path(('metrics', 'inits', spec, key, i))} holds {len(row)} layers, not {n}"
            if len(d["predicted"]["factor_per_layer"]) != n:
                return f"{field_path(('metrics', 'inits', spec, 'predicted', 'factor_per_layer'))} holds " \
                       f"{len(d['predicted']['factor_per_layer'])} layers, not {n}"
    if experiment == "shallow_init":
        n = len(metrics["seeds"])
        for i, point in enumerate(metrics["sweep"]):
            for key in _P1_STATS:
                if len(point[key]) != n:
                    return f"{field_path(('metrics', 'sweep', i, key))} holds {len(point[key])} seeds, not {n}"
    if experiment == "dropout":
        n_seeds = len(metrics["train_seeds"])
        n_epochs = len(metrics["epochs"])
        for arm, d in metrics["arms"].items():
            if len(d["runs"]) != n_seeds:
                return f"{field_path(('metrics', 'arms', arm, 'runs'))} holds {len(d['runs'])} runs, not {n_seeds}"
            for i, run in enumerate(d["runs"]):  # a run that diverged stops early: shorter curves, never longer
                if len(run["train_loss"]) > n_epochs:
                    return (f"{field_path(('metrics', 'arms', arm, 'runs', i, 'train_loss'))} holds "
                            f"{len(run['train_loss'])} epochs, more than {n_epochs}")
        mc = metrics.get("mc")
        if mc:
            k, k_ref = len(mc["k_grid"]), len(mc["k_grid_reference"])
            for i, run in enumerate(mc["runs"]):
                for kind in ("logits", "probs"):
                    for key in ("error_pct", "nll"):
                        rows = [(("thinned", kind, key, j), row) for j, row in enumerate(run["thinned"][kind][key])]
                        if run["per_image"] is not None:
                            rows.append((("per_image", kind, key), run["per_image"][kind][key]))
                        for where, row in rows:
                            want = k if where[0] == "thinned" else k_ref
                            if len(row) != want:
                                return (f"{field_path(('metrics', 'mc', 'runs', i, *where))} holds {len(row)} "
                                        f"ensemble sizes, not {want}")
    return None


def _non_finite(value: Any, path: tuple) -> str | None:
    """NaN and Infinity (JSON has neither; Python's parser accepts both): the lab writes null there."""
    stack = [(value, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return f"{field_path(p)} is {v!r} (a NaN/Infinity literal; this lab writes null for a diverged value)"
        if isinstance(v, dict):
            stack.extend((x, (*p, k)) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, (*p, i)) for i, x in enumerate(v))
    return None


def config_problem(experiment: str, config: Any) -> str | None:
    """The stored config must be one this version accepts: every field, of its type, within its limits."""
    from lab.config import CONFIG_CLASSES

    cls = CONFIG_CLASSES.get(experiment)
    if cls is None:
        return None
    if not isinstance(config, dict):
        return f"config is {_show(config)}, not an object"
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in config:
            return f"config.{f.name} is missing"
        value, typ = config[f.name], hints[f.name]
        if typing.get_origin(typ) is tuple:
            item = typing.get_args(typ)[0]
            if not isinstance(value, list) or not all(_is_type(v, item) for v in value):
                return f"config.{f.name} is {_show(value)}, not a list of {item.__name__}"
            value = tuple(value)
        elif not _is_type(value, typ):
            return f"config.{f.name} is {_show(value)}, not {getattr(typ, '__name__', typ)}"
        values[f.name] = float(value) if typ is float else value
    try:
        cls(**values)
    except LabError as exc:
        return f"config: {exc}"
    except (TypeError, ValueError, OverflowError) as exc:
        return f"config: {exc}"
    return None


def _is_type(value: Any, typ: Any) -> bool:
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is str:
        return isinstance(value, str)
    return True


def metrics_problem(experiment: str, metrics: Any, config: Any = None) -> str | None:
    spec = SCHEMAS.get(experiment)
    if spec is None:
        return None
    found = spec.problem(metrics, ("metrics",), None)
    if found is None:
        try:
            found = _cross_checks(experiment, metrics, config)
        except (KeyError, TypeError, IndexError):  # pragma: no cover - the schema above guarantees the shape
            found = "metrics do not have the layout of this version"
    return found


def record_problem(raw: dict, experiment: str) -> str | None:
    """First problem of a parsed results file of ``experiment`` (layout already checked), or None."""
    return (_non_finite(raw, ()) or config_problem(experiment, raw.get("config"))
            or metrics_problem(experiment, raw.get("metrics"), raw.get("config")))


__all__ = ["SCHEMAS", "config_problem", "field_path", "metrics_problem", "record_problem"]
