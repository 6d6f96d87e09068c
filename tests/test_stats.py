"""Unit tests of fixtures.stats on synthetic numbers with known answers."""

import json
import math

import pytest
from scipy import stats as sps

from fixtures.stats import (
    CONFIDENCE,
    Comparison,
    Summary,
    binomial_se,
    compare,
    rise_above_running_min,
    summarize,
)

A = [0.99, 0.991, 0.992, 0.990, 0.993]
# A - 0.01 plus hand-picked noise of about +-0.0005: the gap is clear and consistent per seed.
B = [0.9803, 0.9805, 0.9818, 0.9797, 0.9826]


# --- summarize -----------------------------------------------------------------------------


def test_summarize_known_answer():
    s = summarize([1, 2, 3])
    assert isinstance(s, Summary)
    assert s.values == (1.0, 2.0, 3.0)
    assert s.n == 3
    assert s.mean == pytest.approx(2.0)
    assert s.sd == pytest.approx(1.0)
    # t(0.975, df=2) = 4.302653 from tables; 4.302653 / sqrt(3) = 2.484138.
    assert s.ci_low == pytest.approx(2 - 2.484138, abs=1e-3)
    assert s.ci_high == pytest.approx(2 + 2.484138, abs=1e-3)
    assert s.ci_method == "student-t 95%"
    assert CONFIDENCE == 0.95


def test_summarize_single_value():
    s = summarize([0.97])
    assert s.n == 1
    assert s.sd == 0.0
    assert s.mean == s.ci_low == s.ci_high == 0.97


def test_summarize_nan_and_inf_do_not_crash():
    s = summarize([0.5, math.nan, 0.7])
    assert math.isnan(s.mean) and math.isnan(s.ci_low) and math.isnan(s.ci_high)
    s = summarize([0.5, math.inf])
    assert s.mean == math.inf
    json.dumps(s.to_dict())


def test_summarize_empty_raises():
    with pytest.raises(ValueError):
        summarize([])


def test_summary_to_dict_is_plain_json():
    d = summarize([1, 2, 3]).to_dict()
    assert set(d) == {"values", "n", "mean", "sd", "ci_low", "ci_high", "ci_method"}
    assert type(d["mean"]) is float and type(d["n"]) is int and type(d["values"]) is list
    assert json.loads(json.dumps(d))["values"] == [1.0, 2.0, 3.0]


# --- compare -------------------------------------------------------------------------------


def test_compare_clear_gap_a_better():
    c = compare(A, B)
    assert isinstance(c, Comparison)
    assert c.p_a_better == 1.0
    assert c.p_a_better_ci == (1.0, 1.0)
    assert c.diff.mean == pytest.approx(0.01022, abs=1e-5)
    assert c.t_pvalue < 1e-4
    assert c.decision() == "a_better"


def test_compare_mirrored_b_better():
    c = compare(B, A)
    assert c.p_a_better == 0.0
    assert c.t_pvalue > 1 - 1e-4
    assert c.decision() == "b_better"


def test_compare_noisy_undecided():
    b = [0.991, 0.990, 0.9925, 0.9895, 0.993]  # diffs -0.001, 0.001, -0.0005, 0.0005, 0
    c = compare(A, b)
    assert c.t_pvalue == pytest.approx(0.5, abs=1e-6)
    assert c.decision() == "undecided"
    assert compare(b, A).decision() == "undecided"


def test_lower_is_better_flips_direction():
    loss_a = [0.10, 0.12, 0.11, 0.09, 0.13]
    loss_b = [0.20, 0.21, 0.23, 0.19, 0.22]
    c = compare(loss_a, loss_b, higher_is_better=False)
    assert c.diff.mean > 0  # positive diff always means A better
    assert c.p_a_better == 1.0
    assert c.decision() == "a_better"
    assert compare(loss_b, loss_a, higher_is_better=False).decision() == "b_better"
    # Read as "higher is better", the same numbers make B the winner.
    assert compare(loss_a, loss_b).decision() == "b_better"


def test_ties_count_half_and_bootstrap_ci():
    c = compare([1, 1, 2, 0], [1, 1, 1, 1])  # tie, tie, win, loss -> (0.5 + 0.5 + 1 + 0) / 4
    assert c.p_a_better == pytest.approx(0.5)
    lo, hi = c.p_a_better_ci
    assert 0.0 <= lo <= c.p_a_better <= hi <= 1.0
    assert lo < hi
    assert compare([1, 1, 2, 0], [1, 1, 1, 1]).p_a_better_ci == c.p_a_better_ci  # reproducible


