"""Dan: forgot the softmax, so the model outputs scores, not probabilities (the grader says what to fix)."""

import keras
from keras import layers


def build() -> keras.Model:
    """Conv2D 8 -> MaxPool -> Flatten -> Dense 10 (no activation)."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="dan",
    )
