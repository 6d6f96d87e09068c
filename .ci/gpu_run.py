"""Every claim on a GPU machine in one command, from this checkout alone (README: "A GPU run in one command").

    python3 .ci/gpu_run.py [--out DIR] [--seeds 5] [-n 4] [--baseline TF_CPU_EVIDENCE] [-- PYTEST ARGS]

Run `.ci/gpu_prepare.py` first, on a machine with internet; then, on the GPU machine (no internet needed):

1. installs into `.gpu-site/` (first on PYTHONPATH) each wheel of `.gpu-wheels/` whose distribution this Python
   lacks or has older: an image with JAX but neither TensorFlow nor Keras gets Keras, pytest-xdist, ...;
2. checks that JAX sees a GPU (`--allow-cpu` to try the script on a CPU);
3. runs `pytest claims -n 4 --seeds 5 -rsx` cold (a fresh runs cache) on JAX, and on TensorFlow as well where
   this Python has it, each under `--time-limit` and all within `--deadline` (then SIGINT, then SIGKILL: what
   finished is still written), while sampling every process's GPU memory with nvidia-smi; then, in the time
   left, a short steps-per-execution measurement (bench.steps_per_execution) on the GPU;
4. writes into one folder (default artifacts/gpu-run/): per backend `evidence.json` and its arrays,
   `pytest.log` (the terminal summary), `junit.xml` (each test's seconds), `report/`, `timing.txt` (per-run
   s/epoch, the session's time split, peak GPU memory per worker, `python -m reports.timing_split`) and
   `gpu-memory.csv`; `steps-per-execution.txt` (`bench.steps_per_execution` on the GPU, after the claims);
   `matrix/` (the verdict matrix against the TensorFlow CPU evidence `--baseline`, default
   the committed `.ci/gpu/tf-cpu-evidence.json`); `environment.txt`; and `summary.md`, which says it all briefly.

Exit status: 0 when every session ran and wrote evidence (refuted claims are results, shown in the matrix),
1 otherwise.
"""

from __future__ import annotations

import argparse
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
RESERVE_S = 45.0
"""Seconds kept back from --deadline for the reports, the time split and the matrix after the sessions."""


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


