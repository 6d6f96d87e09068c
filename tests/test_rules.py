"""Every claim's rule reaches each of its verdicts on planted measurements, and no claim lacks such a test.

Each test is marked `rule_of(<claim id>)`; the meta-test at the end fails when a claim in claims/
has no rule test under tests/.
"""

from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from claims import test_analysis as analysis
from claims import test_architecture as architecture
from claims import test_training as training
from fixtures import models
from fixtures.claim import Verdict
from fixtures.stats import log_rise
from reports import build

REPO = Path(__file__).resolve().parent.parent
H, R, I = Verdict.HOLDS, Verdict.REFUTED, Verdict.INCONCLUSIVE


def _check(ruling, expected: Verdict) -> None:
    """The verdict, plus what every verdict must carry: a headline, and `detectable` when undecided (unless a seed
    diverged or the seeds are identical: no spread to scale an effect by)."""
    assert ruling.verdict is expected, ruling.headline["text"]
    assert ruling.headline["values"] and ruling.headline["text"]
    values = np.asarray(ruling.headline["values"], dtype=float)
    spread = bool(np.isfinite(values).all() and np.ptp(values) > 0)
    if expected is I and ruling.headline["higher_is_better"] is not None and spread:
        assert ruling.detectable is not None and ruling.detectable["power"] in (0.8, None)  # None: exact counts


# --- training claims --------------------------------------------------------------------------


def _history(val_loss, loss=None, seed: int = 0) -> dict:
    """A training history with the given validation losses and a training loss that keeps falling (1% noise)."""
    n = len(val_loss)
    noise = np.exp(np.random.default_rng(1000 + seed).normal(0, 0.01, n))
    loss = loss if loss is not None else list(0.15 / np.arange(1, n + 1) * noise)
    return {"val_loss": list(val_loss), "loss": loss, "accuracy": [0.99] * n, "val_accuracy": [0.98] * n}


def _u_shaped(seed: int) -> dict:
    """Like the notebook's basic CNN: lowest validation loss at epoch 3 of 10, then ~41% higher at epoch 10."""
    wobble = np.random.default_rng(seed).normal(0, 0.001, 10)
    return _history(0.0535 * (1 + 0.41 * ((np.arange(10) - 2.0) / 7) ** 2) + wobble, seed=seed)


MILD_RISES = (math.log(1.17) - 0.05, math.log(1.17), math.log(1.17) + 0.05)
"""Issue 28's mild case at 3 seeds: +17% in log on average (0.157), seed sd 0.05."""


def _mild_persistent(seed: int, rng: np.random.Generator | None = None) -> dict:
    """Issue 28's mild case: lowest at epoch 5 of 20, then a steady climb to +17% at epoch 20 (seeds 0-2 at
    MILD_RISES; with `rng`, a draw of sd 0.05 around log 1.17), with 2.5% noise each epoch: what a student's model
    without dropout does under the notebook's SGD."""
    noise = np.random.default_rng(100 + seed) if rng is None else rng
    rise, t = MILD_RISES[seed] if rng is None else math.log(1.17) + rng.normal(0, 0.05), np.arange(1, 21)
    curve = np.where(t <= 5, 0.045 * np.exp(0.5 * (5 - t) / 5), 0.045 * np.exp(rise * (t - 5) / 15))
    return _history(curve * np.exp(noise.normal(0, 0.025, 20)), seed=seed)


def _plateau(seed: int) -> dict:
    """A validation loss that falls for 7 epochs, then stays flat from epoch 8 to 20 with 2.5% noise only."""
    rng, t = np.random.default_rng(200 + seed), np.arange(1, 21)
    curve = np.where(t < 8, 0.04 * np.exp(0.6 * (8 - t) / 8), 0.04)
    return _history(curve * np.exp(rng.normal(0, 0.025, 20)), seed=seed)


def _monotone(seed: int) -> dict:
    """Like the notebook's improved CNN: validation loss still falling at the last epoch, with a small wobble."""
    wobble = np.random.default_rng(seed).normal(0, 0.0004, 20)
    return _history(0.027 + 0.07 / np.arange(1, 21) + wobble, seed=seed)


def _measures(histories: list[dict]) -> dict:
    """What both overfitting rules take from the curves (the claims' own measures) and the training-loss fall."""
    return {
        "rises": [training.val_loss_rise(h) for h in histories],
        "shares": [training.after_min_share(h) for h in histories],
        "climbs": [training.val_loss_climb(h) for h in histories],
        "epochs": max(len(h["val_loss"]) for h in histories),
        "falls": [training.train_loss_fall(h) for h in histories],
    }


WIDE, NARROW = [0.011, 0.0105, 0.012], [0.0030, 0.0020, 0.0035]
"""Train - val accuracy gaps of the notebook's basic CNN (the wide one) and of its improved CNN."""


def _verdicts(histories: list[dict], gaps: list[float], basic_gaps: list[float] = WIDE) -> tuple[Verdict, Verdict]:
    """overfitting-signature's and improved-no-overfit's verdicts on the same curves, beside the basic CNN's gaps."""
    m = _measures(histories)
    signature = training.overfitting_rule(m["rises"], m["shares"], m["climbs"], m["epochs"], m["falls"], gaps)
    no_overfit = training.no_overfit_rule(m["rises"], m["shares"], m["climbs"], m["epochs"], gaps, basic_gaps)
    return signature.verdict, no_overfit.verdict


