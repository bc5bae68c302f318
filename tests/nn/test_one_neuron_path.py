"""bnfast.train's specialised step for one BN neuron (csrc/core/nn/one_neuron_step.hpp) against
the general step (the same loop with Network::loss) and bnfast.reference.train.

The one-neuron step does the same maths with sums in another order (it centres X once and
forms dW as Xc^T dh), ~1e-16 relative per step. The learning rates below keep the runs
well inside the stable range (lr times the largest curvature ~0.1), where such
differences are not amplified: after 300 steps the paths agree to 1.2e-14 at worst
(params, losses relative to the first loss, running statistics), so RTOL = 1e-13 against
the general path (REF_RTOL = 1e-12 against NumPy, whose sums may vary with its build)
while any wrong batch, step, record or statistic is off by far more. The bias cancels
under BN: its gradient is rounding noise in both paths (not the same noise), so it is
compared with an absolute tolerance.
"""

import math

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, BNNoise, Dense, Network
from bnfast import reference as ref
from bnfast.nn.train import _train
from network_cases import specs

RTOL = 1e-13
REF_RTOL = 1e-12
BIAS_ATOL = 1e-12  # the bias moves only by the rounding of a zero gradient

X32 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y32 = np.array([8.0, 6.0, 11.0])


def example_layers(eps=0.0):
    return [Dense(2, 1, bias=False,
                  batch_norm=BatchNorm(1.0, 0.0, trainable=False, eps=eps))]


def neuron_case(seed, n_in, m, bias, trainable, eps, loss, momentum=0.1):
    """A random BN neuron with its data, initial params and a stable learning rate."""
    rng = np.random.default_rng(seed)
    gamma, beta = (1.0, 0.0) if trainable else (1.7, -0.4)
    layers = [Dense(n_in, 1, bias=bias,
                    batch_norm=BatchNorm(gamma, beta, trainable=trainable, eps=eps,
                                         momentum=momentum))]
    X = rng.standard_normal((m, n_in)) * rng.uniform(0.5, 2.0, n_in) + rng.normal(0, 1, n_in)
    y = X @ rng.standard_normal(n_in) + 0.5 * rng.standard_normal(m) + 2.0
    net = Network(layers, loss=loss, seed=seed)
    p = net.params
    if bias:
        p[n_in] = rng.normal()
    if trainable:
        p[-2:] = [rng.uniform(0.5, 2.0), rng.normal()]
    net.params = p
    # curvature scale: 2 s gamma^2 m lambda_max(Cov X) / var(h) for w, 2 s m for beta
    s = 1.0 / m if loss == "mean" else 1.0
    Xc = X - X.mean(axis=0)
    h = Xc @ p[:n_in]
    var = max(h @ h / m, 1e-300) + eps
    cov_max = np.linalg.eigvalsh(Xc.T @ Xc / m)[-1]
    g = max(abs(p[-2]) if trainable else gamma, 1.0)
    curvature = 2 * s * m * max(g * g * cov_max / var, 1.0)
    return layers, net, X, y, 0.1 / curvature


def run_both(layers, net, X, y, lr, steps, loss="sum", **kw):
    """(one_neuron result, one_neuron net, general result, general net)."""
    nets = [Network(layers, loss=loss), Network(layers, loss=loss)]
    for n in nets:
        n.params = net.params
        n._running, n._updates = net._running.copy(), net._updates
    one_neuron, used = _train(nets[0], X, y, lr, steps, **kw)
    assert used, "the one-neuron path did not run"
    general, used = _train(nets[1], X, y, lr, steps, allow_one_neuron=False, **kw)
    assert not used
    return one_neuron, nets[0], general, nets[1]


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300), initial=0.0))


