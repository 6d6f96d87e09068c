"""The class table, read from the session directories alone: one row per student, one cell per claim.

A cell is the claim's verdict with its headline number when the student's evidence holds it; else what
pytest's JUnit report says of the test: skipped without a verdict is *not applicable* (with the skip's
reason), an error or a failure without a verdict is *error* (with its message), absent is *not run*.
A verdict taken at a profile that is not evidence (smoke) is *not evidence*, never refuted. A row whose
session never ran or was stopped (a broken submission, a limit) is that reason alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fixtures.profiles import PROFILES
from fixtures.records import Headline
from reports.evidence import Evidence, EvidenceError, display_verdict, load
from reports.grading.claims import ClaimInfo
from reports.grading.feedback import FEEDBACK_FILE
from reports.grading.sessions import Result
from reports.matrix import headline_text

KINDS = (
    "holds",
    "refuted",
    "known refutation",
    "inconclusive",
    "not applicable",
    "error",
    "not evidence",
    "not run",
)
NOT_CHECKED = "not checked"  # a student whose session never ran or was stopped: counted once per claim
REASON_CHARS = 300


@dataclass(frozen=True)
class Cell:
    """One claim for one student: its kind (KINDS), headline text, reason, and the headline's name and values."""

    kind: str
    headline: str = ""
    reason: str = ""
    name: str = ""
    values: tuple[float, ...] = ()

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None


@dataclass
class Row:
    """One session's row: what became of it, and a cell per claim (empty when it has a problem)."""

    result: Result
    directory: Path
    cells: dict[str, Cell] = field(default_factory=dict)
    notebook: list[str] = field(default_factory=list)  # what a notebook submission's extraction found, line by line

    @property
    def checked(self) -> bool:
        return not self.result.problem

    @property
    def log(self) -> Path:
        """The session's pytest.log, else its validation's log: where to read what happened."""
        session = self.directory / "pytest.log"
        return session if session.is_file() else self.directory / "validate.log"

    @property
    def feedback(self) -> Path | None:
        """The student's feedback report (reports/grading/feedback.py), where their session left evidence."""
        path = self.directory / FEEDBACK_FILE
        return path if path.is_file() else None


def one_line(text: str, source: str = "") -> str:
    """A reason on one line, cut to REASON_CHARS, with the submission's absolute path shortened to its file name."""
    text = " ".join(text.split())
    if source:
        text = text.replace(source, Path(source).name)
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def junit_outcomes(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(classname, name) -> (outcome, message) of every test case in pytest's JUnit XML ({} if unreadable)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    outcomes = {}
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("skipped", "error", "failure"):
                outcome, message = child.tag, child.get("message") or (child.text or "").strip()
                break
        outcomes[case.get("classname", ""), case.get("name", "")] = (outcome, message)
    return outcomes


def cell_of(claim: ClaimInfo, evidence: Evidence | None, junit: dict, source: str) -> Cell:
    """The cell of `claim` from the session's evidence, else from its JUnit report."""
    record = evidence.claim(claim.id) if evidence else None
    if record is not None:
        headline = record.headline or Headline()
        verdict = display_verdict(record)
        values = tuple(float(v) for v in headline.values)
        common = {"headline": headline_text(record), "name": headline.name, "values": values}
        profile = evidence.taken(record).profile or "notebook"
        if profile in PROFILES and not PROFILES[profile].is_evidence:
            return Cell("not evidence", reason=f"{profile} profile: not evidence (its rule gave {verdict})", **common)
        return Cell(verdict, **common)
    outcome, message = junit.get(claim.junit_name, ("", ""))
    if outcome == "skipped":
        return Cell("not applicable", reason=one_line(message, source))
    if outcome in ("error", "failure"):
        return Cell("error", reason=one_line(message.splitlines()[0] if message else outcome, source))
    if outcome == "passed":
        return Cell("error", reason="the test passed without recording a verdict")
    return Cell("not run", reason="not in the session's report")


def read_row(directory: Path, claims: list[ClaimInfo]) -> Row:
    """The row of one session directory (session.json, evidence.json, junit.xml)."""
    row = Row(Result.read(directory), directory)
    if not row.checked:
        return row
    evidence = None
    if (directory / "evidence.json").is_file():
        try:
            evidence = load(directory)
        except EvidenceError as e:
            row.result.problem = f"unreadable evidence: {e}"
            return row
    junit = junit_outcomes(directory / "junit.xml")
    if evidence is None and not junit:
        row.result.problem = "the session left neither evidence nor a test report (see its pytest.log)"
        return row
    row.cells = {c.id: cell_of(c, evidence, junit, row.result.path) for c in claims}
    row.notebook = notebook_notes(evidence) if evidence else []
    return row


def notebook_notes(evidence: Evidence) -> list[str]:
    """The lines a notebook submission adds to its row: the model chosen and why, the student's own fit (not used),
    errors in later cells, the extraction time, and the reported accuracy against improved-99's measured one."""
    lines = []
    for record in (evidence.session.submissions or {}).values():
        chosen = record.get("chosen")
        if not chosen:
            continue
        lines.append(
            f"notebook: {chosen['variable'] or 'an unnamed model'} from cell {chosen['cell']} ({chosen['why']}); "
            f"extracted in {record['seconds']:.1f} s, network {record['network']}"
        )
        lines.append(record["fit_note"])
        errors = [f"cell {e['cell']} {e['type']}: {e['message']}" for e in record.get("errors", [])]
        if errors:
            lines.append(f"cells that raised with training disabled, and the run went on: {'; '.join(errors)}")
        reported = record.get("reported")
        if reported:
            lines.append(f"reported test accuracy {reported['value']:.4f} (cell {reported['cell']})")
    claim = evidence.claim("improved-99")
    against = claim.measured.get("reported") if claim else None
    if against:
        lines.append(f"improved-99: {against['text']}")
    return lines


@dataclass
class ClassTable:
    """The notebook's session (its claims shown once, above), the students' rows, and the student claims."""

    notebook: Row | None
    notebook_claims: list[ClaimInfo]
    students: list[Row]
    claims: list[ClaimInfo]

    @property
    def rows(self) -> list[Row]:
        """The notebook's reference row first, then the students'."""
        return ([self.notebook] if self.notebook else []) + self.students

    def counts(self) -> dict[str, Counter]:
        """Per student claim: how many students' cells are of each kind (NOT_CHECKED: no session evidence)."""
        return {
            c.id: Counter(row.cells[c.id].kind if row.checked else NOT_CHECKED for row in self.students)
            for c in self.claims
        }

    def count_kinds(self) -> list[str]:
        """The kinds the summary shows: the four an instructor asks about always, the others when they occur."""
        seen = {kind for counter in self.counts().values() for kind in counter}
        always = {"holds", "refuted", "inconclusive", "not applicable"}
        return [k for k in (*KINDS, NOT_CHECKED) if k in always or k in seen]

    def footnotes(self) -> dict[str, int]:
        """Every distinct reason of a shown cell, numbered in reading order (notebook first, then row by row)."""
        notes: dict[str, int] = {}
        cells = [self.notebook.cells.get(c.id) for c in self.notebook_claims] if self.notebook else []
        cells += [row.cells.get(c.id) for row in self.rows for c in self.claims]
        for cell in cells:
            if cell is not None and cell.reason and cell.reason not in notes:
                notes[cell.reason] = len(notes) + 1
        return notes