def install(log: list[str]) -> dict[str, str]:
    """Install what is missing into .gpu-site (no index, no dependencies: the folder is the whole closure) and
    return the environment the sessions run in."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not WHEELS.is_dir():
        sys.exit(f"{WHEELS} is missing: run `python .ci/gpu_prepare.py` on a machine with internet first")
    wanted = missing_wheels()
    if wanted:
        shutil.rmtree(SITE, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(SITE)]
        done = subprocess.run([*command, *map(str, wanted)], capture_output=True, text=True, check=False)
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


def probe(env: dict[str, str], backend: str) -> dict:
    """What `backend` sees in a fresh process: its version and devices (None if it cannot be imported)."""
    code = {
        "jax": "import jax; print(json.dumps({'version': jax.__version__, "
        "'gpus': [str(d) for d in jax.devices() if d.platform == 'gpu']}))",
        "tensorflow": "import tensorflow as tf; print(json.dumps({'version': tf.__version__, "
        "'gpus': [d.name for d in tf.config.list_physical_devices('GPU')]}))",
    }[backend]
    done = subprocess.run(
        [sys.executable, "-c", f"import json; {code}"],
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
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


def run_session(
    env: dict[str, str], backend: str, out: Path, args: argparse.Namespace, cache: Path, limit: float
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
        timed_out = False
        try:
            returncode = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGINT)  # pytest finishes the session: evidence of what completed
            try:
                returncode = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                returncode = process.wait()
    wall = time.monotonic() - start
    memory.stop.set()
    memory.join(timeout=5)
    evidence = out / "evidence.json"
    outcome = {"backend": backend, "returncode": returncode, "wall_s": round(wall, 1), "timed_out": timed_out}
    outcome["evidence"] = evidence.is_file()
    outcome["gpu_memory_peak_mib"] = memory.peaks
    if evidence.is_file():
        report = [sys.executable, "-m", "reports", "--evidence", str(evidence), "--out", str(out / "report")]
        subprocess.run(report, cwd=ROOT, env=env, capture_output=True, check=False)
        split = subprocess.run(
            [sys.executable, "-m", "reports.timing_split", str(evidence)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        (out / "timing.txt").write_text(split.stdout + split.stderr)
        claims = json.loads(evidence.read_text())["claims"]
        outcome["outcomes"] = {
            o: sum(c.get("outcome") == o for c in claims) for o in {c.get("outcome") for c in claims}
        }
    return outcome


def summary(outcomes: list[dict], environment: list[str], matrix: Path) -> str:
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
        "is left less 45 s for the reports and the matrix, and the steps sweep runs only in what remains",
    )
    parser.add_argument("--backends", default="auto", help="jax, tensorflow or both (auto: JAX, and TF if importable)")
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
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    environment = [f"python {sys.version.split()[0]} ({sys.executable})"]
    env = install(environment)
    found = {b: probe(env, b) for b in ("jax", "tensorflow")}
    environment += [f"{b}: {json.dumps(p)}" for b, p in found.items()]
    if "error" in found["jax"]:
        sys.exit(f"JAX cannot be imported by {sys.executable}: {found['jax']['error']}")
    if not found["jax"]["gpus"] and not args.allow_cpu:
        sys.exit("JAX sees no GPU (a CUDA jaxlib plugin and a visible NVIDIA device are needed); --allow-cpu to try")
    backends = ["jax"] + (["tensorflow"] if "error" not in found["tensorflow"] else [])
    if args.backends != "auto":
        backends = [b for b in args.backends.split(",") if b]
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False)
        environment.append("nvidia-smi: see environment.txt")
        (args.out / "environment.txt").write_text(smi.stdout + smi.stderr)
    outcomes = []

    def left() -> float:
        return args.deadline - (time.monotonic() - started) - RESERVE_S

    with tempfile.TemporaryDirectory(prefix="gpu-run-cache-") as cache:  # cold: no run is cached
        for backend in backends:
            limit = min(args.time_limit, left())
            if limit < 30:
                environment.append(f"{backend}: not run, {limit + RESERVE_S:.0f} s of the deadline left")
                continue
            print(f"== {backend}: pytest claims -n {args.workers} --seeds {args.seeds} (limit {limit:.0f} s)")
            outcomes.append(run_session(env, backend, args.out / backend, args, Path(cache), limit))
            print(json.dumps(outcomes[-1]))
    if args.steps_sweep and left() > 60:
        print("== steps per execution: basic CNN, JAX, N = 1, 32, 128 (after the claims, so it cannot delay them)")
        sweep = [sys.executable, "-m", "bench.steps_per_execution", "--backend", "jax", "--threads", "0"]
        sweep += ["--runs", "basic_cnn:64", "basic_cnn:16", "--n", "1", "32", "128", "--epochs", "3"]
        sweep += ["--out", str(args.out / "steps-per-execution.json")]
        try:
            done = subprocess.run(sweep, cwd=ROOT, env=env, capture_output=True, text=True, timeout=left(), check=False)
            text = done.stdout + done.stderr[-3000:]
        except subprocess.TimeoutExpired as e:
            partial = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
            text = f"stopped after {e.timeout:.0f} s (the deadline)\n{partial}"
        (args.out / "steps-per-execution.txt").write_text(text)
    columns = [f"TensorFlow CPU (baseline)={args.baseline}"] if args.baseline.is_file() else []
    columns += [str(args.out / o["backend"] / "evidence.json") for o in outcomes if o["evidence"]]  # labelled by device
    matrix = args.out / "matrix"
    if columns:
        subprocess.run([sys.executable, "-m", "reports", "--matrix", *columns, "--out", str(matrix)], cwd=ROOT, env=env)
    environment.append(f"whole script: {time.monotonic() - started:.0f} s")
    (args.out / "summary.md").write_text(summary(outcomes, environment, matrix))
    print(f"written: {args.out} (summary.md first)")
    sys.exit(0 if outcomes and all(o["evidence"] and not o["timed_out"] for o in outcomes) else 1)


if __name__ == "__main__":
    main()
