"""The rule that decides which comparative sentences Part 3 may state (lab.sections.paired).

    pytest tests/test_paired.py -q
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lab.sections.paired import (CANNOT_TELL, NO_SPREAD, diffs_text, interval_text, paired, range_text, spread,
                                 t975, verdict_cell)


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


def test_identical_differences_claim_nothing_and_show_no_interval():
    """Two seeds whose differences are both +1.50: a variance estimate of zero, not an effect ("95 % interval 1.50 to
    1.50" was printed and claimed); ties are common with error rates counted in whole images."""
    for a, b in (([2.0, 3.0], [0.5, 1.5]), ([7.1, 7.1, 7.1], [5.6, 5.6, 5.6]), ([0.3, 0.1 + 0.2], [0.0, 0.0])):
        p = paired(a, b)
        assert p.verdict == CANNOT_TELL and not p.effect and not p.has_interval and p.reason == NO_SPREAD, (a, b)
        text = diffs_text(p, "points")
        assert "identical" in text and "no interval" in text and "95 %" not in text
        assert verdict_cell(p) == "identical differences, no interval: cannot tell"
    assert paired([2.0, 3.0], [2.0, 3.0]).verdict == CANNOT_TELL  # all zero: nothing either


def test_two_seeds_give_a_wide_interval_and_say_so():
    p = paired([3.0, 3.2], [1.0, 1.0])  # +2.0, +2.2: sd 0.141, half-width 12.706 * 0.1 = 1.27
    assert p.has_interval and p.half_width == pytest.approx(12.706 * float(np.std([2.0, 2.2], ddof=1)) / math.sqrt(2))
    assert p.verdict == "higher" and "two seeds only" in diffs_text(p, "points")
    assert "two seeds" not in diffs_text(paired([3.0, 3.2, 3.1], [1.0, 1.0, 1.0]))
    assert paired([3.0, 1.0], [1.0, 1.0]).verdict == CANNOT_TELL  # +2, 0: the t(1) interval includes 0


def test_a_narrow_interval_is_never_printed_as_one_number():
    p = paired([1.501, 1.5012, 1.5011], [0.0, 0.0, 0.0])
    lo, hi = p.interval
    assert p.has_interval and f"{lo:.2f}" == f"{hi:.2f}"  # two decimals would print "+1.50 to +1.50"
    text = diffs_text(p, "points")
    shown = re.search(r"interval (\S+) to (\S+)", text).groups()
    assert shown[0] != shown[1] and float(shown[0]) < float(shown[1]), text
    cell = verdict_cell(p)
    assert len(set(re.search(r"\[(\S+), (\S+)\]", cell).groups())) == 2, cell
    assert interval_text(1.5, 1.5) == "+1.50 to +1.50"  # a true point stays one (never produced by paired)


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
