"""Scale invariance of BN weights (Arora, Li and Lyu 2019): <W, grad_W L> = 0 and
||W - lr G||^2 = ||W||^2 + lr^2 ||G||^2 at eps = 0, the eps > 0 defect and its corrected
form, exactly (sympy) and through bnfast's engine.

Oracles independent of bnfast.claims: sympy's differentiation of the whole loss in the
symbols of W (no Jacobian, no chain rule by hand), the loss of a NumPy BN network and its
central differences, and a one-neuron instance worked out by hand."""

import numpy as np
import pytest
import sympy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bnfast.claims import audit as audit_module
from bnfast.claims.counterexample import find_counterexample
from bnfast.claims.scale_invariance import (check_scale_invariance, draw_network,
                                            draw_network_eps)

EPS64 = np.finfo(np.float64).eps

# One neuron, worked by hand: h = (0, 1), mu = 1/2, sigma^2 = 1/4; with eps = 1,
# s^2 = 5/4, z = hhat = (-1, 1)/sqrt(5), L(c W) = (c^2/2) / (c^2/4 + 1), and
# d/dc L(c W) at c = 1 = (5/4 - 1/4) / (25/16) = 16/25 = <W, G>.
X1, W1, V1, Y1 = [[0], [1]], [[1]], [1], [0, 0]


def sympy_loss(X, W, V, y, gamma=1, beta=0, eps=0):
    """The loss as one sympy expression in symbols w (d, k) and its gradient, by sympy's
    differentiation of the whole expression."""
    X, W = np.asarray(X), np.asarray(W)
    m, (d, k) = X.shape[0], W.shape
    w = sympy.Matrix(d, k, sympy.symbols(f"w0:{d * k}", real=True))
    H = sympy.Matrix(X.tolist()) * w
    out = [sympy.Integer(0)] * m
    for j in range(k):
        col = [H[i, j] for i in range(m)]
        mu = sum(col) / m
        s = sympy.sqrt(sum((c - mu) ** 2 for c in col) / m + eps)
        for i in range(m):
            out[i] += (gamma * (col[i] - mu) / s + beta) * int(V[j])
    loss = sum((int(y[i]) - out[i]) ** 2 for i in range(m))
    at = dict(zip(w, [sympy.Integer(int(v)) for v in W.ravel()]))
    grad = [[sympy.radsimp(sympy.simplify(sympy.diff(loss, w[a, b]).subs(at)))
             for b in range(k)] for a in range(d)]
    return sympy.simplify(loss.subs(at)), grad


def numpy_loss(X, W, V, y, gamma=1.0, beta=0.0, eps=0.0):
    H = np.asarray(X, float) @ np.asarray(W, float)
    z = gamma * (H - H.mean(0)) / np.sqrt(H.var(0) + eps) + beta
    return float(np.sum((np.asarray(y, float) - z @ np.asarray(V, float)) ** 2))


# ---- the hand instance and exactness ----------------------------------------------------

def test_the_hand_instance():
    r = check_scale_invariance(X1, W1, V1, Y1, eps=1, exact=True)
    assert r.lhs == sympy.Rational(16, 25) and r.rhs == 0 and r.holds is False
    assert r.relation == "=" and "not scale-invariant" in r.note
    assert r.loss == sympy.Rational(2, 5) and r.grad_gamma == [sympy.Rational(4, 5)]
    c = check_scale_invariance(X1, W1, V1, Y1, eps=1, form="corrected", exact=True)
    assert c.lhs == c.rhs == sympy.Rational(16, 25) and c.gap == 0 and c.holds is True
    # at eps = 0 the same neuron: BN of two samples is (-1, 1) whatever W is, G = 0
    z = check_scale_invariance(X1, W1, V1, Y1, exact=True)
    assert z.holds is True and list(z.grad.ravel()) == [0]
    f = check_scale_invariance(X1, W1, V1, Y1, eps=1)
    assert f.holds is False and f.lhs == pytest.approx(0.64, rel=1e-14)


@pytest.mark.parametrize("seed", range(4))
def test_exact_gradient_is_sympys_derivative_of_the_loss(seed):
    rng = np.random.default_rng(seed)
    for eps in (0, 2):
        inst = draw_network(rng, 4)
        try:
            r = check_scale_invariance(**inst, eps=eps, exact=True)
        except ValueError:
            continue
        loss, grad = sympy_loss(**inst, eps=eps)
        assert sympy.simplify(r.loss - loss) == 0
        for a, row in enumerate(grad):
            for b, g in enumerate(row):
                assert sympy.simplify(r.grad[a, b] - g) == 0, (a, b)


