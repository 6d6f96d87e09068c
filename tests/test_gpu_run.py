"""The GPU run's preparation brings everything the suite imports, and the run installs only what an image lacks.

The end-to-end check (a fresh Python 3.12 virtualenv with JAX but neither TensorFlow nor Keras, the smoke
profile, `--allow-cpu`) is in the README's "A GPU run in one command"; these are its fast parts.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
IMAGE = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux", "extra": ""}
"""The GPU image's markers: requirements are evaluated as pip there would."""
LOCAL = ("fixtures", "claims", "reports", "bench")
"""The packages of this checkout that the GPU run imports."""
NOT_BROUGHT = {"tensorflow", "jax", "jaxlib", "torch", "playwright", "google"}
"""The backends, imported only by the one in use (fixtures.backend; the image brings its own), the report's
real-browser check (reports.browser_check), which the GPU run does not do, and the `google` namespace, which
the notebook sandbox imports only to hang its google.colab stub on (it makes one up where it is absent)."""


def script(name: str) -> ModuleType:
    """A .ci script as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / ".ci" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def normal(name: str) -> str:
    return name.lower().replace("_", "-")


def test_the_wheels_hold_their_own_dependencies():
    """Every wheel's requirements (on the image's Python 3.12 Linux) are other wheels or what JAX brings."""
    prepare = script("gpu_prepare")
    brought = {normal(d) for d in prepare.DISTRIBUTIONS} | set(prepare.FROM_JAX)
    for dist in prepare.DISTRIBUTIONS:
        for line in importlib.metadata.requires(dist) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(IMAGE):
                assert normal(requirement.name) in brought, f"{dist} needs {requirement.name}, which is not brought"


def test_the_wheels_cover_every_import_of_the_suite_and_its_dependencies():
    """Each third-party module that conftest, fixtures, claims, reports or bench (the steps sweep) imports, in any
    subfolder, is brought (or NOT_BROUGHT)."""
    prepare = script("gpu_prepare")
    brought = {normal(d) for d in prepare.DISTRIBUTIONS} | set(prepare.FROM_JAX) | NOT_BROUGHT
    modules = set()
    for path in [
        REPO / "conftest.py",
        *[p for d in LOCAL for p in (REPO / d).rglob("*.py")],
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - set(LOCAL) - {"tests", "__future__"}
    owners = importlib.metadata.packages_distributions()
    for module in sorted(third_party):
        dists = {normal(d) for d in owners.get(module, [])} | {module}
        assert dists & brought, f"the suite imports {module} ({dists}), which the GPU run does not bring"
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in declared:
        assert normal(Requirement(line).name) in brought, f"pyproject's {line} is not brought"


def test_only_what_is_missing_or_older_is_installed(tmp_path, monkeypatch):
    run = script("gpu_run")
    installed = importlib.metadata.version("pytest")
    for name in ("keras-999.0-py3-none-any.whl", f"pytest-{installed}-py3-none-any.whl", "no_such_dist-1.0-py3.whl"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "pytest_xdist-0.1-py3-none-any.whl").write_bytes(b"")
    monkeypatch.setattr(run, "WHEELS", tmp_path)
    assert [w.name for w in run.missing_wheels()] == ["keras-999.0-py3-none-any.whl", "no_such_dist-1.0-py3.whl"]


def test_versions_compare_by_their_numbers():
    run = script("gpu_run")
    assert run.version_tuple("3.15.1") > run.version_tuple("3.9.0") > run.version_tuple("3.9")
    assert run.version_tuple("2.1.0rc1") == (2, 1, 0) and run.version_tuple("2026.6") == (2026, 6)


def session_group(trap: str) -> tuple[subprocess.Popen, int]:
    """A stand-in for a pytest session: a shell in its own process group (as run_session starts pytest) with a
    SIGINT trap, and a child that outlives it unless the whole group is killed; the child's pid."""
    script_text = f'trap "{trap}" INT; sleep 60 & echo $!; wait'
    process = subprocess.Popen(["sh", "-c", script_text], stdout=subprocess.PIPE, text=True, start_new_session=True)
    return process, int(process.stdout.readline())