def test_planted_curves_have_the_shapes_they_are_named_after():
    u = _measures([_u_shaped(s) for s in range(3)])
    assert all(math.log(1.3) < r < math.log(1.6) for r in u["rises"]) and all(0.6 <= s <= 0.8 for s in u["shares"])
    assert all(f > 0.5 for f in u["falls"]) and all(c > 0.2 for c in u["climbs"])
    mild = _measures([_mild_persistent(s) for s in range(3)])
    assert all(0.6 <= s <= 0.85 for s in mild["shares"]) and all(0.05 < c < 0.3 for c in mild["climbs"])
    assert np.mean(mild["rises"]) < training.MIN_RISE  # too small to count by its size alone
    flat = _measures([_plateau(s) for s in range(3)])
    assert all(abs(c) < 0.1 for c in flat["climbs"])
    assert all(r < 0.02 for r in _measures([_monotone(s) for s in range(3)])["rises"])


@pytest.mark.rule_of("overfitting-signature")
@pytest.mark.rule_of("improved-no-overfit")
@pytest.mark.parametrize(
    "curve, gaps, expected",
    [
        (_u_shaped, WIDE, (H, R)),  # the notebook's basic CNN: lowest at epoch 3 of 10, +41%
        (_mild_persistent, [0.0103, 0.0101, 0.0106], (H, R)),  # lowest at epoch 5 of 20, +17%: long, not far
        (_plateau, NARROW, (I, H)),  # flat from epoch 8: no climb; neither overfitting nor shown not to be
        (_monotone, NARROW, (R, H)),  # the notebook's improved CNN: still falling at epoch 20
    ],
    ids=["u-shaped", "mild-persistent", "plateau", "improved"],
)
def test_overfitting_rules_on_planted_curves(curve, gaps, expected):
    """The issue's four curves at 3 seeds: overfitting-signature holds for the U and the mild persistent climb and
    improved-no-overfit is refuted for both; the improved CNN's curve does not overfit. A plateau (flat and noisy
    from epoch 8) shows no climb, so "does not overfit" holds, and overfitting-signature stays inconclusive: its
    minimum falls anywhere in the flat stretch, so 3 seeds cannot show it late (refuted) or early."""
    assert _verdicts([curve(s) for s in range(3)], gaps) == expected


def test_the_mild_persistent_case_is_refuted_by_improved_no_overfit_with_power_above_70_percent():
    """The power at 3 seeds, over 400 planted draws of the mild case (issue 28's spread): improved-no-overfit
    refutes it in more than 70% (the README gives the number), and holds in none; at 21 seeds, where the final
    rise alone sat below MIN_RISE and certified "does not overfit", it refutes nearly always."""
    rng = np.random.default_rng(7)

    def outcomes(seeds: int, draws: int) -> list[Verdict]:
        histories = ([_mild_persistent(s, rng) for s in range(seeds)] for _ in range(draws))
        return [_verdicts(h, [0.0103] * seeds, [0.011] * seeds)[1] for h in histories]

    at_3 = outcomes(3, 400)
    assert at_3.count(R) / len(at_3) > 0.7 and H not in at_3
    at_21 = outcomes(21, 40)
    assert at_21.count(R) >= 38 and H not in at_21


@pytest.mark.rule_of("overfitting-signature")
@pytest.mark.parametrize(
    "rises, shares, climbs, falls, gaps, expected",
    [
        ([0.34, 0.30, 0.38], [0.7, 0.7, 0.8], [0.3, 0.25, 0.4], [1.6, 1.5, 1.7], [0.011, 0.010, 0.012], H),  # basic
        ([0.15, 0.18, 0.12], [0.75, 0.7, 0.75], [0.15, 0.2, 0.13], [1.6, 1.5, 1.7], [0.011, 0.010, 0.012], H),  # long
        ([0.34, 0.30, 0.38], [0.15, 0.1, 0.15], [0.3, 0.35, 0.28], [1.6, 1.5, 1.7], [0.011, 0.010, 0.012], H),  # far
        ([-0.02, -0.01, -0.03], [0.0, 0.05, 0.0], [0.0, -0.02, 0.0], [0.05, 0.04, 0.06], [0.011, 0.01, 0.012], R),
        ([0.34, 0.30, 0.38], [0.7, 0.7, 0.8], [-0.1, -0.12, -0.08], [1.6, 1.5, 1.7], [0.011, 0.010, 0.012], R),
        ([0.34, 0.30, 0.38], [0.7, 0.7, 0.8], [0.3, 0.25, 0.4], [1.6, 1.5, 1.7], [-0.0010, -0.0012, -0.0011], R),
        ([0.34, 0.30, 0.38], [0.7, 0.7, 0.8], [0.3, 0.25, 0.4], [-0.3, -0.2, -0.25], [0.011, 0.010, 0.012], R),
        ([0.40, 0.05, 0.25], [0.7, 0.1, 0.3], [0.3, -0.05, 0.1], [1.6, 1.5, 1.7], [0.011, 0.010, 0.012], I),
        ([0.34, 0.30, math.inf], [0.7, 0.7, 0.8], [0.3, 0.25, math.inf], [1.6, 1.5, -math.inf], WIDE, I),
    ],
    ids=[
        "far-and-long",
        "long-not-far",
        "far-not-long",
        "still-falling",
        "falls-after-its-minimum",
        "val-accuracy-better",
        "train-loss-rising",
        "mixed",
        "one-seed-diverged",
    ],
)
def test_overfitting_rule(rises, shares, climbs, falls, gaps, expected):
    _check(training.overfitting_rule(rises, shares, climbs, 20, falls, gaps), expected)


