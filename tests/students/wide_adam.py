"""A second student's answer to "Improve the CNN to avoid overfitting" that plainly overfits: the fresh control.

Used as `--model improved_cnn=tests/students/wide_adam.py:build --first-seed 200`: the basic CNN made wider (32
filters, two 512-unit dense layers on the 5408 pooled features, 3M weights for 54,000 training images) with no
dropout and no weight penalty, trained with Adam for the improved CNN's 20 epochs. It played no part in choosing
the overfitting rules (issue 28): it was written after them and is graded on seeds 200-202, which no rule test or
earlier run used. (Its first version, the notebook's SGD instead of Adam and one dense layer, graded on seeds
100-102, overfit only mildly: lowest at epochs 7-11, +12% to +15%, and was inconclusive; the README says so.)
"""

import keras
from keras import layers

OPTIMIZER = {"class_name": "Adam", "config": {"learning_rate": 0.001}}


def build() -> keras.Model:
    """Conv2D 32 ReLU -> MaxPool 2 -> Flatten -> Dense 512 ReLU -> Dense 512 ReLU -> Dense 10 softmax."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu", padding="valid"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="student_wide_adam",
    )
