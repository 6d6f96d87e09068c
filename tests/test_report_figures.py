"""The figures of the claims decided on curves and counts say what the verdict beside them was decided on."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from claims.test_training import FACTOR_5_OR_SO, MUCH_SLOWER
from fixtures import stats
from fixtures.records import ClaimRecord, Detectable
from reports import build, figures
from tests.planted import as_evidence, make_evidence


def _with_trajectory(data: dict) -> dict:
    """The planted overfitting claim, as the suite records it now: per seed, the earlier minimum and the rise."""
    claim = next(c for c in data["claims"] if c["id"] == "overfitting-signature")
    runs = {r["key"]: r for r in data["runs"]}
    per_seed = []
    for key in claim["runs"]:
        val = runs[key]["history"]["val_loss"]
        earlier = min(range(len(val) - 1), key=val.__getitem__)
        per_seed.append(
            {
                "earlier_min_epoch": earlier + 1,
                "earlier_min_val_loss": val[earlier],
                "final_val_loss": val[-1],
                "val_loss_rise": math.log(val[-1] / val[earlier]),
            }
        )
    claim["measured"].update(per_seed=per_seed, min_rise=0.195)
    return data


def test_training_curve_caption_gives_each_seed_s_rise_and_the_verdict(tmp_path: Path) -> None:
    data, _ = make_evidence()
    drawn = figures.training_curves(as_evidence(_with_trajectory(data)), tmp_path)
    basic = next(f for f in drawn if "basic_cnn" in f.src)
    claim = next(c for c in data["claims"] if c["id"] == "overfitting-signature")
    rises = [m["val_loss_rise"] for m in claim["measured"]["per_seed"]]
    assert all(f"{math.expm1(r):+.1%}" in basic.caption for r in rises)
    assert "overfitting-signature compares with +21.5% (val_loss_rise)" in basic.caption
    assert basic.caption.endswith("Verdict: known refutation.")
    assert (tmp_path / basic.src).stat().st_size > 1000


def test_older_evidence_without_the_trajectory_still_draws(tmp_path: Path) -> None:
    data, _ = make_evidence()
    drawn = figures.training_curves(as_evidence(data), tmp_path)
    assert len(drawn) == 2 and all("arrows" not in f.caption for f in drawn)


def test_instability_figure_counts_the_seeds_the_rule_counts(tmp_path: Path) -> None:
    data, _ = make_evidence()
    claim = next(c for c in data["claims"] if c["id"] == "batch-small-unstable")
    claim["measured"] = {
        "instability": {"16": [3.1, math.inf, 1.7], "32": [0.9, 0.7, 0.2], "64": [0.2, -0.1, 0.1], "128": [-0.2] * 3},
        "risen_from": math.log(2),
    }
    drawn = [f for f in figures.batch_size(as_evidence(data), tmp_path) if f.src == "batch-instability.png"]
    claim["statistics"] = {
        "rises_16_vs_128": {"p_holds": 1.0, "p_refutes": 0.001, "decision": "refuted", "holds_at": 0.05},
        "rises_16_vs_half": {"p_holds": 0.01, "p_refutes": 1.0, "decision": "inconclusive", "holds_at": None},
    }
    for part in claim["statistics"].values():
        part["refutes_at"] = 0.025
    drawn = [f for f in figures.batch_size(as_evidence(data), tmp_path) if f.src == "batch-instability.png"]
    assert len(drawn) == 1 and "at batch 16 against those at 128 (rises_16_vs_128) and against half" in drawn[0].caption
    assert (
        "rises_16_vs_128 refuted, rises_16_vs_half inconclusive (refutes only). Verdict: refuted." in drawn[0].caption
    )


def test_a_count_test_s_detectable_text_claims_no_power() -> None:
    text = build.detectable(ClaimRecord("c", seeds=[0, 1, 2], detectable=Detectable(1.0, 5, 0.67, power=None)))
    assert text.startswith("At 3 seeds the smallest difference in rates that decides is 1") and "power" not in text
    rows = build.stat_rows(
        {
            "rises": {
                "mean": 1.0,
                "n": 3,
                "p_holds": 0.016,
                "p_refutes": 1.0,
                "method": "m",
                "alpha": 0.05,
                "decision": "holds",
                "holds_at": 0.05,
                "refutes_at": 0.025,
            }
        }
    )
    assert rows[0]["test"] == (
        "m: p(holds) = 0.016 (holds needs < α = 0.05), p(refuted) = 1 (refutes at < α/2 = 0.025) → holds"
    )


def test_a_test_recorded_without_the_rule_s_levels_says_its_decision_is_its_own() -> None:
    """Evidence from before the levels were recorded: the test's decision alone, labelled so, not as the rule's."""
    old = {"mean": 0.0, "n": 5, "p_holds": 1.0, "p_refutes": 1 / 32, "method": "m", "alpha": 0.05}
    (row,) = build.stat_rows({"rises_16_vs_half": {**old, "decision": "refuted"}})
    assert "alone, at its own α = 0.05 → refuted" in row["test"] and "see the claim's verdict" in row["test"]


def _timing_claim(claim_id: str, look: stats.RatioTest, measured: dict, measure: str) -> dict:
    """A timing claim as the suite records it: what it measured, the rule's measure and its last look."""
    return {
        "id": claim_id,
        "verdict": look.decision().value,
        "known_refutation": None,
        "measured": measured,
        "headline": {"name": measure, "values": [], "higher_is_better": None, "text": measure},
        "looks": [look.look()],
    }


