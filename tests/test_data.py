"""Unit tests of fixtures.data on small synthetic IDX / npz files, plus a check of the real MNIST files."""

import gzip
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from fixtures.data import IDX_FILES, KERAS_NPZ_SHA256, MNIST_MD5, Mnist, MnistError, load_mnist
from tests.planted import claims_project

REPO = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 20, 10


def make_arrays(seed: int = 0) -> list[np.ndarray]:
    """x_train, t_train, x_test, t_test: random uint8 images, labels cycling through 0..9."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (N_TRAIN, N_TEST)]
    labels = [np.arange(N_TRAIN, dtype=np.uint8) % 10, np.arange(N_TEST, dtype=np.uint8) * 3 % 10]
    return [images[0], labels[0], images[1], labels[1]]


def idx_bytes(a: np.ndarray, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    """An IDX file of a uint8 array; magic and header dims can be overridden to forge a corrupt one."""
    dims = a.shape if dims is None else dims
    magic = (2051 if a.ndim == 3 else 2049) if magic is None else magic
    return struct.pack(f">{1 + len(dims)}I", magic, *dims) + a.tobytes()


def write_idx_dir(d: Path, arrays: list[np.ndarray] | None = None) -> Path:
    """Write the four IDX .gz files of `arrays` (default: make_arrays()) into d."""
    d.mkdir(parents=True, exist_ok=True)
    for name, a in zip(IDX_FILES, arrays or make_arrays(), strict=True):
        (d / name).write_bytes(gzip.compress(idx_bytes(a)))
    return d


def write_npz(path: Path, arrays: list[np.ndarray] | None = None, drop: str | None = None) -> Path:
    """Write a Keras-style mnist.npz, optionally without one key."""
    data = dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays or make_arrays(), strict=True))
    data.pop(drop, None)
    np.savez(path, **data)
    return path


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    return write_idx_dir(tmp_path / "mnist")


# --- valid data --------------------------------------------------------------------------------


def test_synthetic_idx_loads_with_raw_arrays_intact(idx_dir):
    m = load_mnist(idx_dir, verify=False)
    for got, want in zip((m.x_train_raw, m.t_train, m.x_test_raw, m.t_test), make_arrays(), strict=True):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert m.source == str(idx_dir) and m.checksums == {}
    assert not m.x_train_raw.flags.writeable


def test_preprocessing_is_the_notebooks(idx_dir):
    m = load_mnist(str(idx_dir), verify=False)
    assert m.X_train.shape == (N_TRAIN, 28, 28, 1) and m.X_test.shape == (N_TEST, 28, 28, 1)
    assert m.X_mean.shape == (28, 28, 1)
    assert {a.dtype for a in (m.X_mean, m.X_train, m.X_test, m.T_train, m.T_test)} == {np.dtype("float32")}
    np.testing.assert_allclose(m.X_train.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(m.X_mean[..., 0], m.x_train_raw.mean(axis=0) / 255, rtol=1e-5)
    np.testing.assert_allclose(m.X_train + m.X_mean, m.x_train_raw[..., None] / 255, atol=1e-6)
    np.testing.assert_allclose(m.X_test + m.X_mean, m.x_test_raw[..., None] / 255, atol=1e-6)
    for T, t in ((m.T_train, m.t_train), (m.T_test, m.t_test)):
        assert T.shape == (len(t), 10)
        np.testing.assert_array_equal(T.sum(axis=1), 1)
        np.testing.assert_array_equal(T.argmax(axis=1), t)
    assert m.X_train is m.X_train  # cached
    with pytest.raises(ValueError):
        m.X_train[0, 0, 0, 0] = 1  # shared cached arrays are read-only


def test_npz_file_and_directory_with_npz(tmp_path):
    path = write_npz(tmp_path / "mnist.npz")
    by_file, by_dir = load_mnist(path, verify=False), load_mnist(tmp_path, verify=False)
    assert by_file.source == by_dir.source == str(path)
    raw = (by_dir.x_train_raw, by_dir.t_train, by_dir.x_test_raw, by_dir.t_test)
    for got, want in zip(raw, make_arrays(), strict=True):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)
    assert by_file.fingerprint == by_dir.fingerprint


def test_directory_with_both_prefers_idx(idx_dir):
    write_npz(idx_dir / "mnist.npz", make_arrays(seed=1))
    m = load_mnist(idx_dir, verify=False)
    assert m.source == str(idx_dir)
    np.testing.assert_array_equal(m.x_train_raw, make_arrays()[0])


def test_fingerprint_stable_and_sensitive(tmp_path):
    a = load_mnist(write_idx_dir(tmp_path / "a"), verify=False)
    b = load_mnist(write_idx_dir(tmp_path / "b"), verify=False)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    arrays = make_arrays()
    arrays[2][3, 14, 14] ^= 1  # one test pixel
    assert load_mnist(write_idx_dir(tmp_path / "c", arrays), verify=False).fingerprint != a.fingerprint


def test_subset(idx_dir):
    m = load_mnist(idx_dir, verify=False)
    s = m.subset(6, 4)
    assert s.x_train_raw.shape == (6, 28, 28) and s.t_train.shape == (6,)
    assert s.x_test_raw.shape == (4, 28, 28) and s.T_test.shape == (4, 10)
    assert s.X_train.shape == (6, 28, 28, 1) and s.X_mean.shape == (28, 28, 1)
    np.testing.assert_array_equal(s.x_train_raw, m.x_train_raw[:6])
    assert s.fingerprint != m.fingerprint and "[first 6/4]" in s.source and str(idx_dir) in s.source
    with pytest.raises(ValueError):
        m.subset(N_TRAIN + 1, 1)


# --- verification ------------------------------------------------------------------------------


def test_verify_rejects_modified_idx_files(idx_dir):
    with pytest.raises(MnistError) as e:
        load_mnist(idx_dir)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and MNIST_MD5["train-images-idx3-ubyte.gz"] in msg
    assert "--mnist-no-verify" in msg and "MNIST_NO_VERIFY=1" in msg


def test_verify_rejects_modified_npz(tmp_path):
    path = write_npz(tmp_path / "mnist.npz")
    with pytest.raises(MnistError, match="mnist.npz") as e:
        load_mnist(path)
    assert KERAS_NPZ_SHA256 in str(e.value) and "--mnist-no-verify" in str(e.value)


# --- errors: each one MnistError naming the path and saying what to do ---------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(MnistError) as e:
        load_mnist(tmp_path / "nowhere", verify=False)
    assert str(tmp_path / "nowhere") in str(e.value) and "--mnist-dir" in str(e.value)


def test_missing_file_lists_missing_and_expected(idx_dir):
    (idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MnistError) as e:
        load_mnist(idx_dir, verify=False)
    msg = str(e.value)
    assert str(idx_dir) in msg and "lacks t10k-labels-idx1-ubyte.gz" in msg
    assert all(name in msg for name in IDX_FILES) and "mnist.npz" in msg and "--mnist-dir" in msg


def corrupt(d: Path, name: str, data: bytes, compress: bool = True) -> None:
    (d / name).write_bytes(gzip.compress(data) if compress else data)


X_TR, T_TR, X_TE, T_TE = make_arrays()
CORRUPTIONS = {  # name: (file, new content, gzip it?, expected words in the message)
    "truncated gzip": ("train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(X_TR))[:2000], False, "gzip"),
    "not gzip": ("train-labels-idx1-ubyte.gz", b"not a gzip file at all", False, "gzip"),
    "empty": ("t10k-labels-idx1-ubyte.gz", b"", True, "header"),
    "wrong magic": ("t10k-images-idx3-ubyte.gz", idx_bytes(X_TE, magic=2049), True, "magic number is 2049"),
    "labels magic": ("train-labels-idx1-ubyte.gz", idx_bytes(T_TR, magic=2051), True, "expected 2049"),
    "wrong dims": ("train-images-idx3-ubyte.gz", idx_bytes(X_TR[:, :, :27].copy()), True, "28x28"),
    "payload short": ("train-images-idx3-ubyte.gz", idx_bytes(X_TR, dims=(21, 28, 28)), True, "payload"),
    "payload long": ("t10k-labels-idx1-ubyte.gz", idx_bytes(T_TE, dims=(N_TEST - 1,)), True, "payload"),
    "count mismatch": ("train-labels-idx1-ubyte.gz", idx_bytes(T_TR[:-1]), True, "do not belong together"),
    "label out of range": ("t10k-labels-idx1-ubyte.gz", idx_bytes(T_TE + 5), True, "outside 0..9"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corrupt_idx_file(idx_dir, case):
    name, data, compress, words = CORRUPTIONS[case]
    corrupt(idx_dir, name, data, compress)
    with pytest.raises(MnistError, match=words) as e:
        load_mnist(idx_dir, verify=False)
    msg = str(e.value)
    assert str(idx_dir) in msg and "replace" in msg
    if case not in ("count mismatch", "label out of range"):  # those concern two files / the whole split
        assert name in msg


def test_npz_missing_key(tmp_path):
    path = write_npz(tmp_path / "mnist.npz", drop="y_test")
    with pytest.raises(MnistError, match="lacks the arrays y_test") as e:
        load_mnist(path, verify=False)
    assert str(path) in str(e.value)


def test_npz_bad_shape_dtype_and_not_a_zip(tmp_path):
    arrays = make_arrays()
    arrays[0] = arrays[0].astype(np.float32)
    with pytest.raises(MnistError, match="training images are float32"):
        load_mnist(write_npz(tmp_path / "a.npz", arrays), verify=False)
    (tmp_path / "b.npz").write_bytes(b"garbage")
    with pytest.raises(MnistError, match="not a readable .npz"):
        load_mnist(tmp_path / "b.npz", verify=False)


# --- the Keras fallback ------------------------------------------------------------------------


def test_keras_download_failure_says_what_to_do(monkeypatch):
    keras = pytest.importorskip("keras")

    def offline():
        raise OSError("URL fetch failure on https://example/mnist.npz:\nNone -- [Errno -3] no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(MnistError) as e:
        load_mnist(None)
    msg = str(e.value)
    assert "Keras's download failed" in msg and "no network" in msg and "\n" not in msg
    assert "--mnist-dir" in msg and "MNIST_DIR" in msg


def test_keras_fallback_loads(monkeypatch):
    keras = pytest.importorskip("keras")
    x_tr, t_tr, x_te, t_te = make_arrays()
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: ((x_tr, t_tr), (x_te, t_te)))
    m = load_mnist()
    assert isinstance(m, Mnist) and m.source == "keras.datasets.mnist"
    assert m.X_train.shape == (N_TRAIN, 28, 28, 1)
    assert m.checksums == {"mnist.npz": f"sha256:{KERAS_NPZ_SHA256}"}  # Keras checks it when it downloads


# --- the real files ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_dir() -> Path:
    d = REPO / os.environ.get("MNIST_DIR", "../shared/data/mnist")  # an absolute MNIST_DIR wins
    if not all((d / name).is_file() for name in IDX_FILES):
        pytest.skip(f"real MNIST not found in {d}")
    return d


def test_real_mnist_loads_verified_and_fast(real_dir):
    start = time.perf_counter()
    m = load_mnist(real_dir)
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"loading took {elapsed:.1f} s"
    assert m.x_train_raw.shape == (60000, 28, 28) and m.x_test_raw.shape == (10000, 28, 28)
    assert m.t_train.shape == (60000,) and m.t_test.shape == (10000,)
    assert m.t_train[31727] == 1  # the notebook's example image
    assert m.checksums == {name: f"md5:{md5}" for name, md5 in MNIST_MD5.items()}
    assert m.X_mean.shape == (28, 28, 1) and m.X_mean.dtype == np.float32
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # PROVENANCE.md
    np.testing.assert_array_equal(np.bincount(m.t_test), test_counts)


def test_real_mnist_subset(real_dir):
    m = load_mnist(real_dir, verify=False)
    s = m.subset(6000, 1000)
    assert s.X_train.shape == (6000, 28, 28, 1) and s.T_test.shape == (1000, 10)
    assert s.source.endswith("[first 6000/1000]") and s.fingerprint != m.fingerprint


@pytest.mark.slow
def test_missing_mnist_is_one_line_per_claim_under_xdist(pytester, tmp_path):
    """A claim run with a wrong --mnist-dir says what is wrong and what to do in one line, with no chain of
    causes above it (xdist prints the exception's chain when the failure is raised inside an except block)."""
    claims_project(
        pytester,
        test_planted="""
import pytest

@pytest.mark.claim("needs-mnist")
def test_needs_mnist(mnist):
    pass
""",
    )
    missing = tmp_path / "no-such-dir"
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        f"--mnist-dir={missing}",
        f"--claims-evidence={tmp_path / 'ev'}",
        f"--claims-cache={tmp_path / 'c'}",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"MNIST: MNIST directory {missing} does not exist; *"])
    assert "During handling" not in result.stdout.str() and "direct cause" not in result.stdout.str()
