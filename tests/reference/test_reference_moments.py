"""bnfast.reference.moments.exact_moments (integer limb sums) equals the plain
Fraction-by-Fraction computation, over the whole float64 range and for every dtype the
kernels take; the error measures and the peers' merges behave as documented."""

from fractions import Fraction

import numpy as np
import pytest

from bnfast.reference.moments import (exact_moments, exact_moments_slow, mean_error,
                                      raw_moments_merge, sync_batchnorm_merge, var_error)


def test_fast_exact_equals_fraction_by_fraction():
    rng = np.random.default_rng(2)
    columns = [rng.standard_normal(400) * 1e-300,            # subnormal squares
               rng.standard_normal(400) * 1e150 + 1e153,    # squares near 1e306
               np.where(rng.random(400) < 0.3, 0.0, rng.standard_normal(400)),
               np.ldexp(rng.standard_normal(400), rng.integers(-1000, 1000, 400)),
               1e8 + 1e-4 * rng.standard_normal(400),
               np.full(400, -0.0)]
    x = np.column_stack(columns)
    assert exact_moments(x) == exact_moments_slow(x)
    for dtype in (np.float32, np.float16, np.int64, bool):
        y = (rng.standard_normal((50, 3, 7)) * 100).astype(dtype)
        assert exact_moments(y, axis=1) == exact_moments_slow(y, axis=1)
        assert exact_moments(y, axis=-1) == exact_moments_slow(y, axis=-1)


def test_nonfinite_channels_have_no_moments():
    x = np.ones((5, 3))
    x[2, 0], x[3, 2] = np.nan, -np.inf
    out = exact_moments(x)
    assert out[0] == (5, None, None) and out[2] == (5, None, None)
    assert out[1] == (5, Fraction(1), Fraction(0))


def test_error_measures():
    assert var_error(0.0, Fraction(0)) == 0.0 and var_error(1e-300, Fraction(0)) == np.inf
    assert var_error(1.5, Fraction(1)) == 0.5 and np.isnan(var_error(np.nan, Fraction(1)))
    # the mean's error on the scale max(|mean|, std): std 2 here
    assert mean_error(1.0, 4, Fraction(0), Fraction(16)) == 0.5
    assert mean_error(1.0 + 2**-52, 4, Fraction(1), Fraction(0), ulps=True) == 1.0


def test_the_peers_merges_on_exact_inputs():
    # two equal shards of {0, 2} and {4, 6}: mean 3, biased var 5
    shards = [(2, Fraction(1), Fraction(1)), (2, Fraction(5), Fraction(1))]
    assert sync_batchnorm_merge(shards, eps=1e-5, dtype=np.float64) == pytest.approx((3, 5))
    raw = [(2, Fraction(1), Fraction(2)), (2, Fraction(5), Fraction(26))]
    assert raw_moments_merge(raw) == (3.0, 5.0)
    assert raw_moments_merge(raw, weighted=False, clip=True) == (3.0, 5.0)
    # unequal shards: Flax's unweighted mean is off, the weighted one is not
    raw = [(1, Fraction(0), Fraction(0)), (3, Fraction(4), Fraction(16))]
    assert raw_moments_merge(raw) == (3.0, 3.0)
    assert raw_moments_merge(raw, weighted=False)[0] == 2.0
