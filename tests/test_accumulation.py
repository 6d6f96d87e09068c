"""Evidence accumulates across sessions of one profile and environment, and the suite runs without
pytest's cache plugin (issue 12)."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from fixtures.evidence import write_evidence
from fixtures.records import ClaimRecord, RunRecord, Session
from reports import evidence as report_evidence
from reports.__main__ import main
from reports.evidence import EvidenceError, load
from tests.planted import claims_project, make_evidence

LATER = "2026-11-30T02:00:00+00:00"


def session_write(
    directory: Path, data: dict, arrays: dict, ids: set[str] | None = None, /, **changes: object
) -> str | None:
    """Write the claims `ids` (all when None) and their arrays as one session of `data`, changed by `changes`."""
    claims = [c for c in data["claims"] if ids is None or c["id"] in ids]
    for c in claims:
        if c["id"] in arrays:
            (directory / "arrays").mkdir(parents=True, exist_ok=True)
            np.savez(directory / c["arrays"], **arrays[c["id"]])
    used = {k for c in claims for k in c["runs"]}
    runs = [r for r in data["runs"] if ids is None or r["key"] in used]
    fresh = bool(changes.pop("fresh", False))
    return write_evidence(directory, *records({**data["session"], **changes}, runs, claims), fresh=fresh)[1]


def records(session: dict, runs: list[dict], claims: list[dict]) -> tuple[Session, list[RunRecord], list[ClaimRecord]]:
    """A session's evidence as the records the recorder writes."""
    return (
        Session.from_dict(session, "session"),
        [RunRecord.from_dict(r, r["label"]) for r in runs],
        [ClaimRecord.from_dict(c, c["id"]) for c in claims],
    )


def test_a_partial_session_keeps_the_other_claims_runs_and_arrays(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    assert session_write(tmp_path, data, arrays) == "no earlier evidence"
    later = copy.deepcopy(data)
    improved = next(c for c in later["claims"] if c["id"] == "improved-99")
    improved["summary"] = "re-run"
    assert session_write(tmp_path, later, arrays, {"improved-99"}, started=LATER) is None
    ev = load(tmp_path)
    assert ev.newest == LATER and ev.session.afresh is None
    assert [c.id for c in ev.claims if not ev.is_older(c)] == ["improved-99"]
    assert sorted(c.id for c in ev.claims) == sorted(c["id"] for c in data["claims"])
    assert ev.claim("improved-99").summary == "re-run"
    kept = ev.claim("ambiguities-rare").taken
    assert kept.session == data["session"]["started"] and kept.profile == "notebook"
    assert kept.versions["tensorflow"] == "2.21.0" and kept.data == "ab" * 32
    assert ev.arrays("ambiguities-rare") is not None and ev.arrays("pooling-maps") is not None
    assert len(ev.runs) == len(data["runs"])
    assert {r.session for r in ev.runs if r.model == "improved_cnn"} == {LATER}
    assert {r.session for r in ev.runs if r.model != "improved_cnn"} == {data["session"]["started"]}


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"profile": "smoke"}, "profile changed: notebook -> smoke"),
        (
            {
                "versions": {
                    "python": "3.11.7",
                    "tensorflow": "2.22.0",
                    "keras": "3.15.1",
                    "keras_backend": "tensorflow",
                    "numpy": "2.4.6",
                }
            },
            "versions changed: tensorflow 2.21.0 -> 2.22.0",
        ),
        ({"device": {"cpu": "AMD EPYC test", "gpus": ["NVIDIA H200"]}}, "device changed"),
        ({"data": {"source": "/elsewhere", "fingerprint": "cd" * 32}}, "data changed"),
        ({"fresh": True}, "asked for (--fresh-evidence)"),
    ],
)
def test_another_profile_or_environment_starts_afresh(tmp_path: Path, changes: dict, reason: str) -> None:
    data, arrays = make_evidence()
    session_write(tmp_path, data, arrays)
    assert session_write(tmp_path, data, arrays, {"improved-99"}, started=LATER, **changes) == reason
    ev = load(tmp_path)
    assert [c.id for c in ev.claims] == ["improved-99"] and ev.session.afresh == reason
    assert {r.model for r in ev.runs} == {"improved_cnn"}
    assert not list(tmp_path.glob("arrays/*.npz"))  # the dropped claims' arrays go with them