@pytest.mark.rule_of("improved-no-overfit")
@pytest.mark.parametrize(
    "rises, shares, climbs, gaps, expected",
    [
        ([-0.02, 0.01, -0.01], [0.0, 0.1, 0.05], [-0.03, 0.02, 0.0], [0.0030, 0.0020, 0.0035], H),  # the notebook's
        ([0.50, 0.45, 0.55], [0.7, 0.7, 0.8], [0.45, 0.4, 0.5], [0.010, 0.011, 0.0095], R),  # far and long
        ([0.15, 0.18, 0.12], [0.75, 0.7, 0.75], [0.15, 0.2, 0.13], [0.0030, 0.0020, 0.0035], R),  # long, not far
        ([0.06, 0.04, 0.05], [0.6, 0.5, 0.55], [0.0, -0.01, 0.01], [0.0030, 0.0020, 0.0035], H),  # a plateau
        ([-0.02, 0.01, -0.01], [0.0, 0.1, 0.05], [-0.03, 0.02, 0.0], [0.0110, 0.0104, 0.0121], I),  # gap as wide
        ([0.45, 0.5, 0.4], [0.05, 0.05, 0.05], [0.0, 0.0, 0.0], [0.0030, 0.0020, 0.0035], I),  # last epoch only
        ([0.30, -0.02, 0.12], [0.6, 0.0, 0.3], [0.2, -0.02, 0.1], [0.0030, 0.0020, 0.0035], I),  # seeds disagree
        ([0.02, 0.01, math.inf], [0.0, 0.05, 0.5], [0.0, 0.0, math.inf], [0.0030, 0.0020, 0.0035], I),  # diverged
    ],
    ids=["flat-and-narrower", "u-shaped", "mild-persistent", "plateau", "gap-not-narrower", "spike", "mixed", "nan"],
)
def test_no_overfit_rule(rises, shares, climbs, gaps, expected):
    _check(training.no_overfit_rule(rises, shares, climbs, 20, gaps, WIDE), expected)


@pytest.mark.rule_of("improved-no-overfit")
def test_the_first_positive_control_s_numbers_are_still_refuted():
    """tests/students/overfit.py's recorded curves (the control that chose the earlier rule: lowest at epochs 2, 2, 3
    of 20, final +75%, +104%, +47%) stay refuted; a control that chose a rule cannot validate it, so the README
    names a fresh one (tests/students/wide_adam.py) graded on seeds no rule saw."""
    rises, shares, climbs = [0.56, 0.71, 0.38], [0.9, 0.9, 0.85], [0.5, 0.6, 0.35]
    _check(training.no_overfit_rule(rises, shares, climbs, 20, [0.0110, 0.0104, 0.0121], WIDE), R)


def test_a_diverged_validation_loss_is_an_infinite_rise_in_every_measure():
    """One policy for a diverged run: a NaN or infinite loss counts as +inf, as stats.log_rise counts it for the
    batch claim, so the seed lies beyond every threshold on the rising side instead of making its claim NaN."""
    diverged = _history([0.06, 0.05, 0.045, 0.05, math.nan, math.nan], loss=[0.2, 0.1, 0.05, 0.04, math.nan, math.nan])
    assert training.val_loss_rise(diverged) == math.inf and training.val_loss_climb(diverged) == math.inf
    assert (
        training.after_min_share(diverged) == pytest.approx(3 / 6) and training.train_loss_fall(diverged) == -math.inf
    )
    assert log_rise(diverged["loss"]) == math.inf


def test_overfitting_thresholds_are_the_ones_the_rules_state():
    assert training.MIN_RISE == pytest.approx((math.log(0.0755 / 0.0535) + math.log(0.0286 / 0.0273)) / 2)
    assert math.expm1(training.MIN_RISE) == pytest.approx(0.216, abs=0.001)
    assert training.MIN_SHARE == pytest.approx((7 / 10 + 2 / 20) / 2)
    assert training.MIN_GAP == pytest.approx(math.sqrt(0.99 * 0.01 / 6000))
    for rule in (training.overfitting_rule, training.no_overfit_rule):
        doc = rule.__doc__
        assert (
            f"{training.MIN_RISE:.3f}" in doc
            and f"{training.MIN_GAP:.4f}" in doc
            and f"{training.MIN_SHARE:.1f}" in doc
        )


def test_a_share_of_whole_epochs_carries_its_rounding():
    """Three seeds lowest at the same epoch have no spread, but their share is known to one epoch only: its test
    adds that rounding (sd 1 / (epochs sqrt 12)) instead of falling back to the sign test's p >= 0.125."""
    curve = training.overfitting_curve([0.1] * 3, [0.75] * 3, [0.2, 0.15, 0.25], 20)
    share = curve.tests["far_or_long"].tests["after_min_share"]
    assert share.extra_se == pytest.approx(1 / (20 * math.sqrt(12))) and share.p_holds < 1e-6


