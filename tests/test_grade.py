"""The class command: the folder and its slices, the limits, the claims' split, the table, and real classes."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from fixtures.backend import cpu_cores
from reports import browser_check, grade
from reports.grading import feedback, folder, limits, page
from reports.grading.claims import ClaimInfo, ClassPlan
from reports.grading.sessions import PRICE_FILE, Result
from reports.grading.status import ClassStatus, schedule_s
from reports.grading.table import ClassTable, read_row

REPO = Path(__file__).resolve().parent.parent
STUDENTS = REPO / "tests" / "students"
MNIST = REPO / os.environ.get("MNIST_DIR", "../shared/data/mnist")  # an absolute MNIST_DIR wins

# --- the folder ------------------------------------------------------------------------------


def test_other_files_are_ignored_with_one_line_each(tmp_path: Path) -> None:
    for name in ("bob.keras", "alice.py", "README.md", "marks.csv", ".hidden.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "old").mkdir()
    students, (layout, *ignored) = folder.find_students(tmp_path)
    assert [(s.name, s.path.name) for s in students] == [("alice", "alice.py"), ("bob", "bob.keras")]
    assert students[0].source == f"{tmp_path / 'alice.py'}:build" and students[1].source == str(tmp_path / "bob.keras")
    assert layout == "layout plain (one file per student)"
    assert [line.split(":")[0] for line in ignored] == ["ignored README.md", "ignored marks.csv", "ignored old"]
    assert "a submission is NAME.py with a function build, NAME.keras or NAME.ipynb" in ignored[0]


def test_two_submissions_of_one_student_are_an_error_naming_both(tmp_path: Path, capsys) -> None:
    for name in ("alice.py", "alice.keras", "bob.py"):
        (tmp_path / name).write_text("")
    with pytest.raises(folder.FolderError, match=r"^alice.keras and alice.py are both alice's"):
        folder.find_students(tmp_path)
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "alice.keras and alice.py are both alice's; keep one submission per student" in capsys.readouterr().err


def test_no_submissions_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "README.md").write_text("")
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert "holds no submissions" in captured.err and "ignored README.md" in captured.out


def test_shards_partition_the_class_deterministically(tmp_path: Path) -> None:
    """Each student in one slice, of sizes 4/4/3, and the same slices whatever order the folder lists its files."""
    names = [f"s{i:02d}" for i in range(11)]
    for name in reversed(names):  # created in reverse: a directory listing in creation order would differ
        (tmp_path / f"{name}.py").write_text("")
    students, _ = folder.find_students(tmp_path)
    slices = [folder.shard(students, i, 3) for i in (1, 2, 3)]
    assert sorted(s.name for part in slices for s in part) == names  # each student once
    assert [len(part) for part in slices] == [4, 4, 3]
    assert [s.name for s in slices[1]] == ["s01", "s04", "s07", "s10"]  # every 3rd in name order, from the 2nd
    assert folder.parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "2", "a/b"):
        with pytest.raises(ValueError, match="--shard takes I/N"):
            folder.parse_shard(bad)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--", "--claims-evidence", "elsewhere"], "the grader sets --claims-evidence itself for every session"),
        (["--student-timeout", "0"], "--student-timeout takes seconds more than 0, not 0"),
        (["--validate-timeout", "-5"], "--validate-timeout takes seconds more than 0, not -5"),
        (["--shard", "3/2"], "--shard takes I/N with 1 <= I <= N (e.g. 2/4), not '3/2'"),
    ],
    ids=["own option", "timeout 0", "negative validate timeout", "bad shard"],
)
def test_the_grader_refuses_bad_options_with_one_line(tmp_path: Path, capsys, options: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit:
        grade.parse([str(tmp_path), "--out", "x", *options])
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_help_lists_every_option(capsys) -> None:
    """argparse %-formats each help string: a bare % in one (a default given as a share) crashed --help."""
    with pytest.raises(SystemExit) as exit:
        grade.parse(["--help"])
    printed = capsys.readouterr().out
    assert exit.value.code == 0 and "--layout {plain,nbgrader,canvas,classroom}" in printed and "80% of" in printed


def test_merge_takes_graded_slices_only(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        grade.parse(["--merge", "a", "--shard", "1/2", "--out", "x"])
    assert exit.value.code == 2 and "--merge takes graded slices only" in capsys.readouterr().err


# --- parallel sessions: jobs and threads -----------------------------------------------------


def test_default_jobs_and_each_sessions_threads() -> None:
    assert grade.default_jobs(cores=2, workers=1, gpus=0) == 1  # a 2-core laptop: one student at a time
    assert grade.default_jobs(cores=16, workers=2, gpus=0) == 4
    assert grade.default_jobs(cores=16, workers=1, gpus=1) == 2 and grade.default_jobs(8, 4, 4) == 2
    assert grade.session_threads([], jobs=2, workers=1, cores=2) == ["--backend-threads", "1"]
    assert grade.session_threads(["-n", "2"], jobs=2, workers=2, cores=16) == ["--backend-threads", "4"]
    assert grade.session_threads([], jobs=1, workers=1, cores=2) == []  # alone: the session's own policy
    assert grade.session_threads(["--backend-threads", "3"], jobs=4, workers=1, cores=16) == []  # the user's choice


def test_the_live_status_shows_each_running_session_and_the_classs_eta(tmp_path: Path) -> None:
    log = tmp_path / "pytest.log"
    log.write_text("collected 3 items\ntrained 1/3 improved_cnn@ab12 bs=64 ep=20 seed=0 in 71 s\n")
    piped = io.StringIO()
    status = ClassStatus(total=3, jobs=2, stream=piped)
    status.begin("bob", "validating", limits.Limits(300, 2**30))
    assert status.eta_s() is None  # no ETA until every student is priced
    status.checked("bob", "session ~2.7 min")
    status.expect({"alice": 100.0, "bob": 160.0, "cleo": 60.0}, notebook_s=0.0)
    status.begin("alice", "claims", limits.Limits(600, 2**30), log)
    status.poll("alice", 30.0, 2**29)
    assert status.eta_s() == 160  # alice's 70 s left in one slot, bob's 160 in the other, then cleo's 60 after alice
    screen = Console(file=io.StringIO(), width=160)
    screen.print(status)
    lines = screen.file.getvalue().splitlines()
    assert lines[0].startswith("class: 0/3 students done, 1 running, ") and lines[0].endswith("ETA 2.7 min")
    assert lines[1].split() == [
        "alice", "claims", "30", "s", "/", "600", "s", "512", "MiB", "/", "1.0", "GiB", "trained", "1/3",
        "improved_cnn@ab12", "bs=64", "ep=20", "seed=0", "in", "71", "s",
    ]  # fmt: skip
    status.end("alice", "done in 90 s", session_s=90.0)
    assert piped.getvalue().splitlines() == [
        "bob: validating ...", "bob: valid; session ~2.7 min", "alice: claims ...", "[1/3] alice: done in 90 s"
    ]  # fmt: skip
    assert status.eta_s() == pytest.approx(0.9 * 160)  # alice took 0.9 of her price: the others' are scaled by it


def test_the_eta_counts_the_notebooks_session_alone_before_the_students() -> None:
    status = ClassStatus(total=3, jobs=2, stream=io.StringIO())
    status.expect({"a": 100.0, "b": 100.0, "c": 100.0}, notebook_s=50.0)
    status.begin("notebook", "claims", limits.Limits(), student=False)
    status.poll("notebook", 20.0, 2**29)
    assert status.eta_s() == (50 - 20) + 200  # its rest, then three students of 100 s in two slots
    status.end("notebook", "done in 45 s", student=False)
    assert status.eta_s() == 200 and status.done == 0


def test_sessions_are_scheduled_in_order_on_the_first_free_slot() -> None:
    assert schedule_s([300, 100, 100, 100], jobs=2) == 300  # the three short ones share the second slot
    assert schedule_s([100, 100, 100, 300], jobs=2) == 400  # the long one last: from 100 s, in the first free slot
    assert schedule_s([50, 50], jobs=2, busy=[120]) == 120 and schedule_s([], jobs=2) == 0


def test_a_students_training_is_priced_by_its_timed_step_against_the_notebook_models() -> None:
    runs = [{"cost_s": 300.0, "spec": {"batch_size": 64}}, {"cost_s": 300.0, "spec": {"batch_size": 64}},
            {"cost_s": 100.0, "spec": {"batch_size": 128}}]  # fmt: skip
    price = {
        "cached": [False, True, False],
        "step_s": {"64": {"student": 0.005, "notebook": 0.02}, "128": {"student": 0.03, "notebook": 0.02}},
        "load_s": 6.0,
    }
    assert grade.student_training_s(price, runs) == pytest.approx(300 * 0.25 + 100 * 1.5)  # the cached run is free
    assert grade.student_training_s(None, runs) == 700  # not priced: the notebook's model's cost, nothing cached
    assert grade.student_training_s({**price, "cached": [True] * 3, "step_s": {}}, runs) == 0
    text = grade.price_text(price, runs, "improved_cnn", 150.0)
    assert text == "step 0.25, 1.50 x the notebook's improved_cnn, 1 of 3 runs cached: session ~2.5 min"


def test_the_validation_child_gets_the_sessions_backend_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    env = grade.validation_env(["--seeds", "3", "--backend-threads", "1"], workers=1, cores=2)
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "1"
    assert grade.validation_env(["-n", "1"], workers=1, cores=2)["TF_NUM_INTEROP_THREADS"] == "2"  # auto: 2 // 1
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert "TF_NUM_INTRAOP_THREADS" not in grade.validation_env(["--backend-threads=0"], workers=1, cores=2)


def test_the_validation_child_is_given_the_data_and_the_answers_variable_the_session_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A notebook's cells load MNIST in the validation child, which takes no pytest options: the session's
    --mnist-dir and --notebook-model reach it as the variables it reads, and without them the grader's own stay."""
    monkeypatch.setenv("MNIST_DIR", "/from/the/environment")
    monkeypatch.delenv("MNIST_CLAIMS_NOTEBOOK_MODEL", raising=False)
    env = grade.validation_env(["--mnist-dir", "/data/mnist", "--notebook-model=cnn", "-n", "1"], workers=1, cores=2)
    assert env["MNIST_DIR"] == "/data/mnist" and env["MNIST_CLAIMS_NOTEBOOK_MODEL"] == "cnn"
    env = grade.validation_env(["-n", "1"], workers=1, cores=2)
    assert env["MNIST_DIR"] == "/from/the/environment" and "MNIST_CLAIMS_NOTEBOOK_MODEL" not in env


