"""bnfast.claims in float64: Lemma 4.5 (Santurkar et al. 2018) against Example 3.2 of
Dannemann and Junike (2025), and instances of the same family never seen before.

Oracles are independent of the code under test: the numbers of docs/math/lemma_4_5.md typed in by
hand, the BN loss computed from its definition (mean, biased std) with its gradient
by finite differences, and instances generated from a known affine relation
y = X a + c, whose BN optima must be the ray of a (sign(gamma) a)."""

import dataclasses
import json
import math

import numpy as np
import pytest

import bnfast
from bnfast.claims import EXAMPLE_3_2, Lemma45Report, check_lemma_4_5, example_3_2

SQRT78 = math.sqrt(78)
X_EX = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y_EX = np.array([8.0, 6.0, 11.0])
W0_EX = np.array([7.0, 5.0])


# ---- independent oracles ------------------------------------------------------------

def bn_loss(X, y, w, gamma=1.0, beta=0.0):
    """sum_i (y_i - gamma (h_i - mean h)/std h - beta)^2, h = X w, biased std, eps = 0."""
    h = X @ w
    hhat = (h - h.mean()) / h.std()
    return float(np.sum((y - gamma * hhat - beta) ** 2))


def fd_gradient(f, w, step=1e-6):
    g = np.zeros_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = step
        g[i] = (f(w + e) - f(w - e)) / (2 * step)
    return g


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def affine_instance(seed, m=7, d=3):
    """X random (m, d), y = X a + c exactly in the sense of the generator (c != 0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d))
    a = rng.normal(size=d)
    c = rng.uniform(1.0, 3.0) * rng.choice([-1.0, 1.0])
    return X, X @ a + c, a, rng


# ---- Example 3.2: the numbers of docs/math/lemma_4_5.md------------------------------------------

def test_example_3_2_reproduces_the_numbers_of_math_md():
    r = example_3_2(cross_check=False)
    assert not r.exact and r.n_neurons is None
    np.testing.assert_allclose(r.w_star, [7, 5], rtol=1e-13)
    assert r.inner_w0_w_star == pytest.approx(74, rel=1e-13)
    assert r.premise is True
    assert cosine(r.bn_direction, np.array([5.0, 3.0])) == pytest.approx(1, abs=1e-14)
    np.testing.assert_allclose(r.bn_optimum, [125 / 17, 75 / 17], rtol=1e-13)
    assert r.lhs == pytest.approx(8 / 17, rel=1e-12)
    assert abs(r.rhs) < 1e-12
    assert r.holds is False and r.refutes
    np.testing.assert_allclose(r.grad_bn_at_w_star, [-10 * SQRT78 / 507, 14 * SQRT78 / 507],
                               rtol=1e-12)
    np.testing.assert_allclose(r.grad_bn_at_w_star, [-0.1741965, 0.2438751], atol=1e-7)
    assert r.w_star_is_bn_critical is False
    assert r.loss_std_at_w_star == pytest.approx(3, rel=1e-12)
    assert r.loss_bn_at_w_star == pytest.approx(224 - 18 * SQRT78 / 13, rel=1e-13)
    assert r.loss_bn_at_w_star == pytest.approx(211.771408, abs=1e-6)
    assert r.loss_bn_min == pytest.approx(224 - 2 * math.sqrt(38), rel=1e-13)
    assert r.loss_bn_min == pytest.approx(211.671172, abs=1e-6)


def test_example_3_2_equals_the_checker_on_the_data():
    a = example_3_2(cross_check=False)
    b = check_lemma_4_5(X_EX, Y_EX, W0_EX, gamma=1.0, beta=0.0, cross_check=False)
    np.testing.assert_array_equal(a.grad_bn_at_w_star, b.grad_bn_at_w_star)
    assert (a.lhs, a.rhs, a.holds) == (b.lhs, b.rhs, b.holds)


def test_example_3_2_gradient_and_losses_match_the_definition():
    r = example_3_2(cross_check=False)
    f = lambda w: bn_loss(X_EX, Y_EX, w)  # noqa: E731
    np.testing.assert_allclose(r.grad_bn_at_w_star, fd_gradient(f, W0_EX), rtol=1e-7)
    assert r.loss_bn_at_w_star == pytest.approx(f(W0_EX), rel=1e-13)
    assert r.loss_bn_min == pytest.approx(f(np.array([5.0, 3.0])), rel=1e-13)
    # The BN minimum is the minimum over all directions (a fine scan of the circle).
    angles = np.linspace(0, 2 * np.pi, 20001)
    scan = min(f(np.array([np.cos(t), np.sin(t)])) for t in angles)
    assert r.loss_bn_min <= scan + 1e-9
    assert scan - r.loss_bn_min < 1e-6


def test_the_native_network_gives_the_same_loss_and_gradient_at_w_star():
    net = bnfast.Network([bnfast.Dense(2, 1, activation="identity", bias=False,
                                       batch_norm=bnfast.BatchNorm(1.0, 0.0, trainable=False,
                                                                   eps=0.0))])
    net.params = W0_EX
    r = example_3_2(cross_check=False)
    assert net.loss(X_EX, Y_EX) == pytest.approx(r.loss_bn_at_w_star, rel=1e-13)
    np.testing.assert_allclose(net.gradient(X_EX, Y_EX), r.grad_bn_at_w_star, rtol=1e-10)


def test_example_3_2_native_gradient_descent_ends_on_the_ray():
    r = example_3_2()
    gd = r.gd
    assert gd is not None and gd.agrees
    assert gd.angle < 1e-6
    end = np.asarray(gd.end_point)
    # on the ray 3 w1 = 5 w2, w1 > 0, checked directly
    assert end[0] > 0
    assert abs(3 * end[0] - 5 * end[1]) < 1e-6 * np.linalg.norm(end)
    assert gd.loss_end == pytest.approx(224 - 2 * math.sqrt(38), rel=1e-12)
    assert gd.loss_start == pytest.approx(224 - 18 * SQRT78 / 13, rel=1e-12)
    np.testing.assert_allclose(gd.end_direction, np.array([5, 3]) / math.sqrt(34), atol=1e-9)
    # GD moved away from W0 = W*: the standard optimum is not a BN optimum
    assert np.linalg.norm(end - W0_EX) > 0.5


# ---- instances of the family never seen before ----------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_random_affine_instance_bn_optima_are_the_ray_of_a(seed):
    X, y, a, rng = affine_instance(seed)
    w0 = rng.normal(size=3)
    if w0 @ a <= 0:
        w0 = -w0
    r = check_lemma_4_5(X, y, w0, cross_check=False)
    np.testing.assert_allclose(r.w_star, np.linalg.solve(X.T @ X, X.T @ y), rtol=1e-10)
    assert r.inner_w0_w_star == pytest.approx(w0 @ r.w_star, rel=1e-12)
    assert r.premise == bool(w0 @ r.w_star > 0)
    assert cosine(r.bn_direction, a) == pytest.approx(1, abs=1e-12)
    t = w0 @ a / (a @ a)
    np.testing.assert_allclose(r.bn_optimum, t * a, rtol=1e-10, atol=1e-12)
    assert r.lhs == pytest.approx(np.sum((w0 - t * a) ** 2), rel=1e-10)
    w_star = r.w_star
    rhs = np.sum((w0 - w_star) ** 2) - (w_star @ w_star - w_star @ w0) ** 2 / (w_star @ w_star)
    assert r.rhs == pytest.approx(rhs, rel=1e-9, abs=1e-12)
    if r.premise:
        assert r.holds is (r.lhs <= r.rhs)
    else:
        assert r.holds is None
    f = lambda w: bn_loss(X, y, w)  # noqa: E731
    np.testing.assert_allclose(r.grad_bn_at_w_star, fd_gradient(f, w_star), rtol=1e-6,
                               atol=1e-8)
    assert r.loss_bn_min == pytest.approx(f(a), rel=1e-12)
    assert r.loss_bn_at_w0 == pytest.approx(f(w0), rel=1e-12)
    # a is a minimum: zero gradient there, and no random direction does better
    assert np.linalg.norm(fd_gradient(f, a)) < 1e-6
    others = [f(rng.normal(size=3)) for _ in range(200)]
    assert min(others) >= r.loss_bn_min - 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_random_affine_instance_native_gd_agrees(seed):
    X, y, a, rng = affine_instance(100 + seed, m=9, d=3)
    w0 = rng.normal(size=3)
    r = check_lemma_4_5(X, y, w0)
    assert r.gd.agrees, r.gd
    assert cosine(np.asarray(r.gd.end_point), a) == pytest.approx(1, abs=1e-10)


def test_negative_gamma_flips_the_ray():
    X, y, a, rng = affine_instance(7)
    w0 = a + 0.3 * rng.normal(size=3)          # points along a, away from -a
    r = check_lemma_4_5(X, y, w0, gamma=-1.5, beta=0.25)
    assert cosine(r.bn_direction, -a) == pytest.approx(1, abs=1e-12)
    f = lambda w: bn_loss(X, y, w, gamma=-1.5, beta=0.25)  # noqa: E731
    assert r.loss_bn_min == pytest.approx(f(-a), rel=1e-12)
    assert f(-a) < f(a)
    # w0 points away from the open ray: no closest optimum, lhs is the infimum ||w0||^2
    assert w0 @ (-a) <= 0
    assert r.bn_optimum is None
    assert r.lhs == pytest.approx(w0 @ w0, rel=1e-13)
    np.testing.assert_allclose(r.grad_bn_at_w_star, fd_gradient(f, r.w_star), rtol=1e-6,
                               atol=1e-8)
    assert r.gd.agrees
    assert cosine(np.asarray(r.gd.end_point), -a) == pytest.approx(1, abs=1e-10)


def test_negative_gamma_with_w0_toward_the_flipped_ray():
    X, y, a, rng = affine_instance(8)
    w0 = -a + 0.2 * rng.normal(size=3)
    r = check_lemma_4_5(X, y, w0, gamma=-1.0, cross_check=False)
    t = w0 @ (-a) / (a @ a)
    assert t > 0
    np.testing.assert_allclose(r.bn_optimum, -t * a, rtol=1e-10)


def test_example_3_2_with_negative_gamma():
    r = check_lemma_4_5(X_EX, Y_EX, W0_EX, gamma=-1.0, cross_check=False)
    assert cosine(r.bn_direction, np.array([-5.0, -3.0])) == pytest.approx(1, abs=1e-14)
    assert r.bn_optimum is None                       # W0 points away from -(5, 3)
    assert r.lhs == pytest.approx(74, rel=1e-13)      # ||W0||^2, the infimum
    assert r.holds is False
    # the gradient flips sign with gamma
    np.testing.assert_allclose(r.grad_bn_at_w_star, [10 * SQRT78 / 507, -14 * SQRT78 / 507],
                               rtol=1e-12)


def test_premise_failing_gives_none_not_false():
    r = check_lemma_4_5(X_EX, Y_EX, -W0_EX, cross_check=False)   # <W0, W*> = -74
    assert r.inner_w0_w_star == pytest.approx(-74, rel=1e-13)
    assert r.premise is False
    assert r.holds is None
    assert r.refutes is False


def test_inequality_can_hold():
    # w0 on the BN ray but off the line of W*: lhs = 0 < rhs = distance^2 to that line
    w0 = np.array([5.0, 3.0])
    r = check_lemma_4_5(X_EX, Y_EX, w0, cross_check=False)
    assert r.premise is True
    assert r.lhs == pytest.approx(0, abs=1e-12)
    # squared distance of (5, 3) to the line through (7, 5): (5*5 - 3*7)^2 / 74
    assert r.rhs == pytest.approx(16 / 74, rel=1e-12)
    assert r.holds is True


# ---- degenerate instances -------------------------------------------------------------

@pytest.mark.parametrize("X, y, w0, match", [
    (X_EX, Y_EX[:2], W0_EX, "y must have shape"),
    (X_EX, Y_EX, np.array([7.0, 5.0, 1.0]), "w0 must have shape"),
    (X_EX, Y_EX[:, None], W0_EX, "w0 must have shape"),
    (X_EX[:, 0], Y_EX, W0_EX, "X must be a non-empty"),
    (np.zeros((0, 2)), np.zeros(0), W0_EX, "X must be a non-empty"),
])
def test_inconsistent_shapes_raise(X, y, w0, match):
    with pytest.raises(ValueError, match=match):
        check_lemma_4_5(X, y, w0, cross_check=False)


def test_rank_deficient_centred_x_raises():
    X = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]])     # dependent columns
    with pytest.raises(ValueError, match="centred X has rank 1 < d = 2"):
        check_lemma_4_5(X, np.array([1.0, 2.0, 4.0, 3.0]), W0_EX, cross_check=False)
    # full rank X whose centring loses a rank: a constant column (it acts as a bias)
    X = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    with pytest.raises(ValueError, match="rank 1 < d = 2"):
        check_lemma_4_5(X, np.array([1.0, 3.0, 2.0]), W0_EX, cross_check=False)
    # too few samples
    with pytest.raises(ValueError, match="only 2 samples for 2 inputs"):
        check_lemma_4_5(X_EX[:2], Y_EX[:2], W0_EX, cross_check=False)


def test_constant_targets_raise():
    with pytest.raises(ValueError, match="constant"):
        check_lemma_4_5(X_EX, np.array([4.0, 4.0, 4.0]), W0_EX, cross_check=False)
    Y = np.stack([Y_EX, np.full(3, 2.0)], axis=1)
    with pytest.raises(ValueError, match=r"y \(column 1\) are constant"):
        check_lemma_4_5(X_EX, Y, np.stack([W0_EX, W0_EX], axis=1), cross_check=False)


def test_targets_uncorrelated_with_inputs_raise():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = np.array([1.0, 1.0, -1.0, -1.0])       # centred y orthogonal to both columns
    with pytest.raises(ValueError, match="uncorrelated"):
        check_lemma_4_5(X, y, W0_EX, cross_check=False)


def test_w_star_zero_raises():
    # X^T y = 0 (W* = 0, where BN is undefined) while the centred data still correlate
    y = np.array([1.0, 1.0, -1.0])
    with pytest.raises(ValueError, match=r"W\* = 0"):
        check_lemma_4_5(X_EX, y, W0_EX, cross_check=False)


def test_gamma_zero_and_zero_weights_raise():
    with pytest.raises(ValueError, match="gamma = 0"):
        check_lemma_4_5(X_EX, Y_EX, W0_EX, gamma=0.0, cross_check=False)
    with pytest.raises(ValueError, match="w0 is zero"):
        check_lemma_4_5(X_EX, Y_EX, np.zeros(2), cross_check=False)


def test_non_finite_and_non_numeric_inputs_raise():
    with pytest.raises(ValueError, match="finite"):
        check_lemma_4_5(X_EX, np.array([8.0, np.nan, 11.0]), W0_EX, cross_check=False)
    with pytest.raises(ValueError, match="finite"):
        check_lemma_4_5(X_EX, Y_EX, W0_EX, gamma=math.inf, cross_check=False)
    with pytest.raises(TypeError):
        check_lemma_4_5(X_EX, Y_EX, W0_EX, gamma="1", cross_check=False)


# ---- a layer of k neurons (column by column) ----------------------------------------

def test_layer_is_checked_column_by_column():
    X, y1, a1, rng = affine_instance(21, m=8, d=2)
    y2 = X @ np.array([-2.0, 0.5]) - 1.0
    Xl = np.vstack([X_EX, X])                     # 11 samples, 2 inputs
    Y = np.stack([np.concatenate([Y_EX, y1]), np.concatenate([Y_EX - 1.0, y2]),
                  np.concatenate([Y_EX, 2 * y1])], axis=1)
    W0 = rng.normal(size=(2, 3)) + 3.0
    r = check_lemma_4_5(Xl, Y, W0)
    assert r.n_neurons == 3 and len(r.columns) == 3
    assert r.w_star.shape == (2, 3) and r.grad_bn_at_w_star.shape == (2, 3)
    assert r.lhs.shape == (3,) and r.premise.shape == (3,)
    for j in range(3):
        single = check_lemma_4_5(Xl, Y[:, j], W0[:, j], cross_check=False)
        np.testing.assert_allclose(r.w_star[:, j], single.w_star, rtol=1e-12)
        np.testing.assert_allclose(r.grad_bn_at_w_star[:, j], single.grad_bn_at_w_star,
                                   rtol=1e-12)
        assert r.lhs[j] == pytest.approx(single.lhs, rel=1e-12)
        assert r.rhs[j] == pytest.approx(single.rhs, rel=1e-12, abs=1e-12)
        assert r.columns[j].holds is single.holds
        f = lambda w, j=j: bn_loss(Xl, Y[:, j], w)  # noqa: E731
        np.testing.assert_allclose(r.grad_bn_at_w_star[:, j], fd_gradient(f, single.w_star),
                                   rtol=1e-6, atol=1e-8)
    # the layer's loss is the sum over the neurons
    assert r.loss_bn_at_w0 == pytest.approx(sum(bn_loss(Xl, Y[:, j], W0[:, j])
                                                for j in range(3)), rel=1e-12)
    # the native network trains the k neurons together: each column ends on its ray
    assert r.gd.agrees
    assert np.asarray(r.gd.angle).shape == (3,)
    for j in range(3):
        assert cosine(np.asarray(r.gd.end_point)[:, j], r.bn_direction[:, j]) == \
            pytest.approx(1, abs=1e-10)


def test_layer_verdict_aggregation():
    Y = np.stack([Y_EX, Y_EX], axis=1)
    # column 0 refutes (W0 = W*), column 1 satisfies (1) (w0 on the BN ray)
    r = check_lemma_4_5(X_EX, Y, np.array([[7.0, 5.0], [5.0, 3.0]]), cross_check=False)
    assert [c.holds for c in r.columns] == [False, True]
    assert r.holds is False
    # both satisfy (1)
    r = check_lemma_4_5(X_EX, Y, np.array([[5.0, 10.0], [3.0, 6.0]]), cross_check=False)
    assert [c.holds for c in r.columns] == [True, True] and r.holds is True
    # one satisfies (1), the other's premise fails: nothing refuted, not all claimed
    r = check_lemma_4_5(X_EX, Y, np.array([[5.0, -7.0], [3.0, -5.0]]), cross_check=False)
    assert [c.holds for c in r.columns] == [True, None] and r.holds is None
    assert r.premise.tolist() == [True, False]


# ---- the report object ------------------------------------------------------------------

def test_report_is_frozen_and_serializable():
    r = example_3_2()
    assert isinstance(r, Lemma45Report)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.holds = True
    with pytest.raises(ValueError):
        r.w_star[0] = 1.0                         # read-only arrays
    d = json.loads(json.dumps(r.to_dict()))
    assert d["holds"] is False and d["premise"] is True
    np.testing.assert_allclose(d["grad_bn_at_w_star"], r.grad_bn_at_w_star, rtol=0)
    assert d["gd"]["agrees"] is True
    assert "exact_forms" not in d


def test_gd_overrides_are_used():
    r = example_3_2(gd_lr=0.5, gd_steps=10)
    assert (r.gd.lr, r.gd.steps) == (0.5, 10)
    assert not r.gd.agrees                        # 10 small steps do not reach the ray
    assert r.gd.angle > 1e-6


def test_importing_the_claims_is_light():
    """sympy is imported only by exact=True, matplotlib only by the plot."""
    import subprocess
    import sys
    import tempfile
    code = ("import sys, bnfast.claims, bnfast.cli; "
            "print('sympy' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True,
                         cwd=tempfile.gettempdir()).stdout.split()  # not the source tree

    assert out == ["False", "False"]


def test_exact_must_be_a_bool():
    data = {k: v for k, v in EXAMPLE_3_2.items()}
    with pytest.raises(TypeError, match="exact must be a bool"):
        check_lemma_4_5(data["X"], data["y"], data["w0"], exact="yes")