def assert_params_close(a, b, n_in, bias, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    keep = np.ones(a.size, bool)
    if bias:
        keep[n_in] = False
        assert abs(a[n_in] - b[n_in]) <= BIAS_ATOL * max(1.0, abs(b[n_in]))
    scale = np.max(np.abs(b[keep]))
    assert np.max(np.abs(a[keep] - b[keep])) <= rtol * scale, (a, b)


def assert_losses_close(a, b, rtol=RTOL):
    """Relative to the first loss: a loss trained towards 0 has no relative accuracy."""
    assert a.shape == b.shape
    if a.size:
        assert np.max(np.abs(a - b)) <= rtol * abs(b[0]), (a, b)


CASES = [(seed, n_in, m, bias, trainable, eps, loss)
         for seed, (n_in, m) in enumerate([(1, 2), (2, 3), (3, 4), (1, 5), (4, 3), (6, 2),
                                           (2, 17), (5, 40), (6, 9), (3, 32)])
         for bias in (False, True)
         for trainable in (False, True)
         for eps, loss in ((0.0, "sum"), (1e-3, "mean"))]


@pytest.mark.parametrize("seed,n_in,m,bias,trainable,eps,loss", CASES)
def test_one_neuron_path_matches_general_and_reference(seed, n_in, m, bias, trainable, eps, loss):
    layers, net, X, y, lr = neuron_case(seed, n_in, m, bias, trainable, eps, loss)
    p0 = net.params
    one_neuron, tnet, general, gnet = run_both(layers, net, X, y, lr, 300, loss=loss,
                                         record_every=7)
    assert one_neuron.steps == general.steps == 300
    assert one_neuron.losses.shape == general.losses.shape == (43,)
    assert_params_close(one_neuron.params, general.params, n_in, bias)
    assert_losses_close(one_neuron.losses, general.losses)
    assert rel(tnet.running_mean[0], gnet.running_mean[0]) <= RTOL or \
        abs(tnet.running_mean[0][0] - gnet.running_mean[0][0]) <= 1e-13 * np.abs(X).max()
    assert rel(tnet.running_var[0], gnet.running_var[0]) <= RTOL
    assert tnet._updates == gnet._updates == 300
    expected = ref.train(specs(layers), p0, X, y, lr, 300, record_every=7, loss=loss)
    assert_params_close(one_neuron.params, expected.params, n_in, bias, REF_RTOL)
    assert_losses_close(one_neuron.losses, expected.losses, REF_RTOL)
    assert rel(tnet.running_var[0], expected.running_var[0]) <= REF_RTOL
    if trainable or (n_in > 1 and m > 2):  # else BN's output cannot change: xhat = +-1
        # for m = 2, and one frozen neuron of one input is scale invariant
        assert rel(one_neuron.params, p0) > 1e-6  # it trained


def test_example_3_2_matches_general_and_reference():
    net = Network(example_layers())
    net.params = [7.0, 5.0]
    for lr in (1.0, 10.0):
        one_neuron, _, general, _ = run_both(example_layers(), net, X32, Y32, lr, 500,
                                       record_every=3)
        assert_params_close(one_neuron.params, general.params, 2, False)
        assert_losses_close(one_neuron.losses, general.losses)
        expected = ref.train(specs(example_layers()), [7.0, 5.0], X32, Y32, lr, 500,
                             record_every=3)
        assert_params_close(one_neuron.params, expected.params, 2, False, REF_RTOL)
    # the BN minima are the ray 3 w1 = 5 w2, w1 > 0 (docs/math/networks.md, Example 3.2)
    w = bnfast.train(net, X32, Y32, 1.0, 20_000, record_every=20_000).params
    assert 3 * w[0] == pytest.approx(5 * w[1], rel=1e-9) and w[0] > 0


@pytest.mark.parametrize("steps,record_every", [(0, 1), (1, 1), (10, 3), (12, 3), (5, 9),
                                                (30, 30), (31, 1)])
def test_records_and_step_counts(steps, record_every):
    layers, net, X, y, lr = neuron_case(3, 2, 5, True, True, 0.0, "sum")
    seen = {True: [], False: []}
    for one_neuron in (True, False):
        n = Network(layers)
        n.params = net.params
        result, used = _train(n, X, y, lr, steps, record_every=record_every,
                              callback=lambda s, loss, t=one_neuron: seen[t].append((s, loss)),
                              allow_one_neuron=one_neuron)
        assert used == one_neuron and result.steps == steps
        assert result.losses.size == steps // record_every + 1
        assert [s for s, _ in seen[one_neuron]] == list(range(0, steps + 1, record_every))
        np.testing.assert_array_equal([loss for _, loss in seen[one_neuron]], result.losses)
    assert rel([x for _, x in seen[True]], [x for _, x in seen[False]]) <= RTOL


@pytest.mark.parametrize("stop_at", [0, 4, 8])
def test_callback_stop(stop_at):
    layers, net, X, y, lr = neuron_case(5, 3, 6, False, False, 0.0, "sum")
    one_neuron, tnet, general, gnet = run_both(layers, net, X, y, lr, 100, record_every=4,
                                         callback=lambda s, loss: s == stop_at)
    assert one_neuron.steps == general.steps == stop_at
    assert one_neuron.stopped_by_callback and general.stopped_by_callback
    assert_params_close(one_neuron.params, general.params, 3, False)
    assert tnet._updates == gnet._updates == stop_at


def test_callback_exception_leaves_the_network_unchanged():
    net = Network(example_layers())
    net.params = [7.0, 5.0]

    def boom(step, loss):
        if step == 6:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        bnfast.train(net, X32, Y32, 1.0, 100, record_every=3, callback=boom)
    np.testing.assert_array_equal(net.params, [7.0, 5.0])
    assert net._updates == 0


@pytest.mark.parametrize("momentum", [0.1, 0.7, None])
def test_running_statistics_continue_across_calls(momentum):
    layers, net, X, y, lr = neuron_case(8, 2, 7, True, False, 1e-5, "sum", momentum)
    one_neuron, tnet, general, gnet = run_both(layers, net, X, y, lr, 25, record_every=5)
    for n in (tnet, gnet):
        _train(n, X, y, lr, 40, allow_one_neuron=n is tnet)
    assert tnet._updates == gnet._updates == 65
    assert rel(tnet.running_mean[0], gnet.running_mean[0]) <= RTOL
    assert rel(tnet.running_var[0], gnet.running_var[0]) <= RTOL
    expected = ref.train(specs(layers), net.params, X, y, lr, 65)
    assert rel(tnet.running_mean[0], expected.running_mean[0]) <= REF_RTOL
    assert rel(tnet.running_var[0], expected.running_var[0]) <= REF_RTOL


def test_divergence_of_trainable_gamma_beta_matches():
    """lr above 1/m: beta oscillates with growing amplitude until the loss overflows."""
    layers, net, X, y, _ = neuron_case(11, 2, 6, False, True, 1e-5, "sum")
    errors = []
    for one_neuron in (True, False):
        n = Network(layers)
        n.params = net.params
        with pytest.raises(bnfast.TrainingDiverged) as info:
            _train(n, X, y, 0.5, 100_000, record_every=3, allow_one_neuron=one_neuron)
        np.testing.assert_array_equal(n.params, net.params)
        assert n._updates == 0
        errors.append(info.value)
    a, b = errors
    assert a.step == b.step and 5 < a.step < 5000
    assert not math.isfinite(a.loss) and not math.isfinite(b.loss)
    assert a.params_overflowed == b.params_overflowed
    assert a.losses.shape == b.losses.shape
    assert rel(a.losses[:5], b.losses[:5]) <= 1e-9  # growing ~e^4 a step
    with np.errstate(all="ignore"), pytest.raises(ref.TrainingDiverged) as ref_info:
        ref.train(specs(layers), net.params, X, y, 0.5, 100_000, record_every=3)
    assert ref_info.value.step == a.step


@pytest.mark.parametrize("steps", [3, 7])
def test_overflowing_update_matches(steps):
    net = Network(example_layers())
    net.params = [7.0, 5.0]
    errors = []
    for one_neuron in (True, False):
        with pytest.raises(bnfast.TrainingDiverged) as info:
            _train(net, X32, Y32, 1e308, steps, allow_one_neuron=one_neuron)
        errors.append(info.value)
    a, b = errors
    assert a.step == b.step < steps and a.params_overflowed and b.params_overflowed
    assert a.loss == pytest.approx(b.loss, rel=1e-14)
    np.testing.assert_array_equal(net.params, [7.0, 5.0])


def zero_variance_message(net, X, y):
    with pytest.raises(bnfast.ZeroVarianceError) as info:
        _train(net, X, y, 0.1, 5, allow_one_neuron=False)
    return str(info.value)


def test_zero_variance_raises_the_general_error():
    """Identical rows: h is constant for every w; with eps == 0 both paths raise
    Network::loss's error (layer 0, neuron 0) and change nothing."""
    X = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    net = Network(example_layers())
    net.params = [7.0, 5.0]
    expected = zero_variance_message(net, X, Y32)
    assert "layer 0, neuron 0" in expected
    for steps in (0, 5):
        with pytest.raises(bnfast.ZeroVarianceError) as info:
            _train(net, X, Y32, 0.1, steps)
        assert str(info.value) == expected
    np.testing.assert_array_equal(net.params, [7.0, 5.0])
    assert net._updates == 0


def test_zero_variance_from_weights_and_a_dominant_bias():
    """w = 0 makes h constant; a bias 1e20 rounds every h to the same value. The one-neuron step
    sees a variance at the rounding level of h and lets the general kernels decide."""
    layers = [Dense(2, 1, bias=True, batch_norm=BatchNorm(1.0, 0.0, trainable=False, eps=0.0))]
    for params in ([0.0, 0.0, 0.0], [7.0, 5.0, 1e20]):
        net = Network(layers)
        net.params = params
        expected = zero_variance_message(net, X32, Y32)
        with pytest.raises(bnfast.ZeroVarianceError) as info:
            _train(net, X32, Y32, 0.1, 5)
        assert str(info.value) == expected


def test_zero_variance_with_eps_trains_like_the_general_path():
    """eps > 0 and w = 0: BN outputs beta at first; the gradient moves w off 0."""
    layers = [Dense(2, 1, bias=False, batch_norm=BatchNorm(1.0, 0.0, trainable=True, eps=0.5))]
    net = Network(layers)
    net.params = [0.0, 0.0, 1.0, 0.0]
    one_neuron, _, general, _ = run_both(layers, net, X32, Y32, 0.01, 200, record_every=10)
    assert_params_close(one_neuron.params, general.params, 2, False)
    assert_losses_close(one_neuron.losses, general.losses)


def test_a_constant_feature_keeps_a_zero_gradient():
    X = np.array([[1.0, 3.0], [0.0, 3.0], [2.0, 3.0], [5.0, 3.0]])
    y = np.array([1.0, 0.0, 2.0, 4.0])
    layers = [Dense(2, 1, bias=False, batch_norm=BatchNorm(1.0, 0.0, trainable=False, eps=0.0))]
    net = Network(layers)
    net.params = [0.5, 0.7]
    one_neuron, _, general, _ = run_both(layers, net, X, y, 0.01, 100)
    assert one_neuron.params[1] == 0.7  # its centred column is exactly 0
    assert_params_close(one_neuron.params, general.params, 2, False)


@pytest.mark.parametrize("what", ["batch", "noise", "two layers", "two outputs", "tanh",
                                  "no BN", "l2 norm", "residual", "many rows", "wide",
                                  "huge data", "nan data"])
def test_networks_outside_the_one_neuron_class_take_the_general_path(what):
    bn = dict(gamma=1.0, beta=0.0, trainable=False, eps=1e-3)
    layers = [Dense(2, 1, batch_norm=BatchNorm(**bn))]
    X, y, kw = X32.copy(), Y32.copy(), {}
    if what == "batch":
        X, y, kw = np.tile(X32, (2, 1)), np.tile(Y32, 2), {"batch_size": 2}
    elif what == "noise":
        layers = [Dense(2, 1, batch_norm=BatchNorm(**bn, noise=BNNoise()))]
    elif what == "two layers":
        layers = [Dense(2, 2), Dense(2, 1, batch_norm=BatchNorm(**bn))]
    elif what == "two outputs":
        layers, y = [Dense(2, 2, batch_norm=BatchNorm(1.0, 0.0, eps=1e-3))], np.c_[Y32, Y32]
    elif what == "tanh":
        layers = [Dense(2, 1, "tanh", batch_norm=BatchNorm(**bn))]
    elif what == "no BN":
        layers = [Dense(2, 1)]
    elif what == "l2 norm":
        layers = [Dense(2, 1, batch_norm=BatchNorm(**bn, norm="l2"))]
    elif what == "residual":
        layers = [bnfast.Residual([Dense(1, 1, batch_norm=BatchNorm(**bn))])]
        X = X32[:, :1]
    elif what == "many rows":
        X = np.random.default_rng(0).standard_normal((65, 2))
        y = X.sum(axis=1)
    elif what == "wide":
        layers = [Dense(9, 1, batch_norm=BatchNorm(**bn))]
        X = np.random.default_rng(0).standard_normal((12, 9))
        y = X.sum(axis=1)
    elif what == "huge data":
        X = X32 * 1e61
    elif what == "nan data":
        y = np.array([1.0, np.nan, 2.0])
    net = Network(layers, seed=0)
    if what == "nan data":  # refused before any step (training needs finite data)
        with pytest.raises(ValueError, match="y holds nan"):
            _train(net, X, y, 1e-6, 2, **kw)
        return
    _, used = _train(net, X, y, 1e-6, 2, **kw)
    assert not used
