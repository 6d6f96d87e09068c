"""Unit tests of fixtures.analysis on hand-made inputs with known answers (no TensorFlow)."""

import numpy as np
import pytest

from fixtures.analysis import (
    FLOAT32_UNIT_ROUNDOFF,
    SOBEL_X,
    SOBEL_Y,
    TF32_UNIT_ROUNDOFF,
    block_max_pool,
    class_means,
    conv_error_bound,
    conv_valid,
    gradient_energy_share,
    selectivity_index,
)


def _keras_kernels(*kernels):
    """Stack (3, 3) kernels into Keras's (3, 3, 1, K) layout."""
    return np.stack(kernels, axis=-1)[:, :, None, :]


# --- conv_valid ----------------------------------------------------------------------------


def test_conv_valid_is_cross_correlation_not_convolution():
    image = np.zeros((5, 5))
    image[2, 2] = 1.0  # an impulse: cross-correlation returns the kernel flipped, convolution as is
    kernel = np.arange(9.0).reshape(3, 3)
    out = conv_valid(image, _keras_kernels(kernel), np.zeros(1))
    assert out.shape == (3, 3, 1)
    np.testing.assert_array_equal(out[:, :, 0], kernel[::-1, ::-1])


def test_conv_valid_known_sums_and_bias():
    image = np.arange(16.0).reshape(4, 4)
    ones = np.ones((3, 3))
    out = conv_valid(image[:, :, None], _keras_kernels(ones, SOBEL_X), np.array([0.5, -1.0]))
    assert out.shape == (2, 2, 2)
    # 3x3 box sum at the top-left: rows 0-2, cols 0-2 of arange(16).reshape(4, 4) = 45.
    assert out[0, 0, 0] == pytest.approx(45.5)
    # Horizontal Sobel of a ramp growing by 1 per column: (1 + 2 + 1) * 2 = 8 everywhere.
    np.testing.assert_allclose(out[:, :, 1], 8.0 - 1.0)


def test_conv_valid_rejects_multichannel_kernels():
    with pytest.raises(ValueError):
        conv_valid(np.zeros((5, 5)), np.zeros((3, 3, 2, 4)), np.zeros(4))


# --- conv_error_bound ----------------------------------------------------------------------


def test_error_bound_is_gamma_times_magnitudes():
    image = np.full((3, 3), -0.5)
    kernel = np.full((3, 3), 2.0)
    bound = conv_error_bound(image, _keras_kernels(kernel), np.array([-3.0]))
    u = FLOAT32_UNIT_ROUNDOFF
    gamma10 = 10 * u / (1 - 10 * u)
    assert bound.shape == (1, 1, 1)
    assert bound[0, 0, 0] == pytest.approx(gamma10 * (9 * 0.5 * 2.0 + 3.0))


