"""The suite's speed settings leave a run's numbers alone, and every run records where its time went.

`--steps-per-execution`: on every installed backend, the same tiny spec trained one step per call, at the
backend's `auto` choice and at an N that leaves a partial group each epoch gives the same history,
evaluations and test probabilities bit for bit, which is why the setting is not part of a run's key (the
cached runs keep theirs). The run record: seconds per phase and a timeline, from which `reports.timing_split`
splits a session's wall time.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import statistics
from datetime import datetime

import pytest

from fixtures import backend, timing
from fixtures.records import SCHEMA, RunRecord
from fixtures.runspec import RunSpec
from reports import timing_split
from tests.test_backend import INSTALLED, last_json, python
from tests.test_submissions import NOTEBOOK_SPEC
from tests.tiny import tiny_data, tiny_store

TRAIN_AT_EVERY_N = """
    import hashlib, json, sys, tempfile
    from pathlib import Path
    import numpy as np
    from fixtures import backend
    backend.prepare(None, "auto", 1)
    from fixtures.profiles import PROFILES
    from fixtures.runs import RunStore
    from tests.tiny import tiny_data

    auto = backend.resolve_steps_per_execution("auto")
    out = {"auto": auto, "runs": {}}
    for n in (1, auto, 5):
        store = RunStore(Path(tempfile.mkdtemp()), tiny_data(), PROFILES["notebook"], True, steps_per_execution=n)
        run = store.get(store.spec("tiny", batch_size=32, epochs=3, seed=7))
        out["runs"][n] = {
            "key": run.spec.key,
            "history": run.history,
            "evaluation": run.evaluation,
            "probabilities": hashlib.sha256(run.test_probabilities.tobytes()).hexdigest(),
            "recorded": run.environment["steps_per_execution"],
        }
    print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", INSTALLED)
def test_steps_per_execution_leaves_histories_identical(name):
    """N = 1, N = auto and N = 5 (12 steps an epoch: groups of 5, 5 and 2, the last batch partial): one key, and
    the same numbers bit for bit. If this fails on a backend, `--steps-per-execution` must enter that backend's
    run keys (left out at 1), or its cached runs would mix two trainings."""
    if name == "torch":
        pytest.skip("Keras's PyTorch trainer runs one step per call: nothing to compare")
    result = last_json(python(TRAIN_AT_EVERY_N, name, block_tensorflow=name != "tensorflow"))
    runs = result["runs"]
    assert len(runs) >= 2, "nothing but N = 1 was trained: the comparison would prove nothing"
    assert {str(n): r["recorded"] for n, r in runs.items()} == {n: int(n) for n in runs}
    reference = runs["1"]
    for n, run in runs.items():
        assert run["key"] == reference["key"], n
        assert run["history"] == reference["history"], n
        assert run["evaluation"] == reference["evaluation"], n
        assert run["probabilities"] == reference["probabilities"], n


TRAIN_WITH_COMPILATION_CACHE = """
    import json, tempfile
    from pathlib import Path
    from fixtures import backend
    backend.prepare("jax", "auto", 1, Path({cache!r}))
    from fixtures.profiles import PROFILES
    from fixtures.runs import RunStore
    from tests.tiny import tiny_data

    store = RunStore(Path(tempfile.mkdtemp()), tiny_data(), PROFILES["notebook"], True)
    run = store.get(store.spec("tiny", batch_size=32, epochs=2, seed=3))
    print(json.dumps({{"history": run.history, "evaluation": run.evaluation}}))
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_s_compilation_cache_changes_no_number(tmp_path):
    """A second process trains the same spec from JAX's persistent compilation cache, which the first filled:
    the same numbers bit for bit."""
    code = TRAIN_WITH_COMPILATION_CACHE.format(cache=str(tmp_path / "cache"))
    first = last_json(python(code, "jax", block_tensorflow=True))
    assert any((tmp_path / "cache").iterdir()), "JAX wrote nothing to its compilation cache"
    assert last_json(python(code, "jax", block_tensorflow=True)) == first


def test_a_run_records_its_phases_timeline_and_settings(tmp_path):
    """Every phase of a training is timed (validation per epoch, each evaluation), inside the fit's own time."""
    store = tiny_store(tmp_path)
    store.steps_per_execution = 3
    run = store.get(store.spec("tiny", batch_size=32, epochs=3, seed=0))
    phases, timeline, env = run.phases_s, run.timeline, run.environment
    assert set(phases) == {"build", "fit", "validation", "evaluate", "predict", "save", "epoch_cpu"}
    assert len(phases["epoch_cpu"]) == 3 and all(c > 0 for c in phases["epoch_cpu"])
    assert set(phases["evaluate"]) == {"train", "val", "test"}
    assert len(phases["validation"]) == 3
    assert all(0 < v < e for v, e in zip(phases["validation"], run.epoch_s, strict=True))
    assert sum(run.epoch_s) <= phases["fit"] == env["fit_s"]
    assert timeline["process_started"] <= timeline["started"] < timeline["finished"]
    assert timeline["finished"] - timeline["started"] >= phases["build"] + phases["fit"] + phases["predict"]
    assert env["steps_per_execution"] == 3
    assert env["loss_from"] in ("logits", "clipped probabilities")
    assert env["precision"]
    recorded = run.to_evidence()
    assert (recorded["phases_s"], recorded["timeline"], recorded["steps_per_execution"]) == (phases, timeline, 3)


