"""Every claim on a GPU machine in one command, from this checkout alone (README: "A GPU run in one command").

    python3 .ci/gpu_run.py [--out DIR] [--seeds 5] [-n 4] [--baseline TF_CPU_EVIDENCE] [-- PYTEST ARGS]

Run `.ci/gpu_prepare.py` first, on a machine with internet; then, on the GPU machine (no internet needed):

1. installs into `.gpu-site/` (first on PYTHONPATH) each wheel of `.gpu-wheels/` whose distribution this Python
   lacks or has older: an image with JAX but neither TensorFlow nor Keras gets Keras, pytest-xdist, ...;
2. checks that JAX sees a GPU (`--allow-cpu` to try the script on a CPU);
3. runs `pytest claims -n 4 --seeds 5 -rsx` cold (a fresh runs cache) on JAX, and on TensorFlow as well where
   this Python has it, each under `--time-limit` and what `--deadline` leaves less RESERVE_S (then SIGINT, and
   SIGKILL to its process group GRACE_S later: what finished is still written; Ctrl-C and SIGTERM stop it the
   same way), while sampling every process's GPU memory with nvidia-smi; then, in the time left, a short
   steps-per-execution measurement (bench.steps_per_execution) on the GPU; every step after a session (reports,
   time split, sweep, matrix) is stopped at the deadline, so the whole script ends within it;
4. writes into one folder (default artifacts/gpu-run/): per backend `evidence.json` and its arrays,
   `pytest.log` (the terminal summary), `junit.xml` (each test's seconds), `report/` (its output in `report.log`),
   `timing.txt` (per-run s/epoch, the session's time split, peak GPU memory per worker, `reports.timing_split`) and
   `gpu-memory.csv`; `steps-per-execution.txt` (`bench.steps_per_execution` on the GPU, after the claims);
   `matrix/` (the verdict matrix against the TensorFlow CPU evidence `--baseline`, default
   the committed `.ci/gpu/tf-cpu-evidence.json`); `environment.txt`; and `summary.md`, which says it all briefly.

Exit status: 0 when every chosen backend's session ran within its limit and wrote evidence (refuted claims are
results, shown in the matrix), 1 otherwise: a backend left out for lack of time counts as failed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".gpu-wheels"
SITE = ROOT / ".gpu-site"
DATA = ROOT / ".gpu-data" / "mnist"
BASELINE = ROOT / ".ci" / "gpu" / "tf-cpu-evidence.json"
BACKENDS = ("jax", "tensorflow")
GRACE_S = 60.0
"""Seconds a session has after its SIGINT (at its limit, or on Ctrl-C / SIGTERM) to write the evidence of what
finished, before its process group is killed."""
AFTER_S = 45.0
"""Seconds kept back from --deadline for the report, the time split and the matrix after the sessions."""
RESERVE_S = GRACE_S + AFTER_S
"""What a session's limit leaves of the time to the deadline: its grace, then the work after it."""


def wheel_distribution(wheel: Path) -> tuple[str, str]:
    """A wheel's normalised distribution name and its version, from its file name."""
    name, version = wheel.name.split("-")[:2]
    return name.lower().replace("_", "-"), version


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading numbers of a version's parts (2.1.0rc1: 2, 1, 0), enough to tell older from newer here."""
    parts = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def missing_wheels() -> list[Path]:
    """The wheels whose distribution this Python lacks or has at an older version."""
    wanted = []
    for wheel in sorted(WHEELS.glob("*.whl")):
        name, version = wheel_distribution(wheel)
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wanted.append(wheel)
            continue
        if version_tuple(have) < version_tuple(version):
            wanted.append(wheel)
    return wanted


