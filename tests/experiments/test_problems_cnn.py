"""The papers' architecture family in problems.py (version 2, experiments.md item 1): the
MNIST-1D Conv1d BN network and the digits Conv2d BN network, their data, recipes, and
the tasks that name them."""

import numpy as np
import pytest

import bnfast
from bnfast.experiments import problems
from bnfast.experiments.spec import derived_seed

NORMS = (None, "std", "l1", "l2", "linf")


def test_mnist1d_cnn_architecture():
    net = problems.mnist1d_cnn(norm="std", seed=0)
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["conv", "conv", "conv", "flatten", "dense"]
    convs = net.layers[:3]
    assert [c.kernel_size for c in convs] == [(5,), (3,), (3,)]
    assert all(c.stride == (2,) and c.padding == (1,) and c.out_channels == 25
               and c.activation == "relu" and c.normalization is not None for c in convs)
    assert net.loss_kind == "cross_entropy"
    # Greydanus's ConvBase has 5210 parameters; BN adds gamma and beta (3 x 50)
    assert problems.mnist1d_cnn(seed=0).num_params == 5210
    assert net.num_params == 5210 + 150
    assert net.predict(np.zeros((3, 1, 40))).shape == (3, 10)
    assert problems.mnist1d_cnn(channels=8).num_params < 5210


def test_digits_cnn_architecture():
    net = problems.digits_cnn(norm="std", seed=0)
    assert [layer.kind for layer in net.layers] == [
        "conv", "max_pool", "conv", "max_pool", "flatten", "dense"]
    assert net.layers[0].out_channels == 16 and net.layers[2].out_channels == 32
    assert net.layers[-1].in_features == 128
    assert net.predict(np.zeros((2, 1, 8, 8))).shape == (2, 10)


@pytest.mark.parametrize("make", [problems.mnist1d_cnn, problems.digits_cnn])
def test_norms_of_one_seed_share_their_weights(make):
    # paired comparisons: the nets of a seed differ only by their normalization
    nets = {norm: make(norm=norm, seed=7) for norm in NORMS}
    plain = nets[None]
    for norm, net in nets.items():
        for a, b in zip(plain.param_layout(), net.param_layout()):
            for name in ("W", "b"):
                if name in a:
                    np.testing.assert_array_equal(plain.params[a[name][0]],
                                                  net.params[b[name][0]])
        if norm is not None:
            assert net.layers[0].normalization.norm == norm
    assert not np.array_equal(make(seed=8).params, plain.params)


def test_pytorch_default_init_law():
    net = problems.mnist1d_cnn(norm="std", seed=3)
    layout = net.param_layout()
    for entry, fan_in in zip(layout, (5, 75, 75, None, 125)):
        if fan_in is None:
            continue
        for name in ("W", "b"):
            values = net.params[entry[name][0]]
            assert np.all(np.abs(values) <= 1 / np.sqrt(fan_in))
        if "gamma" in entry:
            assert np.all(net.params[entry["gamma"][0]] == 1)
            assert np.all(net.params[entry["beta"][0]] == 0)
    other = problems.mnist1d_cnn(norm="std", seed=3, init="he")
    assert not np.array_equal(other.params, net.params)


def test_noise_is_noisy_bn_with_a_norm_and_the_control_without():
    """With a norm the conv layers carry noisy BN; without, the same noise on their
    pre-activations (the noisy-bn control); the weights of a seed stay those of the
    plain nets, and the Dense head has neither."""
    noise = bnfast.BNNoise(0.3, 1.5, 0.2, 0.1)
    for make in (problems.mnist1d_cnn, problems.digits_cnn):
        noisy, control = make(norm="std", noise=noise, seed=2), make(noise=noise, seed=2)
        np.testing.assert_array_equal(noisy.params, make(norm="std", seed=2).params)
        np.testing.assert_array_equal(control.params, make(seed=2).params)
        convs = [layer for layer in noisy.layers if layer.kind == "conv"]
        assert convs and all(layer.batch_norm.noise == noise and layer.noise is None
                             for layer in convs)
        convs = [layer for layer in control.layers if layer.kind == "conv"]
        assert all(layer.normalization is None and layer.noise == noise for layer in convs)
        for net in (noisy, control):
            assert net.layers[-1].applied_noise is None
    dln = problems.deep_linear_network(depth=3, noise=noise)
    assert [layer.noise for layer in dln.layers] == [noise, noise, None]


def test_digits_images_are_the_digits_rows():
    X, y, X_test, y_test = problems.digits_images_data(4)
    X_flat, Y, X_flat_test, _, labels_test = problems.digits_data(4)
    assert X.shape[1:] == (1, 8, 8) and y.dtype == np.int64
    np.testing.assert_array_equal(X.reshape(len(X), -1), X_flat)
    np.testing.assert_array_equal(y, Y.argmax(1))
    np.testing.assert_array_equal(y_test, labels_test)
    assert not np.array_equal(problems.digits_images_data(5)[1], y)


