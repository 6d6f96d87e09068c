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


@dataclass
class Running:
    """One session in progress: a student's, or the notebook's (not `student`)."""

    stage: str
    log: Path | None
    limits: Limits
    student: bool = True
    elapsed_s: float = 0.0
    rss: int = 0


class ClassStatus:
    """The class's progress, fed by the students' threads (`begin`, `poll`, `end`) and shown by a Live display."""

    def __init__(self, total: int, jobs: int, expected_s: float, stream: TextIO, notebook_s: float = 0.0) -> None:
        self.total, self.jobs, self.expected_s, self.notebook_s = total, jobs, expected_s, notebook_s
        self.console = Console(file=stream)
        self.running: dict[str, Running] = {}
        self.session_s: list[float] = []  # wall times of the finished students' sessions
        self.done = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._live: Live | None = None

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
        """A session is finished: one line saying how; a student's counts, its session's time feeds the ETA."""
        with self._lock:
            self.running.pop(name, None)
            self.done += student
            if session_s is not None:
                self.session_s.append(session_s)
        self.line(f"[{self.done}/{self.total}] {name}: {text}" if student else f"{name}: {text}")

    def eta_s(self) -> float:
        """Seconds left: the notebook's session's rest while it runs (alone, before the students), then each
        running student's expected time less its elapsed, and the waiting ones', over the parallel slots;
        expected: the median of the finished students' sessions, else the cost model's estimate."""
        expected = statistics.median(self.session_s) if self.session_s else self.expected_s
        with self._lock:
            sessions = [r for r in self.running.values() if r.stage != "validating"]
            notebook = sum(max(0.0, self.notebook_s - r.elapsed_s) for r in sessions if not r.student)
            running = [max(0.0, expected - r.elapsed_s) for r in sessions if r.student]
            waiting = self.total - self.done - len(running)
        return notebook + (sum(running) + waiting * expected) / max(1, self.jobs)

    def __rich__(self) -> Any:
        elapsed = time.monotonic() - self.started
        head = Text(
            f"class: {self.done}/{self.total} students done, {len(self.running)} running, "
            f"{elapsed / 60:.1f} min elapsed, ETA {self.eta_s() / 60:.1f} min",
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