def _round_to_tf32(values: np.ndarray) -> np.ndarray:
    """Round float32 values to TF32's 10 explicit mantissa bits (to nearest, ties to even), as
    Ampere+ GPUs do with conv operands; the exponent and the 32-bit storage stay float32's."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32)
    half_ulp_or_less = np.uint32(0x0FFF) + ((bits >> np.uint32(13)) & np.uint32(1))
    return ((bits + half_ulp_or_less) & np.uint32(0xFFFFE000)).view(np.float32)


def _conv_in_float32(
    image: np.ndarray, kernels: np.ndarray, bias: np.ndarray, tf32_operands: bool = False
) -> np.ndarray:
    """'valid' conv evaluated in float32 in a fixed order (bias first, then the 9 products), one
    rounding per operation; with `tf32_operands` image and kernels are first rounded to TF32."""
    x, w = np.asarray(image, np.float32), np.asarray(kernels, np.float32)
    if tf32_operands:
        x, w = _round_to_tf32(x), _round_to_tf32(w)
    h, wd = x.shape[0] - 2, x.shape[1] - 2
    out = np.zeros((h, wd, w.shape[-1]), dtype=np.float32)
    for k in range(w.shape[-1]):
        acc = np.full((h, wd), bias[k], dtype=np.float32)
        for i in range(3):
            for j in range(3):
                acc = acc + x[i : i + h, j : j + wd] * w[i, j, 0, k]
        out[:, :, k] = acc
    return out


def _worst_error_over_bound(image, kernels, bias, tf32_operands=False, operand_unit_roundoff=0.0) -> float:
    """max |float32 result - exact| / bound over all outputs: <= 1 where the bound holds."""
    error = np.abs(_conv_in_float32(image, kernels, bias, tf32_operands) - conv_valid(image, kernels, bias))
    return float(np.max(error / conv_error_bound(image, kernels, bias, operand_unit_roundoff=operand_unit_roundoff)))


def test_tf32_rounding_keeps_ten_mantissa_bits_to_nearest():
    ulp = 2.0**-10  # TF32's spacing in [1, 2)
    values = np.array([1 + 0.49 * ulp, 1 + 0.51 * ulp, 1 + 0.5 * ulp, 1 + 1.5 * ulp, -3.0], dtype=np.float32)
    np.testing.assert_array_equal(_round_to_tf32(values), [1.0, 1 + ulp, 1.0, 1 + 2 * ulp, -3.0])


def test_error_bound_covers_float32_evaluation_of_random_inputs():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (12, 12)).astype(np.float32)
    kernels = rng.normal(0, 0.3, (3, 3, 1, 4)).astype(np.float32)
    bias = rng.normal(0, 0.1, 4).astype(np.float32)
    assert _worst_error_over_bound(image, kernels, bias) <= 1.0


def test_error_bound_is_nearly_attained_so_a_tighter_one_fails():
    """Worst case for the bias-first order: every product is just under half a float32 ulp of the
    running sum 1, so each addition loses it (relative error ~u, 9 times, one sign). The bound
    must hold, and be at least half used here: a bound 2x (let alone 5x) too tight fails."""
    image = np.ones((3, 3), dtype=np.float32)
    kernels = np.full((3, 3, 1, 1), 0.99 * 2.0**-24, dtype=np.float32)
    ratio = _worst_error_over_bound(image, kernels, np.array([1.0], dtype=np.float32))
    assert 0.5 < ratio <= 1.0, ratio


def test_tf32_operands_need_the_widened_bound():
    """Simulated TF32 conv on CPU: random operands break the plain float32 bound (too tight for a
    GPU that rounds operands) and stay within the TF32-widened one."""
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (28, 28)).astype(np.float32)
    kernels = rng.normal(0, 0.3, (3, 3, 1, 8)).astype(np.float32)
    bias = rng.normal(0, 0.1, 8).astype(np.float32)
    assert _worst_error_over_bound(image, kernels, bias, tf32_operands=True) > 1.0
    assert (
        _worst_error_over_bound(image, kernels, bias, tf32_operands=True, operand_unit_roundoff=TF32_UNIT_ROUNDOFF)
        <= 1.0
    )


def test_tf32_widened_bound_is_nearly_attained():
    """Worst case for operand rounding: every image and kernel entry is just under half a TF32 ulp
    above 1, so both operands of every product round down (relative error ~2 * 2^-11, one sign).
    The widened bound holds and is at least half used: a bound 2x too tight fails."""
    operand = np.float32(1 + 0.99 * 2.0**-11)
    image, kernels = np.full((3, 3), operand), np.full((3, 3, 1, 1), operand)
    ratio = _worst_error_over_bound(
        image, kernels, np.zeros(1, np.float32), tf32_operands=True, operand_unit_roundoff=TF32_UNIT_ROUNDOFF
    )
    assert 0.5 < ratio <= 1.0, ratio


def test_error_bound_grows_with_narrower_operands():
    image, kernels, bias = np.ones((3, 3)), np.ones((3, 3, 1, 1)), np.zeros(1)
    fp32 = conv_error_bound(image, kernels, bias)
    tf32 = conv_error_bound(image, kernels, bias, operand_unit_roundoff=TF32_UNIT_ROUNDOFF)
    assert tf32[0, 0, 0] > 2 * TF32_UNIT_ROUNDOFF * 9 > fp32[0, 0, 0]


# --- block_max_pool ------------------------------------------------------------------------


def test_block_max_pool_known_answer_and_ragged_edge():
    maps = np.arange(25.0).reshape(5, 5, 1)
    pooled = block_max_pool(maps)
    assert pooled.shape == (2, 2, 1)  # the fifth row and column are dropped, as 'valid' pooling does
    np.testing.assert_array_equal(pooled[:, :, 0], [[6, 8], [16, 18]])


def test_block_max_pool_keeps_channels_apart():
    maps = np.zeros((4, 4, 2))
    maps[0, 1, 0] = 5.0
    maps[3, 3, 1] = 7.0
    pooled = block_max_pool(maps)
    assert pooled[0, 0, 0] == 5.0 and pooled[0, 0, 1] == 0.0
    assert pooled[1, 1, 1] == 7.0 and pooled[1, 1, 0] == 0.0


# --- gradient_energy_share -----------------------------------------------------------------


def test_sobel_filters_at_any_orientation_score_one():
    angles = np.linspace(0, np.pi, 7)
    oriented = [np.cos(t) * SOBEL_X + np.sin(t) * SOBEL_Y for t in angles]
    np.testing.assert_allclose(gradient_energy_share(_keras_kernels(*oriented)), 1.0)


def test_score_ignores_scale_and_brightness_offset():
    base = SOBEL_X + 0.3 * np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    shifted = 2.5 * base + 7.0
    a, b = gradient_energy_share(_keras_kernels(base, shifted))
    assert a == pytest.approx(b)
    assert 0 < a < 1


def test_laplacian_and_constant_filters_score_zero():
    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float)
    constant = np.full((3, 3), 0.2)
    np.testing.assert_allclose(gradient_energy_share(_keras_kernels(laplacian, constant, np.zeros((3, 3)))), 0.0)


def test_random_filters_score_two_eighths_on_average():
    rng = np.random.default_rng(0)
    scores = gradient_energy_share(rng.normal(size=(3, 3, 1, 20_000)))
    assert scores.min() >= 0 and scores.max() <= 1
    # Beta(1, 3): mean 1/4, sd sqrt(3/80) = 0.194; the mean of 20k has sd 0.0014.
    assert scores.mean() == pytest.approx(0.25, abs=0.006)


# --- class_means / selectivity_index -------------------------------------------------------


def test_class_means_known_answer():
    values = np.array([[1.0, 0.0], [3.0, 0.0], [10.0, 4.0]])
    means = class_means(values, np.array([0, 0, 2]), n_classes=3)
    np.testing.assert_array_equal(means[0], [2.0, 0.0])
    assert np.all(np.isnan(means[1]))
    np.testing.assert_array_equal(means[2], [10.0, 4.0])


def test_selectivity_index_extremes_and_known_value():
    means = np.zeros((10, 4))
    means[3, 0] = 2.0  # only class 3: selectivity 1
    means[:, 1] = 1.5  # every class alike: 0
    # unit 2 stays dead: NaN
    means[:, 3] = 1.0
    means[7, 3] = 3.0  # mu_max 3, mu_rest 1: (3 - 1) / (3 + 1) = 0.5
    si = selectivity_index(means)
    assert si[0] == pytest.approx(1.0)
    assert si[1] == pytest.approx(0.0)
    assert np.isnan(si[2])
    assert si[3] == pytest.approx(0.5)


def test_class_means_shape_mismatch_raises():
    with pytest.raises(ValueError):
        class_means(np.zeros((3, 2)), np.zeros(4, dtype=int))
