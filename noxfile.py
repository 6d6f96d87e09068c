"""The nightly regression job: the claims on several TensorFlow releases and Keras backends, then the verdict matrix.

`nox -s claims` runs every environment, `nox -s "claims(tf-2.18)"` one, `nox -s matrix` compares them
(README: "Nightly regression job"). Arguments after `--` go to pytest, e.g. `nox -s claims -- --seeds 5`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["claims", "matrix"]

TF_RELEASES = ["2.21", "2.20", "2.18", "2.16"]
"""Newest first: the newest is the matrix's reference column and the one compared with last night."""
ENVIRONMENTS = [f"tf-{release}" for release in TF_RELEASES] + ["jax"]
ROOT = Path(__file__).parent
ARTIFACTS = Path(os.environ.get("NIGHTLY_ARTIFACTS") or ROOT / "artifacts" / "nightly").resolve()
RUNS_CACHE = Path(os.environ.get("MNIST_CLAIMS_CACHE") or ROOT / ".nox-cache" / "training-runs").resolve()
BASELINE = Path(os.environ.get("NIGHTLY_BASELINE") or ARTIFACTS / "baseline" / "evidence.json").resolve()
PYTEST_DEFAULTS = ["-n", "2", "-rsx", "--fresh-evidence"]
SHOWN_VERSIONS = ["tensorflow-cpu", "keras", "jax", "jaxlib", "numpy"]
OUTCOMES = ["passed", "failed", "skipped", "xfailed", "xpassed"]


def requirements(env: str) -> list[str]:
    """What an environment installs besides the project: one TensorFlow release line, or JAX; pip resolves Keras."""
    if env == "jax":
        return [".[jax]"]
    return [".", f"tensorflow-cpu=={env.removeprefix('tf-')}.*"]


@nox.session
@nox.parametrize("env", ENVIRONMENTS, ids=ENVIRONMENTS)
def claims(session: nox.Session, env: str) -> None:
    """Run the claims in a fresh virtualenv; evidence to $NIGHTLY_ARTIFACTS/<env>/, runs to the shared cache.

    pytest's exit 1 (a claim refuted, or a known refutation that holds again) is a result the matrix
    reports, so it passes this session; any other failure (no tests, usage error, crash, no evidence) fails it.
    """
    session.install(*requirements(env))
    session.run_install(
        "python",
        "-c",
        "import importlib.metadata as m; "
        "found = {d.name.lower().replace('_', '-'): d.version for d in m.distributions()}; "
        f"print('resolved:', ', '.join(f'{{p}} {{found[p]}}' for p in {SHOWN_VERSIONS!r} "
        "if p in found))",
    )
    evidence = ARTIFACTS / env / "evidence.json"
    before = evidence.stat().st_mtime_ns if evidence.exists() else None
    ran = session.run(
        "python",
        "-m",
        "pytest",
        "claims",
        *PYTEST_DEFAULTS,
        "--claims-evidence",
        str(evidence.parent),
        "--claims-cache",
        str(RUNS_CACHE),
        *session.posargs,
        env={"KERAS_BACKEND": "jax" if env == "jax" else "tensorflow"},
        success_codes=[0, 1],
    )
    if ran is not None and (not evidence.exists() or evidence.stat().st_mtime_ns == before):  # None: --install-only
        session.error(f"pytest recorded no claim in {evidence}: see its output above")


def environment_rows(found: dict[str, Path]) -> list[str]:
    """A Markdown table: each environment's resolved versions and its claims' pytest outcomes."""
    rows = ["| environment | versions | " + " | ".join(OUTCOMES) + " |", "|---" * (len(OUTCOMES) + 2) + "|"]
    for env, path in found.items():
        evidence = json.loads(path.read_text(encoding="utf-8"))
        versions = evidence["session"].get("versions") or {}
        outcomes = [c.get("outcome") for c in evidence["claims"]]
        rows.append(
            f"| {env} | "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + " | "
            + " | ".join(str(outcomes.count(o)) for o in OUTCOMES)
            + " |"
        )
    return rows


@nox.session
def matrix(session: nox.Session) -> None:
    """Build the verdict matrix of every environment's evidence, the newest release's report, and its comparison.

    Writes $NIGHTLY_ARTIFACTS/matrix/ (matrix.html, matrix.md), report/ and summary.md; fails only when the
    newest release's verdicts differ significantly from the baseline's (`python -m reports --fail-on-change`).
    """
    found = {env: ARTIFACTS / env / "evidence.json" for env in ENVIRONMENTS}
    found = {env: path for env, path in found.items() if path.exists()}
    if not found:
        session.error(f"no evidence under {ARTIFACTS}/<env>/: run `nox -s claims` first")
    session.install(".")
    session.run("python", "-m", "reports", "--matrix", *map(str, found.values()), "--out", str(ARTIFACTS / "matrix"))
    summary = [
        "# Nightly claims",
        "",
        *environment_rows(found),
        "",
        (ARTIFACTS / "matrix" / "matrix.md").read_text(encoding="utf-8"),
    ]
    newest, failed = ENVIRONMENTS[0], False
    if newest not in found:
        summary.append(f"No report and no comparison with the baseline: {newest} recorded no evidence.")
    else:
        compare = ["--baseline", str(BASELINE), "--fail-on-change"] if BASELINE.exists() else []
        # subprocess, not session.run: its exit status decides and its lines go into the summary.
        done = subprocess.run(
            [
                shutil.which("python", path=session.bin),
                "-m",
                "reports",
                "--evidence",
                str(found[newest]),
                "--out",
                str(ARTIFACTS / "report"),
                *compare,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        print(done.stdout + done.stderr, end="")
        if done.returncode not in (0, 1):
            session.error(f"the report of {newest} failed (exit {done.returncode})")
        failed = done.returncode == 1
        changes = [line for line in done.stderr.splitlines() if line.startswith("verdict changed")]
        outcome = (
            [f"- {line}" for line in changes or ["no verdict changed"]] if compare else [f"No baseline at {BASELINE}."]
        )
        summary += [f"## {newest} against the baseline", "", *outcome]
    (ARTIFACTS / "summary.md").write_text("\n".join(summary) + "\n", encoding="utf-8")
    session.log(f"summary: {ARTIFACTS / 'summary.md'}")
    if failed:
        session.error(f"{newest}: a verdict changed significantly from the baseline (see above)")