def _power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Exact power of the one-sided one-sample t-test (noncentral t) for a true distance `effect` from the threshold."""
    return float(scipy_stats.nct.sf(scipy_stats.t.ppf(1 - alpha, n - 1), n - 1, effect / (sd / math.sqrt(n))))


def test_overfitting_rules_power_at_three_seeds_for_the_notebook_s_effects():
    """The notebook's two runs sit 0.149 in log either side of MIN_RISE (by construction); at 3 seeds the one-sided
    t-test decides each with at least 80% power while the seeds' sd of the log rise stays below 0.05, and with at
    least 45% at an sd of 0.08 (the README states the power at the spread the real runs show)."""
    effect = math.log(0.0755 / 0.0535) - training.MIN_RISE
    assert effect == pytest.approx(training.MIN_RISE - math.log(0.0286 / 0.0273)) and effect == pytest.approx(
        0.149, abs=1e-3
    )
    assert _power(effect, 0.05, 3) >= 0.8 and _power(effect, 0.08, 3) >= 0.45
    assert _power(effect, 0.05, 3) > _power(effect, 0.08, 3) > _power(effect, 0.2, 3)


@pytest.mark.rule_of("cnn-vs-mlp-accuracy")
@pytest.mark.parametrize(
    "cnn, fc, expected",
    [
        ([0.985, 0.986, 0.987], [0.975, 0.977, 0.976], H),
        ([0.975, 0.977, 0.976], [0.985, 0.986, 0.987], R),
        ([0.985, 0.976, 0.981], [0.980, 0.981, 0.979], I),
    ],
)
def test_cnn_beats_mlp_rule(cnn, fc, expected):
    _check(training.cnn_beats_mlp_rule(cnn, fc), expected)


DIVERGED = math.log(2.31 / 0.1)  # a loss back at chance (2.31) from a best of 0.1, as batch 16 did
STABLE = [-0.02, -0.03, -0.01]


@pytest.mark.rule_of("batch-small-unstable")
@pytest.mark.parametrize(
    "rise16, rise128, expected",
    [
        ([DIVERGED] * 3, STABLE, H),  # every seed diverged, all at the same value
        ([math.inf] * 3, STABLE, H),  # every seed diverged to NaN
        ([0.9, 1.2, DIVERGED], STABLE, H),  # every seed's loss at least doubled again
        (STABLE, [0.9, 1.2, 0.8], R),  # batch 128 the unstable one
        ([-0.02, -0.01, -0.03, -0.05, -0.02, -0.04], [-0.05, -0.04, -0.06, -0.03, -0.02, -0.05], R),  # 16 stable
        ([0.3, 0.5, 0.6], STABLE, I),  # rises short of a doubling (the notebook's batch 64 wobbled by 26%)
        ([DIVERGED, -0.02, 0.9], STABLE, I),  # 2 of 3: one seed more would decide
        (STABLE, STABLE, I),  # stable at both sizes: 3 seeds cannot refute it yet, 6 can
    ],
    ids=[
        "all-diverged-same-value",
        "all-nan",
        "all-doubled",
        "128-less-stable",
        "16-stable-6-seeds",
        "small-rises",
        "two-of-three",
        "both-stable-3-seeds",
    ],
)
def test_small_batch_unstable_rule(rise16, rise128, expected):
    _check(training.small_batch_unstable_rule(rise16, rise128), expected)


def _diverging(seed: int, to_chance: bool) -> list[float]:
    """A training loss that falls for 4 epochs, then (to_chance) climbs back to chance, 2.31, or goes NaN."""
    falling = list(0.15 / np.arange(1, 5) * (1 + 0.01 * seed))
    return falling + ([1.2, 2.31, 2.31, 2.31, 2.30, 2.31] if to_chance else [0.05, math.nan] + [math.nan] * 4)


@pytest.mark.rule_of("batch-small-unstable")
def test_small_batch_rule_decides_on_curves_that_all_diverged():
    """The issue's case, planted as curves: all three batch-16 runs diverged (two back to chance, one to NaN),
    batch 128's fell throughout; the uncapped measure keeps each diverged run's own value."""
    rise16 = [log_rise(_diverging(0, True)), log_rise(_diverging(1, True)), log_rise(_diverging(2, False))]
    rise128 = [log_rise(list(0.15 / np.arange(1, 11) * (1 + 0.01 * s))) for s in range(3)]
    assert rise16[0] == pytest.approx(math.log(2.31 / (0.15 / 4))) and rise16[2] == math.inf
    assert all(r < 0 for r in rise128)
    assert training.small_batch_unstable_rule(rise16, rise128).verdict is H


@pytest.mark.rule_of("batch-small-unstable")
def test_making_one_seed_more_unstable_never_weakens_the_verdict():
    """p is monotone in the evidence: from any planted rises, raising one batch-16 seed's rise (to a doubling,
    to chance, to NaN) never moves holds to inconclusive or refuted, nor inconclusive to refuted."""
    rng = np.random.default_rng(0)
    rank = {R: 0, I: 1, H: 2}
    for _ in range(300):
        n = int(rng.integers(3, 7))
        rise16, rise128 = list(rng.choice([-0.05, 0.4, 0.8, DIVERGED], n)), list(rng.choice([-0.05, 0.4, 0.9], n))
        before = training.small_batch_unstable_rule(rise16, rise128)
        seed = int(rng.integers(n))
        for more in (rise16[seed] + 0.1, math.log(2.0), DIVERGED, math.inf):
            raised = rise16[:seed] + [max(rise16[seed], more)] + rise16[seed + 1 :]
            after = training.small_batch_unstable_rule(raised, rise128)
            assert rank[after.verdict] >= rank[before.verdict], (rise16, raised, rise128)
            assert after.tests["rises_16_vs_128"].p_holds <= before.tests["rises_16_vs_128"].p_holds


@pytest.mark.rule_of("batch-small-unstable")
def test_no_recorded_part_reads_refuted_when_the_claim_is_inconclusive():
    """5 seeds, none doubling at either batch size: 0 of 5 against half the runs has p = 1/32, below its own alpha
    but not below the alpha/2 the rule refutes at, so the claim and every recorded part are inconclusive, and the
    report's test column says the level."""
    ruling = training.small_batch_unstable_rule([-0.02] * 5, [-0.03] * 5)
    recorded = ruling.recorded_tests()
    half = recorded["rises_16_vs_half"]
    assert ruling.verdict is I and half["p_refutes"] == pytest.approx(1 / 32)
    assert ruling.tests["rises_16_vs_half"].decision() is R  # alone, at its own alpha, it would read "refuted"
    assert (half["decision"], half["holds_at"], half["refutes_at"]) == ("inconclusive", None, 0.025)
    assert [t["decision"] for t in recorded.values()] == ["inconclusive", "inconclusive"]
    texts = [row["test"] for row in build.stat_rows(recorded)]
    assert "(refutes at < α/2 = 0.025) → inconclusive" in texts[1] and "cannot make the claim hold" in texts[1]
    assert not any("→ refuted" in t for t in texts)
    assert (
        training.small_batch_unstable_rule([-0.02] * 6, [-0.03] * 6).recorded_tests()["rises_16_vs_half"]["decision"]
        == "refuted"
    )  # 1/64 < 0.025: from 6 seeds on it refutes, and the claim with it


