"""The learning problems the experiments share: Santurkar et al.'s deep linear network
(DLN) on synthetic Gaussian regression data, an MLP on scikit-learn's bundled digits
data (real images; no download), and (version 2, docs/experiments/README.md) the papers'
architecture family on data that ships: a Conv1d BN network on MNIST-1D (Greydanus
2020) and a Conv2d BN network on the digits as 8x8 images, both with softmax
cross-entropy and momentum SGD (``RECIPES``).

Santurkar et al. (2018), appendix A: a 25-layer deep linear network of width 10 on data
x ~ N(0, I_10), y = A x with A a 10x10 standard Gaussian matrix, 1000 samples, full
batch, Glorot (uniform) initialization; with BN, every layer but the last is followed by
a BN layer.

The convolutional networks (one definition, also used by benchmarks/_cnn_peers.py and
docs/experiments/mnist1d_table.py):

    mnist1d_cnn   Conv1d(1, 25, 5, stride 2, padding 1), [BN], ReLU; twice
                  Conv1d(25, 25, 3, stride 2, padding 1), [BN], ReLU (positions 40 -> 19
                  -> 10 -> 5); Flatten; Dense(125, 10). X (m, 1, 40).
    digits_cnn    Conv2d(1, 16, 3, padding 1), [BN], ReLU, MaxPool2d(2) (8x8 -> 4x4);
                  Conv2d(16, 32, 3, padding 1), [BN], ReLU, MaxPool2d(2) (-> 2x2);
                  Flatten; Dense(128, 10). X (m, 1, 8, 8).

BN (when norm is given) normalizes over channels (per channel, over samples and
positions), before the ReLU, PyTorch's BatchNorm defaults (gamma 1, beta 0, eps 1e-5,
momentum 0.1). ``noise`` (a BNNoise, Santurkar et al.'s Algorithm 1) with a norm is
noisy BN (one draw per sample and channel on the conv layers); with norm None it is the
same noise on the pre-activations of the layers that BN would follow (the noisy-bn
experiment's control: "the same noise on the standard network"); docs/math/networks.md
section 8.

``paired_tasks`` and ``build`` are the grid and the problem of the experiments that
compare normalizations on several problems ("landscape", "lp-norm"): "dln", "digits"
(the MLP), "mnist1d" and "digits-images" (the CNNs).
"""

import functools

import numpy as np

from ..datasets import digits, mnist1d
from ..nn import (SGD, BatchNorm, Conv1d, Conv2d, Dense, Flatten, MaxPool2d, Network,
                  Residual, train)
from .spec import derived_seed

__all__ = ["DIGITS_CLASSES", "MNIST1D_CHANNELS", "PROBLEMS", "RECIPES", "build",
           "deep_linear_data", "deep_linear_network", "digits_cnn", "digits_cnn_layers",
           "digits_data", "digits_images_data", "digits_mlp", "mnist1d_cnn",
           "mnist1d_cnn_layers", "mnist1d_data", "paired_tasks", "pytorch_default_init",
           "recipe", "recipe_optimizer", "train_recipe"]

#: The digits data set's classes (0..9).
DIGITS_CLASSES = 10


