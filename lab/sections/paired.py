"""Spread over training seeds, and the rule for claiming an effect from paired per-seed differences.

    p = paired(no_dropout_errors, dropout_errors)     # a_i - b_i per training seed
    p.verdict                                          # "higher", "lower" or "cannot tell"

The rule: an effect is claimed only when the 95 % Student-t interval of the mean paired difference,
mean +/- t(0.975, n - 1) * sd / sqrt(n), excludes 0. With one seed there is no spread and nothing is
claimed. Why not "every seed agrees in sign and the mean exceeds the min-max half-range": on pure noise
(normal differences, simulated) that rule claims an effect 50 % of the time with 2 seeds and 22 % with 3;
"mean beyond 2 standard errors" 29 % and 18 %. The t-interval keeps it at 5 % for any number of seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Two-sided 95 % quantiles of Student's t, t(0.975, df), df = 1..30 (standard table; numpy has no t quantile and
# scipy is not a dependency). Beyond 30 seeds the df = 30 value is used: slightly wider than exact, never narrower.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
CANNOT_TELL = "cannot tell"
# why a Paired claims nothing (Paired.reason); "" for an effect and for an interval that includes 0
ONE_SEED = "one seed"
NO_SPREAD = "no spread"
# sample standard deviations below this fraction of the largest |difference| are a tie, not a spread: float
# rounding of equal quantities (errors of 2 images in 1,000 computed two ways) must not pass for a measured spread
TIE_RTOL = 1e-9


def t975(df: int) -> float:
    return T975[min(df, len(T975)) - 1]


@dataclass(frozen=True)
class Spread:
    """Mean and min-max of one quantity over training seeds (None / NaN entries left out)."""

    values: tuple[float, ...]
    mean: float
    lo: float
    hi: float

    @property
    def n(self) -> int:
        return len(self.values)


def finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def spread(values) -> Spread:
    v = finite(values)
    if not v:
        return Spread((), math.nan, math.nan, math.nan)
    return Spread(tuple(v), float(np.mean(v)), min(v), max(v))


@dataclass(frozen=True)
class Paired:
    """a_i - b_i per training seed, their mean, the 95 % t-interval of the mean, and what may be claimed."""

    diffs: tuple[float, ...]
    mean: float
    half_width: float  # t(0.975, n - 1) * sd / sqrt(n); NaN with fewer than 2 seeds or no spread
    verdict: str  # "higher" (a > b), "lower" (a < b) or CANNOT_TELL
    reason: str = ""  # ONE_SEED or NO_SPREAD when no interval exists (the verdict is then CANNOT_TELL)

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def interval(self) -> tuple[float, float]:
        return self.mean - self.half_width, self.mean + self.half_width

    @property
    def effect(self) -> bool:
        return self.verdict != CANNOT_TELL

    @property
    def has_interval(self) -> bool:
        """True where a 95 % interval was computed (two or more seeds whose differences have a spread)."""
        return self.n >= 2 and math.isfinite(self.half_width) and self.half_width > 0


def paired(a, b) -> Paired:
    """Paired differences a_i - b_i over the seeds where both are finite."""
    diffs = tuple(x - y for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x - y))
    n = len(diffs)
    if n == 0:
        return Paired((), math.nan, math.nan, CANNOT_TELL, ONE_SEED)
    mean = float(np.mean(diffs))
    if n < 2:
        return Paired(diffs, mean, math.nan, CANNOT_TELL, ONE_SEED)
    sd = float(np.std(diffs, ddof=1))
    if not sd > TIE_RTOL * max(abs(d) for d in diffs):  # identical differences: a zero variance estimate
        return Paired(diffs, mean, math.nan, CANNOT_TELL, NO_SPREAD)
    half = t975(n - 1) * sd / math.sqrt(n)
    verdict = CANNOT_TELL
    if mean - half > 0:
        verdict = "higher"
    elif mean + half < 0:
        verdict = "lower"
    return Paired(diffs, mean, half, verdict)


def interval_text(lo: float, hi: float, digits: int = 2, sep: str = " to ", sign: str = "+") -> str:
    """'+2.80 to +3.68': the ends of an interval with at least ``digits`` decimals, more where fewer would show two
    equal numbers ('1.50 to 1.50' would read as a measured point)."""
    d = digits
    while d < 8 and f"{lo:{sign}.{d}f}" == f"{hi:{sign}.{d}f}" and lo != hi:
        d += 1
    return f"{lo:{sign}.{d}f}{sep}{hi:{sign}.{d}f}"


def diffs_text(p: Paired, unit: str = "", digits: int = 2) -> str:
    """'+3.10, +3.42, +3.20 points; mean +3.24, 95 % interval +2.80 to +3.68' (or 'one seed: +3.10 points')."""
    vals = ", ".join(f"{d:+.{digits}f}" for d in p.diffs)
    unit = f" {unit}" if unit else ""
    if p.n < 2:
        return f"one training seed: {vals}{unit}, no spread to compare it with"
    if not p.has_interval:
        return (f"per seed {vals}{unit}: identical in all {p.n} seeds, so their spread is unknown and no interval "
                "can be computed")
    lo, hi = p.interval
    few = " (two seeds only: a wide interval)" if p.n == 2 else ""
    return f"per seed {vals}{unit}; mean {p.mean:+.{digits}f}, 95 % interval {interval_text(lo, hi, digits)}{few}"


def verdict_cell(p: Paired, digits: int = 2) -> str:
    """A table cell for the interval of the mean difference and what it allows: '[+0.1, +0.9]: effect'."""
    if p.n < 2:
        return "one seed: cannot tell"
    if not p.has_interval:
        return "identical differences, no interval: cannot tell"
    lo, hi = p.interval
    return f"[{interval_text(lo, hi, digits, sep=', ')}]: {'effect' if p.effect else CANNOT_TELL}"


def range_text(s: Spread, digits: int = 2, suffix: str = "") -> str:
    """'5.62 % [5.58, 5.70]': mean [min, max] over the training seeds; a single seed is shown alone."""
    if s.n == 0:
        return "n/a"
    if s.n == 1:
        return f"{s.mean:.{digits}f}{suffix}"
    return f"{s.mean:.{digits}f}{suffix} [{s.lo:.{digits}f}, {s.hi:.{digits}f}]"


RULE = ("an effect is claimed only where the 95 % Student-t interval of the mean paired difference over the "
        "training seeds excludes 0; otherwise the run cannot tell")

__all__ = ["CANNOT_TELL", "Paired", "RULE", "Spread", "T975", "diffs_text", "finite", "paired", "range_text", "spread",
           "t975", "verdict_cell", "interval_text", "NO_SPREAD", "ONE_SEED"]
