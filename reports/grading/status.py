"""What the grader shows while a class runs: in a terminal a rich Live block, the class's progress and ETA and
one line per running student (stage, time against its limit, memory, the last line of its session's log);
piped, one plain line per student started and finished."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from reports.grading.limits import Limits, size_text

TAIL_BYTES = 4096


def log_tail(path: Path | None) -> str:
    """The last non-empty line of the end of a log ('' if none): what a session is doing now."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - TAIL_BYTES))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip("= \t")[:100] if lines else ""


def eta_text(seconds: float | None) -> str:
    """The live ETA: minutes, or what it waits for."""
    return "after the validations" if seconds is None else f"{seconds / 60:.1f} min"


@dataclass
class Running:
    """One session in progress: a student's, or the notebook's (not `student`)."""

    stage: str
    log: Path | None
    limits: Limits
    student: bool = True
    elapsed_s: float = 0.0
    rss: int = 0


def schedule_s(costs: list[float], jobs: int, busy: list[float] | None = None) -> float:
    """Seconds until sessions of `costs` seconds are all done, handed in order to the first free of `jobs` slots (as
    the grader's pool does), the slots first busy for `busy` seconds (the running sessions' rest)."""
    slots = sorted([*(busy or []), *[0.0] * max(0, jobs - len(busy or []))])
    for cost in costs:
        slots[0] += cost
        slots.sort()
    return max(slots, default=0.0)


class ClassStatus:
    """The class's progress, fed by the students' threads (`begin`, `poll`, `end`) and shown by a Live display;
    its ETA from each student's price, once `expect` has them."""

    def __init__(self, total: int, jobs: int, stream: TextIO) -> None:
        self.total, self.jobs = total, jobs
        self.expected: dict[str, float] | None = None  # each student's priced session seconds, in grading order
        self.notebook_s = 0.0
        self.console = Console(file=stream)
        self.running: dict[str, Running] = {}
        self.finished: dict[str, float] = {}  # the finished students' session wall times
        self.done = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._live: Live | None = None

    def expect(self, expected: dict[str, float], notebook_s: float) -> None:
        """The sessions to come: each student's priced seconds (in the order they are graded), the notebook's."""
        with self._lock:
            self.expected, self.notebook_s = dict(expected), notebook_s

    def __enter__(self) -> ClassStatus:
        if self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=1, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def line(self, text: str) -> None:
        """A line that stays: above the live block in a terminal, else printed."""
        if self._live is not None:
            self._live.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.console.file, flush=True)

    def begin(self, name: str, stage: str, limits: Limits, log: Path | None = None, student: bool = True) -> None:
        """A session starts: `stage` (validating, claims) under `limits`, its log shown as it grows."""
        with self._lock:
            self.running[name] = Running(stage, log, limits, student)
        if self._live is None:
            self.line(f"{name}: {stage} ...")

    def poll(self, name: str, elapsed_s: float, rss: int) -> None:
        """A running session's latest measure: seconds since it began and its processes' resident memory."""
        with self._lock:
            if name in self.running:
                self.running[name].elapsed_s, self.running[name].rss = elapsed_s, rss

    def end(self, name: str, text: str, session_s: float | None = None, student: bool = True) -> None:
        """A session is finished: one line saying how; a student's counts, its session's time corrects the ETA."""
        with self._lock:
            self.running.pop(name, None)
            self.done += student
            if session_s is not None:
                self.finished[name] = session_s
        self.line(f"[{self.done}/{self.total}] {name}: {text}" if student else f"{name}: {text}")

    def checked(self, name: str, text: str) -> None:
        """A student's validation passed: one line (its price); its session is still to come."""
        with self._lock:
            self.running.pop(name, None)
        self.line(f"{name}: valid; {text}")

    def elapsed_s(self) -> float:
        """Seconds since the class began."""
        return time.monotonic() - self.started

    def eta_s(self) -> float | None:
        """Seconds left (None before `expect`): the notebook's session's rest while it runs (alone, before the
        students), then the running students' rest and the waiting ones' sessions over the parallel slots
        (`schedule_s`); each student's price scaled by the median, over the finished students, of their session's
        wall time over its price (1 before any)."""
        with self._lock:
            if self.expected is None:
                return None
            ratios = [s / self.expected[n] for n, s in self.finished.items() if self.expected.get(n)]
            scale = statistics.median(ratios) if ratios else 1.0
            sessions = {n: r for n, r in self.running.items() if r.stage != "validating"}
            notebook = sum(max(0.0, self.notebook_s - r.elapsed_s) for r in sessions.values() if not r.student)
            busy = [max(0.0, scale * self.expected.get(n, 0.0) - r.elapsed_s) for n, r in sessions.items() if r.student]
            waiting = [scale * s for n, s in self.expected.items() if n not in self.finished and n not in sessions]
        return notebook + schedule_s(waiting, self.jobs, busy)

    def __rich__(self) -> Any:
        elapsed = self.elapsed_s()
        head = Text(
            f"class: {self.done}/{self.total} students done, {len(self.running)} running, "
            f"{elapsed / 60:.1f} min elapsed, ETA {eta_text(self.eta_s())}",
            style="bold",
        )
        table = Table(box=None, show_header=False, padding=(0, 2))
        with self._lock:
            running = dict(self.running)
        for name, r in running.items():
            wall = f" / {r.limits.wall_s:.0f} s" if r.limits.wall_s else ""
            memory = f" / {size_text(r.limits.memory_bytes)}" if r.limits.memory_bytes else ""
            table.add_row(name, r.stage, f"{r.elapsed_s:.0f} s{wall}", f"{size_text(r.rss)}{memory}", log_tail(r.log))
        return Group(head, table)
