"""The session's training plan: its cost model and order, the thread policy, and two workers sharing it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fixtures import backend, plan, recipes
from fixtures.data import load_mnist
from fixtures.profiles import PROFILES
from fixtures.runcache import RECORD
from fixtures.runs import RunStore
from tests.planted import claims_project
from tests.tiny import tiny_data, tiny_store


@pytest.fixture
def store(tmp_path):
    return tiny_store(tmp_path)


def cache_record(store: RunStore, spec, epoch_s: list[float]) -> None:
    """A cached run's record as RunStore writes it (only what the cost model reads)."""
    store.cache.entry(spec.key).mkdir()
    (store.cache.entry(spec.key) / RECORD).write_text(
        json.dumps({"spec": dataclasses.asdict(spec), "epoch_s": epoch_s})
    )


# --- cost model and order --------------------------------------------------------------------


def test_default_table_gives_the_batch_64_epoch_times_and_scales_other_batch_sizes():
    per_epoch = {m: plan.default_step_s(m, 64) * recipes.NOTEBOOK_STEPS for m in ("basic_cnn", "improved_cnn", "mlp")}
    assert per_epoch == pytest.approx({"basic_cnn": 4.0, "improved_cnn": 11.5, "mlp": 1.0})
    # An epoch at batch b is (64 / b + 1) / 2 of batch 64's: 2.5x at 16, 0.75x at 128.
    assert plan.default_step_s("basic_cnn", 16) * 4 * recipes.NOTEBOOK_STEPS == pytest.approx(2.5 * 4.0)
    assert plan.default_step_s("basic_cnn", 128) * recipes.NOTEBOOK_STEPS / 2 == pytest.approx(0.75 * 4.0)
    assert plan.default_step_s("student_net", 64) == plan.default_step_s("basic_cnn", 64)


def test_cached_epoch_times_of_the_same_model_batch_and_profile_replace_the_default(store):
    steps = plan.steps_per_epoch(store.spec("basic_cnn", batch_size=64, epochs=10, seed=0), len(store.data.X_train))
    assert steps == 6  # 400 examples, 360 after the validation split, batch 64
    for seed, epoch_s in [(0, [3.0, 6.0, 6.0]), (1, [12.0, 12.0])]:
        cache_record(store, store.spec("basic_cnn", batch_size=64, epochs=10, seed=seed), epoch_s)
    smoke = dataclasses.replace(store.spec("mlp", batch_size=64, epochs=10, seed=0), profile="smoke")
    cache_record(store, smoke, [600.0])  # another profile: not learnt from
    student = dataclasses.replace(store.spec("basic_cnn", batch_size=64, epochs=10, seed=0), model_source="ab" * 32)
    cache_record(store, student, [60.0])  # a student's model under the notebook's name: not its cost
    measured = plan.measured_step_s(store)
    assert measured == {("basic_cnn", 64): pytest.approx(np.median([6.0, 12.0]) / 6)}
    todo = plan.make_plan(
        [
            store.spec("basic_cnn", batch_size=64, epochs=10, seed=2),
            store.spec("mlp", batch_size=64, epochs=10, seed=0),
        ],
        store,
    )
    assert [p.cost_s for p in todo] == pytest.approx([10 * 6 * 9.0 / 6, 10 * 6 * plan.default_step_s("mlp", 64)])


def test_plan_is_deduplicated_uncached_and_longest_first(store):
    short, long_, middle = (store.spec("tiny", batch_size=32, epochs=e, seed=0) for e in (1, 8, 3))
    cached = store.spec("tiny", batch_size=32, epochs=20, seed=1)
    store.cache.entry(cached.key).mkdir()
    todo = plan.make_plan([short, long_, middle, short, cached], store)
    assert [p.spec for p in todo] == [long_, middle, short]
    assert todo[0].cost_s == pytest.approx(8 / 3 * todo[1].cost_s)