@pytest.mark.rule_of("improved-no-overfit")
def test_a_part_that_cannot_refute_is_recorded_so():
    """The gap comparison only withholds "holds": a gap wider than the basic CNN's reads inconclusive, not refuted;
    the final rise only withholds it too, and the curve only refutes, at alpha (the only part that can)."""
    rises, shares, climbs, wide = [-0.01, -0.02, -0.015], [0.0, 0.05, 0.0], [0.0, -0.02, 0.0], [0.011, 0.012, 0.0115]
    ruling = training.no_overfit_rule(rises, shares, climbs, 20, wide, [0.001, 0.0012, 0.0011])
    recorded = ruling.recorded_tests()
    gap, rise, curve = (recorded[n] for n in ("basic_minus_improved_gap", "val_loss_rise", "val_loss_curve"))
    assert ruling.verdict is I and ruling.tests["basic_minus_improved_gap"].decision() is R
    assert (gap["decision"], gap["refutes_at"], rise["refutes_at"]) == ("inconclusive", None, None)
    assert (curve["holds_at"], curve["refutes_at"]) == (None, 0.05)
    assert "(cannot refute) → inconclusive" in build.part_decision(gap)
    assert "cannot make the claim hold" in build.part_decision(curve)


def test_a_refuting_part_outweighs_parts_that_hold():
    """A curve that overfits refutes "does not overfit" even while the final rise is below MIN_RISE and the gap is
    narrower: the evidence against the claim is not outvoted by the parts that withhold "holds"."""
    rises, shares, climbs = [0.10, 0.12, 0.11], [0.75, 0.75, 0.7], [0.12, 0.15, 0.13]
    ruling = training.no_overfit_rule(rises, shares, climbs, 20, [0.003, 0.002, 0.0035], WIDE)
    assert ruling.tests["val_loss_rise"].decision() is H and ruling.verdict is R
    assert [t["decision"] for t in ruling.recorded_tests().values()] == ["holds", "refuted", "holds"]


def test_a_ruling_whose_verdict_disagrees_with_its_parts_is_not_recorded():
    refuted = training.small_batch_unstable_rule([-0.02] * 6, [-0.03] * 6)
    with pytest.raises(ValueError, match="disagrees with its parts"):
        dataclasses.replace(refuted, verdict=I).recorded_tests()
    with pytest.raises(ValueError, match="must name its tests"):
        dataclasses.replace(refuted, parts={})


@pytest.mark.rule_of("batch-128-beats-64")
@pytest.mark.parametrize(
    "t128, t64, v128, v64, expected",
    [
        ([0.989, 0.988, 0.990], [0.986, 0.985, 0.9865], [0.990, 0.989, 0.991], [0.987, 0.9865, 0.988], H),
        ([0.984, 0.982, 0.985], [0.989, 0.988, 0.990], [0.990, 0.989, 0.991], [0.987, 0.9865, 0.988], R),
        ([0.989, 0.988, 0.990], [0.986, 0.985, 0.9865], [0.990, 0.986, 0.988], [0.987, 0.9895, 0.988], I),
    ],
    ids=["both-favour-128", "test-favours-64", "val-undecided"],
)
def test_batch_128_rule(t128, t64, v128, v64, expected):
    _check(training.batch_128_rule(t128, t64, v128, v64), expected)


@pytest.mark.rule_of("improved-99")
@pytest.mark.parametrize(
    "accuracies, n_test, expected",
    [
        ([0.9925, 0.9923, 0.9928], 10_000, H),  # the three seeds, every one above 99%
        ([0.9978, 0.9980, 0.9982], 10_000, H),  # better than 99% is no refutation of a target
        ([0.9750, 0.9760, 0.9770], 10_000, R),  # below it
        ([0.9850, 0.9845, 0.9858], 10_000, I),  # at its lower edge
        ([0.9905, 0.9910, 0.9915], 200, I),  # a small test set cannot place it
    ],
    ids=["notebook-like", "well-above", "below", "at-edge", "small-test-set"],
)
def test_around_99_rule(accuracies, n_test, expected):
    ruling = training.around_99_rule(accuracies, n_test)
    _check(ruling, expected)
    assert ruling.headline["higher_is_better"] is True


def test_around_99_reference_is_nearly_normal_when_the_binomial_error_dominates():
    """Three accuracies 0.03 points apart on one 10k test set: the binomial error (at 0.985, the accuracy tested
    against) is most of the variance, so the Welch-Satterthwaite df is large and p is the normal's, not t(2)'s."""
    test = training.around_99_rule([0.9925, 0.9923, 0.9928], 10_000).tests["test_accuracy"]
    se = math.sqrt(np.var([0.9925, 0.9923, 0.9928], ddof=1) / 3 + 0.985 * 0.015 / 10_000)
    assert test.df > 30 and test.p_holds == pytest.approx(scipy_stats.norm.sf((0.992533 - 0.985) / se), rel=0.05)