def test_the_first_eta_is_printed_after_every_validation_from_each_students_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Three students whose validations time steps at 0.5, 0.25 and 0.25 of the notebook model's: the first ETA is
    the notebook's session and then their own prices scheduled on 2 slots, not one price for all."""
    ratios = {"ada": 0.5, "ben": 0.25, "cleo": 0.25}
    for name in ratios:
        (tmp_path / f"{name}.py").write_text("")
    monkeypatch.setattr(grade, "collect", lambda *args: PLAN)
    monkeypatch.setattr(grade, "run_notebook", lambda *args: print("notebook's session"))
    validated = []

    def validate(student: folder.Student, directory: Path, *args, price: dict, **kwargs) -> str:
        assert price["model"] == "improved_cnn" and len(price["runs"]) == 4
        step_s = {"64": {"student": ratios[student.name] * 0.02, "notebook": 0.02}}
        directory.mkdir(parents=True, exist_ok=True)
        (directory / PRICE_FILE).write_text(json.dumps({"cached": [False] * 4, "step_s": step_s, "load_s": 0.0}))
        validated.append(student.name)
        return ""

    def session(result: Result, *args, **kwargs) -> None:
        assert sorted(validated) == sorted(ratios)  # every validation came first
        result.wall_s = 1.0

    monkeypatch.setattr(grade, "validate", validate)
    monkeypatch.setattr(grade, "run_session", session)
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "out"), "-j", "2", "--", "-p", "no:cacheprovider"]) == 0
    lines = capsys.readouterr().out.splitlines()
    eta = next(line for line in lines if line.startswith("ETA "))
    # the notebook: 60 s + its one uncached run (100 s); the students: 20 s + their share of 4 runs of 100 s each
    # (ada 220 s, ben 120 s, cleo 120 s): ada in one slot, ben then cleo in the other (240 s)
    assert eta.startswith(f"ETA {(160 + 240) / 60:.1f} min by the cost model, after ")
    assert lines.index(eta) < lines.index("notebook's session")
    assert "ada: valid; step 0.50 x the notebook's improved_cnn, 0 of 4 runs cached: session ~3.7 min" in lines


