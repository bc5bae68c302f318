"""lemma_4_5_holds_probability: P[(1) holds | <W0, W*> > 0] = 1/2 - theta/(2 pi) for an
isotropic random W0, against Monte Carlo with the instance checker check_lemma_4_5 (which
decides (1) from its two sides, knowing nothing of the closed form), in d = 2, 3, 5.

The angle oracle: a (with intercept) and W* (without) by np.linalg.lstsq, computed here."""

import math

import numpy as np
import pytest

from bnfast.claims import check_lemma_4_5, lemma_4_5_holds_probability

X_EX = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y_EX = np.array([8.0, 6.0, 11.0])


def slopes(X, y):
    """(a, W*): least squares with and without intercept."""
    a = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)[0][:-1]
    return a, np.linalg.lstsq(X, y, rcond=None)[0]


def angle(u, v):
    return math.acos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1))


def test_example_3_2():
    p, theta = lemma_4_5_holds_probability(X_EX, Y_EX)
    # a = (5, 3), W* = (7, 5): cos theta = 50 / sqrt(34 * 74)
    assert theta == pytest.approx(math.acos(50 / math.sqrt(34 * 74)), rel=1e-12)
    assert math.degrees(theta) == pytest.approx(4.574, abs=5e-4)
    assert p == pytest.approx(0.4873, abs=5e-5)
    assert p == pytest.approx(0.5 - theta / (2 * math.pi), rel=1e-15)


def test_negative_gamma_uses_the_opposite_ray():
    p, theta = lemma_4_5_holds_probability(X_EX, Y_EX, gamma=-2.0)
    assert theta == pytest.approx(math.pi - math.acos(50 / math.sqrt(34 * 74)), rel=1e-12)
    assert p == pytest.approx(0.5 - theta / (2 * math.pi), rel=1e-14)
    assert p < 0.02


def instance(seed, d, intercept):
    rng = np.random.default_rng(seed)
    m = d + 4
    X = rng.normal(size=(m, d)) + rng.normal(size=d)
    y = X @ rng.normal(size=d) + intercept + 0.2 * rng.normal(size=m)
    return X, y, rng


@pytest.mark.parametrize("d, seed, gamma", [(2, 1, 1.0), (3, 2, 1.0), (5, 3, -1.0)])
def test_monte_carlo_agrees(d, seed, gamma):
    X, y, rng = instance(seed, d, intercept=3.0)
    p, theta = lemma_4_5_holds_probability(X, y, gamma=gamma)
    a, w_star = slopes(X, y)
    assert theta == pytest.approx(angle(math.copysign(1, gamma) * a, w_star), rel=1e-9)
    assert 0.05 < p < 0.47            # far from 1/2: the test can tell theta matters
    n = holds = 0
    while n < 2500:
        w0 = rng.normal(size=d)
        r = check_lemma_4_5(X, y, w0, gamma=gamma, cross_check=False)
        if r.premise:
            n += 1
            holds += r.holds
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(holds / n - p) < 4 * sd, (holds / n, p, sd)


@pytest.mark.parametrize("sx, sy", [(1.0, 1e154), (1e-160, 1.0), (1e300, 1.0),
                                     (1.0, 1e-300), (1e-300, 1e300), (1e200, 1e-200),
                                     (2.0 ** 900, 2.0 ** -1000)])
def test_scaled_data_give_the_unscaled_probability(sx, sy):
    # Issue 23: (0.5, 0.0) or (nan, nan) on such data (v and W* over- or underflowed).
    # theta does not see positive scales of X and y; the data are divided by powers of
    # two first (exact), so a power-of-two factor changes no bit and a decimal one only
    # the inputs' last bits.
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    base = lemma_4_5_holds_probability(X, y)
    a, w = slopes(X, y)
    assert base[1] == pytest.approx(angle(a, w), rel=1e-12)
    got = lemma_4_5_holds_probability(X * sx, y * sy)
    if math.log2(sx).is_integer() and math.log2(sy).is_integer():
        assert got == base
    else:
        assert got == pytest.approx(base, rel=1e-12)
    assert lemma_4_5_holds_probability(X_EX * sx, Y_EX * sy, gamma=-1.0) == \
        pytest.approx(lemma_4_5_holds_probability(X_EX, Y_EX, gamma=-1.0), rel=1e-12)


def test_w_star_on_the_bn_ray_gives_probability_one():
    # y = X a without intercept: W* = a, theta = 0 and (1) is an equality
    rng = np.random.default_rng(5)
    X = rng.normal(size=(7, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    assert lemma_4_5_holds_probability(X, y) == (1.0, 0.0)
    for _ in range(200):
        r = check_lemma_4_5(X, y, rng.normal(size=3), cross_check=False)
        assert r.holds is not False
    # and the opposite ray (gamma < 0): theta = pi, it never holds under the premise
    p, theta = lemma_4_5_holds_probability(X, y, gamma=-1.0)
    assert theta == pytest.approx(math.pi, rel=1e-12) and p == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("args, error, match", [
    ((X_EX, Y_EX[:2]), ValueError, "y must have shape"),
    ((X_EX, np.stack([Y_EX, Y_EX], axis=1)), ValueError, "one neuron"),
    ((X_EX[:2], Y_EX[:2]), ValueError, "only 2 samples for 2 inputs"),
    ((X_EX, np.array([4.0, 4.0, 4.0])), ValueError, "constant"),
    ((X_EX, np.array([8.0, np.nan, 11.0])), ValueError, "finite"),
    ((X_EX, "abc"), TypeError, "y must be"),
    ((X_EX[:, 0], Y_EX), ValueError, "X must be a non-empty"),
])
def test_bad_input_raises(args, error, match):
    with pytest.raises(error, match=match):
        lemma_4_5_holds_probability(*args)


def test_gamma_is_validated():
    with pytest.raises(ValueError, match="gamma = 0"):
        lemma_4_5_holds_probability(X_EX, Y_EX, gamma=0.0)
    with pytest.raises(TypeError):
        lemma_4_5_holds_probability(X_EX, Y_EX, gamma="1")
