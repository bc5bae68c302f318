"""Layer and group normalization in bnfast.reference (docs/math/networks.md section 14):
the "normalization" key of a layer dict with kind "layer" (PyTorch's nn.LayerNorm over
a row's features) or "group" (nn.GroupNorm(G, out) on (m, out)), and the legacy
"batch_norm" key meaning kind "batch". Checked against torch float64
(F.layer_norm, F.group_norm, autograd, double backward for Hessian-vector products),
central differences, exact special cases and the argument checks.

Tolerances. Forward passes and losses: both sides evaluate the same formulas in
another order (torch multiplies by rsqrt(var + eps), the reference divides by the
square root; sums in other orders), a few ulps per operation over four layers: 1e-13
relative to the largest entry (measured: below 1e-15), times the conditioning of the
normalization where a group's variance is tiny (normalization_bound). Gradients: the
backward pass adds a few operations per layer, 1e-12 (measured: below 6e-15).
Hessian-vector products: the complex step against double backward, both exact up to
rounding, but the Hessian sums terms of both signs that cancel to a smaller result:
1e-10 (measured: below 2e-13). Central differences with h = 1e-6 (of the loss; of the
gradient for the hvp): truncation ~h^2 |third derivative| and rounding ~1e-16 |L| / h,
each ~1e-10 to 1e-9 here, so 1e-6 (measured: below 2e-9). Six mini-batch steps
against torch: each gradient agrees to ~1e-14 and six small steps hardly amplify it,
so 1e-12 (measured: 2e-14). `pytest -s` prints the largest errors measured.
"""

import numpy as np
import pytest

from bnfast import reference
from reference_cases import bn, central_gradient, rel_err
from torch_twin import (batch_norm, count_params, dense, group_norm, layer_norm,
                        random_params, report_worst, residual, within)

LOSSES = ("sum", "mean", "cross_entropy", "cross_entropy_sum")


@pytest.fixture(autouse=True, scope="module")
def worst():
    yield from report_worst("layer and group normalization")


def networks():
    """Layer and group normalization in every position, trainable and constant, eps 0
    and > 0, next to batch normalization and in residual blocks."""
    return {
        "layer-first": [dense(3, 6, "tanh", False, layer_norm(eps=0.0)),
                        dense(6, 4, "sigmoid", True, layer_norm([0.5, 1, 1.5, 2], 0.2,
                                                                False, 1e-5)),
                        dense(4, 3)],
        "group-sizes": [dense(3, 6, "tanh", True, group_norm(3, eps=1e-3)),
                        dense(6, 8, "sigmoid", False, group_norm(2, 1.2, -0.3, False, 0.0)),
                        dense(8, 8, "tanh", True, group_norm(1)),
                        dense(8, 3, "identity", True, group_norm(1, eps=0.1))],
        "mixed": [dense(3, 6, "relu", False, batch_norm(eps=0.0)),
                  residual(dense(6, 6, "tanh", True, group_norm(2, eps=0.0)),
                           dense(6, 6, "sigmoid", True, layer_norm(1.3, 0.1, True, 1e-5))),
                  dense(6, 4, "tanh", False, {"kind": "layer", "gamma": 0.7, "beta": -0.2,
                                              "trainable": False, "eps": 1e-4,
                                              "norm": "std"}),
                  dense(4, 3)],
        "legacy-key": [dense(3, 5, "tanh", False, None),
                       {"in_features": 5, "out_features": 6, "activation": "sigmoid",
                        "bias": False, "batch_norm": bn(eps=1e-5, momentum=None)},
                       residual(dense(6, 6, "tanh", True, group_norm(3))),
                       dense(6, 3)],
    }


NAMES = list(networks())


def case(name, seed, m=7, labels=False):
    """(layers, params, X, y): y real targets (m, 3) or class labels (m,)."""
    rng = np.random.default_rng([seed, NAMES.index(name)])
    layers = networks()[name]
    params = random_params(layers, rng)
    X = rng.normal(size=(m, 3))
    y = rng.integers(0, 3, m) if labels else rng.normal(size=(m, 3))
    return layers, params, X, y


