"""The error bound of bnfast's population statistics (docs/math/population_statistics.md,
"The bound"), the tighter tolerance the tests hold results to, and the measurement of
a result against the exact (fractions) statistics.

Notation: u = 2**-53, gamma(k) = k u / (1 - k u) (k roundings), R = 64 the longest run
of additions done one after the other in a block of the kernel (everything after the
block sums is double-double), n the values per channel, sigma their population std,
rho = max over blocks of mean |x - x0| / sigma (x0 the block's first value; bounded
here by range / sigma), kappa = max over blocks of n_B (mu_B - mean_r)^2 / M2_B (what
the rounded first-pass mean mean_r of a block costs; negligible unless a block's spread
is below its mean's ulp; see kappa_bound).

    |m2 - M2| <= [gamma(R + 9) (1 + kappa) + gamma(6) + 4 sqrt(log2 n) gamma(R + 5) rho] M2
    |mean - mu| <= ulp(mu) / 2 + [gamma(R + 5) rho + 3 u sqrt(2 log2 n)] sigma

Chunking (where blocks and parts begin, how many workers, how many threads) only
changes which roundings happen, so two results differ by at most twice the bound.
"""

import math
from fractions import Fraction

import numpy as np

from bnfast.reference.moments import exact_moments, mean_error

U = 2.0**-53
R = 64

#: What the tests hold results to, below the bound: the bound assumes every rounding
#: goes the same way; the kernel's roundings are independent, so a run of R additions
#: is off by ~sqrt(R / 3) u ~ 5u at worst typically, a block's runs and the blocks
#: average out, and the final rounding to float64 adds u/2 (the measured worst is ~5u).
#: 16u leaves a factor 3: a regression (a lost low part, a rounded mean in a merge:
#: errors of 1e3 u and more on the adversarial data) fails it.
M2_TOL = 16 * U
#: The mean, in ulps of the scale max(|mu|, sigma): the final rounding (1/2 ulp) plus the
#: double-double mean's own error, the rounding of the block sums of the centred
#: deviations (~0.3 u sigma typically, 1.1 u sigma the worst measured, on a single
#: float32 block of 400 values with |mu| << sigma): 2 ulps.
MEAN_ULPS = 2.0


def gamma(k):
    return k * U / (1 - k * U)


def kappa_bound(values, sigma):
    """kappa for data whose blocks spread like the whole (M2_B ~ n_B sigma^2, true of the
    tests' shuffled data): a block's first-pass mean is within an ulp of the largest |x|
    of its exact mean (the sum error's share, gamma(R) rho sigma, is second order), so
    kappa <= (ulp / sigma)^2."""
    if sigma == 0:
        return 0.0
    ulp = float(np.spacing(np.max(np.abs(values))))
    return (ulp / sigma) ** 2


def m2_bound(n, rho, kappa):
    """The bound on |m2 - M2| / M2 of the module docstring."""
    return (gamma(R + 9) * (1 + kappa) + gamma(6)
            + 4 * math.sqrt(math.log2(max(n, 2))) * gamma(R + 5) * rho)


def mean_bound(n, rho, mu, sigma):
    """The bound on |mean - mu| of the module docstring."""
    return (float(np.spacing(abs(mu))) / 2
            + (gamma(R + 5) * rho + 3 * U * math.sqrt(2 * math.log2(max(n, 2)))) * sigma)


def channel_values(x, axis):
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    return x.reshape(x.shape[0], -1)


class Exact:
    """The exact statistics of x's channels and each channel's bounds, computed once;
    ``check(moments)`` measures a result against them."""

    def __init__(self, x, axis=1):
        self.values = channel_values(x, axis)
        self.exact = exact_moments(x, axis)
        self.bounds = []
        for values, (n, mu, m2) in zip(self.values, self.exact):
            if mu is None:
                self.bounds.append(None)
                continue
            sigma = math.sqrt(float(m2 / n))
            spread = float(np.max(values) - np.min(values))
            rho = spread / sigma if sigma > 0 else 0.0
            self.bounds.append((m2_bound(n, rho, kappa_bound(values, sigma)),
                                mean_bound(n, rho, float(mu), sigma)))

    def errors(self, moments):
        """Per channel (mean error in ulps of max(|mu|, sigma), relative m2 error), NaN
        for channels with NaN or inf data; asserts the bound and that such channels are
        NaN."""
        out = []
        for j, ((n, mu, m2), bound) in enumerate(zip(self.exact, self.bounds)):
            assert moments.count == n
            if mu is None:
                assert np.isnan(moments.mean[j]) and np.isnan(moments.m2[j]), j
                assert not moments.finite[j]
                out.append((math.nan, math.nan))
                continue
            got_m2 = Fraction(float(moments.m2[j])) + Fraction(float(moments.m2_low[j]))
            m2_err = 0.0 if m2 == 0 and got_m2 == 0 else \
                math.inf if m2 == 0 else float(abs(got_m2 - m2) / m2)
            mean_abs = float(abs(Fraction(float(moments.mean[j])) - mu))
            assert m2_err <= bound[0], (j, m2_err, bound[0])
            assert mean_abs <= bound[1], (j, mean_abs, bound[1])
            out.append((mean_error(moments.mean[j], n, mu, m2, ulps=True), m2_err))
        return out

    def check(self, moments, worst=None, label=""):
        """Asserts the tolerances (M2_TOL, MEAN_ULPS) and returns the errors; records the
        worst ones in ``worst`` (a dict) under ``label``."""
        errors = self.errors(moments)
        for j, (mean_err, m2_err) in enumerate(errors):
            if math.isnan(m2_err):
                continue
            assert m2_err <= M2_TOL, (label, j, m2_err / U)
            assert mean_err <= MEAN_ULPS, (label, j, mean_err)
            if worst is not None:
                worst["m2 (u)"] = max(worst.get("m2 (u)", 0.0), m2_err / U)
                worst["mean (ulp)"] = max(worst.get("mean (ulp)", 0.0), mean_err)
        return errors
