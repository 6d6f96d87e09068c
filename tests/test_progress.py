"""The progress display: what it reads from the plan file and the run logs, and what it prints."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from fixtures.progress import Progress, Watcher


def plan_with_logs(
    cache: Path, logs: dict[str, str], epochs: int = 4, cost_s: float = 40.0, offsets: dict[str, int] | None = None
) -> Path:
    """A plan file of one run per entry of `logs` (key -> log text) and those logs under `cache`."""
    for key, text in logs.items():
        (cache / f"{key}.log").write_text(text)
    runs = [
        {
            "key": key,
            "label": f"tiny bs=32 ep={epochs} seed={i}",
            "epochs": epochs,
            "cost_s": cost_s,
            "log_offset": (offsets or {}).get(key, 0),
        }
        for i, key in enumerate(logs)
    ]
    path = cache / "plans" / "s1.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"created": 0, "workers": 2, "runs": runs}))
    return path


def test_finished_runs_give_one_line_each_once(tmp_path):
    path = plan_with_logs(
        tmp_path,
        {
            "a": "training tiny [a] pid=11 t=1.0 x\nepoch 1/4 2.0s loss=1\nepoch 2/4 2.0s loss=1\n",
            "b": "training tiny [b] pid=12 t=1.0 x\n"
            + "".join(f"epoch {k}/4 1.0s loss=1\n" for k in range(1, 5))
            + "done in 4.2s\n",
        },
    )
    progress = Progress(path, tmp_path)
    assert progress.poll() == ["trained 1/2 tiny bs=32 ep=4 seed=1 in 4 s"]
    assert progress.poll() == []
    with open(tmp_path / "a.log", "a") as f:
        f.write("epoch 3/4 2.0s loss=1\nepoch 4/4 2.0s loss=1\ndone in 8.0s\n")
    assert progress.poll() == ["trained 2/2 tiny bs=32 ep=4 seed=0 in 8 s"]


def test_a_run_another_session_trained_meanwhile_counts_as_cached(tmp_path):
    path = plan_with_logs(tmp_path, {"a": ""})
    (tmp_path / "a").mkdir()
    assert Progress(path, tmp_path).poll() == ["cached 1/1 tiny bs=32 ep=4 seed=0 (trained by another session)"]


def test_lines_before_the_plan_offset_are_an_earlier_session(tmp_path):
    old = "training tiny [a] pid=9 t=0.5 x\nepoch 1/4 3.0s loss=1\n"  # killed before it finished
    path = plan_with_logs(tmp_path, {"a": old + "training tiny [a] pid=11 t=1.0 x\n"}, offsets={"a": len(old)})
    progress = Progress(path, tmp_path)
    progress.poll()
    (run,) = progress.runs
    assert (run.pid, run.epoch_s, run.finished) == (11, [], False)


def test_eta_takes_running_runs_at_their_pace_and_the_rest_at_the_plan_scaled(tmp_path):
    # Plan: 4 epochs at 10 s each (cost 40 s); run a is observed at 20 s/epoch, so run b (not started)
    # is expected at twice its planned cost. Left: a 2 epochs x 20 s + b 80 s, over 2 workers.
    path = plan_with_logs(
        tmp_path, {"a": "training tiny [a] pid=11 t=1.0 x\nepoch 1/4 20.0s\nepoch 2/4 20.0s\n", "b": ""}
    )
    progress = Progress(path, tmp_path)
    progress.poll()
    assert progress.eta_s() == (2 * 20 + 80) / 2


def test_live_status_names_each_training_run_with_its_epoch_and_pace(tmp_path):
    path = plan_with_logs(tmp_path, {"a": "training tiny [a] pid=11 t=1.0 x\nepoch 1/4 2.5s loss=1\n", "b": ""})
    progress = Progress(path, tmp_path)
    progress.poll()
    console = Console(file=io.StringIO(), width=200)
    console.print(progress)
    text = console.file.getvalue()
    assert "0/2 runs done" in text and "ETA" in text
    assert "pid 11" in text and "tiny bs=32 ep=4 seed=0" in text and "epoch 1/4" in text and "2.5 s/epoch" in text
    assert "seed=1" not in text, "a run not started is not shown as training"


def test_watcher_prints_plain_lines_when_not_a_terminal(tmp_path):
    path = plan_with_logs(tmp_path, {"a": "training tiny [a] pid=11 t=1.0 x\nepoch 1/1 1.0s\ndone in 1.0s\n"}, epochs=1)
    out = io.StringIO()
    watcher = Watcher(Progress(path, tmp_path), out).start()
    watcher.stop()  # its last poll still reports what finished
    assert out.getvalue() == "trained 1/1 tiny bs=32 ep=1 seed=0 in 1 s\n"


def test_no_plan_file_yet_prints_nothing(tmp_path):
    progress = Progress(tmp_path / "plans" / "missing.json", tmp_path)
    assert progress.poll() == [] and progress.runs == []
