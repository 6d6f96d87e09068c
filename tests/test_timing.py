"""The timing claims: their rules' outcomes, the sequential test over rounds (Claim.decide_rounds's), its error,
and what a step costs."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from claims.test_training import FACTOR_5_OR_SO, MUCH_SLOWER, cnn_vs_mlp_time_rule, gpu_speedup_rule
from fixtures import stats, timing
from fixtures.claim import Verdict, by_name, sequential
from tests.tiny import tiny_data

LAST_LOOK_ALPHA = 0.05 / len(timing.LOOKS)
H, R, I = Verdict.HOLDS, Verdict.REFUTED, Verdict.INCONCLUSIVE  # noqa: E741 (as in test_rules.py)


def decide_rounds(next_ratio, rule=cnn_vs_mlp_time_rule, **rounds_options) -> tuple[timing.Timed, list[dict]]:
    """Rounds whose ratios `next_ratio` draws, decided as Claim.decide_rounds does: what they measured, every look."""
    rounds = timing.Rounds(next_ratio, lambda ratio: ratio, **rounds_options)
    _, timed, _, looks = sequential(rounds, by_name(rule), rounds.plan, look=rounds.look, more=rounds.more)
    return timed, looks


@pytest.mark.rule_of("cnn-vs-mlp-time")
@pytest.mark.parametrize(
    "ratios, expected",
    [
        ([3.0, 3.2, 2.9, 3.1, 3.05], H),
        ([1.3, 1.25, 1.4, 1.35, 1.3], R),
        ([1.6, 2.6, 2.0, 2.3, 1.8], I),
    ],
    ids=["clearly-slower", "less-than-twice", "straddles-2"],
)
def test_rule_reaches_every_verdict(ratios, expected):
    ruling = cnn_vs_mlp_time_rule(ratios, LAST_LOOK_ALPHA, failed=[-9.67])
    look = ruling.tests["cpu_ratio"]
    assert ruling.verdict is expected and ruling.rule.startswith("CPU only")
    assert look.ci_low < look.mean < look.ci_high and list(look.values) == ratios
    assert math.isclose(look.mean, math.exp(np.mean(np.log(ratios))))
    assert "1 failed round(s) set aside and redrawn: ratio [-9.67]" in ruling.headline["text"]
    assert ruling.headline["name"] == "CNN/MLP CPU time per training step" and ruling.headline["values"] == ratios
    if expected is H:
        assert look.ci_low > MUCH_SLOWER
    if expected is R:
        assert look.ci_high < MUCH_SLOWER


@pytest.mark.rule_of("gpu-speedup")
@pytest.mark.parametrize(
    "ratios, expected, faster",
    [
        ([2.1, 1.9, 2.0, 2.2, 1.95], R, False),  # 2x: training time divided by less than "5 or so"
        ([5.1, 4.8, 5.3, 4.9, 5.0], H, False),  # "divided by a factor 5 or so"
        ([4.0, 4.3, 3.9, 4.2, 4.1], H, False),  # 4 is 5 or so too
        ([9.2, 8.7, 9.1, 8.9, 9.0], H, True),  # 9x: more than promised, no refutation of the advice
        ([38.0, 41.5, 40.2, 39.1, 41.0], H, True),  # an H200 against its 16 cores might be this
        ([2.8, 3.6, 3.1, 3.4, 2.9], I, False),  # straddles the lower edge, 3.16
        ([6.5, 7.6, 7.0, 7.4, 6.8], H, False),  # straddles the upper edge, 7.07: inside or above, it holds
    ],
    ids=["2x", "5x", "4x", "9x", "40x", "at-lower-edge", "at-upper-edge"],
)
def test_gpu_speedup_rule_reaches_every_verdict(ratios, expected, faster):
    ruling = gpu_speedup_rule(ratios, LAST_LOOK_ALPHA)
    look = ruling.tests["cpu_over_gpu_ratio"]
    assert ruling.verdict is expected, ruling.headline["text"]
    low, high = FACTOR_5_OR_SO
    assert look.threshold == pytest.approx(math.sqrt(10)) == pytest.approx(low)
    assert (look.ci_low > low) is (expected is H) and (look.ci_high < low) is (expected is R)
    assert ("faster than stated" in ruling.headline["text"]) is faster is (look.ci_low > high)
    if faster:
        assert f"faster than stated: {look.mean:.0f}x" in ruling.headline["text"]


def test_timing_rules_state_the_looks_and_the_cap_they_use():
    for rule in (cnn_vs_mlp_time_rule, gpu_speedup_rule):
        doc = " ".join(rule.__doc__.split())
        assert "5, 10 or 20 rounds" in doc and timing.LOOKS == (5, 10, 20)
        assert f"{timing.TIME_CAP_S:g} CPU-s" in doc and f"0.05/{len(timing.LOOKS)}" in doc
    assert (
        "[3.16, 7.07]" in gpu_speedup_rule.__doc__ and f"MUCH_SLOWER = {MUCH_SLOWER:g}" in cnn_vs_mlp_time_rule.__doc__
    )


def test_sequential_test_decides_a_clear_speedup_at_the_first_look():
    draws = itertools.cycle([5.1, 4.8, 5.3, 4.9, 5.0])
    timed, looks = decide_rounds(lambda: next(draws), gpu_speedup_rule)
    assert len(timed.ratios) == timing.LOOKS[0] and [look["verdict"] for look in looks] == ["holds"]
    draws = itertools.cycle([3.0, 3.4, 3.1, 3.3, 3.2])
    _, looks = decide_rounds(lambda: next(draws), gpu_speedup_rule)
    assert [look["n"] for look in looks] == list(timing.LOOKS) and looks[-1]["verdict"] == "inconclusive"


@pytest.mark.parametrize(
    "ratios",
    [[3.0], [3.0, -1.0], [3.0, math.nan], [3.0, math.inf], [3.0, 3.0, 3.0]],
    ids=["one-round", "negative", "nan", "inf", "no-spread"],
)
def test_failed_or_degenerate_measurements_decide_nothing(ratios):
    test = stats.ratio_test(ratios, MUCH_SLOWER, LAST_LOOK_ALPHA)
    assert test.decision() is I and math.isnan(test.mean) and test.look()["verdict"] == "inconclusive"


@pytest.mark.parametrize("ratios", [[3.0, 3.3, 2.8, 3.1, 2.9], [1.3, 1.25, 1.4, 1.35, 1.3], [1.6, 2.6, 2.0, 2.3, 1.8]])
def test_ratio_test_decides_as_its_two_sided_interval(ratios):
    """Deciding at alpha on the doubled one-sided p-values is the (1 - alpha) interval's decision, and the look
    records the two-sided p."""
    test = stats.ratio_test(ratios, MUCH_SLOWER, LAST_LOOK_ALPHA)
    by_interval = H if test.ci_low > MUCH_SLOWER else R if test.ci_high < MUCH_SLOWER else I
    assert test.decision() is by_interval and test.look()["p"] == min(test.p_holds, test.p_refutes)


def test_clear_ratio_is_decided_at_the_first_look():
    draws = itertools.cycle([3.0, 3.3, 2.8, 3.1, 2.9])
    timed, looks = decide_rounds(lambda: next(draws))
    assert len(timed.ratios) == timing.LOOKS[0]
    assert [look["verdict"] for look in looks] == ["holds"]


def test_ratio_near_the_threshold_samples_every_look_then_is_inconclusive():
    draws = itertools.cycle([1.6, 2.5, 2.0, 1.8, 2.3])
    timed, looks = decide_rounds(lambda: next(draws))
    assert [look["n"] for look in looks] == list(timing.LOOKS) and len(timed.ratios) == timing.LOOKS[-1]
    assert {look["verdict"] for look in looks} == {"inconclusive"}
    assert {look["alpha"] for look in looks} == {LAST_LOOK_ALPHA}


def test_a_failed_draw_is_set_aside_and_drawn_again():
    """One negative ratio (seen on TF 2.18: an MLP round whose 200-batch fit cost less CPU than its
    100-batch one) used to make every later look NaN; it is now recorded and replaced by a new draw."""
    draws = itertools.chain([3.0, -9.67], itertools.cycle([3.3, 2.8, 3.1, 2.9]))
    timed, looks = decide_rounds(lambda: next(draws))
    assert timed.failed == (-9.67,) and len(timed.ratios) == timing.LOOKS[0] and all(r > 0 for r in timed.ratios)
    assert len(timed.rounds) == len(timed.ratios) and [look["verdict"] for look in looks] == ["holds"]


def test_only_failed_draws_stop_after_the_last_look_s_count():
    timed, looks = decide_rounds(lambda: math.nan)
    assert timed.ratios == () and len(timed.failed) == timing.LOOKS[-1]
    assert [look["verdict"] for look in looks] == ["inconclusive"]


def test_time_cap_stops_before_the_next_look():
    clock = itertools.count(0.0, timing.TIME_CAP_S + 1)  # every reading is past the cap
    draws = itertools.cycle([1.6, 2.5, 2.0])
    timed, looks = decide_rounds(lambda: next(draws), clock=lambda: next(clock))
    assert len(looks) == 1 and len(timed.ratios) == timing.LOOKS[0] and looks[0]["verdict"] == "inconclusive"


def decided_share(true_ratio: float, log_sd: float, alpha: float, trials: int = 2000) -> float:
    """How often the sequential test decides (holds or refuted) on lognormal ratios around `true_ratio`."""
    rng = np.random.default_rng(1)
    decided = 0
    for _ in range(trials):
        _, looks = decide_rounds(lambda: true_ratio * math.exp(rng.normal(0, log_sd)), alpha=alpha)
        decided += looks[-1]["verdict"] != "inconclusive"
    return decided / trials


def test_sequential_looks_keep_the_error_at_alpha_and_uncorrected_looks_would_not():
    trials = 2000
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)  # alpha plus 3 Monte Carlo standard errors
    assert decided_share(MUCH_SLOWER, 0.2, alpha=0.05, trials=trials) <= bound
    # The same looks each at 0.05 (no Bonferroni split) decide wrongly far more often.
    assert decided_share(MUCH_SLOWER, 0.2, alpha=0.05 * len(timing.LOOKS), trials=trials) > bound


def test_ratio_like_the_measured_one_is_decided():
    # Probed on the 2-core machine under load: CPU ratio ~3.0, sd of the log ratio ~0.17 per round.
    assert decided_share(3.0, 0.2, alpha=0.05, trials=500) >= 0.99


class BusyModel:
    """Stands in for a Keras model: fit() costs a fixed amount plus an amount per batch."""

    def __init__(self, fixed_s: float, per_step_s: float, spend) -> None:
        self.fixed_s, self.per_step_s, self.spend = fixed_s, per_step_s, spend

    def fit(self, batches, **kwargs) -> None:
        self.spend(self.fixed_s + len(batches) * self.per_step_s)


def burn_cpu(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def test_step_cost_removes_fits_fixed_cost():
    model = BusyModel(fixed_s=0.05, per_step_s=0.002, spend=burn_cpu)
    cost = timing.step_cost(model, short=[0] * 20, long=[0] * 40, steps=20)
    assert cost.cpu_s == pytest.approx(0.002, abs=0.0005)  # fit over 40 alone would say 0.00325


def test_step_cost_in_cpu_time_ignores_waiting():
    model = BusyModel(fixed_s=0.01, per_step_s=0.02, spend=time.sleep)  # a process made to wait, e.g. preempted
    cost = timing.step_cost(model, short=[0] * 20, long=[0] * 40, steps=20)
    assert cost.cpu_s < 0.002 < 0.01 < cost.wall_s  # sleeps may overrun by tens of ms on a loaded machine


def test_gpu_vs_cpu_sampler_times_one_model_on_both_devices():
    """Without a GPU both are the CPU; what this checks is the round's shape and that the CPU scope runs."""
    data = tiny_data()
    costs = timing.gpu_vs_cpu_sampler(data.X_train[:320], data.T_train[:320], "tiny")()
    assert sorted(costs) == ["cpu", "gpu"] and all(math.isfinite(c.wall_s) for c in costs.values())


def test_sampler_times_each_model_in_turn():
    data = tiny_data()
    sample = timing.step_cost_sampler(data.X_train, data.T_train, ("tiny",), batch_size=8)
    costs = sample()
    assert list(costs) == ["tiny"] and math.isfinite(costs["tiny"].cpu_s) and math.isfinite(costs["tiny"].wall_s)
    with pytest.raises(ValueError, match="too few"):
        timing.step_cost_sampler(data.X_train[:100], data.T_train[:100], ("tiny",), batch_size=64)
