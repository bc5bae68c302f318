"""Noisy BN in bnfast.reference (docs/math/networks.md section 8): the generator against
a SplitMix64 written here (and checked against its published outputs), the draw order
bit for bit, the laws of s and m, and train with noise against a hand loop whose
gradient is a central difference of a noisy loss written from the formulas. On
convolutions (one draw per sample and channel, shared by the channel's positions) and
the same noise without normalization (the noisy-bn experiment's control): the draw
order, the sharing by hand, loss and gradient against the torch twin with the same
draws, central differences, and train against a loop that takes its gradients from
torch.

Tolerances. Draws are compared bit for bit (the same float operations in the same
order). Against the torch twin, as in test_reference_conv.py: 1e-13 for losses, 1e-12
for gradients and for one to three updates (sums of a few hundred terms in another
order). The hand loop's gradient is a central difference (h = 1e-6, error ~1e-9
relative, see test_reference_variants), so its parameter updates agree to 1e-6. The
statistical checks allow 5 standard deviations of the estimate (each computed in the
test), a false failure probability below 1e-6 per check; the draws are deterministic,
so a pass is a pass for good.
"""

import math

import numpy as np
import pytest

from bnfast import reference
from bnfast.reference._checks import check_layers
from bnfast.reference.noise import NoiseGenerator, draw_noise
from bnfast.reference.shuffle import EpochShuffler
from bnfast.reference.network import backprop
from reference_cases import (bn, central_gradient, dense, flat, manual_forward_ext, noise,
                             random_params, rel_err)
from torch_twin import batch_norm, conv, flatten, maxpool
from torch_twin import dense as dense_layer
from torch_twin import random_params as random_conv_params

XOR = 0x6A09E667F3BCC909


def splitmix(seed):
    """SplitMix64 outputs, an infinite generator (Vigna's splitmix64.c)."""
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) % 2**64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        yield z ^ (z >> 31)


def uniforms(seed):
    """The noise stream's uniforms for train's ``seed``: (next() >> 11) / 2^53."""
    for o in splitmix(seed ^ XOR):
        yield (o >> 11) / 2**53


def hand_noise(stream, specs, B):
    """[(s, m)] per (out, noise dict) in ``specs``, in the documented draw order."""
    result = []
    for out, nz in specs:
        s, m = np.zeros((B, out)), np.zeros((B, out))
        for j in range(out):
            mu = nz["n_mu"] * (2 * next(stream) - 1)
            s0 = 1 + (nz["n_sigma"] - 1) * next(stream)
            for i in range(B):
                m[i, j] = mu + nz["r_mu"] * (2 * next(stream) - 1)
                u1 = next(stream)
                u2 = next(stream)
                s[i, j] = s0 + nz["r_sigma"] * (math.sqrt(-2 * math.log(1 - u1))
                                                * math.cos(2 * math.pi * u2))
        result.append((s, m))
    return result


def checked(layers):
    """The reference's own view of ``layers`` (draw_noise takes checked layers)."""
    return [layer for layer in check_layers(layers)
            if layer.bn is not None and layer.bn.noise is not None]


# ---------------------------------------------------------------- the generator


def test_the_hand_splitmix_gives_the_published_outputs():
    assert [next(g) for g in [splitmix(0)] for _ in range(3)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**64 - 1, XOR])
def test_first_uniforms_and_normals(seed):
    gen, stream = NoiseGenerator(seed), uniforms(seed)
    for _ in range(5):
        u = gen.uniform()
        assert type(u) is float and 0 <= u < 1
        assert u == next(stream)
    u1, u2 = next(stream), next(stream)
    assert gen.normal() == math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)


