"""The cross-entropy losses of bnfast.reference (docs/math/networks.md section 15):
loss="cross_entropy" is PyTorch's F.cross_entropy (reduction "mean": the mean over
rows of logsumexp(f_i) - f_i[y_i]), "cross_entropy_sum" its sum; y holds (m,) class
labels. Checked against torch float64 (F.cross_entropy, autograd, double backward),
central differences, exact cases (logits up to 1e300), network_accuracy, training and
the checks of the labels.

Logits as network outputs: one identity layer Dense(k, k, bias=False) with W = I maps
X to X exactly (every product is x * 1 or x * 0 and the sums add zeros), so X is the
logit matrix itself.

Tolerances. Loss values: log-sum-exp and the sums in another order, ~1e-16 per
operation: 1e-14 relative (measured: below 3e-16). Gradients and Hessian-vector
products as in test_reference_layer_group_norm: 1e-12 and 1e-10 relative to the largest
entry (measured: below 2e-15 and 5e-15). Central differences with h = 1e-6: 1e-6
(truncation and rounding ~1e-10 to 1e-9; measured: below 2e-9). `pytest -s` prints
the largest errors measured.
"""

import numpy as np
import pytest

from bnfast import reference
from reference_cases import central_gradient, rel_err
from torch_twin import (batch_norm, dense, group_norm, layer_norm, random_params,
                        report_worst, residual, within)


@pytest.fixture(autouse=True, scope="module")
def worst():
    yield from report_worst("cross-entropy")


def identity(k):
    """Dense(k, k, identity, no bias) and its params W = I: outputs = inputs."""
    return [dense(k, k, "identity", False)], np.eye(k).ravel()


def network():
    return [dense(3, 6, "tanh", False, batch_norm(eps=1e-5)),
            residual(dense(6, 6, "sigmoid", True, group_norm(2))),
            dense(6, 5, "tanh", True, layer_norm(eps=0.0)),
            dense(5, 4)]


def data(seed, m=9, k=4):
    rng = np.random.default_rng(seed)
    layers = network()
    return layers, random_params(layers, rng), rng.normal(size=(m, 3)), \
        rng.integers(0, k, m), rng


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e3])
def test_loss_of_logits_is_torch_cross_entropy(scale):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layers, params = identity(5)
    rng = np.random.default_rng(int(scale * 1000))
    logits, y = rng.normal(size=(7, 5)) * scale, rng.integers(0, 5, 7)
    np.testing.assert_array_equal(reference.network_forward(layers, params, logits), logits)
    for loss, reduction in (("cross_entropy", "mean"), ("cross_entropy_sum", "sum")):
        expected = F.cross_entropy(torch.tensor(logits), torch.tensor(y),
                                   reduction=reduction).item()
        ours = reference.network_loss(layers, params, logits, y, loss)
        within(f"loss of logits ({loss})", abs(ours - expected) / abs(expected), 1e-14)
    # by hand: logsumexp - the target's logit, per row
    shifted = logits - logits.max(axis=1, keepdims=True)
    rows = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(7), y]
    assert reference.network_loss(layers, params, logits, y, "cross_entropy_sum") \
        == pytest.approx(rows.sum(), rel=1e-14)


def test_cross_entropy_sum_is_m_times_the_mean():
    layers, params, X, y, rng = data(1)
    total = reference.network_loss(layers, params, X, y, "cross_entropy_sum")
    assert reference.network_loss(layers, params, X, y, "cross_entropy") \
        == pytest.approx(total / 9, rel=1e-15)
    assert rel_err(reference.network_gradient(layers, params, X, y, "cross_entropy"),
                   reference.network_gradient(layers, params, X, y, "cross_entropy_sum") / 9) \
        <= 1e-15
    v = rng.normal(size=params.size)
    assert rel_err(reference.network_hvp(layers, params, X, y, v, "cross_entropy"),
                   reference.network_hvp(layers, params, X, y, v, "cross_entropy_sum") / 9) \
        <= 1e-15


