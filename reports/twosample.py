"""The one two-sample test the reports use to tell a real difference from seed noise (matrix and nightly diff)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from fixtures.records import ClaimRecord

ALPHA = 0.05
RULE = (
    f"Welch's two-sample t-test (unequal variances), two-sided, α = {ALPHA}, on the claims' per-seed "
    "headline values; n/a when either side has fewer than 2 finite values or the headlines name different quantities"
)


@dataclass(frozen=True)
class TwoSample:
    """Welch's t-test of two sets of per-seed values; `p` is None when the test does not apply."""

    n_a: int
    n_b: int
    statistic: float | None = None
    p: float | None = None
    reason: str = ""

    @property
    def applicable(self) -> bool:
        return self.p is not None

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA

    def text(self) -> str:
        """One short phrase: "n/a (why)", or Welch's t and p with the conclusion."""
        if self.p is None:
            return f"n/a ({self.reason})"
        return (
            f"Welch t = {self.statistic:.3g}, p = {self.p:.3g}: "
            f"{'differ' if self.significant else 'within noise'} (n = {self.n_a} vs {self.n_b})"
        )


def welch(a: list[float] | None, b: list[float] | None) -> TwoSample:
    """Two-sided Welch t-test; two constant samples differ exactly when their values differ (p 0 or 1)."""
    xa = np.array([v for v in a or [] if _finite(v)], dtype=float)
    xb = np.array([v for v in b or [] if _finite(v)], dtype=float)
    if len(xa) < 2 or len(xb) < 2:
        return TwoSample(len(xa), len(xb), reason="fewer than 2 values")
    if np.ptp(xa) == 0 and np.ptp(xb) == 0:
        same = xa[0] == xb[0]
        return TwoSample(
            len(xa), len(xb), 0.0 if same else math.copysign(math.inf, xa[0] - xb[0]), 1.0 if same else 0.0
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's precision note for nearly identical samples
        result = stats.ttest_ind(xa, xb, equal_var=False)
    return TwoSample(len(xa), len(xb), float(result.statistic), float(result.pvalue))


def headline_test(a: ClaimRecord | None, b: ClaimRecord | None) -> TwoSample:
    """Welch's test of two claims' headline values; n/a when either lacks one or they measure different things."""
    ha, hb = a.headline if a else None, b.headline if b else None
    va, vb = ha.values if ha else [], hb.values if hb else []
    if ha is None or hb is None:
        return TwoSample(len(va), len(vb), reason="no headline recorded")
    if ha.name != hb.name:
        return TwoSample(len(va), len(vb), reason=f"different quantities: {ha.name} vs {hb.name}")
    return welch(va, vb)


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
