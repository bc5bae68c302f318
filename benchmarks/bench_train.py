"""Training loops: native bnfast.train (C++, GIL released) against
bnfast.reference.train (the same loop in NumPy on plain layer dicts, same batches).

The step counts are in the benchmark names, so a time_* result divided by that count
is the time of one step; the track_*_ns_per_step benchmarks report exactly that, and
track_speedup_per_step the ratio (reference / native, higher is better; the target of
docs/design/performance.md for Example 3.2 is >= 100, aim 300).
Losses are recorded only at the start and the end (record_every = steps), so the
numbers are the cost of the gradient steps themselves.
"""

import numpy as np

import bnfast
import bnfast.reference as reference
from bnfast import BatchNorm, Dense, Network

from ._common import min_time

_TIMEOUT = 300


class Example32:
    """Example 3.2 of Dannemann and Junike (2025): one identity neuron without bias,
    frozen BN (gamma 1, beta 0, eps 0) on 3 samples of 2 features; W0 = (7, 5),
    full-batch gradient descent with lr 1.0."""

    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([8.0, 6.0, 11.0])
    w0 = np.array([7.0, 5.0])
    lr = 1.0
    NATIVE_STEPS = 100_000
    REFERENCE_STEPS = 1_000

    timeout = _TIMEOUT
    repeat = (3, 10, 3.0)
    warmup_time = 0.0

    def setup(self):
        bnfast.set_num_threads(1)
        self.net = Network([Dense(2, 1, bias=False,
                                  batch_norm=BatchNorm(1.0, 0.0, trainable=False, eps=0.0))])
        self.net.params = self.w0
        self.layers = [layer.to_dict() for layer in self.net.layers]  # the oracle's input

    def _native(self, steps):
        self.net.params = self.w0
        bnfast.train(self.net, self.X, self.y, self.lr, steps, record_every=steps)

    def _reference(self, steps):
        reference.train(self.layers, self.w0, self.X, self.y, self.lr, steps,
                        record_every=steps)

    def time_native_100000_steps(self):
        self._native(self.NATIVE_STEPS)

    def time_reference_1000_steps(self):
        self._reference(self.REFERENCE_STEPS)

    def track_native_ns_per_step(self):
        steps = self.NATIVE_STEPS
        return min_time(lambda: self._native(steps), repeat=7) / steps * 1e9
    track_native_ns_per_step.unit = "ns/step"

    def track_reference_ns_per_step(self):
        steps = self.REFERENCE_STEPS
        return min_time(lambda: self._reference(steps), repeat=5) / steps * 1e9
    track_reference_ns_per_step.unit = "ns/step"

    def track_speedup_per_step(self):
        native = min_time(lambda: self._native(self.NATIVE_STEPS), repeat=7)
        ref = min_time(lambda: self._reference(self.REFERENCE_STEPS), repeat=5)
        return (ref / self.REFERENCE_STEPS) / (native / self.NATIVE_STEPS)
    track_speedup_per_step.unit = "x"

    def track_native_matches_reference(self):
        """Largest |params difference| after 1000 steps, native against reference
        (asserted below 1e-9: the two loops do the same maths)."""
        self._native(self.REFERENCE_STEPS)
        native = self.net.params
        self._reference(self.REFERENCE_STEPS)
        diff = float(np.max(np.abs(native - self.net.params)))
        assert diff <= 1e-9, f"native and reference training differ by {diff}"
        return diff
    track_native_matches_reference.unit = "abs difference"


class MLP:
    """A 3-layer BN MLP, 16 -> 64 (tanh, BN) -> 64 (relu, BN) -> 1, on 256 samples,
    lr 1e-3; mini-batch SGD with batches of 64 (4 steps an epoch) and full batch.
    Both loops run the same 100 steps."""

    params = [["64", "full"]]
    param_names = ["batch_size"]
    STEPS = 100
    lr = 1e-3

    timeout = _TIMEOUT
    repeat = (2, 5, 3.0)
    warmup_time = 0.0

    def setup(self, batch_size):
        bnfast.set_num_threads(1)
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((256, 16))
        self.y = np.sin(self.X[:, :4].sum(axis=1)) + 0.1 * self.X[:, 4]
        self.batch_size = None if batch_size == "full" else int(batch_size)
        self.net = Network([
            Dense(16, 64, "tanh", batch_norm=BatchNorm()),
            Dense(64, 64, "relu", batch_norm=BatchNorm()),
            Dense(64, 1),
        ], seed=0)
        self.p0 = self.net.params
        self.layers = [layer.to_dict() for layer in self.net.layers]  # the oracle's input

    def _native(self):
        self.net.params = self.p0
        bnfast.train(self.net, self.X, self.y, self.lr, self.STEPS,
                     batch_size=self.batch_size, record_every=self.STEPS)

    def _reference(self):
        reference.train(self.layers, self.p0, self.X, self.y, self.lr, self.STEPS,
                        batch_size=self.batch_size, record_every=self.STEPS)

    def time_native_100_steps(self, batch_size):
        self._native()

    def time_reference_100_steps(self, batch_size):
        self._reference()

    def track_speedup_per_step(self, batch_size):
        native = min_time(self._native, repeat=5)
        return min_time(self._reference, repeat=5) / native
    track_speedup_per_step.unit = "x"
