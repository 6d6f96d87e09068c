"""fixtures.backend: the backend choice, reproducible runs on every installed backend, TensorFlow
never imported under the others, the NumPy feeding, and the conv rounding each backend reports."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fixtures import backend
from fixtures.analysis import TF32_UNIT_ROUNDOFF
from fixtures.pydataset import ArrayBatches

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / ".ci" / "pytest_without_tensorflow.py"
BLOCK_TF = "import sys; sys.modules['tensorflow'] = None\n"  # `import tensorflow` now raises ImportError
INSTALLED = [
    pytest.param(
        name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None, reason=f"{name} is not installed")
    )
    for name in backend.BACKENDS
]


def python(code: str, keras_backend: str, block_tensorflow: bool) -> subprocess.Popen:
    """A fresh interpreter running `code` from the repo root on `keras_backend`."""
    env = {**os.environ, "KERAS_BACKEND": keras_backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    prelude = BLOCK_TF if block_tensorflow else ""
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def last_json(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=900)  # a loaded 2-core CI box is slow
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", INSTALLED)
def test_same_tiny_spec_trains_to_identical_histories(name, tmp_path):
    """Two processes train the same tiny spec from scratch on `name` (CPU, deterministic): identical
    histories, evaluations and keys. Under JAX and PyTorch TensorFlow cannot even be imported."""
    processes = [
        python(
            f"""
        import runpy, sys
        sys.argv = ["tiny", {str(tmp_path / str(i))!r}, "3", "7"]
        runpy.run_module("tests.tiny", run_name="__main__")
    """,
            name,
            block_tensorflow=name != "tensorflow",
        )
        for i in range(2)
    ]
    a, b = (last_json(p) for p in processes)
    assert a["source"] == b["source"] == "trained"
    assert a["keras_backend"] == b["keras_backend"] == a["environment"]["keras_backend"] == name
    assert a["key"] == b["key"]
    assert a["history"] == b["history"], (a["history"], b["history"])
    assert a["history"]["loss"][-1] < a["history"]["loss"][0]  # it really trained
    assert a["environment"]["deterministic"] is True
    assert a["environment"]["peak_gpu_memory_bytes"] is None  # CPU


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_suite_never_imports_tensorflow_under_jax():
    """Every suite module imports, and every backend question is answered, with TensorFlow unimportable."""
    code = """
        import importlib, json, pathlib
        modules = ["conftest", "tests.tiny"] + [
            f"{p.parent.name}.{p.stem}" for folder in ("fixtures", "claims", "reports")
            for p in sorted(pathlib.Path(folder).glob("*.py")) if not p.stem.startswith("__")]
        for module in modules:
            importlib.import_module(module)
        from fixtures import backend
        print(json.dumps({"modules": modules, "backend": backend.active(), "versions": backend.library_versions(),
                          "device": backend.device_description(), "gpu": backend.has_gpu(),
                          "deterministic": backend.resolve_determinism("auto"),
                          "determinism": backend.current().set_determinism(True),
                          "roundoff": backend.conv_operand_roundoff(),
                          "batches": type(backend.current().batches(np.zeros((5, 2)), np.zeros(5), 2, 0)).__name__,
                          "peak": backend.current().peak_gpu_memory()}))
    """
    result = last_json(python("import numpy as np\n" + textwrap.dedent(code), "jax", block_tensorflow=True))
    assert "fixtures.backend" in result["modules"] and "claims.test_analysis" in result["modules"]
    assert result["backend"] == result["versions"]["keras_backend"] == "jax"
    assert "tensorflow" not in result["versions"] and result["versions"]["jax"]
    assert (result["gpu"], result["roundoff"], result["peak"], result["batches"]) == (False, 0.0, None, "ArrayBatches")
    assert result["deterministic"] is True and result["determinism"]["xla_gpu_deterministic_ops"] is False


@pytest.mark.slow
def test_runner_blocks_tensorflow_in_xdist_workers(tmp_path):
    """The CI runner's block reaches the workers, which are fresh interpreters, not only its own process."""
    (tmp_path / "test_probe.py").write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.parametrize("i", range(2))
        def test_tensorflow_is_unimportable(i):
            with pytest.raises(ImportError):
                import tensorflow  # noqa: F401
    """)
    )
    result = subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            "-n",
            "2",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout


# --- prepare: the backend's start-up settings ---------------------------------------------


@pytest.fixture
def before_keras(monkeypatch):
    """As if Keras were not imported yet, with a clean environment for the settings `prepare` writes."""
    monkeypatch.delitem(sys.modules, "keras")
    for name in (
        "KERAS_BACKEND",
        "XLA_FLAGS",
        "XLA_PYTHON_CLIENT_PREALLOCATE",
        "CUBLAS_WORKSPACE_CONFIG",
        "TF_FORCE_GPU_ALLOW_GROWTH",
        "JAX_COMPILATION_CACHE_DIR",
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
    ):
        monkeypatch.setenv(name, "")  # recorded, so that teardown restores what was there (or nothing)
        monkeypatch.delenv(name)


def test_prepare_defaults_to_tensorflow_and_grows_gpu_memory(before_keras):
    assert backend.prepare() == "tensorflow" == os.environ["KERAS_BACKEND"]
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_prepare_jax_sets_no_preallocation_and_deterministic_ops_once(before_keras, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    assert backend.prepare("jax", "on") == "jax"
    backend.prepare("jax", "on")
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert os.environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {backend.XLA_DETERMINISM_FLAG}"


def test_prepare_jax_auto_leaves_xla_s_deterministic_ops_off(before_keras):
    """XLA's flag is read by GPUs only, and there it cannot compile MaxPooling2D's gradient: auto never sets it."""
    backend.prepare("jax", "auto")
    assert "XLA_FLAGS" not in os.environ


def test_prepare_jax_keeps_compiled_programs_where_asked_unless_told_elsewhere(before_keras, monkeypatch, tmp_path):
    backend.prepare("jax", compilation_cache=tmp_path / "a")
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "a")
    assert os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")
    backend.prepare("jax", compilation_cache=tmp_path / "b")
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == "/elsewhere"


def test_prepare_jax_without_determinism_leaves_xla_flags(before_keras):
    backend.prepare("jax", "off")
    assert "XLA_FLAGS" not in os.environ


def test_prepare_torch_sets_the_cublas_workspace(before_keras):
    backend.prepare("torch")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_prepare_rejects_unknown_backends(before_keras):
    with pytest.raises(ValueError, match="mxnet"):
        backend.prepare("mxnet")


def test_prepare_refuses_to_switch_after_keras_started():
    other = "jax" if backend.active() != "jax" else "tensorflow"
    with pytest.raises(RuntimeError, match="before"):
        backend.prepare(other)


# --- data feeding -------------------------------------------------------------------------


def epochs_of(batches: ArrayBatches, n: int) -> list[list[np.ndarray]]:
    """The rows of every batch over `n` epochs, as Keras's epoch loop asks for them."""
    seen = []
    for _ in range(n):
        batches.on_epoch_begin()
        seen.append([batches[i][1] for i in range(len(batches))])
        batches.on_epoch_end()
    return seen


