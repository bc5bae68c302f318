"""The landscape measures (bnfast.experiments.measures) against the NumPy reference
and closed forms."""

import numpy as np
import pytest

import bnfast
from bnfast import reference
from bnfast.experiments import measures


def _bn_net(seed=0):
    layers = [bnfast.Dense(4, 6, "tanh", batch_norm=bnfast.BatchNorm()),
              bnfast.Dense(6, 3, batch_norm=bnfast.BatchNorm(norm="l1")),
              bnfast.Dense(3, 2)]
    return bnfast.Network(layers, loss="sum").init("glorot", seed)


def _data(m=20, n_in=4, n_out=2, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n_in)), rng.standard_normal((m, n_out))


def test_line_measures_match_reference():
    """Every value along the line recomputed by the NumPy oracle (float64, independent
    code): agreement to rounding (rtol 1e-9 for sums of ~100 terms of O(1))."""
    net, (X, y) = _bn_net(), _data()
    dicts = [layer.to_dict() for layer in net.layers]
    start = net.params
    etas = np.array([1e-3, 1e-2, 0.1])
    out = measures.gradient_line_measures(net, X, y, etas)
    np.testing.assert_array_equal(net.params, start)          # left unchanged
    grad = reference.network_gradient(dicts, start, X, y)
    losses = [reference.network_loss(dicts, start - eta * grad, X, y) for eta in etas]
    changes = [np.linalg.norm(grad - reference.network_gradient(dicts, start - eta * grad,
                                                                  X, y)) for eta in etas]
    np.testing.assert_allclose(out["losses"], losses, rtol=1e-9)
    np.testing.assert_allclose(out["grad_changes"], changes, rtol=1e-7)
    assert out["loss_range"] == pytest.approx(max(losses) - min(losses), rel=1e-7)
    beta = max(c / (eta * np.linalg.norm(grad)) for c, eta in zip(changes, etas))
    assert out["beta"] == pytest.approx(beta, rel=1e-7)
    assert out["grad_change_max"] == pytest.approx(max(changes), rel=1e-7)


def _linear_least_squares(seed=2):
    """One linear Dense layer without bias: L(W) = ||Y - X W^T||^2, a quadratic with
    Hessian 2 (I_out kron X^T X) in the row-major W."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 3)) * np.array([3.0, 1.0, 0.5])   # a clear eigengap
    Y = rng.standard_normal((30, 2))
    net = bnfast.Network([bnfast.Dense(3, 2, bias=False)]).init("glorot", seed)
    return net, X, Y


def test_line_measures_quadratic_closed_form():
    """On a quadratic, L(x - eta g) = L - eta |g|^2 + eta^2/2 g'Hg and the gradient
    change is eta |H g|: beta = |H g| / |g| whatever eta."""
    net, X, Y = _linear_least_squares()
    loss, g = net.loss_and_gradient(X, Y)
    H = 2 * np.kron(np.eye(2), X.T @ X)
    etas = np.array([1e-3, 1e-2, 3e-2])
    out = measures.gradient_line_measures(net, X, Y, etas)
    expected = loss - etas * (g @ g) + etas ** 2 / 2 * (g @ H @ g)
    np.testing.assert_allclose(out["losses"], expected, rtol=1e-10)
    np.testing.assert_allclose(out["grad_changes"], etas * np.linalg.norm(H @ g), rtol=1e-9)
    assert out["beta"] == pytest.approx(np.linalg.norm(H @ g) / np.linalg.norm(g), rel=1e-9)


def test_line_measures_reject_bad_steps():
    net, X, Y = _linear_least_squares()
    for bad in ([], [0.0], [-1.0], [[1.0]]):
        with pytest.raises(ValueError):
            measures.gradient_line_measures(net, X, Y, bad)


def test_largest_hessian_eigenvalue_least_squares():
    """lambda_max(2 I kron X^T X) = 2 lambda_max(X^T X); the gap (ratio ~ 9) makes 200
    iterations converge far below the 1e-8 tolerance."""
    net, X, Y = _linear_least_squares()
    value = measures.largest_hessian_eigenvalue(net, X, Y, iterations=200, rtol=1e-14)
    assert value == pytest.approx(2 * np.linalg.eigvalsh(X.T @ X)[-1], rel=1e-8)


def test_largest_hessian_eigenvalue_bn_net_dense_hessian():
    """A BN net: against the eigenvalue of largest magnitude of the Hessian assembled
    from the reference's Hessian-vector products, column by column."""
    net, (X, y) = _bn_net(3), _data(seed=4)
    dicts = [layer.to_dict() for layer in net.layers]
    n = net.num_params
    H = np.column_stack([reference.network_hvp(dicts, net.params, X, y, e)
                         for e in np.eye(n)])
    eigenvalues = np.linalg.eigvalsh((H + H.T) / 2)
    top = eigenvalues[np.argmax(np.abs(eigenvalues))]
    value = measures.largest_hessian_eigenvalue(net, X, y, iterations=3000, rtol=1e-13)
    assert value == pytest.approx(top, rel=1e-5)


def test_measured_training_segments_equal_one_run():
    """Full-batch GD does not depend on how the steps are split: the segmented run's
    losses equal one bnfast.train call's, and the checkpoints come at 0, every, ..."""
    X, y = _data(m=25, seed=5)
    net, twin = _bn_net(6), _bn_net(6)
    seen = []
    losses, measured, diverged = measures.measured_training(
        net, X, y, 1e-3, 12, 4, lambda n, step: seen.append(step) or {"p0": n.params[0]},
        record_every=2)
    direct = bnfast.train(twin, X, y, 1e-3, 12, record_every=2)
    assert diverged is None and seen == [0, 4, 8, 12]
    assert [m["step"] for m in measured] == [0, 4, 8, 12]
    np.testing.assert_allclose(losses, direct.losses, rtol=1e-12)
    np.testing.assert_allclose(net.params, twin.params, rtol=1e-12)
    assert measured[-1]["p0"] == net.params[0]


def test_measured_training_divergence_and_arguments():
    X, y = _data(m=25, seed=5)
    net = bnfast.Network([bnfast.Dense(4, 2)]).init("glorot", 0)
    losses, measured, diverged = measures.measured_training(
        net, X * 1e3, y, 10.0, 20, 5, lambda n, step: {})
    assert diverged is not None and diverged < 20
    assert [m["step"] for m in measured][-1] <= diverged
    with pytest.raises(ValueError):
        measures.measured_training(net, X, y, 0.1, 10, 3, lambda n, s: {})