def normalization_bound(H, groups, eps):
    """The bound of a normalization's forward pass against torch: rounding in the mean
    and the centred values is ~ulp(max |h|), divided by the scale sqrt(var + eps) of the
    group, so 1e-13 (a few dozen ulps) times kappa = max|h| / min sqrt(var + eps),
    at least 1e-13 (kappa ~ 3 for random data; sqrt(1/eps) ~ 300 when a group has
    variance 0, as one feature per group has)."""
    Hg = H.reshape(H.shape[0], groups, -1)
    scale = np.sqrt(Hg.var(axis=2) + eps)
    return 1e-13 * max(1.0, np.max(np.abs(H)) / np.min(scale))


def targets(rng, m, loss):
    return rng.integers(0, 3, m) if loss.startswith("cross") else rng.normal(size=(m, 3))


# ---------------------------------------------------------------- the transforms


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.3])
@pytest.mark.parametrize("trainable", [True, False])
def test_layer_norm_is_torch_layer_norm(eps, trainable):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    gamma, beta = rng.uniform(0.5, 2, 5), rng.uniform(-1, 1, 5)
    layers = [dense(4, 5, "identity", True,
                    layer_norm(gamma.tolist(), beta.tolist(), trainable, eps))]
    W, b, X = rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=(9, 4)) * 3
    params = np.concatenate([W.ravel(), b] + ([gamma, beta] if trainable else []))
    H = X @ W.T + b
    expected = torch.nn.functional.layer_norm(torch.tensor(H), (5,), torch.tensor(gamma),
                                              torch.tensor(beta), eps).numpy()
    within("layer_norm forward", rel_err(reference.network_forward(layers, params, X),
                                         expected), normalization_bound(H, 1, eps))
    # inference: the same per-row statistics (no running statistics to pass)
    np.testing.assert_array_equal(reference.network_predict(layers, params, X, None, None),
                                  reference.network_forward(layers, params, X))


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_norm_is_torch_group_norm(groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(groups)
    gamma, beta = rng.uniform(0.5, 2, 6), rng.uniform(-1, 1, 6)
    eps = 1e-5
    layers = [dense(4, 6, "identity", True, group_norm(groups, trainable=True, eps=eps))]
    W, b, X = rng.normal(size=(6, 4)), rng.normal(size=6), rng.normal(size=(8, 4))
    params = np.concatenate([W.ravel(), b, gamma, beta])
    H = X @ W.T + b
    expected = torch.nn.functional.group_norm(torch.tensor(H), groups, torch.tensor(gamma),
                                              torch.tensor(beta), eps).numpy()
    within(f"group_norm forward (groups {groups})",
           rel_err(reference.network_forward(layers, params, X), expected),
           normalization_bound(H, groups, eps))
    if groups == 6:  # one feature per group: centred to exactly 0, so z = beta
        np.testing.assert_array_equal(reference.network_forward(layers, params, X),
                                      np.broadcast_to(beta, (8, 6)))


def test_group_norm_with_one_group_is_layer_norm():
    rng = np.random.default_rng(5)
    as_layer = [dense(3, 4, "tanh", True, layer_norm(eps=1e-3)), dense(4, 2)]
    as_group = [dense(3, 4, "tanh", True, group_norm(1, eps=1e-3)), dense(4, 2)]
    params = random_params(as_layer, rng)
    X, y, v = rng.normal(size=(5, 3)), rng.normal(size=(5, 2)), rng.normal(size=params.size)
    for f in (reference.network_forward,):
        np.testing.assert_array_equal(f(as_group, params, X), f(as_layer, params, X))
    np.testing.assert_array_equal(reference.network_gradient(as_group, params, X, y),
                                  reference.network_gradient(as_layer, params, X, y))
    np.testing.assert_array_equal(reference.network_hvp(as_group, params, X, y, v),
                                  reference.network_hvp(as_layer, params, X, y, v))


def test_rows_are_normalized_independently():
    """Per-row statistics: a row's output does not depend on the other rows (unlike
    batch normalization), so the forward pass of a subset of rows is that subset of
    the forward pass, and one row is a valid batch."""
    layers, params, X, _ = case("group-sizes", seed=2)
    full = reference.network_forward(layers, params, X)
    for rows in ([0], [3, 1], [6, 2, 4]):
        assert rel_err(reference.network_forward(layers, params, X[rows]), full[rows]) \
            <= 1e-15
    np.testing.assert_array_equal(reference.network_predict(layers, params, X, None, None),
                                  full)


# ---------------------------------------------------------------- networks against torch


@pytest.mark.parametrize("name", NAMES)
def test_networks_against_torch(name):
    """Forward, loss, gradient and Hessian-vector product for the four losses."""
    torch = pytest.importorskip("torch")
    from torch_twin import forward, loss_gradient_hvp
    layers, params, X, _ = case(name, seed=10)
    assert reference.param_count(layers) == count_params(layers) == params.size
    with torch.no_grad():
        expected = forward(torch, layers, torch.tensor(params), X).numpy()
    within("network forward", rel_err(reference.network_forward(layers, params, X),
                                      expected), 1e-13)
    rng = np.random.default_rng(11)
    for loss in LOSSES:
        y = targets(rng, X.shape[0], loss)
        v = rng.normal(size=params.size)
        value, grad, hv = loss_gradient_hvp(torch, layers, params, X, y, loss, v)
        within(f"network loss ({loss})",
               abs(reference.network_loss(layers, params, X, y, loss) - value) / abs(value),
               1e-13)
        within(f"network gradient ({loss})",
               rel_err(reference.network_gradient(layers, params, X, y, loss), grad), 1e-12)
        within(f"network hvp ({loss})",
               rel_err(reference.network_hvp(layers, params, X, y, v, loss), hv), 1e-10)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("loss", ["sum", "cross_entropy"])
def test_gradient_matches_central_differences(name, loss):
    layers, params, X, _ = case(name, seed=20)
    if name == "mixed":  # its ReLU: keep every pre-activation 1e-3 away from the kink
        layers = [dict(layers[0], activation="tanh")] + layers[1:]
    y = targets(np.random.default_rng(21), X.shape[0], loss)
    numerical = central_gradient(
        lambda p: reference.network_loss(layers, p, X, y, loss), params)
    within("gradient vs central differences",
           rel_err(reference.network_gradient(layers, params, X, y, loss), numerical), 1e-6)


@pytest.mark.parametrize("name", ["layer-first", "group-sizes"])
def test_hvp_matches_differences_of_the_gradient_and_is_symmetric(name):
    layers, params, X, y = case(name, seed=30)
    rng = np.random.default_rng(31)
    v1, v2 = rng.normal(size=(2, params.size))
    t = 1e-6  # groups of two features at eps = 1e-3 curve sharply: keep t^2 small
    for loss in ("mean", "cross_entropy_sum"):
        yl = targets(rng, X.shape[0], loss)
        h1 = reference.network_hvp(layers, params, X, yl, v1, loss)
        diff = (reference.network_gradient(layers, params + t * v1, X, yl, loss)
                - reference.network_gradient(layers, params - t * v1, X, yl, loss)) / (2 * t)
        within("hvp vs differences of the gradient", rel_err(h1, diff), 1e-6)
        h2 = reference.network_hvp(layers, params, X, yl, v2, loss)
        assert abs(v1 @ h2 - v2 @ h1) <= 1e-12 * np.linalg.norm(v1) * np.linalg.norm(h2)


def test_loss_is_invariant_under_scaling_the_weights_into_a_norm_at_eps_0():
    """eps = 0: layer and group normalization are invariant under H -> c H, c > 0, so
    the loss is constant along W -> c W of a layer without bias, and its gradient in
    that layer's weights is orthogonal to them (as for BN, networks.md section 14)."""
    layers = [dense(3, 6, "tanh", False, group_norm(2, eps=0.0)),
              dense(6, 4, "tanh", False, layer_norm(eps=0.0)), dense(4, 2)]
    rng = np.random.default_rng(40)
    params = random_params(layers, rng)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    grad = reference.network_gradient(layers, params, X, y)
    base = reference.network_loss(layers, params, X, y)
    for sl in (slice(0, 18), slice(30, 54)):  # the two layers' W
        scaled = params.copy()
        scaled[sl] *= 3.7
        assert reference.network_loss(layers, scaled, X, y) == pytest.approx(base,
                                                                             rel=1e-14)
        assert abs(grad[sl] @ params[sl]) <= 1e-13 * np.linalg.norm(grad[sl]) \
            * np.linalg.norm(params[sl])


# ---------------------------------------------------------------- the key, running statistics


def test_legacy_key_and_kind_batch_are_the_same_network():
    old = {"gamma": [1.0, 2.0, 0.5], "beta": 0.1, "trainable": True, "eps": 0.0,
           "momentum": 0.3, "norm": "l1",
           "noise": {"n_mu": 0.5, "n_sigma": 1.25, "r_mu": 0.1, "r_sigma": 0.1}}
    legacy = [{"in_features": 2, "out_features": 3, "activation": "tanh", "bias": False,
               "batch_norm": old}, dense(3, 1)]
    new = [dense(2, 3, "tanh", False, dict(old, kind="batch")), dense(3, 1)]
    rng = np.random.default_rng(50)
    params = random_params(new, rng)
    X, y, v = rng.normal(size=(6, 2)), rng.normal(size=6), rng.normal(size=params.size)
    for f in (lambda ls: reference.network_loss(ls, params, X, y),
              lambda ls: reference.network_gradient(ls, params, X, y),
              lambda ls: reference.network_hvp(ls, params, X, y, v)):
        np.testing.assert_array_equal(f(new), f(legacy))
    a = reference.train(new, params, X, y, 0.05, 7, batch_size=4, seed=3)
    b = reference.train(legacy, params, X, y, 0.05, 7, batch_size=4, seed=3)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.running_mean[0], b.running_mean[0])
    np.testing.assert_array_equal(a.running_var[0], b.running_var[0])