@pytest.mark.parametrize("seed", range(6))
def test_exact_identities_at_eps_0(seed):
    rng = np.random.default_rng(100 + seed)
    m = 3 + seed % 4
    while True:     # the first draw without a constant column of X W
        inst = draw_network(rng, m)
        if all(np.ptp(inst["X"] @ inst["W"], axis=0) > 0):
            break
    orth = check_scale_invariance(**inst, exact=True)
    step = check_scale_invariance(**inst, lr=sympy.Rational(3, 7), form="norm-step",
                                  exact=True)
    assert orth.gap == 0 and orth.lhs == 0 and orth.holds is True
    assert step.gap == 0 and step.holds is True
    assert step.lhs == step.norm_w_sq + sympy.Rational(9, 49) * step.norm_grad_sq
    # the lemma's second half: grad L(c W) = grad L(W) / c, and L(c W) = L(W)
    scaled = check_scale_invariance(inst["X"], 3 * inst["W"], inst["V"], inst["y"],
                                    exact=True)
    assert scaled.loss == orth.loss
    assert all(sympy.expand(a - 3 * b) == 0
               for a, b in zip(orth.grad.ravel(), scaled.grad.ravel()))


@pytest.mark.parametrize("seed", range(4))
def test_corrected_form_is_exact_for_every_eps(seed):
    rng = np.random.default_rng(200 + seed)
    inst = draw_network_eps(rng, 4)
    gamma = [2, -1][:inst["W"].shape[1]]
    for eps in (inst.pop("eps"), sympy.Rational(1, 3), 0):
        try:
            r = check_scale_invariance(**inst, eps=eps, gamma=gamma, beta=1,
                                       form="corrected", exact=True)
        except ValueError:
            continue
        assert r.gap == 0 and r.holds is True
        # the norm step is off by exactly -2 lr times the defect <W, G>
        step = check_scale_invariance(**inst, eps=eps, gamma=gamma, beta=1, lr=2,
                                      form="norm-step", exact=True)
        assert sympy.expand(step.rhs - step.lhs - 4 * r.defect) == 0
        assert (r.defect == 0) == (eps == 0 or step.holds)


# ---- the float path: bnfast's engine against the exact values -----------------------------

@pytest.mark.parametrize("seed", range(5))
def test_float_agrees_with_exact(seed):
    rng = np.random.default_rng(300 + seed)
    inst = draw_network_eps(rng, 5)
    drawn = inst.pop("eps")
    eps = drawn if seed % 2 else 0
    for form in ("orthogonal", "norm-step", "corrected"):
        try:
            ex = check_scale_invariance(**inst, eps=eps, lr=2, form=form, exact=True)
        except ValueError:
            return
        fl = check_scale_invariance(**inst, eps=eps, lr=2, form=form)
        assert fl.holds is ex.holds
        # to rounding: relative to the loss (G is 0 where V or the BN output's spread is)
        np.testing.assert_allclose(fl.grad, np.array(ex.grad, dtype=float), rtol=1e-12,
                                   atol=1e-13 * max(1.0, float(ex.loss)))
        assert abs(fl.lhs - float(ex.lhs)) <= fl.tolerance
        assert abs(fl.rhs - float(ex.rhs)) <= fl.tolerance
        assert fl.loss == pytest.approx(float(ex.loss), rel=1e-13)
        if form == "norm-step":     # one bnfast.train step against W - lr G exactly
            np.testing.assert_allclose(fl.w_next, np.array(ex.w_next, dtype=float),
                                       rtol=1e-13, atol=1e-13)


def test_engine_gradient_against_central_differences():
    rng = np.random.default_rng(7)
    X, W, V, y = rng.normal(size=(6, 3)), rng.normal(size=(3, 2)), rng.normal(size=2), \
        rng.normal(size=6)
    r = check_scale_invariance(X, W, V, y, eps=0.1)
    step = 1e-6
    fd = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        e = np.zeros_like(W)
        e[idx] = step
        fd[idx] = (numpy_loss(X, W + e, V, y, eps=0.1)
                   - numpy_loss(X, W - e, V, y, eps=0.1)) / (2 * step)
    np.testing.assert_allclose(r.grad, fd, rtol=1e-6, atol=1e-8)
    assert r.loss == pytest.approx(numpy_loss(X, W, V, y, eps=0.1), rel=1e-13)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), scale=st.sampled_from([1.0, 1e-3, 1e3]))
