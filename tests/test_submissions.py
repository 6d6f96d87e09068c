"""Students' own models: every bad submission gives its one clear error, good ones replace the notebook's
model with run keys of their own, and `--model` reaches all of it from the command line."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from fixtures import models
from fixtures.runspec import RunSpec
from fixtures.submissions import Submission, SubmissionError, load, price, student_spec
from tests.planted import claims_project
from tests.tiny import tiny_store

GOOD = Path(__file__).resolve().parent / "students" / "good.py"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies of the model registry, so a test's replacements end with it."""
    for name in ("MODELS", "OPTIMIZERS", "SOURCES", "SUBMISSIONS"):
        monkeypatch.setattr(models, name, dict(getattr(models, name)))


def builder_file(tmp_path: Path, body: str, name: str = "student.py") -> Path:
    path = tmp_path / name
    path.write_text("import keras\nfrom keras import layers\n\n" + body)
    return path


def small(input_shape: str = "(28, 28, 1)", classes: int = 10, last: str = "softmax") -> str:
    return (
        f"def build():\n    return keras.Sequential([keras.Input({input_shape}), layers.Flatten(), "
        f"layers.Dense({classes}, activation='{last}')])\n"
    )


def error_of(source: str | Path) -> str:
    with pytest.raises(SubmissionError) as raised:
        load(str(source))
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- each bad case, one clear line ---------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert error_of(f"{tmp_path}/nobody.py:build") == f"{tmp_path}/nobody.py: no such file; check the path"


def test_suffix_other_than_py_keras_or_ipynb(tmp_path: Path) -> None:
    (tmp_path / "model.h5").write_bytes(b"\x89HDF")
    expected = "not a submission; give path/to/file.py:function, path/to/model.keras or path/to/notebook.ipynb"
    assert expected in error_of(tmp_path / "model.h5")


def test_missing_function(tmp_path: Path) -> None:
    path = builder_file(tmp_path, small().replace("def build", "def make"))
    assert error_of(f"{path}:build") == (
        f"{path}: has no function 'build' (it defines ['make']); name the builder after the colon"
    )


def test_py_without_function_name(tmp_path: Path) -> None:
    path = builder_file(tmp_path, small())
    assert "no builder function named; give" in error_of(path)


def test_import_that_raises(tmp_path: Path) -> None:
    path = builder_file(tmp_path, "import no_such_module_here\n" + small())
    assert "importing it raised ModuleNotFoundError: No module named 'no_such_module_here'; fix the file" in error_of(
        f"{path}:build"
    )


def test_function_that_raises(tmp_path: Path) -> None:
    path = builder_file(tmp_path, "def build():\n    raise RuntimeError('not finished')\n")
    assert error_of(f"{path}:build") == f"{path}: the builder raised RuntimeError: not finished; fix the builder"


def test_function_returning_no_model(tmp_path: Path) -> None:
    path = builder_file(tmp_path, "def build():\n    return None\n")
    assert "the builder returned NoneType, not a keras.Model" in error_of(f"{path}:build")


def test_wrong_input_shape(tmp_path: Path) -> None:
    path = builder_file(tmp_path, small(input_shape="(32, 32, 3)"))
    assert error_of(f"{path}:build") == (
        f"{path}: the model takes input (32, 32, 3), not (28, 28, 1); use keras.Input((28, 28, 1))"
    )


def test_no_defined_input(tmp_path: Path) -> None:
    path = builder_file(tmp_path, "def build():\n    return keras.Sequential([layers.Flatten(), layers.Dense(10)])\n")
    assert "the model has no defined input; start it with keras.Input((28, 28, 1))" in error_of(f"{path}:build")


def test_wrong_output_shape(tmp_path: Path) -> None:
    path = builder_file(tmp_path, small(classes=9))
    assert error_of(f"{path}:build") == (
        f"{path}: the model outputs (9,), not (10,); end it with Dense(10, activation='softmax')"
    )


def test_logits_instead_of_probabilities(tmp_path: Path) -> None:
    path = builder_file(tmp_path, small(last="linear"))
    assert "outputs are not probabilities" in error_of(f"{path}:build")


def test_bad_optimizer(tmp_path: Path) -> None:
    path = builder_file(tmp_path, "OPTIMIZER = {'class_name': 'NoSuchOptimizer', 'config': {}}\n" + small())
    assert "OPTIMIZER is not a Keras optimizer config" in error_of(f"{path}:build")


