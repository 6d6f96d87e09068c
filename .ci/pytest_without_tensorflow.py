"""Run pytest (arguments as given) where no process can import TensorFlow: proves a JAX or PyTorch
session never needs it. Usage: `python .ci/pytest_without_tensorflow.py claims -n 2 ...`.
"""

import os
import sys
from pathlib import Path

BLOCKER = Path(__file__).resolve().parent / "no_tensorflow"  # its sitecustomize blocks the import

if __name__ == "__main__":
    path = os.pathsep.join(p for p in (str(BLOCKER), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[1:]], env)
