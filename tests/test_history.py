"""`python -m reports --history DIR`: each claim across nights and environments, from planted nights' evidence."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from scipy import stats

from reports import history
from reports.__main__ import main
from tests.planted import make_evidence, write

NIGHTS = ["2026-12-01", "2026-12-02", "2026-12-03"]
DROP = [-0.004, -0.006, -0.005]  # tf-nightly's CNN - MLP accuracy from the second night: clearly below the first's


def night(data: dict, when: str, **claims: dict) -> dict:
    """A copy of `data` as a session of night `when`, with the given claims' fields replaced."""
    data = copy.deepcopy(data)
    data["session"].update(started=f"{when}T02:30:00+00:00", finished=f"{when}T03:40:00+00:00")
    for c in data["claims"]:
        if c["id"] in claims:
            update = copy.deepcopy(claims[c["id"]])
            c["headline"] = {**c["headline"], **update.pop("headline", {})}
            c.update(update)
    return data


@pytest.fixture
def nights(tmp_path: Path) -> Path:
    """Three nights of tf-2.21 and tf-nightly: tf-nightly's cnn-vs-mlp-accuracy turns refuted on the second night
    with clearly lower values (significant); tf-2.21's known refutation of overfitting-signature becomes a plain
    refutation on the third with values within noise; keras-nightly did not install on the third."""
    base, _ = make_evidence()
    dropped = {"cnn-vs-mlp-accuracy": {"verdict": "refuted", "headline": {"values": DROP}}}
    within_noise = {
        "overfitting-signature": {"known_refutation": None, "headline": {"values": [0.0105, 0.0112, 0.0118]}}
    }
    root = tmp_path / "history"
    for i, when in enumerate(NIGHTS):
        write(root / when / "tf-2.21", night(base, when, **(within_noise if i == 2 else {})), {})
        write(root / when / "tf-nightly", night(base, when, **(dropped if i >= 1 else {})), {})
    (root / NIGHTS[2] / "keras-nightly").mkdir()
    (root / NIGHTS[2] / "keras-nightly" / "unavailable.txt").write_text("keras-nightly did not install: planted\n")
    return root


def test_history_reads_the_nights_and_finds_each_verdict_change(nights: Path) -> None:
    found = history.read(nights)
    assert found.nights == NIGHTS and found.envs == ["tf-2.21", "keras-nightly", "tf-nightly"]
    assert found.unavailable == {(NIGHTS[2], "keras-nightly"): "keras-nightly did not install: planted"}
    changes = [(c.night, c.previous, c.env, c.verdict.claim_id, c.verdict.significant) for c in found.changes]
    assert changes == [
        (NIGHTS[2], NIGHTS[1], "tf-2.21", "overfitting-signature", False),
        (NIGHTS[1], NIGHTS[0], "tf-nightly", "cnn-vs-mlp-accuracy", True),
    ]
    drop = found.changes[1].verdict
    assert (drop.before, drop.after) == ("holds", "refuted")
    before = make_evidence()[0]
    values = next(c["headline"]["values"] for c in before["claims"] if c["id"] == "cnn-vs-mlp-accuracy")
    assert drop.test.p == pytest.approx(stats.ttest_ind(values, DROP, equal_var=False).pvalue)
    points = [(p.night, p.env, p.verdict) for p in found.points("cnn-vs-mlp-accuracy")]
    assert points == [
        (n, e, "refuted" if e == "tf-nightly" and n != NIGHTS[0] else "holds")
        for n in NIGHTS
        for e in ("tf-2.21", "tf-nightly")
    ]


def section(html: str, claim_id: str) -> str:
    return html.split(f'<section class="claim" id="{claim_id}"', 1)[1].split("</section>", 1)[0]


def test_history_page_marks_the_significant_change_and_opens_in_chromium(
    nights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert main(["--history", str(nights), "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str((out / n).resolve()) for n in ("history.html", "history.md")]
    html = (out / "history.html").read_text()
    assert "<b>1</b> significant verdict change(s)" in html
    assert html.count('<li><a href="#cnn-vs-mlp-accuracy">2026-12-02 tf-nightly: cnn-vs-mlp-accuracy holds') == 1
    dropped = section(html, "cnn-vs-mlp-accuracy")
    assert dropped.startswith(' data-changes="1">') and dropped.count('<td class="changed">') == 1
    assert 'src="history-cnn-vs-mlp-accuracy.png"' in dropped and (out / "history-cnn-vs-mlp-accuracy.png").is_file()
    assert re.search(
        r'<li class="sig">2026-12-02 tf-nightly: cnn-vs-mlp-accuracy holds → refuted \(significant', dropped
    )
    noise = section(html, "overfitting-signature")
    assert noise.startswith(' data-changes="0">') and '<td class="changed">' not in noise
    assert "known refutation → refuted (within noise" in noise
    assert "<li>2026-12-03: keras-nightly did not install: planted</li>" in html
    md = (out / "history.md").read_text()
    assert "## Significant verdict changes (1)\n\n- 2026-12-02 tf-nightly: cnn-vs-mlp-accuracy holds → refuted" in md
    assert "## Verdict changes within noise (1)" in md and "- 2026-12-03: keras-nightly did not install" in md

    pytest.importorskip("playwright", reason="playwright not installed (optional extra)")
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("/usr/bin/chromium not installed (apt-get install chromium)")
    from reports import browser_check

    assert browser_check.check(out, tmp_path / "history.png", "history.html") == []
    (out / "history-cnn-vs-mlp-accuracy.png").unlink()
    assert any(
        "history-cnn-vs-mlp-accuracy.png" in p for p in browser_check.check(out, tmp_path / "b.png", "history.html")
    )


def test_history_errors_are_one_line(nights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--history", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    (nights / "latest").mkdir()
    assert main(["--history", str(nights), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "latest: not a night's folder (YYYY-MM-DD)" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty" / "2026-12-01"
    empty.mkdir(parents=True)
    assert main(["--history", str(empty.parent), "--out", str(tmp_path / "o")]) == 2
    assert "no evidence file in the layout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--history", str(nights), "--matrix", "x"])