@pytest.mark.rule_of("improved-99")
@pytest.mark.rule_of("ambiguities-rare")
def test_a_model_exactly_at_the_threshold_holds_no_more_often_than_alpha():
    """Issue 28's defect: with the binomial error taken at the observed mean, a model whose true accuracy is exactly
    0.985 "held" in 6.2% of sessions (ambiguities at exactly 5%: 5.6%). Taken at the threshold, 20,000 simulated
    sessions of 3 seeds (seed sd 0.001 around the truth, one shared 10k test set) hold at most at alpha."""
    rng = np.random.default_rng(28)

    def held(rule, truth: float, higher_is_better: bool) -> float:
        shared = rng.binomial(10_000, truth, 20_000) / 10_000
        seeds = shared[:, None] + rng.normal(0, 0.001, (20_000, 3))
        return float(np.mean([rule(list(v), 10_000).verdict is H for v in seeds]))

    assert held(training.around_99_rule, 0.985, True) <= 0.05 + 0.005
    assert held(analysis.ambiguities_rare_rule, 0.05, False) <= 0.05 + 0.005


# --- analysis claims ---------------------------------------------------------------------------


def _shape_row(model="improved", kernel=(3, 3, 1, 32), expected=(3, 3, 1, 32), bias=(32,), filters=32):
    return {
        "model": model,
        "seed": 0,
        "kernel": kernel,
        "bias": bias,
        "expected_kernel": expected,
        "kernel_size": (3, 3),
        "input_channels": 1,
        "filters": filters,
    }


@pytest.mark.rule_of("weight-shapes")
@pytest.mark.parametrize(
    "rows, expected",
    [
        ([_shape_row(), _shape_row("basic", (3, 3, 1, 16), (3, 3, 1, 16), (16,), 16)], H),
        ([_shape_row(), _shape_row("basic", (3, 3, 1, 32), (3, 3, 1, 16), (32,), 32)], R),  # wrong model's kernel
        ([_shape_row(bias=(16,))], R),
        ([], R),  # nothing checked proves nothing
    ],
)
def test_weight_shapes_rule(rows, expected):
    _check(analysis.weight_shapes_rule(rows), expected)


@pytest.mark.rule_of("feature-maps-are-filters")
@pytest.mark.parametrize(
    "shapes_ok, ratios, expected",
    [
        ([True, True], [0.02, 0.9], H),
        ([True, True], [0.02, 1.5], R),  # one element outside its rounding bound
        ([True, False], [0.02, 0.1], R),
        ([], [], R),
        ([True, True], [0.5, math.nan], I),  # a seed that measured nothing is no evidence
        ([True, True], [math.nan, 0.5], I),  # wherever it comes (Python's max skipped it unless first)
        ([True, True], [math.nan, 1.5], R),  # another seed still refutes
    ],
)
def test_feature_maps_rule(shapes_ok, ratios, expected):
    _check(analysis.feature_maps_rule(shapes_ok, ratios), expected)


@pytest.mark.rule_of("pooling-maps")
@pytest.mark.parametrize("differing, expected", [([0, 0, 0], H), ([0, 3, 0], R), ([0, -1], R), ([], R)])
def test_pooling_rule(differing, expected):
    _check(analysis.pooling_rule(differing), expected)


def _conv2_row(layer="Conv2D", shape=(5, 11, 11, 64), minimum=0.0):
    return {"seed": 0, "layer": layer, "images": 5, "shape": shape, "min": minimum, "zero_fraction": 0.5}


@pytest.mark.rule_of("deeper-layer-shape")
@pytest.mark.parametrize(
    "rows, expected",
    [
        ([_conv2_row(), _conv2_row()], H),
        ([_conv2_row(), _conv2_row(layer="MaxPooling2D")], R),
        ([_conv2_row(shape=(5, 13, 13, 64))], R),
        ([_conv2_row(minimum=-0.1)], R),
        ([_conv2_row(), _conv2_row(minimum=math.nan)], I),  # a seed that measured nothing is no evidence
        ([_conv2_row(minimum=math.nan), _conv2_row(minimum=-0.1)], R),
    ],
)
def test_deeper_layer_rule(rows, expected):
    _check(analysis.deeper_layer_rule(rows), expected)


@pytest.mark.rule_of("filters-detect-edges")
@pytest.mark.parametrize(
    "trained, initial, random, expected",
    [
        ([0.43, 0.45, 0.41], [0.25, 0.26, 0.24], [0.25, 0.26, 0.255], H),
        ([0.20, 0.21, 0.19], [0.25, 0.26, 0.24], [0.25, 0.26, 0.255], R),
        ([0.43, 0.45, 0.41], [0.25, 0.26, 0.24], [0.45, 0.40, 0.43], I),  # not above chance
    ],
    ids=["edge-like", "less-than-init", "random-as-good"],
)
def test_edge_rule(trained, initial, random, expected):
    _check(analysis.edge_rule(trained, initial, random), expected)


def _probabilities(p7s, p4s, others: float = 0.001):
    """Softmax rows with p(7) and p(4) as given, `others` on each of the 7 other wrong digits, the rest on 1."""
    rows = []
    for p7, p4 in zip(p7s, p4s, strict=True):
        p = np.full(10, others)
        p[7], p[4] = p7, p4
        p[1] = 1 - p.sum() + others
        rows.append(p)
    return np.array(rows)


