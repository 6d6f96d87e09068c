"""Notebook submissions: the example notebooks extracted in a child, the model rule, broken notebooks, the reported
accuracy and its verdict, and a notebook graded with the same architecture and optimizer as its .py twin."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from fixtures import notebooks, sandbox
from fixtures.submissions import SubmissionError, load

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "class"


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic mnist.npz (load_data serves it to the notebooks)."""
    directory = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": np.zeros((32_000, 28, 28), np.uint8),  # fay.ipynb looks at training image 31727
        "y_train": rng.integers(0, 10, 32_000, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (32, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 32, dtype=np.uint8),
    }
    np.savez(directory / "mnist.npz", **arrays)
    return directory


def write(path: Path, *sources: str, tags: dict[int, list[str]] | None = None) -> Path:
    """A notebook of one markdown cell, then one code cell per source (cell n + 2 is sources[n])."""
    cells = [new_markdown_cell("# test")] + [new_code_cell(s) for s in sources]
    for n, t in (tags or {}).items():
        cells[n - 1].metadata["tags"] = t
    nbformat.write(new_notebook(cells=cells), path)
    return path


def extract(path: Path, mnist_dir: Path, variable: str = "") -> notebooks.Extraction:
    return notebooks.extract(path, variable, str(mnist_dir), path.parent / "cache")


def architecture(submission: Any) -> list[list[Any]]:
    """Layer classes and configs without names or input layers (a functional model lists its input): what two equal
    architectures share."""
    layers = [x for x in submission.builder().layers if not isinstance(x, keras.layers.InputLayer)]
    return [[type(x).__name__, {k: v for k, v in x.get_config().items() if k != "name"}] for x in layers]


def optimizer_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config Keras rebuilds from `config` (defaults filled in, float32 learning rate), without the name Keras
    numbers per process (adam, adam_1, ...)."""
    rebuilt = keras.optimizers.serialize(keras.optimizers.deserialize(copy.deepcopy(config)))["config"]
    return {k: v for k, v in rebuilt.items() if k != "name"}


# --- the example notebooks, extracted in the child ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "twin", "variable", "cell", "errors"),
    [
        ("eve", "ben.py:build", "model", 9, [(7, "KeyError"), (12, "KeyError")]),
        ("fay", "ada.py:build", "model", 4, [(7, "KeyError")]),
        ("gus", "ben.py:build", "cnn", 5, [(6, "FileNotFoundError"), (8, "KeyError")]),
    ],
)
def test_example_notebook_gives_its_twins_architecture_and_optimizer(
    name: str, twin: str, variable: str, cell: int, errors: list[tuple[int, str]], mnist_dir: Path, tmp_path: Path
) -> None:
    """Each example layout: the right model, its cell, the errors after it listed, the twin's config."""
    path = tmp_path / f"{name}.ipynb"
    path.write_bytes((EXAMPLES / f"{name}.ipynb").read_bytes())
    submission = load(str(path), mnist_dir=str(mnist_dir), cache=tmp_path / "cache")
    chosen = submission.record["chosen"]
    assert (chosen["variable"], chosen["cell"]) == (variable, cell)
    assert [(e["cell"], e["type"]) for e in submission.record["errors"]] == errors
    assert submission.record["seconds"] > 0
    python = load(str(EXAMPLES / twin))
    assert architecture(submission) == architecture(python)
    expected = python.optimizer or {
        "class_name": "SGD",
        "config": {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True},
    }
    assert optimizer_config(submission.optimizer) == optimizer_config(expected)


