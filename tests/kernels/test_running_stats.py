"""Running statistics and eval mode against the formulas of docs/math/batch_norm.md, computed
by hand in exact rational arithmetic (fractions.Fraction) on small integer data:

    mu = (1/m) sum x,   sigma2 = (1/m) sum (x - mu)^2            (biased)
    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * sigma2 * m / (m - 1)
    eval:  y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta

The float64 results are then within a few roundings (u64 ~ 1.1e-16) of the exact
values; RTOL = 1e-14 allows ~100 roundings and is 1e10 times smaller than the error
of a wrong formula (biased instead of unbiased variance: a factor m/(m-1)).
"""

from fractions import Fraction

import numpy as np
import pytest

import bnfast
from bnfast import reference

RTOL = 1e-14


def exact_channel_stats(x):
    """Exact (mean, biased variance, count) per channel of an integer array (N, C, *)."""
    c = x.shape[1]
    values = [[Fraction(int(v)) for v in np.moveaxis(x, 1, 0)[j].ravel()] for j in range(c)]
    m = len(values[0])
    means = [sum(vs) / m for vs in values]
    variances = [sum((v - mu) ** 2 for v in vs) / m for vs, mu in zip(values, means)]
    return means, variances, m


def exact_update(running_mean, running_var, x, momentum):
    """One training step of the running statistics, exactly (Fractions in and out)."""
    means, variances, m = exact_channel_stats(x)
    momentum = Fraction(momentum)
    new_mean = [(1 - momentum) * r + momentum * mu for r, mu in zip(running_mean, means)]
    new_var = [(1 - momentum) * r + momentum * s2 * Fraction(m, m - 1)
               for r, s2 in zip(running_var, variances)]
    return new_mean, new_var


def assert_exact(actual, exact, what):
    exact = np.array([float(e) for e in exact])
    np.testing.assert_allclose(actual, exact, rtol=RTOL, atol=0, err_msg=what)


@pytest.mark.parametrize("impl", [bnfast.batch_norm, reference.batch_norm],
                         ids=["bnfast", "reference"])
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 5), (2, 3, 2, 2)], ids=str)
def test_running_stats_follow_the_formula_over_several_batches(rng, impl, shape):
    c = shape[1]
    rm, rv = np.zeros(c), np.ones(c)  # PyTorch's initial values
    exact_rm, exact_rv = [Fraction(0)] * c, [Fraction(1)] * c
    for step, momentum in enumerate([0.1, 0.1, 0.25, 0.5]):
        x = rng.integers(-20, 21, size=shape)
        x[0, :] = 100 * step  # channels of different means and spreads
        impl(x.astype(np.float64), rm, rv, training=True, momentum=momentum)
        exact_rm, exact_rv = exact_update(exact_rm, exact_rv, x, Fraction(momentum))
        assert_exact(rm, exact_rm, f"running_mean after batch {step}")
        assert_exact(rv, exact_rv, f"running_var after batch {step}")


def test_momentum_one_over_k_is_the_cumulative_average(rng):
    """docs/math/batch_norm.md: momentum = None (cumulative average) is momentum = 1/k at batch k; the
    result is Ioffe and Szegedy's population estimate: E[mu_B] and m/(m-1) E[sigma2_B]."""
    rm, rv = np.full(3, 7.0), np.full(3, -5.0)  # overwritten by the first batch (k = 1)
    batch_means, batch_vars = [], []
    for k in range(1, 6):
        x = rng.integers(-9, 10, size=(6, 3, 2))
        bnfast.batch_norm(x.astype(np.float64), rm, rv, training=True, momentum=1 / k)
        means, variances, m = exact_channel_stats(x)
        batch_means.append(means)
        batch_vars.append([s2 * Fraction(m, m - 1) for s2 in variances])
    population_mean = [sum(col) / 5 for col in zip(*batch_means)]
    population_var = [sum(col) / 5 for col in zip(*batch_vars)]
    assert_exact(rm, population_mean, "running_mean")
    assert_exact(rv, population_var, "running_var")


