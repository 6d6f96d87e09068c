"""The GPU run's preparation brings everything the suite imports, and the run installs only what an image lacks.

The end-to-end check (a fresh Python 3.12 virtualenv with JAX but neither TensorFlow nor Keras, the smoke
profile, `--allow-cpu`) is in the README's "A GPU run in one command"; these are its fast parts.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
IMAGE = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux", "extra": ""}
"""The GPU image's markers: requirements are evaluated as pip there would."""
NOT_BROUGHT = {"tensorflow", "jax", "jaxlib", "torch", "playwright"}
"""The backends, imported only by the one in use (fixtures.backend; the image brings its own), and the report's
real-browser check (reports.browser_check), which the GPU run does not do."""


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
    """Each third-party module that conftest, fixtures, claims or reports imports is brought (or NOT_BROUGHT)."""
    prepare = script("gpu_prepare")
    brought = {normal(d) for d in prepare.DISTRIBUTIONS} | set(prepare.FROM_JAX) | NOT_BROUGHT
    modules = set()
    for path in [
        REPO / "conftest.py",
        *[p for d in ("fixtures", "claims", "reports") for p in (REPO / d).glob("*.py")],
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"fixtures", "claims", "reports", "tests", "__future__"}
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
