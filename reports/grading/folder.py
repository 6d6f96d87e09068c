"""The folder of submissions, in the layout an instructor downloads it in, and its slices.

Layouts (detected, or named with `--layout`), each a function from the folder to the students and the lines
to print:

- plain: one `NAME.py` (with a function `build`), `NAME.keras` or `NAME.ipynb` per student, the name the stem;
- nbgrader: `submitted/<student>/<assignment>/<file>` (the course folder, or its `submitted/`), the name the
  student's folder;
- canvas: "Download submissions", one flat folder of `lastfirst[_late]_<userid>_<submissionid>_<original>`,
  the name `lastfirst` (with `_<userid>` where two students share one), the latest submission graded (`canvas`);
- classroom: GitHub Classroom's `<assignment>-submissions/<assignment>-<username>/`, the name the username.

Every `.py`, `.keras` or `.ipynb` of a student is a candidate (in the nested layouts, under their folder, hidden
folders such as `.ipynb_checkpoints` aside); two for one student are an error naming both, unless
`--notebook NAME` (a glob, `fnmatch`) matches exactly one of them. Anything else is ignored with one line,
never a row. A `.zip` is unpacked (`unpack`) into the output folder first. `--shard I/N` takes every N-th
student from the I-th on, in name order, so that N jobs grade disjoint slices of equal size.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

SUFFIXES = (".py", ".keras", ".ipynb")
LAYOUTS = ("plain", "nbgrader", "canvas", "classroom")
HIDDEN = ("__pycache__", "__MACOSX")  # besides names starting with "."
CANVAS_NAME = re.compile(
    r"^(?P<name>[^_]+)_(?:(?P<late>late)_)?(?P<user>\d+)_(?P<submission>\d+)_(?P<original>.+?)(?:-(?P<upload>\d+))?"
    r"(?P<suffix>\.[^.]+)$",
    re.IGNORECASE,
)
"""Canvas's download name: lastfirst, `late` when late, user id, submission id, the original file name (a file
uploaded again under one name gets `-1`, `-2` before its extension)."""
UNZIPPED_MAX_BYTES = 4 * 2**30
"""A zip whose members would unpack to more than this is refused (a zip bomb; a class's notebooks are far less)."""

Found = tuple[list["Student"], list[str]]


class FolderError(Exception):
    """A folder that cannot be graded as it is; the message names the files and what to do."""


@dataclass(frozen=True)
class Student:
    """One submission: the student's name and the file."""

    name: str
    path: Path
    late: bool = False  # handed in after the deadline (Canvas says so in the file's name)

    @property
    def source(self) -> str:
        """The --model SOURCE: `file.py:build`, else the plain path (`file.keras`, `file.ipynb`)."""
        return f"{self.path}:build" if self.path.suffix == ".py" else str(self.path)


def find_students(directory: Path, layout: str | None = None, notebook: str | None = None) -> Found:
    """The submissions in `directory` by name, and the lines to print: the layout and why, each entry ignored and
    each file skipped. `layout` None detects it; `notebook` picks a student's file among several."""
    if not directory.is_dir():
        raise FolderError(f"{directory} is not a directory or a .zip; give the folder of submissions")
    why = f"--layout {layout}"
    if layout is None:
        layout, why = detect_layout(directory)
    finders: dict[str, Callable[[Path, str | None], Found]] = {
        "plain": plain, "nbgrader": nbgrader, "canvas": canvas, "classroom": classroom,
    }  # fmt: skip
    students, lines = finders[layout](directory, notebook)
    names = [s.name for s in students]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise FolderError(f"two submissions give the student name {' and '.join(twice)}; rename one of each")
    return sorted(students, key=lambda s: s.name), [f"layout {layout} ({why})", *lines]


def detect_layout(directory: Path) -> tuple[str, str]:
    """The layout of `directory` and the one-line reason it was recognised."""
    if directory.name == "submitted" or (directory / "submitted").is_dir():
        return "nbgrader", "a submitted/ folder"
    if directory.name.endswith("-submissions"):
        return "classroom", "an <assignment>-submissions folder"
    files = [p for p in visible(directory) if p.is_file() and p.suffix in SUFFIXES]
    if files and all(CANVAS_NAME.match(p.name) for p in files):
        return "canvas", "every submission named lastfirst_userid_submissionid_name"
    return "plain", "one file per student"


def visible(directory: Path) -> list[Path]:
    """The entries of `directory` in name order, hidden ones (a leading dot, __pycache__, __MACOSX) left out."""
    return [p for p in sorted(directory.iterdir()) if not p.name.startswith(".") and p.name not in HIDDEN]


def pick(name: str, candidates: list[tuple[Path, str]], notebook: str | None, root: Path) -> Path:
    """The one file of `name`'s candidates (path, the name --notebook matches): the only one, else the only one
    the glob `notebook` matches (on the name's last part; on all of it where the glob holds a '/'); otherwise an
    error naming them, as paths under `root`."""
    if len(candidates) == 1:
        return candidates[0][0]
    chosen = [
        path
        for path, label in candidates
        if notebook and fnmatchcase(label if "/" in notebook else PurePosixPath(label).name, notebook)
    ]
    if notebook and len(chosen) == 1:
        return chosen[0]
    listed = " and ".join(str(path.relative_to(root)) for path in chosen or [p for p, _ in candidates])
    if notebook:
        raise FolderError(
            f"--notebook {notebook} matches {len(chosen)} of {name}'s files ({listed}); make it match one"
        )
    both = "both" if len(candidates) == 2 else "all"
    raise FolderError(
        f"{listed} are {both} {name}'s; keep one submission per student, or pick one with --notebook NAME"
    )


def plain(directory: Path, notebook: str | None) -> Found:
    """NAME.py / NAME.keras / NAME.ipynb, one per student, the name the stem."""
    by_stem: dict[str, list[tuple[Path, str]]] = {}
    ignored = []
    for path in visible(directory):
        if not path.is_file() or path.suffix not in SUFFIXES:
            kind = "a folder" if path.is_dir() else "not a submission"
            ignored.append(
                f"ignored {path.name}: {kind} (a submission is NAME.py with a function build, NAME.keras or NAME.ipynb)"
            )
            continue
        by_stem.setdefault(path.stem, []).append((path, path.name))
    return [Student(stem, pick(stem, files, notebook, directory).resolve()) for stem, files in by_stem.items()], ignored


def nbgrader(directory: Path, notebook: str | None) -> Found:
    """submitted/<student>/<assignment>/<file>: the student's name is their folder's."""
    root = directory / "submitted" if (directory / "submitted").is_dir() else directory
    return nested(root, {folder: folder.name for folder in visible(root)}, notebook, directory)


def classroom(directory: Path, notebook: str | None) -> Found:
    """<assignment>-submissions/<assignment>-<username>/: the student's name is the repository's, less the prefix."""
    prefix = directory.name.removesuffix("-submissions") + "-"
    return nested(directory, {repo: repo.name.removeprefix(prefix) for repo in visible(directory)}, notebook, directory)


def nested(root: Path, folders: dict[Path, str], notebook: str | None, shown_from: Path) -> Found:
    """One student per folder (its path: the student's name): the one submission file under it."""
    students, ignored = [], []
    for folder, name in folders.items():
        where = folder.relative_to(shown_from)
        files = candidates(folder) if folder.is_dir() else []
        if not files:
            what = "no .py, .keras or .ipynb in it" if folder.is_dir() else "not a student's folder"
            ignored.append(f"ignored {where}: {what}")
            continue
        labelled = [(path, path.relative_to(folder).as_posix()) for path in files]
        students.append(Student(name, pick(name, labelled, notebook, shown_from).resolve()))
    return students, ignored


def candidates(folder: Path) -> list[Path]:
    """Every .py, .keras and .ipynb under `folder`, in hidden folders (.ipynb_checkpoints, .git) or __pycache__ not."""
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.suffix in SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") or part in HIDDEN for part in path.relative_to(folder).parts)
    ]