def test_python_builder_with_lambda_layer(tmp_path: Path) -> None:
    body = (
        "def build():\n    return keras.Sequential([keras.Input((28, 28, 1)), layers.Lambda(lambda x: x * 2), "
        "layers.Flatten(), layers.Dense(10, activation='softmax')])\n"
    )
    assert "Keras cannot load this model back in safe_mode" in error_of(f"{builder_file(tmp_path, body)}:build")


def test_corrupt_keras_file(tmp_path: Path) -> None:
    (tmp_path / "noise.keras").write_bytes(b"not a zip archive at all")
    assert error_of(tmp_path / "noise.keras") == (
        f"{tmp_path}/noise.keras: not a readable .keras file; save the model again with model.save('noise.keras')"
    )
    truncated = tmp_path / "truncated.keras"
    keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    ).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    assert error_of(truncated).startswith(f"{truncated}: not a readable .keras file")


def test_keras_file_with_lambda_layer_is_refused_by_safe_mode(tmp_path: Path) -> None:
    path = tmp_path / "lambda.keras"
    keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Lambda(lambda x: x * 2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    ).save(path)
    message = error_of(path)
    assert message.startswith(f"{path}: contains code (a Lambda layer or a pickled function)")
    assert "safe_mode" in message and "replace it with built-in layers" in message


# --- good submissions --------------------------------------------------------------------------


def test_good_python_builder_and_its_hash(tmp_path: Path) -> None:
    good = load(f"{GOOD}:build")
    assert good.optimizer is None and len(good.digest) == 64
    assert load(f"{GOOD}:build").digest == good.digest  # the same file hashes the same
    copy = tmp_path / "good.py"
    copy.write_text(GOOD.read_text() + "\nOPTIMIZER = {'class_name': 'Adam', 'config': {'learning_rate': 0.001}}\n")
    adam = load(f"{copy}:build")
    assert adam.optimizer == {"class_name": "Adam", "config": {"learning_rate": 0.001}} and adam.digest != good.digest


def test_keras_file_gives_its_architecture_with_weights_from_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "student.keras"
    load(f"{GOOD}:build").builder().save(path)
    submission = load(str(path))
    weights = []
    for seed in (0, 0, 1):
        keras.utils.set_random_seed(seed)
        weights.append(submission.builder().layers[0].get_weights()[0])
    assert np.array_equal(weights[0], weights[1]) and not np.array_equal(weights[0], weights[2])
    assert [type(layer).__name__ for layer in submission.builder().layers] == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "Flatten",
        "Dense",
    ]
    assert load(str(path)).digest == submission.digest


# --- run keys ----------------------------------------------------------------------------------


NOTEBOOK_SPEC = dict(
    model="improved_cnn",
    model_config={},
    optimizer={"class_name": "SGD", "config": {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}},
    batch_size=64,
    epochs=20,
    validation_split=0.1,
    seed=0,
    data_fingerprint="ab" * 32,
    versions={"keras": "3.15.1", "keras_backend": "tensorflow", "tensorflow": "2.21.0"},
    profile="notebook",
    deterministic=True,
)


def test_notebook_keys_are_unchanged_by_the_model_source_field() -> None:
    """The key this spec had before RunSpec gained model_source (computed on main at 00057ce)."""
    spec = RunSpec(**NOTEBOOK_SPEC)
    assert spec.model_source == "" and spec.key == "943ef0a4eb7f8eac8644930b"
    assert dataclasses.replace(spec, model_source="0" * 64).key != spec.key


def test_students_get_run_keys_of_their_own(tmp_path: Path, registry: None) -> None:
    store = tiny_store(tmp_path)
    notebook = store.spec("improved_cnn", batch_size=64, epochs=20, seed=0)
    other = tmp_path / "other.py"
    other.write_text(GOOD.read_text().replace("Conv2D(8", "Conv2D(16"))
    keys = {}
    for source in (f"{GOOD}:build", f"{other}:build"):
        s: Submission = load(source)
        models.replace_model("improved_cnn", s.builder, s.optimizer, source, s.digest)
        spec = store.spec("improved_cnn", batch_size=64, epochs=20, seed=0)
        assert spec.model_source == s.digest and models.replaced("improved_cnn") == source
        keys[source] = spec.key
    assert len(set(keys.values())) == 2 and notebook.key not in keys.values()
    assert models.build("improved_cnn").layers[0].filters == 16  # the registry builds the last student's model