def test_float_identities_on_random_networks(seed, scale):
    rng = np.random.default_rng(seed)
    m, d, k = int(rng.integers(3, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    X, W = rng.normal(size=(m, d)), rng.normal(size=(d, k)) * scale
    assume(np.all(np.ptp(X @ W, axis=0) > 1e-6 * scale))
    V, y = rng.normal(size=k), rng.normal(size=m)
    gamma, beta = rng.uniform(0.5, 2, size=k), rng.normal(size=k)
    for form in ("orthogonal", "norm-step", "corrected"):
        r = check_scale_invariance(X, W, V, y, lr=0.3, gamma=gamma, beta=beta, form=form)
        assert r.holds is True, (form, r.gap, r.tolerance)
        assert abs(r.relative_gap) <= 64 * (m + d * k) * EPS64


# ---- a planted wrong form is caught ------------------------------------------------------

def _equal(a, b, exact):
    if exact:
        return sympy.expand(a - b) == 0
    return bool(abs(a - b) <= 1e-9 * (1 + abs(a) + abs(b)))


@pytest.mark.parametrize("wrong", ["lr instead of lr^2", "eps/sigma^2"])
def test_a_planted_wrong_form_is_caught(wrong):
    def check(instance, exact):
        inst = dict(instance)
        if wrong == "lr instead of lr^2":
            r = check_scale_invariance(**inst, form="norm-step", exact=exact)
            return _equal(r.lhs, r.norm_w_sq + r.lr * r.norm_grad_sq, exact)
        r = check_scale_invariance(**inst, form="corrected", exact=exact)
        s2, sigma2 = r.s[0] ** 2, r.sigma[0] ** 2
        if (sympy.sympify(sigma2) == 0) if exact else sigma2 == 0:
            return None
        return _equal(r.lhs, r.rhs * s2 / sigma2, exact)   # eps/sigma^2, not eps/s^2

    def draw(rng, m):
        inst = draw_network_eps(rng, m)
        inst["W"] = inst["W"][:, :1]
        inst["V"] = inst["V"][:1]
        if wrong == "lr instead of lr^2":
            inst["lr"] = np.array(2)
            del inst["eps"]
        return inst

    ce = find_counterexample(check, draw, tries=20, seed=0)
    assert ce is not None and ce.m <= 3
    assert check(ce.instance, exact=True) is False


def test_the_eps_rows_in_the_audit_and_reproducibility():
    rows = audit_module.audit(["scale-invariance"], seed=5)
    assert [(r.form, r.verdict) for r in rows] == [
        ("orthogonal", "identity"), ("norm step", "identity"), ("eps > 0", "fails"),
        ("corrected", "identity")]
    eps_row = rows[2]
    ce = eps_row.counterexample
    assert ce.m == 2 and ce.instance["W"].shape[1] == 1 and int(ce.instance["eps"]) >= 1
    assert eps_row.report.exact and eps_row.report.holds is False and eps_row.gap != 0
    assert any("GD step" in note for note in eps_row.notes)
    again = audit_module.audit(["scale-invariance"], seed=5)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rows]


def test_exact_audit_rows_have_gap_exactly_zero():
    rows = audit_module.audit(["scale-invariance"], exact=True, seed=1)
    for r in rows:
        if r.verdict == "identity":
            assert r.to_dict()["exact_forms"]["gap"] == "0"


# ---- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(X=[[1], [1]], W=[[1]], V=[1], y=[0, 0]), ValueError, "column 0 of X W is constant"),
    (dict(X=[[1, 0]], W=[[1], [1]], V=[1], y=[0]), ValueError, "m >= 2"),
    (dict(X=X1, W=[[1], [2]], V=[1], y=Y1), ValueError, r"W must have shape \(1, k\)"),
    (dict(X=X1, W=W1, V=[1, 2], y=Y1), ValueError, r"V must have shape \(1,\)"),
    (dict(X=X1, W=W1, V=V1, y=[0]), ValueError, r"y must have shape \(2,\)"),
    (dict(X=X1, W=W1, V=V1, y=Y1, lr=0), ValueError, "lr must be > 0"),
    (dict(X=X1, W=W1, V=V1, y=Y1, eps=-1), ValueError, "eps must be"),
    (dict(X=X1, W=W1, V=V1, y=Y1, gamma=[1, 2]), ValueError, "gamma must be a number"),
    (dict(X=X1, W=W1, V=V1, y=Y1, form="printed"), ValueError, "form"),
    (dict(X=X1, W=[[np.nan]], V=V1, y=Y1), ValueError, "W must be finite"),
])
def test_bad_input_raises(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_scale_invariance(**kwargs)
    with pytest.raises(error, match=match):
        check_scale_invariance(**kwargs, exact=True)
