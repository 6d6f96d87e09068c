"""`--seeds 1`, the cheap check of a class run: every rule over seeds is inconclusive with its numbers recorded,
never an exception, while exact facts still decide."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from claims import test_analysis as analysis
from claims import test_training as training
from fixtures import stats
from fixtures.claim import Verdict, sequential
from fixtures.plugin import seed_option

ONE_SEED_RULES = {
    "overfitting-signature": lambda: training.overfitting_rule([0.34], [0.7], [0.3], 10, [1.6], [0.011]),
    "cnn-vs-mlp-accuracy": lambda: training.cnn_beats_mlp_rule([0.986], [0.976]),
    "batch-small-unstable": lambda: training.small_batch_unstable_rule([3.1], [-0.02]),
    "batch-128-beats-64": lambda: training.batch_128_rule([0.989], [0.986], [0.990], [0.987]),
    "improved-99": lambda: training.around_99_rule([0.991], 10_000),
    "improved-no-overfit": lambda: training.no_overfit_rule([-0.01], [0.0], [0.0], 20, [0.003], [0.011]),
    "filters-detect-edges": lambda: analysis.edge_rule([0.43], [0.25], [0.25]),
    "ambiguous-31727": lambda: analysis.one_or_seven_rule(
        1, np.array([[0.001] + [0.7] + [0.001] * 5 + [0.29] + [0.001] * 2])
    ),
    "ambiguities-rare": lambda: analysis.ambiguities_rare_rule([0.02], 10_000),
    "deeper-features-specific": lambda: analysis.deeper_specific_rule([0.40], [0.20]),
}


def test_seeds_option_accepts_one() -> None:
    assert seed_option("1") == 1 and seed_option("auto") == "auto"
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
        seed_option("0")


@pytest.mark.parametrize("claim_id", ONE_SEED_RULES)
def test_one_seed_is_inconclusive_with_its_headline(claim_id: str) -> None:
    ruling = ONE_SEED_RULES[claim_id]()
    assert ruling.verdict is Verdict.INCONCLUSIVE, ruling.headline["text"]
    assert len(ruling.headline["values"]) == 1 and ruling.headline["text"]
    assert ruling.detectable is None  # no spread: nothing to say about power


def test_one_seed_statistics_do_not_raise() -> None:
    test = stats.one_sided([0.99], 0.985)
    assert (
        test.decision() is Verdict.INCONCLUSIVE
        and test.method == "none (one seed)"
        and test.ci_low == test.ci_high == 0.99
    )
    comparison = stats.compare([0.99], [0.98])
    assert comparison.decision() is Verdict.INCONCLUSIVE and comparison.diff.n == 1 and comparison.p_a_better == 1.0
    assert stats.summarize([0.5]).to_dict()["sd"] == 0.0


def test_one_look_at_one_seed() -> None:
    seeds, measured, ruling, looks = sequential(
        lambda s: [0.011] * len(s), lambda m, alpha: training.overfitting_rule(m, m, m, 10, m, m, alpha), [(1, 0.05)]
    )
    assert seeds == [0] and ruling.verdict is Verdict.INCONCLUSIVE and [look["n"] for look in looks] == [1]


def test_exact_facts_still_decide_at_one_seed() -> None:
    assert analysis.pooling_rule([0]).verdict is Verdict.HOLDS
    assert analysis.pooling_rule([3]).verdict is Verdict.REFUTED
    assert analysis.one_or_seven_rule(4, np.full((1, 10), 0.1)).verdict is Verdict.REFUTED  # labelled 4: a fact