def test_running_statistics_are_only_the_batch_kind_layers():
    """Mixed network trained on mini-batches: one running (mean, var) pair per
    batch-kind layer; network_predict then equals torch's eval mode (batch norm with
    the running statistics torch kept itself, layer and group norm per row)."""
    torch = pytest.importorskip("torch")
    from torch_twin import BatchStats, forward
    layers = [dense(3, 6, "tanh", False, batch_norm(eps=1e-5, momentum=None)),
              dense(6, 6, "sigmoid", True, group_norm(3, eps=1e-4)),
              dense(6, 4, "tanh", False, batch_norm(eps=1e-3, momentum=0.2)),
              dense(4, 4, "tanh", True, layer_norm()),
              dense(4, 2)]
    rng = np.random.default_rng(60)
    params = random_params(layers, rng)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    result = reference.train(layers, params, X, y, 0.005, 6, batch_size=8, seed=2)
    assert [a.shape for a in result.running_mean] == [(6,), (4,)]
    assert [a.shape for a in result.running_var] == [(6,), (4,)]
    # the same updates in torch: the batches of the reference's shuffle
    from bnfast.reference.shuffle import EpochShuffler
    shuffler, perm, pos = EpochShuffler(20, 2), None, 20
    p = torch.tensor(params, requires_grad=True)
    stats = BatchStats(torch, layers)
    for _ in range(6):
        if pos + 8 > 20:
            perm, pos = shuffler.next_epoch(), 0
        rows, pos = perm[pos:pos + 8], pos + 8
        stats.updates += 1
        out = forward(torch, layers, p, X[rows], stats)
        (g,) = torch.autograd.grad(((torch.tensor(y[rows]) - out) ** 2).sum(), p)
        with torch.no_grad():
            p -= 0.005 * g
    # gradients agree to ~1e-14 relative at each step and six small steps hardly
    # amplify that (measured: 2e-14), so 1e-12
    within("6 mini-batch steps: params", rel_err(result.params, p.detach().numpy()), 1e-12)
    for ours, theirs in zip(result.running_mean + result.running_var,
                            stats.arrays()[0] + stats.arrays()[1]):
        within("6 mini-batch steps: running stats", rel_err(ours, theirs), 1e-12)
    with torch.no_grad():
        expected = forward(torch, layers, torch.tensor(result.params), X[:3], stats,
                           training=False).numpy()
    predicted = reference.network_predict(layers, result.params, X[:3],
                                          result.running_mean, result.running_var)
    within("predict (eval mode)", rel_err(predicted, expected), 1e-12)
    with pytest.raises(ValueError, match=r"running_mean must have one array per BN "
                                         r"layer \(2\), got 4"):
        reference.network_predict(layers, result.params, X, result.running_mean * 2,
                                  result.running_var)


