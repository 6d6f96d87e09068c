"""A second student's answer to "Improve the CNN to avoid overfitting" that plainly overfits: the fresh positive control.

Used as `--model improved_cnn=tests/students/wide_sgd.py:build --first-seed 100`: the basic CNN made wider (32
filters, a 512-unit dense layer on the 5408 pooled features, 2.8M weights for 54,000 training images) with no
dropout and no weight penalty, trained by the notebook's own SGD (no OPTIMIZER: lr 0.01, momentum 0.9,
Nesterov) for the improved CNN's 20 epochs. It played no part in choosing the overfitting rules (issue 28): it was
written after them and is graded on seeds 100-102, which no rule test or earlier run used.
"""

import keras
from keras import layers


def build() -> keras.Model:
    """Conv2D 32 ReLU -> MaxPool 2 -> Flatten -> Dense 512 ReLU -> Dense 10 softmax."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu", padding="valid"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="student_wide_sgd",
    )
