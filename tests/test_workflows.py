"""The GitHub workflows pass actionlint, and actionlint catches a broken copy of them; the noxfile lists the matrix.

actionlint and nox come with the `nightly` extra; CI installs it, so there these tests fail instead of skipping.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
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


def planted_index(root: Path, releases: dict[str, list[str]]) -> str:
    """A PEP 503 index on disk listing `releases` (no files behind the links: `pip index versions` reads names)."""
    for name, versions in releases.items():
        page = root / "simple" / name / "index.html"
        page.parent.mkdir(parents=True)
        wheels = [f"{name.replace('-', '_')}-{v}-py3-none-any.whl" for v in versions]
        page.write_text("<html><body>" + "".join(f'<a href="{w}">{w}</a>' for w in wheels) + "</body></html>")
    return (root / "simple").as_uri()


def nox_list(index_url: str) -> tuple[list[dict], str]:
    """`nox --list --json` with pip asking only `index_url` (no config file, no find-links): sessions, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "NIGHTLY_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=index_url, PIP_RETRIES="0", PIP_TIMEOUT="2")
    done = subprocess.run(
        [tool("nox"), "--list", "--json", "--noxfile", str(ROOT / "noxfile.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_nox_lists_the_newest_release_the_index_has_then_the_pinned_ones_keras_jax_and_pre_releases(
    tmp_path: Path,
) -> None:
    """2.22 on the index (its rc and a newer dev build are not releases) joins the matrix first; the older Keras
    line is the index's second newest; the pre-releases come last, tagged."""
    index = planted_index(
        tmp_path,
        {
            "tensorflow-cpu": ["2.16.2", "2.20.0", "2.21.0", "2.22.0", "2.23.0rc0", "2.24.0.dev20261026"],
            "keras": ["3.14.0", "3.15.1", "3.16.0", "3.16.1", "3.17.0rc1"],
        },
    )
    sessions, stderr = nox_list(index)
    claims = [s for s in sessions if s["name"] == "claims"]
    envs = [s["call_spec"]["env"] for s in claims]
    assert envs == [
        "tf-2.22",
        "tf-2.21",
        "tf-2.20",
        "tf-2.18",
        "tf-2.16",
        "tf-2.22-keras-3.15",
        "jax",
        "tf-nightly",
        "keras-nightly",
    ], stderr
    assert [s["call_spec"]["env"] for s in claims if "pre-release" in s["tags"]] == ["tf-nightly", "keras-nightly"]
    assert [s["name"] for s in sessions].count("matrix") == 1
    assert "could not list" not in stderr


def test_nox_falls_back_to_the_pinned_lines_with_one_line_when_the_index_is_unreachable() -> None:
    sessions, stderr = nox_list("http://127.0.0.1:9/simple")  # the discard port: nothing answers
    envs = [s["call_spec"]["env"] for s in sessions if s["name"] == "claims"]
    assert envs == [
        "tf-2.21",
        "tf-2.20",
        "tf-2.18",
        "tf-2.16",
        "tf-2.21-keras-3.14",
        "jax",
        "tf-nightly",
        "keras-nightly",
    ]
    said = [line for line in stderr.splitlines() if "could not list" in line]
    assert [line.split("could not list ", 1)[1].split("'", 1)[0] for line in said] == ["tensorflow-cpu", "keras"]
    assert all(line.endswith(": using the pinned lines") for line in said)


@pytest.fixture
def noxfile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The noxfile as a module, its environments fixed (no index asked) and its artifacts in tmp_path."""
    registry = pytest.importorskip("nox.registry", reason="nox not installed: pip install '.[nightly]'")
    monkeypatch.setattr(registry, "_REGISTRY", {})  # the noxfile's sessions, registered afresh by each load
    monkeypatch.setenv("NIGHTLY_ENVIRONMENTS", json.dumps(["tf-2.21", "tf-nightly", "keras-nightly"]))
    monkeypatch.setenv("NIGHTLY_ARTIFACTS", str(tmp_path / "artifacts"))
    spec = importlib.util.spec_from_file_location("nightly_noxfile", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "output, lines",
    [
        (
            "tensorflow-cpu (2.22.0)\nAvailable versions: 2.22.0, 2.22.0rc0, 2.21.0, 2.20.0, 2.15.0.post1, 2.15.0\n"
            "  INSTALLED: 2.21.0\n  LATEST:    2.22.0\n",
            ["2.22", "2.21", "2.20", "2.15"],
        ),
        (
            "keras (3.16.0.dev2026)\nAvailable versions: 3.16.0.dev2026, 3.15.1, 3.9.2, 3.10.0\n",
            ["3.15", "3.10", "3.9"],
        ),
        ("tf-nightly (2.23.0.dev20261026)\nAvailable versions: 2.23.0.dev20261026, 2.23.0rc1\n", []),
        ("Available versions: 2.21.0, not-a-version, 2.20.0\n", ["2.21", "2.20"]),
        ("ERROR: No matching distribution found for tensorflow-cpu\n", []),
    ],
    ids=["with an rc and a post", "numeric order", "only pre-releases", "a stray word", "no listing"],
)
def test_release_lines_from_planted_index_output(noxfile, output: str, lines: list[str]) -> None:
    assert noxfile.release_lines(output) == lines


def test_each_environment_installs_one_tensorflow_line_keras_line_or_nightly(noxfile) -> None:
    assert noxfile.requirements("tf-2.21") == [".", "tensorflow-cpu==2.21.*"]
    assert noxfile.requirements("tf-2.21-keras-3.14") == [".", "tensorflow-cpu==2.21.*", "keras==3.14.*"]
    assert noxfile.requirements("jax") == [".[jax]"]
    for env, backend in (("tf-nightly", "tf-nightly"), ("keras-nightly", "jax>=0.7")):
        reqs = noxfile.requirements(env)
        # the project's dependencies but keras: keras and keras-nightly both install the `keras` package
        assert reqs[-2:] == [backend, "keras-nightly"] and "." not in reqs and "numpy>=1.26" in reqs
        assert not any(r.startswith("keras") and r != "keras-nightly" for r in reqs) and "tensorflow-cpu" not in str(
            reqs
        )
    assert [noxfile.backend_of(e) for e in ("tf-2.21", "tf-nightly", "keras-nightly", "jax")] == [
        "tensorflow",
        "tensorflow",
        "jax",
        "jax",
    ]
    with pytest.raises(ValueError, match="not an environment name: 'tf-latest'"):
        noxfile.requirements("tf-latest")


def test_the_history_keeps_tonights_evidence_and_the_newest_nights(noxfile, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    (artifacts / "tf-2.21").mkdir(parents=True)
    (artifacts / "tf-2.21" / "evidence.json").write_text("{}")
    (artifacts / "keras-nightly").mkdir()
    (artifacts / "keras-nightly" / "unavailable.txt").write_text("keras-nightly did not install: x\n")
    (artifacts / "keras-nightly" / "evidence.json").write_text("{}")  # from an earlier night: not kept as tonight's
    kept = tmp_path / "history"
    for old in ("2026-11-01", "2026-11-02", "2026-11-03"):
        (kept / old / "tf-2.21").mkdir(parents=True)
    noxfile.keep_tonight({"tf-2.21": artifacts / "tf-2.21" / "evidence.json"}, kept, 3)
    tonight = datetime.now(timezone.utc).date().isoformat()
    assert sorted(p.name for p in kept.iterdir()) == ["2026-11-02", "2026-11-03", tonight]
    assert sorted(str(p.relative_to(kept / tonight)) for p in (kept / tonight).rglob("*") if p.is_file()) == [
        "keras-nightly/unavailable.txt",
        "tf-2.21/evidence.json",
    ]


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
