"""`python -m reports.grade SUBMISSIONS --out DIR -- [pytest options]`: check a whole class of students' models.

The submissions as the instructor downloaded them (a plain folder, nbgrader's, Canvas's or GitHub Classroom's, or
a zip of one: reports/grading/folder.py); other files are ignored. First every
submission is validated in a child process, K at a time (`-j`), which also times a few training steps of its model
against the notebook's to price its session, so that the class's first ETA is priced per student. The claims about
the notebook's own models then run once, in the notebook's session, which also trains the baseline runs the
students' claims compare against (shared through the runs cache) and gives the reference row. Then each valid
student, K at a time: the claims that use the replaced model run in a pytest session of the student's own, each
under a wall-time and a memory limit that end only that student's session. Writes DIR/class.html (with figures),
DIR/class.md, DIR/class.csv.

`--shard I/N` grades the I-th of N slices of the folder (one job of a CI matrix or a Slurm array);
`python -m reports.grade --merge DIR... --out DIR` builds one class page from the slices' outputs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from fixtures.backend import cpu_cores, thread_environment, threads_for
from reports.grading import feedback, page
from reports.grading.claims import ClassPlan, collect
from reports.grading.folder import LAYOUTS, FolderError, Student, find_students, parse_shard, shard, unpack
from reports.grading.limits import Limits, parse_size, size_text
from reports.grading.sessions import (
    REPO,
    RESULT_FILE,
    VALIDATE_S,
    Result,
    child_env,
    describe,
    read_price,
    run_session,
    validate,
)
from reports.grading.status import ClassStatus, schedule_s
from reports.grading.table import ClassTable, read_row

PLAN_FILE = "class-plan.json"
GRADING_FILE = "grading.json"
OWN_OPTIONS = ("--model", "--claims-evidence", "--junitxml", "--junit-xml")
SESSION_OVERHEAD_S = 20.0
"""A student's session's time besides training and loading the submission (start-up, data, the claims' own
measurements), for the ETA: 17-18 s measured for each of three students whose runs were all cached (2 sessions at
once on 2 cores, 3 seeds, 2026-12-03). The validation measures the loading (a notebook's extraction) per student."""
NOTEBOOK_OVERHEAD_S = 60.0
"""The same for the notebook's session, which also times its models' steps (cnn-vs-mlp-time): 53 s measured with
its runs cached, on the same class."""
TIMEOUT_BASE_S = 600.0
TIMEOUT_FACTOR = 4.0
"""Default wall-time limit of a student's session: TIMEOUT_BASE_S plus this many times its planned training
time (cost model), so it scales with seeds, epochs and the model's measured speed."""
MEMORY_SHARE = 0.8
"""Default memory limit: this share of the machine's memory, divided among the sessions that run at once."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop the grading as Ctrl-C does (a scheduler's end of job, a closed terminal): the children
lead sessions of their own, so they would not get the signal and would outlive the grader."""


def gpu_count() -> int:
    """NVIDIA GPUs `nvidia-smi -L` lists (0 without the tool), counted without importing a backend."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listed.splitlines())


def default_jobs(cores: int, workers: int, gpus: int) -> int:
    """Students at once: on CPUs one session per 2 cores per xdist worker (each worker keeps 2 threads or more);
    with GPUs two sessions per GPU (a student's small CNN leaves a card mostly idle; memory grows on demand),
    at most one worker per core."""
    workers = max(1, workers)
    return max(1, cores // (2 * workers)) if not gpus else max(1, min(2 * gpus, cores // workers))


def session_threads(pytest_args: list[str], jobs: int, workers: int, cores: int) -> list[str]:
    """`--backend-threads T` for a student's session, T = max(1, cores // (jobs x workers)): the xdist workers'
    thread policy over all the sessions that run at once. Nothing when one runs at a time or the options choose."""
    if jobs <= 1 or any(a.startswith("--backend-threads") for a in pytest_args):
        return []
    return ["--backend-threads", str(max(1, cores // (jobs * max(1, workers))))]


def expected_session_s(training_s: float, workers: int, overhead_s: float = SESSION_OVERHEAD_S) -> float:
    """A session's expected wall time by the cost model: its training over its workers, plus the overhead."""
    return overhead_s + training_s / max(1, workers)


def step_ratio(price: dict, batch_size: int) -> float:
    """The student's training step's wall time over the notebook model's at `batch_size`, as the validation timed
    them in turn (`fixtures.submissions.step_seconds`)."""
    step_s = price["step_s"][str(batch_size)]
    return step_s["student"] / step_s["notebook"]


def student_training_s(price: dict | None, runs: list[dict]) -> float:
    """Expected training seconds of a student's session: each of the replaced model's `runs` the cache does not hold
    for this student, at the notebook's model's cost for it (the session plan's, from the cache's epoch times) times
    the student's step over the notebook model's (`step_ratio`). Without a price, every run at the notebook's cost."""
    if price is None:
        return sum(r["cost_s"] for r in runs)
    return sum(
        r["cost_s"] * step_ratio(price, r["spec"]["batch_size"])
        for r, cached in zip(runs, price["cached"], strict=True)
        if not cached
    )


def price_text(price: dict | None, runs: list[dict], model_name: str, session_s: float) -> str:
    """What one student's session is priced at, in one line."""
    if price is None:
        why = "its steps could not be timed: see validate.log"
        return f"priced as the notebook's {model_name} ({why}): session ~{session_s / 60:.1f} min"
    ratios = ", ".join(f"{step_ratio(price, int(b)):.2f}" for b in price["step_s"]) or "-"
    return (
        f"step {ratios} x the notebook's {model_name}, {sum(price['cached'])} of {len(runs)} runs cached: "
        f"session ~{session_s / 60:.1f} min"
    )


def first_eta(notebook_s: float, sessions_s: list[float], jobs: int, validated_s: float) -> str:
    """The ETA line printed once every submission is validated and priced: the notebook's session, then the
    students' priced sessions handed to `jobs` slots in order (`schedule_s`)."""
    eta = notebook_s + schedule_s(sessions_s, jobs)
    return (
        f"ETA {eta / 60:.1f} min by the cost model, after {validated_s:.0f} s validating: the notebook's session "
        f"~{notebook_s / 60:.1f} min, then {len(sessions_s)} students' sessions, {jobs} at once, each priced from its "
        "model's timed training steps"
    )


def option_value(args: list[str], name: str) -> str | None:
    """The value of option `name` in `args` (`--name V` or `--name=V`, the last one winning); None without it."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"{name}="):
            value = arg.partition("=")[2]
    return value


VALIDATION_OPTIONS = {"--mnist-dir": "MNIST_DIR", "--notebook-model": "MNIST_CLAIMS_NOTEBOOK_MODEL"}
"""The session's options that the validation child, which takes no pytest options, reads from its environment: the
data a notebook's cells load, the answer's variable."""


def validation_env(session_args: list[str], workers: int, cores: int) -> dict[str, str]:
    """The validation child's environment: the children's, with the VALIDATION_OPTIONS the student's session is given,
    so that it extracts the model the session grades, and with the backend threads each xdist worker of that session
    gets (its `--backend-threads`, else "auto"), so that the timed steps cost what the session's do."""
    env = child_env()
    for option, variable in VALIDATION_OPTIONS.items():
        if (value := option_value(session_args, option)) is not None:
            env[variable] = value
    threads = threads_for(option_value(session_args, "--backend-threads") or "auto", workers, cores)
    if threads:
        env |= thread_environment(env.get("KERAS_BACKEND", "tensorflow"), threads, env)
    return env


@dataclass
class StudentSessions:
    """What every student's grading shares: the claims to run, the session options, the limits, the display, and
    what each validation prices its session against (`runs`: the replaced model's declared runs; `price`: the request
    to the validation child, None for no price; `env`: its environment). `graded`: the students whose grading ended
    (a broken submission or a stopped session included), each with its saved Result; `expected`: the priced session
    seconds of each student whose validation passed. Counts the gradings under way itself: an interrupt can land
    while the pool starts a thread, which the pool's own join then misses."""

    nodeids: list[str]
    session_args: list[str]
    model_name: str
    limits: Limits
    validate_s: float
    status: ClassStatus
    stop: threading.Event
    runs: list[dict] = field(default_factory=list)
    price: dict | None = None
    env: dict[str, str] | None = None
    workers: int = 0
    graded: dict[str, Result] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)
    _under_way: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def check(self, student: Student, directory: Path) -> bool | None:
        """Validate one submission and price its session (`expected`), under the memory limit and `validate_s` of
        wall time; a broken one's row is saved. Whether it passed; None, untouched, once the grading is stopped."""
        return self._guarded(self._check, student, directory)

    def grade(self, student: Student, directory: Path) -> Result | None:
        """Run a validated submission's session under the limits; save and return what became of it. None,
        untouched, once the grading is stopped."""
        return self._guarded(self._grade, student, directory)

    def wait_ended(self) -> None:
        """Block until every check or grading begun has ended (call after setting `stop`)."""
        with self._changed:
            self._changed.wait_for(lambda: self._under_way == 0)

    def _guarded(self, work: Callable[[Student, Path], Any], student: Student, directory: Path) -> Any:
        with self._changed:
            if self.stop.is_set():
                return None
            self._under_way += 1
        try:
            return work(student, directory)
        finally:
            with self._changed:
                self._under_way -= 1
                self._changed.notify_all()

    def _poll(self, name: str) -> Callable[[float, int], None]:
        return lambda elapsed, rss: self.status.poll(name, elapsed, rss)

    def _check(self, student: Student, directory: Path) -> bool:
        limits = Limits(self.validate_s, self.limits.memory_bytes)
        self.status.begin(student.name, "validating", limits)
        problem = validate(
            student, directory, limits, price=self.price, env=self.env, stop=self.stop, on_poll=self._poll(student.name)
        )
        if not problem and not self.nodeids:
            problem = f"no selected claim uses {self.model_name}"
        if problem:
            result = Result.of(student, problem)
            result.save(directory)
            self.graded[student.name] = result
            self.status.end(student.name, f"not run: {problem}")
            return False
        price = read_price(directory) if self.price is not None else None
        session_s = expected_session_s(student_training_s(price, self.runs), self.workers)
        session_s += price["load_s"] if price else 0.0
        self.expected[student.name] = session_s
        self.status.checked(student.name, price_text(price, self.runs, self.model_name, session_s))
        return True

    def _grade(self, student: Student, directory: Path) -> Result:
        result = Result.of(student)
        self.status.begin(student.name, "claims", self.limits, directory / "pytest.log")
        source = f"{self.model_name}={student.source}"
        run_session(
            result, self.nodeids, directory, self.session_args, self.limits, model=source, stop=self.stop,
            on_poll=self._poll(student.name),
        )  # fmt: skip
        self.status.end(student.name, describe(result), result.wall_s)
        result.save(directory)
        self.graded[student.name] = result
        return result


def each(
    jobs: int, work: Callable[[Student, Path], object], students: list[Student], out: Path, sessions: StudentSessions
) -> None:
    """`work(student, its directory)` for every student, `jobs` at a time; on Ctrl-C the running ones stop, none
    begins, and this waits until every one begun has saved its row."""
    with concurrent.futures.ThreadPoolExecutor(jobs, thread_name_prefix="student") as pool:
        try:
            futures = [pool.submit(work, s, out / "students" / s.name) for s in students]
            for future in concurrent.futures.as_completed(futures):
                future.result()
        except KeyboardInterrupt:
            sessions.stop.set()  # their children end now; a check or grading not yet begun never begins
            pool.shutdown(wait=False, cancel_futures=True)
            sessions.wait_ended()
            raise


def run_notebook(
    directory: Path, nodeids: list[str], pytest_args: list[str], status: ClassStatus, stop: threading.Event
) -> None:
    """The notebook's session, first and alone, without limits (the suite's own code): its claims, the baseline
    runs every student's claims then load, and the reference row."""
    result = Result("notebook", reference=True)
    status.begin("notebook", "claims", Limits(), directory / "pytest.log", student=False)
    run_session(
        result, nodeids, directory, pytest_args, Limits(), stop=stop,
        on_poll=lambda elapsed, rss: status.poll("notebook", elapsed, rss),
    )  # fmt: skip
    result.save(directory)
    status.end("notebook", describe(result), student=False)


def build_page(
    out: Path, notebook_dir: Path | None, student_dirs: list[Path], plan: ClassPlan, grading: dict, limits: str
) -> list[Path]:
    """The class page from the session directories: a whole class, or the slices of one merged (`limits`:
    the limits per student as the page states them, per slice where they differ)."""
    model_name = grading["model_name"]
    claims, notebook_claims = plan.of_student(model_name), plan.of_notebook(model_name)
    for directory in [*student_dirs, *([notebook_dir] if notebook_dir else [])]:
        feedback.write(directory)
    notebook = None
    if notebook_dir is not None and (notebook_dir / "session.json").is_file():
        notebook = read_row(notebook_dir, [*notebook_claims, *claims])
    students = sorted((read_row(d, claims) for d in student_dirs), key=lambda row: row.result.name)
    table = ClassTable(notebook, notebook_claims, students, claims)
    intro = (
        f"Each student's model replaced the notebook's {model_name} in a pytest session of its own, which ran "
        f"the {len(claims)} claim(s) that use it; the {len(notebook_claims)} claim(s) about the notebook's own "
        f"models ran once. Profile {plan.profile}, {plan.seeds} seed(s); pytest options: "
        f"{' '.join(grading['pytest_args']) or 'none'}; limits per student: {limits}. Time: the "
        "session's wall time. Hover a cell or follow its number for the reason of a not-applicable, errored "
        "or not-evidence cell."
    )
    return page.write(table, out, "Class table", intro)


def parse(argv: list[str]) -> argparse.Namespace:
    """The grader's own options (before --) and the pytest options (after)."""
    parser = argparse.ArgumentParser(
        prog="python -m reports.grade", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "submissions",
        type=Path,
        nargs="?",
        help="the submissions: a folder (or .zip) as downloaded: plain (one NAME.py, NAME.keras or NAME.ipynb per "
        "student), nbgrader's, Canvas's or GitHub Classroom's",
    )
    parser.add_argument("--layout", choices=LAYOUTS, help="the folder's layout (default: detected)")
    parser.add_argument(
        "--notebook",
        metavar="NAME",
        help="where a student has several files, grade the one this glob matches (its file name, or with a '/' its "
        "path in the student's folder; Canvas: the original name, e.g. 'cnn*.ipynb')",
    )
    parser.add_argument("--out", type=Path, required=True, help="where class.html/.md/.csv and the sessions go")
    parser.add_argument(
        "--model-name",
        default="improved_cnn",
        choices=["improved_cnn", "basic_cnn", "mlp"],
        help="the notebook's model each submission replaces (default: improved_cnn)",
    )
    parser.add_argument("-j", "--jobs", type=int, help="students graded at once (default: from the cores and GPUs)")
    parser.add_argument(
        "--student-timeout",
        type=float,
        metavar="SECONDS",
        help=f"wall-time limit of a student's session, more than 0 (default: {TIMEOUT_BASE_S:.0f} s + "
        f"{TIMEOUT_FACTOR:g} x its planned training time over its xdist workers)",
    )
    parser.add_argument(
        "--validate-timeout",
        type=float,
        default=VALIDATE_S,
        metavar="SECONDS",
        help=f"wall-time limit of validating a submission, before its session, more than 0 (default "
        f"{VALIDATE_S:.0f} s)",
    )
    parser.add_argument(
        "--student-memory",
        type=parse_size,
        metavar="SIZE",
        help=f"memory limit of a student's processes, e.g. 6G (default: {MEMORY_SHARE * 100:.0f}%% of the machine's "
        "memory over the students graded at once)",
    )
    parser.add_argument("--shard", type=shard_option, metavar="I/N", help="grade only the I-th of N slices")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="DIR", help="merge graded slices into --out")
    parser.epilog = "Options after -- go to every pytest session, e.g. -- --seeds 3 -n 1 --claims-cache DIR"
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.pytest_args = argv[split + 1 :]
    if args.merge and (args.submissions or args.shard):
        parser.error("--merge takes graded slices only: no SUBMISSIONS folder or --shard with it")
    if not args.merge and args.submissions is None:
        parser.error("give the folder of submissions (or --merge DIR...)")
    if args.jobs is not None and args.jobs < 1:
        parser.error("-j must be at least 1")
    for option, seconds in (("--student-timeout", args.student_timeout), ("--validate-timeout", args.validate_timeout)):
        if seconds is not None and not seconds > 0:
            parser.error(f"{option} takes seconds more than 0, not {seconds:g}")
    if own := [a for a in args.pytest_args if a.split("=")[0] in OWN_OPTIONS]:
        parser.error(f"the grader sets {', '.join(own)} itself for every session; leave it out after --")
    return args


