"""A student's answer to "Improve the CNN": a small two-block CNN, cheap enough to train in the tests.

Used as `--model improved_cnn=tests/students/good.py:build`. Its first Conv2D, MaxPooling2D and
second Conv2D are where the analysis claims look for them, with other filter counts than the notebook's.
"""

import keras
from keras import layers


def build() -> keras.Model:
    """Conv2D 8 -> MaxPool 2 -> Conv2D 8 -> Flatten -> Dense 10 softmax, trained with the notebook's optimizer."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(8, (3, 3), activation="relu"),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        name="student_good",
    )
