"""One child process, with everything it starts, under a wall-time and a memory limit.

The child leads a session of its own (`start_new_session`), so its xdist workers, TensorFlow's helpers and
anything a student's code forks stay in it: the memory measured is the resident set (RSS) of every process
in that session, polled twice a second, and a limit ends the whole session (SIGKILL to its process group
and to any member that left the group). RLIMIT_AS is not used: TensorFlow reserves far more virtual address
space than it touches, so an address-space cap breaks it long before memory runs short. RSS counts shared
pages once per process, so the measure errs on the high side.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

POLL_S = 0.5
TERM_GRACE_S = 5.0
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """What one child may use: seconds of wall time and bytes of resident memory (None: no limit)."""

    wall_s: float | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True)
class Outcome:
    """How a limited child ended: its exit status, the limit it hit ("" if none), its wall time and peak RSS."""

    returncode: int
    limit: str
    wall_s: float
    peak_bytes: int


def parse_size(text: str) -> int:
    """'8G', '512M', '1.5GiB' or a number of bytes -> bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a memory size: {text!r} (e.g. 8G, 512M)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " KMGT".index(unit.upper() or " "))


def size_text(n: int) -> str:
    """Bytes as '1.4 GiB' / '512 MiB'."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def session_rss(session_id: int) -> int:
    """Bytes resident in every process of the session `session_id` (processes that end meanwhile count 0)."""
    total = 0
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id:
                total += process.memory_info().rss
        except (psutil.Error, OSError):
            continue
    return total


def kill_session(session_id: int, sig: int = signal.SIGKILL, group: bool = True) -> None:
    """Send `sig` to the session's process group (`group`: only while its leader is unreaped, so that the id
    cannot have been reused) and to every member, including those that moved to a group of their own."""
    if group:
        try:
            os.killpg(session_id, sig)
        except ProcessLookupError:
            pass
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id:
                process.send_signal(sig)
        except (psutil.Error, OSError):
            continue


def run_limited(
    command: Sequence[str],
    limits: Limits,
    *,
    stdout: IO[str] | int | None = None,
    stderr: IO[str] | int | None = subprocess.STDOUT,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stop: threading.Event | None = None,
    on_poll: Callable[[float, int], None] | None = None,
) -> Outcome:
    """Run `command` in a session of its own until it exits or hits a limit, then end the whole session.

    Past the wall limit the session gets SIGTERM and, TERM_GRACE_S later, SIGKILL; past the memory limit
    SIGKILL at once (memory can grow faster than a process winds down). `on_poll(elapsed_s, rss)` is called
    at every poll (the live status). Setting `stop` (the grader's Ctrl-C, from another thread) ends the
    session as "interrupted"; a KeyboardInterrupt in this thread ends it too, and is re-raised.
    """
    start = time.monotonic()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
    limit, peak = "", 0
    try:
        while child.poll() is None:
            elapsed, rss = time.monotonic() - start, session_rss(child.pid)
            peak = max(peak, rss)
            if on_poll is not None:
                on_poll(elapsed, rss)
            if stop is not None and stop.is_set():
                limit = "interrupted"
                kill_session(child.pid)
                break
            if limits.memory_bytes is not None and rss > limits.memory_bytes:
                limit = f"memory limit {size_text(limits.memory_bytes)} (its processes held {size_text(rss)})"
                kill_session(child.pid)
                break
            if limits.wall_s is not None and elapsed > limits.wall_s:
                limit = f"wall-time limit {limits.wall_s:.0f} s"
                kill_session(child.pid, signal.SIGTERM)
                try:
                    child.wait(TERM_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
                kill_session(child.pid, group=child.poll() is None)  # the wait may have reaped the leader
                break
            try:
                child.wait(POLL_S)
            except subprocess.TimeoutExpired:
                pass
    except BaseException:
        kill_session(child.pid, group=child.poll() is None)
        child.wait()
        raise
    returncode = child.wait()
    kill_session(child.pid, group=False)  # whatever the leader left running in its session
    return Outcome(returncode, limit, time.monotonic() - start, peak)