@pytest.mark.slow
def test_the_fit_settings_are_recorded_not_used(mnist_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "gus.ipynb"
    path.write_bytes((EXAMPLES / "gus.ipynb").read_bytes())
    record = extract(path, mnist_dir).record
    fit = record["chosen"]["fit"]
    assert (fit["epochs"], fit["batch_size"], fit["validation_split"]) == (30, 128, 0.1)
    assert fit["callbacks"] == ["EarlyStopping(monitor=val_loss, patience=3, restore_best_weights)"]
    assert "not used" in record["fit_note"] and "20 epochs" in record["fit_note"]
    assert record["reported"] == {"value": 0.9887, "cell": 7, "text": "Test accuracy: 98.87%"}


@pytest.mark.slow
def test_a_model_cell_that_raises_is_one_line(mnist_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "hal.ipynb"
    path.write_bytes((EXAMPLES / "hal.ipynb").read_bytes())
    with pytest.raises(SubmissionError) as error:
        load(str(path), mnist_dir=str(mnist_dir), cache=tmp_path / "cache")
    line = str(error.value)
    assert "\n" not in line
    assert "cell 4 raised ValueError: Unrecognized keyword arguments passed to Dense" in line
    assert "never fitted, not compiled" in line and "--notebook-model" in line


@pytest.mark.slow
def test_the_extraction_is_cached(mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path / "a.ipynb", "import keras\nfrom keras import layers", SMALL.format("m", 4), "m.fit(epochs=3)"
    )
    first = extract(path, mnist_dir).record
    monkeypatch.setattr(notebooks, "run_child", lambda *a: pytest.fail("extracted again"))
    second = extract(path, mnist_dir).record
    assert first == second and first["chosen"]["fit"]["epochs"] == 3


@pytest.mark.slow
def test_a_notebook_that_hangs_is_stopped(mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notebooks, "WALL_S", 2.0)
    path = write(tmp_path / "hang.ipynb", "import time\ntime.sleep(600)")
    with pytest.raises(notebooks.NotebookError, match="stopped: wall-time limit 2 s"):
        extract(path, mnist_dir)


def test_invalid_json_and_old_formats_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(notebooks.NotebookError, match="not a notebook: invalid JSON"):
        notebooks.extract(tmp_path / "bad.ipynb", cache=tmp_path)
    (tmp_path / "old.ipynb").write_text(json.dumps({"nbformat": 2, "worksheets": []}))
    with pytest.raises(notebooks.NotebookError, match="nbformat 2 is too old"):
        notebooks.extract(tmp_path / "old.ipynb", cache=tmp_path)


# --- the model rule, in this process (the child's tracker and fakes, without the child) ----------------------------

BASIC = (
    "basic = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(16, (3, 3)), layers.Activation('relu'), "
    "layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(100), layers.Activation('relu'), layers.Dense(10), "
    "layers.Activation('softmax')])\nbasic.compile(loss='categorical_crossentropy', optimizer='sgd')"
)
SMALL = (
    "{0} = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D({1}, 3, activation='relu'), layers.Flatten(), "
    "layers.Dense(10, activation='softmax')])\n{0}.compile(loss='categorical_crossentropy', optimizer='adam')"
)


def run_cells(
    monkeypatch: pytest.MonkeyPatch, *sources: str, variable: str = "", tags: dict[int, list[str]] | None = None
) -> dict[str, Any]:
    """Run `sources` as code cells 2, 3, ... with training disabled and return the choice's record."""
    tracker = sandbox.Tracker()
    monkeypatch.setattr(sandbox, "TRACKER", tracker)
    for name, fake in (
        ("fit", sandbox.fake_fit),
        ("evaluate", sandbox.fake_evaluate),
        ("predict", sandbox.fake_predict),
    ):
        monkeypatch.setattr(keras.Model, name, fake)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    setup = "import keras, numpy as np\nfrom keras import layers\nx = np.zeros((4, 28, 28, 1)); y = np.zeros((4, 10))"
    exec(setup, namespace)
    for n, source in enumerate(sources, 2):
        tracker.run({"cell": n, "source": source}, namespace)
    return sandbox.choose(tracker, namespace, variable, tags or {})


def test_the_last_fitted_model_that_is_not_a_baseline_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_cells(
        monkeypatch,
        BASIC,
        "basic.fit(x, y, epochs=10)",
        SMALL.format("better", 8),
        "better.fit(x, y, epochs=20)",
        SMALL.format("late", 4),  # built after, never fitted: no candidate
        "features = keras.Model(better.inputs, better.layers[0].output)",
    )
    assert (record["chosen"]["variable"], record["chosen"]["cell"]) == ("better", 4)
    assert "last model fitted (cell 5)" in record["chosen"]["why"]
    assert [m["baseline"] for m in record["models"]] == ["the basic CNN", "", "", ""]


def test_the_history_stays_empty_and_later_errors_are_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_cells(
        monkeypatch,
        SMALL.format("model", 8),
        "history = keras.callbacks.History()\nmodel.fit(x, y, callbacks=[history])",
        "print(history.history['loss'])",
        "score = model.evaluate(x, y)\np = model.predict(x)\nassert p.shape == (4, 10) and score == 0.0",
    )
    assert record["chosen"]["variable"] == "model"
    assert [(e["cell"], e["type"], e["message"], e["after_answer"]) for e in record["errors"]] == [
        (4, "KeyError", "'loss'", True)
    ]


def test_a_functional_basic_cnn_is_the_basic_cnn(monkeypatch: pytest.MonkeyPatch) -> None:
    functional = (
        "i = keras.Input((28, 28, 1))\nh = layers.MaxPooling2D((2, 2))(layers.Conv2D(16, (3, 3), activation='relu')(i))"
        "\nh = layers.Dense(100, activation='relu')(layers.Flatten()(h))\n"
        "basic = keras.Model(i, layers.Dense(10, activation='softmax')(h))"
    )
    record = run_cells(monkeypatch, functional)
    assert record["models"][0]["baseline"] == "the basic CNN"


def test_only_baselines_fitted_is_undecidable_with_the_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_cells(monkeypatch, BASIC, "basic.fit(x, y)", SMALL.format("other", 8))
    assert record["chosen"] is None
    problem = record["problem"]
    assert problem.startswith("cannot tell which model is the answer: only the notebook's basic CNN or MLP was fitted")
    assert "basic (cell 2: 8 layers, 271,670 params, fitted in cell 3, the basic CNN)" in problem
    assert "other (cell 4: 3 layers, 54,170 params, never fitted)" in problem
    assert "--notebook-model VAR" in problem and "'answer'" in problem


def test_the_instructor_names_the_variable_or_tags_the_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = (SMALL.format("a", 8), SMALL.format("b", 4), "a.fit(x, y)\nb.fit(x, y)")
    assert run_cells(monkeypatch, *cells, variable="a")["chosen"]["variable"] == "a"
    assert run_cells(monkeypatch, *cells, tags={2: ["answer"]})["chosen"]["variable"] == "a"
    assert run_cells(monkeypatch, *cells)["chosen"]["variable"] == "b"
    assert run_cells(monkeypatch, *cells, variable="c")["problem"].startswith("no model named 'c' after the last cell")


def test_no_model_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_cells(monkeypatch, "print('hello')", "1 / 0")
    assert (
        record["problem"]
        == "no Keras model was built: nothing to grade (cell 3 raised ZeroDivisionError: division by zero)"
    )


def test_magics_and_shell_lines_are_dropped() -> None:
    assert sandbox.python_source("%matplotlib inline\n!pip install x\nimport os") == "pass\npass\nimport os"
    assert sandbox.python_source("%%bash\nls") is None
    assert sandbox.python_source("%%time\nx = 1") == "x = 1"


# --- what the student reported --------------------------------------------------------------------------------------


def cell(source: str, text: str) -> Any:
    return new_code_cell(source, outputs=[new_output("stream", name="stdout", text=text)])


@pytest.mark.parametrize(
    ("source", "text", "value"),
    [
        (
            "print('Test accuracy:', score[1])",
            "Test loss: 0.02\nTest accuracy: 0.9937000274658203\n",
            0.9937000274658203,
        ),
        ("print(f'{acc:.2%}')", "test_acc = 98.87%\n", 0.9887),
        ("model.evaluate(X_test, T_test)", "313/313 - 1s - accuracy: 0.9911 - loss: 0.0300\n", 0.9911),
        ("model.evaluate(X_test, T_test)", "[0.030123, 0.9905]\n", 0.9905),
        ("model.fit(X, T)", "accuracy: 0.9990 - val_accuracy: 0.9890\n", None),  # a training log is no test result
    ],
)
def test_reported_accuracy_is_read_from_the_saved_outputs(source: str, text: str, value: float | None) -> None:
    reported = notebooks.reported_accuracy(new_notebook(cells=[new_markdown_cell("x"), cell(source, text)]))
    assert (reported and reported["value"]) == value
    if value is not None:
        assert reported["cell"] == 2


def test_reported_against_measured() -> None:
    measured = [0.9925, 0.9923, 0.9928]
    inside = notebooks.compare_reported(0.9930, measured, 10_000)
    assert inside["verdict"] == "consistent" and inside["interval"][0] < 0.9925 < inside["interval"][1]
    assert inside["text"].startswith("reported 0.9930; measured 0.9925 [")
    assert notebooks.compare_reported(0.9990, measured, 10_000)["verdict"] == "not reproduced"
    # the binomial error of 10,000 images keeps agreeing seeds from giving a zero-width interval
    low, high = notebooks.compare_reported(0.99, [0.99, 0.99, 0.99], 10_000)["interval"]
    assert 0.003 < high - low < 0.005


def test_the_class_row_shows_what_the_extraction_found(tmp_path: Path) -> None:
    from fixtures.records import ClaimRecord, Session
    from reports.evidence import Evidence
    from reports.grading.table import notebook_notes

    record = {
        "chosen": {"variable": "model", "cell": 4, "why": "the last model fitted (cell 5) that is not ..."},
        "seconds": 7.9,
        "network": "none (unshare -rn)",
        "fit_note": "the student's fit (cell 5): 14 epochs; not used",
        "errors": [{"cell": 7, "type": "KeyError", "message": "'loss'"}],
        "reported": {"value": 0.9937, "cell": 6, "text": "Test accuracy: 0.9937"},
    }
    against = notebooks.compare_reported(0.9937, [0.9812, 0.9766, 0.9825], 10_000)
    claims = [ClaimRecord("improved-99", measured={"reported": against})]
    session = Session(submissions={"improved_cnn": record})
    lines = notebook_notes(Evidence(tmp_path / "evidence.json", session, [], claims))
    assert lines[0] == (
        "notebook: model from cell 4 (the last model fitted (cell 5) that is not ...); extracted in 7.9 s, "
        "network none (unshare -rn)"
    )
    assert lines[2] == "cells that raised with training disabled, and the run went on: cell 7 KeyError: 'loss'"
    assert lines[3] == "reported test accuracy 0.9937 (cell 6)"
    assert lines[4].startswith("improved-99: reported 0.9937; measured 0.9801 [") and lines[4].endswith(
        "not reproduced"
    )


@pytest.mark.slow
def test_a_notebook_in_a_smoke_session(tmp_path: Path) -> None:
    """`pytest claims --model improved_cnn=fay.ipynb` at the smoke profile: the extraction goes into the session's
    evidence and improved-99 sets the reported accuracy against its measured one."""
    mnist = Path(os.environ.get("MNIST_DIR", "/work/shared/data/mnist"))
    if not mnist.is_dir():
        pytest.skip(f"real MNIST not found in {mnist}")
    command = [sys.executable, "-m", "pytest", "claims", "-k", "improved-99", "--seeds", "1", "-p", "no:cacheprovider"]
    options = ["--claims-profile", "smoke", "--mnist-dir", str(mnist), "--claims-cache", str(tmp_path / "cache")]
    evidence = tmp_path / "evidence"
    model = f"improved_cnn={EXAMPLES / 'fay.ipynb'}"
    done = subprocess.run(
        [*command, *options, "--claims-evidence", str(evidence), "--model", model],
        cwd=EXAMPLES.parent.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    document = json.loads((evidence / "evidence.json").read_text())
    record = document["session"]["submissions"]["improved_cnn"]
    assert (record["chosen"]["variable"], record["chosen"]["cell"]) == ("model", 4)
    (claim,) = document["claims"]
    against = claim["measured"]["reported"]
    assert against["reported"] == record["reported"]["value"] and against["verdict"] in ("consistent", "not reproduced")
    assert against["text"] in claim["summary"]


def test_only_what_follows_the_answers_cell_is_its_reported_accuracy() -> None:
    cells = [cell("print(score[1])", "Test accuracy: 0.9837\n"), new_code_cell("model = better()")]
    notebook = new_notebook(cells=cells)
    assert notebooks.reported_accuracy(notebook)["value"] == 0.9837
    assert notebooks.reported_accuracy(notebook, after=2) is None
