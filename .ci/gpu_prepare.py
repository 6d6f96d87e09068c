"""Prepare a checkout for a GPU machine without internet (README: "A GPU run in one command"): run here, once.

    MNIST_DIR=/path/to/mnist python .ci/gpu_prepare.py

It writes two ignored folders that travel with the checkout (45.3 MiB together on 2026-12-02: 34.2 MiB of
31 wheels, 11.1 MiB of MNIST; it prints both sizes):

- `.gpu-wheels/`: the wheels of everything the suite imports that a Python 3.12 image with JAX (and PyTorch)
  but neither TensorFlow nor Keras may lack: Keras and its own dependencies (namex, optree, h5py, absl-py,
  rich, ...), pytest with xdist, filelock, platformdirs, jinja2 and matplotlib, each at the version this
  environment runs (so the GPU run uses the releases the suite is tested with), fetched by
  `pip download --only-binary=:all: --python-version 3.12` for manylinux x86-64. NumPy, SciPy and ml_dtypes
  are not brought: JAX depends on them, so the image has them.
- `.gpu-data/mnist/`: the four MNIST IDX files, so that the run needs no ../shared.

`.ci/gpu_run.py` installs from `.gpu-wheels/` only what the image lacks or has older, into `.gpu-site/`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".gpu-wheels"
DATA = ROOT / ".gpu-data" / "mnist"
DISTRIBUTIONS = (
    # Keras and what it needs besides NumPy and ml_dtypes
    "keras",
    "namex",
    "optree",
    "typing-extensions",
    "h5py",
    "absl-py",
    "rich",
    "markdown-it-py",
    "mdurl",
    "pygments",
    "packaging",
    # the suite and its report
    "pytest",
    "pluggy",
    "iniconfig",
    "pytest-xdist",
    "execnet",
    "filelock",
    "platformdirs",
    "jinja2",
    "markupsafe",
    "matplotlib",
    "contourpy",
    "cycler",
    "fonttools",
    "kiwisolver",
    "pillow",
    "pyparsing",
    "python-dateutil",
    "six",
    "tzdata",
    "psutil",  # a dependency of the project since the class command (its memory limit)
    # nbformat (notebooks as submissions) and what it needs
    "nbformat",
    "fastjsonschema",
    "jsonschema",
    "jsonschema-specifications",
    "referencing",
    "rpds-py",
    "attrs",
    "jupyter-core",
    "traitlets",
)
"""Every distribution the wheel folder holds: the suite's imports and their dependency closure, less FROM_JAX."""
FROM_JAX = ("numpy", "scipy", "ml-dtypes")
"""What the image has because JAX requires it, and the wheels need: not brought (NumPy and SciPy alone are 50 MiB)."""
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def download_wheels(python_version: str) -> None:
    """`pip download` each distribution at this environment's version, as a binary wheel for the GPU image, into
    a fresh folder (so that no earlier preparation's versions linger)."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in DISTRIBUTIONS]
    shutil.rmtree(WHEELS, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", python_version, "--implementation", "cp", "--dest", str(WHEELS)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run([*command, *pins], check=True)


def copy_mnist(source: Path) -> None:
    """The four IDX files (the loader checks their published checksums when the run reads them)."""
    missing = [f for f in MNIST_FILES if not (source / f).is_file()]
    if missing:
        sys.exit(f"MNIST: {source} lacks {', '.join(missing)} (set MNIST_DIR to the folder of the four IDX files)")
    DATA.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        shutil.copyfile(source / name, DATA / name)


def size_mib(folder: Path) -> float:
    """The bytes of the files under `folder`, in MiB: what the folder adds to the checkout that travels."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--mnist-dir", type=Path, default=os.environ.get("MNIST_DIR") or ROOT.parent / "shared/data/mnist"
    )
    parser.add_argument("--python-version", default="3.12", help="the GPU image's Python (default 3.12)")
    args = parser.parse_args()
    download_wheels(args.python_version)
    copy_mnist(Path(args.mnist_dir))
    print(f"{WHEELS.relative_to(ROOT)}: {len(list(WHEELS.glob('*.whl')))} wheels, {size_mib(WHEELS):.1f} MiB")
    print(f"{DATA.relative_to(ROOT)}: {size_mib(DATA):.1f} MiB")


if __name__ == "__main__":
    main()
