"""The nightly regression job: the claims on several TensorFlow releases, Keras lines, backends and pre-releases,
then the verdict matrix.

`nox -s claims` runs every environment, `nox -s "claims(tf-2.18)"` one, `nox -s matrix` compares them
(README: "Nightly regression job"). Arguments after `--` go to pytest, e.g. `nox -s claims -- --seeds 5`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import nox
from packaging.version import InvalidVersion, Version

nox.options.sessions = ["claims", "matrix"]

ROOT = Path(__file__).parent
PINNED_TF = ["2.21", "2.20", "2.18", "2.16"]
"""TensorFlow lines always run, newest first; a newer line found on the index at run time goes before them."""
FALLBACK_OLDER_KERAS = "3.14"
"""The Keras line before the newest, when the index cannot be asked."""
PRE_RELEASES = ["tf-nightly", "keras-nightly"]
"""Never the reference column; a verdict they change is reported as a change in the next release."""
TF_NIGHTLY = "tf-nightly"
"""TensorFlow's nightly wheel; its Linux build runs on the CPU without CUDA (the CUDA libraries are its `and-cuda`
extra). Not `tf-nightly-cpu`: that name stopped at 2.22.0.dev20260905, older than the 2.22 release candidate."""
ENVIRONMENT_NAME = re.compile(r"tf-(?P<tf>\d+\.\d+)(?:-keras-(?P<keras>\d+\.\d+))?|jax|tf-nightly|keras-nightly")
INDEX_TIMEOUT_S = 60
ARTIFACTS = Path(os.environ.get("NIGHTLY_ARTIFACTS") or ROOT / "artifacts" / "nightly").resolve()
RUNS_CACHE = Path(os.environ.get("MNIST_CLAIMS_CACHE") or ROOT / ".nox-cache" / "training-runs").resolve()
BASELINE = Path(os.environ.get("NIGHTLY_BASELINE") or ARTIFACTS / "baseline" / "evidence.json").resolve()
HISTORY = Path(os.environ["NIGHTLY_HISTORY"]).resolve() if os.environ.get("NIGHTLY_HISTORY") else None
"""Where the matrix session keeps each night's evidence (<YYYY-MM-DD>/<env>/evidence.json); unset: no history."""
HISTORY_NIGHTS = int(os.environ.get("NIGHTLY_HISTORY_NIGHTS") or 30)
PYTEST_DEFAULTS = ["-n", "2", "-rsx", "--fresh-evidence"]
SHOWN_VERSIONS = ["tensorflow-cpu", "tf-nightly", "keras", "keras-nightly", "jax", "jaxlib", "numpy"]
OUTCOMES = ["passed", "failed", "skipped", "xfailed", "xpassed"]
UNAVAILABLE = "unavailable.txt"
"""Written to a pre-release's evidence folder instead of evidence, when it does not install or import."""
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def release_lines(pip_index_output: str) -> list[str]:
    """The major.minor lines of the final releases that `pip index versions` lists, newest first."""
    found = re.search(r"^Available versions: (.+)$", pip_index_output, re.MULTILINE)
    versions = []
    for text in found.group(1).split(",") if found else []:
        try:
            versions.append(Version(text.strip()))
        except InvalidVersion:
            continue
    finals = sorted((v for v in versions if not v.is_prerelease), reverse=True)
    return list(dict.fromkeys(f"{v.major}.{v.minor}" for v in finals))