def test_seed_zero_first_uniform_by_hand():
    """seed 0: the stream starts from state 0x6A09E667F3BCC909."""
    z = (XOR + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    z ^= z >> 31
    assert NoiseGenerator(0).uniform() == (z >> 11) * 2.0**-53


def test_draw_order_bit_for_bit():
    layers = [dense(2, 2, "tanh", False, bn(eps=0.0, noise=noise(0.5, 1.25, 0.1, 0.2))),
              dense(2, 4, "tanh", False, bn(eps=0.0)),
              dense(4, 3, "tanh", False, bn(eps=0.0, noise=noise(1.0, 3.0, 0.5, 1.5)))]
    gen, stream = NoiseGenerator(77), uniforms(77)
    for B in (3, 5):  # two steps of one run: the stream continues
        draws = draw_noise(gen, checked(layers), B)
        expected = hand_noise(stream, [(2, layers[0]["batch_norm"]["noise"]),
                                       (3, layers[2]["batch_norm"]["noise"])], B)
        assert len(draws) == 2
        for (s, m), (es, em) in zip(draws, expected):
            assert s.dtype == m.dtype == np.float64 and s.shape == es.shape
            np.testing.assert_array_equal(s, es)
            np.testing.assert_array_equal(m, em)
    assert gen.uniform() == next(stream)


def test_zero_noise_still_draws():
    """n_mu = r_mu = r_sigma = 0, n_sigma = 1: s = 1 and m = 0 exactly, and the 2 + 3 B
    uniforms per unit are consumed all the same."""
    layers = [dense(2, 2, "tanh", False, bn(eps=0.0, noise=noise(0.0, 1.0, 0.0, 0.0)))]
    gen, stream = NoiseGenerator(5), uniforms(5)
    (s, m), = draw_noise(gen, checked(layers), 3)
    assert np.all(s == 1.0) and np.all(m == 0.0)
    for _ in range(2 * (2 + 3 * 3)):
        next(stream)
    assert gen.uniform() == next(stream)


def test_noise_laws():
    """mu_j ~ U(-n_mu, n_mu), s0_j ~ U(1, n_sigma); m_ij - mu_j ~ U(-r_mu, r_mu),
    s_ij - s0_j ~ N(0, r_sigma^2). 1000 units, 20 rows."""
    n_mu, n_sigma, r_mu, r_sigma = 0.5, 1.25, 0.1, 0.2
    layers = [dense(2, 1000, "tanh", False, bn(eps=0.0, noise=noise(n_mu, n_sigma, r_mu,
                                                                     r_sigma)))]
    (s, m), = draw_noise(NoiseGenerator(3), checked(layers), 20)
    units, rows = 1000, 20
    # means over all draws; the unit-level terms dominate the spread of the mean
    sd_m = math.sqrt(n_mu**2 / 3 / units + r_mu**2 / 3 / (units * rows))
    assert abs(m.mean()) <= 5 * sd_m
    sd_s = math.sqrt((n_sigma - 1)**2 / 12 / units + r_sigma**2 / (units * rows))
    assert abs(s.mean() - (1 + n_sigma) / 2) <= 5 * sd_s
    # within a unit, m stays within r_mu of mu_j: its row range is at most 2 r_mu
    assert np.all(m.max(axis=0) - m.min(axis=0) <= 2 * r_mu)
    assert np.all(np.abs(m) <= n_mu + r_mu)
    # the unit means of m spread like U(-n_mu, n_mu): variance n_mu^2/3 (+ r_mu^2/3/rows)
    var_unit = n_mu**2 / 3 + r_mu**2 / 3 / rows
    assert abs(m.mean(axis=0).var() / var_unit - 1) <= 5 * math.sqrt(0.8 / units)
    # pooled within-unit variance of s: r_sigma^2, relative sd sqrt(2/(units (rows-1)))
    pooled = s.var(axis=0, ddof=1).mean()
    assert abs(pooled / r_sigma**2 - 1) <= 5 * math.sqrt(2 / (units * (rows - 1)))


def test_uniforms_and_normals_laws():
    gen = NoiseGenerator(11)
    u = np.array([gen.uniform() for _ in range(100_000)])
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) <= 5 * math.sqrt(1 / 12 / u.size)
    z = np.array([gen.normal() for _ in range(50_000)])
    assert abs(z.mean()) <= 5 / math.sqrt(z.size)
    assert abs(z.var() - 1) <= 5 * math.sqrt(2 / z.size)
    assert abs(np.mean(z**4) - 3) <= 5 * math.sqrt(96 / z.size)  # Var z^4 = 105 - 9


# ---------------------------------------------------------------- train with noise


def noisy_network(nz=None):
    nz = nz or noise(0.5, 1.5, 0.2, 0.3)
    return [dense(3, 4, "tanh", False, bn(1.0, 0.0, True, 0.0, noise=nz, momentum=1.0)),
            dense(4, 3, "sigmoid", True, bn(1.2, 0.1, False, 1e-3, norm="l2",
                                            momentum=1.0)),
            dense(3, 2, "identity", True, bn(1.0, 0.0, False, 0.0, norm="linf", noise=nz,
                                             momentum=1.0))]


def quiet(layers):
    """The same network without noise."""
    out = []
    for d in layers:
        norm = d["batch_norm"]
        if norm is not None:
            norm = {k: v for k, v in norm.items() if k != "noise"}
        out.append(dict(d, batch_norm=norm))
    return out


