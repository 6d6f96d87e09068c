"""CI runs every harness test exactly once: its harness commands are the README's, split by the `slow` marker into
two complementary parts."""

from __future__ import annotations

import re
import shlex

from tests.planted import REPO

HARNESS = re.compile(r"\s*\.venv/bin/python -m pytest tests\b")


def harness_commands(text: str) -> list[list[str]]:
    """The `pytest tests` command lines of a shell script or a README, as argument lists."""
    return [shlex.split(line) for line in text.splitlines() if HARNESS.match(line)]


def marker_expressions(commands: list[list[str]]) -> list[str]:
    """Each command's -m expression, sorted ("" for none: the whole suite)."""
    return sorted(command[command.index("-m", 3) + 1] if "-m" in command[3:] else "" for command in commands)


def test_ci_runs_the_fast_and_the_slow_part_once_each_as_the_readme_says():
    ci = harness_commands((REPO / ".ci" / "run").read_text())
    assert marker_expressions(ci) == ["not slow", "slow"]
    assert ci == harness_commands((REPO / "README.md").read_text())


def test_the_check_sees_a_part_left_out_or_run_twice():
    fast_only = '.venv/bin/python -m pytest tests -q -n 2 -m "not slow"\n'
    twice = ".venv/bin/python -m pytest tests -q -n 2\n.venv/bin/python -m pytest tests -q -n 2 -m slow\n"
    assert marker_expressions(harness_commands(fast_only)) == ["not slow"]
    assert marker_expressions(harness_commands(twice)) == ["", "slow"]