def index_lines(package: str) -> list[str]:
    """`package`'s release lines on pip's configured index, newest first; [] (said in one line) when unreachable."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", package],
            capture_output=True,
            text=True,
            timeout=INDEX_TIMEOUT_S,
        )
        why = done.stderr.strip().splitlines()[-1:] if done.returncode else ["no final release listed"]
        lines = release_lines(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired) as e:
        why, lines = [str(e)], []
    if not lines:
        print(
            f"nox: could not list {package}'s releases on the index ({' '.join(why)}): using the pinned lines",
            file=sys.stderr,
        )
    return lines


def environments() -> list[str]:
    """The claims environments, the reference (the newest TensorFlow release) first: the TensorFlow lines, the
    newest one with the previous Keras line, JAX, the pre-releases. $NIGHTLY_ENVIRONMENTS (a JSON list, as `nox -l
    --json` gave it) fixes them, so that every job of one night runs what its first job listed."""
    if os.environ.get("NIGHTLY_ENVIRONMENTS"):
        return json.loads(os.environ["NIGHTLY_ENVIRONMENTS"])
    tf = list(dict.fromkeys(index_lines("tensorflow-cpu")[:1] + PINNED_TF))
    keras = index_lines("keras")
    older_keras = keras[1] if len(keras) > 1 else FALLBACK_OLDER_KERAS
    return [f"tf-{line}" for line in tf] + [f"tf-{tf[0]}-keras-{older_keras}", "jax", *PRE_RELEASES]


def requirements(env: str) -> list[str]:
    """What an environment installs: the project's dependencies with one TensorFlow line (Keras as pip resolves it,
    or one Keras line), JAX, or a nightly wheel with keras-nightly in place of keras (both install `keras/`)."""
    name = ENVIRONMENT_NAME.fullmatch(env)
    if name is None:
        raise ValueError(f"not an environment name: {env!r} (tf-X.Y, tf-X.Y-keras-X.Y, jax, tf-nightly, keras-nightly)")
    if env in PRE_RELEASES:
        without_keras = [d for d in PROJECT["dependencies"] if not re.match(r"keras\b", d)]
        backend = [TF_NIGHTLY] if env == "tf-nightly" else PROJECT["optional-dependencies"]["jax"]
        return [*without_keras, *backend, "keras-nightly"]
    if env == "jax":
        return [".[jax]"]
    keras = [f"keras=={name['keras']}.*"] if name["keras"] else []
    return [".", f"tensorflow-cpu=={name['tf']}.*", *keras]


ENVIRONMENTS = environments()


def backend_of(env: str) -> str:
    """The Keras backend an environment runs on."""
    return "jax" if env in ("jax", "keras-nightly") else "tensorflow"


def install(session: nox.Session, env: str) -> bool:
    """Install the environment and import its Keras backend; a pre-release that fails either is written down in
    its evidence folder (for the matrix to report) and returns False, so that it does not fail the night."""
    unavailable = ARTIFACTS / env / UNAVAILABLE
    unavailable.unlink(missing_ok=True)
    steps = [
        ("did not install", lambda: session.install(*requirements(env))),
        (
            "does not import",
            lambda: session.run(
                "python", "-c", "import keras; keras.ops.add(1, 1)", env={"KERAS_BACKEND": backend_of(env)}
            ),
        ),
    ]
    for failure, step in steps:
        try:
            step()
        except nox.command.CommandFailed as e:
            if env not in PRE_RELEASES:
                raise
            unavailable.parent.mkdir(parents=True, exist_ok=True)
            unavailable.write_text(
                f"{env} {failure} ({e.reason}; its output is in the session's log)\n", encoding="utf-8"
            )
            return False
    return True


@nox.session
@nox.parametrize("env", [nox.param(e, id=e, tags=["pre-release"] if e in PRE_RELEASES else []) for e in ENVIRONMENTS])
def claims(session: nox.Session, env: str) -> None:
    """Run the claims in a fresh virtualenv; evidence to $NIGHTLY_ARTIFACTS/<env>/, runs to the shared cache.

    pytest's exit 1 (a claim refuted, or a known refutation that holds again) is a result the matrix
    reports, so it passes this session; any other failure (no tests, usage error, crash, no evidence) fails it.
    A pre-release that does not install or import skips, with the reason in <env>/unavailable.txt.
    """
    if not install(session, env):
        session.skip((ARTIFACTS / env / UNAVAILABLE).read_text(encoding="utf-8").strip())
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
        env={"KERAS_BACKEND": backend_of(env)},
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


def report(session: nox.Session, evidence: Path, out: Path, baseline: Path | None, fail: bool) -> tuple[int, list[str]]:
    """`python -m reports` of one evidence file (compared with `baseline`, failing on a significant change if `fail`):
    its exit status and its "verdict changed" lines. Errors the session unless it exits 0 or 1."""
    compare = ["--baseline", str(baseline)] if baseline else []
    # subprocess, not session.run: its exit status decides and its lines go into the summary.
    done = subprocess.run(
        [
            shutil.which("python", path=session.bin),
            "-m",
            "reports",
            "--evidence",
            str(evidence),
            "--out",
            str(out),
            *compare,
            *(["--fail-on-change"] if fail else []),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    print(done.stdout + done.stderr, end="")
    if done.returncode not in (0, 1):
        session.error(f"the report of {evidence} failed (exit {done.returncode})")
    return done.returncode, [line for line in done.stderr.splitlines() if line.startswith("verdict changed")]


def against_reference(session: nox.Session, env: str, found: dict[str, Path]) -> list[str]:
    """A summary section: the verdicts of a pre-release (a change in the next release) or of the older Keras line
    (a Keras-only change) that differ from the reference's, by the nightly comparison's test; its report to
    report-<env>/."""
    reference = ENVIRONMENTS[0]
    _, changes = report(session, found[env], ARTIFACTS / f"report-{env}", found[reference], fail=False)
    kind = "changes in the next release" if env in PRE_RELEASES else "changes with the Keras line"
    lines = [
        f"- {kind}: {line.removeprefix('verdict changed (significant): ')}"
        if line.startswith("verdict changed (significant)")
        else f"- {line}"
        for line in changes
    ]
    return [f"## {env} against {reference}", "", *(lines or ["no verdict differs"]), ""]


def keep_tonight(found: dict[str, Path], history: Path, nights: int) -> None:
    """Copy tonight's evidence files and the pre-releases' unavailable.txt to history/<YYYY-MM-DD UTC>/<env>/ (the
    layout `python -m reports --history` reads), then keep only the newest `nights` nights."""
    tonight = history / datetime.now(timezone.utc).date().isoformat()
    shutil.rmtree(tonight, ignore_errors=True)
    unavailable = {env: ARTIFACTS / env / UNAVAILABLE for env in ENVIRONMENTS}
    for env, path in [*found.items(), *((e, p) for e, p in unavailable.items() if p.is_file())]:
        (tonight / env).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, tonight / env / path.name)
    for old in sorted(p for p in history.iterdir() if p.is_dir())[:-nights]:
        shutil.rmtree(old)


@nox.session
def matrix(session: nox.Session) -> None:
    """Build the verdict matrix of every environment's evidence, the newest release's report, its comparison with
    the baseline, the pre-releases' and the older Keras line's comparisons with it, and the history across nights.

    Writes $NIGHTLY_ARTIFACTS/matrix/ (matrix.html, matrix.md), report/, report-<env>/, history/ (with
    $NIGHTLY_HISTORY) and summary.md; fails only when the newest release's verdicts differ significantly from the
    baseline's (`python -m reports --fail-on-change`). A pre-release that did not run is listed, never a failure.
    """
    found = {env: ARTIFACTS / env / "evidence.json" for env in ENVIRONMENTS}
    # a pre-release that did not install tonight: its evidence.json, if any, is from an earlier run
    found = {env: path for env, path in found.items() if path.exists() and not (path.parent / UNAVAILABLE).exists()}
    if not found:
        session.error(f"no evidence under {ARTIFACTS}/<env>/: run `nox -s claims` first")
    not_run = [
        (ARTIFACTS / env / UNAVAILABLE).read_text(encoding="utf-8").strip()
        for env in ENVIRONMENTS
        if (ARTIFACTS / env / UNAVAILABLE).is_file()
    ]
    session.install(".")
    session.run("python", "-m", "reports", "--matrix", *map(str, found.values()), "--out", str(ARTIFACTS / "matrix"))
    summary = [
        "# Nightly claims",
        "",
        *environment_rows(found),
        "",
        *[f"- not run: {line}" for line in not_run],
        "",
        (ARTIFACTS / "matrix" / "matrix.md").read_text(encoding="utf-8"),
    ]
    newest, failed = ENVIRONMENTS[0], False
    if newest not in found:
        summary.append(f"No report and no comparison with the baseline: {newest} recorded no evidence.")
    else:
        baseline = BASELINE if BASELINE.exists() else None
        status, changes = report(session, found[newest], ARTIFACTS / "report", baseline, fail=baseline is not None)
        failed = status == 1 and baseline is not None
        outcome = (
            [f"- {line}" for line in changes or ["no verdict changed"]] if baseline else [f"No baseline at {BASELINE}."]
        )
        summary += [f"## {newest} against the baseline", "", *outcome, ""]
        for env in (e for e in found if e in PRE_RELEASES or "-keras-" in e):
            summary += against_reference(session, env, found)
    if HISTORY:
        keep_tonight(found, HISTORY, HISTORY_NIGHTS)
        session.run("python", "-m", "reports", "--history", str(HISTORY), "--out", str(ARTIFACTS / "history"))
        summary.append((ARTIFACTS / "history" / "history.md").read_text(encoding="utf-8"))
    (ARTIFACTS / "summary.md").write_text("\n".join(summary) + "\n", encoding="utf-8")
    session.log(f"summary: {ARTIFACTS / 'summary.md'}")
    if failed:
        session.error(f"{newest}: a verdict changed significantly from the baseline (see above)")
