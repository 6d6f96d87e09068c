"""`python -m reports.grade SUBMISSIONS_DIR --out DIR -- [pytest options]`: check every student's model.

One `.py` (with a function `build`) or `.keras` per student, the file's stem the student's name. Each
submission is validated first (a broken one gets a row that says why and is not run); each good one
replaces the notebook's model for one `pytest claims` session of its own (evidence in
DIR/students/NAME/, the notebook's runs shared through the runs cache). Writes DIR/class.html,
DIR/class.md and DIR/class.csv: one row per student, one column per claim, verdict and headline.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from reports import matrix
from reports.evidence import EvidenceError, load

REPO = Path(__file__).resolve().parent.parent
SUFFIXES = (".py", ".keras")


@dataclass
class Student:
    """One submission and what became of it."""

    name: str
    path: Path
    problem: str = ""  # why it was not checked, or why its session left no evidence
    wall_s: float | None = None

    @property
    def source(self) -> str:
        """The --model SOURCE: `file.py:build` or `file.keras`."""
        return f"{self.path}:build" if self.path.suffix == ".py" else str(self.path)


def find_students(directory: Path) -> list[Student]:
    """Every visible file in `directory`, sorted; other suffixes get a row saying what a submission is."""
    students = []
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")):
        student = Student(path.stem, path.resolve())
        if path.suffix not in SUFFIXES:
            student.problem = f"{path.name}: not a submission; hand in NAME.py (with a function build) or NAME.keras"
        students.append(student)
    stems = [s.name for s in students]
    for s in students:
        if stems.count(s.name) > 1:
            s.name = s.path.name  # alice.py and alice.keras: keep both rows apart
    return students


def validate(student: Student) -> None:
    """Load and check the submission as `--model` will; record its one-line problem, if any."""
    from fixtures.submissions import SubmissionError
    from fixtures.submissions import load as load_submission

    try:
        load_submission(student.source)
    except SubmissionError as e:
        student.problem = str(e)


def run_claims(student: Student, model_name: str, evidence: Path, pytest_args: list[str]) -> None:
    """One `pytest claims` session with the student's model; its output goes to evidence/pytest.log."""
    evidence.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "claims",
        "--model",
        f"{model_name}={student.source}",
        "--claims-evidence",
        str(evidence),
        "--fresh-evidence",
        "-rsx",
        *pytest_args,
    ]
    start = time.perf_counter()
    with open(evidence / "pytest.log", "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        result = subprocess.run(
            command,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")},
        )
    student.wall_s = time.perf_counter() - start
    if result.returncode not in (0, 1):  # 1: some claim refuted; anything else: the session itself went wrong
        lines = (evidence / "pytest.log").read_text(errors="replace").strip().splitlines()
        student.problem = (
            f"pytest exited {result.returncode}: {lines[-1] if lines else 'no output'} (see {evidence / 'pytest.log'})"
        )


def column(student: Student, evidence: Path) -> matrix.Column:
    """The student's row of the class table: their evidence, or the reason there is none."""
    label = student.name if student.wall_s is None else f"{student.name} ({student.wall_s:.0f} s)"
    if student.problem:
        return matrix.Column(label, None, student.problem)
    try:
        return matrix.Column(label, load(evidence))
    except EvidenceError as e:
        return matrix.Column(label, None, f"no evidence: {e}")


def write_csv(path: Path, students: list[Student], cols: list[matrix.Column], table: list[matrix.Row]) -> None:
    """One row per student: name, file, wall time, problem, then each claim's verdict and headline."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "student",
                "file",
                "wall_s",
                "problem",
                *(f"{r.claim_id} {part}" for r in table for part in ("verdict", "headline")),
            ]
        )
        for j, (student, col) in enumerate(zip(students, cols, strict=True)):
            cells = [v for r in table for v in (("", "") if col.note else (r.cells[j].verdict, r.cells[j].headline))]
            writer.writerow(
                [
                    student.name,
                    student.path.name,
                    "" if student.wall_s is None else f"{student.wall_s:.1f}",
                    col.note,
                    *cells,
                ]
            )


def main(argv: list[str] | None = None) -> int:
    """Check the class; 0 once the table is written (whatever the verdicts), 2 without submissions."""
    parser = argparse.ArgumentParser(
        prog="python -m reports.grade", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("submissions", type=Path, help="directory with one NAME.py or NAME.keras per student")
    parser.add_argument("--out", type=Path, required=True, help="where class.html/.md/.csv and students/ go")
    parser.add_argument(
        "--model-name",
        default="improved_cnn",
        choices=["improved_cnn", "basic_cnn", "mlp"],
        help="the notebook's model each submission replaces (default: improved_cnn)",
    )
    parser.epilog = "Options after -- go to each student's pytest session, e.g. -- --seeds 1 -n 2 --claims-cache DIR"
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.pytest_args = argv[split + 1 :]
    if not args.submissions.is_dir():
        print(f"error: {args.submissions} is not a directory; give the folder of submissions", file=sys.stderr)
        return 2
    students = find_students(args.submissions)
    if not students:
        print(
            f"error: {args.submissions} holds no submissions; put one NAME.py or NAME.keras per student in it",
            file=sys.stderr,
        )
        return 2
    evidence = {s.name: (args.out / "students" / s.name).resolve() for s in students}
    for number, student in enumerate(students, 1):
        prefix = f"[{number}/{len(students)}] {student.name}:"
        if not student.problem:
            validate(student)
        if student.problem:
            print(f"{prefix} not run: {student.problem}", flush=True)
            continue
        print(f"{prefix} running the claims ...", flush=True)
        run_claims(student, args.model_name, evidence[student.name], args.pytest_args)
        print(
            f"{prefix} done in {student.wall_s:.0f} s" + (f"; {student.problem}" if student.problem else ""), flush=True
        )
    cols = [column(s, evidence[s.name]) for s in students]
    checked = sum(not c.note for c in cols)
    intro = (
        f"Each student's model replaced the notebook's {args.model_name} for one pytest session "
        f"(pytest options: {' '.join(args.pytest_args) or 'none'}); the time is that session's wall time. "
        "absent: the claim did not apply to that model (its pytest.log names why) or was not selected."
    )
    html, md = matrix.build(cols, args.out, name="class", title="Class table", transposed=True, intro=intro)
    write_csv(args.out / "class.csv", students, cols, matrix.rows(cols, compare=False))
    print(f"{checked} of {len(students)} submissions checked")
    for path in (html, md, args.out / "class.csv"):
        print(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