def test_keys_are_unchanged_by_the_precision_field():
    """The key this spec had before RunSpec gained `precision` (tests/test_submissions.py's, from main at 00057ce):
    the default leaves it out, so no cached run is retrained; "highest" is another run."""
    spec = RunSpec(**NOTEBOOK_SPEC)
    assert spec.precision == "" and spec.key == "943ef0a4eb7f8eac8644930b"
    assert dataclasses.replace(spec, precision="highest").key != spec.key


def test_the_timing_claim_times_one_step_per_call(monkeypatch):
    """The timing claim keeps timing Keras's default fit (one step per call), whatever the session trains with."""
    asked = []
    compile_for_training = timing.models.compile_for_training

    def spy(model, optimizer, steps_per_execution=1):
        asked.append(steps_per_execution)
        return compile_for_training(model, optimizer, steps_per_execution)

    monkeypatch.setattr(timing.models, "compile_for_training", spy)
    data = tiny_data(n_train=64)
    timing.step_cost_sampler(data.X_train, data.T_train, ("tiny",), batch_size=8, steps=2)
    assert asked == [timing.STEPS_PER_EXECUTION] == [1]


# --- the split of a session's time (reports.timing_split) -----------------------------------


def test_timing_split_adds_up_to_each_worker_s_wall_time(tmp_path):
    """Two workers' trained runs: start-up, each phase, gaps and the time after training sum to the wall time."""
    store = tiny_store(tmp_path)
    runs = [store.get(store.spec("tiny", batch_size=32, epochs=2, seed=s)).to_evidence() for s in range(2)]
    start = min(r["timeline"]["process_started"] for r in runs) - 1.0
    end = max(r["timeline"]["finished"] for r in runs) + 2.0
    other = {**runs[1], "timeline": {**runs[1]["timeline"], "pid": -1}}
    split = timing_split.split([RunRecord.from_dict(r, r["label"]) for r in (runs[0], other)], start, end)
    assert set(split.workers) == {runs[0]["timeline"]["pid"], -1}
    for parts in split.workers.values():
        assert statistics.fsum(parts.values()) == pytest.approx(end - start, abs=1e-6)
        start_up = parts["start-up: process spawn"] + parts["start-up: imports, collection, data, plan"]
        assert parts["after training"] >= 2.0 and start_up >= 1.0
    assert split.total["training steps"] > 0 and split.total["validation"] > 0


def iso(unix: float) -> str:
    """A Unix time as evidence.json writes its session's times."""
    return datetime.fromtimestamp(unix).astimezone().strftime(timing_split.ISO)


def test_timing_split_reads_an_evidence_file(tmp_path, capsys):
    """Only this session's trained runs are counted: one kept from an earlier session is not."""
    store = tiny_store(tmp_path / "runs")
    run = store.get(store.spec("tiny", batch_size=32, epochs=2, seed=0)).to_evidence()
    started = run["timeline"]["process_started"] - 1
    session = {"started": iso(started), "finished": iso(run["timeline"]["finished"] + 5)}
    earlier = {**run, "source": "trained", "session": iso(started - 86400), "label": "from yesterday"}
    path = tmp_path / "evidence.json"
    runs = [{**run, "source": "trained", "session": session["started"]}, earlier]
    path.write_text(json.dumps({"schema": SCHEMA, "session": session, "runs": runs, "claims": []}))
    timing_split.main([str(path)])
    text = capsys.readouterr().out
    assert "start-up" in text and "after training" in text and "1 runs trained in this session" in text
    assert "from yesterday" not in text


def test_the_resolved_settings_are_what_the_backend_declares():
    engine = backend.current()
    assert backend.resolve_steps_per_execution("auto") == engine.steps_per_execution_auto["cpu"]
    assert backend.resolve_steps_per_execution("7") == 7
    assert backend.resolve_precision("highest") == "" == backend.resolve_precision("default")  # no GPU here
