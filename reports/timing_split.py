"""Where a session's wall time went: start-up, each phase of every training run, the time between runs and
the time after training (the tests), per worker, from the runs' records in evidence.json.

    python -m reports.timing_split [EVIDENCE]      # default: the evidence `python -m reports` would read

Each run trained in the session records when its process started and when it began and ended, and the seconds
of each of its phases (`fixtures.training`: build, fit with its per-epoch validation, the three evaluations,
the test predictions, saving). Per worker (one process id), the session's wall time splits exactly into:
start-up until the worker process started (xdist's spawn) and until its first run began (imports, collection,
MNIST, the plan), the phases of its runs, the time between runs (sealing, loading, waiting on a lock) and the
time after its last run (the claims' tests, the timing claim's own sampling, evidence). The first epoch's
training and validation time above the median of the later epochs' is counted as its compile (tracing, XLA);
the rest of fit, less validation, as training steps. It also prints each run's s/epoch and each worker's
peak GPU memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fixtures.records import RunRecord
from reports import evidence as report_evidence

PARTS = (
    "start-up: process spawn",
    "start-up: imports, collection, data, plan",
    "build and compile",
    "first-epoch compile",
    "training steps",
    "validation",
    "evaluate train",
    "evaluate val",
    "evaluate test",
    "predict test",
    "save",
    "between runs",
    "after training",
)
ISO = "%Y-%m-%dT%H:%M:%S%z"


def run_parts(run: RunRecord) -> dict[str, float]:
    """One trained run's seconds by part (they sum to its time from start to end). The first epoch's training and
    validation each count their excess over the median of the later epochs' as compile."""
    phases, epochs, timeline = run.phases_s, run.epoch_s, run.timeline
    validation = phases["validation"]
    train = [e - v for e, v in zip(epochs, validation, strict=True)]

    def excess(values: list[float]) -> float:
        return max(0.0, values[0] - statistics.median(values[1:])) if len(values) > 1 else 0.0

    compile_train, compile_validation = excess(train), excess(validation)
    parts = {
        "build and compile": phases["build"],
        "first-epoch compile": compile_train + compile_validation,
        "training steps": phases["fit"] - sum(validation) - compile_train,
        "validation": sum(validation) - compile_validation,
        **{f"evaluate {name}": s for name, s in phases["evaluate"].items()},
        "predict test": phases["predict"],
    }
    parts["save"] = timeline["finished"] - timeline["started"] - sum(parts.values())  # saving and the record
    return parts


@dataclass
class Split:
    """Seconds by part for each worker (process id), and summed over workers."""

    workers: dict[int, dict[str, float]]
    peak_gpu_memory: dict[int, int | None] = field(default_factory=dict)

    @property
    def total(self) -> dict[str, float]:
        return {part: sum(w.get(part, 0.0) for w in self.workers.values()) for part in PARTS}


def split(runs: Sequence[RunRecord], started: float, finished: float) -> Split:
    """The split of [started, finished] for every worker that trained one of `runs` (records with a timeline)."""
    by_pid: dict[int, list[RunRecord]] = {}
    for run in runs:
        by_pid.setdefault(run.timeline["pid"], []).append(run)
    workers, peaks = {}, {}
    for pid, mine in by_pid.items():
        mine.sort(key=lambda r: r.timeline["started"])
        first, last = mine[0].timeline, mine[-1].timeline
        spawned = min(max(first.get("process_started") or started, started), first["started"])
        parts = dict.fromkeys(PARTS, 0.0)
        parts["start-up: process spawn"] = spawned - started
        parts["start-up: imports, collection, data, plan"] = first["started"] - spawned
        for run in mine:
            for part, seconds in run_parts(run).items():
                parts[part] += seconds
        parts["between runs"] = sum(
            b.timeline["started"] - a.timeline["finished"] for a, b in zip(mine, mine[1:], strict=False)
        )
        parts["after training"] = finished - last["finished"]
        workers[pid] = parts
        memory = [r.peak_gpu_memory_bytes for r in mine if r.peak_gpu_memory_bytes is not None]
        peaks[pid] = max(memory) if memory else None
    return Split(workers, peaks)


def report(ev: report_evidence.Evidence) -> str:
    """The split of the session that last wrote `ev`, as text."""
    session = ev.session
    started = datetime.strptime(session.started, ISO).timestamp()
    finished = datetime.strptime(session.finished, ISO).timestamp()
    wall = finished - started
    every = [r for r in ev.runs if r.source == "trained" and ev.is_newest(r)]
    trained = [r for r in every if r.timeline]
    lines = [f"session {session.started} to {session.finished}: {wall:.0f} s wall, {session.workers} workers"]
    lines.append(
        f"{len(every)} runs trained in this session, {sum(r.wall_s for r in every):.0f} s of training summed "
        f"(each run's wall_s); {len(trained)} with phase records"
    )
    for r in sorted(every, key=lambda r: -r.wall_s):
        lines.append(f"  {r.wall_s:7.1f} s  {r.s_per_epoch:6.2f} s/epoch  N={r.steps_per_execution:<4} {r.label}")
    if not trained:
        lines.append("no run of this session recorded its phases (trained before fixtures.training timed them)")
        return "\n".join(lines)
    result = split(trained, started, finished)
    pids = sorted(result.workers)
    total = result.total
    worker_s = wall * len(pids)
    lines += ["", f"{'part':<44}" + "".join(f"{'pid ' + str(p):>12}" for p in pids) + f"{'all':>10}{'share':>8}"]
    for part in PARTS:
        cells = "".join(f"{result.workers[p][part]:12.1f}" for p in pids)
        lines.append(f"{part:<44}{cells}{total[part]:10.1f}{100 * total[part] / worker_s:7.1f}%")
    lines.append(f"{'wall time (each worker)':<44}" + "".join(f"{wall:12.1f}" for _ in pids) + f"{worker_s:10.1f}")
    if any(v is not None for v in result.peak_gpu_memory.values()):
        lines.append("")
        for pid in pids:
            peak = result.peak_gpu_memory[pid]
            lines.append(f"peak GPU memory, pid {pid}: {'-' if peak is None else f'{peak / 2**20:.0f} MiB'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the split of the session in an evidence.json (the argument, else the report's default)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evidence", nargs="?", help="evidence.json (default: where `python -m reports` looks)")
    args = parser.parse_args(argv)
    try:
        ev = report_evidence.load(Path(args.evidence) if args.evidence else None)
    except report_evidence.EvidenceError as e:
        parser.exit(2, f"{e}\n")
    print(report(ev))


if __name__ == "__main__":
    main(sys.argv[1:])
