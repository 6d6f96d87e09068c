"""A student's answer to "Improve the CNN to avoid overfitting" that plainly overfits: the positive control.

Used as `--model improved_cnn=tests/students/overfit.py:build`: no dropout, no weight penalty, a wide
dense head (1024 units on the 2704 pooled features, 2.8M weights for 54,000 training images) and Adam,
which fits the training set within a few epochs and then memorises it. `improved-no-overfit` must
refute it. Written in the layout of the notebook's basic CNN (each Conv2D and Dense followed by a
separate Activation layer), so the analysis claims see that layout on a student's model too.
"""

import keras
from keras import layers

OPTIMIZER = {"class_name": "Adam", "config": {"learning_rate": 0.001}}


def build() -> keras.Model:
    """Conv2D 16 -> ReLU -> MaxPool 2 -> Flatten -> Dense 1024 -> ReLU -> Dense 10 -> softmax."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, (3, 3), padding="valid"),
            layers.Activation("relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dense(1024),
            layers.Activation("relu"),
            layers.Dense(10),
            layers.Activation("softmax"),
        ],
        name="student_overfit",
    )