# --- the limits ------------------------------------------------------------------------------


def test_a_child_past_its_wall_time_is_ended_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TERM ends it; its group is never signalled once the leader is reaped (the id may be reused)."""
    signalled, killpg = [], os.killpg
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: (signalled.append(sig), killpg(pgid, sig)))
    start = time.monotonic()
    outcome = limits.run_limited([sys.executable, "-c", "while True: pass"], limits.Limits(wall_s=2))
    assert outcome.limit == "wall-time limit 2 s" and outcome.returncode == -signal.SIGTERM
    assert signalled == [signal.SIGTERM]  # no KILL to the group of a reaped leader
    assert 2 <= outcome.wall_s < 2 + limits.TERM_GRACE_S + 3 and time.monotonic() - start < 15


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "TERM_GRACE_S", 1.0)
    deaf = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.05)"
    outcome = limits.run_limited([sys.executable, "-c", deaf], limits.Limits(wall_s=2))
    assert outcome.limit == "wall-time limit 2 s" and outcome.returncode == -signal.SIGKILL
    assert 2 + 1.0 <= outcome.wall_s < 2 + 1.0 + 3  # the TERM's grace waited out, then the KILL


def test_memory_is_measured_over_the_whole_session_and_ends_all_of_it(tmp_path: Path) -> None:
    """The allocation is in a grandchild that left the child's process group: it is measured and ended too."""
    pid_file = tmp_path / "grandchild.pid"
    grandchild = textwrap.dedent(
        f"""
        import os, pathlib, time
        os.setpgid(0, 0)
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        held = []
        for _ in range(40):
            held.append(bytearray(b"x" * (64 * 2**20)))
            time.sleep(0.05)
        time.sleep(60)
        """
    )
    child = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(60)"
    outcome = limits.run_limited([sys.executable, "-c", child], limits.Limits(wall_s=50, memory_bytes=600 * 2**20))
    assert outcome.limit.startswith("memory limit 600 MiB (its processes held ") and outcome.wall_s < 30
    assert outcome.peak_bytes > 600 * 2**20
    grandchild_pid = int(pid_file.read_text())
    for _ in range(50):
        if not psutil.pid_exists(grandchild_pid) or psutil.Process(grandchild_pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild outlived its session")


def test_a_child_within_its_limits_runs_to_the_end(tmp_path: Path) -> None:
    with open(tmp_path / "log", "w") as log:
        outcome = limits.run_limited(
            [sys.executable, "-c", "print('hi'); raise SystemExit(3)"], limits.Limits(30, 2**30), stdout=log
        )
    assert (outcome.returncode, outcome.limit) == (3, "") and (tmp_path / "log").read_text() == "hi\n"


def test_memory_sizes() -> None:
    assert limits.parse_size("8G") == 8 * 2**30 and limits.parse_size("512MiB") == 512 * 2**20
    assert limits.parse_size("1.5g") == int(1.5 * 2**30) and limits.parse_size("1000") == 1000
    with pytest.raises(ValueError, match="not a memory size"):
        limits.parse_size("lots")


# --- the claims' split, from their declared runs ---------------------------------------------


def info(cid: str, section: str, *models: str, cached: bool = True) -> ClaimInfo:
    runs = tuple(
        {"key": f"{cid}-{m}", "model": m, "label": m, "cost_s": 100.0, "cached": cached, "spec": {"batch_size": 64}}
        for m in models
    )
    return ClaimInfo(cid, f"claims/test_{section}.py::test_{cid.replace('-', '_')}", section, f"quote {cid}", runs)


PLAN = ClassPlan(
    "notebook",
    3,
    0,
    (
        info("weight-shapes", "analysis", "improved_cnn", "basic_cnn"),
        info("deeper-layer-shape", "analysis", "improved_cnn"),
        info("arch-basic-param-counts", "architecture"),
        info("overfitting-signature", "training", "basic_cnn", cached=False),
        info("improved-99", "training", "improved_cnn"),
        info("improved-no-overfit", "training", "improved_cnn", "basic_cnn"),
    ),
)


def test_a_students_claims_are_those_whose_runs_use_the_replaced_model_improved_first() -> None:
    assert [c.id for c in PLAN.of_student("improved_cnn")] == [
        "improved-99",
        "improved-no-overfit",
        "weight-shapes",
        "deeper-layer-shape",
    ]
    assert [c.id for c in PLAN.of_notebook("improved_cnn")] == ["arch-basic-param-counts", "overfitting-signature"]
    assert [c.id for c in PLAN.of_student("basic_cnn")] == [
        "overfitting-signature",
        "improved-no-overfit",
        "weight-shapes",
    ]
    assert PLAN.student_cost_s("improved_cnn") == 400.0 and PLAN.baseline_cost_s() == 100.0
    assert PLAN.claims[0].junit_name == ("claims.test_analysis", "test_weight_shapes")


# --- the table, from session directories -----------------------------------------------------


def session_dir(root: Path, result: Result, claims: list[dict] | None, junit: dict[str, tuple[str, str]]) -> Path:
    """A planted session directory: session.json, evidence.json with `claims`, junit.xml with `junit` outcomes."""
    directory = root / result.name
    result.save(directory)
    if claims is not None:
        session = {"started": "2026-01-01T00:00:00", "profile": claims[0]["taken"]["profile"] if claims else "x"}
        for c in claims:
            c["taken"]["session"] = session["started"]
        evidence = {"schema": 1, "session": session, "runs": [], "claims": claims}
        (directory / "evidence.json").write_text(json.dumps(evidence))
    cases = []
    for cid, (outcome, message) in junit.items():
        child = f'<{outcome} message="{message}"/>' if outcome != "passed" else ""
        test = next(c for c in PLAN.claims if c.id == cid).junit_name
        cases.append(f'<testcase classname="{test[0]}" name="{test[1]}">{child}</testcase>')
    (directory / "junit.xml").write_text(f"<testsuites><testsuite>{''.join(cases)}</testsuite></testsuites>")
    return directory


def record(cid: str, verdict: str, values: list[float], profile: str = "notebook", known: str | None = None) -> dict:
    headline = {"name": f"{cid}_measure", "values": values, "higher_is_better": True, "text": ""}
    return {
        "id": cid,
        "test": cid,
        "verdict": verdict,
        "known_refutation": known,
        "headline": headline,
        "statistics": {},
        "taken": {"profile": profile},
    }


def planted_table(root: Path) -> ClassTable:
    claims, notebook_claims = PLAN.of_student("improved_cnn"), PLAN.of_notebook("improved_cnn")
    junit_na = {"deeper-layer-shape": ("skipped", f"not applicable to {root}/alice.py:build: not its layers[3]")}
    notebook = session_dir(
        root,
        Result("notebook", reference=True, wall_s=50.0),
        [
            record("improved-99", "inconclusive", [0.9925, 0.9923, 0.9928]),
            record("improved-no-overfit", "refuted", [0.0039, 0.0028, 0.0019], known="refuted on TF 2.21"),
            record("weight-shapes", "holds", [0.0]),
            record("deeper-layer-shape", "holds", [0.0]),
            record("arch-basic-param-counts", "holds", [271670.0]),
            record("overfitting-signature", "holds", [0.013, 0.009, 0.011]),
        ],
        {},
    )
    rows = [
        session_dir(
            root,
            Result("alice", "alice.py", f"{root}/alice.py", wall_s=120.0, peak_bytes=2**30),
            [
                record("improved-99", "holds", [0.990, 0.991, 0.989]),
                record("improved-no-overfit", "holds", [-0.002, -0.001, -0.003]),
            ],
            {"weight-shapes": ("error", "RuntimeError: no Conv2D"), **junit_na},
        ),
        session_dir(
            root,
            Result("bob", "bob.keras", f"{root}/bob.keras", wall_s=100.0),
            [
                record("improved-99", "refuted", [0.97, 0.96, 0.97], profile="smoke"),
                record("improved-no-overfit", "inconclusive", [0.001, -0.001, 0.002]),
                record("weight-shapes", "holds", [0.0]),
            ],
            junit_na,
        ),
        session_dir(
            root,
            Result("carol", "carol.py", problem="carol.py: the model outputs (9,), not (10,)", late=True),
            None,
            {},
        ),
        session_dir(
            root,
            Result("dan", "dan.py", problem="stopped after 31 s: memory limit 2.0 GiB (its processes held 2.3 GiB)"),
            None,
            {},
        ),
    ]
    return ClassTable(
        read_row(notebook, [*notebook_claims, *claims]), notebook_claims, [read_row(d, claims) for d in rows], claims
    )


def test_cells_say_verdict_not_applicable_error_or_not_evidence_with_the_reason(tmp_path: Path) -> None:
    table = planted_table(tmp_path)
    alice, bob, carol, dan = table.students
    assert [alice.cells[c.id].kind for c in table.claims] == ["holds", "holds", "error", "not applicable"]
    assert alice.cells["weight-shapes"].reason == "RuntimeError: no Conv2D"
    assert alice.cells["deeper-layer-shape"].reason == "not applicable to alice.py:build: not its layers[3]"
    smoke = bob.cells["improved-99"]  # refuted by its rule, at the smoke profile: never shown as refuted
    assert smoke.kind == "not evidence" and smoke.reason == "smoke profile: not evidence (its rule gave refuted)"
    assert smoke.values == (0.97, 0.96, 0.97) and smoke.headline.startswith("improved-99_measure mean 0.9")
    assert not carol.checked and not carol.cells and dan.result.problem.startswith("stopped after 31 s: memory limit")
    assert table.notebook.cells["improved-no-overfit"].kind == "known refutation"
    counts = table.counts()
    assert counts["improved-99"] == {"holds": 1, "not evidence": 1, "not checked": 2}
    assert counts["deeper-layer-shape"] == {"not applicable": 2, "not checked": 2}
    assert table.count_kinds() == ["holds", "refuted", "inconclusive", "not applicable", "error", "not evidence",
                                   "not checked"]  # fmt: skip


def test_the_class_page_in_html_markdown_and_csv(tmp_path: Path) -> None:
    table = planted_table(tmp_path / "sessions")
    html, md, csv_path = page.write(table, tmp_path / "out", "Class table", "intro")
    text = html.read_text()
    assert text.index("The notebook's own models") < text.index("Summary") < text.index("Students")
    assert 'data-claim="arch-basic-param-counts"' in text.split("Summary")[0]  # the notebook's claims, once, above
    assert text.count('class="student-row') == 5 and 'class="student-row reference"' in text
    heads = [text.index(f'title="quote {c}">{c}</th>') for c in ("improved-99", "improved-no-overfit", "weight-shapes")]
    assert heads == sorted(heads)
    notes = table.footnotes()
    reason = "not applicable to alice.py:build: not its layers[3]"
    assert f'title="{reason}"' in text and f'<li id="reason-{notes[reason]}">{reason}</li>' in text
    assert 'colspan="4"><div>carol.py: the model outputs (9,), not (10,)</div>' in text
    assert [row.count('class="late"') for row in text.split("Students")[1].split("</tr>")[:6]] == [0, 0, 0, 0, 1, 0]
    assert "refuted</span>" not in text.split("Students")[1].split("bob")[1].split("</tr>")[0]  # bob's smoke cell
    for figure in ("class-headlines.png", "class-verdicts.png"):
        assert (tmp_path / "out" / figure).stat().st_size > 1000 and f'src="{figure}"' in text

    lines = md.read_text().splitlines()
    assert "| arch-basic-param-counts | holds · arch-basic-param-counts_measure = 271,670 |" in lines  # no (n = 1)
    assert "| overfitting-signature | holds · overfitting-signature_measure mean 0.011 (n = 3) |" in lines
    assert "| improved-99 | 1 | 0 | 0 | 0 | 0 | 1 | 2 |" in lines
    alice = next(line for line in lines if line.startswith("| alice |"))
    assert f"not applicable [{notes[reason]}]" in alice and f"{notes[reason]}. {reason}" in lines
    assert any(line.startswith("| carol (late) |") for line in lines)

    with open(csv_path, newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["notebook", "alice", "bob", "carol", "dan"] and rows["notebook"]["reference"] == "yes"
    assert rows["alice"]["deeper-layer-shape verdict"] == "not applicable"
    assert rows["alice"]["deeper-layer-shape reason"] == reason and rows["alice"]["peak_mib"] == "1024"
    assert rows["bob"]["improved-99 verdict"] == "not evidence" and rows["carol"]["improved-99 verdict"] == ""
    assert rows["dan"]["problem"].startswith("stopped after 31 s: memory limit")
    assert [r["late"] for r in rows.values()] == ["", "", "", "yes", ""]


def graded_slice(directory: Path, names: list[str], limits_text: str) -> Path:
    """A planted graded slice: the plan, grading.json naming `names`, and a session.json per student."""
    directory.mkdir(parents=True)
    (directory / grade.PLAN_FILE).write_text(json.dumps(dataclasses.asdict(PLAN)))
    grading = {"model_name": "improved_cnn", "pytest_args": ["--seeds", "3"], "limits": limits_text, "students": names}
    (directory / grade.GRADING_FILE).write_text(json.dumps(grading))
    for name in names:
        Result(name, f"{name}.py", problem=f"{name}.py: the model outputs (9,), not (10,)").save(
            directory / "students" / name
        )
    return directory


def test_merge_shows_each_slices_limits_and_only_the_students_it_graded(tmp_path: Path, capsys) -> None:
    """Slices of 2 and 1 students with -j 2 get different memory limits: they still merge, the page says
    which slice had which; a row an earlier grading left in a reused --out is not merged."""
    first = graded_slice(tmp_path / "slice-1", ["ada", "cleo"], "900 s wall time, 9.6 GiB memory")
    second = graded_slice(tmp_path / "slice-2", ["ben"], "900 s wall time, 19.2 GiB memory")
    Result("gone", "gone.py", problem="from an earlier grading").save(second / "students" / "gone")
    assert grade.main(["--merge", str(first), str(second), "--out", str(tmp_path / "class")]) == 0
    assert "merged 2 slices: 3 students" in capsys.readouterr().out
    assert list(rows_of(tmp_path / "class" / "class.csv")) == ["ada", "ben", "cleo"]
    intro = (tmp_path / "class" / "class.md").read_text().splitlines()[2]
    assert "limits per student: 900 s wall time, 9.6 GiB memory (slice-1); 900 s wall time, 19.2 GiB memory " \
        "(slice-2)." in intro  # fmt: skip

    grading = json.loads((second / grade.GRADING_FILE).read_text())
    (second / grade.GRADING_FILE).write_text(json.dumps({**grading, "pytest_args": ["--seeds", "5"]}))
    assert grade.main(["--merge", str(first), str(second), "--out", str(tmp_path / "mixed")]) == 2
    assert "graded other claims or options than" in capsys.readouterr().err


def test_an_interrupt_keeps_the_rows_of_the_sessions_that_ended_and_marks_the_others(
    tmp_path: Path, monkeypatch
) -> None:
    """Ctrl-C while two students run: both end (their sessions stopped) and save their own rows; the third,
    never begun, is "not graded"."""
    for name in ("ada", "ben", "cleo"):
        (tmp_path / f"{name}.py").write_text("")
    monkeypatch.setattr(grade, "collect", lambda *args: PLAN)
    monkeypatch.setattr(grade, "run_notebook", lambda *args: None)
    monkeypatch.setattr(grade, "validate", lambda *args, **kwargs: "")
    begun = threading.Barrier(2)

    def session(result: Result, *args, stop: threading.Event, **kwargs) -> None:
        begun.wait(timeout=30)
        if result.name == "ben":
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, once both run
        assert stop.wait(timeout=30)
        result.wall_s, result.problem = 1.0, "stopped after 1 s: interrupted"

    monkeypatch.setattr(grade, "run_session", session)
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "out"), "-j", "2", "--", "-p", "no:cacheprovider"]) == 130
    rows = rows_of(tmp_path / "out" / "class.csv")
    assert {name: row["problem"] for name, row in rows.items()} == {
        "ada": "stopped after 1 s: interrupted",
        "ben": "stopped after 1 s: interrupted",
        "cleo": "not graded: the grading was interrupted",
    }