SURE_IT_IS_1 = _probabilities([0.0006, 0.0008, 0.0005], [0.0004] * 3, others=0.0005 / 7)
"""The issue's case: the model is sure it is a 1, p(1) = 0.9985 (0.9983 to 0.9986 over the seeds)."""


def test_the_sure_it_is_1_case_plants_what_it_says():
    assert SURE_IT_IS_1[:, 1] == pytest.approx([0.9985] * 3, abs=3e-4) and SURE_IT_IS_1.sum(axis=1) == pytest.approx(
        [1] * 3
    )


@pytest.mark.rule_of("ambiguous-31727")
@pytest.mark.parametrize(
    "label, probabilities, expected",
    [
        (1, _probabilities([0.25, 0.20, 0.30], [0.01, 0.02, 0.01]), H),
        (1, _probabilities([0.01, 0.02, 0.01], [0.25, 0.20, 0.30]), R),  # the runner-up is a 4, not a 7
        (4, _probabilities([0.25, 0.20, 0.30], [0.01, 0.02, 0.01]), R),  # not labelled 1
        (1, SURE_IT_IS_1, R),  # the issue's: p(1) 0.9985
        (1, _probabilities([0.0006] * 3, [0.0004] * 3), I),  # identical seeds: the sign test's p = 0.125
        (1, _probabilities([0.05, 0.06, 0.04], [0.001, 0.001, 0.001]), R),  # 7 is second, but below chance (0.1)
        (1, _probabilities([0.25, 0.05, 0.30], [0.01, 0.20, 0.01]), I),  # seeds disagree
    ],
    ids=[
        "one-or-seven",
        "runner-up-4",
        "not-labelled-1",
        "sure-it-is-1",
        "identical-seeds",
        "seven-below-chance",
        "mixed",
    ],
)
def test_one_or_seven_rule(label, probabilities, expected):
    _check(analysis.one_or_seven_rule(label, probabilities), expected)


@pytest.mark.rule_of("ambiguities-rare")
@pytest.mark.parametrize(
    "fractions, expected",
    [
        ([0.020, 0.021, 0.019], H),
        ([0.090, 0.100, 0.095], R),
        ([0.045, 0.050, 0.055], I),
    ],
)
def test_ambiguities_rare_rule(fractions, expected):
    ruling = analysis.ambiguities_rare_rule(fractions, 10_000)
    _check(ruling, expected)
    assert ruling.headline["higher_is_better"] is False


@pytest.mark.rule_of("deeper-features-specific")
@pytest.mark.parametrize(
    "conv2, conv1, expected",
    [
        ([0.40, 0.42, 0.41], [0.20, 0.21, 0.19], H),
        ([0.20, 0.21, 0.19], [0.40, 0.42, 0.41], R),
        ([0.40, 0.20, 0.31], [0.30, 0.31, 0.29], I),
    ],
)
def test_deeper_specific_rule(conv2, conv1, expected):
    _check(analysis.deeper_specific_rule(conv2, conv1), expected)


# --- architecture claims (exact identities: holds or refuted, never inconclusive) --------------


@pytest.fixture(scope="module")
def tables() -> dict:
    return {
        "basic": models.layer_table(models.basic_cnn()),
        "same": models.layer_table(models.basic_cnn("same")),
        "mlp": models.layer_table(models.mlp()),
        "improved": models.layer_table(models.improved_cnn()),
    }


def _with(table: list[dict], index: int, **changes) -> list[dict]:
    return [{**row, **changes} if i == index else row for i, row in enumerate(table)]


@pytest.mark.rule_of("arch-basic-param-counts")
def test_basic_summary_rule(tables):
    _check(architecture.basic_summary_rule(tables["basic"]), H)
    _check(architecture.basic_summary_rule(_with(tables["basic"], 4, params=270_501)), R)
    _check(architecture.basic_summary_rule(_with(tables["basic"], 3, output_shape=[3136])), R)


@pytest.mark.rule_of("arch-same-padding")
def test_same_padding_rule(tables):
    _check(architecture.same_padding_rule(tables["basic"], tables["same"]), H)
    _check(architecture.same_padding_rule(tables["basic"], tables["basic"]), R)  # 'same' that changed nothing


@pytest.mark.rule_of("arch-conv-params-per-filter")
def test_params_per_filter_rule():
    _check(architecture.params_per_filter_rule((3, 3, 1, 16), (16,), 160), H)
    _check(architecture.params_per_filter_rule((5, 5, 1, 16), (16,), 416), R)
    _check(architecture.params_per_filter_rule((3, 3, 1, 16), (16,), 144), R)  # a layer without biases


@pytest.mark.rule_of("arch-dense-bottleneck")
def test_bottleneck_rule(tables):
    _check(architecture.bottleneck_rule(tables["basic"]), H)
    _check(architecture.bottleneck_rule(_with(tables["basic"], 0, params=400_000)), R)  # the conv is largest


@pytest.mark.rule_of("arch-vs-mlp")
def test_largest_layer_rule(tables):
    _check(architecture.largest_layer_rule(tables["basic"], tables["mlp"]), H)
    _check(architecture.largest_layer_rule(tables["basic"], _with(tables["mlp"], 2, params=90_000)), R)
    _check(architecture.largest_layer_rule(tables["basic"], _with(tables["mlp"], 1, params=300_000)), R)


@pytest.mark.rule_of("arch-improved-param-counts")
def test_improved_summary_rule(tables):
    basic_total = sum(row["params"] for row in tables["basic"])
    _check(architecture.improved_summary_rule(tables["improved"], basic_total), H)
    _check(architecture.improved_summary_rule(tables["improved"], 200_000), R)  # no fewer than the basic CNN