def test_array_batches_reshuffle_every_epoch_from_the_seed():
    x, y = np.arange(10.0)[:, None] * np.ones((1, 3)), np.arange(10)
    first = epochs_of(ArrayBatches(x, y, 4, shuffle_seed=3), 3)
    again = epochs_of(ArrayBatches(x, y, 4, shuffle_seed=3), 3)
    other = epochs_of(ArrayBatches(x, y, 4, shuffle_seed=4), 3)
    assert [len(b) for b in first[0]] == [4, 4, 2]
    for epoch in first:
        assert sorted(np.concatenate(epoch)) == list(range(10))  # a full permutation every epoch
    flat = [np.concatenate(e).tolist() for e in first]
    assert flat == [np.concatenate(e).tolist() for e in again]
    assert flat != [np.concatenate(e).tolist() for e in other]
    assert len({tuple(f) for f in flat}) == 3  # a new order each epoch
    batch_x, batch_y = ArrayBatches(x, y, 4, shuffle_seed=3)[0]
    np.testing.assert_array_equal(batch_x[:, 0], batch_y)  # inputs stay with their targets


def test_array_batches_without_seed_keep_the_order():
    batches = ArrayBatches(np.zeros((5, 1)), np.arange(5), 2, shuffle_seed=None)
    assert [b.tolist() for b in epochs_of(batches, 2)[1]] == [[0, 1], [2, 3], [4]]


# --- conv operand rounding ----------------------------------------------------------------


