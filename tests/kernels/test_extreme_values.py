"""Finite data at the edges of the floating-point range (issue 15; docs/math/
batch_norm.md, extreme inputs): the statistics are computed on values scaled by a power
of two, so BN of a * x is BN of x for every representable a (eps = 0), in the kernels
and in the reference. Before: NaN or 0 near 1e308, a spurious ZeroVarianceError near
1e-200, inf/NaN for float32 subnormals."""

import warnings

import numpy as np
import pytest

import bnfast
from bnfast import reference as ref

RNG = np.random.default_rng(3)
SHAPES = [(7, 3), (2000, 5), (4, 3, 5, 5), (64, 2, 40)]


def scaled_input(shape, scale, dtype):
    """Data whose scaled version is exactly representable: base values with 20 bits,
    times a power of two near `scale` (so x / scale has no extra rounding)."""
    base = np.round(RNG.normal(size=shape) * 2**18) / 2**18
    power = 2.0 ** np.round(np.log2(scale))
    return (base * power).astype(dtype), base, power


def quiet(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # var overflows: documented
        return f(*args, **kw)


# eps > 0 with tiny data is eps-dominated (y ~ x / sqrt(eps)): tested separately below
EDGES = [(scale, 0.0) for scale in (1e300, 2.0**1020, 1e-150, 1e-200, 1e-300, 1e-320)] + \
    [(1e300, 1e-5), (2.0**1020, 1e-5)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale,eps", EDGES)
def test_float64_at_the_edges_normalizes_like_unit_data(shape, scale, eps):
    x, base, power = scaled_input(shape, scale, np.float64)
    # x / power is exact (a power of two; subnormal x has already lost its low bits,
    # so the comparison is with the data as stored)
    unit = x / power
    expected, unit_mean, _ = ref.batch_norm_forward(unit, eps=0.0)
    y, mean, invstd = quiet(bnfast.batch_norm_forward, x, eps=eps)
    np.testing.assert_allclose(y, expected, atol=1e-13)
    yr = quiet(ref.batch_norm_forward, x, eps=eps)[0]
    np.testing.assert_allclose(yr, expected, atol=1e-13)
    # the mean is rounded to float64 like any result: to 2^-1074 when it is subnormal
    np.testing.assert_allclose(mean / power, unit_mean,
                               atol=max(1e-15 * np.max(np.abs(unit)), 2.0**-1074 / power))
    # 1/std of data near 1e-320 is ~1e320: beyond float64, so inf there (y is right)
    assert np.all(np.isfinite(invstd)) or scale < 1e-308


def test_tiny_data_with_eps_is_eps_dominated():
    x = RNG.normal(size=(50, 3)) * 1e-200
    y = bnfast.batch_norm_forward(x, eps=1e-5)[0]
    np.testing.assert_allclose(y, (x - x.mean(axis=0)) / np.sqrt(1e-5), rtol=1e-12)
    np.testing.assert_allclose(ref.batch_norm_forward(x, eps=1e-5)[0], y, rtol=1e-12)


@pytest.mark.parametrize("value", [1e-200, 1e300, 5e-324])
def test_a_constant_channel_still_has_variance_zero(value):
    x = np.full((6, 2), value)
    x[:, 1] = RNG.normal(size=6) * value
    with pytest.raises(bnfast.ZeroVarianceError, match="channel 0 has variance 0"):
        quiet(bnfast.batch_norm_forward, x, eps=0.0)
    with pytest.raises(ValueError, match="channel 0 has variance 0"):
        quiet(ref.batch_norm_forward, x, eps=0.0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [1e-39, 1e-42, 1e37])
def test_float32_subnormals_and_giants(shape, scale):
    """float32 subnormal data: 1/std ~ 1e40 does not fit in float32; those channels are
    normalized in double. The data itself has only the bits a subnormal keeps, so the
    reference runs on the same float32 values."""
    x = (RNG.normal(size=shape) * scale).astype(np.float32)
    y = bnfast.batch_norm_forward(x, eps=0.0)[0]
    expected = ref.batch_norm_forward(x.astype(np.float64), eps=0.0)[0]
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    np.testing.assert_allclose(y, expected, atol=2e-6 * np.max(np.abs(expected)))


def test_float32_subnormals_in_eval_mode():
    x = (RNG.normal(size=(8, 3)) * 1e-40).astype(np.float32)
    rm, rv = np.zeros(3), np.full(3, 1e-80)
    y = bnfast.batch_norm(x, rm, rv, training=False, eps=0.0)
    np.testing.assert_allclose(y, x.astype(np.float64) * 1e40, rtol=1e-6)
    np.testing.assert_allclose(ref.batch_norm(x, rm, rv, training=False, eps=0.0), y, rtol=1e-6)


def test_training_with_running_stats_near_the_top_of_the_range():
    """The variance of data near 1e300 is ~1e600: not a float64. y is right; the
    running variance keeps its old value for that channel, with the documented warning
    (the running mean, representable, is updated like the others)."""
    x, base, power = scaled_input((32, 2), 1e300, np.float64)
    rm, rv = np.zeros(2), np.ones(2)
    with pytest.warns(RuntimeWarning, match="not finite"):
        y = bnfast.batch_norm(x, rm, rv, training=True, eps=0.0)
    np.testing.assert_allclose(y, ref.batch_norm_forward(base, eps=0.0)[0], atol=1e-13)


# float32 stops at 1e-37: below ~3e-39 dx ~ 1/std itself exceeds float32
@pytest.mark.parametrize("scale,dtype", [(1e-200, np.float64), (1e-150, np.float64),
                                         (1e-37, np.float32), (1e-36, np.float32),
                                         (1e300, np.float64), (1e200, np.float64)])
@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 7)])
def test_backward_of_a_tiny_or_huge_channel(scale, dtype, shape):
    """dx = w invstd (g - mean g - xhat gw/m) is representable, but the kernel's
    coefficient b = w invstd^2 gw/m overflows for a tiny std and underflows for a huge
    one: such channels are redone in double (found by the property tests: float32 data
    [1.2e-38, 0] gave inf)."""
    x = (RNG.normal(size=shape) * scale).astype(dtype)
    g = RNG.normal(size=shape).astype(dtype)
    _, mean, invstd = quiet(bnfast.batch_norm_forward, x, eps=0.0)
    dx, gw, gb = bnfast.batch_norm_backward(g, x, mean, invstd, np.full(shape[1], 1.5))
    expected = ref.batch_norm_backward(g, x, mean, invstd, np.full(shape[1], 1.5))
    assert np.all(np.isfinite(dx))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(dx, expected[0], atol=tol * np.max(np.abs(expected[0])))
    # the kernel centres float32 data in float32 (x - mean rounded to 2^-24 relative)
    rtol = 1e-10 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(gw, expected[1], rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(gb, expected[2], rtol=rtol, atol=1e-12)


def test_the_property_test_counterexample():
    x = np.array([[1.0, 1.0, 1.1754944e-38, 1.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    g = np.array([[0.3, -1.2, 0.7, 2.0], [1.1, 0.4, -0.5, 0.9]], dtype=np.float32)
    _, mean, invstd = ref.batch_norm_forward(x, eps=0.0)
    dx = bnfast.batch_norm_backward(g, x, mean, invstd, np.ones(4))[0]
    assert np.all(np.isfinite(dx)) and np.max(np.abs(dx)) < 1e-6   # two rows: dx = 0
