"""The network engine (docs/math/networks.md sections 6-11): gradient and exact
Hessian-vector product, inference, and training steps per BN variant.

All runs use one thread (bnfast.set_num_threads(1)) and float64.

    HvpGradient   time_gradient, time_hvp on two networks, and track_hvp_over_gradient:
                  hvp time / gradient time, measured interleaved in one process (section
                  11 expects about 3: every product of the forward and backward passes
                  gains two tangent products); time_hvp_at_point and
                  track_point_hvp_over_gradient: the same for the products after the
                  first of a HessianAt (tangent passes: the products of the primal
                  values are not redone, about 2).
    Predict       time_predict on 10000 rows (inference: running statistics, rows do
                  not interact) and track_predict_rows_per_second.
    TrainStep     time_train_step: 20 full-batch gradient steps (bnfast.train,
                  record_every = 20) of a 16 -> 64 -> 64 -> 1 BN MLP on 256 samples, per
                  BN variant (std, l1, l2, linf, noisy std, and std with a residual
                  block); divide by 20 for one step.
"""

import numpy as np

import bnfast
from bnfast import BatchNorm, BNNoise, Dense, Network, Residual

from ._common import min_time, ratio

_TIMEOUT = 120


def _mlp3():
    """3-layer tanh BN MLP, 16 -> 64 -> 64 -> 1 (256 samples of 16 features)."""
    return [Dense(16, 64, "tanh", bias=False, batch_norm=BatchNorm()),
            Dense(64, 64, "tanh", bias=False, batch_norm=BatchNorm()),
            Dense(64, 1)], 16


def _deep10():
    """10-layer linear BN network of width 64 (256 samples of 64 features); the last
    layer maps to 1 output without BN."""
    layers = [Dense(64, 64, "identity", bias=False, batch_norm=BatchNorm())
              for _ in range(9)]
    return layers + [Dense(64, 1)], 64


NETWORKS = {"mlp3-tanh-256x16": _mlp3, "deep10-linear-w64": _deep10}


def _data(m, n_in, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_in))
    y = np.sin(X[:, :4].sum(axis=1)) + 0.1 * X[:, 4]
    return X, y


class HvpGradient:
    """net.gradient and net.hvp (train-mode loss, batch statistics) on 256 samples."""

    params = [list(NETWORKS)]
    param_names = ["network"]
    timeout = _TIMEOUT
    repeat = (5, 30, 2.0)
    warmup_time = 0.05

    def setup(self, network):
        bnfast.set_num_threads(1)
        layers, n_in = NETWORKS[network]()
        self.net = Network(layers, seed=0)
        self.X, self.y = _data(256, n_in)
        self.v = np.random.default_rng(1).standard_normal(self.net.num_params)
        # products at this point: the first (the whole pass it keeps) is not timed; builds
        # before HessianAt (asv across commits) time the rest
        self.point = None
        if hasattr(bnfast._core, "HessianAt"):
            X, y = self.net.learning_set(self.X, self.y)
            self.point = bnfast._core.HessianAt(self.net._core, self.net.params, X, y)
            self.point.apply(self.v)

    def _gradient(self):
        self.net.gradient(self.X, self.y)

    def _hvp(self):
        self.net.hvp(self.X, self.y, self.v)

    def time_gradient(self, network):
        self._gradient()

    def time_hvp(self, network):
        self._hvp()

    def track_hvp_over_gradient(self, network):
        """min hvp time / min gradient time, samples of 10 calls, interleaved."""
        return ratio(self._hvp, self._gradient, number=10, repeat=15, budget=4.0)
    track_hvp_over_gradient.unit = "x"

    def _point(self):
        if self.point is None:
            raise NotImplementedError("this build has no HessianAt")
        self.point.apply(self.v)

    def time_hvp_at_point(self, network):
        self._point()

    def track_point_hvp_over_gradient(self, network):
        """as track_hvp_over_gradient for the products of a HessianAt."""
        return ratio(self._point, self._gradient, number=10, repeat=15, budget=4.0)
    track_point_hvp_over_gradient.unit = "x"


class Predict:
    """net.predict on 10000 rows after 20 mini-batch steps (non-trivial running
    statistics)."""

    ROWS = 10_000
    params = [list(NETWORKS)]
    param_names = ["network"]
    timeout = _TIMEOUT
    repeat = (3, 20, 2.0)
    warmup_time = 0.05

    def setup(self, network):
        bnfast.set_num_threads(1)
        layers, n_in = NETWORKS[network]()
        self.net = Network(layers, seed=0)
        X, y = _data(256, n_in)
        bnfast.train(self.net, X, y, 1e-3, 20, batch_size=64, record_every=20)
        self.X = _data(self.ROWS, n_in, seed=2)[0]

    def _predict(self):
        self.net.predict(self.X)

    def time_predict(self, network):
        self._predict()

    def track_predict_rows_per_second(self, network):
        self._predict()  # warm up
        return self.ROWS / min_time(self._predict, number=3, repeat=10, budget=3.0)
    track_predict_rows_per_second.unit = "rows/s"


def _variant_layers(variant):
    """16 -> 64 (tanh) -> 64 (relu) -> 1, both hidden layers with the variant's BN."""
    if variant == "residual":
        return [Dense(16, 64, "tanh", bias=False, batch_norm=BatchNorm()),
                Residual([Dense(64, 64, "relu", bias=False, batch_norm=BatchNorm()),
                          Dense(64, 64, "tanh", bias=False, batch_norm=BatchNorm())]),
                Dense(64, 1)]
    if variant == "noisy-std":
        def bn():
            return BatchNorm(noise=BNNoise())
    else:
        def bn():
            return BatchNorm(norm=variant)
    return [Dense(16, 64, "tanh", bias=False, batch_norm=bn()),
            Dense(64, 64, "relu", bias=False, batch_norm=bn()),
            Dense(64, 1)]


class TrainStep:
    """20 full-batch steps of bnfast.train (lr 1e-3, losses recorded at the start and
    the end only) per BN variant on 256 samples of 16 features."""

    STEPS = 20
    params = [["std", "l1", "l2", "linf", "noisy-std", "residual"]]
    param_names = ["variant"]
    timeout = _TIMEOUT
    repeat = (3, 20, 2.0)
    warmup_time = 0.05

    def setup(self, variant):
        bnfast.set_num_threads(1)
        self.net = Network(_variant_layers(variant), seed=0)
        self.p0 = self.net.params
        self.X, self.y = _data(256, 16)

    def time_train_step(self, variant):
        """20 steps (divide by 20 for one)."""
        self.net.params = self.p0
        bnfast.train(self.net, self.X, self.y, 1e-3, self.STEPS, record_every=self.STEPS)
