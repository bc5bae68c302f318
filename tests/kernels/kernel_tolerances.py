"""Error bounds for comparing the BN kernels with the float64 reference.

Every bound is elementwise and follows the kernels' arithmetic (csrc/batchnorm.cpp):

* Per-channel statistics (mean, variance, gradient sums) are accumulated in float64
  for float32 and float64 data alike, in blocks of at most 8192 values split over 8
  accumulators (~1000 terms each), merged with Chan's formula. Summing k terms costs
  at most ~k roundings of u64 = 2**-53 ~ 1.1e-16 relative to the sum of magnitudes, so
  ~1e3 * u64 ~ 1e-13 in the worst case for one accumulator, far less typically.
  STAT_RTOL = 1e-12 keeps a factor 10 above that worst case: a float64 result within
  STAT_RTOL of the reference is float64-accurate up to the length of the sums, while
  a wrong formula or a lost term is off by O(1).
* Elementwise work is done in the data's own type T with per-channel coefficients
  rounded to T once. y = ((x - hi) - lo) * scale + shift, where hi + lo is the mean
  split into two T values: x - hi is exact near the mean (Sterbenz) and at worst one
  rounding; then - lo, * scale, + shift, and the roundings of scale and shift
  themselves: at most 6 roundings of u_T, each relative to a term of size
  |x - mean| * invstd * |w| or |b|. ELEMENT_ROUNDINGS = 8 covers those 6, the
  first-order error model (1 + u)^6 ~ 1 + 6u, and the reference's float64 rounding
  (u64, negligible next to u32). For float32, u32 = 2**-24 ~ 6e-8, so y is within
  ~5e-7 of the float64 reference *relative to the normalized value*, not to |x|: a
  channel at mean 1e4, std 1 must still normalize to float32 accuracy, which the naive
  x * a + b (error ~u32 * 1e4 * invstd ~ 6e-4) would not.
  The backward pass dx = a*g + b*((x - hi) - lo) + c0 has 9 such roundings (three
  coefficients, two subtractions, two products, two sums) plus 2 in each term of
  grad_weight's sum: BACKWARD_ROUNDINGS = 12.
* Underflow: a rounding of a value below the smallest normal number has an absolute
  error up to half the smallest subnormal (eta_T); each rounding above adds eta_T
  (this is what makes a float32 bias of 1e-258 come out as 0, correctly).
"""

import numpy as np

STAT_RTOL = 1e-12
ELEMENT_ROUNDINGS = 8
BACKWARD_ROUNDINGS = 12


def unit_roundoff(dtype):
    """u = eps / 2: the relative error of one rounding to dtype."""
    return float(np.finfo(dtype).eps) / 2


def underflow(dtype):
    """eta: the absolute error of one rounding to dtype in the subnormal range."""
    return float(np.finfo(dtype).smallest_subnormal) / 2