def test_declared_specs_come_from_the_claim_markers_runs(store):
    def two(s, seeds):
        return [s.spec("tiny", batch_size=32, epochs=1, seed=x) for x in seeds]

    class Item:
        def __init__(self, marker):
            self.marker = marker

        def get_closest_marker(self, name):
            return self.marker

    items = [Item(pytest.mark.claim("a", runs=(two,)).mark), Item(pytest.mark.claim("b").mark), Item(None)]
    assert [s.seed for s in plan.declared_specs(items, store, [0, 1])] == [0, 1]


def test_only_the_first_process_publishes_the_plan_with_the_logs_sizes_then(store, tmp_path):
    spec = store.spec("tiny", batch_size=32, epochs=1, seed=0)
    store.cache.log(spec.key).path.write_text("an earlier session's line\n")
    todo = plan.make_plan([spec], store)
    path = plan.plan_path(store.cache.root, "s1")
    assert plan.publish(todo, store, path, workers=2)
    assert not plan.publish([], store, path, workers=2)
    written = json.loads(path.read_text())
    assert written["workers"] == 2
    assert written["runs"] == [
        {
            "key": spec.key,
            "label": spec.label,
            "epochs": 1,
            "cost_s": round(todo[0].cost_s, 1),
            "log_offset": len("an earlier session's line\n"),
        }
    ]
    assert [p.name for p in path.parent.iterdir()] == ["s1.json"], "no temporary file is left"


# --- threads per worker ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "workers", "cores", "threads"),
    [
        ("auto", 2, 2, 1),
        ("auto", 1, 2, 2),
        ("auto", 4, 2, 1),
        ("auto", 2, 16, 8),
        ("auto", 0, 2, 0),
        ("0", 2, 2, 0),
        ("3", 2, 2, 3),
        ("3", 0, 2, 3),
    ],
)
def test_thread_policy(option, workers, cores, threads):
    assert backend.threads_for(option, workers, cores) == threads


