"""The layouts instructors download (plain, nbgrader, Canvas, GitHub Classroom, a zip of one), and two of them
graded for real at the smoke profile."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from reports import grade
from reports.grading import folder
from reports.grading.folder import FolderError, find_students
from tests.test_grade import SMOKE, needs_mnist, rows_of

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "class"


def touch(root: Path, *paths: str) -> Path:
    """Empty files at `paths` under `root` (their folders made): enough to detect a layout."""
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("")
    return root


def names_and_files(students: list[folder.Student], root: Path) -> list[tuple[str, str]]:
    return [(s.name, s.path.relative_to(root.resolve()).as_posix()) for s in students]


def test_a_plain_folder_is_one_file_per_student_named_by_its_stem(tmp_path: Path) -> None:
    touch(tmp_path, "alice.ipynb", "bob.py", "cleo.keras", "notes.txt")
    students, lines = find_students(tmp_path)
    assert names_and_files(students, tmp_path) == [("alice", "alice.ipynb"), ("bob", "bob.py"), ("cleo", "cleo.keras")]
    assert lines[0] == "layout plain (one file per student)" and lines[1].startswith("ignored notes.txt: not a")
    touch(tmp_path, "alice.py")
    with pytest.raises(FolderError, match=r"^alice.ipynb and alice.py are both alice's"):
        find_students(tmp_path)
    students, _ = find_students(tmp_path, notebook="*.ipynb")
    assert [s.path.name for s in students] == ["alice.ipynb", "bob.py", "cleo.keras"]


@pytest.mark.parametrize("given", ["course", "course/submitted"], ids=["course folder", "submitted folder"])
def test_nbgrader_names_each_student_by_their_folder(tmp_path: Path, given: str) -> None:
    touch(
        tmp_path / "course",
        "submitted/alice/ps1/cnn.ipynb",
        "submitted/alice/ps1/timestamp.txt",
        "submitted/alice/ps1/.ipynb_checkpoints/cnn-checkpoint.ipynb",  # Jupyter's autosave: never a candidate
        "submitted/bob/ps1/cnn.ipynb",
        "source/ps1/cnn.ipynb",  # the instructor's own folders beside submitted/ are not looked at
    )
    (tmp_path / "course" / "submitted" / "carol").mkdir()
    students, lines = find_students(tmp_path / given)
    assert names_and_files(students, tmp_path / "course") == [
        ("alice", "submitted/alice/ps1/cnn.ipynb"),
        ("bob", "submitted/bob/ps1/cnn.ipynb"),
    ]
    assert lines[0] == "layout nbgrader (a submitted/ folder)"
    assert lines[1].startswith("ignored ") and lines[1].endswith("carol: no .py, .keras or .ipynb in it")


def test_github_classroom_names_each_student_by_their_repository_less_the_assignment(tmp_path: Path) -> None:
    root = touch(
        tmp_path / "cnn-mnist-submissions",
        "cnn-mnist-alice/cnn.ipynb",
        "cnn-mnist-alice/README.md",
        "cnn-mnist-alice/.git/config.py",  # inside .git: never a candidate
        "cnn-mnist-bob-2/notebooks/cnn.ipynb",  # a username with a dash
    )
    students, lines = find_students(root)
    assert names_and_files(students, root) == [
        ("alice", "cnn-mnist-alice/cnn.ipynb"),
        ("bob-2", "cnn-mnist-bob-2/notebooks/cnn.ipynb"),
    ]
    assert lines == ["layout classroom (an <assignment>-submissions folder)"]


CANVAS = (
    "doejane_101_5001_cnn.ipynb",
    "doejane_101_5001_cnn-1.ipynb",
    "doejane_101_5001_cnn-2.ipynb",  # uploaded three times under one name: the last, -2, is graded
    "leeann_103_5003_cnn.ipynb",
    "leeann_late_103_5009_cnn-1.ipynb",  # a later submission, late: it is the one graded
    "smithbob_late_102_5002_model.keras",
    "marks.csv",
)


def test_canvas_grades_each_students_latest_submission_and_says_what_it_skipped(tmp_path: Path) -> None:
    touch(tmp_path, *CANVAS)
    students, lines = find_students(tmp_path)
    assert names_and_files(students, tmp_path) == [
        ("doejane", "doejane_101_5001_cnn-2.ipynb"),
        ("leeann", "leeann_late_103_5009_cnn-1.ipynb"),
        ("smithbob", "smithbob_late_102_5002_model.keras"),
    ]
    assert [s.late for s in students] == [False, True, True]  # Canvas's mark, carried to the row
    assert lines[0] == "layout canvas (every submission named lastfirst_userid_submissionid_name)"
    assert lines[1].startswith("ignored marks.csv: not a Canvas download name")
    assert set(lines[2:]) == {
        "skipped doejane_101_5001_cnn.ipynb: an earlier upload than doejane_101_5001_cnn-2.ipynb (doejane's)",
        "skipped doejane_101_5001_cnn-1.ipynb: an earlier upload than doejane_101_5001_cnn-2.ipynb (doejane's)",
        "skipped leeann_103_5003_cnn.ipynb: an earlier submission than 5009 (leeann's)",
        "late: leeann_late_103_5009_cnn-1.ipynb, leeann's graded submission, was handed in late",
        "late: smithbob_late_102_5002_model.keras, smithbob's graded submission, was handed in late",
    }


def test_two_canvas_students_with_one_lastfirst_are_told_apart_by_their_user_ids(tmp_path: Path) -> None:
    touch(tmp_path, "leeann_103_5003_cnn.ipynb", "leeann_104_5004_cnn.ipynb")
    students, _ = find_students(tmp_path)
    assert [s.name for s in students] == ["leeann_103", "leeann_104"]


def test_layout_overrides_the_detection(tmp_path: Path) -> None:
    touch(tmp_path, "doejane_101_5001_cnn.ipynb", "doejane_101_5001_cnn-1.ipynb")
    students, lines = find_students(tmp_path, "plain")
    assert [s.name for s in students] == ["doejane_101_5001_cnn", "doejane_101_5001_cnn-1"]
    assert lines == ["layout plain (--layout plain)"]
    touch(tmp_path, "alice.ipynb")  # not a Canvas name: detected as plain; under --layout canvas, one ignored line
    assert find_students(tmp_path)[1][0] == "layout plain (one file per student)"
    students, lines = find_students(tmp_path, "canvas")
    assert [s.name for s in students] == ["doejane"] and "ignored alice.ipynb: not a Canvas download name" in lines[1]


def test_two_notebooks_of_one_student_are_an_error_naming_both_unless_notebook_picks_one(tmp_path: Path) -> None:
    course = touch(tmp_path / "course", "submitted/alice/ps1/cnn.ipynb", "submitted/alice/ps1/scratch.ipynb")
    touch(course, "submitted/bob/ps1/cnn_final.ipynb")
    with pytest.raises(FolderError) as error:
        find_students(course)
    assert str(error.value) == (
        "submitted/alice/ps1/cnn.ipynb and submitted/alice/ps1/scratch.ipynb are both alice's; keep one submission "
        "per student, or pick one with --notebook NAME"
    )
    students, _ = find_students(course, notebook="cnn*.ipynb")  # a glob on the file's name
    assert names_and_files(students, course) == [
        ("alice", "submitted/alice/ps1/cnn.ipynb"),
        ("bob", "submitted/bob/ps1/cnn_final.ipynb"),  # one file: graded whatever its name
    ]
    assert find_students(course, notebook="ps1/cnn.ipynb")[0][0].path.name == "cnn.ipynb"  # with a '/': the path
    with pytest.raises(FolderError, match=r"^--notebook \*\.ipynb matches 2 of alice's files \(submitted/alice"):
        find_students(course, notebook="*.ipynb")
    with pytest.raises(FolderError, match=r"^--notebook final\.ipynb matches 0 of alice's files"):
        find_students(course, notebook="final.ipynb")


def test_notebook_picks_among_one_canvas_submissions_files_by_their_original_names(tmp_path: Path) -> None:
    touch(tmp_path, "doejane_101_5001_cnn.ipynb", "doejane_101_5001_cnn-1.ipynb", "doejane_101_5001_helpers.py")
    with pytest.raises(FolderError, match=r"^doejane_101_5001_cnn-1.ipynb and doejane_101_5001_helpers.py are both"):
        find_students(tmp_path)
    students, lines = find_students(tmp_path, notebook="cnn.ipynb")  # the original name, before Canvas's -1
    assert [s.path.name for s in students] == ["doejane_101_5001_cnn-1.ipynb"]
    assert "skipped doejane_101_5001_helpers.py: not the file --notebook cnn.ipynb picks (doejane's)" in lines


def test_a_zip_is_unpacked_into_the_output_folder_never_beside_it(tmp_path: Path) -> None:
    canvas = touch(tmp_path / "download", *CANVAS)
    archive = tmp_path / "input" / "submissions.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(canvas.iterdir()):
            zf.write(path, path.name)
    course = touch(tmp_path / "course", "submitted/alice/ps1/cnn.ipynb")
    with zipfile.ZipFile(tmp_path / "input" / "course.zip", "w") as zf:  # one top folder: graded from inside it
        zf.write(course / "submitted/alice/ps1/cnn.ipynb", "course/submitted/alice/ps1/cnn.ipynb")
    os.chmod(archive.parent, stat.S_IRUSR | stat.S_IXUSR)  # the input may be read-only
    try:
        unpacked = folder.unpack(archive, tmp_path / "out" / "unpacked")
        assert unpacked == tmp_path / "out" / "unpacked" / "submissions"
        students, lines = find_students(unpacked)
        assert lines[0].startswith("layout canvas") and [s.name for s in students] == ["doejane", "leeann", "smithbob"]
        unpacked = folder.unpack(tmp_path / "input" / "course.zip", tmp_path / "out" / "unpacked")
        assert unpacked == tmp_path / "out" / "unpacked" / "course" / "course"
        assert [s.name for s in find_students(unpacked)[0]] == ["alice"]
        assert sorted(p.name for p in archive.parent.iterdir()) == ["course.zip", "submissions.zip"]
    finally:
        os.chmod(archive.parent, stat.S_IRWXU)
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(FolderError, match="bad.zip is not a readable zip"):
        folder.unpack(tmp_path / "bad.zip", tmp_path / "out")


def test_the_grader_unpacks_a_zip_and_stops_on_a_folder_error_with_one_line(tmp_path: Path, capsys) -> None:
    download = touch(tmp_path / "download", "doejane_101_5001_cnn.ipynb", "doejane_101_5001_extra.ipynb")
    with zipfile.ZipFile(tmp_path / "submissions.zip", "w") as zf:
        for path in download.iterdir():
            zf.write(path, path.name)
    assert grade.main([str(tmp_path / "submissions.zip"), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert f"unpacked {tmp_path / 'submissions.zip'} into {tmp_path / 'out' / 'unpacked' / 'submissions'}" in (
        captured.out
    )
    assert captured.err == (
        "error: doejane_101_5001_cnn.ipynb and doejane_101_5001_extra.ipynb are both doejane's; keep one submission "
        "per student, or pick one with --notebook NAME\n"
    )
    assert grade.main([str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "missing is not a directory or a .zip" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        grade.parse([str(download), "--out", "x", "--layout", "moodle"])
    assert "invalid choice: 'moodle'" in capsys.readouterr().err


# --- for real: an nbgrader tree and a Canvas download, graded at the smoke profile -------------------------------


@pytest.mark.slow
def test_an_nbgrader_tree_and_a_canvas_download_graded_one_row_per_student(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each student graded once, from the notebook the layout's rule picks: an nbgrader student's only notebook
    (not Jupyter's checkpoint of a broken one), a Canvas student's last upload and another's late resubmission
    (their earlier files, the broken hal.ipynb, would make the row a problem). The Canvas class uses the same
    models as the nbgrader one, so with one runs cache its grading trains nothing."""
    needs_mnist()
    monkeypatch.delenv("MNIST_DIR", raising=False)  # the validation child's load_data: SMOKE's --mnist-dir, handed on
    course = tmp_path / "course"
    for student, notebook in (("alice", "fay"), ("bob", "eve")):
        (course / "submitted" / student / "cnn" / ".ipynb_checkpoints").mkdir(parents=True)
        shutil.copy(EXAMPLES / f"{notebook}.ipynb", course / "submitted" / student / "cnn" / "cnn.ipynb")
        shutil.copy(EXAMPLES / "hal.ipynb", course / "submitted" / student / "cnn" / ".ipynb_checkpoints" / "x.ipynb")
    canvas = tmp_path / "canvas"
    canvas.mkdir()
    for name, notebook in (
        ("doejane_101_5001_cnn.ipynb", "hal"),
        ("doejane_101_5001_cnn-1.ipynb", "fay"),
        ("smithbob_102_5002_cnn.ipynb", "hal"),
        ("smithbob_late_102_5007_cnn.ipynb", "eve"),
    ):
        shutil.copy(EXAMPLES / f"{notebook}.ipynb", canvas / name)
    options = ["--", "-k", "pooling-maps or arch-basic-param-counts", *SMOKE, "--claims-cache", str(tmp_path / "cache")]
    expected = {
        "nbgrader": (course, {"alice": "cnn.ipynb", "bob": "cnn.ipynb"}),
        "canvas": (canvas, {"doejane": "doejane_101_5001_cnn-1.ipynb", "smithbob": "smithbob_late_102_5007_cnn.ipynb"}),
    }
    for layout, (given, files) in expected.items():
        assert grade.main([str(given), "--out", str(tmp_path / layout), "-j", "2", *options]) == 0
        printed = capsys.readouterr().out
        assert f"layout {layout} (" in printed and "2 of 2 submissions checked" in printed, printed
        rows = rows_of(tmp_path / layout / "class.csv")
        assert list(rows) == ["notebook", *files]
        for name, file in files.items():
            assert (rows[name]["file"], rows[name]["problem"]) == (file, "")
            assert rows[name]["pooling-maps verdict"] in ("not evidence", "not applicable")
        assert [rows[name]["late"] for name in files] == (["", "yes"] if layout == "canvas" else ["", ""])
    for name in ("notebook", "students/doejane", "students/smithbob"):
        runs = json.loads((tmp_path / "canvas" / name / "evidence.json").read_text())["runs"]
        assert runs and {r["source"] for r in runs} == {"cached"}, name  # the nbgrader class's runs, loaded
    assert "skipped smithbob_102_5002_cnn.ipynb: an earlier submission than 5007 (smithbob's)" in printed
    assert "late: smithbob_late_102_5007_cnn.ipynb, smithbob's graded submission, was handed in late" in printed