def canvas(directory: Path, notebook: str | None) -> Found:
    """Canvas's flat download: per student (user id) their latest submission (`latest`); the rest skipped, each
    said on a line, and a late one said."""
    by_user: dict[str, list[tuple[Path, re.Match[str]]]] = {}
    ignored = []
    for path in visible(directory):
        match = CANVAS_NAME.match(path.name) if path.is_file() else None
        if match is None or path.suffix not in SUFFIXES:
            kind = "a folder" if path.is_dir() else "not a submission" if match else "not a Canvas download name"
            ignored.append(f"ignored {path.name}: {kind} (a submission is lastfirst_userid_submissionid_name.ipynb)")
            continue
        by_user.setdefault(match["user"], []).append((path, match))
    lastfirst = [files[0][1]["name"] for files in by_user.values()]
    students, lines = [], []
    for user, files in by_user.items():
        name = files[0][1]["name"]
        name = f"{name}_{user}" if lastfirst.count(name) > 1 else name  # two students, one lastfirst
        graded, skipped = latest(files)
        path = pick(name, [(p, m["original"] + m["suffix"]) for p, m in graded], notebook, directory)
        lines += [f"skipped {p.name}: {why} ({name}'s)" for p, why in skipped]
        lines += [
            f"skipped {p.name}: not the file --notebook {notebook} picks ({name}'s)" for p, _ in graded if p != path
        ]
        late = bool(CANVAS_NAME.match(path.name)["late"])
        if late:
            lines.append(f"late: {path.name}, {name}'s graded submission, was handed in late")
        students.append(Student(name, path.resolve(), late))
    return students, ignored + lines