def test_paired_tasks_keep_version_one_and_name_the_cnns():
    settings = {"seeds": 2, "dln": {"a": 1}, "digits": {"b": 2},
                "mnist1d": problems.recipe("mnist1d", quick=True),
                "digits-images": problems.recipe("digits-images")}
    configs = {"standard": None, "bn": "std"}
    old = problems.paired_tasks(settings, 11, configs, line_points=3)
    assert [t["problem"] for t in old] == ["dln"] * 4 + ["digits"] * 4
    assert [t["seed"] for t in old[::2]] == [derived_seed(11, p, r)
                                              for p in (0, 1) for r in (0, 1)]
    assert all(t["line_points"] == 3 for t in old)
    new = problems.paired_tasks(settings, 11, configs,
                                problems=("dln", "mnist1d", "digits-images"))
    assert [t["problem"] for t in new[::4]] == ["dln", "mnist1d", "digits-images"]
    assert new[:4] == [{k: v for k, v in t.items() if k != "line_points"}
                       for t in old[:4]]
    assert new[4]["seed"] == derived_seed(11, 2, 0)
    assert new[8]["seed"] == derived_seed(11, 3, 0)
    assert new[4]["setup"]["steps"] == problems.RECIPES["mnist1d"]["quick"]["steps"]
    with pytest.raises(ValueError, match="unknown problem"):
        problems.paired_tasks(settings, 11, configs, problems=("mnist",))


def test_recipes():
    for problem in ("mnist1d", "digits-images"):
        quick, full = problems.recipe(problem, quick=True), problems.recipe(problem)
        assert quick["momentum"] == full["momentum"] == 0.9
        assert quick["steps"] < full["steps"]
        quick["steps"] = -1                                  # a copy
        assert problems.RECIPES[problem]["quick"]["steps"] > 0
    optimizer = problems.recipe_optimizer(problems.recipe("mnist1d"))
    assert optimizer.momentum == 0.9 and optimizer.weight_decay == 0.0
    with pytest.raises(ValueError, match="no recipe"):
        problems.recipe("dln")


def test_the_digits_cnn_quick_recipe_learns():
    setup = problems.recipe("digits-images", quick=True)
    task = {"problem": "digits-images", "norm": "std", "seed": 0, "setup": setup}
    net, X, y, (X_test, y_test) = problems.build(task)
    assert X.shape[1:] == (1, 8, 8) and y.ndim == 1
    result = problems.train_recipe(net, X, y, setup, seed=0)
    assert result.steps == setup["steps"]
    assert result.losses[-1] < 0.2 * result.losses[0]
    assert net.accuracy(X_test, y_test) > 0.9


def test_the_mnist1d_cnn_quick_recipe_learns():
    pytest.importorskip("mnist1d")
    setup = problems.recipe("mnist1d", quick=True)
    task = {"problem": "mnist1d", "norm": "std", "seed": 0, "setup": setup}
    net, X, y, (X_test, y_test) = problems.build(task)
    assert X.shape == (4000, 1, 40) and X_test.shape == (1000, 1, 40)
    result = problems.train_recipe(net, X, y, setup, seed=0)
    assert result.losses[-1] < 0.25 * result.losses[0]
    assert net.accuracy(X_test, y_test) > 0.75                # chance: 0.1
    # the default data set is generated once per process and handed out as copies
    X[...] = 0
    assert np.any(problems.mnist1d_data()[0] != 0)


def test_build_noise_from_a_dict_and_unknown_problems():
    task = {"problem": "digits", "norm": "std", "seed": 0,
            "setup": {"hidden": [8], "activation": "relu", "loss": "mean"},
            "noise": {"n_mu": 0.1, "n_sigma": 1.0, "r_mu": 0.0, "r_sigma": 0.1}}
    net = problems.build(task)[0]
    assert net.layers[0].normalization.noise == bnfast.BNNoise(0.1, 1.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="unknown problem"):
        problems.build({**task, "problem": "cifar"})


def test_internal_covariate_shift_on_the_cnns():
    # Definition 2.1 on a network with pooling and Flatten between its weighted layers:
    # one entry per Dense/Conv layer; G'_i after the parameters of every earlier layer
    # moved (checked by hand for the second conv, which follows a max-pool).
    from bnfast.experiments import measures

    X, y, _, _ = problems.digits_images_data(0)
    X, y = X[:64], y[:64]
    net = problems.digits_cnn(norm="std", seed=1)
    step = -0.1 * net.gradient(X, y)
    start = net.params
    l2, cosine = measures.internal_covariate_shift(net, X, y, step)
    assert l2.shape == cosine.shape == (3,)
    assert l2[0] == 0 and cosine[0] == pytest.approx(1.0)
    np.testing.assert_array_equal(net.params, start)
    layout, slices = net.param_layout(), net.param_slices
    moved = start.copy()
    moved[slices[0]] += step[slices[0]]
    W = layout[2]["W"][0]
    net.params = moved
    G_moved = net.gradient(X, y)[W]
    net.params = start
    G = net.gradient(X, y)[W]
    assert l2[1] == pytest.approx(np.linalg.norm(G - G_moved), rel=1e-12)
    assert cosine[1] == pytest.approx(
        G @ G_moved / np.linalg.norm(G) / np.linalg.norm(G_moved), rel=1e-12)