def deep_linear_data(seed, samples=1000, dim=10):
    """(X (samples, dim), y (samples, dim)): x ~ N(0, I), y = A x, A (dim, dim) ~ N(0, 1)
    entrywise, drawn from NumPy's default_rng(seed)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((dim, dim))
    X = rng.standard_normal((samples, dim))
    return X, X @ A.T


def deep_linear_network(depth=25, width=10, norm=None, noise=None, seed=0, loss="sum"):
    """The DLN: ``depth`` identity Dense layers of width ``width``; with norm ("std",
    "l1", "l2", "linf"), a BN layer of that norm (gamma 1, beta 0, trainable) after every
    layer but the last (noise: module docstring); Glorot-uniform weights drawn from
    ``seed``."""
    layers = [Dense(width, width, **(_bn(norm, noise) if i < depth - 1 else {}))
              for i in range(depth)]
    return Network(layers, loss=loss).init("glorot", seed)


def digits_data(seed, test_fraction=0.2):
    """scikit-learn's digits (1797 8x8 images of the digits 0-9) as
    (X_train, Y_train, X_test, Y_test, labels_test): bnfast.datasets.digits (pixels
    scaled to [0, 1], the split a permutation drawn from default_rng(seed)) with Y
    one-hot (rows, 10) so that the networks' squared loss fits them. Needs scikit-learn
    (it ships the data)."""
    data = digits(split=test_fraction, seed=seed)
    one_hot = np.eye(DIGITS_CLASSES)
    return (data.X_train, one_hot[data.y_train], data.X_test, one_hot[data.y_test],
            data.y_test)


def digits_mlp(hidden=(100, 100), activation="relu", norm=None, noise=None, seed=0,
               loss="mean"):
    """An MLP 64 -> hidden... -> 10 for the digits: each hidden Dense layer has
    ``activation`` and, with norm, a BN layer of that norm before it (noise: module
    docstring); the output layer is linear. Glorot-uniform weights from ``seed``."""
    sizes = [64, *hidden]
    layers = [Dense(a, b, activation, **_bn(norm, noise))
              for a, b in zip(sizes[:-1], sizes[1:])]
    layers.append(Dense(sizes[-1], DIGITS_CLASSES))
    return Network(layers, loss=loss).init("glorot", seed)


#: The problems a task can name, in the order ``paired_tasks`` lists them; a problem's
#: index here is its slot in the seed derivation (so "dln" and "digits" keep theirs).
PROBLEMS = ("dln", "digits", "mnist1d", "digits-images")


def paired_tasks(settings, seed, configs, problems=("dln", "digits"), **fields):
    """One task per (problem, seed index, configuration) over ``problems`` (names of
    PROBLEMS; default the DLN and the digits MLP, as version 1); the configurations of a
    seed index share one base seed, hence data, initial weights, SGD order and
    measurement batches. configs : {label: norm}; settings["seeds"] seed indices;
    settings[problem] each problem's set-up (for "mnist1d" and "digits-images", a
    ``recipe`` dict plus any network options ``build`` reads); fields : more entries of
    every task. A problem's base seeds are derived_seed(seed, PROBLEMS.index(problem),
    replicate), whatever else is in the grid."""
    out = []
    for problem in problems:
        if problem not in PROBLEMS:
            raise ValueError(f"unknown problem {problem!r}; known: {', '.join(PROBLEMS)}")
        for replicate in range(settings["seeds"]):
            base = derived_seed(seed, PROBLEMS.index(problem), replicate)
            for config, norm in configs.items():
                out.append({"problem": problem, "config": config, "norm": norm,
                            "replicate": replicate, "seed": base,
                            "setup": settings[problem], **fields})
    return out


def build(task):
    """(net, X, y, extra) of a task: the network with its norm and the learning set;
    extra holds the test split (X_test, labels_test), or None for the DLN.

    task["problem"]: "dln" and "digits" (y (m, out) targets for the squared losses) as
    version 1; "mnist1d" and "digits-images": the CNNs with cross-entropy, y (m,) int64
    labels. For the CNNs, task["setup"] may hold "channels" (mnist1d, default 25),
    "bias" (default True), "init" (default "pytorch"), and for mnist1d "data":
    "default" (the package's default data set, the paper's; the default) or "per-seed"
    (a data set generated from derived_seed(seed, 0)); task.get("noise"): None, a
    BNNoise, or a dict of BNNoise's fields (noisy BN, or without a norm the same noise
    where BN would be: module docstring). Data
    come from derived_seed(seed, 0) (digits splits), weights from derived_seed(seed, 1).
    """
    setup, seed = task["setup"], task["seed"]
    noise = _noise(task.get("noise"))
    if task["problem"] == "dln":
        X, y = deep_linear_data(derived_seed(seed, 0), samples=setup["samples"],
                                dim=setup["width"])
        net = deep_linear_network(setup["depth"], setup["width"], norm=task["norm"],
                                  noise=noise, seed=derived_seed(seed, 1),
                                  loss=setup["loss"])
        return net, X, y, None
    if task["problem"] == "digits":
        X, y, X_test, _, labels_test = digits_data(derived_seed(seed, 0))
        net = digits_mlp(tuple(setup["hidden"]), setup["activation"], norm=task["norm"],
                         noise=noise, seed=derived_seed(seed, 1), loss=setup["loss"])
        return net, X, y, (X_test, labels_test)
    options = {"bias": setup.get("bias", True), "init": setup.get("init", "pytorch")}
    if task["problem"] == "mnist1d":
        data = setup.get("data", "default")
        if data not in ("default", "per-seed"):
            raise ValueError(f"setup['data'] must be 'default' or 'per-seed', got {data!r}")
        X, y, X_test, y_test = mnist1d_data(None if data == "default"
                                            else derived_seed(seed, 0))
        net = mnist1d_cnn(norm=task["norm"], noise=noise, seed=derived_seed(seed, 1),
                          channels=setup.get("channels", MNIST1D_CHANNELS), **options)
        return net, X, y, (X_test, y_test)
    if task["problem"] == "digits-images":
        X, y, X_test, y_test = digits_images_data(derived_seed(seed, 0))
        net = digits_cnn(norm=task["norm"], noise=noise, seed=derived_seed(seed, 1),
                         **options)
        return net, X, y, (X_test, y_test)
    raise ValueError(f"unknown problem {task['problem']!r}; known: {', '.join(PROBLEMS)}")


# ---- the papers' architecture family: CNNs with cross-entropy (version 2) ----------

#: The MNIST-1D CNN's channels (Greydanus 2020's ConvBase).
MNIST1D_CHANNELS = 25

#: Momentum SGD recipes per CNN problem, "quick" (a run learns measurably in a few
#: seconds on 2 cores) and "full" (near the paper's accuracy); measured accuracies and
#: times: docs/experiments/README.md, "Version 2 set-ups". lr: the step size; momentum:
#: PyTorch's SGD (heavy ball, buffer v <- momentum v + g, params -= lr v); batch_size:
#: rows per step (disjoint batches, reshuffled every epoch); steps: updates;
#: record_every: how often the full learning-set loss is recorded.
RECIPES = {
    "mnist1d": {
        "quick": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 100,
                  "steps": 300, "record_every": 50},
        "full": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 100,
                 "steps": 4000, "record_every": 100},
    },
    "digits-images": {
        "quick": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 100,
                  "steps": 150, "record_every": 50},
        "full": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 100,
                 "steps": 1000, "record_every": 100},
    },
}


def recipe(problem, quick=False):
    """A copy of RECIPES[problem]["quick" or "full"] (a dict: lr, momentum,
    weight_decay, batch_size, steps, record_every), ready to extend into a task's
    set-up."""
    if problem not in RECIPES:
        raise ValueError(f"no recipe for {problem!r}; recipes: {', '.join(RECIPES)}")
    return dict(RECIPES[problem]["quick" if quick else "full"])


def recipe_optimizer(setup):
    """bnfast.SGD(momentum=setup["momentum"], weight_decay=setup.get("weight_decay",
    0)) for a recipe (or any set-up holding them)."""
    return SGD(momentum=setup["momentum"], weight_decay=setup.get("weight_decay", 0.0))


def train_recipe(net, X, y, setup, seed, **kwargs):
    """bnfast.train of ``net`` on (X, y) with the recipe ``setup`` (lr, steps,
    batch_size, momentum, weight_decay, record_every) and shuffles/noise from ``seed``;
    kwargs go to bnfast.train (e.g. sharpness_every, callback). Returns the
    TrainResult (raises TrainingDiverged as bnfast.train)."""
    kwargs.setdefault("record_every", setup.get("record_every", 1))
    return train(net, X, y, setup["lr"], setup["steps"], batch_size=setup["batch_size"],
                 seed=seed, optimizer=recipe_optimizer(setup), **kwargs)


@functools.lru_cache(maxsize=8)
def _mnist1d_arrays(seed, samples, split):
    data = mnist1d(samples=samples, seed=42 if seed is None else seed, split=split)
    for array in data:
        array.flags.writeable = False
    return tuple(data)


def mnist1d_data(seed=None, samples=5000, split=0.2):
    """MNIST-1D (Greydanus 2020) as (X_train (m, 1, 40) float64, y_train (m,) int64
    labels, X_test, y_test): bnfast.datasets.mnist1d, generated locally by the mnist1d
    package's generator. seed None: the package's default data set (seed 42, 4000 train
    / 1000 test rows: the one of the paper's table); an int: a data set drawn from that
    seed (same law). Kept in memory per (seed, samples, split) (generating one takes
    ~2 s); the arrays returned are fresh copies. Needs the mnist1d package."""
    return tuple(np.array(a) for a in _mnist1d_arrays(seed, samples, split))


def digits_images_data(seed, test_fraction=0.2):
    """scikit-learn's digits as images, (X_train (m, 1, 8, 8) float64 in [0, 1],
    y_train (m,) int64 labels, X_test, y_test): bnfast.datasets.digits(images=True),
    the split a permutation drawn from default_rng(seed) (the same rows as
    digits_data(seed)). Needs scikit-learn."""
    return tuple(digits(images=True, split=test_fraction, seed=seed))


def mnist1d_cnn_layers(norm=None, noise=None, channels=MNIST1D_CHANNELS, bias=True):
    """The MNIST-1D CNN's layers (module docstring): three Conv1d with ``channels``
    channels, kernels 5/3/3, stride 2, padding 1, ReLU, each with a BN layer of ``norm``
    ("std", "l1", "l2", "linf"; None: none) before its ReLU (noise: module docstring);
    Flatten; Dense(5 channels, 10). bias: the conv layers' bias (BN cancels it in train
    mode; the Dense keeps its own)."""
    def conv(c_in, kernel):
        return Conv1d(c_in, channels, kernel, stride=2, padding=1, activation="relu",
                      bias=bias, **_bn(norm, noise))
    return [conv(1, 5), conv(channels, 3), conv(channels, 3), Flatten(),
            Dense(channels * 5, DIGITS_CLASSES)]


def mnist1d_cnn(norm=None, noise=None, seed=0, channels=MNIST1D_CHANNELS, bias=True,
                init="pytorch", loss="cross_entropy"):
    """The MNIST-1D CNN (mnist1d_cnn_layers) as a Network with ``loss``; weights from
    ``seed`` by ``init``: "pytorch" (pytorch_default_init, the reference recipe's), None
    (Network's own default from seed) or a Network.init scheme ("glorot", "he",
    "normal"). Nets of one seed that differ only in norm share their W and b."""
    return _initialized(mnist1d_cnn_layers(norm, noise, channels, bias), loss, init, seed)


def digits_cnn_layers(norm=None, noise=None, bias=True):
    """The digits CNN's layers (module docstring): Conv2d(1, 16, 3, padding 1) and
    Conv2d(16, 32, 3, padding 1), each with [BN of ``norm``], ReLU and MaxPool2d(2)
    (noise: module docstring); Flatten; Dense(128, 10)."""
    def conv(c_in, c_out):
        return Conv2d(c_in, c_out, 3, padding=1, activation="relu", bias=bias,
                      **_bn(norm, noise))
    return [conv(1, 16), MaxPool2d(2), conv(16, 32), MaxPool2d(2), Flatten(),
            Dense(128, DIGITS_CLASSES)]


def digits_cnn(norm=None, noise=None, seed=0, bias=True, init="pytorch",
               loss="cross_entropy"):
    """The digits CNN (digits_cnn_layers) as a Network; ``init`` as mnist1d_cnn."""
    return _initialized(digits_cnn_layers(norm, noise, bias), loss, init, seed)


def pytorch_default_init(net, seed):
    """Sets every W and b of ``net`` to PyTorch's default law for nn.Linear/nn.Conv*d,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Kaiming-uniform with a = sqrt(5)), drawn from
    default_rng(seed) layer by layer (W, then b); gamma = 1 and beta = 0 stay as the
    BatchNorm set them. Returns net."""
    rng = np.random.default_rng(seed)
    flat = [layer for item in net.layers
            for layer in (item.layers if isinstance(item, Residual) else (item,))]
    layout = net.param_layout()
    assert len(flat) == len(layout)
    params = net.params
    for layer, entry in zip(flat, layout):
        if "W" not in entry:        # Flatten, pooling
            continue
        bound = 1.0 / np.sqrt(layer.fan_in)
        for name in ("W", "b"):
            if name in entry:
                where, shape = entry[name]
                params[where] = rng.uniform(-bound, bound, int(np.prod(shape)))
    net.params = params
    return net


def _initialized(layers, loss, init, seed):
    if init is None:
        return Network(layers, loss=loss, seed=seed)
    net = Network(layers, loss=loss)
    if init == "pytorch":
        return pytorch_default_init(net, seed)
    return net.init(init, seed)


def _noise(noise):
    if noise is None or not isinstance(noise, dict):
        return noise
    from ..nn import BNNoise
    return BNNoise(**noise)


def _bn(norm, noise):
    """The keyword arguments of a layer that BN of ``norm`` would follow: noisy BN with
    a norm, the layer's own noise (the control) without one."""
    if norm is None:
        return {"noise": noise}
    return {"batch_norm": BatchNorm(norm=norm, noise=noise)}
