"""The rule that decides which comparative sentences Part 3 may state (lab.sections.paired).

    pytest tests/test_paired.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.sections.paired import CANNOT_TELL, diffs_text, paired, range_text, spread, t975


def test_consistent_differences_are_an_effect_with_their_sign():
    assert paired([9.0, 9.5, 8.8], [5.6, 5.7, 5.5]).verdict == "higher"
    assert paired([5.6, 5.7, 5.5], [9.0, 9.5, 8.8]).verdict == "lower"
    p = paired([9.0, 9.5, 8.8], [5.6, 5.7, 5.5])
    assert p.diffs == pytest.approx((3.4, 3.8, 3.3)) and p.mean == pytest.approx(3.5)
    sd = float(np.std([3.4, 3.8, 3.3], ddof=1))
    assert p.half_width == pytest.approx(4.303 * sd / math.sqrt(3))


def test_same_sign_but_wide_spread_cannot_tell():
    """Every seed agrees in sign, yet the t-interval of 3 seeds includes 0: the rule does not claim it."""
    p = paired([0.1, 0.2, 3.0], [0.0, 0.0, 0.0])
    assert all(d > 0 for d in p.diffs) and p.verdict == CANNOT_TELL and p.interval[0] < 0 < p.interval[1]


def test_one_seed_or_none_claims_nothing():
    assert paired([9.0], [5.0]).verdict == CANNOT_TELL and math.isnan(paired([9.0], [5.0]).half_width)
    assert paired([], []).verdict == CANNOT_TELL
    assert paired([None, 9.0], [5.0, None]).n == 0  # a seed counts only where both numbers exist
    assert "one training seed" in diffs_text(paired([9.0], [5.0]), "points")


def test_identical_differences_are_an_effect_and_zero_differences_are_not():
    assert paired([2.0, 3.0], [1.0, 2.0]).verdict == "higher"  # no spread at all: the interval is the point +1
    assert paired([2.0, 3.0], [2.0, 3.0]).verdict == CANNOT_TELL


def test_false_alarm_rate_is_about_five_percent_on_noise():
    """The reason for the t-interval: on pure noise it claims an effect ~5 % of the time for any seed count."""
    rng = np.random.default_rng(0)
    for n in (2, 3, 5):
        claims = np.mean([paired(rng.standard_normal(n).tolist(), [0.0] * n).effect for _ in range(4000)])
        assert 0.03 < claims < 0.07, (n, claims)


def test_t_quantiles_fall_towards_the_normal_one():
    assert t975(1) == 12.706 and t975(2) == 4.303 and t975(30) == 2.042 and t975(500) == 2.042
    assert all(t975(df) > t975(df + 1) for df in range(1, 30))


def test_texts():
    assert range_text(spread([5.58, 5.62, 5.70]), 2, " %") == "5.63 % [5.58, 5.70]"
    assert range_text(spread([None, 5.0]), 1) == "5.0"
    assert range_text(spread([])) == "n/a"
    text = diffs_text(paired([9.0, 9.5, 8.8], [5.6, 5.7, 5.5]), "points")
    assert text.startswith("per seed +3.40, +3.80, +3.30 points; mean +3.50, 95 % interval")