def _gpu_speedup(ratios: list[float]) -> dict:
    """A gpu-speedup claim: the rounds' ratios, the threshold (the band's lower edge), the band and the last look."""
    measured = {
        "cpu_over_gpu_ratio": ratios,
        "threshold": FACTOR_5_OR_SO[0],
        "band": list(FACTOR_5_OR_SO),
        "wall_s_per_epoch": {"gpu": [1.0] * len(ratios), "cpu": ratios},
        "device": {"cpu": "AMD EPYC test", "gpus": ["NVIDIA H200"]},
    }
    look = stats.ratio_test(ratios, FACTOR_5_OR_SO[0], 0.05 / 3)
    return _timing_claim("gpu-speedup", look, measured, "CPU/GPU wall time per training step")


def _cnn_vs_mlp_time(ratios: list[float]) -> dict:
    """A cnn-vs-mlp-time claim: the rounds' CPU-time ratios, the threshold, the last look and the wall times the
    claim records beside its rule."""
    measured = {
        "s_per_epoch": {"basic_cnn": [5.0] * len(ratios), "mlp": [5.0 / r for r in ratios]},
        "cpu_ratio": ratios,
        "wall_ratio": [9.0] * len(ratios),
        "threshold": MUCH_SLOWER,
        "device": {"cpu": "Intel test", "gpus": []},
    }
    look = stats.ratio_test(ratios, MUCH_SLOWER, 0.05 / 3)
    return _timing_claim("cnn-vs-mlp-time", look, measured, "CNN/MLP CPU time per training step")


@pytest.mark.parametrize(
    "plant, ratios, verdict, region",
    [
        (_gpu_speedup, [4.1, 4.6, 3.9, 4.8, 4.3], "holds", 'green: above 3.16, "divided by a factor 5 or so"'),
        (_gpu_speedup, [19.0, 21.5, 20.2, 22.1, 18.7], "holds", "green: above 3.16"),
        (_gpu_speedup, [1.9, 2.1, 2.0, 2.2, 1.8], "refuted", "[3.16, 7.07] (FACTOR_5_OR_SO)"),
        (_cnn_vs_mlp_time, [3.7, 3.1, 3.5, 2.8, 3.5], "holds", 'green: above 2, "much slower" read as more than 2'),
        (_cnn_vs_mlp_time, [1.3, 1.5, 1.2, 1.4, 1.35], "refuted", 'green: above 2, "much slower"'),
    ],
)
def test_timing_figure_shows_the_ratio_interval_the_rule_holds_against_its_region(
    tmp_path: Path, plant: Callable[[list[float]], dict], ratios: list[float], verdict: str, region: str
) -> None:
    """The figure draws what the timing claim decides on (per-round ratios, the region the rule holds the last
    look's interval against, that interval), and its caption names the rule's measure, the region's source, the
    interval's level and the claim's verdict, which the look's interval agrees with."""
    data, _ = make_evidence()
    claim = plant(ratios)
    data["claims"] = [c for c in data["claims"] if c["id"] != claim["id"]] + [claim]
    (drawn,) = [f for f in figures.cnn_vs_mlp(as_evidence(data), tmp_path) if f.src == f"{claim['id']}.png"]
    look, low, high = claim["looks"][0], claim["measured"]["threshold"], math.inf
    inside, outside = low < look["ci_low"] and look["ci_high"] < high, look["ci_high"] < low or look["ci_low"] > high
    assert claim["verdict"] == verdict and (inside if verdict == "holds" else outside)
    assert f"Black: each round's {claim['headline']['name']} ratio" in drawn.caption
    assert f"{look['mean']:.2f} and its student-t 98.3% on log ratios [{look['ci_low']:.2f}, " in drawn.caption
    assert f"{look['ci_high']:.2f}] after 5 rounds, at α = 0.0167" in drawn.caption
    assert region in drawn.caption and drawn.caption.endswith(f"Verdict: {verdict}.")
    assert claim["id"] == "gpu-speedup" or "wall" not in drawn.caption  # its wall-time ratio is no part of its rule
    assert (tmp_path / drawn.src).stat().st_size > 1000


def test_overfitting_caption_names_every_part_the_verdict_decided_on(tmp_path: Path) -> None:
    """The rise is one of three parts: the caption gives each part's decision as the rule takes it, so a rise that
    holds beside a gap that does not cannot read as the verdict."""
    data, _ = make_evidence()
    claim = next(c for c in data["claims"] if c["id"] == "overfitting-signature")
    part = {"mean": 0.3, "n": 3, "p_holds": 0.01, "p_refutes": 0.99, "alpha": 0.05, "holds_at": 0.05}
    claim["statistics"] = {
        "val_loss_rise": {**part, "decision": "holds", "refutes_at": 0.05 / 3},
        "train_loss_fall": {**part, "decision": "holds", "refutes_at": 0.05 / 3},
        "train_minus_val_accuracy": {**part, "p_holds": 0.4, "decision": "inconclusive", "refutes_at": 0.05 / 3},
    }
    claim.update(verdict="inconclusive", known_refutation=None)
    basic = next(f for f in figures.training_curves(as_evidence(_with_trajectory(data)), tmp_path) if "basic" in f.src)
    assert (
        "val_loss_rise holds, train_loss_fall holds, train_minus_val_accuracy inconclusive. Verdict: inconclusive."
        in basic.caption
    )
