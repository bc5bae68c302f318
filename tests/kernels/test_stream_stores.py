"""(N, C) outputs of 16 MB and more are written with non-temporal stores (kernels/
affine.hpp, kStreamOutputBytes): the same operations on every element, so the same
bits as the ordinary stores of smaller outputs, whatever the alignment of y and the row
length (scalar head up to the first aligned element, whole vectors, scalar tail)."""

import numpy as np
import pytest

import bnfast

STREAM_BYTES = 16 << 20


def big_rows(dtype, cols):
    """Enough rows of `cols` channels that x itself is past the streaming threshold."""
    rows = STREAM_BYTES // (cols * np.dtype(dtype).itemsize) + 3
    rng = np.random.default_rng(cols)
    return (rng.standard_normal((rows, cols)) * 3 + 7).astype(dtype)


def misaligned_like(x, shift_elements):
    """A C-contiguous array of x's shape whose data starts shift_elements past a
    64-byte boundary."""
    base = np.empty(x.size + 64, dtype=x.dtype)
    start = (-base.ctypes.data % 64) // x.itemsize + shift_elements
    return base[start:start + x.size].reshape(x.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [257, 64, 3])
def test_streamed_rows_equal_the_rows_of_a_small_call(dtype, cols):
    # Inference: each row depends on its own values only, so the first rows of a large
    # (streamed) call must equal a small (ordinary stores) call on those rows.
    x = big_rows(dtype, cols)
    rng = np.random.default_rng(1)
    mean, var = rng.normal(7, 1, cols), rng.uniform(4, 16, cols)
    weight, bias = rng.uniform(0.5, 2, cols), rng.normal(0, 1, cols)
    big = bnfast.batch_norm(x, mean, var, weight, bias, training=False)
    small = bnfast.batch_norm(x[:50], mean, var, weight, bias, training=False)
    np.testing.assert_array_equal(big[:50], small)
    tail = bnfast.batch_norm(x[-50:], mean, var, weight, bias, training=False)
    np.testing.assert_array_equal(big[-50:], tail)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [1, 3])
def test_misaligned_out_gets_the_same_bits(dtype, shift):
    x = big_rows(dtype, 129)
    aligned = misaligned_like(x, 0)
    assert aligned.ctypes.data % 64 == 0
    odd = misaligned_like(x, shift)
    assert odd.ctypes.data % 32 != 0
    y1, mean1, invstd1 = bnfast.batch_norm_forward(x, eps=1e-5, out=aligned)[:3]
    y2, mean2, invstd2 = bnfast.batch_norm_forward(x, eps=1e-5, out=odd)[:3]
    np.testing.assert_array_equal(mean1, mean2)
    np.testing.assert_array_equal(invstd1, invstd2)
    np.testing.assert_array_equal(aligned, odd)


def test_streamed_forward_matches_the_reference():
    x = big_rows(np.float64, 33)
    y = bnfast.batch_norm_forward(x, eps=1e-5)[0]
    expected = bnfast.reference.batch_norm_forward(x, eps=1e-5)[0]
    # float64 throughout: a few ulps of the output's scale (|y| <~ 6).
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-13)