def test_softmax_shift_invariance():
    """Adding c to every logit of the rows (through the last layer's bias) leaves the
    loss unchanged, so the bias gradient sums to 0 over the classes."""
    layers, params, X, y, _ = data(2)
    shifted = params.copy()
    shifted[-4:] += 123.25
    base = reference.network_loss(layers, params, X, y, "cross_entropy_sum")
    assert reference.network_loss(layers, shifted, X, y, "cross_entropy_sum") \
        == pytest.approx(base, rel=1e-13)  # logits ~123: ulp(123) / loss ~ 1e-14
    grad = reference.network_gradient(layers, params, X, y, "cross_entropy_sum")
    assert abs(grad[-4:].sum()) <= 1e-15 * 9 * 4


# ---------------------------------------------------------------- against torch autograd


@pytest.mark.parametrize("loss", ["cross_entropy", "cross_entropy_sum"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_network_against_torch(loss, seed):
    torch = pytest.importorskip("torch")
    from torch_twin import loss_gradient_hvp
    layers, params, X, y, rng = data(10 + seed)
    v = rng.normal(size=params.size)
    value, grad, hv = loss_gradient_hvp(torch, layers, params, X, y, loss, v)
    within(f"network loss ({loss})",
           abs(reference.network_loss(layers, params, X, y, loss) - value) / value, 1e-14)
    within(f"network gradient ({loss})",
           rel_err(reference.network_gradient(layers, params, X, y, loss), grad), 1e-12)
    within(f"network hvp ({loss})",
           rel_err(reference.network_hvp(layers, params, X, y, v, loss), hv), 1e-10)


@pytest.mark.parametrize("loss", ["cross_entropy", "cross_entropy_sum"])
def test_gradient_and_hvp_match_central_differences(loss):
    layers, params, X, y, rng = data(20)
    numerical = central_gradient(
        lambda p: reference.network_loss(layers, p, X, y, loss), params)
    within("gradient vs central differences",
           rel_err(reference.network_gradient(layers, params, X, y, loss), numerical), 1e-6)
    v, t = rng.normal(size=params.size), 1e-6
    diff = (reference.network_gradient(layers, params + t * v, X, y, loss)
            - reference.network_gradient(layers, params - t * v, X, y, loss)) / (2 * t)
    within("hvp vs differences of the gradient",
           rel_err(reference.network_hvp(layers, params, X, y, v, loss), diff), 1e-6)


def test_hessian_of_the_logits_is_diag_p_minus_p_pT():
    """One row x = e_0 and f = W x = W[:, 0] (the logits): the Hessian of the
    cross-entropy in the logits is diag(p) - p p^T (p = softmax), so with W row-major
    (W[j, i] at j k + i) the Hessian times the unit vector of W[j, 0] is column j of
    that matrix in the entries W[:, 0] and zero elsewhere."""
    k = 4
    layers, params = identity(k)
    x = np.zeros((1, k))
    x[0, 0] = 1.0
    logits = np.array([0.3, -1.2, 2.0, 0.1])
    params = np.zeros((k, k))
    params[:, 0] = logits  # f(e_0) = W[:, 0] = logits
    params = params.ravel()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    hessian = np.diag(p) - np.outer(p, p)
    for j in range(k):
        v = np.zeros(k * k)
        v[j * k] = 1.0  # d/dW[j, 0]
        hv = reference.network_hvp(layers, params, x, [2], v, "cross_entropy_sum")
        assert rel_err(hv.reshape(k, k)[:, 0], hessian[:, j]) <= 1e-14
        assert not np.any(hv.reshape(k, k)[:, 1:])


# ---------------------------------------------------------------- extreme logits


def test_logits_of_1e300_give_finite_losses_and_gradients():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layers, params = identity(3)
    logits = np.array([[1e300, -1e300, 0.0],
                       [-1e300, 5e299, 1e300],
                       [2.0, -3.0, 1e300],
                       [-1e300, -1e300, -1e300]])
    y = np.array([0, 1, 0, 2])
    value = reference.network_loss(layers, params, logits, y, "cross_entropy_sum")
    # row 0: its target is the largest logit, loss 0 (log(1 + 0 + 0)); row 1: 1e300 -
    # 5e299; row 2: 1e300 - 2; row 3: three equal logits, log 3
    expected = 0.0 + (1e300 - 5e299) + (1e300 - 2.0) + np.log(3.0)
    assert value == pytest.approx(expected, rel=1e-15) and np.isfinite(value)
    torch_value = F.cross_entropy(torch.tensor(logits), torch.tensor(y),
                                  reduction="sum").item()
    within("1e300 logits: loss", abs(value - torch_value) / torch_value, 1e-14)
    grad = reference.network_gradient(layers, params, logits, y, "cross_entropy_sum")
    assert np.all(np.isfinite(grad))
    # dL/dlogits = softmax - onehot: rows 0..2 one-hot softmax of their largest logit
    dF = np.array([[0.0, 0, 0], [0, -1, 1], [-1, 0, 1], [1 / 3, 1 / 3, -2 / 3]])
    assert rel_err(grad, (dF.T @ logits).ravel()) <= 1e-15
    mean = reference.network_loss(layers, params, logits, y, "cross_entropy")
    assert mean == pytest.approx(expected / 4, rel=1e-15)


def test_huge_logits_through_a_bias_and_a_deep_network():
    """Logits of +-1e300 made by the last layer's bias on top of a trained-looking
    network: loss and gradient finite and equal to torch's."""
    torch = pytest.importorskip("torch")
    from torch_twin import loss_gradient_hvp
    layers, params, X, y, _ = data(30)
    params = params.copy()
    params[-4:] = [1e300, -1e300, 3e299, 0.0]
    y = np.array([0, 2, 1, 3, 0, 2, 0, 0, 1])
    for loss in ("cross_entropy", "cross_entropy_sum"):
        value, grad, _ = loss_gradient_hvp(torch, layers, params, X, y, loss)
        ours = reference.network_loss(layers, params, X, y, loss)
        ours_grad = reference.network_gradient(layers, params, X, y, loss)
        assert np.isfinite(ours) and np.all(np.isfinite(ours_grad))
        within("1e300 logits: loss", abs(ours - value) / value, 1e-14)
        within("1e300 logits: gradient", rel_err(ours_grad, grad), 1e-12)


# ---------------------------------------------------------------- labels


def test_float_and_other_integer_labels_equal_int64_labels():
    layers, params, X, y, rng = data(40)
    v = rng.normal(size=params.size)
    for loss in ("cross_entropy", "cross_entropy_sum"):
        expected = (reference.network_loss(layers, params, X, y, loss),
                    reference.network_gradient(layers, params, X, y, loss),
                    reference.network_hvp(layers, params, X, y, v, loss))
        for labels in (y.astype(float), y.astype(np.int32), y.astype(np.uint8),
                       y.tolist(), [float(c) for c in y], y.astype(np.float32)):
            got = (reference.network_loss(layers, params, X, labels, loss),
                   reference.network_gradient(layers, params, X, labels, loss),
                   reference.network_hvp(layers, params, X, labels, v, loss))
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)


Y_ERRORS = [
    (np.array([0, 1, 4, 0, 1]), ValueError,
     r"y\[2\] = 4 is not a class label of the network's 4 outputs \(labels are 0 .. 3\)"),
    (np.array([0, -1, 2, 0, 1]), ValueError, r"y\[1\] = -1 is not a class label"),
    (np.array([0.0, 1.5, 2, 0, 1]), ValueError,
     r"y must hold integral class labels, got y\[1\] = 1.5"),
    (np.array([0.0, 1, np.nan, 0, 1]), ValueError, r"y must hold integral class labels, "
                                                   r"got y\[2\] = nan"),
    (np.array([0.0, 1, 2, np.inf, 1]), ValueError, r"y must hold integral class labels"),
    (np.array([1e20, 1, 2, 0, 1]), ValueError, r"y\[0\] = 1e\+20 is not a class label"),
    (np.zeros((5, 1), int), ValueError, r"y must be 1-D: one class label per row of X, "
                                        r"shape \(5,\); got shape \(5, 1\)"),
    (np.zeros((5, 4)), ValueError, r"y must be 1-D"),
    (np.zeros(6, int), ValueError, "X has 5 rows but y has 6"),
    (np.zeros(5, bool), TypeError, "y must hold integer class labels .* got dtype bool"),
    (np.zeros(5, complex), TypeError, "y must hold integer class labels"),
    (["a"] * 5, TypeError, "y must hold integer class labels"),
    ("01201", TypeError, "y must be an array of integer class labels, got str"),
    (None, TypeError, "y must hold integer class labels .* got dtype object"),
]


@pytest.mark.parametrize("y,exc,match", Y_ERRORS)
def test_bad_labels(y, exc, match):
    layers = [dense(2, 4, "tanh", True, layer_norm()), dense(4, 4)]
    params, X = np.linspace(-1, 1, reference.param_count(layers)), np.ones((5, 2))
    X[:, 0] = np.arange(5)
    for loss in ("cross_entropy", "cross_entropy_sum"):
        for call in (lambda: reference.network_loss(layers, params, X, y, loss),
                     lambda: reference.network_gradient(layers, params, X, y, loss),
                     lambda: reference.network_hvp(layers, params, X, y, params, loss),
                     lambda: reference.train(layers, params, X, y, 0.1, 1, loss=loss)):
            with pytest.raises(exc, match=match):
                call()
    with pytest.raises(exc, match=match):
        reference.network_accuracy(layers, params, X, y)


def test_real_targets_are_not_labels_and_labels_not_targets():
    """The loss decides what y is: (m, k) real targets are refused by cross-entropy,
    and the squared losses keep their old checks."""
    layers = [dense(2, 3)]
    params, X = np.zeros(9), np.ones((4, 2))
    with pytest.raises(ValueError, match="y must be 1-D"):
        reference.network_loss(layers, params, X, np.zeros((4, 3)), "cross_entropy")
    with pytest.raises(ValueError, match=r"y must have shape \(m, 3\), got \(4,\)"):
        reference.network_loss(layers, params, X, np.zeros(4, int), "sum")


@pytest.mark.parametrize("loss,exc,match", [
    ("crossentropy", ValueError, "loss must be 'sum' or 'mean', got 'crossentropy' "
                                 r"\(or, with class labels y, 'cross_entropy' or "
                                 r"'cross_entropy_sum'\)"),
    ("cross_entropy_mean", ValueError, "loss must be .* got 'cross_entropy_mean'"),
    (b"cross_entropy", TypeError, "loss must be .* got bytes"),
])
def test_loss_names(loss, exc, match):
    layers, X = [dense(2, 3)], np.ones((4, 2))
    with pytest.raises(exc, match=match):
        reference.network_loss(layers, np.zeros(9), X, np.zeros(4, int), loss)


# ---------------------------------------------------------------- accuracy and training


def test_network_accuracy_is_the_share_of_correct_argmax():
    layers, params, X, y, _ = data(50, m=12)
    result = reference.train(layers, params, X, y, 0.05, 20, loss="cross_entropy")
    F = reference.network_predict(layers, result.params, X, result.running_mean,
                                  result.running_var)
    expected = np.count_nonzero(F.argmax(axis=1) == y) / 12
    assert reference.network_accuracy(layers, result.params, X, y, result.running_mean,
                                      result.running_var) == expected
    # before training: the initial running statistics (None: zeros and ones)
    F0 = reference.network_predict(layers, params, X, None, None)
    assert reference.network_accuracy(layers, params, X, y.astype(float)) \
        == np.count_nonzero(F0.argmax(axis=1) == y) / 12
    # ties go to the first largest output, as argmax: all-zero logits predict class 0
    zero, pz = identity(3)
    assert reference.network_accuracy(zero, pz, np.zeros((4, 3)), [0, 1, 0, 2]) == 0.5


def test_training_is_gradient_descent_on_the_cross_entropy():
    """Full batch and mini-batches (labels indexed with the rows of each batch) against
    a hand loop over network_gradient: the same operations, so the same bits."""
    layers, params, X, y, _ = data(60, m=10)
    lr, steps = 0.1, 12
    p = params.copy()
    for _ in range(steps):
        p = p - lr * reference.network_gradient(layers, p, X, y, "cross_entropy")
    result = reference.train(layers, params, X, y, lr, steps, loss="cross_entropy",
                             record_every=4)
    np.testing.assert_array_equal(result.params, p)
    assert result.losses[-1] < result.losses[0]
    from bnfast.reference.shuffle import EpochShuffler
    shuffler, perm, pos, p = EpochShuffler(10, 5), None, 10, params.copy()
    for _ in range(steps):
        if pos + 4 > 10:
            perm, pos = shuffler.next_epoch(), 0
        rows, pos = perm[pos:pos + 4], pos + 4
        p = p - lr * reference.network_gradient(layers, p, X[rows], y[rows],
                                                "cross_entropy_sum")
    result = reference.train(layers, params, X, y.astype(float), lr, steps, batch_size=4,
                             seed=5, loss="cross_entropy_sum")
    np.testing.assert_array_equal(result.params, p)