def shard_option(text: str) -> tuple[int, int]:
    """--shard's argparse type: 'I/N' -> (I, N), a bad value one usage error with parse_shard's message."""
    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def agreement(plan: ClassPlan, grading: dict) -> tuple:
    """What the slices of one grading share: the claims, profile, seeds, replaced model and pytest options. Not
    the limits or the runs' costs: they follow each slice's size and the cache it found."""
    claims = [(c.id, c.nodeid) for c in plan.claims]
    return claims, plan.profile, plan.seeds, grading["model_name"], grading["pytest_args"]


def merge(slices: list[Path], out: Path) -> int:
    """One class page from graded slices: the students each slice graded (by its grading.json, so that a
    reused --out adds no stale rows), the first slice's notebook session."""
    plans, gradings, student_dirs = [], [], {}
    for directory in slices:
        try:
            plans.append(ClassPlan.read(directory / PLAN_FILE))
            gradings.append(json.loads((directory / GRADING_FILE).read_text()))
            agreement(plans[-1], gradings[-1])
            names = list(gradings[-1]["students"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"error: {directory} is not a graded class or slice ({e})", file=sys.stderr)
            return 2
        for name in names:
            if name in student_dirs:
                print(f"error: {name} is in both {student_dirs[name].parent.parent} and {directory}", file=sys.stderr)
                return 2
            student_dirs[name] = directory / "students" / name
            if not (student_dirs[name] / RESULT_FILE).is_file():
                print(f"error: {directory} graded {name} but has no students/{name}/{RESULT_FILE}", file=sys.stderr)
                return 2
    shared = agreement(plans[0], gradings[0])
    different = [str(d) for d, p, g in zip(slices, plans, gradings, strict=True) if agreement(p, g) != shared]
    if different:
        print(
            f"error: {', '.join(different)} graded other claims or options than {slices[0]}; merge slices of one "
            "grading only",
            file=sys.stderr,
        )
        return 2
    limits = [g["limits"] for g in gradings]
    if len(set(limits)) > 1:
        limits = [f"{text} ({d.name})" for d, text in zip(slices, limits, strict=True)]
    limits_text = "; ".join(dict.fromkeys(limits))
    paths = build_page(out, slices[0] / "notebook", list(student_dirs.values()), plans[0], gradings[0], limits_text)
    print(f"merged {len(slices)} slices: {len(student_dirs)} students")
    for path in paths:
        print(path.resolve())
    return 0


@contextlib.contextmanager
def stop_signals(received: list[int]) -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, as Ctrl-C does, and are appended
    to `received`; a repeat while the grading stops is ignored. The previous handlers come back after."""

    def interrupt(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class InputError(Exception):
    """What is wrong with the grader's input, in one line: `main` prints it and exits 2."""


def select_students(args: argparse.Namespace, out: Path) -> list[Student]:
    """The students to grade: the submissions folder (a zip unpacked into `out` first) read by its layout, the
    `--shard` slice of them; prints what it skipped and why."""
    submissions = args.submissions
    try:
        if submissions.suffix == ".zip" and submissions.is_file():
            submissions = unpack(submissions, out / "unpacked")
            print(f"unpacked {args.submissions} into {submissions}")
        students, lines = find_students(submissions, args.layout, args.notebook)
    except FolderError as e:
        raise InputError(str(e)) from None
    for line in lines:
        print(line)
    if not students:
        raise InputError(
            f"{args.submissions} holds no submissions; put one NAME.py, NAME.keras or NAME.ipynb per student in it, "
            "or give its --layout"
        )
    if args.shard:
        whole, students = len(students), shard(students, *args.shard)
        print(f"slice {args.shard[0]}/{args.shard[1]}: {len(students)} of the {whole} students")
    return students


@dataclass(frozen=True)
class Resources:
    """What the class runs on and within: the machine's cores and GPUs, the students graded at once, and each
    student's limits (`validate_s`: the wall time of its validation)."""

    cores: int
    gpus: int
    jobs: int
    limits: Limits
    validate_s: float

    @classmethod
    def of(cls, args: argparse.Namespace, plan: ClassPlan, students: int) -> Resources:
        """From the options, else the defaults: jobs from the cores and GPUs, the session's wall time from its
        planned training, memory a share of the machine's over the jobs."""
        cores, gpus = cpu_cores(), gpu_count()
        jobs = min(args.jobs or default_jobs(cores, plan.workers, gpus), max(1, students))
        timeout = args.student_timeout
        if timeout is None:
            timeout = TIMEOUT_BASE_S + TIMEOUT_FACTOR * plan.student_cost_s(args.model_name) / max(1, plan.workers)
        memory = args.student_memory or int(MEMORY_SHARE * psutil.virtual_memory().total / jobs)
        return cls(cores, gpus, jobs, Limits(timeout, memory), min(timeout, args.validate_timeout))

    @property
    def limits_text(self) -> str:
        """The limits per student, as the page and the first line state them."""
        return (
            f"{self.limits.wall_s:.0f} s wall time ({self.validate_s:.0f} s to validate), "
            f"{size_text(self.limits.memory_bytes)} memory"
        )


def student_sessions(
    args: argparse.Namespace, plan: ClassPlan, resources: Resources, status: ClassStatus, stop: threading.Event
) -> StudentSessions:
    """What every student's validation and session get: the claims that use the replaced model, the session's
    options with its share of the cores, the limits, and the price request for the validation child."""
    session_args = [
        *args.pytest_args,
        *session_threads(args.pytest_args, resources.jobs, plan.workers, resources.cores),
    ]
    runs = plan.runs_of(args.model_name)
    request = {
        "model": args.model_name,
        "runs": [r["spec"] for r in runs],
        "cache": plan.cache,
        "steps_per_execution": plan.steps_per_execution,
    }
    return StudentSessions(
        [c.nodeid for c in plan.of_student(args.model_name)], session_args, args.model_name, resources.limits,
        resources.validate_s, status, stop, runs, request,
        validation_env(session_args, plan.workers, resources.cores), plan.workers,
    )  # fmt: skip


def grade_all(
    students: list[Student], out: Path, sessions: StudentSessions, plan: ClassPlan, pytest_args: list[str]
) -> int:
    """Validate and price every submission, print the first ETA, run the notebook's session, then the valid
    students' sessions. 0; after Ctrl-C 130, after SIGTERM or SIGHUP 128 + its number, the running sessions
    stopped and every row begun saved."""
    status, jobs = sessions.status, sessions.status.jobs
    notebook_s = expected_session_s(plan.baseline_cost_s(), plan.workers, NOTEBOOK_OVERHEAD_S)
    received: list[int] = []
    try:
        with stop_signals(received), status:
            each(jobs, sessions.check, students, out, sessions)
            valid = [s for s in students if s.name in sessions.expected]
            status.expect({s.name: sessions.expected[s.name] for s in valid}, notebook_s)
            status.line(first_eta(notebook_s, [sessions.expected[s.name] for s in valid], jobs, status.elapsed_s()))
            run_notebook(out / "notebook", [c.nodeid for c in plan.claims], pytest_args, status, sessions.stop)
            each(jobs, sessions.grade, valid, out, sessions)
    except KeyboardInterrupt:
        why = f"stopped by {signal.Signals(received[0]).name}" if received else "interrupted"
        print(f"{why}: the running sessions are stopped; the page shows the students graded so far", flush=True)
        return 128 + received[0] if received else 130
    return 0


def save_ungraded(students: list[Student], graded: dict[str, Result], out: Path) -> None:
    """A row for each student whose grading never began (the grading was interrupted): the others saved their own."""
    for s in students:
        if s.name not in graded:
            Result.of(s, "not graded: the grading was interrupted").save(out / "students" / s.name)


def main(argv: list[str] | None = None) -> int:
    """Grade the class (or merge slices); 0 once the page is written, whatever the verdicts; 2 on a usage error;
    130 after Ctrl-C, 128 + the signal's number after SIGTERM or SIGHUP (the page then shows the students
    graded so far)."""
    args = parse(sys.argv[1:] if argv is None else list(argv))
    if args.merge:
        return merge(args.merge, args.out)
    out = args.out.resolve()
    try:
        students = select_students(args, out)
        out.mkdir(parents=True, exist_ok=True)
        plan = collect(args.pytest_args, out / PLAN_FILE, REPO, child_env())
    except (InputError, RuntimeError) as e:  # collect: RuntimeError, the collection's own one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    resources = Resources.of(args, plan, len(students))
    names = [s.name for s in students]
    limits_text = resources.limits_text
    grading = {"model_name": args.model_name, "pytest_args": args.pytest_args, "limits": limits_text, "students": names}
    (out / GRADING_FILE).write_text(json.dumps(grading, indent=1))
    on_gpus = f" and {resources.gpus} GPUs" if resources.gpus else ""
    claims = len(plan.of_student(args.model_name))
    print(
        f"{len(students)} students, {resources.jobs} at once on {resources.cores} cores{on_gpus}; {claims} claim(s) "
        f"per student, {len(plan.claims) - claims} about the notebook's models only; limits per student: {limits_text}",
        flush=True,
    )

    sessions = student_sessions(
        args, plan, resources, ClassStatus(len(students), resources.jobs, sys.stdout), threading.Event()
    )
    code = grade_all(students, out, sessions, plan, args.pytest_args)
    save_ungraded(students, sessions.graded, out)
    paths = build_page(out, out / "notebook", [out / "students" / s.name for s in students], plan, grading, limits_text)
    print(f"{sum(not r.problem for r in sessions.graded.values())} of {len(students)} submissions checked")
    for path in paths:
        print(path)
    return code


if __name__ == "__main__":
    sys.exit(main())
