"""The folder of submissions: one `NAME.py` (with a function `build`) or `NAME.keras` per student, and its slices.

Anything else in the folder (a README, a spreadsheet, a subfolder) is ignored with one line, never a row;
two submissions with the same stem are an error naming both, since each student is one row. `--shard I/N`
takes every N-th student from the I-th on, in name order, so that N jobs grade disjoint slices of equal size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".py", ".keras", ".ipynb")


class FolderError(Exception):
    """A folder that cannot be graded as it is; the message names the files and what to do."""


@dataclass(frozen=True)
class Student:
    """One submission: the student's name (the file's stem) and the file."""

    name: str
    path: Path

    @property
    def source(self) -> str:
        """The --model SOURCE: `file.py:build`, else the plain path (`file.keras`, `file.ipynb`)."""
        return f"{self.path}:build" if self.path.suffix == ".py" else str(self.path)


def find_students(directory: Path) -> tuple[list[Student], list[str]]:
    """The submissions in `directory`, by name, and one line per other entry saying it was ignored."""
    students: dict[str, Student] = {}
    ignored = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.name == "__pycache__":
            continue
        if not path.is_file() or path.suffix not in SUFFIXES:
            kind = "a folder" if path.is_dir() else "not a submission"
            ignored.append(
                f"ignored {path.name}: {kind} (a submission is NAME.py with a function build, or NAME.keras)"
            )
            continue
        if path.stem in students:
            raise FolderError(
                f"{students[path.stem].path.name} and {path.name} are both {path.stem}'s; "
                "keep one submission per student"
            )
        students[path.stem] = Student(path.stem, path.resolve())
    return sorted(students.values(), key=lambda s: s.name), ignored


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 1 <= I <= N -> (I, N)."""
    index, sep, count = text.partition("/")
    if sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
        return int(index), int(count)
    raise ValueError(f"--shard takes I/N with 1 <= I <= N (e.g. 2/4), not {text!r}")


def shard(students: list[Student], index: int, count: int) -> list[Student]:
    """The `index`-th of `count` slices (1-based): every count-th student from the index-th, in name order."""
    return students[index - 1 :: count]
