"""Ada: the notebook's basic-CNN layout (separate Activation layers), made small: 4 filters, 32 hidden units."""

import keras
from keras import layers


def build() -> keras.Model:
    """Conv2D 4 -> ReLU -> MaxPool 2 -> Flatten -> Dense 32 -> ReLU -> Dense 10 -> softmax, the notebook's SGD."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, (3, 3)),
            layers.Activation("relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dense(32),
            layers.Activation("relu"),
            layers.Dense(10),
            layers.Activation("softmax"),
        ],
        name="ada",
    )
