"""evidence.json's schema (issue 29): evidence written by main before the records still loads and builds the same
report, another schema version is one clear error, and `differences` reports every changed value."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.records import SCHEMA, ClaimRecord, Document, Look, SchemaError, differences
from reports.build import build
from reports.evidence import EvidenceError, load

MAIN = Path(__file__).parent / "data" / "evidence-main"
"""A warm notebook session's evidence on main at c7c55e0, before the schema (21 claims, 18 runs, their arrays)."""


@pytest.fixture
def raw() -> dict:
    return json.loads((MAIN / "evidence.json").read_text())


def test_evidence_from_main_loads_into_the_records_and_writes_back_unchanged(raw: dict) -> None:
    document = Document.parse(raw)
    assert len(document.claims) == 21 and len(document.runs) == 18
    timing = next(c for c in document.claims if c.id == "cnn-vs-mlp-time")
    assert timing.looks_unit == "rounds" and isinstance(timing.looks[0], Look) and timing.looks[0].has_interval()
    assert timing.headline.name == "CNN/MLP CPU time per training step" and timing.taken.profile == "notebook"
    assert json.loads(json.dumps(document.to_dict())) == raw


def test_the_report_builds_from_main_s_evidence(tmp_path: Path) -> None:
    index = build(load(MAIN), tmp_path)
    html = index.read_text()
    assert html.count('<article class="claim"') == 21 and "No evidence recorded" not in html
    assert len(list(tmp_path.glob("*.png"))) == 18


def test_another_schema_version_is_one_clear_error(tmp_path: Path, raw: dict) -> None:
    (tmp_path / "evidence.json").write_text(json.dumps({**raw, "schema": SCHEMA + 1}))
    with pytest.raises(EvidenceError, match=rf"evidence.json: malformed evidence: schema is {SCHEMA + 1}, expected"):
        load(tmp_path)


def test_a_field_the_schema_does_not_know_or_lacks_is_named(raw: dict) -> None:
    raw["claims"][0]["verdicts"] = "holds"
    unknown = r"claim 'ambiguities-rare' has fields the schema does not know: \['verdicts'\]"
    with pytest.raises(SchemaError, match=unknown):
        Document.parse(raw)
    del raw["claims"][0]["verdicts"], raw["runs"][0]["seed"]
    with pytest.raises(SchemaError, match=r"run 'basic_cnn bs=16 ep=10 seed=0' lacks \['seed'\]"):
        Document.parse(raw)


def test_the_record_of_a_claim_test_refuses_an_unknown_field() -> None:
    record = ClaimRecord("c")
    record.update({"headline": {"name": "h", "values": [1.0]}}, verdict="holds")
    assert record.headline.values == [1.0] and record.verdict == "holds"
    with pytest.raises(SchemaError, match="summry"):
        record.update(summry="typo")


def test_differences_reports_a_changed_value_and_ignores_when_it_was_taken(raw: dict) -> None:
    before = Document.parse(raw)
    assert differences(before, Document.parse(copy.deepcopy(raw))) == []
    later = copy.deepcopy(raw)
    later["session"]["started"] = later["claims"][0]["taken"]["session"] = "2027-01-01T00:00:00+0000"
    later["runs"][0]["session"] = "2027-01-01T00:00:00+0000"
    later["runs"][0]["wall_s"] = 0.5  # a cached run's wall time is this session's time to load it
    assert later["runs"][0]["source"] == "cached" and differences(before, Document.parse(later)) == []
    trained = copy.deepcopy(raw)
    trained["runs"][0]["source"] = "trained"
    key = raw["runs"][0]["key"]
    assert differences(before, Document.parse(trained)) == [
        f"runs[{key}].source: 'cached' -> 'trained'",
        f"runs[{key}].wall_s: absent -> 0.01",  # a trained run's wall time is its training's
    ]
    later["claims"][1]["statistics"]["ratio"] = {"mean": 1.5}
    later["runs"][0]["history"]["loss"][3] = 0.5
    later["session"]["seeds"] = [0, 1]
    assert differences(before, Document.parse(later)) == [
        f"claims[{raw['claims'][1]['id']}].statistics.ratio.mean: absent -> 1.5",
        f"runs[{raw['runs'][0]['key']}].history.loss[3]: {raw['runs'][0]['history']['loss'][3]!r} -> 0.5",
        "session.seeds[2]: 2 -> absent",
    ]


def test_differences_ignores_the_timing_claims_fresh_rounds_but_not_their_verdict(raw: dict) -> None:
    before = Document.parse(raw)
    later = copy.deepcopy(raw)
    timing = next(c for c in later["claims"] if c.get("looks_unit") == "rounds")
    timing["measured"]["cpu_ratio"][0] *= 2
    timing["looks"][0]["mean"] *= 2
    timing["summary"] = "other rounds"
    assert differences(before, Document.parse(later)) == []
    timing["verdict"] = "inconclusive"
    assert differences(before, Document.parse(later)) == [f"claims[{timing['id']}].verdict: 'holds' -> 'inconclusive'"]


def test_the_records_import_neither_keras_nor_tensorflow_nor_numpy() -> None:
    code = "import sys, fixtures.records; print(sorted({'keras', 'tensorflow', 'numpy', 'pytest'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_report_command_fails_on_any_changed_value_against_a_baseline(raw: dict, tmp_path: Path, capsys) -> None:
    """`python -m reports --baseline B --fail-on-any-value-change`, the check a refactor runs on a warm session."""
    from reports.__main__ import main

    args = ["--evidence", str(MAIN), "--baseline", str(MAIN), "--out", str(tmp_path / "same")]
    assert main([*args, "--fail-on-any-value-change"]) == 0
    changed = copy.deepcopy(raw)
    claim = next(c for c in changed["claims"] if c["id"] == "improved-99")
    claim["headline"]["values"][0] += 1e-4
    (tmp_path / "changed").mkdir()
    (tmp_path / "changed" / "evidence.json").write_text(json.dumps(changed))
    args = ["--evidence", str(tmp_path / "changed"), "--baseline", str(MAIN), "--out", str(tmp_path / "report")]
    assert main(args) == 0  # a verdict-only comparison: the same verdicts
    assert main([*args, "--fail-on-any-value-change"]) == 1
    assert "value changed: claims[improved-99].headline.values[0]: 0.99250000" in capsys.readouterr().err
