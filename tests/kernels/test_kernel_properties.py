"""Property tests (hypothesis) of the training-mode transform and its backward pass.

Each property is exact in real arithmetic; in floating point it holds up to the
elementwise error bounds of kernel_tolerances.py (forward_bound / backward_bound),
which scale with the conditioning of the data (max|x| / std enters through the mean's
error). Two facts turn those bounds into bounds on the properties:
* the mean and the standard deviation of a vector move by at most the largest change
  of an element (the standard deviation is 1-Lipschitz in the RMS norm, which is at
  most the max norm), so mean(y) and std(y) are within max(bound) of the exact ones;
* a sum over a channel is within the sum of the elementwise bounds, plus the float64
  summation error of the test itself (m * u64 * sum of magnitudes).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bnfast
from bnfast import reference
from kernel_tolerances import backward_bound, channel_reduce, forward_bound, per_channel

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
U64 = 2.0**-53


@st.composite
def batches(draw, dtype=None, min_values=2):
    """(x, weight, bias): x of shape (N, C) or (N, C, *), N * prod(*) >= min_values,
    values with a per-channel offset and spread so channels are not all alike."""
    dtype = dtype or draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, 8))
    c = draw(st.integers(1, 4))
    trailing = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    assume(n * int(np.prod(trailing)) >= min_values)
    shape = (n, c) + trailing
    width = 32 if dtype == np.float32 else 64
    z = draw(hnp.arrays(dtype, shape, elements=st.floats(-1, 1, width=width)))
    offset = draw(hnp.arrays(np.float64, c, elements=st.floats(-100, 100)))
    spread = draw(hnp.arrays(np.float64, c, elements=st.floats(1e-2, 1e2)))
    x = (per_channel(offset, len(shape)) + per_channel(spread, len(shape)) * z).astype(dtype)
    # gamma = 0 or |gamma| >= 1e-3: the test's own float64 std of y would underflow for
    # |gamma| ~ 1e-300 (its squares do)
    weight = draw(hnp.arrays(np.float64, c, elements=st.just(0.0) | st.floats(1e-3, 3)
                             | st.floats(-3, -1e-3)))
    bias = draw(hnp.arrays(np.float64, c, elements=st.floats(-3, 3)))
    return x, weight, bias


def channel_std(a):
    """Per-channel (keepdims) standard deviation, float64."""
    a = np.asarray(a, dtype=np.float64)
    return np.sqrt(channel_reduce(np.square(a - channel_reduce(a, np.mean)), np.mean))


def well_spread(x):
    """Every channel's std is above 1e-6 of its largest magnitude: the data is not so
    close to constant that every property degenerates into its error bound."""
    x64 = np.asarray(x, dtype=np.float64)
    return bool(np.all(channel_std(x64) > 1e-6 * channel_reduce(np.abs(x64))))


@SETTINGS
@given(batches(), st.sampled_from([1e-5, 1e-2, 1.0]))
def test_output_mean_is_beta_and_variance_is_gamma2_var_over_var_plus_eps(data, eps):
    x, weight, bias = data
    y = bnfast.batch_norm_forward(x, weight, bias, eps)[0]
    _, rmean, rinvstd = reference.batch_norm_forward(x, weight, bias, eps)
    var = reference.batch_norm_forward(x, eps=0.0)[2] ** -2 if well_spread(x) else None
    axes = (0,) + tuple(range(2, x.ndim))
    bound = np.max(forward_bound(x, rmean, rinvstd, weight, bias), axis=axes)
    y64 = y.astype(np.float64)
    mag = np.max(np.abs(y64), axis=axes)
    m = y.size // y.shape[1]
    # the test's own float64 mean / std of y: ~m roundings of u64 relative to max|y|
    own = 4 * m * U64 * mag
    np.testing.assert_array_less(np.abs(y64.mean(axis=axes) - bias), bound + own + 1e-300)
    if var is not None:
        expected_std = np.abs(weight) * np.sqrt(var / (var + eps))
        np.testing.assert_array_less(np.abs(y64.std(axis=axes) - expected_std),
                                     bound + own + 1e-12 * expected_std + 1e-300)


@SETTINGS
@given(batches(), st.data())
def test_invariance_to_positive_scale_and_any_shift(data, draw):
    """eps = 0: BN(a * x + b) = BN(x) for a > 0 and any b, per channel."""
    x, weight, bias = data
    assume(well_spread(x))
    c, nd = x.shape[1], x.ndim
    a = draw.draw(hnp.arrays(np.float64, c, elements=st.floats(1e-2, 1e2)))
    b = draw.draw(hnp.arrays(np.float64, c, elements=st.floats(-1e3, 1e3)))
    x2 = (per_channel(a, nd) * x + per_channel(b, nd)).astype(x.dtype)
    assume(well_spread(x2))
    y = bnfast.batch_norm(x, weight=weight, bias=bias, training=True, eps=0.0)
    y2 = bnfast.batch_norm(x2, weight=weight, bias=bias, training=True, eps=0.0)
    _, m1, i1 = reference.batch_norm_forward(x, eps=0.0)
    _, m2, i2 = reference.batch_norm_forward(x2, eps=0.0)
    # both within their bounds of the same exact result, plus the rounding of x2 itself
    # (u * |x2| per value, an error of the input, scaled by invstd * |w|)
    u = np.finfo(x.dtype).eps / 2
    input_rounding = (2 * u * channel_reduce(np.abs(x2.astype(np.float64)))
                      * per_channel(i2 * np.abs(weight), nd))
    bound = (forward_bound(x, m1, i1, weight, bias) + forward_bound(x2, m2, i2, weight, bias)
             + input_rounding)
    np.testing.assert_array_less(np.abs(y.astype(np.float64) - y2), bound + 1e-300)


@SETTINGS
@given(batches(), st.randoms(use_true_random=False), st.sampled_from([0.0, 1e-5, 1.0]))
def test_equivariance_under_permuting_the_batch(data, random, eps):
    x, weight, bias = data
    assume(eps > 0 or well_spread(x))
    perm = list(range(x.shape[0]))
    random.shuffle(perm)
    g = np.cos(np.arange(x.size, dtype=np.float64)).reshape(x.shape).astype(x.dtype)
    y, mean, invstd = bnfast.batch_norm_forward(x, weight, bias, eps)
    yp, meanp, invstdp = bnfast.batch_norm_forward(x[perm], weight, bias, eps)
    _, rmean, rinvstd = reference.batch_norm_forward(x, eps=eps)
    fb = forward_bound(x, rmean, rinvstd, weight, bias)
    np.testing.assert_array_less(np.abs(yp.astype(np.float64) - y[perm]), 2 * fb[perm] + 1e-300)
    mag = channel_reduce(np.abs(x.astype(np.float64))).ravel()
    np.testing.assert_array_less(np.abs(meanp - mean), 2e-12 * mag + 1e-300)
    # The statistics merge blocks (Chan): the cross term delta^2 of two block means,
    # each rounded at the scale of |x|, carries a relative error ~2 u max|x| / |delta|,
    # so the variance's relative error grows like u max|x| / sqrt(var + eps) (a channel
    # of values 1 and 1 + 7e-6 has max|x| / std ~ 6e5); invstd gets half of it. A
    # permutation changes the blocks, so the two results may differ by twice that.
    x64 = x.astype(np.float64)
    scale = np.sqrt(channel_std(x64) ** 2 + eps).ravel()
    rtol = 2e-12 + 4 * U64 * channel_reduce(np.abs(x64)).ravel() / scale
    np.testing.assert_array_less(np.abs(invstdp - invstd), rtol * np.abs(invstd))

    gx, gw, gb = bnfast.batch_norm_backward(g, x, mean, invstd, weight)
    gxp, gwp, gbp = bnfast.batch_norm_backward(g[perm], x[perm], mean, invstd, weight)
    bb = backward_bound(g, x, mean, invstd, weight)
    np.testing.assert_array_less(np.abs(gxp.astype(np.float64) - gx[perm]),
                                 2 * bb[perm] + 1e-300)
    # grad_weight and grad_bias are sums over the batch: invariant up to their bounds
    gsum = np.sum(np.abs(g.astype(np.float64)), axis=(0,) + tuple(range(2, x.ndim)))
    np.testing.assert_array_less(np.abs(gbp - gb), 2e-12 * gsum + 1e-300)
    gx_scale = np.sum(np.abs(g.astype(np.float64)) * (
        np.abs(x.astype(np.float64) - per_channel(mean, x.ndim)) + per_channel(mag, x.ndim))
        * per_channel(invstd, x.ndim), axis=(0,) + tuple(range(2, x.ndim)))
    u = np.finfo(x.dtype).eps / 2
    np.testing.assert_array_less(np.abs(gwp - gw), (8 * u + 2e-12) * gx_scale + 1e-300)


@SETTINGS
@given(batches(), st.sampled_from([0.0, 1e-5, 1.0]), st.integers(0, 2**32 - 1))
def test_grad_x_sums_to_zero_and_is_orthogonal_to_xhat(data, eps, seed):
    """grad_x = w * invstd * P g with P removing the components along 1 and along xhat
    (docs/math/batch_norm.md): per channel, sum grad_x = 0, and sum grad_x * xhat = 0 when
    eps = 0 (with eps > 0 it is sum g*xhat * w*invstd * eps / (var + eps))."""
    x, weight, _ = data
    assume(eps > 0 or well_spread(x))
    g = np.random.default_rng(seed).standard_normal(x.shape).astype(x.dtype)
    _, mean, invstd = reference.batch_norm_forward(x, eps=eps)
    gx, gw, _ = bnfast.batch_norm_backward(g, x, mean, invstd, weight)
    axes = (0,) + tuple(range(2, x.ndim))
    m = x.size // x.shape[1]
    bb = backward_bound(g, x, mean, invstd, weight)
    gx64 = gx.astype(np.float64)
    own = 2 * m * U64 * np.sum(np.abs(gx64), axis=axes)
    np.testing.assert_array_less(np.abs(gx64.sum(axis=axes)), bb.sum(axis=axes) + own + 1e-300)
    if eps == 0.0:
        xhat = (x.astype(np.float64) - per_channel(mean, x.ndim)) * per_channel(invstd, x.ndim)
        own = 2 * m * U64 * np.sum(np.abs(gx64 * xhat), axis=axes)
        bound = np.sum(bb * np.abs(xhat), axis=axes) + own
        np.testing.assert_array_less(np.abs(np.sum(gx64 * xhat, axis=axes)), bound + 1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_properties_catch_a_wrong_transform(dtype):
    """The error bounds these properties rest on are not vacuous: they reject BN with
    the unbiased variance, a plausible bug that breaks none of the invariances (only
    var(y) = gamma^2 var / (var + eps), whose bound is this same forward_bound)."""
    rng = np.random.default_rng(0)
    x = (5 + 3 * rng.standard_normal((6, 2))).astype(dtype)
    y64 = x.astype(np.float64)
    wrong = (y64 - y64.mean(0)) / np.sqrt(y64.var(0, ddof=1) + 1e-5)
    _, rmean, rinvstd = reference.batch_norm_forward(x)
    right = bnfast.batch_norm_forward(x)[0].astype(np.float64)
    gap = np.abs(wrong - right)
    assert np.max(gap - forward_bound(x, rmean, rinvstd)) > 0
