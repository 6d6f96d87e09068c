"""The training-run store: keys, concurrency, crashes, tampering and reproducibility."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from fixtures.runcache import MODEL_FILE, RECORD
from fixtures.runspec import RunSpec
from tests.tiny import tiny_store

REPO = Path(__file__).resolve().parent.parent


def start_tiny(root: Path, epochs: int = 2, seed: int = 0) -> subprocess.Popen:
    """Another process asking the store at `root` for a tiny run."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.tiny", str(root), str(epochs), str(seed)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def end_and_fail(process: subprocess.Popen, why: str) -> None:
    """Kill `process` (if still running) and fail with its stderr, never blocking on its pipes."""
    process.kill()
    _, err = process.communicate(timeout=30)
    pytest.fail(f"{why}; its stderr ends:\n{err[-2000:]}")


def result_of(process: subprocess.Popen, timeout: float = 300) -> dict:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_and_fail(process, f"no result within {timeout}s")
    assert process.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def wait_for_log(process: subprocess.Popen, root: Path, text: str, timeout: float) -> None:
    """Wait until a run log under `root` contains `text`; fail (killing `process`) if it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not any(text in p.read_text() for p in root.glob("*.log")):
        if process.poll() is not None:
            end_and_fail(process, f"the process exited ({process.returncode}) before its log said {text!r}")
        if time.monotonic() > deadline:
            end_and_fail(process, f"its log did not say {text!r} within {timeout}s")
        time.sleep(0.1)


@pytest.fixture
def store(tmp_path):
    return tiny_store(tmp_path)


@pytest.mark.slow
def test_key_is_stable_across_processes(store, tmp_path):
    spec = store.spec("tiny", batch_size=32, epochs=2, seed=0)
    other = result_of(start_tiny(tmp_path, epochs=2, seed=0))
    assert other["key"] == spec.key


def test_key_changes_with_every_field(store):
    spec = store.spec("tiny", batch_size=32, epochs=2, seed=0)
    changed = {
        "model": "mlp",
        "model_config": {"padding": "same"},
        "optimizer": {"class_name": "Adam", "config": {}},
        "batch_size": 64,
        "epochs": 3,
        "validation_split": 0.2,
        "seed": 1,
        "data_fingerprint": "0" * 64,
        "versions": {**spec.versions, "tensorflow": "9.9"},
        "profile": "smoke",
        "deterministic": False,
        "model_source": "0" * 64,
        "precision": "highest",
    }
    assert set(changed) == {f.name for f in dataclasses.fields(RunSpec)}, "a new field needs a case here"
    for name, value in changed.items():
        assert dataclasses.replace(spec, **{name: value}).key != spec.key, name
    assert dataclasses.replace(spec).key == spec.key


def test_second_request_loads_from_cache(store, tmp_path):
    spec = store.spec("tiny", batch_size=32, epochs=2, seed=0)
    first = store.get(spec)
    again = tiny_store(tmp_path).get(spec)
    assert (first.source, again.source) == ("trained", "cached")
    assert again.history == first.history and again.evaluation == first.evaluation
    assert again.model.count_params() == first.model.count_params()
    assert store.cache.log(spec.key).path.read_text().count("epoch ") == 2


def test_training_does_not_change_later_keys(store):
    before = store.spec("tiny", batch_size=32, epochs=2, seed=0).key
    store.get(store.spec("tiny", batch_size=32, epochs=1, seed=0))
    assert store.spec("tiny", batch_size=32, epochs=2, seed=0).key == before


@pytest.mark.slow
def test_concurrent_requests_train_once_the_second_waiting_on_the_lock(tmp_path):
    processes = [start_tiny(tmp_path, epochs=10) for _ in range(2)]
    results = [result_of(p) for p in processes]
    assert sorted(r["source"] for r in results) == ["cached", "trained"]
    assert results[0]["history"] == results[1]["history"]
    log = next(tmp_path.glob("*.log"))
    assert log.read_text().count("training ") == 1, log.read_text()
    # Overlap, not one after the other: the loader asked before the trainer wrote its last log
    # line ("done", under the lock) and got the run only after it.
    loader = next(r for r in results if r["source"] == "cached")
    done = log.stat().st_mtime
    assert loader["requested"] < done <= loader["obtained"], (loader["requested"], done, loader["obtained"])


def test_get_all_keeps_order_trains_duplicates_once_and_waits_for_locked_runs_last(store, tmp_path):
    first, second, third = (store.spec("tiny", batch_size=32, epochs=1, seed=s) for s in range(3))
    held, released = threading.Event(), {}

    def hold_first_until_the_others_exist() -> None:
        """Another process's training of `first`: hold its lock until get_all trained the rest."""
        with FileLock(tmp_path / f"{first.key}.lock"):
            held.set()
            deadline = time.monotonic() + 120
            while not all((tmp_path / s.key).is_dir() for s in (second, third)) and time.monotonic() < deadline:
                time.sleep(0.05)
            released.update(at=time.time(), others_done=all((tmp_path / s.key).is_dir() for s in (second, third)))

    holder = threading.Thread(target=hold_first_until_the_others_exist)
    holder.start()
    held.wait()
    runs = store.get_all([first, second, first, third])
    holder.join()
    assert released["others_done"], "get_all waited on the locked run before training the free ones"
    assert [r.spec for r in runs] == [first, second, first, third] and runs[0] is runs[2]
    assert {r.source for r in runs} == {"trained"}
    assert store.cache.log(first.key).path.read_text().count("training ") == 1
    assert (tmp_path / first.key).stat().st_mtime > released["at"], "the locked run was trained after its release"