def test_a_session_that_loaded_no_data_joins_the_evidence_and_keeps_its_environment(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    session_write(tmp_path, data, arrays)
    arch_only = {k: v for k, v in data["session"].items() if k != "data"}
    path, afresh = write_evidence(
        tmp_path,
        *records(
            {**arch_only, "started": LATER}, [], [c for c in data["claims"] if c["id"] == "arch-dense-bottleneck"]
        ),
    )
    ev = load(path)
    assert afresh is None and len(ev.claims) == len(data["claims"])
    assert ev.session.data["fingerprint"] == "ab" * 32  # so the next session is still checked against it
    assert ev.claim("arch-dense-bottleneck").taken.data is None


def test_unreadable_or_unstamped_earlier_evidence(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    (tmp_path / "evidence.json").write_text("{half a file")
    assert session_write(tmp_path, data, arrays, {"improved-99"}) == "earlier evidence unreadable"
    old = copy.deepcopy(data)  # a file written before claims carried a stamp
    (tmp_path / "evidence.json").write_text(json.dumps(old))
    assert session_write(tmp_path, data, arrays, {"improved-99"}, started=LATER) is None
    ev = load(tmp_path)
    assert ev.claim("pooling-maps").taken.session == data["session"]["started"] and ev.is_older(
        ev.claim("pooling-maps")
    )


def image_sources(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def test_full_run_then_one_claim_keeps_every_claim_and_figure(tmp_path: Path) -> None:
    """Issue 12's done-when, on planted evidence: full session, then `-k improved-99`, then the report."""
    data, arrays = make_evidence()
    session_write(tmp_path / "ev", data, arrays)
    assert main(["--evidence", str(tmp_path / "ev"), "--out", str(tmp_path / "full")]) == 0
    session_write(tmp_path / "ev", data, arrays, {"improved-99"}, started=LATER)
    assert main(["--evidence", str(tmp_path / "ev"), "--out", str(tmp_path / "after")]) == 0
    full, after = ((tmp_path / d / "index.html").read_text() for d in ("full", "after"))
    assert image_sources(after) == image_sources(full) and len(image_sources(after)) >= 14
    for c in data["claims"]:
        assert f'<article class="claim" id="{c["id"]}">' in after
    assert "No evidence recorded" not in after
    rows = dict(re.findall(r'<tr class="verdict-row" data-claim="([^"]+)">(.*?)</tr>', after, re.S))
    assert 'class="older"' not in rows["improved-99"] and LATER in rows["improved-99"]
    assert all('<span class="older">older</span>' in row for cid, row in rows.items() if cid != "improved-99")
    assert f"1 claim(s) from the newest session, {len(data['claims']) - 1} kept from earlier sessions" in after
    assert "3 trained now" in after and f"{len(data['runs']) - 3} kept from earlier sessions" in after
    article = after.split('<article class="claim" id="pooling-maps">', 1)[1].split("</article>", 1)[0]
    assert f"older than the newest session ({LATER})" in article and "Keras backend tensorflow" in article


def test_baseline_comparison_lists_kept_claims_instead_of_comparing_them(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    session_write(tmp_path / "base", data, arrays)
    session_write(tmp_path / "cur", data, arrays)
    later = copy.deepcopy(data)
    next(c for c in later["claims"] if c["id"] == "improved-99")["verdict"] = "refuted"
    session_write(tmp_path / "cur", later, arrays, {"improved-99"}, started=LATER)
    args = ["--evidence", str(tmp_path / "cur"), "--baseline", str(tmp_path / "base"), "--out", str(tmp_path / "out")]
    assert main([*args, "--fail-on-change"]) == 1  # improved-99 changed, untestable (no headline): significant
    html = (tmp_path / "out" / "index.html").read_text()
    kept = html.split("Not re-run in the newest session (kept from an earlier one, so not compared): ", 1)[1].split(
        "</p>"
    )[0]
    assert sorted(kept.split(", ")) == sorted(c["id"] for c in data["claims"] if c["id"] != "improved-99")


def test_reports_finds_the_newer_default_evidence_or_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    defaults = (tmp_path / "checkout" / "evidence.json", tmp_path / "user-cache" / "evidence.json")
    monkeypatch.setattr(report_evidence, "default_dirs", lambda name: [p.parent for p in defaults])
    monkeypatch.delenv("MNIST_CLAIMS_EVIDENCE", raising=False)
    with pytest.raises(EvidenceError, match=f"no evidence found: looked in {defaults[0]} and {defaults[1]}"):
        load()
    assert main(["--out", str(tmp_path / "out")]) == 2 and "looked in" in capsys.readouterr().err
    data, _ = make_evidence()
    data["claims"] = data["claims"][:2]
    for i, path in enumerate(defaults):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**data, "session": {**data["session"], "started": f"session {i}"}}))
    os.utime(defaults[0], (1, 1))
    assert load().session.started == "session 1"
    assert main(["--out", str(tmp_path / "out")]) == 0 and f"evidence: {defaults[1]}" in capsys.readouterr().err
    os.utime(defaults[1], (0, 0))
    assert load().session.started == "session 0"


# --- through pytest, with the repo's conftest ----------------------------------------------

CLAIMS = '''
import numpy as np
import pytest
from fixtures.claim import Verdict
from tests.planted import planted

@pytest.mark.claim("c-holds")
def test_holds(claim):
    """It holds."""
    claim.save_arrays(x=np.arange(3))
    claim.uses([], seeds=[0])
    claim.check(planted(Verdict.HOLDS), summary="1 > 0")

@pytest.mark.claim("c-kept")
def test_kept(claim):
    """It is kept."""
    claim.save_arrays(y=np.arange(4))
    claim.uses([], seeds=[0])
    claim.check(planted(Verdict.HOLDS), summary="2 > 1")

@pytest.mark.claim("c-inconclusive")
def test_inconclusive(claim):
    claim.check(planted(Verdict.INCONCLUSIVE), summary="p = 0.3")
'''


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    """A throwaway project with this repo's conftest, its per-user cache dir redirected under tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MNIST_CLAIMS_EVIDENCE", raising=False)
    monkeypatch.delenv("MNIST_CLAIMS_CACHE", raising=False)
    return claims_project(pytester, test_claims=CLAIMS)


def recorded(directory: Path) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads((directory / "evidence.json").read_text())["claims"]}


@pytest.mark.slow
def test_sessions_accumulate_and_fresh_evidence_starts_afresh(suite: pytest.Pytester) -> None:
    directory = suite.path / ".pytest_cache/d/claims-evidence"
    suite.runpytest_subprocess().assert_outcomes(passed=2, skipped=1)
    first = recorded(directory)
    result = suite.runpytest_subprocess("-k", "c-holds")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*evidence: *evidence.json (claims not run now kept from earlier sessions)*"])
    now = recorded(directory)
    assert set(now) == {"c-holds", "c-kept", "c-inconclusive"}
    assert (
        now["c-kept"] == first["c-kept"] and now["c-holds"]["taken"]["session"] != first["c-holds"]["taken"]["session"]
    )
    assert (directory / now["c-kept"]["arrays"]).is_file()
    result = suite.runpytest_subprocess("-k", "c-holds", "--fresh-evidence")
    result.stdout.fnmatch_lines(["*evidence: *(started afresh (asked for (--fresh-evidence)))*"])
    assert set(recorded(directory)) == {"c-holds"} and not (directory / "arrays" / "c-kept.npz").exists()
    suite.runpytest_subprocess("-k", "c-kept", "--claims-profile", "smoke").stdout.fnmatch_lines(
        ["*started afresh (profile changed: notebook -> smoke)*"]
    )
    assert set(recorded(directory)) == {"c-kept"}


CRASHING = '''
import os
import numpy as np
import pytest
from fixtures.claim import Verdict
from tests.planted import planted

@pytest.mark.claim("c-crashes")
def test_crashes(claim):
    """It holds until CRASH is set: then it errors after saving its arrays, before its verdict."""
    claim.save_arrays(z=np.arange(5))
    if os.environ.get("CRASH"):
        raise RuntimeError("planted crash before claim.check")
    claim.uses([], seeds=[0])
    claim.check(planted(Verdict.HOLDS), summary="3 > 2")
'''


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_claim_that_errors_now_drops_the_verdict_an_earlier_session_recorded(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    suite.makepyfile(test_crashing=CRASHING)
    directory = suite.path / ".pytest_cache/d/claims-evidence"
    suite.runpytest_subprocess().assert_outcomes(passed=3, skipped=1)
    first = recorded(directory)
    assert first["c-crashes"]["verdict"] == "holds"
    monkeypatch.setenv("CRASH", "1")
    result = suite.runpytest_subprocess("-p", "xdist", *workers, "-k", "c-crashes")  # no claim records a verdict
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*evidence: *; no verdict now, so no earlier record kept: c-crashes)*"])
    now = recorded(directory)
    assert set(now) == {"c-holds", "c-kept", "c-inconclusive"}  # not the crashed claim's earlier "holds"
    assert now["c-kept"] == first["c-kept"] and now["c-holds"] == first["c-holds"]
    assert not (directory / "arrays" / "c-crashes.npz").exists()  # this session overwrote them, then crashed


@pytest.mark.slow
def test_without_the_cache_plugin_the_user_cache_dir_is_used_and_named(suite: pytest.Pytester, tmp_path: Path) -> None:
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=1)
    user = tmp_path / "xdg" / "mnist-claims"
    result.stdout.fnmatch_lines(
        [f"*runs cache={user / 'training-runs'}*", f"*evidence={user / 'claims-evidence' / 'evidence.json'}*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert set(recorded(user / "claims-evidence")) == {"c-holds", "c-kept", "c-inconclusive"}
    assert not (suite.path / ".pytest_cache").exists()
    evidence_dir = tmp_path / "given"
    suite.runpytest_subprocess("-p", "no:cacheprovider", "--claims-evidence", str(evidence_dir), "-k", "c-holds")
    assert set(recorded(evidence_dir)) == {"c-holds"}