def test_the_grader_waits_for_a_grading_that_no_pool_joins_and_none_begins_after_the_stop(
    tmp_path: Path, monkeypatch
) -> None:
    """The race CI once lost: Ctrl-C landed while the pool started a thread, so the pool's join missed it and
    its student's saved row was overwritten by "not graded". The grader's own count of gradings must wait."""
    monkeypatch.setattr(grade, "validate", lambda *args, **kwargs: "")
    running = threading.Event()

    def session(result: Result, *args, stop: threading.Event, **kwargs) -> None:
        running.set()
        assert stop.wait(timeout=30)
        time.sleep(0.2)  # the session's child takes a moment to end
        result.wall_s, result.problem = 1.0, "stopped after 1 s: interrupted"

    monkeypatch.setattr(grade, "run_session", session)
    stop = threading.Event()
    status = ClassStatus(total=2, jobs=1, stream=io.StringIO())
    sessions = grade.StudentSessions(["claims/x.py::t"], [], "improved_cnn", grade.Limits(), 60.0, status, stop)
    ada, ben = folder.Student("ada", tmp_path / "ada.py"), folder.Student("ben", tmp_path / "ben.py")
    unjoined = threading.Thread(target=sessions.grade, args=(ada, tmp_path / "ada"))
    unjoined.start()
    assert running.wait(timeout=30)
    stop.set()
    sessions.wait_ended()
    assert sessions.graded["ada"].problem == "stopped after 1 s: interrupted"
    assert Result.read(tmp_path / "ada").problem == "stopped after 1 s: interrupted"
    assert sessions.grade(ben, tmp_path / "ben") is None and not (tmp_path / "ben").exists()
    unjoined.join()


