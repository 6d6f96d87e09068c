"""The two-sample test the reports share, and the verdict matrix across evidence files (planted evidence)."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest
from scipy import stats

from fixtures.records import ClaimRecord, Headline
from reports import matrix
from reports.__main__ import main
from reports.twosample import ALPHA, headline_test, welch
from tests.planted import make_evidence, write

# --- the two-sample test -------------------------------------------------------------------


def test_welch_is_scipys_unequal_variance_t_test() -> None:
    a, b = [0.9886, 0.9879, 0.9891, 0.9884], [0.9864, 0.9870, 0.9851]
    expected = stats.ttest_ind(a, b, equal_var=False)
    result = welch(a, b)
    assert result.statistic == pytest.approx(expected.statistic) and result.p == pytest.approx(expected.pvalue)
    assert result.significant == (expected.pvalue < ALPHA) and (result.n_a, result.n_b) == (4, 3)


@pytest.mark.parametrize(
    "a, b, significant",
    [
        ([5.0, 4.7, 5.4], [9.0, 9.2, 8.8], True),  # clearly apart
        ([0.010, 0.011, 0.012], [0.0105, 0.0112, 0.0118], False),  # overlapping: seed noise
        ([2.0, 2.0], [3.0, 3.0], True),  # constant and different: p = 0
        ([2.0, 2.0], [2.0, 2.0], False),  # constant and equal: p = 1
    ],
)
def test_welch_decides_at_alpha(a: list[float], b: list[float], significant: bool) -> None:
    result = welch(a, b)
    assert result.applicable and result.significant is significant
    assert ("differ" if significant else "within noise") in result.text()


def test_welch_needs_two_finite_values_a_side() -> None:
    for a, b in (([1.0], [1.0, 2.0]), ([], [1.0, 2.0]), ([1.0, math.nan], [1.0, 2.0]), (None, [1.0, 2.0])):
        result = welch(a, b)
        assert not result.applicable and not result.significant and result.text() == "n/a (fewer than 2 values)"
    assert welch([1.0, math.inf, 2.0, 3.0], [5.0, 6.0, 7.0]).n_a == 3  # non-finite values are left out


def test_headline_test_compares_like_with_like() -> None:
    def claim(name: str, values: list[float]) -> ClaimRecord:
        return ClaimRecord("c", headline=Headline(name, values, True, ""))

    assert headline_test(claim("gap", [1.0, 1.1, 0.9]), claim("gap", [2.0, 2.1, 1.9])).significant
    assert (
        headline_test(claim("gap", [1.0, 1.1]), claim("ratio", [1.0, 1.1])).text()
        == "n/a (different quantities: gap vs ratio)"
    )
    assert headline_test(ClaimRecord("c"), claim("gap", [1.0, 1.1])).text() == "n/a (no headline recorded)"
    assert headline_test(None, None).text() == "n/a (no headline recorded)"


# --- the matrix ----------------------------------------------------------------------------


def planted_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """TensorFlow on CPU, JAX on a GPU with known differences, and a copy of the TF file."""
    tf, _ = make_evidence()
    jax = copy.deepcopy(tf)
    jax["session"].update(
        started="2026-11-30T01:00:00+00:00",
        device={"cpu": "Xeon", "gpus": ["NVIDIA H200"]},
        versions={"python": "3.12.3", "jax": "0.11.2", "keras": "3.15.1", "keras_backend": "jax"},
    )
    claims = {c["id"]: c for c in jax["claims"]}
    claims["cnn-vs-mlp-time"].update(verdict="holds")  # values clearly apart -> Welch: differ
    claims["cnn-vs-mlp-time"]["headline"]["values"] = [9.0, 9.2, 8.8]
    claims["overfitting-signature"].update(known_refutation=None)  # known refutation -> refuted, within noise
    claims["overfitting-signature"]["headline"]["values"] = [0.0105, 0.0112, 0.0118]
    jax["claims"] = [c for c in jax["claims"] if c["id"] != "pooling-maps"]
    jax["claims"].append({**claims["arch-vs-mlp"], "id": "jax-only", "test": "claims/test_x.py::test_jax_only"})
    return (write(tmp_path / "tf", tf, {}), write(tmp_path / "jax", jax, {}), write(tmp_path / "tf-again", tf, {}))


def cell_classes(html: str, claim_id: str) -> list[str]:
    row = html.split(f'data-claim="{claim_id}">', 1)[1].split("</tr>", 1)[0]
    return re.findall(r'<td class="([^"]*)"><span class="badge', row)


def test_matrix_rows_cells_highlights_and_tests(tmp_path: Path) -> None:
    tf, jax, _ = planted_files(tmp_path)
    cols = matrix.columns([str(tf), str(jax)])
    assert [c.label for c in cols] == [
        "tensorflow 2.21.0 · Keras 3.15.1 · CPU",
        "jax 0.11.2 · Keras 3.15.1 · NVIDIA H200",
    ]
    rows = {r.claim_id: r for r in matrix.rows(cols)}
    assert set(rows) == {c["id"] for c in make_evidence()[0]["claims"]} | {"jax-only"}
    assert {i for i, r in rows.items() if r.differs} == {
        "cnn-vs-mlp-time",
        "overfitting-signature",
        "pooling-maps",
        "jax-only",
    }
    time_row = rows["cnn-vs-mlp-time"]
    assert [c.verdict for c in time_row.cells] == ["inconclusive", "holds"]
    assert time_row.cells[0].test is None and time_row.cells[1].test.significant
    assert time_row.cells[0].headline == "CNN/MLP time ratio mean 5.033 (n = 3)"
    noise = rows["overfitting-signature"].cells[1]
    assert noise.differs and noise.test.applicable and not noise.test.significant
    assert rows["pooling-maps"].cells[1].verdict == "absent" and rows["jax-only"].cells[0].verdict == "absent"
    bottleneck = rows["arch-dense-bottleneck"].cells[1]
    assert not bottleneck.differs and bottleneck.headline == "dense share of parameters = 0.9957"
    assert bottleneck.test.text() == "n/a (fewer than 2 values)"


def test_matrix_cli_writes_html_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tf, jax, again = planted_files(tmp_path)
    out = tmp_path / "out"
    assert main(["--matrix", str(tf), f"JAX on H200={jax}", str(again), "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str((out / "matrix.html").resolve()), str((out / "matrix.md").resolve())]
    html = (out / "matrix.html").read_text()
    assert "JAX on H200" in html and "Welch" in html and "4</b> claim(s) differ" in html
    # the TF copy has the same auto label as the first column: both get their column number appended
    assert (
        "tensorflow 2.21.0 · Keras 3.15.1 · CPU · column 1" in html
        and "tensorflow 2.21.0 · Keras 3.15.1 · CPU · column 3" in html
    )
    assert cell_classes(html, "cnn-vs-mlp-time") == ["", "differs", ""]
    assert cell_classes(html, "arch-basic-param-counts") == ["", "", ""]
    assert 'class="small sig">Welch t = ' in html.split('data-claim="cnn-vs-mlp-time">', 1)[1].split("</tr>", 1)[0]
    md = (out / "matrix.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| claim |"))
    assert header.count("|") == 5 and "JAX on H200" in header
    time_line = next(line for line in md.splitlines() if line.startswith("| cnn-vs-mlp-time ≠ |"))
    assert (
        "| **holds** · CNN/MLP time ratio mean 9 (n = 3) · Welch t = " in time_line
        and ": differ (n = 3 vs 3)" in time_line
    )
    total = len(make_evidence()[0]["claims"]) + 1
    assert (
        f"4 of {total} claims differ in verdict: overfitting-signature, cnn-vs-mlp-time, pooling-maps, jax-only." in md
    )


def test_matrix_marks_claims_kept_from_older_sessions(tmp_path: Path) -> None:
    data, _ = make_evidence()
    for c in data["claims"]:
        c["taken"] = {
            "session": "2026-11-28T10:00:00+00:00" if c["id"] != "improved-99" else data["session"]["started"]
        }
    cols = matrix.columns([str(write(tmp_path / "ev", data, {}))])
    assert {r.claim_id for r in matrix.rows(cols) if not r.cells[0].older} == {"improved-99"}
    md = matrix.markdown(cols, matrix.rows(cols))
    assert "*(older)*" in md


def test_matrix_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tf, _, _ = planted_files(tmp_path)
    assert main(["--matrix", str(tf), str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.json: file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--matrix", str(tf), "--baseline", str(tf)])
