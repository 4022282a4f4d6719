"""How far each part's run is from the lab's protocol (the full profile's config), in words for the report.

    diffs = deviations("dropout", result.config)   # [Deviation("epochs", "training epochs", "3", "80"), ...]

The full profile is the lab's protocol. A part run under the quick profile, or with any --set that changes a
setting of the protocol (fewer epochs, seeds, images, steps, another init...), is marked on the report's first
screen, in its answers and in its section, so that a smoke run's numbers are never read as the lab's results.
The seed is not part of the protocol (any seed is a valid replication), nor is --final (an extra evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.config import config_to_dict, make_config

# settings that do not change the protocol: a replication under another seed, the opt-in test evaluation
NOT_PROTOCOL = {"seed", "final"}

# what a setting is, in words; a setting not listed is named by its field
WORDS: dict[str, dict[str, str]] = {
    "shallow_init": {
        "n_train": "training points", "n_val": "validation points", "hidden": "hidden widths", "lr": "learning rate",
        "steps": "gradient steps", "n_seeds": "model seeds per sigma", "sigma_min": "smallest swept sigma",
        "sigma_max": "largest swept sigma", "n_sigmas": "swept sigmas", "n_eval": "validation scorings",
        "curve_points": "curve points", "grid_size": "boundary grid side",
        "early_step": "step of the early loss", "scale_factors": "input scale factors",
    },
    "deep_init": {
        "depth": "hidden layers", "width": "units per layer", "n_samples": "input points",
        "n_train": "normalisation points", "inits": "inits", "n_nets": "weight draws per init",
    },
    "dropout": {
        "n_train": "training images", "n_val": "validation images", "hidden": "hidden widths",
        "p_input": "input dropout rate", "p_hidden": "hidden dropout rate", "sigma": "init sigma",
        "lr": "learning rate", "weight_decay": "weight decay", "batch_size": "minibatch size", "epochs": "epochs",
        "n_train_seeds": "training seeds", "k_max": "Monte-Carlo k",
        "n_mask_seeds": "mask seeds", "k_max_reference": "reference k",
        "n_mc": "ensemble images",
    },
}


@dataclass(frozen=True)
class Deviation:
    field: str
    words: str  # what the setting is
    value: str  # as run
    protocol: str  # the lab's

    @property
    def text(self) -> str:
        return f"{self.words} {self.value} instead of {self.protocol}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) if value else "none"
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def protocol_config(experiment: str) -> dict[str, Any]:
    """The lab's protocol for one part: the full profile's config."""
    return config_to_dict(make_config(experiment, "full"))


def deviations(experiment: str, config: dict[str, Any]) -> list[Deviation]:
    """Every protocol setting whose value in ``config`` (a results file's config) differs from the lab's."""
    lab = protocol_config(experiment)
    words = WORDS.get(experiment, {})
    out = []
    for key, want in lab.items():
        if key in NOT_PROTOCOL or key not in config or _same(config[key], want):
            continue
        out.append(Deviation(key, words.get(key, key.replace("_", " ")), _show(config[key]), _show(want)))
    return out


def part_status(experiment: str, part: int, profile: str, config: dict[str, Any]) -> dict[str, Any]:
    """What the report says about one part's distance from the protocol (facts; the words are in templates)."""
    diffs = deviations(experiment, config)
    # "short" goes into every answer of the part: the values where there are few, else the settings' names (the
    # banner and the section list the values)
    short = "; ".join(d.text for d in diffs) if len(diffs) <= 2 else (
        f"profile {profile}: " + ", ".join(d.words for d in diffs))
    return {"experiment": experiment, "part": part, "profile": profile, "off": bool(diffs),
            "differs": [d.text for d in diffs], "full": "; ".join(d.text for d in diffs), "short": short}


__all__ = ["Deviation", "NOT_PROTOCOL", "WORDS", "deviations", "part_status", "protocol_config"]