def test_no_rounding_without_a_gpu():
    assert not backend.has_gpu()
    assert backend.conv_operand_roundoff() == 0.0


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretend the backend sees one GPU of a chosen compute capability (default: Ampere, 8.0)."""
    capability = {"value": (8, 0)}
    for kind in backend.BACKENDS.values():
        monkeypatch.setattr(kind, "gpus", lambda self: ["gpu0"])
        monkeypatch.setattr(kind, "gpu_name_and_capability", lambda self, gpu: ("fake", capability["value"]))
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    return capability


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
@pytest.mark.parametrize(
    "precision, expected",
    [
        (None, TF32_UNIT_ROUNDOFF),
        ("default", TF32_UNIT_ROUNDOFF),
        ("tensorfloat32", TF32_UNIT_ROUNDOFF),
        ("highest", 0.0),
        ("float32", 0.0),
        ("F32_F32_F32", 0.0),
        ("BF16_BF16_F32", backend.BF16_UNIT_ROUNDOFF),
    ],
)
def test_jax_rounding_follows_its_default_precision(fake_gpu, monkeypatch, precision, expected):
    import jax

    monkeypatch.setattr(backend, "active", lambda: "jax")
    with jax.default_matmul_precision(precision):
        assert backend.conv_operand_roundoff() == expected


def test_tensorflow_rounding_follows_its_tf32_switch(fake_gpu, monkeypatch):
    if backend.active() != "tensorflow":
        pytest.skip("TensorFlow is not this session's backend")
    import tensorflow as tf

    monkeypatch.setattr(backend, "active", lambda: "tensorflow")
    enabled = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        tf.config.experimental.enable_tensor_float_32_execution(True)
        assert backend.conv_operand_roundoff() == TF32_UNIT_ROUNDOFF
        tf.config.experimental.enable_tensor_float_32_execution(False)
        assert backend.conv_operand_roundoff() == 0.0
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(enabled)


def test_no_rounding_before_ampere_or_with_tf32_overridden(fake_gpu, monkeypatch):
    monkeypatch.setattr(backend, "active", lambda: "jax")
    fake_gpu["value"] = (7, 0)
    assert backend.conv_operand_roundoff() == 0.0
    fake_gpu["value"] = (9, 0)
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    assert backend.conv_operand_roundoff() == 0.0


# --- what a GPU changes: determinism, precision, the loss path --------------------------------


@pytest.mark.parametrize("name, deterministic", [("tensorflow", False), ("jax", False), ("torch", True)])
def test_auto_determinism_on_a_gpu(fake_gpu, monkeypatch, name, deterministic):
    """auto: off on a TensorFlow GPU (slow kernels) and on a JAX GPU (no deterministic pooling gradient)."""
    monkeypatch.setattr(backend, "active", lambda: name)
    assert backend.resolve_determinism("auto") is deterministic
    assert backend.resolve_determinism("on") is True and backend.resolve_determinism("off") is False


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_op_determinism_on_a_jax_gpu_stops_with_one_line(fake_gpu, monkeypatch):
    """Where XLA refuses MaxPooling2D's gradient under its deterministic flag (google/flax#4233), `on` stops before
    training with one line naming the cause and the way out; where it compiles, `on` is honoured. Only a GPU can
    show that the probe meets XLA's refusal: on a CPU XLA ignores the flag (the next test)."""
    refusal = (
        "UNIMPLEMENTED: HLO instruction select-and-scatter.401.0 does not have a deterministic implementation, "
        "but run-to-run determinism is required by --xla_gpu_deterministic_ops."
    )
    monkeypatch.setenv("XLA_FLAGS", backend.XLA_DETERMINISM_FLAG)
    monkeypatch.setattr(backend, "pooling_gradient_problem", lambda: refusal)
    with pytest.raises(backend.DeterminismUnavailable) as raised:
        backend.Jax().set_determinism(True)
    message = str(raised.value)
    assert "\n" not in message and "MaxPooling2D" in message and "--op-determinism auto" in message
    assert refusal in message
    monkeypatch.setattr(backend, "pooling_gradient_problem", lambda: None)
    assert backend.Jax().set_determinism(True) == {"xla_gpu_deterministic_ops": True, "gpu": True}
    monkeypatch.delenv("XLA_FLAGS")
    assert backend.Jax().set_determinism(False) == {"xla_gpu_deterministic_ops": False, "gpu": True}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_pooling_gradient_compiles_on_a_cpu_under_the_flag():
    """The probe itself runs: on a CPU, with the flag set, XLA compiles the gradient (the flag is GPU-only)."""
    code = """
        import json, os
        os.environ["XLA_FLAGS"] = "--xla_gpu_deterministic_ops=true"
        from fixtures import backend
        print(json.dumps({"problem": backend.pooling_gradient_problem()}))
    """
    assert last_json(python(code, "jax", block_tensorflow=True)) == {"problem": None}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_precision_is_recorded_and_changes_nothing_on_a_cpu():
    """--gpu-precision highest sets jax_default_matmul_precision (recorded); on a CPU float32 convolutions and
    matmuls give the same bits at every precision, which is why CPU runs keep their keys (resolve_precision)."""
    code = """
        import json
        import numpy as np
        import jax
        from fixtures import backend
        rng = np.random.default_rng(0)
        x, k = rng.standard_normal((8, 28, 28, 1), np.float32), rng.standard_normal((3, 3, 1, 16), np.float32)
        a, b = rng.standard_normal((8, 2704), np.float32), rng.standard_normal((2704, 100), np.float32)

        def f(x, k, a, b):
            conv = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return conv, a @ b

        default = [np.asarray(o) for o in jax.jit(f)(x, k, a, b)]
        before = backend.current().set_precision("default")
        after = backend.current().set_precision("highest")
        highest = [np.asarray(o) for o in jax.jit(f)(x, k, a, b)]
        print(json.dumps({"before": before, "after": after,
                          "same": [bool(np.array_equal(p, q)) for p, q in zip(default, highest)]}))
    """
    result = last_json(python(code, "jax", block_tensorflow=True))
    assert result["before"] == {"jax_default_matmul_precision": "default"}
    assert result["after"] == {"jax_default_matmul_precision": "highest"}
    assert result["same"] == [True, True]


