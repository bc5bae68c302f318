"""The engine's outputs, bit for bit, over the networks the tests build: the evidence that
a refactor of the engine changed no result (docs/design/layout.md, "The engine as ops").

    python tests/nn/engine_bits.py save OLD.npz        # with the old build installed
    python tests/nn/engine_bits.py compare OLD.npz     # with the new one: exit 1 on a change
    python tests/nn/engine_bits.py digests OUT.json    # sha256 per output, for the test

Every case evaluates loss, gradient, hvp, forward, predict (after training, so the
running statistics are not the initial ones), the running statistics, and training
trajectories: full batch, SGD with mini-batches, noisy BN, residual blocks, the lp
norms, loss="mean", the one-neuron step and train_many. test_engine_bits.py compares the
digests committed in engine_bits.json on the instruction set they were made with.
"""

import hashlib
import json
import sys

import numpy as np

import bnfast
from bnfast import BatchNorm, BNNoise, Dense, Residual

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
NORMS = ("std", "l1", "l2", "linf")


def _layers_small(rng, activation, norm, bias, trainable, eps):
    widths = [3, 5, 4, 2]
    layers = []
    for i in range(3):
        bn = BatchNorm(gamma=rng.uniform(0.6, 1.4, widths[i + 1]), beta=rng.uniform(-.5, .5),
                       trainable=trainable, eps=eps, norm=norm,
                       momentum=None if i == 1 else 0.1)
        act = ACTIVATIONS[(ACTIVATIONS.index(activation) + i) % 4]
        layers.append(Dense(widths[i], widths[i + 1], act, bias=bias,
                            batch_norm=bn if (i != 2 or norm == "std") else None))
    return layers


def cases():
    """(name, layers, loss kind, X, y, train options) for every network kind."""
    out = []
    for a, act in enumerate(ACTIVATIONS):
        for n, norm in enumerate(NORMS):
            for bias in (True, False):
                for trainable, eps in ((True, 0.1), (False, 1e-3)):
                    rng = np.random.default_rng([a, n, bias, trainable])
                    layers = _layers_small(rng, act, norm, bias, trainable, eps)
                    X = rng.normal(size=(12, 3))
                    y = rng.normal(size=(12, 2))
                    name = f"small-{act}-{norm}-{'b' if bias else 'nb'}-{'t' if trainable else 'c'}"
                    out.append((name, layers, "sum", X, y, dict(lr=0.01, batch_size=4)))
    rng = np.random.default_rng(7)
    noisy = [Dense(4, 6, "tanh", batch_norm=BatchNorm(noise=BNNoise())),
             Dense(6, 3, "relu", batch_norm=BatchNorm(noise=BNNoise(0.3, 1.5, 0.2, 0.05),
                                                      norm="l2")),
             Dense(3, 1)]
    X = rng.normal(size=(16, 4))
    out.append(("noisy-full", noisy, "sum", X, rng.normal(size=16), dict(lr=0.01)))
    out.append(("noisy-sgd", noisy, "mean", X, rng.normal(size=16), dict(lr=0.05, batch_size=5)))
    res = [Dense(4, 6, "relu", batch_norm=BatchNorm()),
           Residual([Dense(6, 6, "tanh", batch_norm=BatchNorm(eps=0.0)),
                     Dense(6, 6, "identity", batch_norm=BatchNorm(norm="l1"))]),
           Residual([Dense(6, 6, "sigmoid")]),
           Dense(6, 2)]
    X = rng.normal(size=(20, 4))
    out.append(("residual", res, "sum", X, rng.normal(size=(20, 2)), dict(lr=0.002, batch_size=6)))
    out.append(("residual-mean", res, "mean", X, rng.normal(size=(20, 2)), dict(lr=0.02)))
    res0 = [Residual([Dense(3, 3, "tanh", batch_norm=BatchNorm())]), Dense(3, 1)]
    X = rng.normal(size=(8, 3))
    out.append(("residual-at-input", res0, "sum", X, rng.normal(size=8), dict(lr=0.01)))
    # wider and deeper: the threaded kernels and the blocked products
    mlp = [Dense(32, 64, "tanh", batch_norm=BatchNorm()),
           Dense(64, 64, "tanh", batch_norm=BatchNorm()),
           Dense(64, 10)]
    X = rng.normal(size=(256, 32))
    out.append(("tanh-mlp", mlp, "mean", X, rng.normal(size=(256, 10)), dict(lr=0.05, batch_size=64)))
    dln = [Dense(10, 10, bias=False, batch_norm=BatchNorm(eps=0.0)) for _ in range(25)]
    dln.append(Dense(10, 1, bias=False))
    X = rng.normal(size=(64, 10))
    out.append(("dln-25", dln, "sum", X, rng.normal(size=64), dict(lr=1e-4)))
    # the one-neuron network of Example 3.2 (the specialised step) and its neighbours
    X32 = np.array([[1.0, 2.0], [3.0, 1.0], [0.0, 4.0]])
    y32 = 5 * X32[:, 0] + 3 * X32[:, 1] + 3
    for bias in (False, True):
        for trainable in (False, True):
            one = [Dense(2, 1, bias=bias, batch_norm=BatchNorm(trainable=trainable, eps=0.0))]
            out.append((f"one-neuron-{bias}-{trainable}", one, "sum", X32, y32, dict(lr=0.01)))
    return out