def test_a_run_rebuilds_with_the_students_builder(tmp_path: Path, registry: None) -> None:
    s = load(f"{GOOD}:build")
    models.replace_model("tiny", s.builder, s.optimizer, f"{GOOD}:build", s.digest)
    store = tiny_store(tmp_path)
    run = store.get(store.spec("tiny", batch_size=32, epochs=1, seed=0))
    initial = run.initial_model()
    assert initial.name == "student_good" and run.spec.label.startswith(f"tiny@{s.digest[:8]}")
    models.SOURCES["tiny"] = ""  # another builder registered now: rebuilding must refuse, not mix models
    with pytest.raises(RuntimeError, match="pass the same --model"):
        run.initial_model()


def test_find_layers_by_type() -> None:
    assert models.find_layers(models.improved_cnn()) == models.ConvLayout(0, 1, 3)
    assert models.find_layers(models.basic_cnn()) == models.ConvLayout(0, 2, None)
    layout = models.find_layers(models.mlp())
    assert (
        layout == models.ConvLayout(None, None, None)
        and layout.missing("conv1", "pool1") == "the model has no Conv2D layer"
    )


# --- the command line --------------------------------------------------------------------------


@pytest.mark.slow
def test_model_option_errors_are_one_usage_line(pytester: pytest.Pytester, tmp_path: Path) -> None:
    claims_project(pytester, test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--model", f"improved_cnn={tmp_path}/absent.py:build")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --model improved_cnn: {tmp_path}/absent.py: no such file; check the path"])
    result = pytester.runpytest_subprocess("--model", "resnet=x.py:build")
    result.stderr.fnmatch_lines(
        ["ERROR: --model resnet=x.py:build: expected NAME=SOURCE with NAME one of basic_cnn, improved_cnn, mlp"]
    )
    assert "Traceback" not in result.stderr.str()


# --- pricing a submission's session for the class's ETA --------------------------------------


def test_the_price_finds_the_students_runs_under_the_keys_its_session_gives_them(
    tmp_path: Path, registry: None
) -> None:
    """The class plan's specs are the notebook model's, as JSON; the validation child turns them into the student's
    (its optimizer, its digest) and finds them cached, so that a re-graded student is priced at no training."""
    store = tiny_store(tmp_path)
    planned = json.loads(json.dumps(dataclasses.asdict(store.spec("improved_cnn", batch_size=64, epochs=20, seed=0))))
    source = builder_file(
        tmp_path, small() + "\nOPTIMIZER = {'class_name': 'Adam', 'config': {'learning_rate': 0.001}}\n"
    )
    s = load(f"{source}:build")
    models.replace_model("improved_cnn", s.builder, s.optimizer, f"{source}:build", s.digest)
    session_spec = store.spec("improved_cnn", batch_size=64, epochs=20, seed=0)
    assert student_spec(RunSpec(**planned), s).key == session_spec.key != RunSpec(**planned).key
    store.cache.entry(session_spec.key).mkdir()
    request = {"model": "improved_cnn", "runs": [planned], "cache": str(store.cache.root), "steps_per_execution": 1}
    assert price(s, request) == {"cached": [True], "step_s": {}}  # nothing left to train: nothing timed


@pytest.mark.slow
def test_the_validation_child_times_the_students_step_against_the_notebook_models(tmp_path: Path) -> None:
    store = tiny_store(tmp_path / "runs")
    spec = dataclasses.asdict(store.spec("mlp", batch_size=32, epochs=1, seed=0))
    request = tmp_path / "request.json"
    out = tmp_path / "price.json"
    request.write_text(json.dumps({"model": "mlp", "runs": [spec], "cache": str(store.cache.root), "out": str(out)}))
    done = subprocess.run(
        [sys.executable, "-m", "fixtures.submissions", f"{GOOD}:build", "--price", str(request)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=240,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    priced = json.loads(out.read_text())
    assert priced["cached"] == [False] and priced["load_s"] > 0
    step_s = priced["step_s"]["32"]
    assert set(step_s) == {"student", "notebook"} and all(0 < s < 1 for s in step_s.values())
