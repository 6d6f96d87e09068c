"""The class's pytest sessions, each in a child process under its limits: validation, the notebook's, a student's.

Every session writes into a directory of its own: `evidence.json` (and its arrays), `junit.xml` (pytest's
report: the reason of every skipped or errored claim), `pytest.log`, and `session.json`, what became of it
(`Result`). The class table is built from these directories alone, so slices graded on other machines merge.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reports.grading.folder import Student
from reports.grading.limits import Limits, Outcome, run_limited, size_text

REPO = Path(__file__).resolve().parent.parent.parent
RESULT_FILE = "session.json"
PRICE_FILE = "price.json"
VALIDATE_S = 300.0
"""Default wall-time limit of a validation (`--validate-timeout`): importing Keras and building one model
takes seconds, so a builder still running after this will not return in time for training either."""


@dataclass
class Result:
    """What became of one session (a student's, or the notebook's: `reference`), as session.json records it."""

    name: str
    file: str = ""  # the submission's file name ("" for the notebook's session)
    path: str = ""  # its absolute path, shortened to the file name in the reasons shown
    reference: bool = False
    problem: str = ""  # why there is no evidence: a broken submission, a limit it hit, a crash
    wall_s: float | None = None  # the session's wall time (validation not included)
    peak_bytes: int | None = None  # the most memory its processes held at once
    late: bool = False  # the submission was handed in late

    @classmethod
    def of(cls, student: Student, problem: str = "") -> Result:
        """A student's Result, before their session: who, which file, whether late, and a problem if it has one."""
        return cls(student.name, student.path.name, str(student.path), problem=problem, late=student.late)

    def save(self, directory: Path) -> None:
        """Write session.json into `directory` (created if need be): the row's source when the page is built."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / RESULT_FILE).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, directory: Path) -> Result:
        """The Result a session saved in `directory`."""
        return cls(**json.loads((directory / RESULT_FILE).read_text()))


def child_env() -> dict[str, str]:
    """The children's environment: the grader's, with TensorFlow's C++ logging quiet unless asked for."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def last_line(path: Path) -> str:
    """The last non-empty line of a log file ('' if none)."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def validate(
    student: Student,
    directory: Path,
    limits: Limits,
    *,
    price: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    stop: threading.Event | None = None,
    on_poll: Callable[[float, int], None] | None = None,
) -> str:
    """Check the submission in a child (`python -m fixtures.submissions`) under `limits`, with `env` (default
    `child_env()`); '' or its one-line problem. With a `price` request the child also times the model's training
    and writes PRICE_FILE into `directory` (`read_price`)."""
    directory.mkdir(parents=True, exist_ok=True)
    out, log = directory / "validate.out", directory / "validate.log"
    command = [sys.executable, "-m", "fixtures.submissions", student.source]
    (directory / PRICE_FILE).unlink(missing_ok=True)
    if price is not None:
        request = directory / "price-request.json"
        request.write_text(json.dumps({**price, "out": str(directory / PRICE_FILE)}))
        command += ["--price", str(request)]
    with open(out, "w") as stdout, open(log, "w") as stderr:
        outcome = run_limited(
            command,
            limits,
            stdout=stdout,
            stderr=stderr,
            cwd=REPO,
            env=env or child_env(),
            stop=stop,
            on_poll=on_poll,
        )
    if outcome.limit:
        return f"stopped while validating the builder: {outcome.limit}"
    if outcome.returncode == 0:
        return ""
    if outcome.returncode == 1 and last_line(out):
        return last_line(out).replace(str(student.path), student.path.name)
    return f"validating it crashed (exit {outcome.returncode}): {last_line(log) or 'no output'} (see its validate.log)"


def read_price(directory: Path) -> dict[str, Any] | None:
    """The price the validation child wrote into `directory`; None without one (its timing failed: validate.log)."""
    try:
        return json.loads((directory / PRICE_FILE).read_text())
    except (OSError, ValueError):
        return None


def run_session(
    result: Result,
    nodeids: list[str],
    directory: Path,
    pytest_args: list[str],
    limits: Limits,
    *,
    model: str | None = None,
    stop: threading.Event | None = None,
    on_poll: Callable[[float, int], None] | None = None,
) -> None:
    """One pytest session of `nodeids` (with `--model MODEL` for a student) into `directory`, under `limits`;
    fills in `result` (wall time, peak memory, the limit or crash that ended it)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("evidence.json", "junit.xml"):
        (directory / stale).unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        *nodeids,
        *(["--model", model] if model else []),
        "--claims-evidence",
        str(directory),
        "--fresh-evidence",
        "--junitxml",
        str(directory / "junit.xml"),
        "-rsx",
        *pytest_args,
    ]
    log_path = directory / "pytest.log"
    with open(log_path, "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        outcome: Outcome = run_limited(
            command, limits, stdout=log, cwd=REPO, env=child_env(), stop=stop, on_poll=on_poll
        )
    result.wall_s, result.peak_bytes = outcome.wall_s, outcome.peak_bytes
    if outcome.limit:
        result.problem = f"stopped after {outcome.wall_s:.0f} s: {outcome.limit}"
    elif outcome.returncode not in (0, 1):  # 1: some claim refuted; anything else: the session itself went wrong
        result.problem = (
            f"pytest exited {outcome.returncode}: {last_line(log_path) or 'no output'} (see its pytest.log)"
        )


def describe(result: Result) -> str:
    """One line for the terminal: done in how long, or what stopped it; the peak memory."""
    peak = f", peak {size_text(result.peak_bytes)}" if result.peak_bytes else ""
    done = result.problem or f"done in {result.wall_s:.0f} s"
    return done + peak