def test_bootstrap_ci_brackets_estimate_on_mixed_case():
    a = [0.5, 0.6, 0.7, 0.4, 0.9, 0.3, 0.8, 0.55]
    b = [0.4, 0.7, 0.6, 0.5, 0.8, 0.2, 0.9, 0.50]
    c = compare(a, b)
    lo, hi = c.p_a_better_ci
    assert 0.0 <= lo <= c.p_a_better <= hi <= 1.0
    assert compare(a, b).p_a_better_ci == (lo, hi)


def test_paired_test_sees_consistent_gap_despite_seed_effects():
    base = [0.80, 0.95, 0.85, 0.99, 0.90]  # large seed-to-seed variation
    bumps = [0.011, 0.009, 0.010, 0.012, 0.008]  # A is ~0.01 better on every seed
    a = [x + d for x, d in zip(base, bumps)]
    c = compare(a, base)
    assert c.t_pvalue < 0.05
    assert c.decision() == "a_better"
    # An unpaired view drowns the gap in the seed effects: CIs overlap, Welch's test is blind.
    assert c.a.ci_low < c.b.mean < c.a.mean < c.b.ci_high
    assert sps.ttest_ind(a, base, equal_var=False, alternative="greater").pvalue > 0.3


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([2, 3, 4], [1, 2, 3], 0.0),  # all diffs +1
        ([1, 2, 3], [2, 3, 4], 1.0),  # all diffs -1
        ([1, 2, 3], [1, 2, 3], 0.5),  # all diffs 0
    ],
)
def test_zero_variance_diffs(a, b, expected):
    assert compare(a, b).t_pvalue == expected


def test_zero_variance_decisions():
    assert compare([2, 3, 4], [1, 2, 3]).decision() == "a_better"
    assert compare([1, 2, 3], [2, 3, 4]).decision() == "b_better"
    assert compare([1, 2, 3], [1, 2, 3]).decision() == "undecided"


def test_single_seed_is_undecided():
    c = compare([0.99], [0.5])
    assert math.isnan(c.t_pvalue)
    assert c.p_a_better == 1.0
    assert c.decision() == "undecided"


def test_compare_rejects_bad_lengths():
    with pytest.raises(ValueError):
        compare([1, 2], [1])
    with pytest.raises(ValueError):
        compare([], [])


def test_compare_with_diverged_run_does_not_crash():
    c = compare([0.9, math.nan, 0.92], [0.8, 0.81, 0.82])
    assert math.isnan(c.t_pvalue)
    assert c.decision() == "undecided"
    json.dumps(c.to_dict())


def test_comparison_to_dict_is_plain_json():
    d = json.loads(json.dumps(compare(A, B).to_dict()))
    assert d["a"]["n"] == 5 and d["diff"]["n"] == 5
    assert d["p_a_better"] == 1.0
    assert d["p_a_better_ci"] == [1.0, 1.0]
    assert d["higher_is_better"] is True
    assert d["decision"] == "a_better"


# --- binomial_se and rise_above_running_min -------------------------------------------------


def test_binomial_se():
    assert binomial_se(0.99, 10_000) == pytest.approx(0.000995, abs=1e-6)
    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    assert binomial_se(1.0, 10) == 0.0
    with pytest.raises(ValueError):
        binomial_se(0.5, 0)


def test_rise_monotone_decreasing_is_zero():
    assert rise_above_running_min([2.3, 1.0, 0.5, 0.2, 0.1]) == 0.0
    assert rise_above_running_min([0.4]) == 0.0


def test_rise_known_answer():
    assert rise_above_running_min([1.0, 0.5, 0.75]) == pytest.approx(0.5)
    # Relative to the running minimum, not the previous value: 0.5 -> 0.6 -> 0.9 is 0.8.
    assert rise_above_running_min([1.0, 0.5, 0.6, 0.9, 0.4]) == pytest.approx(0.8)


def test_rise_diverged_is_inf():
    assert rise_above_running_min([1.0, 0.5, math.nan]) == math.inf
    assert rise_above_running_min([1.0, math.inf]) == math.inf