@pytest.fixture
def before_keras(monkeypatch):
    """As if Keras were not imported yet, with a clean environment for what the thread cap writes."""
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.setattr(backend, "_threads", 0)
    for name in (
        "KERAS_BACKEND",
        "XLA_FLAGS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "OMP_NUM_THREADS",
        "XLA_PYTHON_CLIENT_PREALLOCATE",
        "CUBLAS_WORKSPACE_CONFIG",
        "TF_FORCE_GPU_ALLOW_GROWTH",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_prepare_caps_tensorflow_and_jax_threads_before_they_start(before_keras):
    backend.prepare("tensorflow", threads=1)
    assert (os.environ["TF_NUM_INTRAOP_THREADS"], os.environ["TF_NUM_INTEROP_THREADS"]) == ("1", "1")
    assert backend.threads() == 1
    backend.prepare("jax", threads=2)
    assert os.environ["XLA_FLAGS"].split()[-2:] == [
        "--xla_cpu_multi_thread_eigen=false",
        "intra_op_parallelism_threads=2",
    ]


def test_prepare_without_threads_leaves_the_backend_default(before_keras):
    backend.prepare("tensorflow")
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ and backend.threads() == 0


# --- two workers sharing one plan ------------------------------------------------------------

EPOCHS = {"short": 3, "medium": 15, "long": 40}


def planted_claims(epochs: dict[str, int]) -> str:
    """A claims module with one claim per entry, each declaring one tiny run of that many epochs."""
    return "\n".join(
        [
            "import pytest",
            "import tests.tiny  # registers the tiny model",
            "",
            *[
                f"def {name}(store, seeds):\n    return [store.spec('tiny', batch_size=32, epochs={e}, seed=0)]\n\n\n"
                f"@pytest.mark.claim('c-{name}', runs=({name},))\ndef test_{name}(runs, seeds):\n"
                f"    assert runs.get_all({name}(runs, seeds))[0].history['loss']\n\n"
                for name, e in epochs.items()
            ],
        ]
    )


MISDECLARED = """

from fixtures.claim import Verdict
from tests.planted import planted


@pytest.mark.claim('c-misdeclared', runs=(short,))
def test_misdeclared(claim, runs, seeds):
    used = runs.get_all(short(runs, seeds) + medium(runs, seeds))
    claim.uses(used)
    claim.check(planted(Verdict.HOLDS), summary='s')
"""


def tiny_project(
    pytester: pytest.Pytester, epochs: dict[str, int], extra: str = ""
) -> tuple[pytest.Pytester, list[str]]:
    """A claims project over the tiny data (as mnist.npz) declaring tiny runs (and `extra` code); returns it and
    its options."""
    data = tiny_data()
    np.savez(
        pytester.path / "mnist.npz",
        x_train=data.x_train_raw,
        y_train=data.t_train,
        x_test=data.x_test_raw,
        y_test=data.t_test,
    )
    return claims_project(pytester, test_claims=planted_claims(epochs) + extra), [
        "--mnist-dir",
        str(pytester.path / "mnist.npz"),
        "--mnist-no-verify",
        "--claims-cache",
        str(pytester.path / "cache"),
        "--claims-evidence",
        str(pytester.path / "evidence"),
    ]


def training_lines(cache: Path) -> dict[str, list[tuple[int, float]]]:
    """Per run label, the (pid, start time) of every training of it in the logs."""
    found: dict[str, list[tuple[int, float]]] = {}
    for log in cache.glob("*.log"):
        for m in re.finditer(r"^training (.*) \[\w+\] pid=(\d+) t=([\d.]+)", log.read_text(), re.M):
            found.setdefault(m[1], []).append((int(m[2]), float(m[3])))
    return found


@pytest.mark.slow
def test_two_workers_train_the_longest_first_and_each_run_once(pytester):
    project, options = tiny_project(pytester, EPOCHS, MISDECLARED)
    result = project.runpytest_subprocess(*options, "-n", "2", timeout=600)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*claim c-misdeclared used 1 run(s) its claim marker's runs= does not declare (tiny bs=32 ep=15 seed=0)*"]
    )
    trained = training_lines(pytester.path / "cache")
    labels = {name: f"tiny bs=32 ep={e} seed=0" for name, e in EPOCHS.items()}
    assert {label: len(trained.get(label, [])) for label in labels.values()} == dict.fromkeys(labels.values(), 1)
    first = min(labels.values(), key=lambda label: trained[label][0][1])
    assert first == labels["long"], trained
    assert len({pid for starts in trained.values() for pid, _ in starts}) <= 2
    # Piped, the controller prints one plain line per finished run, counted against the plan.
    finished = sorted(
        m.groups() for line in result.stdout.lines if (m := re.fullmatch(r"trained (\d)/3 (.*) in \d+ s", line))
    )
    assert [n for n, _ in finished] == ["1", "2", "3"] and {label for _, label in finished} == set(labels.values())
    # Each worker's backend got cores // 2 threads, recorded in the runs.
    records = (pytester.path / "cache").glob(f"*/{RECORD}")
    threads = {json.loads(p.read_text())["environment"]["threads"] for p in records}
    assert threads == {max(1, backend.cpu_cores() // 2)}
    result.stdout.fnmatch_lines([f"*backend threads per worker={max(1, backend.cpu_cores() // 2)}*2 workers*"])


@pytest.mark.slow
def test_ctrl_c_while_training_leaves_the_cache_valid(pytester):
    project, options = tiny_project(pytester, {"doomed": 60})
    cache = pytester.path / "cache"
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *options, "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        # A shell without job control starts background jobs with SIGINT ignored, which
        # children inherit and Python then never turns into KeyboardInterrupt: restore it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while not any("epoch 1/" in p.read_text() for p in cache.glob("*.log")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no first epoch before an exit or 300 s:\n{process.communicate(timeout=30)[0][-3000:]}")
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert "KeyboardInterrupt" in out
    assert not [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith((".tmp-", "plans"))]
    store = RunStore(
        cache, load_mnist(pytester.path / "mnist.npz", verify=False), PROFILES["notebook"], deterministic=True
    )
    spec = store.spec("tiny", batch_size=32, epochs=60, seed=0)
    assert store.get(spec).source == "trained"
    assert not list(cache.glob(".tmp-*")), "the interrupted training's leftover was not removed"
    assert RunStore(cache, store.data, store.profile, deterministic=True).get(spec).source == "cached"
