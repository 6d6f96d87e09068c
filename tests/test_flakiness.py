"""The flakiness check fails on a claim whose verdict changes between reruns, and only then."""

from __future__ import annotations

import pytest

from fixtures.records import ClaimRecord
from reports import flakiness
from tests.planted import claims_project

STEADY = """
import pytest
from fixtures.claim import Verdict
from tests.planted import planted

@pytest.mark.claim("steady-holds")
def test_holds(claim):
    claim.check(planted(Verdict.HOLDS), summary="ratio 3.1")

@pytest.mark.claim("steady-refuted")
def test_refuted(claim):
    claim.check(planted(Verdict.REFUTED), summary="ratio 1.2")
"""

FLIPPING = '''
from pathlib import Path
import pytest
from fixtures.claim import Verdict
from tests.planted import planted

@pytest.mark.claim("flips")
def test_flips(claim):
    """Holds in odd sessions, inconclusive in even ones: a counter file remembers the sessions."""
    counter = Path(__file__).with_name("sessions.txt")
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    claim.check(planted(Verdict.HOLDS if n % 2 else Verdict.INCONCLUSIVE), summary=f"session {n}: ratio {1.5 + n % 2}")
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A throwaway project with this repo's conftest and two claims whose verdicts never change."""
    return claims_project(pytester, test_steady=STEADY)


@pytest.mark.slow
def test_stable_claims_pass(project, capsys):
    assert flakiness.main(["--reruns", "2", "--", "-p", "xdist", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "rerun 2/2: 2 claims" in out and "1 holds, 1 refuted" in out
    assert "stable: each of 2 claims had the same verdict in all 2 reruns" in out


@pytest.mark.slow
def test_alternating_claim_fails_naming_it_and_its_numbers(project, capsys, tmp_path):
    project.makepyfile(test_flips=FLIPPING)
    assert flakiness.main(["--reruns", "3", "--keep", str(tmp_path / "kept"), "--", "."]) == 1
    out = capsys.readouterr().out
    assert "FLAKY flips (test_flips.py::test_flips): holds x2, inconclusive x1" in out
    assert "rerun 1: holds: session 1: ratio 2.5" in out
    assert "rerun 2: inconclusive: session 2: ratio 1.5" in out
    assert "steady" not in out.split("FLAKY", 1)[1], "only the flipping claim is flaky"
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["rerun-1", "rerun-2", "rerun-3"]


def test_claim_missing_from_a_rerun_counts_as_a_difference():
    holds = {"t::a": ClaimRecord("a", verdict="holds", summary="3.0")}
    assert flakiness.differences([holds, holds]) == []
    report = flakiness.differences([holds, {}])
    assert report == [
        "FLAKY a (t::a): holds x1, missing x1\n  rerun 1: holds: 3.0\n  rerun 2: missing: no verdict recorded"
    ]


@pytest.mark.slow
def test_rerun_that_cannot_run_is_an_error_not_stable(project, capsys):
    assert flakiness.main(["--reruns", "2", "--", "--no-such-option"]) == 2
    assert "pytest exited 4" in capsys.readouterr().out
