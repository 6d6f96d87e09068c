"""The suite's pytest plugin: it runs with and without xdist and pytest's cache plugin, the report finds the
evidence where a session put it by default, and xdist's controller imports no Keras backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import paths
from reports import evidence as report_evidence
from tests.planted import REPO, claims_project

CLAIM = """
import pytest
from fixtures.claim import Verdict
from tests.planted import planted

@pytest.mark.claim("c-holds")
def test_holds(claim):
    claim.uses([], seeds=[0])
    claim.check(planted(Verdict.HOLDS), summary="1 > 0")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "plugins",
    [["-p", "no:xdist"], ["-p", "no:cacheprovider"], ["-p", "no:xdist", "-p", "no:cacheprovider"]],
    ids=["no-xdist", "no-cacheprovider", "neither"],
)
def test_the_suite_runs_without_xdist_or_the_cache_plugin(plugins, tmp_path):
    """`pytest claims -p no:xdist -k architecture`, the usual way to debug a claim without workers."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "claims",
            *plugins,
            "-k",
            "architecture",
            "-q",
            "--claims-cache",
            str(tmp_path / "runs"),
            "--claims-evidence",
            str(tmp_path / "evidence"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "6 passed" in result.stdout and "INTERNALERROR" not in output
    assert (tmp_path / "evidence" / "evidence.json").is_file()


@pytest.mark.slow
def test_reports_look_first_where_a_session_writes_by_default(pytester, monkeypatch):
    """A session's default evidence directory (pytest's cache, honouring its `cache_dir` setting) is the first
    place `python -m reports` looks for it, for a checkout configured as this one is, in pyproject.toml."""
    pytester.makefile(
        ".toml",
        pyproject=f'[tool.pytest.ini_options]\ncache_dir = "elsewhere/cache"\n'
        f'pythonpath = ["{REPO}"]\nmarkers = ["claim(id): a claim"]\n',
    )
    pytester.makeconftest((REPO / "conftest.py").read_text())
    pytester.makepyfile(test_claims=CLAIM)
    monkeypatch.setattr(paths, "REPO", pytester.path)
    monkeypatch.delenv("MNIST_CLAIMS_EVIDENCE", raising=False)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    written = pytester.path / "elsewhere" / "cache" / "d" / paths.EVIDENCE / "evidence.json"
    assert written.is_file()
    assert paths.default_dirs(paths.EVIDENCE)[0] / "evidence.json" == written
    assert report_evidence.resolve(None) == written
    assert Path(paths.USER_CACHE) == paths.default_dirs(paths.EVIDENCE)[1].parent


CONTROLLER_MODULES = """
import json, sys

def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):  # xdist's controller
        imported = [name for name in ("keras", "tensorflow", "jax", "torch") if name in sys.modules]
        with open("controller-modules.json", "w") as f:
            json.dump(imported, f)
"""


@pytest.mark.slow
def test_the_xdist_controller_imports_no_keras_backend(pytester):
    """The controller trains nothing: its progress display and evidence writing must not pay Keras's and
    TensorFlow's start-up once more (the modules it has imported when it ends are read in its own process)."""
    claims_project(pytester, test_claims=CLAIM, controller_modules=CONTROLLER_MODULES)
    cache, evidence = pytester.path / "runs", pytester.path / "evidence"
    result = pytester.runpytest_subprocess(
        "-n", "1", "-p", "controller_modules", "--claims-cache", str(cache), "--claims-evidence", str(evidence)
    )
    result.assert_outcomes(passed=1)
    assert (evidence / "evidence.json").is_file()
    assert json.loads((pytester.path / "controller-modules.json").read_text()) == []