def install(log: list[str], timeout: float) -> dict[str, str]:
    """Install what is missing into .gpu-site (no index, no dependencies: the folder is the whole closure) within
    `timeout` seconds and return the environment the sessions run in."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not WHEELS.is_dir():
        sys.exit(f"{WHEELS} is missing: run `python .ci/gpu_prepare.py` on a machine with internet first")
    wanted = missing_wheels()
    if wanted:
        shutil.rmtree(SITE, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(SITE)]
        try:
            done = subprocess.run(
                [*command, *map(str, wanted)], capture_output=True, text=True, check=False, timeout=max(timeout, 0.0)
            )
        except subprocess.TimeoutExpired:
            sys.exit(f"installing {len(wanted)} wheels into {SITE} took over {timeout:.0f} s (the deadline)")
        if done.returncode:
            sys.exit(f"installing {len(wanted)} wheels into {SITE} failed:\n{done.stdout}{done.stderr}")
    log.append(f"installed from {WHEELS.name}/: {', '.join(w.name for w in wanted) or 'nothing (all present)'}")
    if SITE.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), env.get("PYTHONPATH")) if p)
    if DATA.is_dir():
        env["MNIST_DIR"] = str(DATA)
    elif not env.get("MNIST_DIR"):
        sys.exit(f"no MNIST: {DATA} is missing (run .ci/gpu_prepare.py) and MNIST_DIR is not set")
    return env


def probe(env: dict[str, str], backend: str, timeout: float) -> dict:
    """What `backend` sees in a fresh process: its version and devices (an error if it cannot be imported or does
    not answer within `timeout` seconds)."""
    code = {
        "jax": "import jax; print(json.dumps({'version': jax.__version__, "
        "'gpus': [str(d) for d in jax.devices() if d.platform == 'gpu']}))",
        "tensorflow": "import tensorflow as tf; print(json.dumps({'version': tf.__version__, "
        "'gpus': [d.name for d in tf.config.list_physical_devices('GPU')]}))",
    }[backend]
    try:
        done = subprocess.run(
            [sys.executable, "-c", f"import json; {code}"],
            env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True,
            text=True,
            check=False,
            timeout=max(timeout, 0.0),
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout:.0f} s"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


class GpuMemory(threading.Thread):
    """Samples every compute process's GPU memory once a second (nvidia-smi) into a CSV, while a session runs."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.stop = path, threading.Event()
        self.peaks: dict[str, int] = {}

    def run(self) -> None:
        if shutil.which("nvidia-smi") is None:
            return
        query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
        with open(self.path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["time", "pid", "used_mib"])
            while not self.stop.wait(1.0):
                try:
                    lines = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.splitlines()
                except (OSError, subprocess.TimeoutExpired):
                    continue
                for line in lines:
                    pid, used = (p.strip() for p in line.split(",")[:2])
                    if used.isdigit():
                        out.writerow([round(time.time(), 1), pid, used])
                        self.peaks[pid] = max(self.peaks.get(pid, 0), int(used))
                f.flush()


class Deadline:
    """The seconds left to --deadline, from which every later step takes its time limit."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()


def interrupted(signum: int, frame: object) -> None:
    """SIGTERM (a job runner's stop) is handled as Ctrl-C: the session in flight is stopped, then the script."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def stop(process: subprocess.Popen, grace: float) -> int:
    """SIGINT to the session's process group, so that pytest writes the evidence of what finished; the group is
    killed after `grace` seconds, or at once if this wait is itself interrupted (a second Ctrl-C)."""
    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=max(grace, 0.0))
    except subprocess.TimeoutExpired:
        pass
    finally:
        with contextlib.suppress(ProcessLookupError):  # the workers too, even once pytest itself has exited
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return process.returncode


def wait_session(process: subprocess.Popen, limit: float, deadline: Deadline) -> tuple[int, bool]:
    """The session's exit status and whether it ran past `limit`. It runs in its own process group (so that a
    SIGINT reaches pytest alone); whatever stops this wait stops that group too, so nothing is left on the GPU."""
    try:
        return process.wait(timeout=limit), False
    except subprocess.TimeoutExpired:
        return stop(process, min(GRACE_S, deadline.left() - AFTER_S)), True
    except BaseException:
        stop(process, min(GRACE_S, deadline.left()))
        raise


