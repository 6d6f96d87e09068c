"""Writes examples/class/cleo.keras, the example class's saved-model submission: `python examples/cleo.py PATH`."""

import sys

import keras
from keras import layers


def build() -> keras.Model:
    """Conv2D 6 -> MaxPool -> Flatten -> Dense 10 softmax: one conv block, no dropout."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(6, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        name="cleo",
    )


if __name__ == "__main__":
    build().save(sys.argv[1])
