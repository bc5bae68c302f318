"""The BN variants (docs/math/networks.md section 7: the "std", "l1", "l2", "linf"
scales) and the loss reduction (section 6) of bnfast.reference, against an independent
forward pass (reference_cases.manual_forward_ext) and central differences in float64;
the new keys of the batch_norm dict and their checks.

Tolerances. Forward: the same formulas in a different order (sigmoid through tanh,
column sums pairwise), ~1e-16 per operation, so 1e-12. Gradient: central differences
with h = 1e-6 have truncation error ~h^2 |L'''| ~ 1e-12 and rounding error ~1e-16 |L| / h
~ 1e-9 for losses of order 10; 1e-6 (relative to the largest entry) keeps a margin of
~1000. The lp norms are not differentiable where some h = 0 (l1) or the largest |h| is
tied (linf): draws within 1e-3 of such a point are redrawn, so the +-1e-6 steps never
cross one.
"""

import math

import numpy as np
import pytest

from bnfast import reference
from reference_cases import (bn, central_gradient, count_params, dense,
                             manual_forward_ext, random_params, rel_err, smooth_margin)

NORMS = ("std", "l1", "l2", "linf")
VARIANTS = [(norm, act, eps, trainable) for norm in NORMS for act in ("tanh", "sigmoid")
            for eps, trainable in ((0.0, True), (0.2, False))]


def variant_case(norm, activation, eps, trainable, seed, m=7):
    """3 -> 4 -> 3 -> 2: two BN layers with ``norm`` (the first without a bias), an
    identity output layer; away from the lp norms' kinks. Returns (layers, params, X, y)."""
    for attempt in range(200):
        rng = np.random.default_rng([seed, attempt])
        norms = [bn(float(rng.uniform(0.6, 1.4)), float(rng.uniform(-0.5, 0.5)),
                    trainable, eps, norm=norm) for _ in range(2)]
        layers = [dense(3, 4, activation, False, norms[0]),
                  dense(4, 3, activation, True, norms[1]),
                  dense(3, 2, "identity", True, None)]
        params = random_params(layers, rng)
        X, y = rng.normal(0, 1, (m, 3)), rng.normal(0, 1, (m, 2))
        if smooth_margin(layers, params, X) > 1e-3:
            return layers, params, X, y
    raise AssertionError("no draw away from the kinks of the lp norms")


IDS = [f"{n}-{a}-eps{e}-{'train' if t else 'const'}" for n, a, e, t in VARIANTS]


@pytest.mark.parametrize("norm,activation,eps,trainable", VARIANTS, ids=IDS)
def test_forward_matches_the_formulas(norm, activation, eps, trainable):
    layers, params, X, y = variant_case(norm, activation, eps, trainable, seed=1)
    assert reference.param_count(layers) == count_params(layers) == params.size
    expected, _ = manual_forward_ext(layers, params, X)
    assert rel_err(reference.network_forward(layers, params, X), expected) <= 1e-12
    assert reference.network_loss(layers, params, X, y) == pytest.approx(
        np.sum((y - expected) ** 2), rel=1e-12)


@pytest.mark.parametrize("norm,activation,eps,trainable", VARIANTS, ids=IDS)
def test_gradient_matches_central_differences(norm, activation, eps, trainable):
    layers, params, X, y = variant_case(norm, activation, eps, trainable,
                                        seed=100 + VARIANTS.index((norm, activation, eps,
                                                                   trainable)))
    grad = reference.network_gradient(layers, params, X, y)
    numerical = central_gradient(lambda p: reference.network_loss(layers, p, X, y), params)
    assert rel_err(grad, numerical) <= 1e-6