def test_gpu_precision_enters_the_key_only_on_a_gpu(fake_gpu):
    assert backend.resolve_precision("highest") == "highest"
    assert backend.resolve_precision("default") == ""


def test_tensorflow_precision_highest_turns_tf32_off():
    if backend.active() != "tensorflow":
        pytest.skip("TensorFlow is not this session's backend")
    import tensorflow as tf

    enabled = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        assert backend.current().set_precision("default") == {"tf32_execution": enabled}
        assert backend.current().set_precision("highest") == {"tf32_execution": False}
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(enabled)


LOSS_PATH = """
    import json
    import numpy as np
    import keras
    from fixtures import backend

    layers = keras.layers
    out = {}
    for name, model in {
        "softmax layer": keras.Sequential([keras.Input((2,)), layers.Dense(10), layers.Activation("softmax")]),
        "dense softmax": keras.Sequential([keras.Input((2,)), layers.Dense(10, activation="softmax")]),
    }.items():
        w = np.zeros((2, 10), np.float32)
        w[0, 1] = 50.0  # x = (1, 0): logit 50 for class 1, 0 for the others
        model.layers[0].set_weights([w, np.zeros(10, np.float32)])
        model.compile(loss="categorical_crossentropy")
        x, y = np.array([[1.0, 0.0]], np.float32), np.eye(10, dtype=np.float32)[[0]]  # true class 0: p = e^-50
        out[name] = {"loss": float(model.evaluate(x, y, verbose=0)), "from": backend.current().loss_from(model)}
    print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", INSTALLED)
def test_the_recorded_loss_path_is_the_one_keras_takes(name):
    """A sample whose true class has probability e^-50: from the logits the loss is 50; from probabilities
    clipped to [1e-7, 1 - 1e-7] it is -log(1e-7) = 16.12, and its gradient is zero. Each run records which
    path its backend took: TensorFlow the logits (for both ways of ending in a softmax), JAX and PyTorch the
    clipped probabilities."""
    result = last_json(python(LOSS_PATH, name, block_tensorflow=name != "tensorflow"))
    for model, seen in result.items():
        if seen["from"] == "logits":
            assert seen["loss"] == pytest.approx(50.0, abs=1e-3), model
        else:
            assert seen["from"] == "clipped probabilities"
            assert seen["loss"] == pytest.approx(-np.log(1e-7), abs=1e-3), model
        assert seen["from"] == ("logits" if name == "tensorflow" else "clipped probabilities"), model


@pytest.mark.slow
@pytest.mark.parametrize("declares", [False, True], ids=["undeclared", "declared-runs"])
def test_impossible_determinism_fails_each_training_claim_with_one_line(pytester, declares):
    """Where the backend refuses deterministic ops (planted here, as on a JAX GPU), every test that needs the run
    store fails with the refusal's one line, before any training and without a traceback; also when the claims
    declare runs, so that the session plan asks for the store (and meets the refusal) before any test does."""
    pytester.makefile(".toml", pyproject=f'[tool.pytest.ini_options]\npythonpath = ["{REPO}"]\n')
    pytester.makeconftest((REPO / "conftest.py").read_text())
    marker = "@pytest.mark.claim('needs-runs', runs=(recipes.first_basic,))" if declares else ""
    pytester.makepyfile(
        refusing_gpu="""
        from fixtures import backend, session
        from tests.tiny import tiny_data

        def refuse(self, enabled):
            raise backend.DeterminismUnavailable("--op-determinism on: planted refusal; use --op-determinism auto")

        def pytest_configure(config):
            for kind in backend.BACKENDS.values():
                kind.set_determinism = refuse
            session.Context.mnist = property(lambda self: tiny_data())
        """,
        test_needs_runs=f"""
        import pytest
        from fixtures import recipes

        {marker}
        @pytest.mark.parametrize("i", range(2))
        def test_needs_runs(runs, i):
            pass
        """,
    )
    result = pytester.runpytest_subprocess("-p", "refusing_gpu", "-p", "no:xdist", "--op-determinism", "on")
    result.assert_outcomes(errors=2)
    output = result.stdout.str()
    assert output.count("--op-determinism on: planted refusal; use --op-determinism auto") >= 2
    assert "Traceback" not in output and "raise backend.DeterminismUnavailable" not in output