# --- the meta-test ----------------------------------------------------------------------------


def _marker_ids(path: Path, marker: str) -> set[str]:
    """First string arguments of every `pytest.mark.<marker>(...)` call in a Python file."""
    ids = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == marker
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "mark"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            ids.add(node.args[0].value)
    return ids


def claims_without_rule_test(root: Path) -> list[str]:
    """Claim ids under root/claims that no `rule_of` marker under root/tests names."""
    claims = set().union(*(_marker_ids(p, "claim") for p in (root / "claims").glob("*.py")))
    ruled = set().union(*(_marker_ids(p, "rule_of") for p in (root / "tests").glob("*.py")))
    return sorted(claims - ruled)


def test_every_claim_has_a_rule_test():
    assert len(_marker_ids(REPO / "claims" / "test_training.py", "claim")) >= 7  # the parser sees the claims
    assert claims_without_rule_test(REPO) == []


VERDICT_NAMES = {"H": H, "R": R, "I": I, "HOLDS": H, "REFUTED": R, "INCONCLUSIVE": I}
RULE_MODULES = (training, analysis, architecture)


def reachable(doc: str) -> set[Verdict]:
    """The verdicts a rule's docstring says it can reach: an exact identity holds or is refuted; otherwise
    holds, refuted where it says when it refutes, inconclusive unless it says "never inconclusive"."""
    text = " ".join(doc.lower().split())
    found = {H, R} if "exact identity" in text or "refut" in text else {H}
    return found | ({I} if "inconclusive" in text and "never inconclusive" not in text else set())


def _verdict(node: ast.AST) -> Verdict | None:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return VERDICT_NAMES.get(name)


def _expected_verdicts(function: ast.FunctionDef) -> set[Verdict]:
    """Verdicts a rule test asserts: in its parametrize cases, as `_check(ruling, V)`, or as `x.verdict is V`."""
    found: set[Verdict] = set()
    for node in function.decorator_list:
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize":
            found |= {v for sub in ast.walk(node) if (v := _verdict(sub))}
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_check" and len(node.args) == 2:
            found |= {v for v in [_verdict(node.args[1])] if v}
        if isinstance(node, ast.Compare) and getattr(node.left, "attr", "") == "verdict":
            found |= {v for c in node.comparators if (v := _verdict(c))}
    return found


def rule_tests(root: Path) -> dict[str, tuple[set[Verdict], set[str]]]:
    """Per claim id: the verdicts its rule tests under root/tests assert, and the rules (`*_rule`) they call."""
    found: dict[str, tuple[set[Verdict], set[str]]] = {}
    for path in (root / "tests").glob("*.py"):
        for function in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(function, ast.FunctionDef):
                continue
            ids = [
                d.args[0].value
                for d in function.decorator_list
                if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "rule_of" and d.args
            ]
            called = {
                name
                for node in ast.walk(function)
                if isinstance(node, ast.Call)
                and (name := getattr(node.func, "attr", getattr(node.func, "id", ""))).endswith("_rule")
            }
            for claim_id in ids:
                verdicts, rules = found.setdefault(claim_id, (set(), set()))
                verdicts |= _expected_verdicts(function)
                rules |= called
    return found


def test_rule_tests_reach_every_verdict_their_rules_state():
    """Each claim's rule tests assert every verdict its rule's docstring says the rule can reach, and every rule
    can be refuted; a rule test that calls no rule, or a rule whose docstring says nothing, fails here."""
    for claim_id, (verdicts, called) in sorted(rule_tests(REPO).items()):
        rules = [getattr(m, name) for name in called for m in RULE_MODULES if hasattr(m, name)]
        assert rules, f"{claim_id}: its rule tests call no rule of claims/"
        stated = set().union(*(reachable(r.__doc__ or "") for r in rules))
        assert R in stated, f"{claim_id}: no rule of it says when it is refuted"
        assert stated <= verdicts, f"{claim_id}: rule tests never reach {sorted(v.value for v in stated - verdicts)}"


def test_reachable_reads_what_docstrings_say():
    assert reachable("Exact identity (never inconclusive): ...") == {H, R}
    assert reachable("holds if above, refuted if below, else inconclusive") == {H, R, I}
    assert reachable("holds if above, else inconclusive") == {H, I}


PLANTED_CLAIM = """
import pytest

@pytest.mark.claim("known")
def test_known(claim): ...

@pytest.mark.claim("planted-without-rule", question="Q?")
def test_planted(claim): ...
"""

PLANTED_RULE_TEST = """
import pytest

@pytest.mark.rule_of("known")
def test_rule(): ...
"""


@pytest.mark.slow
def test_meta_test_fails_on_a_planted_claim_without_rule_test(pytester: pytest.Pytester):
    pytester.mkdir("claims").joinpath("test_planted.py").write_text(PLANTED_CLAIM)
    pytester.mkdir("tests").joinpath("test_planted_rules.py").write_text(PLANTED_RULE_TEST)
    pytester.makepyfile(
        test_meta=f"""
from pathlib import Path
import sys
sys.path.insert(0, {str(REPO)!r})
from tests.test_rules import claims_without_rule_test

def test_every_claim_has_a_rule_test():
    assert claims_without_rule_test(Path({str(pytester.path)!r})) == []
"""
    )
    result = pytester.runpytest_subprocess("test_meta.py", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*planted-without-rule*"])
    assert "'known'" not in result.stdout.str()
