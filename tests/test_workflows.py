"""The GitHub workflows pass actionlint, and actionlint catches a broken copy of them; the noxfile lists the matrix.

actionlint and nox come with the `nightly` extra; CI installs it, so there these tests fail instead of skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The nightly extra's executable: in this interpreter's bin dir, else on PATH; missing fails in CI."""
    found = shutil.which(name, path=BIN) or shutil.which(name)
    if found is None:
        message = f"{name} not found: pip install '.[nightly]'"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def actionlint(*files: Path) -> tuple[int, list[dict]]:
    """Run actionlint (with shellcheck on the `run:` scripts) and return its exit status and its errors."""
    command = [tool("actionlint"), f"-shellcheck={tool('shellcheck')}", "-format", "{{json .}}", *map(str, files)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), f"actionlint itself failed ({done.returncode}): {done.stderr}"
    return done.returncode, json.loads(done.stdout or "[]")


def test_there_is_a_nightly_workflow() -> None:
    assert ROOT / ".github" / "workflows" / "nightly.yml" in WORKFLOWS


def test_the_workflows_pass_actionlint() -> None:
    status, errors = actionlint(*WORKFLOWS)
    assert (status, errors) == (0, []), "\n".join(f"{e['filepath']}:{e['line']}: {e['message']}" for e in errors)


PLANTED = [
    # (what, text in nightly.yml, its replacement, actionlint's kind of error)
    (
        "unclosed expression",
        "claims-${{ matrix.env }}-${{ github.run_id }}-",
        "claims-${{ matrix.env }-${{ github.run_id }}-",
        "expression",
    ),
    ("unknown key", "    timeout-minutes: 180\n", "    timeout-minute: 180\n", "syntax-check"),
    (
        "output of a job not needed",
        "${{ needs.environments.outputs.newest }}",
        "${{ needs.claims.outputs.newest }}",
        "expression",
    ),
    (
        "unquoted shell variable",
        'cat artifacts/nightly/summary.md >> "$GITHUB_STEP_SUMMARY"',
        "cat artifacts/nightly/summary.md >> $GITHUB_STEP_SUMMARY",
        "shellcheck",
    ),
]


@pytest.mark.parametrize("what, text, planted, kind", PLANTED, ids=[p[0] for p in PLANTED])
def test_actionlint_fails_on_a_planted_error(tmp_path: Path, what: str, text: str, planted: str, kind: str) -> None:
    """A copy of the real workflow with one error planted: actionlint exits 1 and names that line and kind."""
    source = (ROOT / ".github" / "workflows" / "nightly.yml").read_text(encoding="utf-8")
    assert source.count(text) == 1, f"the text to break is no longer in nightly.yml once: {text!r}"
    broken = tmp_path / ".github" / "workflows" / "nightly.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(source.replace(text, planted), encoding="utf-8")
    line = source[: source.index(text)].count("\n") + 1
    status, errors = actionlint(broken)
    assert status == 1 and errors, f"actionlint let the {what} through"
    found = "; ".join(f"{e['line']}: [{e['kind']}] {e['message']}" for e in errors)
    assert any(e["kind"] == kind and e["line"] == line for e in errors), f"expected {kind} on line {line}, got: {found}"


def test_nox_lists_each_release_newest_first_then_jax_and_the_matrix() -> None:
    done = subprocess.run(
        [tool("nox"), "--list", "--json", "--noxfile", str(ROOT / "noxfile.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    sessions = json.loads(done.stdout)
    envs = [s["call_spec"]["env"] for s in sessions if s["name"] == "claims"]
    tf = [e for e in envs if e.startswith("tf-")]
    releases = [tuple(map(int, e.removeprefix("tf-").split("."))) for e in tf]
    assert envs == tf + ["jax"] and releases == sorted(releases, reverse=True)
    assert {(2, 16), (2, 18), (2, 20), (2, 21)} <= set(releases)
    assert [s["name"] for s in sessions].count("matrix") == 1


def test_the_class_workflow_finds_its_baseline_on_a_rerun_and_its_slices_for_one_as_for_many() -> None:
    """The slices restore the baseline's cache key exactly, or fail: keyed on the run, not on the attempt that
    "Re-run failed jobs" changes. Each artifact holds its slice's folder and the download merges them, so
    slices/slice-N exists with 1 slice too (download-artifact extracts a single matched artifact flat)."""
    text = (ROOT / ".github" / "workflows" / "class.yml").read_text(encoding="utf-8")
    keys = re.findall(r"^ +key: (.+)$", text, re.MULTILINE)
    assert len(keys) == 2 and len(set(keys)) == 1 and "run_attempt" not in keys[0], keys
    assert re.search(r"^ +fail-on-cache-miss: true\b", text, re.MULTILINE)
    out = re.search(r"^ +OUT: (\S+)/(\S+)-\$\{\{ matrix\.slice \}\}$", text, re.MULTILINE)
    assert out, "the slice job's --out is no longer OUT: PARENT/NAME-${{ matrix.slice }}"
    parent, name = out.groups()
    upload = text[text.index("uses: actions/upload-artifact", out.end()) :].split("- ", 1)[0]
    assert f"path: {parent}\n" in upload  # the folder's parent: the artifact keeps NAME-N
    download = text[text.index("uses: actions/download-artifact") :].split("- ", 1)[0]
    assert "merge-multiple: true" in download and "path: slices\n" in download
    assert f"--merge slices/{name}-* " in text
