"""A planted bad submission: valid when validated, then allocating far too much once its session trains it.

Its first call in a process (the validation's, and the session's own check) builds a small valid CNN;
every later call (the training) first holds up to 8 GiB of touched memory, in 256 MiB steps, so that the
class command's memory limit ends the session. Bounded, so that a grader without the limit leaves the
machine alive.
"""

import time

import keras
import numpy as np
from keras import layers

CALLS = 0
HOG_STEPS = 32
STEP_BYTES = 256 * 2**20


def build() -> keras.Model:
    """A small CNN on the first call; later calls allocate up to HOG_STEPS x STEP_BYTES first, then wait."""
    global CALLS
    CALLS += 1
    if CALLS > 1:
        held = []
        for _ in range(HOG_STEPS):
            held.append(np.ones(STEP_BYTES // 8))
            time.sleep(0.05)
        time.sleep(600)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
