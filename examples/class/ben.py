"""Ben: a small two-block CNN with dropout, trained with Adam instead of the notebook's SGD."""

import keras
from keras import layers

OPTIMIZER = {"class_name": "Adam", "config": {"learning_rate": 0.001}}


def build() -> keras.Model:
    """Conv2D 8 -> MaxPool -> Conv2D 16 -> MaxPool -> Dropout 0.25 -> Flatten -> Dense 10 softmax."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(16, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        name="ben",
    )