def gone(pid: int) -> bool:
    """The process has ended (no longer listed, or a zombie waiting for its reaper)."""
    for _ in range(50):
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_a_session_past_its_limit_gets_sigint_then_its_group_is_killed():
    run = script("gpu_run")
    process, child = session_group("exit 3")
    returncode, timed_out = run.wait_session(process, 0.5, run.Deadline(100.0))
    assert (returncode, timed_out) == (3, True), "the session's own exit after SIGINT is reported"
    assert gone(child), "a worker of the session outlived it"


def test_sigterm_stops_the_session_group_and_is_raised_as_an_interrupt():
    run = script("gpu_run")
    process, child = session_group("")  # ignores SIGINT: only the kill after the grace stops it
    previous = signal.signal(signal.SIGTERM, run.interrupted)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            run.wait_session(process, 30.0, run.Deadline(1.5))  # the grace is what is left of the deadline
    finally:
        timer.join()
        signal.signal(signal.SIGTERM, previous)
    assert process.returncode == -signal.SIGKILL
    assert gone(child), "a worker of the session outlived the interrupt"


def test_a_step_after_the_sessions_is_stopped_at_its_time_with_what_it_started():
    run = script("gpu_run")
    start = time.monotonic()
    code = (
        "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('begun', p.pid, flush=True); time.sleep(30)"
    )
    text = run.run_bounded([sys.executable, "-c", code], dict(os.environ), 1.0)
    assert time.monotonic() - start < 10
    assert text.startswith("stopped after 1 s") and "begun" in text
    assert gone(int(text.split("begun")[1].split()[0])), "what the step started outlived it"


@pytest.mark.parametrize("value", ["both", "jax,torch", ","])
def test_an_unknown_backend_is_refused_in_one_line(value, capsys, monkeypatch):
    run = script("gpu_run")
    monkeypatch.setattr(sys, "argv", ["gpu_run.py", "--backends", value])
    with pytest.raises(SystemExit) as stopped:
        run.main()
    assert stopped.value.code == 2
    assert "give auto or a comma-separated list of jax, tensorflow" in capsys.readouterr().err.splitlines()[-1]


def test_backends_are_auto_or_named():
    run = script("gpu_run")
    assert run.backend_list("auto") == [] and run.backend_list("tensorflow, jax") == ["tensorflow", "jax"]


def test_a_backend_left_out_for_lack_of_time_fails_the_run(tmp_path):
    run = script("gpu_run")
    ran = {"backend": "jax", "returncode": 0, "wall_s": 300.0, "timed_out": False, "evidence": True}
    ran |= {"gpu_memory_peak_mib": {"123": 4000}, "outcomes": {"passed": 21}}
    assert run.exit_status([ran]) == 0
    skipped = run.not_run("tensorflow", 80.4)
    assert run.exit_status([ran, skipped]) == 1
    assert "| tensorflow | 0 | not run: 80 s of the deadline left |" in run.summary([ran, skipped], [], tmp_path)


def test_the_committed_baseline_was_recorded_under_todays_rules():
    """The GPU matrix compares devices, not rule versions: each claim of .ci/gpu/tf-cpu-evidence.json was decided
    by a rule whose statement (its docstring, as @rule records it) is still one of claims/'s rules, and the matrix
    code reads it (against itself: no verdict differs). Re-record it when a rule changes (README)."""
    from reports import matrix

    statements = set()
    for path in sorted((REPO / "claims").glob("test_*.py")):
        module = importlib.import_module(f"claims.{path.stem}")
        rules = [f for f in vars(module).values() if callable(f) and hasattr(f, "__wrapped__")]
        statements |= {" ".join((f.__doc__ or "").split()) for f in rules if f.__module__ == module.__name__}
    baseline = script("gpu_run").BASELINE
    columns = matrix.columns([str(baseline), str(baseline)])
    stale = [c.id for c in columns[0].evidence.claims if c.rule not in statements]
    assert not stale, f"{baseline.name} was decided by rules claims/ no longer has: {stale}"
    assert len(columns[0].evidence.claims) >= 20 and not any(row.differs for row in matrix.rows(columns))