def per_channel(v, ndim):
    return np.asarray(v, dtype=np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def channel_reduce(a, fn=np.max):
    """fn over every axis but 1, keeping dims so the result broadcasts against a."""
    axes = (0,) + tuple(range(2, a.ndim))
    return fn(a, axis=axes, keepdims=True)


def forward_bound(x, mean, invstd, weight=None, bias=None, dtype=None):
    """Elementwise bound on |y - y_exact| for y = (x - mean) * invstd * w + b computed
    by the kernel in `dtype` (default x's) with float64 statistics."""
    x64 = np.asarray(x, dtype=np.float64)
    nd = x64.ndim
    dtype = dtype or np.asarray(x).dtype
    u = unit_roundoff(dtype)
    w = np.abs(per_channel(1.0 if weight is None else weight, nd))
    b = np.abs(per_channel(0.0 if bias is None else bias, nd))
    inv = per_channel(invstd, nd)
    xhat = np.abs(x64 - per_channel(mean, nd)) * inv * w
    # the mean's error moves every value of the channel by ~STAT_RTOL * max|x| * invstd,
    # the variance's error scales xhat by (1 + STAT_RTOL)
    stat = STAT_RTOL * (channel_reduce(np.abs(x64)) * inv * w + xhat)
    return ELEMENT_ROUNDINGS * (u * (xhat + b) + underflow(dtype)) + stat


def backward_bound(grad_y, x, mean, invstd, weight=None, dtype=None):
    """Elementwise bound on |grad_x - exact| for the kernel's
    grad_x = w*invstd*g - w*invstd*xhat*mean(g*xhat) - w*invstd*mean(g); every term is
    bounded by its magnitude, the sums also by the float64 accumulation error."""
    x64 = np.asarray(x, dtype=np.float64)
    g = np.abs(np.asarray(grad_y, dtype=np.float64))
    nd = x64.ndim
    dtype = dtype or np.asarray(x).dtype
    u = unit_roundoff(dtype)
    k = np.abs(per_channel(1.0 if weight is None else weight, nd) * per_channel(invstd, nd))
    xhat = np.abs(x64 - per_channel(mean, nd)) * per_channel(invstd, nd)
    terms = k * (g + xhat * channel_reduce(g * xhat, np.mean) + channel_reduce(g, np.mean))
    # xhat's own error (mean off by STAT_RTOL * max|x|) enters the b * (x - mean) term
    stat = STAT_RTOL * (terms + k * channel_reduce(np.abs(x64), np.max) * per_channel(invstd, nd)
                        * channel_reduce(g * xhat, np.mean))
    return BACKWARD_ROUNDINGS * (u * terms + underflow(dtype)) + stat


def grad_param_bounds(grad_y, x, mean, invstd, dtype=None):
    """Bounds on |grad_weight - exact| and |grad_bias - exact|, float64 (C,) each:
    grad_bias sums g in float64 (STAT_RTOL); grad_weight sums g * (x - mean) with
    x - mean formed in the data's type (2 roundings per term)."""
    x64 = np.asarray(x, dtype=np.float64)
    g = np.abs(np.asarray(grad_y, dtype=np.float64))
    u = unit_roundoff(dtype or np.asarray(x).dtype)
    xhat = np.abs(x64 - per_channel(mean, x64.ndim)) * per_channel(invstd, x64.ndim)
    axes = (0,) + tuple(range(2, x64.ndim))
    sum_gx = np.sum(g * xhat, axis=axes)
    gmax = np.sum(g * channel_reduce(np.abs(x64)) * per_channel(invstd, x64.ndim), axis=axes)
    return ((4 * u + STAT_RTOL) * sum_gx + STAT_RTOL * gmax,
            STAT_RTOL * np.sum(g, axis=axes))


def stats_bounds(x):
    """Bounds on |mean - exact| and on |invstd - exact| / invstd for the batch statistics,
    given as (mean_bound (C,), relative invstd bound)."""
    x64 = np.asarray(x, dtype=np.float64)
    axes = (0,) + tuple(range(2, x64.ndim))
    return STAT_RTOL * np.max(np.abs(x64), axis=axes), STAT_RTOL


def assert_within(actual, expected, bound, what=""):
    """|actual - expected| <= bound elementwise (NaNs must match); returns the worst
    ratio error / bound, so callers can report how much headroom there was."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=what)
    ok = ~np.isnan(expected)
    err = np.abs(actual - expected)[ok]
    bnd = np.broadcast_to(bound, actual.shape)[ok]
    bad = err > bnd
    if np.any(bad):
        i = int(np.argmax(err - bnd))
        raise AssertionError(
            f"{what}: {np.count_nonzero(bad)} of {err.size} values outside the bound; "
            f"worst error {err[i]:.3e} vs bound {bnd[i]:.3e} "
            f"(actual {actual[ok][i]!r}, expected {expected[ok][i]!r})")
    return float(np.max(err / np.maximum(bnd, np.finfo(np.float64).tiny), initial=0.0))
