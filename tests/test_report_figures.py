"""The figures of the claims decided on curves and counts say what the verdict beside them was decided on."""

from __future__ import annotations

import math
from pathlib import Path

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
    assert "overfitting-signature compares with +21.5%: known refutation" in basic.caption
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
    assert (
        len(drawn) == 1
        and "counts the seeds above the dashed line at batch 16 against 128: refuted" in drawn[0].caption
    )


def test_a_count_test_s_detectable_text_claims_no_power() -> None:
    text = build.detectable(
        {"seeds": [0, 1, 2], "detectable": {"effect": 1.0, "seeds_needed": 5, "observed": 0.67, "power": None}}
    )
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