def latest(files: list[tuple[Path, re.Match[str]]]) -> tuple[list[tuple[Path, re.Match[str]]], list[tuple[Path, str]]]:
    """One student's Canvas files of their latest submission (the highest submission id: Canvas numbers them in
    the order they are made), each original name's last upload (the highest `-N`: Canvas renames a file uploaded
    again under one name `name-1`, `name-2`); and the others, each with why it is skipped."""
    newest = max(int(m["submission"]) for _, m in files)
    skipped = [(p, f"an earlier submission than {newest}") for p, m in files if int(m["submission"]) < newest]
    uploads: dict[str, list[tuple[Path, re.Match[str]]]] = {}
    for path, match in files:
        if int(match["submission"]) == newest:
            uploads.setdefault((match["original"] + match["suffix"]).lower(), []).append((path, match))
    graded = []
    for same in uploads.values():
        same.sort(key=lambda f: int(f[1]["upload"] or 0))
        graded.append(same[-1])
        skipped += [(p, f"an earlier upload than {same[-1][0].name}") for p, _ in same[:-1]]
    return graded, skipped


def unpack(archive: Path, destination: Path) -> Path:
    """Unpack the zip `archive` into `destination`/<its stem> (emptied first) and return the folder to grade: that
    one, or the only folder in it where it holds nothing else. Never next to the archive (it may be read-only)."""
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as e:
        raise FolderError(f"{archive} is not a readable zip ({e}); download it again") from None
    with zf:
        if sum(info.file_size for info in zf.infolist()) > UNZIPPED_MAX_BYTES:
            raise FolderError(f"{archive} unpacks to more than {UNZIPPED_MAX_BYTES // 2**30} GiB; not unpacked")
        folder = destination / archive.stem
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        zf.extractall(folder)  # members' absolute paths and '..' are made safe by zipfile itself
    inside = visible(folder)
    return inside[0] if len(inside) == 1 and inside[0].is_dir() else folder


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 1 <= I <= N -> (I, N)."""
    index, sep, count = text.partition("/")
    if sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
        return int(index), int(count)
    raise ValueError(f"--shard takes I/N with 1 <= I <= N (e.g. 2/4), not {text!r}")


def shard(students: list[Student], index: int, count: int) -> list[Student]:
    """The `index`-th of `count` slices (1-based): every count-th student from the index-th, in name order."""
    return students[index - 1 :: count]
