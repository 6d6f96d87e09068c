"""The class command: a directory of submissions -> one pytest session per good one -> the class table and CSV."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from reports import grade, matrix
from tests.planted import make_evidence, write

REPO = Path(__file__).resolve().parent.parent
GOOD = REPO / "tests" / "students" / "good.py"
MNIST = REPO / os.environ.get("MNIST_DIR", "../shared/data/mnist")  # an absolute MNIST_DIR wins


def test_find_students_names_rows_and_flags_other_files(tmp_path: Path) -> None:
    for name in ("bob.keras", "alice.py", "alice.keras", "notes.txt", ".hidden.py"):
        (tmp_path / name).write_text("")
    students = {s.name: s for s in grade.find_students(tmp_path)}
    assert sorted(students) == ["alice.keras", "alice.py", "bob", "notes"]
    assert students["alice.py"].source == f"{tmp_path / 'alice.py'}:build" and students["bob"].source == str(
        tmp_path / "bob.keras"
    )
    assert (
        students["notes"].problem
        == "notes.txt: not a submission; hand in NAME.py (with a function build) or NAME.keras"
    )


def test_no_submissions_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "holds no submissions" in capsys.readouterr().err


def test_class_table_is_the_matrix_transposed(tmp_path: Path) -> None:
    """Rows are students, columns claims, cells the matrix's cells; a broken submission's row is its reason."""
    data, arrays = make_evidence()
    alice = write(tmp_path / "alice", data, arrays)
    keep = {"improved-99", "pooling-maps"}
    bob_data = {**data, "claims": [c for c in data["claims"] if c["id"] in keep]}
    bob = write(tmp_path / "bob", bob_data, {})
    students = [
        grade.Student("alice", tmp_path / "alice.py", wall_s=12.3),
        grade.Student("bob", tmp_path / "bob.keras"),
        grade.Student("carol", tmp_path / "carol.py", problem="carol.py: no such file; check the path"),
    ]
    cols = [grade.column(students[0], alice), grade.column(students[1], bob), grade.column(students[2], tmp_path)]
    assert [c.label for c in cols] == ["alice (12 s)", "bob", "carol"] and cols[2].note.startswith("carol.py: no such")
    html, md = matrix.build(cols, tmp_path / "out", name="class", title="Class table", transposed=True, intro="x")
    table = matrix.rows(cols, compare=False)
    assert not any(cell.differs or cell.test for row in table for cell in row.cells)
    grade.write_csv(tmp_path / "class.csv", students, cols, table)
    with open(tmp_path / "class.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    expected = {c["id"]: c for c in data["claims"]}["improved-99"]
    assert rows["alice"]["improved-99 verdict"] == expected["verdict"] == rows["bob"]["improved-99 verdict"]
    assert rows["bob"]["arch-basic-param-counts verdict"] == "absent" and rows["alice"]["wall_s"] == "12.3"
    assert (
        rows["carol"]["problem"] == "carol.py: no such file; check the path"
        and rows["carol"]["improved-99 verdict"] == ""
    )
    text = html.read_text()
    assert text.count('<tr class="matrix-row"') == 3 and f'colspan="{len(table)}">carol.py: no such file' in text
    lines = md.read_text().splitlines()
    assert lines[4].count("|") == len(table) + 2 and lines[6].startswith("| alice (12 s) | ")
    assert lines[-1] == "| carol | carol.py: no such file; check the path |"


def test_class_run_two_good_one_broken(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if not MNIST.is_dir():
        pytest.skip(f"real MNIST not found in {MNIST}")
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    shutil.copy(GOOD, class_dir / "alice.py")
    wider = GOOD.read_text().replace("Conv2D(8", "Conv2D(12")
    (tmp_path / "wider.py").write_text(wider)
    namespace: dict = {}
    exec(compile(wider, "wider.py", "exec"), namespace)
    namespace["build"]().save(class_dir / "bob.keras")
    (class_dir / "carol.py").write_text(GOOD.read_text().replace("layers.Dense(10", "layers.Dense(9"))
    out = tmp_path / "out"

    code = grade.main(
        [
            str(class_dir),
            "--out",
            str(out),
            "--",
            "-k",
            "improved-99 or pooling-maps or deeper-layer-shape",
            "--seeds",
            "1",
            "--claims-profile",
            "smoke",
            "--claims-cache",
            str(tmp_path / "cache"),
            "-p",
            "no:cacheprovider",
            "--mnist-dir",
            str(MNIST),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "[3/3] carol: not run:" in printed and "2 of 3 submissions checked" in printed
    assert "[1/3] alice: done in" in printed and "[2/3] bob: done in" in printed

    with open(out / "class.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["alice", "bob", "carol"]
    assert "the model outputs (9,), not (10,)" in rows["carol"]["problem"] and rows["carol"]["wall_s"] == ""
    for name in ("alice", "bob"):
        row = rows[name]
        assert row["problem"] == "" and float(row["wall_s"]) > 0
        assert row["pooling-maps verdict"] == "holds" and row["pooling-maps headline"] == "differing_elements = 0"
        assert row["improved-99 verdict"] == "inconclusive"  # one seed: no spread to test
        assert row["improved-99 headline"].startswith("test_accuracy = 0.")

    keys = {}
    for name in ("alice", "bob"):
        evidence = json.loads((out / "students" / name / "evidence.json").read_text())
        assert evidence["session"]["profile"] == "smoke"
        keys[name] = {r["key"] for r in evidence["runs"] if r["model"] == "improved_cnn" and r["model_source"]}
        assert len(keys[name]) == 1
    assert keys["alice"] != keys["bob"]
    log = (out / "students" / "alice" / "pytest.log").read_text()
    assert "SKIPPED" in log and "the claim is the notebook's layers[3] output shape" in log  # why it is absent

    html = (out / "class.html").read_text()
    assert 'data-row="carol"' in html and "the model outputs (9,), not (10,)" in html
    assert html.count('class="badge v-holds">holds') == 2
    md = (out / "class.md").read_text().splitlines()
    assert next(line for line in md if line.startswith("| |")).count("|") == 4  # corner + 2 claims
    assert any(line.startswith("| carol | ") and "outputs (9,)" in line for line in md)
