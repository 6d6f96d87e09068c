"""The training-run store: keys, concurrency, crashes, tampering and reproducibility."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.runs import MODEL_FILE, RECORD, RunSpec
from tests.tiny import tiny_store

REPO = Path(__file__).resolve().parent.parent


def start_tiny(root: Path, epochs: int = 2, seed: int = 0) -> subprocess.Popen:
    """Another process asking the store at `root` for a tiny run."""
    return subprocess.Popen([sys.executable, "-m", "tests.tiny", str(root), str(epochs), str(seed)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def result_of(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def store(tmp_path):
    return tiny_store(tmp_path)


def test_key_is_stable_across_processes(store, tmp_path):
    spec = store.spec("tiny", batch_size=32, epochs=2, seed=0)
    other = result_of(start_tiny(tmp_path, epochs=2, seed=0))
    assert other["key"] == spec.key


def test_key_changes_with_every_field(store):
    spec = store.spec("tiny", batch_size=32, epochs=2, seed=0)
    changed = {
        "model": "mlp", "model_config": {"padding": "same"}, "optimizer": {"class_name": "Adam", "config": {}},
        "batch_size": 64, "epochs": 3, "validation_split": 0.2, "seed": 1, "data_fingerprint": "0" * 64,
        "versions": {**spec.versions, "tensorflow": "9.9"}, "profile": "smoke", "deterministic": False,
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
    assert store.log_path(spec).read_text().count("epoch ") == 2


def test_training_does_not_change_later_keys(store):
    before = store.spec("tiny", batch_size=32, epochs=2, seed=0).key
    store.get(store.spec("tiny", batch_size=32, epochs=1, seed=0))
    assert store.spec("tiny", batch_size=32, epochs=2, seed=0).key == before


def test_concurrent_requests_train_once(tmp_path):
    processes = [start_tiny(tmp_path, epochs=3) for _ in range(2)]
    results = [result_of(p) for p in processes]
    assert sorted(r["source"] for r in results) == ["cached", "trained"]
    assert results[0]["history"] == results[1]["history"]
    log = next(tmp_path.glob("*.log")).read_text()
    assert log.count("training ") == 1, log


def test_killed_training_leaves_nothing_valid(tmp_path):
    doomed = start_tiny(tmp_path, epochs=500)
    deadline = time.monotonic() + 60
    while not any("epoch 1/" in p.read_text() for p in tmp_path.glob("*.log")):
        assert time.monotonic() < deadline and doomed.poll() is None, doomed.stderr.read()
        time.sleep(0.1)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    entries = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert [p.name.startswith(".tmp-") for p in entries] == [True], entries
    store = tiny_store(tmp_path)
    run = store.get(store.spec("tiny", batch_size=32, epochs=500, seed=0))
    assert run.source == "trained"
    assert not list(tmp_path.glob(".tmp-*")), "the leftover of the killed process was not cleaned"


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


def test_same_spec_trains_to_identical_histories(tmp_path):
    a, b = tiny_store(tmp_path / "a"), tiny_store(tmp_path / "b")
    spec = a.spec("tiny", batch_size=32, epochs=3, seed=7)
    run_a, run_b = a.get(spec), b.get(spec)
    assert run_a.source == run_b.source == "trained"
    assert run_a.history == run_b.history
    assert run_a.evaluation == run_b.evaluation
    other_seed = a.get(a.spec("tiny", batch_size=32, epochs=3, seed=8))
    assert other_seed.history != run_a.history, "the seed must matter, or the test above proves nothing"
