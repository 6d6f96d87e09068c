"""A tiny model and synthetic MNIST-shaped data, so the store's tests train in a second.

Run as `python -m tests.tiny ROOT EPOCHS SEED` it asks a store at ROOT for one run and prints
the outcome as JSON, with the moments it asked and got it: that is how the tests start competing
or doomed processes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from fixtures.data import Mnist
from fixtures.models import INPUT_SHAPE, NUM_CLASSES, register_model, sgd
from fixtures.profiles import PROFILES
from fixtures.runs import RunStore


@register_model("tiny", optimizer=sgd(0.05))
def tiny() -> keras.Model:
    """Two conv filters and a softmax: enough to have a real training history."""
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Conv2D(2, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((4, 4)),
            keras.layers.Flatten(),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )


def tiny_data(n_train: int = 400, n_test: int = 100) -> Mnist:
    """Random images whose label is readable from their brightness, so loss really falls."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n_train + n_test).astype(np.uint8)
    images = rng.integers(0, 60, (n_train + n_test, 28, 28)) + labels[:, None, None] * 20
    images = images.astype(np.uint8)
    return Mnist(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], source="synthetic")


def tiny_store(root: Path) -> RunStore:
    """A store over the tiny data with the notebook profile and deterministic ops."""
    return RunStore(root, tiny_data(), PROFILES["notebook"], deterministic=True)


if __name__ == "__main__":
    root, epochs, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    store = tiny_store(root)
    spec = store.spec("tiny", batch_size=32, epochs=epochs, seed=seed)
    requested = time.time()
    run = store.get(spec)
    print(
        json.dumps(
            {
                "key": run.spec.key,
                "source": run.source,
                "history": run.history,
                "keras_backend": run.spec.versions["keras_backend"],
                "environment": run.environment,
                "requested": requested,
                "obtained": time.time(),
            }
        )
    )
