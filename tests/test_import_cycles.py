"""fixtures/ has no import cycle: every import between its modules, read with `ast` (those under TYPE_CHECKING
and inside functions included), forms a graph with a topological order."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from tests.planted import REPO

PACKAGE = "fixtures"


def imported_modules(source: str, package: str, modules: set[str]) -> set[str]:
    """The modules of `package` (among `modules`) that `source` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name.removeprefix(f"{package}.") for name in names if name.startswith(f"{package}.")} & modules
    return found


def import_cycle(directory: Path, package: str = PACKAGE) -> list[str] | None:
    """One import cycle among the modules in `directory` (the package `package`), as [a, b, ..., a]; None if none."""
    sources = {path.stem: path.read_text() for path in directory.glob("*.py") if path.stem != "__init__"}
    graph = {name: imported_modules(source, package, set(sources)) for name, source in sources.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        return list(reversed(e.args[1]))
    return None


def test_fixtures_has_no_import_cycle():
    assert import_cycle(REPO / PACKAGE) is None


def test_the_check_finds_the_cycle_fixtures_had(tmp_path):
    """The store imported the training, which imported the store's RunSpec for its type hints only."""
    (tmp_path / "runs.py").write_text("from fixtures.training import train\n")
    (tmp_path / "training.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from fixtures.runs import RunSpec\n"
    )
    (tmp_path / "runlog.py").write_text("import fixtures\n")
    assert import_cycle(tmp_path) in (["runs", "training", "runs"], ["training", "runs", "training"])


def test_the_check_sees_imports_inside_functions_and_of_submodules(tmp_path):
    (tmp_path / "plan.py").write_text("def show():\n    from fixtures import progress\n")
    (tmp_path / "progress.py").write_text("import fixtures.plan\n")
    assert import_cycle(tmp_path) is not None
