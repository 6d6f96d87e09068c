"""Tests of the HTML report (`python -m reports`) on a small hand-made evidence fixture."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fixtures.records import ClaimRecord, Look
from reports import build, regression
from reports.__main__ import main
from reports.build import SECTIONS
from tests.planted import ARCH_IDS, as_evidence, comparison, make_evidence, summary, write

ROOT = Path(__file__).resolve().parent.parent


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def section_html(html: str, sid: str) -> str:
    return html.split(f'<section id="sec-{sid}">', 1)[1].split("</section>", 1)[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full")
    write(root / "evidence", *make_evidence())
    assert main(["--evidence", str(root / "evidence"), "--out", str(root / "report")]) == 0
    return root / "report"


# --- the report ----------------------------------------------------------------------------


def test_report_has_every_section_and_claim_anchor(report: Path) -> None:
    html = (report / "index.html").read_text()
    for sid, title, _ in SECTIONS:
        assert f'<section id="sec-{sid}">' in html and f"<h2>{title}</h2>" in html
    for c in make_evidence()[0]["claims"]:
        assert f'<article class="claim" id="{c["id"]}">' in html and f'href="#{c["id"]}"' in html
    assert "No evidence recorded" not in html and "NOT evidence" not in html
    assert "&lt;context&gt;" in html and "<context>" not in html  # autoescaped
    assert "271,670" in html and "(None, 26, 26, 16)" in html  # Keras-like layer table
    assert "NaN" in html and "∞" in html  # non-finite statistics are shown, not crashed on
    assert "14 trained now" in html and "4 loaded from cache" in html  # seed 0 of each batch size is cached
    assert "<th>Keras backend</th><td>tensorflow</td>" in html and "AMD EPYC test" in html
    assert "kept from earlier" not in html and 'class="older"' not in html  # one session: nothing is older


def test_report_shows_looks_and_detectable_effect_next_to_the_verdict(report: Path) -> None:
    html = (report / "index.html").read_text()
    row = html.split('data-claim="cnn-vs-mlp-time"', 1)[1].split("</tr>", 1)[0]
    assert "3 rounds: statistic 1.1, p = 0.16 vs boundary α = 0.0167 → inconclusive" in row
    assert "5 rounds: statistic 1.3" in row
    assert "<th>Look: rounds</th>" in html.split('id="cnn-vs-mlp-time"', 1)[1]
    assert (
        "smallest effect detectable with 80% power is 0.83 (observed 0.31); the observed effect would need 17 seeds"
        in row
    )
    article = html.split('<article class="claim" id="cnn-vs-mlp-time">', 1)[1].split("</article>", 1)[0]
    assert article.count("<td>inconclusive</td>") == 2 and "17 seeds" in article
    assert "CNN/MLP time ratio = 5, 4.7, 5.4" in article
    assert "looks-table" not in html.split('<article class="claim" id="arch-vs-mlp">', 1)[1].split("</article>", 1)[0]


def test_every_image_is_an_existing_png(report: Path) -> None:
    parser = _Images()
    parser.feed((report / "index.html").read_text())
    assert len(parser.srcs) >= 14
    for src in parser.srcs:
        assert not src.startswith(("/", "file:", "http")), src
        data = (report / src).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000, src


def test_verdict_table_labels_and_colours(report: Path) -> None:
    html = (report / "index.html").read_text()
    rows = dict(
        re.findall(r'<tr class="verdict-row" data-claim="([^"]+)">.*?<span class="badge (v-[\w-]+)">', html, re.S)
    )
    assert rows["arch-basic-param-counts"] == "v-holds"
    assert rows["batch-small-unstable"] == "v-refuted"
    assert rows["overfitting-signature"] == "v-known-refutation"
    assert rows["cnn-vs-mlp-time"] == "v-inconclusive"
    for label in ("holds", "refuted", "known refutation", "inconclusive"):
        assert f'<span class="badge v-{label.replace(" ", "-")}">{label}</span>' in html
        assert re.search(rf"\.v-{label.replace(' ', '-')} {{ background: #\w+; }}", html)
    assert list(rows)[:6] == ARCH_IDS  # notebook order: architecture first


def test_missing_sections_say_no_evidence(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    data["claims"] = [c for c in data["claims"] if c["section"] == "architecture"]
    data["runs"] = []
    data["session"]["profile"] = "smoke"
    write(tmp_path / "ev", data, arrays)
    assert main(["--evidence", str(tmp_path / "ev"), "--out", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "index.html").read_text()
    for sid, _, _ in SECTIONS[1:]:
        assert "No evidence recorded for this section" in section_html(html, sid), sid
    assert "smoke profile: NOT evidence" in html


def test_missing_arrays_file_still_builds(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    data["claims"] = [c for c in data["claims"] if c["section"] == "analysis"]
    write(tmp_path / "ev", data, arrays)
    shutil.rmtree(tmp_path / "ev" / "arrays")
    assert main(["--evidence", str(tmp_path / "ev" / "evidence.json"), "--out", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "index.html").read_text()
    assert all("<img" not in section_html(html, sid) for sid in ("inside", "predictions", "specificity"))
    assert 'id="ambiguities-rare"' in html


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "file not found"),
        ("{not json", "not valid JSON"),
        (json.dumps({"schema": 99}), "schema is 99"),
        (
            json.dumps({"schema": 1, "session": {}, "runs": [], "claims": [{"id": "x", "verdict": "maybe"}]}),
            "verdict 'maybe'",
        ),
    ],
)
def test_bad_evidence_exits_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str | None, problem: str
) -> None:
    if content is not None:
        (tmp_path / "evidence.json").write_text(content)
    assert main(["--evidence", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "evidence.json") in err
    assert problem in err and "run `pytest claims` first" in err
    assert not (tmp_path / "out").exists()


def test_cli_subprocess_uses_env_default_and_never_imports_tensorflow(tmp_path: Path) -> None:
    data, arrays = make_evidence()
    write(tmp_path / "ev", data, arrays)
    env = {**os.environ, "MNIST_CLAIMS_EVIDENCE": str(tmp_path / "ev")}
    code = (
        "import sys; from reports.__main__ import main; rc = main(sys.argv[1:]); "
        "assert not {'tensorflow', 'keras'} & set(sys.modules); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--out", "rep"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "rep" / "index.html")
    env["MNIST_CLAIMS_EVIDENCE"] = str(tmp_path / "nowhere")
    done = subprocess.run(
        [sys.executable, "-m", "reports"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and "nowhere" in done.stderr


# --- regression against a baseline ---------------------------------------------------------


def planted() -> tuple[dict, dict]:
    """A baseline and a current evidence differing in known ways."""
    base, _ = make_evidence()
    cur = copy.deepcopy(base)
    claims = {c["id"]: c for c in cur["claims"]}
    claims["arch-dense-bottleneck"]["verdict"] = "refuted"  # one structural value: untestable, so significant
    claims["arch-dense-bottleneck"]["headline"]["values"] = [0.40]
    claims["overfitting-signature"]["known_refutation"] = None  # known refutation -> plain refutation ...
    claims["overfitting-signature"]["headline"]["values"] = [0.0105, 0.0112, 0.0118]  # ... within noise
    claims["cnn-vs-mlp-time"]["verdict"] = "holds"  # inconclusive -> holds on clearly different values: significant
    claims["cnn-vs-mlp-time"]["headline"]["values"] = [9.0, 9.2, 8.8]
    claims["ambiguities-rare"]["statistics"]["fraction"] = summary([0.020, 0.021, 0.022])  # far outside its CI
    claims["ambiguities-rare"]["statistics"]["error_rate"] = summary([0.31, 0.30, 0.30])  # within its CI
    claims["cnn-vs-mlp-accuracy"]["statistics"]["test_accuracy"] = comparison(
        [0.985, 0.987, 0.984], [0.958, 0.956, 0.959]
    )
    for r in cur["runs"]:
        r["key"] += "-tf2.22"  # keys embed library versions: matching must not use them
    slow = next(r for r in cur["runs"] if r["model"] == "mlp" and r["seed"] == 1)
    slow["s_per_epoch"] *= 1.25
    next(r for r in cur["runs"] if r["model"] == "mlp" and r["seed"] == 2)["s_per_epoch"] *= 1.10
    cur["session"]["versions"]["tensorflow"] = "2.22.0"
    return base, cur


def test_regression_finds_exactly_the_planted_changes() -> None:
    base, cur = planted()
    changes = regression.compare(as_evidence(base), as_evidence(cur))
    assert {(v.claim_id, v.before, v.after) for v in changes.verdicts} == {
        ("arch-dense-bottleneck", "holds", "refuted"),
        ("overfitting-signature", "known refutation", "refuted"),
        ("cnn-vs-mlp-time", "inconclusive", "holds"),
    }
    assert [v.claim_id for v in changes.significant] == ["arch-dense-bottleneck", "cnn-vs-mlp-time"]
    assert [v.claim_id for v in changes.within_noise] == ["overfitting-signature"]
    by_id = {v.claim_id: v.test for v in changes.verdicts}
    assert (
        not by_id["arch-dense-bottleneck"].applicable and "fewer than 2 values" in by_id["arch-dense-bottleneck"].text()
    )
    assert by_id["cnn-vs-mlp-time"].p < 0.05 and by_id["overfitting-signature"].p > 0.05
    assert changes.not_rerun == []
    assert {(s.claim_id, s.statistic) for s in changes.statistics} == {
        ("ambiguities-rare", "fraction"),
        ("cnn-vs-mlp-accuracy", "test_accuracy.b"),
        ("cnn-vs-mlp-accuracy", "test_accuracy.diff"),
    }
    assert [(r.label, round(r.ratio, 2)) for r in changes.slower_runs] == [("mlp bs=64 ep=10 seed=1", 1.25)]
    assert [(v.name, v.before, v.after) for v in changes.versions] == [("tensorflow", "2.21.0", "2.22.0")]
    assert changes.added == changes.removed == []
    assert {s.after.method for s in changes.statistics} == {"student-t 95%"}  # each at its recorded level


def test_looks_count_seeds_or_rounds_even_in_evidence_that_did_not_record_which() -> None:
    timing_look = Look(5, 10.3, 0.0005, 0.05, "holds", mean=3.3, ci_low=2.7, ci_high=4.0)
    assert build.looks_unit(ClaimRecord("c", looks=[timing_look])) == "rounds"
    assert build.looks_unit(ClaimRecord("c", looks=[Look(3, 4.2, 0.026, 0.05, "holds")])) == "seeds"
    assert (
        build.looks_unit(ClaimRecord("c", looks=[timing_look], looks_unit="seeds")) == "seeds"
    )  # recorded: it decides


def test_count_tests_record_no_interval_and_the_statistics_rule_says_they_are_not_compared() -> None:
    """A count test's p moved from deciding to not, yet no interval exists to compare: it is left out, as the
    stated rule says, not silently."""
    base, _ = make_evidence()
    now = copy.deepcopy(base)
    counts = {"mean": 1.0, "ci_low": None, "ci_high": None, "ci_method": "none: an exact test on counts"}
    for data, mean in ((base, 1.0), (now, -1.0)):
        claim = next(c for c in data["claims"] if c["id"] == "batch-small-unstable")
        claim["statistics"] = {"rises_16_vs_128": {**counts, "mean": mean}}
    changes = regression.compare(as_evidence(base), as_evidence(now))
    assert not [s for s in changes.statistics if s.claim_id == "batch-small-unstable"]
    assert "a count test" in regression.STAT_RULE and "not compared here" in regression.STAT_RULE
    assert "95% confidence interval" not in regression.STAT_RULE


def test_regression_of_identical_evidence_is_empty() -> None:
    base, _ = make_evidence()
    changes = regression.compare(as_evidence(base), as_evidence(copy.deepcopy(base)))
    assert not (changes.verdicts or changes.statistics or changes.slower_runs or changes.versions)


def test_fail_on_change_exits_1_only_for_significant_verdict_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base, cur = planted()
    _, arrays = make_evidence()
    keep = set(ARCH_IDS) | {"ambiguities-rare", "overfitting-signature"}  # a small report keeps the test fast
    for d in (base, cur):
        d["claims"] = [c for c in d["claims"] if c["id"] in keep]
    write(tmp_path / "base", base, arrays)
    write(tmp_path / "cur", cur, arrays)
    args = ["--evidence", str(tmp_path / "cur"), "--out", str(tmp_path / "out")]
    assert main([*args, "--baseline", str(tmp_path / "base")]) == 0  # reports, fails on nothing
    assert main([*args, "--baseline", str(tmp_path / "base"), "--fail-on-change"]) == 1
    err = capsys.readouterr().err
    assert "verdict changed (significant): arch-dense-bottleneck: holds -> refuted [n/a (fewer than 2 values)]" in err
    assert "verdict changed (within noise): overfitting-signature: known refutation -> refuted [Welch t = " in err
    html = (tmp_path / "out" / "index.html").read_text()
    changes = section_html_changes(html)
    assert "Changes since baseline" in html and "2.22.0" in html and "+25 %" in html
    assert "overlap" in changes and "Welch" in changes  # the rules are stated
    significant, noise = changes.split("<h4>Significant changes</h4>")[1].split("<h4>Changes within noise</h4>")
    assert "arch-dense-bottleneck" in significant and "overfitting-signature" not in significant
    assert "overfitting-signature" in noise and "arch-dense-bottleneck" not in noise.split("<h3>")[0]

    base["claims"] = [c for c in base["claims"] if c["id"] != "arch-dense-bottleneck"]  # only the noisy change left
    cur["claims"] = [c for c in cur["claims"] if c["id"] != "arch-dense-bottleneck"]
    write(tmp_path / "base", base, arrays)
    write(tmp_path / "cur", cur, arrays)
    assert main([*args, "--baseline", str(tmp_path / "base"), "--fail-on-change"]) == 0
    assert main([*args, "--baseline", str(tmp_path / "base"), "--fail-on-any-change"]) == 1
    assert "within noise" in capsys.readouterr().err

    base["claims"] = copy.deepcopy(cur["claims"])
    base["claims"][-1]["statistics"]["fraction"] = summary([0.012, 0.011, 0.013])  # only a metric differs now
    write(tmp_path / "base", base, arrays)
    assert main([*args, "--baseline", str(tmp_path / "base"), "--fail-on-any-change"]) == 0
    html = (tmp_path / "out" / "index.html").read_text()
    assert section_html_changes(html).count("<p>None.</p>") >= 2 and "fraction" in section_html_changes(html)


def test_fail_on_change_needs_a_baseline(capsys: pytest.CaptureFixture) -> None:
    for flag in ("--fail-on-change", "--fail-on-any-change"):
        with pytest.raises(SystemExit):
            main([flag])
    assert "need --baseline" in capsys.readouterr().err


def section_html_changes(html: str) -> str:
    return html.split('<section class="changes" id="changes">', 1)[1].split("</section>", 1)[0]


# --- in a real browser ---------------------------------------------------------------------


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    pytest.importorskip("playwright", reason="playwright not installed (optional extra)")
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("/usr/bin/chromium not installed (apt-get install chromium)")
    from reports import browser_check

    shot = tmp_path / "page.png"
    assert browser_check.main([str(report), "--screenshot", str(shot)]) == 0
    assert shot.read_bytes().startswith(b"\x89PNG")
    broken = shutil.copytree(report, tmp_path / "broken")
    (broken / "selectivity.png").unlink()
    assert any("selectivity.png" in p for p in browser_check.check(broken, tmp_path / "broken.png"))