def test_one_sample_batches_without_batch_normalization():
    """Without a batch-kind layer, one row is a batch (training and mini-batches of 1);
    with one, the usual error."""
    layers = [dense(3, 4, "tanh", True, layer_norm()), dense(4, 2, "identity", True,
                                                             group_norm(2))]
    rng = np.random.default_rng(70)
    params = random_params(layers, rng)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    assert reference.network_gradient(layers, params, X[:1], y[:1]).shape == params.shape
    result = reference.train(layers, params, X, y, 0.01, 7, batch_size=1, seed=4)
    assert result.steps == 7 and result.running_mean == [] and result.batches_seen == 7
    with_bn = layers + [dense(2, 2, "identity", False, batch_norm())]
    p2 = random_params(with_bn, rng)
    with pytest.raises(ValueError, match="batch_size must be >= 2 with batch normalization"):
        reference.train(with_bn, p2, X, y, 0.01, 3, batch_size=1)
    with pytest.raises(ValueError, match="batch normalization needs at least 2 samples"):
        reference.network_loss(with_bn, p2, X[:1], y[:1])


# ---------------------------------------------------------------- eps = 0 and bad input


@pytest.mark.parametrize("norm,match", [
    (layer_norm(eps=0.0), r"layer 0 \(layer normalization\), row 2 has constant "
                          r"pre-activations over its 3 feature\(s\) and eps == 0"),
    (group_norm(3, eps=0.0), r"layer 0 \(group normalization\), row 0, group 0 has "
                             r"constant pre-activations over its 1 feature\(s\)"),
])
def test_zero_variance_with_eps_0_raises(norm, match):
    """A row whose pre-activations are all equal (here: a zero row of X, no bias; or a
    group of one feature) has no defined normalization at eps = 0: ValueError, as BN
    raises for a constant column, in training, inference and the hvp alike."""
    layers = [dense(2, 3, "tanh", False, norm), dense(3, 1)]
    params = np.linspace(-1, 1, reference.param_count(layers))
    X = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 0.0]]) if norm["kind"] == "layer" \
        else np.array([[1.0, 2.0], [0.5, -1.0]])
    y = np.zeros(X.shape[0])
    for call in (lambda: reference.network_forward(layers, params, X),
                 lambda: reference.network_predict(layers, params, X, None, None),
                 lambda: reference.network_gradient(layers, params, X, y),
                 lambda: reference.network_hvp(layers, params, X, y, params),
                 lambda: reference.train(layers, params, X, y, 0.1, 2)):
        with pytest.raises(ValueError, match=match):
            call()
    # any eps > 0 defines it: the row maps to beta
    ok = [dense(2, 3, "tanh", False, dict(norm, eps=1e-12)), dense(3, 1)]
    assert np.all(np.isfinite(reference.network_forward(ok, params, X)))


