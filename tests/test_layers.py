"""The analysis claims follow the layer graph: a Conv2D followed by its own Activation('relu') layer (the notebook's
basic CNN) has ReLU maps at that layer's output, and pooling them counts as pooling the conv's maps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from keras import layers

from claims import test_analysis as analysis
from fixtures import models

REPO = Path(__file__).resolve().parent.parent
BASIC_LAYOUT = REPO / "tests" / "students" / "overfit.py"  # the basic CNN's layout, a wide dense head
MNIST = REPO / os.environ.get("MNIST_DIR", "../shared/data/mnist")  # an absolute MNIST_DIR wins


def two_blocks(activation: str, between: list | None = None) -> keras.Model:
    """Two conv blocks in the basic CNN's style: each Conv2D linear, then its own activation layer."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, (3, 3)),
            layers.Activation(activation),
            *(between or []),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(4, (3, 3)),
            layers.ReLU(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )


def test_notebook_models_layouts():
    improved, basic = models.improved_cnn(), models.basic_cnn()
    assert models.find_layers(improved) == models.ConvLayout(0, 1, 3)
    assert models.activated(improved, 0) == (0, "relu") and models.activated(improved, 3) == (3, "relu")
    assert models.find_layers(basic) == models.ConvLayout(0, 2, None)  # its pooling takes the Activation's output
    assert models.activated(basic, 0) == (1, "relu")
    assert analysis.relu_missing(basic, 0) is None


def test_separate_activation_layers_count_and_pooling_follows_them():
    model = two_blocks("relu")
    assert models.find_layers(model) == models.ConvLayout(0, 2, 3)
    assert models.activated(model, 0) == (1, "relu") and models.activated(model, 3) == (4, "relu")
    assert models.find_layers(two_blocks("relu", [layers.Dropout(0.5)])).pool1 == 3  # through a Dropout


def test_what_is_not_a_relu_conv_says_why():
    model = two_blocks("tanh")
    assert models.activated(model, 0) == (1, "tanh")
    assert "activation 'tanh', not 'relu'" in analysis.relu_missing(model, 0)
    capped = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, (3, 3)), layers.ReLU(max_value=6.0)])
    assert "relu with a cap" in analysis.relu_missing(capped, 0)
    normed = two_blocks("relu", [layers.BatchNormalization()])  # the pooling takes BN's output, not the maps
    layout = models.find_layers(normed)
    assert layout.pool1 is None and "MaxPooling2D layer that pools its first Conv2D's maps" in layout.missing("pool1")


def test_functional_branches_follow_the_graph_not_the_list_order():
    inputs = keras.Input((28, 28, 1))
    conv = layers.Conv2D(4, (3, 3))(inputs)
    side = layers.MaxPooling2D((2, 2))(layers.Conv2D(4, (3, 3))(inputs))  # pools another conv's output
    maps = layers.Activation("relu")(conv)
    pooled = layers.MaxPooling2D((2, 2))(maps)
    out = layers.Dense(10, activation="softmax")(
        layers.Concatenate()([layers.Flatten()(pooled), layers.Flatten()(side)])
    )
    model = keras.Model(inputs, out)
    layout = models.find_layers(model)
    assert model.layers[layout.pool1].input is maps
    assert models.activated(model, layout.conv1)[1] == "relu"


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").is_file(), reason=f"real MNIST not found in {MNIST}")
def test_a_student_in_the_basic_cnn_layout_gets_the_feature_map_claims(tmp_path: Path):
    """The issue's case: a student's model laid out as the notebook's basic CNN skipped feature-maps-are-filters
    and pooling-maps ("activation 'linear', not 'relu'"); now both decide, and deeper-features-specific skips for
    the reason that applies (one conv layer). Smoke profile, one seed: a few seconds of training."""
    evidence = tmp_path / "evidence"
    command = [
        *(sys.executable, "-m", "pytest", "claims", "-p", "no:cacheprovider", "-p", "no:randomly", "-rs"),
        *("-k", "feature-maps-are-filters or pooling-maps or deeper-features-specific"),
        *("--model", f"improved_cnn={BASIC_LAYOUT}:build", "--seeds", "1", "--claims-profile", "smoke"),
        *("--claims-cache", str(tmp_path / "cache"), "--claims-evidence", str(evidence), "--mnist-dir", str(MNIST)),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert "the model has no second Conv2D layer" in result.stdout, result.stdout[-3000:]
    claims = {c["id"]: c for c in json.loads((evidence / "evidence.json").read_text())["claims"]}
    assert sorted(claims) == ["feature-maps-are-filters", "pooling-maps"]
    assert {c["verdict"] for c in claims.values()} == {"holds"}, result.stdout[-3000:]
    assert claims["feature-maps-are-filters"]["measured"]["per_seed"][0]["shape"] == [1, 26, 26, 16]