def test_momentum_zero_and_one(rng):
    x = rng.normal(size=(8, 3))
    rm, rv = rng.normal(size=3), rng.uniform(1, 2, 3)
    rm0, rv0 = rm.copy(), rv.copy()
    bnfast.batch_norm(x, rm, rv, training=True, momentum=0.0)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)
    bnfast.batch_norm(x, rm, rv, training=True, momentum=1.0)
    np.testing.assert_allclose(rm, x.mean(axis=0), rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(rv, x.var(axis=0, ddof=1), rtol=RTOL)


def test_training_output_does_not_depend_on_running_stats(rng):
    x = rng.normal(size=(5, 2, 3))
    weight, bias = rng.normal(size=2), rng.normal(size=2)
    y_plain = bnfast.batch_norm(x, weight=weight, bias=bias, training=True)
    y_tracked = bnfast.batch_norm(x, rng.normal(size=2), rng.uniform(1, 2, 2), weight, bias,
                                  training=True)
    y_forward = bnfast.batch_norm_forward(x, weight, bias)[0]
    np.testing.assert_array_equal(y_plain, y_tracked)
    np.testing.assert_array_equal(y_plain, y_forward)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_float32_running_stats_are_updated_in_their_dtype(rng, dtype):
    x = rng.integers(-20, 21, size=(6, 3, 2))
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    bnfast.batch_norm(x.astype(dtype), rm, rv, training=True, momentum=0.1)
    assert rm.dtype == rv.dtype == np.float32
    exact_rm, exact_rv = exact_update([Fraction(0)] * 3, [Fraction(1)] * 3, x, Fraction(0.1))
    # computed in float64 (a few u64 off), then stored: one float32 rounding, at most
    # u32 = 2**-24 relative; 2 * u32 covers both (a float64 update would be ~1e-16 off,
    # a float32 update of float32 terms several u32)
    np.testing.assert_allclose(rm, [float(v) for v in exact_rm], rtol=2**-23, atol=0)
    np.testing.assert_allclose(rv, [float(v) for v in exact_rv], rtol=2**-23, atol=0)


@pytest.mark.parametrize("impl", [bnfast.batch_norm, reference.batch_norm],
                         ids=["bnfast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("eps", [1e-5, 0.0, 0.25], ids=lambda e: f"eps{e}")
def test_eval_mode_uses_the_running_stats(rng, impl, dtype, eps):
    x = rng.normal(size=(4, 3, 5)).astype(dtype)
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2, 3)
    weight, bias = rng.normal(size=3), rng.normal(size=3)
    rm0, rv0 = rm.copy(), rv.copy()
    y = impl(x, rm, rv, weight, bias, training=False, momentum=0.5, eps=eps)
    assert y.dtype == dtype
    # by hand, channel by channel and value by value
    expected = np.empty(x.shape)
    for j in range(3):
        inv = 1 / np.sqrt(rv[j] + eps)
        for i in np.ndindex(x.shape[0], x.shape[2]):
            n, s = i
            expected[n, j, s] = (float(x[n, j, s]) - rm[j]) * inv * weight[j] + bias[j]
    # float64: a few roundings; float32: the output's own rounding plus the few float32
    # roundings of the kernel (8 * u32 relative to the normalized value and bias)
    u = np.finfo(dtype).eps / 2
    scale = np.abs(expected - bias.reshape(1, 3, 1)) + np.abs(bias.reshape(1, 3, 1))
    np.testing.assert_array_less(np.abs(y - expected), 8 * u * scale + 1e-300)
    np.testing.assert_array_equal(rm, rm0)  # eval never touches the running stats
    np.testing.assert_array_equal(rv, rv0)


def test_eval_mode_accepts_one_value_per_channel(rng):
    """Only training needs more than one value per channel (as in PyTorch)."""
    x = rng.normal(size=(1, 3))
    rm, rv = rng.normal(size=3), rng.uniform(1, 2, 3)
    y = bnfast.batch_norm(x, rm, rv)
    np.testing.assert_allclose(y, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-15, atol=1e-15)


def test_eval_mode_accepts_read_only_running_stats(rng):
    x = rng.normal(size=(4, 3))
    rm, rv = rng.normal(size=3), rng.uniform(1, 2, 3)
    expected = bnfast.batch_norm(x, rm, rv)
    rm.flags.writeable = False
    rv.flags.writeable = False
    np.testing.assert_array_equal(bnfast.batch_norm(x, rm, rv), expected)


def test_running_stats_skip_non_finite_channels():
    x = np.arange(24, dtype=np.float64).reshape(4, 3, 2)
    x[1, 1, 0] = np.nan
    x[2, 2, 1] = np.inf
    rm, rv = np.full(3, 0.5), np.full(3, 2.0)
    with pytest.warns(RuntimeWarning, match="2 channel"):
        y = bnfast.batch_norm(x, rm, rv, training=True, momentum=0.5)
    # NaN and inf propagate to the whole channel (its mean is not finite) ...
    assert np.all(np.isnan(y[:, 1])) and np.all(np.isnan(y[:, 2]))
    assert np.all(np.isfinite(y[:, 0]))
    # ... and leave its running stats unchanged; the clean channel is updated
    exact_rm, exact_rv = exact_update([Fraction(1, 2)], [Fraction(2)], x[:, :1].astype(int),
                                      Fraction(1, 2))
    assert_exact(rm, [exact_rm[0], Fraction(1, 2), Fraction(1, 2)], "running_mean")
    assert_exact(rv, [exact_rv[0], Fraction(2), Fraction(2)], "running_var")