STUCK = """
import os, pathlib, subprocess, sys, time


def build():
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    pathlib.Path(PIDS).write_text(f"{os.getpid()} {grandchild.pid}")
    time.sleep(120)
"""
GRADER = """
import sys
from fixtures.backend import cpu_cores
from reports import grade
from tests.test_grade import PLAN

grade.collect = lambda *args: PLAN  # no collection child: the builder's validation is the first child
grade.run_notebook = lambda *args: None
sys.exit(grade.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_ends_every_childs_session_and_writes_the_page(tmp_path: Path, stop: signal.Signals) -> None:
    """SIGTERM or SIGHUP to the grader while a builder (and a process it forked) hangs in its validation, in a
    session of its own that the signal does not reach: both end, the row says so, the grader exits 128 + N."""
    pids = tmp_path / "pids"
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "stuck.py").write_text(STUCK.replace("PIDS", repr(str(pids))))
    out = tmp_path / "out"
    grader = subprocess.Popen(
        [sys.executable, "-c", GRADER, str(tmp_path / "class"), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(600):
            if pids.is_file() and len(pids.read_text().split()) == 2 or grader.poll() is not None:
                break
            time.sleep(0.1)
        assert pids.is_file(), grader.stdout.read() if grader.poll() is not None else "the builder never ran"
        grader.send_signal(stop)
        printed = grader.communicate(timeout=60)[0]
    finally:
        grader.kill()
    assert grader.returncode == 128 + stop, printed
    assert f"stopped by {stop.name}: the running sessions are stopped" in printed
    for pid in map(int, pids.read_text().split()):
        for _ in range(50):
            if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"process {pid} of the builder's session outlived the grader")
    assert rows_of(out / "class.csv")["stuck"]["problem"] == "stopped while validating the builder: interrupted"


# --- real classes: sessions on the real MNIST at the smoke profile ----------------------------

SMOKE = ["--seeds", "1", "--claims-profile", "smoke", "-p", "no:cacheprovider", "--mnist-dir", str(MNIST)]


def needs_mnist() -> None:
    if not MNIST.is_dir():
        pytest.skip(f"real MNIST not found in {MNIST}")


def make_class(directory: Path, *extra: str, keras_file: bool = True) -> Path:
    """alice (the good CNN), bob (a wider one, as .keras), carol (a 9-way output), a README, and `extra` students."""
    directory.mkdir(parents=True)
    shutil.copy(STUDENTS / "good.py", directory / "alice.py")
    if keras_file:
        namespace: dict = {}
        wider = (STUDENTS / "good.py").read_text().replace("Conv2D(8", "Conv2D(12")
        exec(compile(wider, "wider.py", "exec"), namespace)
        namespace["build"]().save(directory / "bob.keras")
    (directory / "carol.py").write_text((STUDENTS / "good.py").read_text().replace("layers.Dense(10", "layers.Dense(9"))
    (directory / "README.md").write_text("Submissions of the 2026 class.\n")
    for name in extra:
        shutil.copy(STUDENTS / f"{name}.py", directory / f"{name}.py")
    return directory


def rows_of(csv_path: Path) -> dict[str, dict[str, str]]:
    """The class table's rows without what differs between two gradings of one class (times, memory)."""
    with open(csv_path, newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    for row in rows.values():
        del row["wall_s"], row["peak_mib"]
    return rows


@pytest.mark.slow
def test_a_class_with_a_builder_that_never_returns_and_one_that_eats_memory(tmp_path: Path, capsys) -> None:
    """Two students at once: the hang ends at its validation's wall-time limit, the hog in its session at the
    memory limit, each with a row naming it; the others' rows are complete; the README is one ignored line."""
    needs_mnist()
    class_dir = make_class(tmp_path / "class", "hang", "hog")
    out = tmp_path / "out"
    # 45 s to validate: a good submission's validation, its pricing included, takes 15-25 s on 2 busy cores
    args = [str(class_dir), "--out", str(out), "-j", "2", "--validate-timeout", "45", "--student-memory", "3G"]
    claims = "improved-99 or pooling-maps or deeper-layer-shape or arch-basic-param-counts"
    code = grade.main([*args, "--", "-k", claims, *SMOKE, "--claims-cache", str(tmp_path / "cache")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "ignored README.md: not a submission" in printed and "5 students, 2 at once" in printed
    assert "3 claim(s) per student, 1 about the notebook's models only" in printed and "ETA" in printed
    assert "2 of 5 submissions checked" in printed

    rows = rows_of(out / "class.csv")
    assert list(rows) == ["notebook", "alice", "bob", "carol", "hang", "hog"]
    assert rows["hang"]["problem"] == "stopped while validating the builder: wall-time limit 45 s"
    assert (
        rows["hog"]["problem"].startswith("stopped after ")
        and ": memory limit 3.0 GiB (its processes held " in (rows["hog"]["problem"])
    )
    assert "the model outputs (9,), not (10,)" in rows["carol"]["problem"]
    for name in ("notebook", "alice", "bob"):
        row = rows[name]
        assert row["problem"] == "" and row["pooling-maps verdict"] == "not evidence"  # smoke: never "holds"
        assert row["pooling-maps headline"] == "differing_elements = 0"
        assert row["improved-99 headline"].startswith("test_accuracy = 0.")
    for name in ("alice", "bob"):
        assert rows[name]["deeper-layer-shape verdict"] == "not applicable"
        assert rows[name]["deeper-layer-shape reason"].endswith(
            ": the claim is the notebook's layers[3] output shape (1, 11, 11, 64)"
        )
    notebook = json.loads((out / "notebook" / "evidence.json").read_text())
    assert {c["id"] for c in notebook["claims"]} == {"improved-99", "pooling-maps", "deeper-layer-shape",
                                                     "arch-basic-param-counts"}  # fmt: skip
    alice = json.loads((out / "students" / "alice" / "evidence.json").read_text())
    assert {c["id"] for c in alice["claims"]} == {"improved-99", "pooling-maps"}  # its claims only, not the arch-*
    trained = [r for r in alice["runs"] if r["source"] == "trained"]
    threads = max(1, cpu_cores() // 2)  # the cores over the 2 sessions at once, no xdist workers
    assert trained and {r["threads"] for r in trained} == {threads}


@pytest.mark.slow
def test_two_slices_merged_give_the_whole_classs_table(tmp_path: Path) -> None:
    """The whole class, then its two slices graded at once (two jobs sharing the runs cache), then merged."""
    needs_mnist()
    class_dir = make_class(tmp_path / "class", keras_file=False)
    cache = ["--claims-cache", str(tmp_path / "cache")]
    options = ["--", "-k", "pooling-maps or arch-basic-param-counts", *SMOKE, *cache]
    assert grade.main([str(class_dir), "--out", str(tmp_path / "whole"), *options]) == 0
    jobs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reports.grade",
                str(class_dir),
                "--out",
                str(tmp_path / f"slice{i}"),
                "--shard",
                f"{i}/2",
                *options,
            ],  # fmt: skip
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (1, 2)
    ]
    printed = [job.communicate(timeout=600)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], printed
    assert "slice 1/2: 1 of the 2 students" in printed[0] and "slice 2/2: 1 of the 2 students" in printed[1]
    slices = [str(tmp_path / "slice1"), str(tmp_path / "slice2")]
    assert grade.main(["--merge", *slices, "--out", str(tmp_path / "merged")]) == 0
    whole, merged = rows_of(tmp_path / "whole" / "class.csv"), rows_of(tmp_path / "merged" / "class.csv")
    assert list(merged) == ["notebook", "alice", "carol"] and merged == whole
    assert merged["alice"]["pooling-maps verdict"] == "not evidence"
    assert grade.main(["--merge", slices[0], slices[0], "--out", str(tmp_path / "twice")]) == 2


# --- the feedback reports and the page in a browser ------------------------------------------


def test_each_name_links_to_a_self_contained_feedback_report_and_the_log_stays_linked(tmp_path: Path) -> None:
    table = planted_table(tmp_path / "sessions")
    written = {row.result.name: feedback.write(row.directory) for row in [table.notebook, *table.students]}
    assert {name for name, path in written.items() if path} == {"notebook", "alice", "bob"}  # carol, dan: no evidence
    html = page.write(planted_table(tmp_path / "sessions"), tmp_path / "out", "Class table", "intro")[0].read_text()
    assert '<a href="../sessions/alice/feedback.html" title="their feedback report: one file to send">alice</a>' in html
    assert 'class="small log" href="../sessions/alice/validate.log" title="the session\'s pytest log">log</a>' in html
    assert 'href="../sessions/carol/validate.log"' in html and "feedback.html" not in html.split("carol")[1][:300]
    report = written["alice"].read_text()
    assert "improved-99" in report and "the notebook reports" not in report  # a .py reports nothing
    local = re.findall(r'(?:src|href)="(?!#|data:|https?:)([^"]*)"', report)
    assert local == [], f"the feedback links local files: {local}"


def test_inlined_figures_become_data_uris_and_only_local_pngs_do(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n fake"
    (tmp_path / "curves.png").write_bytes(png)
    html = '<img src="curves.png" alt="a"><img src="https://example.org/x.png"><a href="#improved-99">x</a>'
    inlined = feedback.inline_images(html, tmp_path)
    assert f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="a">' in inlined
    assert '<img src="https://example.org/x.png">' in inlined and 'href="#improved-99"' in inlined


def long_named(claim: dict) -> dict:
    """`claim` with a measure named as long as the real ones, in one unbreakable word."""
    claim["headline"]["name"] = "edge_score_trained_minus_initial"
    return claim


def test_the_class_page_fits_a_1280_pixel_window_in_chromium(tmp_path: Path) -> None:
    """Ten claims (the improved CNN's in a class) of long headlines fit the window; a class
    with thrice as many scrolls its table in its box, the student's name in view."""
    if not Path(browser_check.CHROMIUM).is_file():
        pytest.skip(f"{browser_check.CHROMIUM} not installed (apt-get install chromium)")
    for count, fits in ((10, True), (30, False)):
        claims = [info(f"a-long-claim-identifier-{i}", "analysis", "improved_cnn") for i in range(count)]
        kinds = ("inconclusive", "refuted", "holds")
        rows = [
            session_dir(
                tmp_path / str(count),
                Result(f"student-with-a-long-name-{s}", f"submission-{s}.ipynb", wall_s=1234.0, peak_bytes=3 * 2**30),
                [long_named(record(c.id, kinds[(i + s) % 3], [-0.036281, 0.1])) for i, c in enumerate(claims)],
                {},
            )
            for s in range(6)
        ]
        table = ClassTable(None, [], [read_row(d, claims) for d in rows], claims)
        assert all(row.checked for row in table.students)
        out = tmp_path / f"page-{count}"
        page.write(table, out, "Class table", "intro")
        assert browser_check.check(out, out / "shot.png", "class.html") == []
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_check.CHROMIUM, args=browser_check.ARGS)
            view = browser.new_page(viewport={"width": 1280, "height": 800})
            view.goto((out / "class.html").as_uri())
            box = view.evaluate(
                "(() => { const b = document.querySelector('.scroll'); return [b.scrollWidth, b.clientWidth]; })()"
            )
            browser.close()
        assert (box[0] <= box[1]) is fits, f"{count} claims: the table is {box[0]} px in a {box[1]}-px box"