def _params(net, rng):
    return rng.normal(size=net.num_params) * 0.7


# The wide cases split their statistics into per-thread chunks: their bits depend on the
# thread count, so every run of this module uses the same one.
THREADS = 2


def outputs():
    """{key: array} of every quantity of every case, computed with THREADS threads."""
    before = bnfast.get_num_threads()
    bnfast.set_num_threads(THREADS)
    try:
        return _outputs()
    finally:
        bnfast.set_num_threads(before)


def _outputs():
    result = {}
    for name, layers, loss, X, y, opts in cases():
        rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
        net = bnfast.Network(layers, loss=loss)
        net.params = _params(net, rng)
        start = net.params
        v = rng.normal(size=net.num_params)
        result[f"{name}/loss"] = np.array([net.loss(X, y)])
        result[f"{name}/gradient"] = net.gradient(X, y)
        result[f"{name}/hvp"] = net.hvp(X, y, v)
        result[f"{name}/forward"] = net.forward(X)
        for key, kwargs in (("full", {}), ("sgd", {"batch_size": opts.get("batch_size")})):
            if key == "sgd" and kwargs["batch_size"] is None:
                continue
            net.params = start
            net._reset_running()
            r = bnfast.train(net, X, y, opts["lr"], 60, seed=3, record_every=7, **kwargs)
            result[f"{name}/{key}/params"] = r.params
            result[f"{name}/{key}/losses"] = r.losses
            result[f"{name}/{key}/running"] = net._running.copy()
            result[f"{name}/{key}/predict"] = net.predict(X[:5])
    X = np.random.default_rng(5).normal(size=(4, 3, 2))
    y = X @ np.array([5.0, 3.0]) + 3 + np.random.default_rng(6).normal(size=(4, 3))
    net = bnfast.Network([Dense(2, 1, bias=False, batch_norm=BatchNorm(trainable=False, eps=0.0))])
    params = np.tile(np.array([7.0, 5.0]), (4, 1)) + np.random.default_rng(8).normal(size=(4, 2))
    many = bnfast.train_many(net, params, X, y, 0.01, 200, record_every=9)
    result["train-many/params"] = many.params
    result["train-many/losses"] = many.losses
    return result


def digest(array):
    a = np.ascontiguousarray(array)
    return hashlib.sha256(a.dtype.str.encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def main(argv):
    if len(argv) != 3 or argv[1] not in ("save", "compare", "digests"):
        print(__doc__)
        return 2
    command, path = argv[1], argv[2]
    now = outputs()
    if command == "save":
        np.savez_compressed(path, **now)
        print(f"saved {len(now)} arrays to {path}")
        return 0
    if command == "digests":
        level = bnfast.runtime.simd_level()
        with open(path, "w") as f:
            json.dump({"simd": level, "digests": {k: digest(v) for k, v in now.items()}},
                      f, indent=0, sort_keys=True)
        print(f"wrote {len(now)} digests ({level}) to {path}")
        return 0
    old = np.load(path)
    changed = [k for k in old.files if k not in now or now[k].tobytes() != old[k].tobytes()
               or now[k].shape != old[k].shape]
    missing = [k for k in now if k not in old.files]
    for k in changed:
        diff = (np.max(np.abs(now[k] - old[k])) if k in now and now[k].shape == old[k].shape
                else "shape")
        print(f"CHANGED {k}: max |new - old| = {diff}")
    print(f"{len(old.files) - len(changed)} of {len(old.files)} arrays identical bit for bit;"
          f" {len(missing)} new keys")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
