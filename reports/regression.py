"""What changed between a baseline evidence file and the current one (for nightly comparisons)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from fixtures.records import RunRecord
from reports import twosample
from reports.evidence import Evidence, display_verdict

SLOWDOWN = 0.20
STAT_RULE = (
    "a statistic moved when the interval it records now and in the baseline do not overlap (for comparisons: each "
    "of a, b and their difference); each is compared at its own recorded level (its ci_method: 95% for a plain "
    "summary, (1 - 2α) for a rule's one-sided test, (1 - α) on log ratios for a timing look); a count test (exact "
    "test on how many seeds an event happened to) records no interval and is not compared here: a change in its "
    "verdict is, by the verdict rule"
)
VERDICT_RULE = (
    f"a verdict change is significant when baseline and now differ by {twosample.RULE}; "
    "a change the test cannot address (n/a) counts as significant, since nothing shows it to be noise; "
    "otherwise it is within noise"
)
TIME_RULE = (
    f"a run regressed when its seconds per epoch grew by more than {SLOWDOWN:.0%} "
    "(runs matched by model, config, batch size, epochs and seed)"
)


@dataclass(frozen=True)
class VerdictChange:
    claim_id: str
    before: str
    after: str
    reason_before: str | None
    reason_after: str | None
    test: twosample.TwoSample

    @property
    def significant(self) -> bool:
        """A change is within noise only when Welch's test ran on both sides' values and found no difference."""
        return self.test.significant or not self.test.applicable


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    method: str  # the recorded ci_method: which interval, at which level


@dataclass(frozen=True)
class StatChange:
    claim_id: str
    statistic: str
    before: Interval
    after: Interval


@dataclass(frozen=True)
class RunSlowdown:
    label: str
    before: float
    after: float

    @property
    def ratio(self) -> float:
        return self.after / self.before


@dataclass(frozen=True)
class VersionChange:
    name: str
    before: str | None
    after: str | None


@dataclass
class Changes:
    """Everything that differs, each list empty when nothing did."""

    verdicts: list[VerdictChange] = field(default_factory=list)
    statistics: list[StatChange] = field(default_factory=list)
    slower_runs: list[RunSlowdown] = field(default_factory=list)
    versions: list[VersionChange] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    not_rerun: list[str] = field(default_factory=list)

    @property
    def significant(self) -> list[VerdictChange]:
        return [v for v in self.verdicts if v.significant]

    @property
    def within_noise(self) -> list[VerdictChange]:
        return [v for v in self.verdicts if not v.significant]


def compare(baseline: Evidence, current: Evidence) -> Changes:
    """Verdict changes (significant or within noise), statistics that moved beyond their uncertainty, slower runs
    and new library versions. Current claims kept from before its newest session are listed, not compared."""
    before = {c.id: c for c in baseline.claims}
    after = {c.id: c for c in current.claims if not current.is_older(c)}
    changes = Changes(
        added=[i for i in after if i not in before],
        removed=[i for i in before if current.claim(i) is None],
        not_rerun=[c.id for c in current.claims if current.is_older(c)],
    )
    for cid in (i for i in after if i in before):
        b, a = before[cid], after[cid]
        if (display_verdict(b), b.known_refutation) != (display_verdict(a), a.known_refutation):
            changes.verdicts.append(
                VerdictChange(
                    cid,
                    display_verdict(b),
                    display_verdict(a),
                    b.known_refutation,
                    a.known_refutation,
                    twosample.headline_test(b, a),
                )
            )
        changes.statistics += _moved(cid, b.statistics, a.statistics)
    old_runs = {_run_identity(r): r for r in baseline.runs}
    for run in current.runs:
        old = old_runs.get(_run_identity(run))
        t0, t1 = old.s_per_epoch if old else None, run.s_per_epoch
        if _finite(t0, t1) and t0 > 0 and t1 > t0 * (1 + SLOWDOWN):
            changes.slower_runs.append(RunSlowdown(run.label, t0, t1))
    v0, v1 = baseline.session.versions or {}, current.session.versions or {}
    changes.versions = [
        VersionChange(k, v0.get(k), v1.get(k)) for k in sorted(v0.keys() | v1.keys()) if v0.get(k) != v1.get(k)
    ]
    return changes


def _moved(claim_id: str, before: dict, after: dict) -> list[StatChange]:
    moved = []
    for name in (n for n in after if n in before):
        for part, b, a in _summaries(name, before[name], after[name]):
            i0, i1 = (Interval(x["mean"], x["ci_low"], x["ci_high"], x.get("ci_method") or "?") for x in (b, a))
            if _finite(i0.low, i0.high, i1.low, i1.high) and (i1.low > i0.high or i1.high < i0.low):
                moved.append(StatChange(claim_id, part, i0, i1))
    return moved


def _summaries(name: str, before: dict, after: dict) -> list[tuple[str, dict, dict]]:
    """Pairs of Summary dicts to compare: the entry itself, or a Comparison's a, b and diff."""
    if all(k in before and k in after for k in ("mean", "ci_low", "ci_high")):
        return [(name, before, after)]
    return [
        (f"{name}.{p}", before[p], after[p])
        for p in ("a", "b", "diff")
        if isinstance(before.get(p), dict)
        and isinstance(after.get(p), dict)
        and all(k in before[p] and k in after[p] for k in ("mean", "ci_low", "ci_high"))
    ]


def _run_identity(run: RunRecord) -> tuple:
    return run.model, json.dumps(run.model_config, sort_keys=True), run.batch_size, run.epochs, run.seed


def _finite(*xs: object) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)
