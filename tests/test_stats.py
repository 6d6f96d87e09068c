"""Unit tests of fixtures.stats on synthetic numbers with known answers."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from fixtures.stats import (
    CONFIDENCE,
    Comparison,
    OneSided,
    Summary,
    Verdict,
    all_of,
    any_of,
    binomial_se,
    compare,
    counts,
    log_rise,
    one_sided,
    rate,
    sequential_plan,
    summarize,
    welch_df,
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
    assert c.p_a_better_ci == (pytest.approx(0.025 ** (1 / 5)), 1.0)  # Clopper-Pearson, 5 of 5
    assert c.diff.mean == pytest.approx(0.01022, abs=1e-5)
    assert c.t_pvalue < 1e-4
    assert c.decision() is Verdict.HOLDS


def test_compare_mirrored_b_better():
    c = compare(B, A)
    assert c.p_a_better == 0.0
    assert c.t_pvalue > 1 - 1e-4
    assert c.decision() is Verdict.REFUTED


def test_compare_noisy_undecided():
    b = [0.991, 0.990, 0.9925, 0.9895, 0.993]  # diffs -0.001, 0.001, -0.0005, 0.0005, 0
    c = compare(A, b)
    assert c.t_pvalue == pytest.approx(0.5, abs=1e-6)
    assert c.decision() is Verdict.INCONCLUSIVE
    assert compare(b, A).decision() is Verdict.INCONCLUSIVE


def test_lower_is_better_flips_direction():
    loss_a = [0.10, 0.12, 0.11, 0.09, 0.13]
    loss_b = [0.20, 0.21, 0.23, 0.19, 0.22]
    c = compare(loss_a, loss_b, higher_is_better=False)
    assert c.diff.mean > 0  # positive diff always means A better
    assert c.p_a_better == 1.0
    assert c.decision() is Verdict.HOLDS
    assert compare(loss_b, loss_a, higher_is_better=False).decision() is Verdict.REFUTED
    # Read as "higher is better", the same numbers make B the winner.
    assert compare(loss_a, loss_b).decision() is Verdict.REFUTED


def test_ties_count_half_and_exact_ci():
    c = compare([1, 1, 2, 0], [1, 1, 1, 1])  # tie, tie, win, loss -> (0.5 + 0.5 + 1 + 0) / 4
    assert c.p_a_better == pytest.approx(0.5)
    lo, hi = c.p_a_better_ci
    assert 0.0 < lo < c.p_a_better < hi < 1.0
    assert (lo, hi) == pytest.approx((sps.beta.ppf(0.025, 2, 3), sps.beta.ppf(0.975, 3, 2)))


def test_p_a_better_ci_is_not_certain_at_three_seeds():
    # Issue 14 item 8: a bootstrap over 3 wins resamples only wins and gave [1.0, 1.0].
    lo, hi = compare([2.0, 3.1, 4.0], [1.0, 2.0, 3.05]).p_a_better_ci
    assert hi == 1.0
    assert lo == pytest.approx(0.025 ** (1 / 3))  # Clopper-Pearson lower bound for 3 of 3: 0.29
    assert compare([1.0, 2.0, 3.05], [2.0, 3.1, 4.0]).p_a_better_ci == (0.0, pytest.approx(1 - 0.025 ** (1 / 3)))


def test_recorded_diff_interval_matches_the_one_sided_decision():
    # Issue 14 item 7: p = 0.041 sat beside a two-sided 95% CI spanning 0. The recorded interval is
    # the 90% t-CI, whose lower end is above 0 exactly when the one-sided test at 0.05 decides.
    a, b = [0.9900, 0.9920, 0.9935], [0.9888, 0.9885, 0.9890]
    c = compare(a, b)
    assert 0.025 < c.t_pvalue < 0.05 and c.decision() is Verdict.HOLDS
    assert c.diff.ci_low > 0 and c.diff.ci_method == "student-t 90%"
    assert summarize(c.diff.values).ci_low < 0  # the old two-sided 95% interval spanned 0
    for shift in (-0.003, -0.0015, 0.0, 0.0015):
        shifted = compare([x + shift for x in a], b)
        assert (shifted.diff.ci_low > 0) == (shifted.decision() is Verdict.HOLDS)
        assert (shifted.diff.ci_high < 0) == (shifted.decision() is Verdict.REFUTED)


def test_paired_test_sees_consistent_gap_despite_seed_effects():
    base = [0.80, 0.95, 0.85, 0.99, 0.90]  # large seed-to-seed variation
    bumps = [0.011, 0.009, 0.010, 0.012, 0.008]  # A is ~0.01 better on every seed
    a = [x + d for x, d in zip(base, bumps, strict=True)]
    c = compare(a, base)
    assert c.t_pvalue < 0.05
    assert c.decision() is Verdict.HOLDS
    # An unpaired view drowns the gap in the seed effects: CIs overlap, Welch's test is blind.
    assert c.a.ci_low < c.b.mean < c.a.mean < c.b.ci_high
    assert sps.ttest_ind(a, base, equal_var=False, alternative="greater").pvalue > 0.3


@pytest.mark.parametrize(
    ("a", "b", "p_a", "p_b"),
    [
        ([2, 3, 4], [1, 2, 3], 0.125, 1.0),  # all diffs +1: sign test, 3 of 3
        ([1, 2, 3], [2, 3, 4], 1.0, 0.125),  # all diffs -1
        ([1, 2, 3], [1, 2, 3], 1.0, 1.0),  # all diffs 0: no evidence either way
        ([2, 3], [1, 2], 0.25, 1.0),  # issue 14 item 8: was p = 0 at n = 2
    ],
)
def test_zero_variance_diffs_fall_back_to_the_sign_test(a, b, p_a, p_b):
    c = compare(a, b)
    assert (c.t_pvalue, c.test.p_refutes) == (p_a, p_b)
    assert c.test.method.startswith("exact sign test")


def test_zero_variance_decisions_need_enough_seeds():
    assert compare([2, 3, 4], [1, 2, 3]).decision() is Verdict.INCONCLUSIVE  # 0.5**3 = 0.125
    assert compare([2, 3, 4, 5, 6], [1, 2, 3, 4, 5]).decision() is Verdict.HOLDS  # 0.5**5 = 0.031
    assert compare([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]).decision() is Verdict.REFUTED
    assert compare([1, 2, 3], [1, 2, 3]).decision() is Verdict.INCONCLUSIVE


def test_single_seed_is_undecided():
    c = compare([0.99], [0.5])
    assert math.isnan(c.t_pvalue)
    assert c.p_a_better == 1.0
    assert c.decision() is Verdict.INCONCLUSIVE


# --- one_sided ---------------------------------------------------------------------------------


def test_one_sided_known_answer_both_directions():
    t = one_sided([1.0, 2.0, 3.0], 0.0)
    assert isinstance(t, OneSided)
    assert t.statistic == pytest.approx(2.0 / (1 / math.sqrt(3)))
    assert t.p_holds == pytest.approx(sps.ttest_1samp([1, 2, 3], 0.0, alternative="greater").pvalue)
    assert t.p_holds + t.p_refutes == pytest.approx(1.0)
    assert t.decision() is Verdict.HOLDS
    assert one_sided([1.0, 2.0, 3.0], 4.0).decision() is Verdict.REFUTED
    assert one_sided([1.0, 2.0, 3.0], 2.2).decision() is Verdict.INCONCLUSIVE
    assert one_sided([1.0, 2.0, 3.0], 4.0, higher_is_better=False).decision() is Verdict.HOLDS


def test_one_sided_interval_is_the_matching_one():
    t = one_sided([1.0, 2.0, 3.0], 0.0, alpha=0.05)
    half = sps.t.ppf(0.95, 2) / math.sqrt(3)
    assert (t.ci_low, t.ci_high) == pytest.approx((2 - half, 2 + half))
    assert one_sided([1.0, 2.0, 3.0], t.ci_low + 1e-9).p_holds == pytest.approx(0.05, abs=1e-6)


def test_one_sided_extra_se_widens_and_weakens():
    plain, shared = one_sided([1.0, 1.1, 1.2], 0.9), one_sided([1.0, 1.1, 1.2], 0.9, extra_se=0.1)
    assert shared.ci_high - shared.ci_low > plain.ci_high - plain.ci_low
    assert shared.p_holds > plain.p_holds
    assert one_sided([1.0, 1.0, 1.0], 0.5, extra_se=0.1).method.startswith("one-sided t")  # spread from extra_se


def test_one_sided_one_value_and_nan_are_undecided():
    assert one_sided([3.0], 0.0).decision() is Verdict.INCONCLUSIVE
    assert one_sided([1.0, math.nan, 2.0], 0.0).decision() is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError):
        one_sided([], 0.0)


def test_detectable_effect_and_seeds_needed():
    t = one_sided([0.1, 0.3, -0.05], 0.0)  # undecided
    d = t.detectable()
    sd = t.sd
    assert d["effect"] == pytest.approx((sps.t.ppf(0.95, 2) + sps.t.ppf(0.8, 2)) * sd / math.sqrt(3))
    assert d["observed"] == pytest.approx(0.35 / 3) and d["power"] == 0.8
    n = d["seeds_needed"]
    at = lambda k: (sps.t.ppf(0.95, k - 1) + sps.t.ppf(0.8, k - 1)) * sd / math.sqrt(k)  # noqa: E731
    assert at(n) <= d["observed"] < at(n - 1)
    assert one_sided([0.1, -0.1, 0.0], 0.0).detectable()["seeds_needed"] is None  # observed effect 0
    assert one_sided([1.0, 1.0], 0.0).detectable() is None  # no spread: nothing to scale by


def test_detectable_counts_the_shared_error_that_more_seeds_do_not_shrink():
    values = [0.9930, 0.9915, 0.9926]
    plain, shared = (
        one_sided(values, 0.9948, higher_is_better=False),
        one_sided(values, 0.9948, higher_is_better=False, extra_se=0.00085),
    )
    assert shared.detectable()["effect"] > plain.detectable()["effect"]
    assert shared.detectable()["seeds_needed"] > plain.detectable()["seeds_needed"]
    floor = one_sided(values, 0.9944, higher_is_better=False, extra_se=0.00085)  # 0.0020 < 2.49 * 0.00085
    assert floor.detectable()["seeds_needed"] is None


def test_compare_rejects_bad_lengths():
    with pytest.raises(ValueError):
        compare([1, 2], [1])
    with pytest.raises(ValueError):
        compare([], [])


def test_compare_with_diverged_run_does_not_crash():
    c = compare([0.9, math.nan, 0.92], [0.8, 0.81, 0.82])
    assert math.isnan(c.t_pvalue)
    assert c.decision() is Verdict.INCONCLUSIVE
    json.dumps(c.to_dict())


def test_comparison_to_dict_is_plain_json():
    d = json.loads(json.dumps(compare(A, B).to_dict()))
    assert d["a"]["n"] == 5 and d["diff"]["n"] == 5
    assert d["p_a_better"] == 1.0
    assert d["p_a_better_ci"] == [pytest.approx(0.025**0.2), 1.0]
    assert d["higher_is_better"] is True
    assert d["decision"] == "holds"  # A better, in the claims' vocabulary


# --- binomial_se and rise_above_running_min -------------------------------------------------


def test_binomial_se():
    assert binomial_se(0.99, 10_000) == pytest.approx(0.000995, abs=1e-6)
    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    assert binomial_se(1.0, 10) == 0.0
    with pytest.raises(ValueError):
        binomial_se(0.5, 0)


def test_log_rise_is_negative_when_the_curve_never_rises():
    # Then it is the smallest fall: every step halves the loss, so log(1/2).
    assert log_rise([2.0, 1.0, 0.5, 0.25]) == pytest.approx(math.log(0.5))
    assert log_rise([1.0, 0.9, 0.5]) == pytest.approx(math.log(0.9))
    assert math.isnan(log_rise([0.4]))


def test_log_rise_known_answer():
    assert log_rise([1.0, 0.5, 0.75]) == pytest.approx(math.log(1.5))
    # Relative to the running minimum, not the previous value: 0.5 -> 0.6 -> 0.9 is 0.9 / 0.5.
    assert log_rise([1.0, 0.5, 0.6, 0.9, 0.4]) == pytest.approx(math.log(1.8))


def test_log_rise_is_uncapped_and_diverged_runs_keep_their_own_value():
    assert log_rise([1.0, 0.1, 2.31]) == pytest.approx(math.log(23.1))  # back at chance: no cap
    assert log_rise([1.0, 0.1, 2.31]) < log_rise([1.0, 0.01, 2.31])  # from a lower best, a larger rise
    assert log_rise([1.0, 0.5, math.nan]) == math.inf and log_rise([1.0, math.inf]) == math.inf
    assert log_rise([1.0, 0.0, 0.5]) == math.inf  # a rise above a zero minimum is unbounded
    assert log_rise([1.0, 0.0, 0.0]) == 0.0  # and none from zero to zero


# --- welch_df and the count tests ----------------------------------------------------------


def test_welch_df_is_n_minus_1_without_a_shared_error_and_grows_with_it():
    assert welch_df(0.01, 3) == 2.0
    assert welch_df(0.01, 3, 0.001) == pytest.approx((0.01**2 / 3 + 0.001**2) ** 2 / ((0.01**2 / 3) ** 2 / 2))
    assert welch_df(0.0, 3, 0.001) == math.inf  # only the known error: the normal
    assert welch_df(0.0003, 3, 0.00086) > 30  # three 99.25% accuracies on one 10k test set


def test_one_sided_with_a_shared_error_uses_the_welch_satterthwaite_df():
    values, se = [0.9925, 0.9923, 0.9928], 0.00086
    t = one_sided(values, 0.985, extra_se=se)
    assert t.df == pytest.approx(welch_df(t.sd, 3, se))
    assert t.p_holds == pytest.approx(sps.t.sf(t.statistic, t.df)) and "Welch-Satterthwaite" in t.method
    assert one_sided(values, 0.985).df == 2.0 and t.to_dict()["df"] == pytest.approx(t.df)


def test_counts_decide_at_three_seeds_only_when_all_differ():
    assert counts([True] * 3, [False] * 3).p_holds == pytest.approx(1 / 64)
    assert counts([True] * 3, [False] * 3).decision() is Verdict.HOLDS
    assert counts([False] * 3, [True] * 3).decision() is Verdict.REFUTED
    assert counts([True, True, False], [False] * 3).decision() is Verdict.INCONCLUSIVE  # p = 0.11
    assert counts([True] * 3, [True] * 3).p_holds == 1.0


@pytest.mark.parametrize("n", [3, 4, 5])
def test_counts_p_is_monotone_in_each_count(n):
    p = {
        (a, b): counts([True] * a + [False] * (n - a), [True] * b + [False] * (n - b))
        for a in range(n + 1)
        for b in range(n + 1)
    }
    for (a, b), test in p.items():
        if a < n:
            assert p[a + 1, b].p_holds <= test.p_holds and p[a + 1, b].p_refutes >= test.p_refutes
        if b < n:
            assert p[a, b + 1].p_holds >= test.p_holds


def test_counts_detectable_and_to_dict():
    undecided = counts([True, True, False], [False] * 3)
    d = undecided.detectable()
    assert d["effect"] == 1.0 and d["power"] is None and d["observed"] == pytest.approx(2 / 3)
    assert d["seeds_needed"] is not None and d["seeds_needed"] > 3
    assert counts([False] * 3, [False] * 3).detectable()["seeds_needed"] is None  # no difference to scale up
    assert counts([True], [False]).detectable() is None
    record = json.loads(json.dumps(undecided.to_dict()))
    assert record["events_a"] == 2 and record["decision"] == "inconclusive" and record["values"] == [1.0, 1.0, 0.0]
    assert "2 of 3 vs 0 of 3 seeds" in undecided.describe()


def test_rate_is_the_exact_binomial_both_ways():
    assert (
        rate([False] * 6, 0.5).p_refutes == pytest.approx(0.5**6)
        and rate([False] * 6, 0.5).decision() is Verdict.REFUTED
    )
    assert rate([False] * 3, 0.5).decision() is Verdict.INCONCLUSIVE  # 0.125
    assert rate([True] * 5, 0.5).p_holds == pytest.approx(0.5**5)
    assert json.loads(json.dumps(rate([True, False], 0.5).to_dict()))["threshold"] == 0.5


# --- sequential_plan ---------------------------------------------------------------------------


def test_sequential_plan_looks_and_bonferroni_levels():
    assert sequential_plan(8) == [
        (3, pytest.approx(0.05 / 3)),
        (5, pytest.approx(0.05 / 3)),
        (8, pytest.approx(0.05 / 3)),
    ]
    assert [n for n, _ in sequential_plan(20)] == [3, 5, 8, 13, 20]
    assert [n for n, _ in sequential_plan(10)] == [3, 5, 8, 10]
    assert sequential_plan(3) == [(3, 0.05)]
    with pytest.raises(ValueError):
        sequential_plan(2)


def test_identical_seeds_take_the_sign_test():
    """Three identical seeds have no spread to scale a t by: the exact sign test gives 0.5**3 = 0.125, whatever the
    distance from the threshold, and so do values equal to within rounding ([0.1] * 3 computed as sums has an sd of
    1.7e-17, which a t-test would turn into p = 5e-33)."""
    same = one_sided([0.25] * 3, 0.1)
    near = one_sided([0.1, 0.3 - 0.2, 0.7 - 0.6], 0.05)
    assert np.std([0.1, 0.3 - 0.2, 0.7 - 0.6], ddof=1) > 0
    for test in (same, near):
        assert test.p_holds == pytest.approx(0.125) and test.method == "exact sign test (values without spread)"
        assert test.decision() is Verdict.INCONCLUSIVE
    assert one_sided([0.25, 0.26, 0.24], 0.1).p_holds < 0.01  # a real spread is a t-test


def test_a_diverged_seed_takes_the_sign_test_on_its_side():
    """An infinite value (a diverged run) is beyond any threshold on its side: the t-test cannot take it, the sign
    test counts it; a NaN stays no evidence."""
    test = one_sided([0.3, 0.4, math.inf], 0.195)
    assert test.method == "exact sign test (a diverged seed)" and test.p_holds == pytest.approx(0.125)
    assert one_sided([0.3, 0.4, math.inf] * 2, 0.195).p_holds == pytest.approx(1 / 64)
    assert math.isnan(one_sided([0.3, 0.4, math.nan], 0.195).p_holds)


@pytest.mark.parametrize(
    "p_a, p_b, join, expected",
    [
        ((0.01, 0.99), (0.02, 0.98), "and", Verdict.HOLDS),  # every one holds: the largest p, 0.02
        ((0.01, 0.99), (0.5, 0.5), "and", Verdict.INCONCLUSIVE),
        ((0.01, 0.99), (0.99, 0.01), "and", Verdict.REFUTED),  # one refutes: 2 x 0.01 = 0.02
        ((0.03, 0.97), (0.5, 0.5), "or", Verdict.INCONCLUSIVE),  # one holds at 0.03, but 2 x 0.03 > 0.05
        ((0.01, 0.99), (0.5, 0.5), "or", Verdict.HOLDS),
        ((0.99, 0.01), (0.98, 0.02), "or", Verdict.REFUTED),  # every one refutes
        ((0.99, 0.01), (0.5, 0.5), "or", Verdict.INCONCLUSIVE),
    ],
)
def test_joined_tests_reach_every_verdict(p_a, p_b, join, expected):
    """Intersection-union for "and" (Bonferroni on the refuting side), the mirror for "or"."""
    a, b = (
        SimpleNamespace(values=(1.0,), higher_is_better=True, p_holds=p_a[0], p_refutes=p_a[1], statistic=1.0),
        (SimpleNamespace(values=(2.0,), higher_is_better=True, p_holds=p_b[0], p_refutes=p_b[1], statistic=2.0)),
    )
    joined = (all_of if join == "and" else any_of)({"a": a, "b": b})
    assert joined.decision() is expected and joined.values == (1.0,)


def test_a_test_and_its_negation_swap_their_p_values():
    """De Morgan: not (A and (B or C)) = not A or (not B and not C), with p_holds and p_refutes swapped, as the two
    overfitting claims read one curve from opposite sides."""
    a, b, c = [0.2, 0.3, 0.25], [0.7, 0.75, 0.6], [0.1, 0.3, 0.2]

    def tests(up: bool) -> list:
        return [one_sided(x, t, higher_is_better=up) for x, t in ((a, 0.195), (b, 0.4), (c, 0.0))]

    ta, tb, tc = tests(True)
    na, nb, nc = tests(False)
    claim = all_of({"c": tc, "ab": any_of({"a": ta, "b": tb})})
    negation = any_of({"c": nc, "ab": all_of({"a": na, "b": nb})})
    assert claim.p_holds == pytest.approx(negation.p_refutes) and claim.p_refutes == pytest.approx(negation.p_holds)
    record = claim.to_dict()
    assert record["decision"] == claim.decision().value and set(record["parts"]) == {"c", "ab"}
    assert set(record["parts"]["ab"]["parts"]) == {"a", "b"}