def setup(m=8, seed=2):
    rng = np.random.default_rng(seed)
    layers = noisy_network()
    X, Y = rng.normal(size=(m, 3)), rng.normal(size=(m, 2))
    return layers, X, Y, random_params(layers, rng)


def noise_specs(layers):
    """{index in network order: (out, noise)} of the noisy layers, in order."""
    return [(k, d["out_features"], d["batch_norm"]["noise"]) for k, d in
            enumerate(flat(layers)) if d["batch_norm"] and d["batch_norm"].get("noise")]


def hand_run(layers, p0, X, Y, lr, steps, seed, batch_size=None):
    """The documented loop: fresh noise each update, gradient of the noisy loss on the
    batch by central differences; returns (params, [noise of each step])."""
    stream, specs = uniforms(seed), noise_specs(layers)
    shuffler, perm, pos = EpochShuffler(X.shape[0], seed), None, X.shape[0]
    p, used = p0.copy(), []
    for _ in range(steps):
        rows = np.arange(X.shape[0])
        if batch_size:
            if pos + batch_size > X.shape[0]:
                perm, pos = shuffler.next_epoch(), 0
            rows, pos = perm[pos:pos + batch_size], pos + batch_size
        draws = hand_noise(stream, [(out, nz) for _, out, nz in specs], rows.size)
        nz = {k: sm for (k, _, _), sm in zip(specs, draws)}
        used.append((rows, nz))

        def noisy_loss(q):
            return np.sum((Y[rows] - manual_forward_ext(layers, q, X[rows], nz)[0]) ** 2)

        p = p - lr * central_gradient(noisy_loss, p)
    return p, used


@pytest.mark.parametrize("batch_size", [None, 4])
def test_train_with_noise_is_the_documented_loop(batch_size):
    layers, X, Y, p0 = setup()
    lr, steps, seed = 0.05, 3, 9
    result = reference.train(layers, p0, X, Y, lr, steps, batch_size=batch_size, seed=seed)
    expected, _ = hand_run(layers, p0, X, Y, lr, steps, seed, batch_size)
    assert rel_err(result.params - p0, expected - p0) <= 1e-6
    # the noise changed the run
    plain = reference.train(quiet(layers), p0, X, Y, lr, steps, batch_size=batch_size,
                            seed=seed)
    assert np.max(np.abs(plain.params - result.params)) > 1e-3


@pytest.mark.parametrize("batch_size", [None, 4])
def test_running_statistics_come_from_the_noisy_evaluation(batch_size):
    """momentum 1: after one update the statistics are those of its (noisy) batch."""
    layers, X, Y, p0 = setup()
    result = reference.train(layers, p0, X, Y, 0.05, 1, batch_size=batch_size, seed=4)
    _, [(rows, nz)] = hand_run(layers, p0, X, Y, 0.05, 1, 4, batch_size)
    _, records = manual_forward_ext(layers, p0, X[rows], nz)
    B = rows.size
    expected_var = [records[0]["s2"] * B / (B - 1), records[1]["s2"], records[2]["s2"]]
    for j in range(3):
        assert rel_err(result.running_mean[j], records[j]["mu"]) <= 1e-12
        assert rel_err(result.running_var[j], expected_var[j]) <= 1e-12
    # the second layer's statistics see the first layer's noise
    _, clean = manual_forward_ext(layers, p0, X[rows])
    assert rel_err(result.running_mean[1], clean[1]["mu"]) > 1e-6


@pytest.mark.parametrize("batch_size", [None, 4])
def test_recorded_losses_are_noise_free(batch_size):
    """losses[k] is the noise-free full loss at the params after k updates, and the run
    of k steps reproduces those params (the noise stream restarts with the seed)."""
    layers, X, Y, p0 = setup()
    run = reference.train(layers, p0, X, Y, 0.05, 4, batch_size=batch_size, seed=1)
    for k in range(5):
        part = reference.train(layers, p0, X, Y, 0.05, k, batch_size=batch_size, seed=1)
        assert run.losses[k] == reference.network_loss(layers, part.params, X, Y)
        assert run.losses[k] == reference.network_loss(quiet(layers), part.params, X, Y)


@pytest.mark.parametrize("batch_size", [None, 4])
def test_same_seed_same_bits_other_seed_other_noise(batch_size):
    layers, X, Y, p0 = setup()
    a = reference.train(layers, p0, X, Y, 0.05, 5, batch_size=batch_size, seed=3)
    b = reference.train(layers, p0, X, Y, 0.05, 5, batch_size=batch_size, seed=3)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.losses, b.losses)
    for x, y in zip(a.running_mean + a.running_var, b.running_mean + b.running_var):
        np.testing.assert_array_equal(x, y)
    c = reference.train(layers, p0, X, Y, 0.05, 5, batch_size=batch_size, seed=4)
    assert np.max(np.abs(c.params - a.params)) > 1e-6


