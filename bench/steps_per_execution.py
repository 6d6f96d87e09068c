"""How `--steps-per-execution auto` was chosen: the notebook's training at several N, each in a fresh process.

Each (model, batch size, N) trains the notebook's run (seed 0, real MNIST, a few epochs) cold in its own
process, like an xdist worker (`--threads`, default 1: `-n 2` on 2 cores), back to back and in turn over N,
so that load drifts across all N alike. It prints, per N, the median seconds per epoch after the first (the
steady state; wall and the process's CPU time, which other processes on the cores barely change), the first
epoch's extra seconds (tracing and compiling), the run's seconds per phase and
whether history and evaluations are bit for bit those of N = 1, and writes it all as JSON:

    MNIST_DIR=... python -m bench.steps_per_execution --backend jax --runs basic_cnn:64 improved_cnn:64 \\
        --n 1 8 32 128 --epochs 3 --out bench/results/jax-cpu.json

`fixtures.backend.Backend.steps_per_execution_auto` cites the results it was chosen from (bench/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def train_one(backend_name: str, model: str, batch_size: int, epochs: int, n: int, threads: int) -> dict[str, Any]:
    """Train one run in this (fresh) process and return its record's numbers and timings."""
    from fixtures import backend

    backend.prepare(backend_name, "auto", threads)
    from fixtures.data import load_mnist
    from fixtures.profiles import PROFILES
    from fixtures.runs import RunStore

    data = load_mnist(os.environ.get("MNIST_DIR"))
    with tempfile.TemporaryDirectory() as cache:
        store = RunStore(Path(cache), data, PROFILES["notebook"], deterministic=True, steps_per_execution=n)
        run = store.get(store.spec(model, batch_size=batch_size, epochs=epochs, seed=0))
        return {
            "history": run.history,
            "evaluation": run.evaluation,
            "epoch_s": run.epoch_s,
            "phases_s": run.phases_s,
            "timeline": run.timeline,
            "environment": run.environment,
            "key": run.spec.key,
        }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (what `uptime` shows)."""
    return list(os.getloadavg())


def summary(result: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """Steady s/epoch, first-epoch extra, process wall time, and bit-identity with N = 1's run."""
    epochs, phases = result["epoch_s"], result["phases_s"]
    steady = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
    cpu = phases["epoch_cpu"]
    timeline = result["timeline"]
    return {
        "s_per_epoch": round(steady, 3),
        "cpu_s_per_epoch": round(statistics.median(cpu[1:]) if len(cpu) > 1 else cpu[0], 3),
        "first_epoch_extra_s": round(epochs[0] - steady, 3),
        "validation_s_per_epoch": round(statistics.median(phases["validation"]), 3),
        "evaluate_s": round(sum(phases["evaluate"].values()), 3),
        "predict_s": round(phases["predict"], 3),
        "process_s": round(timeline["finished"] - timeline["process_started"], 3)
        if timeline.get("process_started")
        else None,
        "identical_to_n1": None
        if reference is None
        else (result["history"] == reference["history"] and result["evaluation"] == reference["evaluation"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--runs", nargs="+", default=["basic_cnn:64"], help="MODEL:BATCH_SIZE ...")
    parser.add_argument("--n", nargs="+", type=int, default=[1, 8, 32, 128], help="steps per execution (1 first)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="backend threads per process (0: its default)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over every N")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: train one run, print JSON
    args = parser.parse_args()
    if args.one:
        model, batch = args.runs[0].split(":")
        print(json.dumps(train_one(args.backend, model, int(batch), args.epochs, args.n[0], args.threads)))
        return
    if args.n[0] != 1:
        parser.error("--n must start with 1: every other N is compared with it")
    results: dict[str, Any] = {
        "backend": args.backend,
        "epochs": args.epochs,
        "threads": args.threads,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_before": load_average(),
        "runs": {},
    }
    for spec in args.runs:
        rows: dict[int, list[dict[str, Any]]] = {n: [] for n in args.n}
        reference = None
        for _ in range(args.repeats):
            for n in args.n:
                command = [sys.executable, "-m", "bench.steps_per_execution", "--one", "--backend", args.backend]
                command += ["--runs", spec, "--n", str(n), "--epochs", str(args.epochs), "--threads", str(args.threads)]
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": args.backend}
                done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
                if done.returncode:
                    sys.exit(f"{spec} N={n} failed:\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                reference = reference or result
                row = {**summary(result, None if n == 1 else reference), "load": load_average()}
                rows[n].append(row)
                print(f"{spec} N={n}: {json.dumps(row)}", flush=True)
        results["runs"][spec] = {
            str(n): {
                "s_per_epoch": statistics.median(r["s_per_epoch"] for r in rs),
                "cpu_s_per_epoch": statistics.median(r["cpu_s_per_epoch"] for r in rs),
                "process_s": statistics.median(r["process_s"] or 0 for r in rs),
                "identical_to_n1": all(r["identical_to_n1"] is not False for r in rs),
                "rounds": rs,
            }
            for n, rs in rows.items()
        }
    results["load_after"] = load_average()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    for spec, by_n in results["runs"].items():
        base, cpu_base = by_n["1"]["s_per_epoch"], by_n["1"]["cpu_s_per_epoch"]
        for n, r in by_n.items():
            print(
                f"{spec:>16} N={n:>4}: {r['s_per_epoch']:6.2f} s/epoch ({r['s_per_epoch'] / base:.2f} of N=1), "
                f"CPU {r['cpu_s_per_epoch']:6.2f} s/epoch ({r['cpu_s_per_epoch'] / cpu_base:.2f}), "
                f"process {r['process_s']:6.1f} s, identical to N=1: {r['identical_to_n1']}"
            )


if __name__ == "__main__":
    main()