def test_std_is_the_default_and_the_old_transform():
    """norm "std" written out, left out, and the plain BN of manual_forward: the same."""
    rng = np.random.default_rng(4)
    plain = [dense(3, 4, "tanh", True, bn(1.2, 0.1, True, 0.0)), dense(4, 2)]
    explicit = [dense(3, 4, "tanh", True, bn(1.2, 0.1, True, 0.0, norm="std",
                                              momentum=0.1, noise=None)), dense(4, 2)]
    params = random_params(plain, rng)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    for fn in (reference.network_forward, reference.network_loss,
               reference.network_gradient):
        args = (X,) if fn is reference.network_forward else (X, y)
        np.testing.assert_array_equal(fn(plain, params, *args), fn(explicit, params, *args))


@pytest.mark.parametrize("norm", NORMS)
def test_scales_by_hand_on_one_column(norm):
    """One neuron, identity weights: z = (h - mu)/sqrt(s^2 + eps) with s from the table."""
    h = np.array([3.0, -1.0, 0.5, 2.0, -4.0])
    s = {"std": np.std(h), "l1": np.mean(np.abs(h)), "l2": math.sqrt(np.mean(h * h)),
         "linf": 4.0}[norm]
    layers = [dense(1, 1, "identity", False, bn(1.0, 0.0, False, 0.5, norm=norm))]
    out = reference.network_forward(layers, [1.0], h[:, None])
    np.testing.assert_allclose(out[:, 0], (h - h.mean()) / math.sqrt(s * s + 0.5),
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("norm", NORMS)
def test_eps_zero_is_scale_invariant(norm):
    """Every scale is positively homogeneous (degree 1) in h, as is h - mu, so at eps = 0
    a bias-free BN neuron's output does not change when its weights are scaled by c > 0,
    and its gradient is orthogonal to its weights (batch_norm.md section 4)."""
    layers, params, X, y = variant_case(norm, "tanh", 0.0, True, seed=7)
    scaled = params.copy()
    scaled[3:6] *= 3.7  # neuron 1 of the first layer: W[1, :]
    assert rel_err(reference.network_forward(layers, scaled, X),
                   reference.network_forward(layers, params, X)) <= 1e-12
    grad = reference.network_gradient(layers, params, X, y)
    assert abs(grad[3:6] @ params[3:6]) <= 1e-12 * np.linalg.norm(grad) * np.linalg.norm(
        params[3:6])


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_lp_norms_are_uncentred(norm):
    """Adding a constant to a column changes s (not so for "std")."""
    h = np.array([1.0, 2.0, 4.0])
    layers = [dense(1, 1, "identity", True, bn(1.0, 0.0, False, 0.0, norm=norm))]
    a = reference.network_forward(layers, [1.0, 0.0], h[:, None])
    b = reference.network_forward(layers, [1.0, 5.0], h[:, None])
    assert np.max(np.abs(a - b)) > 0.1
    std = [dense(1, 1, "identity", True, bn(1.0, 0.0, False, 0.0))]
    np.testing.assert_allclose(reference.network_forward(std, [1.0, 0.0], h[:, None]),
                               reference.network_forward(std, [1.0, 5.0], h[:, None]),
                               rtol=0, atol=1e-15)


# ---------------------------------------------------------------- eps = 0 and s = 0


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_lp_all_zero_column_with_eps_zero_names_the_neuron(norm):
    """Neuron 1 has zero weights and no bias: h = 0, s = 0."""
    layers = [dense(2, 3, "tanh", False, bn(1.0, 0.0, True, 0.0, norm=norm)), dense(3, 1)]
    params = np.concatenate([[1.0, 0.5, 0.0, 0.0, -1.0, 2.0], np.ones(6), np.ones(4)])
    X, y = np.array([[1.0, 0.0], [0.3, 0.7], [-1.0, 2.0]]), np.zeros(3)
    v = np.ones(params.size)
    for call in (lambda: reference.network_forward(layers, params, X),
                 lambda: reference.network_loss(layers, params, X, y),
                 lambda: reference.network_gradient(layers, params, X, y),
                 lambda: reference.network_hvp(layers, params, X, y, v),
                 lambda: reference.train(layers, params, X, y, 0.1, 3)):
        with pytest.raises(ValueError, match="layer 0, neuron 1 has an all-zero "
                                             "pre-activation .*eps == 0"):
            call()
    layers[0]["batch_norm"]["eps"] = 1e-3  # the neuron then outputs beta
    assert np.all(np.isfinite(reference.network_forward(layers, params, X)))


def test_lp_constant_nonzero_column_is_fine_at_eps_zero():
    """A constant non-zero column has s > 0 for the lp norms: zhat = 0, z = beta."""
    layers = [dense(1, 1, "identity", True, bn(1.0, 0.25, False, 0.0, norm="l2"))]
    out = reference.network_forward(layers, [0.0, 3.0], [[1.0], [2.0]])
    np.testing.assert_array_equal(out, [[0.25], [0.25]])
    with pytest.raises(ValueError, match="layer 0, neuron 0 has a constant"):
        std = [dense(1, 1, "identity", True, bn(trainable=False, eps=0.0))]
        reference.network_forward(std, [0.0, 3.0], [[1.0], [2.0]])


# ---------------------------------------------------------------- loss = "mean"


@pytest.mark.parametrize("norm", NORMS)
def test_mean_loss_is_the_sum_over_m(norm):
    layers, params, X, y = variant_case(norm, "sigmoid", 0.1, True, seed=11, m=6)
    total = reference.network_loss(layers, params, X, y)
    assert reference.network_loss(layers, params, X, y, loss="mean") == pytest.approx(
        total / 6, rel=1e-15)
    assert reference.network_loss(layers, params, X, y, loss="sum") == total
    grad = reference.network_gradient(layers, params, X, y)
    assert rel_err(reference.network_gradient(layers, params, X, y, loss="mean"),
                   grad / 6) <= 1e-15


@pytest.mark.parametrize("loss,exc,match", [
    ("max", ValueError, "loss must be 'sum' or 'mean', got 'max'"),
    ("Sum", ValueError, "loss must be 'sum' or 'mean'"),
    (None, TypeError, "loss must be 'sum' or 'mean', got NoneType"),
    (1, TypeError, "loss must be 'sum' or 'mean', got int"),
])
def test_loss_argument(loss, exc, match):
    layers, params, X, y = [dense(2, 1)], np.zeros(3), np.zeros((3, 2)), np.zeros(3)
    for call in (lambda: reference.network_loss(layers, params, X, y, loss=loss),
                 lambda: reference.network_gradient(layers, params, X, y, loss=loss),
                 lambda: reference.network_hvp(layers, params, X, y, params, loss=loss),
                 lambda: reference.train(layers, params, X, y, 0.1, 1, loss=loss)):
        with pytest.raises(exc, match=match):
            call()


# ---------------------------------------------------------------- the new dict keys


def bn_case(**changes):
    norm = bn(1.0, 0.0, True, 1e-5, norm="l2", momentum=0.5,
              noise={"n_mu": 0.5, "n_sigma": 1.25, "r_mu": 0.1, "r_sigma": 0.1})
    for key, value in changes.items():
        if key.startswith("noise_"):
            norm["noise"][key[6:]] = value
        else:
            norm[key] = value
    return [dense(2, 3, "tanh", False, norm), dense(3, 1)]


def drop_noise_key(key):
    layers = bn_case()
    del layers[0]["batch_norm"]["noise"][key]
    return layers


BN = r"layers\[0\]\['batch_norm'\]"
NOISE = BN + r"\['noise'\]"
BN_ERRORS = [
    ("norm-unknown", bn_case(norm="l3"), ValueError,
     BN + r"\['norm'\]: unknown norm 'l3'; expected one of std, l1, l2, linf"),
    ("norm-upper", bn_case(norm="L2"), ValueError, r"\['norm'\]: unknown norm 'L2'"),
    ("norm-none", bn_case(norm=None), TypeError, BN + r"\['norm'\] must be a str"),
    ("norm-int", bn_case(norm=2), TypeError, r"\['norm'\] must be a str"),
    ("momentum-0", bn_case(momentum=0.0), ValueError, BN + r"\['momentum'\] must be in "
     r"\(0, 1\]"),
    ("momentum-big", bn_case(momentum=1.5), ValueError, r"\['momentum'\] must be in"),
    ("momentum-neg", bn_case(momentum=-0.1), ValueError, r"\['momentum'\] must be in"),
    ("momentum-nan", bn_case(momentum=math.nan), ValueError, r"\['momentum'\] must be in"),
    ("momentum-bool", bn_case(momentum=True), TypeError,
     r"\['momentum'\] must be a real number"),
    ("momentum-str", bn_case(momentum="0.1"), TypeError,
     r"\['momentum'\] must be a real number"),
    ("unknown-key", bn_case(dropout=0.1), ValueError,
     BN + r" must have the keys gamma, beta, trainable, eps \(optional: momentum, norm, "
     r"noise\); missing \[\], unknown \['dropout'\]"),
    ("noise-type", bn_case(noise=0.5), TypeError, NOISE + " must be a dict"),
    ("noise-missing", drop_noise_key("r_sigma"), ValueError,
     NOISE + r" must have the keys n_mu, n_sigma, r_mu, r_sigma; missing \['r_sigma'\]"),
    ("noise-unknown", bn_case(noise_p=0.5), ValueError, r"unknown \['p'\]"),
    ("n_mu-negative", bn_case(noise_n_mu=-0.1), ValueError,
     NOISE + r"\['n_mu'\] must be a finite number >= 0, got -0.1"),
    ("n_sigma-below-1", bn_case(noise_n_sigma=0.9), ValueError,
     NOISE + r"\['n_sigma'\] must be a finite number >= 1, got 0.9"),
    ("r_mu-negative", bn_case(noise_r_mu=-1e-9), ValueError,
     r"\['r_mu'\] must be a finite"),
    ("r_sigma-negative", bn_case(noise_r_sigma=-1.0), ValueError,
     r"\['r_sigma'\] must be a finite"),
    ("n_mu-inf", bn_case(noise_n_mu=math.inf), ValueError, r"\['n_mu'\] must be a finite"),
    ("n_sigma-nan", bn_case(noise_n_sigma=math.nan), ValueError,
     r"\['n_sigma'\] must be a finite"),
    ("r_mu-str", bn_case(noise_r_mu="0.1"), TypeError, r"\['r_mu'\] must be a real number"),
    ("r_sigma-bool", bn_case(noise_r_sigma=False), TypeError,
     r"\['r_sigma'\] must be a real number"),
]


@pytest.mark.parametrize("layers,exc,match", [c[1:] for c in BN_ERRORS],
                         ids=[c[0] for c in BN_ERRORS])
def test_batch_norm_dict_errors(layers, exc, match):
    X, y, params = np.zeros((3, 2)), np.zeros(3), np.zeros(16)
    for call in (lambda: reference.param_count(layers),
                 lambda: reference.network_forward(layers, params, X),
                 lambda: reference.network_predict(layers, params, X, None, None),
                 lambda: reference.network_gradient(layers, params, X, y),
                 lambda: reference.network_hvp(layers, params, X, y, params),
                 lambda: reference.train(layers, params, X, y, 0.1, 1)):
        with pytest.raises(exc, match=match):
            call()


def test_optional_keys_accept_their_edges():
    """momentum 1 and None, noise at its lower bounds, numpy scalars, noise None."""
    for changes in ({"momentum": 1.0}, {"momentum": None}, {"momentum": np.float32(0.25)},
                    {"noise": None}, {"norm": np.str_("linf")},
                    {"noise_n_mu": 0, "noise_n_sigma": 1, "noise_r_mu": 0.0,
                     "noise_r_sigma": np.float64(0.0)}):
        assert reference.param_count(bn_case(**changes)) == 6 + 6 + 4
