"""A planted bad submission: a builder that never returns (the class command's wall-time limit must end it)."""

import time


def build():
    """Loops forever, as a builder stuck in a `while` loop would."""
    while True:
        time.sleep(0.1)