@pytest.mark.parametrize("batch_size", [None, 4])
def test_zero_noise_is_the_noise_free_run(batch_size):
    """s = 1, m = 0: z * 1 + 0 = z exactly, so the run is bit for bit the plain one."""
    layers, X, Y, p0 = setup()
    zero = noisy_network(noise(0.0, 1.0, 0.0, 0.0))
    a = reference.train(zero, p0, X, Y, 0.05, 6, batch_size=batch_size, seed=2,
                        record_every=2)
    b = reference.train(quiet(layers), p0, X, Y, 0.05, 6, batch_size=batch_size, seed=2,
                        record_every=2)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.losses, b.losses)
    for x, y in zip(a.running_mean + a.running_var, b.running_mean + b.running_var):
        np.testing.assert_array_equal(x, y)


def test_noise_is_drawn_only_at_update_steps():
    """A run stopped by its callback at step 2 drew for two updates only: continuing the
    stream by hand gives the third update of the uninterrupted run."""
    layers, X, Y, p0 = setup()
    stopped = reference.train(layers, p0, X, Y, 0.05, 10, seed=6,
                              callback=lambda step, loss: step == 2)
    two = reference.train(layers, p0, X, Y, 0.05, 2, seed=6)
    assert stopped.steps == 2
    np.testing.assert_array_equal(stopped.params, two.params)
    three = reference.train(layers, p0, X, Y, 0.05, 3, seed=6)
    _, used = hand_run(layers, p0, X, Y, 0.05, 3, 6)

    def noisy_loss(q):
        return np.sum((Y - manual_forward_ext(layers, q, X, used[2][1])[0]) ** 2)

    step = three.params - two.params
    assert rel_err(step, -0.05 * central_gradient(noisy_loss, two.params)) <= 1e-6


def test_forward_loss_gradient_are_noise_free():
    layers, X, Y, p = setup()
    plain = quiet(layers)
    np.testing.assert_array_equal(reference.network_forward(layers, p, X),
                                  reference.network_forward(plain, p, X))
    assert reference.network_loss(layers, p, X, Y) == reference.network_loss(plain, p, X, Y)
    np.testing.assert_array_equal(reference.network_gradient(layers, p, X, Y),
                                  reference.network_gradient(plain, p, X, Y))


# ---------------------------------------------------------------- convolutions, control


def conv_networks():
    """(layers, per-sample input shape, loss): noisy BN on 1-D conv layers (eps 1e-5
    and 0), the same noise without normalization on 2-D conv layers and a dense layer."""
    return {
        "bn-1d": ([conv(1, 3, [3], [2], [1], "tanh", False,
                        batch_norm(noise=noise(0.5, 1.25, 0.1, 0.1))),
                   conv(3, 4, [3], None, [1], "relu", False,
                        batch_norm(eps=0.0, noise=noise(0.3, 1.5, 0.2, 0.3))),
                   flatten(), dense_layer(20, 3)], (1, 9), "cross_entropy"),
        "control-2d": ([conv(1, 3, [3, 3], None, [1, 1], "tanh", noise=noise()),
                        maxpool([2, 2]),
                        conv(3, 2, [2, 2], None, None, "sigmoid", noise=noise(1.0, 2.0, 0.3,
                                                                              0.5)),
                        flatten(), dense_layer(8, 2, noise=noise(0.2, 1.1, 0.05, 0.2))],
                       (1, 6, 6), "mean"),
    }


def conv_problem(name, m=5, seed=3):
    layers, shape, loss = conv_networks()[name]
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m,) + shape)
    y = rng.integers(0, 3, m) if loss == "cross_entropy" else rng.normal(size=(m, 2))
    return layers, X, y, loss, random_conv_params(layers, rng)


def noisy_layers(layers):
    return [layer for layer in check_layers(layers)
            if (layer.bn.noise if layer.bn is not None else layer.noise) is not None]


def noise_dicts(layers):
    """(out, noise dict) per noisy layer in network order, from the dicts alone."""
    out = []
    for d in layers:
        norm = d.get("normalization")
        nz = norm.get("noise") if norm is not None else d.get("noise")
        if nz is not None:
            out.append((d.get("out_channels", d.get("out_features")), nz))
    return out


def injected(layers, draws):
    """{flat layer index: (s, m)} for backprop from draws in network order."""
    index = [k for k, layer in enumerate(check_layers(layers))
             if (layer.bn.noise if layer.bn is not None else layer.noise) is not None]
    return dict(zip(index, draws))