@pytest.mark.slow
def test_killed_training_leaves_nothing_valid(tmp_path):
    doomed = start_tiny(tmp_path, epochs=500)
    wait_for_log(doomed, tmp_path, "epoch 1/", timeout=300)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    entries = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert [p.name.startswith(".tmp-") for p in entries] == [True], entries
    store = tiny_store(tmp_path)
    run = store.get(store.spec("tiny", batch_size=32, epochs=500, seed=0))
    assert run.source == "trained"
    assert not list(tmp_path.glob(".tmp-*")), "the leftover of the killed process was not cleaned"


def test_waiting_on_a_silent_process_ends_at_its_deadline(tmp_path):
    silent = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="did not say"):
        wait_for_log(silent, tmp_path, "epoch 1/", timeout=1)
    assert time.monotonic() - start < 30 and silent.poll() is not None


@pytest.mark.parametrize("victim", [MODEL_FILE, RECORD])
def test_tampered_entry_is_detected_and_retrained(store, tmp_path, victim):
    spec = store.spec("tiny", batch_size=32, epochs=2, seed=0)
    run = store.get(spec)
    with open(run.path / victim, "r+b") as f:
        f.seek(100)
        f.write(b"tampered")
    with pytest.warns(UserWarning, match=f"corrupt.*{victim}"):
        again = tiny_store(tmp_path).get(spec)
    assert again.source == "trained"
    assert again.history == run.history


def test_a_corrupt_entry_whose_deletion_stops_half_way_is_out_of_the_way_of_its_retraining(
    store, tmp_path, monkeypatch
):
    """The discarded entry is renamed aside before it is deleted, so the retrained run can be sealed in its place
    even when the deletion leaves files behind (planted: a deletion that removes nothing)."""
    spec = store.spec("tiny", batch_size=32, epochs=2, seed=0)
    run = store.get(spec)
    (run.path / MODEL_FILE).write_bytes(b"tampered")
    monkeypatch.setattr("fixtures.runcache.shutil.rmtree", lambda path, ignore_errors=False: None)
    with pytest.warns(UserWarning, match=f"corrupt.*{MODEL_FILE}"):
        again = tiny_store(tmp_path).get(spec)
    assert again.source == "trained" and again.history == run.history
    assert len(list(tmp_path.glob(".discarded-*"))) == 1  # what the deletion left, aside until the next scratch


def test_same_spec_trains_to_identical_histories(tmp_path):
    a, b = tiny_store(tmp_path / "a"), tiny_store(tmp_path / "b")
    spec = a.spec("tiny", batch_size=32, epochs=3, seed=7)
    run_a, run_b = a.get(spec), b.get(spec)
    assert run_a.source == run_b.source == "trained"
    assert run_a.history == run_b.history
    assert run_a.evaluation == run_b.evaluation
    other_seed = a.get(a.spec("tiny", batch_size=32, epochs=3, seed=8))
    assert other_seed.history != run_a.history, "the seed must matter, or the test above proves nothing"