def run_bounded(command: list[str], env: dict[str, str], timeout: float) -> str:
    """Run a step that follows a session (a report, the sweep, the matrix) in at most `timeout` seconds, the time
    its caller leaves it before the deadline; its output, or what it printed before it was stopped. It runs in its
    own process group, killed at the end, so that what it started (the sweep runs each measurement in a child of
    its own) cannot outlive it."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=max(timeout, 0.0))
        return out + err[-3000:]
    except subprocess.TimeoutExpired:
        stopped = f"stopped after {timeout:.0f} s (the deadline)\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return stopped + process.communicate()[0]


def run_session(
    env: dict[str, str],
    backend: str,
    out: Path,
    args: argparse.Namespace,
    cache: Path,
    limit: float,
    deadline: Deadline,
) -> dict:
    """One cold pytest session on `backend` under `limit` seconds; returns its outcome for the summary."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", "claims", "-n", str(args.workers), "--seeds", str(args.seeds), "-rsx"]
    command += ["--keras-backend", backend, "--claims-profile", args.profile, "--fresh-evidence"]
    command += ["--claims-cache", str(cache / backend), "--claims-evidence", str(out)]
    command += ["--junitxml", str(out / "junit.xml"), "-p", "no:cacheprovider", *args.pytest]
    memory = GpuMemory(out / "gpu-memory.csv")
    memory.start()
    start = time.monotonic()
    with open(out / "pytest.log", "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode, timed_out = wait_session(process, limit, deadline)
        finally:
            memory.stop.set()
    wall = time.monotonic() - start
    memory.join(timeout=5)
    evidence = out / "evidence.json"
    outcome = {"backend": backend, "returncode": returncode, "wall_s": round(wall, 1), "timed_out": timed_out}
    outcome["evidence"] = evidence.is_file()
    outcome["gpu_memory_peak_mib"] = memory.peaks
    if evidence.is_file():
        report = [sys.executable, "-m", "reports", "--evidence", str(evidence), "--out", str(out / "report")]
        (out / "report.log").write_text(run_bounded(report, env, deadline.left()))
        split = [sys.executable, "-m", "reports.timing_split", str(evidence)]
        (out / "timing.txt").write_text(run_bounded(split, env, deadline.left()))
        claims = json.loads(evidence.read_text())["claims"]
        outcome["outcomes"] = {
            o: sum(c.get("outcome") == o for c in claims) for o in {c.get("outcome") for c in claims}
        }
    return outcome


def not_run(backend: str, seconds_left: float) -> dict:
    """The outcome of a backend left out for lack of time: a failed session without evidence, not a silent gap."""
    return {
        "backend": backend,
        "returncode": f"not run: {seconds_left:.0f} s of the deadline left",
        "wall_s": 0,
        "timed_out": False,
        "evidence": False,
        "gpu_memory_peak_mib": {},
    }


def exit_status(outcomes: list[dict]) -> int:
    """0 when every chosen backend's session ran within its limit and wrote evidence, else 1."""
    return 0 if outcomes and all(o["evidence"] and not o["timed_out"] for o in outcomes) else 1


def summary(outcomes: list[dict], environment: list[str], matrix: Path) -> str:
    """summary.md: the environment, one row per chosen backend (one not run says so, and why) and the matrix."""
    lines = ["# GPU run", "", *[f"- {line}" for line in environment], ""]
    lines += ["| backend | wall s | pytest exit | timed out | evidence | outcomes | peak GPU MiB per process |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for o in outcomes:
        peaks = ", ".join(f"{pid}: {mib}" for pid, mib in sorted(o["gpu_memory_peak_mib"].items())) or "-"
        lines.append(
            f"| {o['backend']} | {o['wall_s']} | {o['returncode']} | {o['timed_out']} | {o['evidence']} | "
            f"{o.get('outcomes', '-')} | {peaks} |"
        )
    if (matrix / "matrix.md").is_file():
        lines += ["", (matrix / "matrix.md").read_text()]
    return "\n".join(lines) + "\n"


def backend_list(value: str) -> list[str]:
    """--backends: `auto`, or a comma-separated list of BACKENDS (argparse reports anything else in one line)."""
    if value == "auto":
        return []
    chosen = [b.strip() for b in value.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{value!r}: give auto or a comma-separated list of {', '.join(BACKENDS)}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "gpu-run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("-n", "--workers", type=int, default=4, help="xdist workers sharing the GPU (default 4)")
    parser.add_argument("--profile", default="notebook", choices=["notebook", "smoke"])
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="TensorFlow CPU evidence.json to compare with")
    parser.add_argument("--time-limit", type=float, default=420.0, help="seconds per pytest session (default 420)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=570.0,
        help="seconds for the whole script (default 570, under a 10-minute job limit): each session gets at most what "
        f"is left less {RESERVE_S:.0f} s ({GRACE_S:.0f} s to write its evidence after SIGINT, {AFTER_S:.0f} s for the "
        "reports and the matrix), the steps sweep runs only in what remains, and every step after a session is "
        "stopped at the deadline",
    )
    parser.add_argument(
        "--backends",
        type=backend_list,
        default="auto",
        help="jax, tensorflow or jax,tensorflow (default auto: JAX, and TensorFlow where this Python can import it)",
    )
    parser.add_argument("--allow-cpu", action="store_true", help="run even where JAX sees no GPU (to try the script)")
    parser.add_argument(
        "--no-steps-sweep",
        dest="steps_sweep",
        action="store_false",
        help="skip the short steps-per-execution measurement after the claims",
    )
    parser.add_argument("pytest", nargs="*", help="after --: more pytest arguments")
    args = parser.parse_args()
    started = time.monotonic()
    deadline = Deadline(args.deadline)
    signal.signal(signal.SIGTERM, interrupted)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    environment = [f"python {sys.version.split()[0]} ({sys.executable})"]
    env = install(environment, deadline.left())
    found = {b: probe(env, b, min(300.0, deadline.left())) for b in BACKENDS}
    environment += [f"{b}: {json.dumps(p)}" for b, p in found.items()]
    if "error" in found["jax"]:
        sys.exit(f"JAX cannot be imported by {sys.executable}: {found['jax']['error']}")
    if not found["jax"]["gpus"] and not args.allow_cpu:
        sys.exit("JAX sees no GPU (a CUDA jaxlib plugin and a visible NVIDIA device are needed); --allow-cpu to try")
    backends = args.backends or ["jax"] + (["tensorflow"] if "error" not in found["tensorflow"] else [])
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False, timeout=30)
        environment.append("nvidia-smi: see environment.txt")
        (args.out / "environment.txt").write_text(smi.stdout + smi.stderr)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="gpu-run-cache-") as cache:  # cold: no run is cached
        for backend in backends:
            limit = min(args.time_limit, deadline.left() - RESERVE_S)
            if limit < 30:
                outcomes.append(not_run(backend, deadline.left()))
                print(f"== {backend}: {outcomes[-1]['returncode']} (counted as failed)")
                continue
            print(f"== {backend}: pytest claims -n {args.workers} --seeds {args.seeds} (limit {limit:.0f} s)")
            outcomes.append(run_session(env, backend, args.out / backend, args, Path(cache), limit, deadline))
            print(json.dumps(outcomes[-1]))
    if args.steps_sweep and deadline.left() - AFTER_S > 60:
        print("== steps per execution: basic CNN, JAX, N = 1, 32, 128 (after the claims, so it cannot delay them)")
        sweep = [sys.executable, "-m", "bench.steps_per_execution", "--backend", "jax", "--threads", "0"]
        sweep += ["--runs", "basic_cnn:64", "basic_cnn:16", "--n", "1", "32", "128", "--epochs", "3"]
        sweep += ["--out", str(args.out / "steps-per-execution.json")]
        (args.out / "steps-per-execution.txt").write_text(run_bounded(sweep, env, deadline.left() - AFTER_S))
    columns = [f"TensorFlow CPU (baseline)={args.baseline}"] if args.baseline.is_file() else []
    columns += [str(args.out / o["backend"] / "evidence.json") for o in outcomes if o["evidence"]]  # labelled by device
    matrix = args.out / "matrix"
    if columns:
        command = [sys.executable, "-m", "reports", "--matrix", *columns, "--out", str(matrix)]
        print(run_bounded(command, env, deadline.left()), end="")
    environment.append(f"whole script: {time.monotonic() - started:.0f} s")
    (args.out / "summary.md").write_text(summary(outcomes, environment, matrix))
    print(f"written: {args.out} (summary.md first)")
    sys.exit(exit_status(outcomes))


if __name__ == "__main__":
    main()