@pytest.mark.parametrize("name", ["bn-1d", "control-2d"])
def test_conv_and_control_draws_follow_the_documented_order(name):
    """One (B, C) draw per noisy layer, channels as units, in network order, noisy BN
    and the layers' own noise alike."""
    layers = conv_networks()[name][0]
    gen, stream = NoiseGenerator(21), uniforms(21)
    for B in (4, 2):
        draws = draw_noise(gen, noisy_layers(layers), B)
        expected = hand_noise(stream, noise_dicts(layers), B)
        assert len(draws) == len(expected) == 3 if name == "control-2d" else 2
        for (s, m), (es, em) in zip(draws, expected):
            np.testing.assert_array_equal(s, es)
            np.testing.assert_array_equal(m, em)


def test_conv_noise_is_shared_by_the_positions_of_a_channel():
    """A 1x1 convolution with W = 1 and no bias maps x to itself: with noise its output
    at every position p of sample i, channel c is s_ic x_icp + m_ic exactly."""
    layers = [conv(2, 2, [1], activation="identity", bias=False, noise=noise())]
    W = np.eye(2).reshape(-1)
    X = np.random.default_rng(4).normal(size=(3, 2, 5))
    (s, m), = draw_noise(NoiseGenerator(8), noisy_layers(layers), 3)
    tape = reference.network.forward_tape(check_layers(layers), W, X, noise={0: (s, m)})
    np.testing.assert_array_equal(tape[-1]["A"], s[:, :, None] * X + m[:, :, None])


@pytest.mark.parametrize("name", ["bn-1d", "control-2d"])
def test_conv_noise_loss_and_gradient_match_torch(name):
    torch = pytest.importorskip("torch")
    from torch_twin import loss_gradient_hvp
    layers, X, y, loss, p = conv_problem(name)
    draws = draw_noise(NoiseGenerator(5), noisy_layers(layers), X.shape[0])
    value, grad, _ = backprop(check_layers(layers), p, X, y, loss, injected(layers, draws))
    t_value, t_grad, _ = loss_gradient_hvp(torch, layers, p, X, y, loss, noise=draws)
    assert rel_err(value, t_value) <= 1e-13
    assert rel_err(grad, t_grad) <= 1e-12
    # the noise mattered
    _, plain, _ = loss_gradient_hvp(torch, layers, p, X, y, loss)
    assert rel_err(plain, t_grad) > 1e-3


@pytest.mark.parametrize("name", ["bn-1d", "control-2d"])
def test_conv_noise_gradient_matches_central_differences(name):
    """A fixed draw: the noisy loss is a smooth function of the parameters (no ReLU
    input near 0 here: the tanh, sigmoid and relu layers are checked by the margin)."""
    layers, X, y, loss, p = conv_problem(name, seed=6)
    checked = check_layers(layers)
    nz = injected(layers, draw_noise(NoiseGenerator(2), noisy_layers(layers), X.shape[0]))
    _, grad, tape = backprop(checked, p, X, y, loss, nz)
    for layer, rec in zip(checked, tape):
        if layer.activation == "relu":
            assert np.min(np.abs(rec["Z"])) > 1e-4
    numeric = central_gradient(lambda q: backprop(checked, q, X, y, loss, nz)[0], p)
    assert rel_err(grad, numeric) <= 1e-6


@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("name", ["bn-1d", "control-2d"])
def test_train_with_conv_noise_is_the_documented_loop(name, batch_size):
    """Three updates: the documented stream's draws (hand_noise), torch's gradient of
    the noisy batch loss, p <- p - lr g."""
    torch = pytest.importorskip("torch")
    from torch_twin import loss_gradient_hvp
    layers, X, y, loss, p0 = conv_problem(name, m=6)
    lr, seed = 0.1, 7
    result = reference.train(layers, p0, X, y, lr, 3, batch_size=batch_size, seed=seed,
                             loss=loss)
    stream, specs = uniforms(seed), noise_dicts(layers)
    shuffler, perm, pos, p = EpochShuffler(6, seed), None, 6, p0.copy()
    for _ in range(3):
        rows = np.arange(6)
        if batch_size:
            if pos + batch_size > 6:
                perm, pos = shuffler.next_epoch(), 0
            rows, pos = perm[pos:pos + batch_size], pos + batch_size
        draws = hand_noise(stream, specs, rows.size)
        _, g, _ = loss_gradient_hvp(torch, layers, p, X[rows], y[rows], loss, noise=draws)
        p = p - lr * g
    assert rel_err(result.params - p0, p - p0) <= 1e-12