def edit(change):
    layers = [dense(2, 6, "tanh", False, group_norm(3)), dense(6, 1)]
    change(layers)
    return layers


G = r"layers\[0\]\['normalization'\]"


@pytest.mark.parametrize("name,layers,exc,match", [
    ("groups-not-dividing", edit(lambda ls: ls[0]["normalization"].update(groups=4)),
     ValueError, G + r"\['groups'\] = 4 does not divide the layer's out_features 6"),
    ("groups-zero", edit(lambda ls: ls[0]["normalization"].update(groups=0)),
     ValueError, G + r"\['groups'\] must be >= 1, got 0"),
    ("groups-float", edit(lambda ls: ls[0]["normalization"].update(groups=3.0)),
     TypeError, G + r"\['groups'\] must be an int"),
    ("groups-bool", edit(lambda ls: ls[0]["normalization"].update(groups=True)),
     TypeError, G + r"\['groups'\] must be an int"),
    ("groups-missing", edit(lambda ls: ls[0]["normalization"].pop("groups")),
     ValueError, G + r" must have the keys kind, groups, gamma.*missing \['groups'\]"),
    ("groups-on-layer", edit(lambda ls: ls[0]["normalization"].update(kind="layer")),
     ValueError, G + r" must have the keys kind, gamma.*unknown \['groups'\]"),
    ("groups-on-batch", edit(lambda ls: ls[0]["normalization"].update(kind="batch")),
     ValueError, G + r" must have the keys kind, gamma.*unknown \['groups'\]"),
    ("kind-unknown", edit(lambda ls: ls[0]["normalization"].update(kind="instance")),
     ValueError, G + r"\['kind'\]: unknown normalization kind 'instance'; expected one "
                     "of batch, layer, group"),
    ("kind-not-str", edit(lambda ls: ls[0]["normalization"].update(kind=1)),
     TypeError, G + r"\['kind'\] must be a str"),
    ("kind-missing", edit(lambda ls: ls[0]["normalization"].pop("kind")),
     ValueError, G + r" must have the key 'kind' \(one of batch, layer, group\)"),
    ("both-keys", edit(lambda ls: ls[0].update(batch_norm=None)),
     ValueError, r"layers\[0\] has both 'normalization' and 'batch_norm': give one"),
    ("both-keys-none", edit(lambda ls: ls[1].update(batch_norm=None)),
     ValueError, r"layers\[1\] has both 'normalization' and 'batch_norm'"),
    ("neither-key", edit(lambda ls: ls[1].pop("normalization")),
     ValueError, r"layers\[1\] must have the key 'normalization' \(or the legacy "
                 r"'batch_norm'\)"),
    ("momentum-on-group", edit(lambda ls: ls[0]["normalization"].update(momentum=0.1)),
     ValueError, G + r"\['momentum'\]: a group normalization has no running statistics"),
    ("momentum-none-on-layer",
     edit(lambda ls: ls[0].update(normalization=layer_norm(momentum=None))),
     ValueError, G + r"\['momentum'\]: a layer normalization has no running statistics"),
    ("noise-on-layer",
     edit(lambda ls: ls[0].update(normalization=layer_norm(noise=None))),
     ValueError, G + r"\['noise'\]: a layer normalization has no noise"),
    ("norm-l1-on-layer", edit(lambda ls: ls[0].update(normalization=layer_norm(norm="l1"))),
     ValueError, G + r"\['norm'\]: kind 'layer' supports only norm 'std', got 'l1'"),
    ("norm-unknown-on-group", edit(lambda ls: ls[0]["normalization"].update(norm="l3")),
     ValueError, G + r"\['norm'\]: unknown norm 'l3'"),
    ("not-a-dict", edit(lambda ls: ls[0].update(normalization="layer")),
     TypeError, G + " must be None or a dict, got str"),
    ("gamma-shape", edit(lambda ls: ls[0]["normalization"].update(gamma=[1.0, 2.0])),
     ValueError, G + r"\['gamma'\] has shape \(2,\) but the layer has 6 neurons"),
    ("eps-negative", edit(lambda ls: ls[0]["normalization"].update(eps=-1e-5)),
     ValueError, G + r"\['eps'\] must be a finite number >= 0"),
    ("trainable-int", edit(lambda ls: ls[0]["normalization"].update(trainable=1)),
     TypeError, G + r"\['trainable'\] must be a bool"),
    ("unknown-key", edit(lambda ls: ls[0]["normalization"].update(affine=True)),
     ValueError, G + r" must have the keys.*unknown \['affine'\]"),
    ("legacy-with-kind", edit(lambda ls: ls.__setitem__(0, {
        "in_features": 2, "out_features": 6, "activation": "tanh", "bias": False,
        "batch_norm": bn(kind="batch")})),
     ValueError, r"layers\[0\]\['batch_norm'\] must have the keys gamma, beta, "
                 r"trainable, eps.*unknown \['kind'\]"),
    ("in-residual", [residual(dense(3, 3, "tanh", False, group_norm(2))), dense(3, 1)],
     ValueError, r"layers\[0\]\['residual'\]\[0\]\['normalization'\]\['groups'\] = 2 "
                 "does not divide"),
])
def test_bad_normalization_dicts(name, layers, exc, match):
    X, y = np.ones((4, 2 if "residual" not in layers[0] else 3)), np.zeros(4)
    with pytest.raises(exc, match=match):
        reference.param_count(layers)
    with pytest.raises(exc, match=match):
        reference.network_loss(layers, np.zeros(64), X, y)
