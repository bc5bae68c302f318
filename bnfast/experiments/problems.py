"""The learning problems the experiments share: Santurkar et al.'s deep linear network
(DLN) on synthetic Gaussian regression data, and an MLP on scikit-learn's bundled digits
data (real images; no download).

Santurkar et al. (2018), appendix A: a 25-layer deep linear network of width 10 on data
x ~ N(0, I_10), y = A x with A a 10x10 standard Gaussian matrix, 1000 samples, full
batch, Glorot (uniform) initialization; with BN, every layer but the last is followed by
a BN layer.

``paired_tasks`` and ``build`` are the grid and the problem of the experiments that
compare normalizations on both problems ("landscape", "lp-norm").
"""

import numpy as np

from ..datasets import digits
from ..nn import BatchNorm, Dense, Network
from .spec import derived_seed

__all__ = ["DIGITS_CLASSES", "build", "deep_linear_data", "deep_linear_network",
           "digits_data", "digits_mlp", "paired_tasks"]

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
    layer but the last; Glorot-uniform weights drawn from ``seed``."""
    layers = [Dense(width, width, batch_norm=_bn(norm, noise) if i < depth - 1 else None)
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
    ``activation`` and, with norm, a BN layer of that norm (and noise) before it; the
    output layer is linear. Glorot-uniform weights from ``seed``."""
    sizes = [64, *hidden]
    layers = [Dense(a, b, activation, batch_norm=_bn(norm, noise))
              for a, b in zip(sizes[:-1], sizes[1:])]
    layers.append(Dense(sizes[-1], DIGITS_CLASSES))
    return Network(layers, loss=loss).init("glorot", seed)


def paired_tasks(settings, seed, configs, **fields):
    """One task per (problem, seed index, configuration) over the DLN and the digits
    MLP; the configurations of a seed index share one base seed, hence data, initial
    weights, SGD order and measurement batches. configs : {label: norm};
    settings["seeds"] seed indices; settings["dln"], settings["digits"] the set-ups;
    fields : more entries of every task."""
    out = []
    for problem in ("dln", "digits"):
        for replicate in range(settings["seeds"]):
            base = derived_seed(seed, 0 if problem == "dln" else 1, replicate)
            for config, norm in configs.items():
                out.append({"problem": problem, "config": config, "norm": norm,
                            "replicate": replicate, "seed": base,
                            "setup": settings[problem], **fields})
    return out


def build(task):
    """(net, X, y, extra) of a task: the network with its norm and the learning set;
    extra holds the digits test split (or None)."""
    setup, seed = task["setup"], task["seed"]
    if task["problem"] == "dln":
        X, y = deep_linear_data(derived_seed(seed, 0), samples=setup["samples"],
                                dim=setup["width"])
        net = deep_linear_network(setup["depth"], setup["width"], norm=task["norm"],
                                  seed=derived_seed(seed, 1), loss=setup["loss"])
        return net, X, y, None
    X, y, X_test, _, labels_test = digits_data(derived_seed(seed, 0))
    net = digits_mlp(tuple(setup["hidden"]), setup["activation"], norm=task["norm"],
                     seed=derived_seed(seed, 1), loss=setup["loss"])
    return net, X, y, (X_test, labels_test)


def _bn(norm, noise):
    if norm is None:
        if noise is not None:
            raise ValueError("noise needs a BN layer (norm is None)")
        return None
    return BatchNorm(norm=norm, noise=noise)
