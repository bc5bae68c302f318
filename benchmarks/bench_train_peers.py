"""Training loops against their peers (issue 16): the time of one full-batch gradient
step of bnfast.train and of the same maths in the NumPy reference, JAX
jit(lax.fori_loop), numba (Example 3.2, hand-unrolled) and a PyTorch autograd loop;
float64, 2 threads (bnfast.set_num_threads, torch.set_num_threads; XLA picks its own).

The workloads and the peers' code are in _train_peers.py (each workload's definition
in its function's docstring: example32, mlp, dln, sgd_guard; `python -m
benchmarks._train_peers` prints the whole table). Per workload and peer one class
(Example32Jax, MLPTorch, DLNReference, ...), skipped when the peer is not importable
(asv shows n/a); the <Workload>Bnfast classes time bnfast alone:

    time_<peer>_<N>_steps      N steps from the workload's initial params (the step
                               count is in the name: divide by it)
    track_<peer>_ns_per_step   (us for the networks) min of repeats / N
    track_ratio_to_<peer>      bnfast time per step / the peer's, both measured
                               interleaved in one process (min of repeats); lower is
                               better: issue 16's goals are <= 0.6 (MLP) and <= 0.7
                               (DLN) against JAX
    track_<peer>_agreement     max |params_peer - params_bnfast| / max |params_bnfast|
                               after 300 steps from the same start; fails above 1e-10
                               (then the peer does not do the same maths)

bnfast records the loss only before the first and after the last step (record_every =
steps), so the times are those of the steps. Each timed call includes the peer's fixed
cost per call (converting the params in and out, a jitted call), amortized over N.
"""

import numpy as np

import bnfast

from . import _train_peers as peers
from ._common import min_time, ratio

_TIMEOUT = 300


class _PeerBench:
    """One peer on one workload. Subclasses set ``workload`` and ``peer`` and bind the
    benchmarks to their names with the factories below (each a new function, so that
    each carries its own unit)."""

    workload = None  # a key of peers.WORKLOADS
    peer = None      # a key of peers.PEERS
    threads = 2

    timeout = _TIMEOUT
    repeat = (3, 10, 3.0)
    warmup_time = 0.0

    def setup(self, *params):
        bnfast.set_num_threads(self.threads)
        self.w = peers.workload(self.workload)
        self.steps = peers.TIMED_STEPS[self.workload][self.peer]
        # NotImplementedError (asv's skip) when the peer is not importable
        self.run = peers.runner(self.workload, self.peer, self.threads)

    def _call(self):
        return self.run(self.w.params0, self.steps)


def _timed():
    """time_<peer>_<N>_steps: N steps (N = TIMED_STEPS[workload][peer])."""
    def time_steps(self, *params):
        self._call()
    return time_steps


def _per_step(unit):
    """track_<peer>_ns_per_step (unit "ns/step", or "us/step"): min of repeats / N."""
    scale = {"ns/step": 1e9, "us/step": 1e6}[unit]

    def track_per_step(self, *params):
        return min_time(self._call, repeat=7) / self.steps * scale
    track_per_step.unit = unit
    return track_per_step


def _ratio_to_peer():
    """track_ratio_to_<peer>: bnfast's time per step (2 threads) / the peer's, both
    timed interleaved in one process (min of repeats); lower is better."""
    def track_ratio(self, *params):
        native = peers.runner(self.workload, "bnfast", 2)
        n_native = peers.TIMED_STEPS[self.workload]["bnfast"]
        r = ratio(lambda: native(self.w.params0, n_native), self._call, repeat=7)
        return r * self.steps / n_native
    track_ratio.unit = "x"
    return track_ratio


def _agreement():
    """track_<peer>_agreement: max |params_peer - params_bnfast| / max |params_bnfast|
    after 300 steps from the same start; AssertionError above 1e-10."""
    def track_agreement(self, *params):
        return peers.agreement(self.workload, self.peer)
    track_agreement.unit = "relative difference"
    return track_agreement


# --- Example 3.2 ------------------------------------------------------------------

class _Example32(_PeerBench):
    workload = "example32"


class Example32Bnfast(_Example32):
    """bnfast.train on Example 3.2 (one BN neuron, 3 samples; issue 16's goal:
    <= 30 ns per step), at 1 and 2 threads (the peers' ratios use 2)."""

    peer = "bnfast"
    params = [[1, 2]]
    param_names = ["threads"]

    def setup(self, threads):
        self.threads = threads
        super().setup()

    time_bnfast_100000_steps = _timed()
    track_bnfast_ns_per_step = _per_step("ns/step")


class Example32Reference(_Example32):
    peer = "reference"
    time_reference_1000_steps = _timed()
    track_reference_ns_per_step = _per_step("ns/step")
    track_ratio_to_reference = _ratio_to_peer()
    track_reference_agreement = _agreement()


class Example32Jax(_Example32):
    peer = "jax"
    time_jax_100000_steps = _timed()
    track_jax_ns_per_step = _per_step("ns/step")
    track_ratio_to_jax = _ratio_to_peer()
    track_jax_agreement = _agreement()


class Example32Numba(_Example32):
    peer = "numba"
    time_numba_100000_steps = _timed()
    track_numba_ns_per_step = _per_step("ns/step")
    track_ratio_to_numba = _ratio_to_peer()
    track_numba_agreement = _agreement()


class Example32Torch(_Example32):
    peer = "torch"
    time_torch_300_steps = _timed()
    track_torch_ns_per_step = _per_step("ns/step")
    track_ratio_to_torch = _ratio_to_peer()
    track_torch_agreement = _agreement()


# --- BN MLP 256 x 16 -> 64 -> 64 -> 1 ---------------------------------------------

class _MLP(_PeerBench):
    workload = "mlp"
    repeat = (3, 10, 3.0)


class MLPBnfast(_MLP):
    """bnfast.train on the BN MLP, 2 threads: 256 x 16 -> 64 (tanh, BN) -> 64 (tanh,
    BN) -> 1 (bias, no BN); the BN layers without bias, gamma/beta trainable (1, 0,
    eps 1e-5); W ~ N(0, 1/in) (seed 0); X ~ N(0, 1), y = sin(x_1 + .. + x_4) + 0.1 x_5;
    summed loss, lr 1e-3, full batch (_train_peers.mlp). The peers' classes hold the
    ratios."""

    peer = "bnfast"
    time_bnfast_20_steps = _timed()
    track_bnfast_us_per_step = _per_step("us/step")


class MLPReference(_MLP):
    peer = "reference"
    time_reference_5_steps = _timed()
    track_reference_us_per_step = _per_step("us/step")
    track_ratio_to_reference = _ratio_to_peer()
    track_reference_agreement = _agreement()


class MLPJax(_MLP):
    """Issue 16's goal: track_ratio_to_jax <= 0.6."""

    peer = "jax"
    time_jax_20_steps = _timed()
    track_jax_us_per_step = _per_step("us/step")
    track_ratio_to_jax = _ratio_to_peer()
    track_jax_agreement = _agreement()


class MLPTorch(_MLP):
    peer = "torch"
    time_torch_20_steps = _timed()
    track_torch_us_per_step = _per_step("us/step")
    track_ratio_to_torch = _ratio_to_peer()
    track_torch_agreement = _agreement()


# --- 25-layer BN deep linear network ----------------------------------------------

class _DLN(_PeerBench):
    workload = "dln"
    repeat = (2, 6, 3.0)


class DLNBnfast(_DLN):
    """bnfast.train on the 25-layer BN deep linear network, 2 threads:
    25 x Dense(32, 32, identity, bias=False, BatchNorm()) (BN on every layer, the last
    included; gamma/beta trainable, 1 and 0, eps 1e-5), W Glorot-uniform
    (net.init("glorot", 0)); X (512, 32) and A (32, 32) standard normal (seed 1),
    y = X A^T; summed loss, full batch, lr 1e-6 (the loss falls steadily, 5.3e5 to
    7.9e4 over 3000 steps; at lr 1e-5 it stalls near 2.4e5 in a chaotic regime where
    rounding differences grow to ~5% in 300 steps). _train_peers.dln."""

    peer = "bnfast"
    time_bnfast_5_steps = _timed()
    track_bnfast_us_per_step = _per_step("us/step")


class DLNReference(_DLN):
    peer = "reference"
    time_reference_2_steps = _timed()
    track_reference_us_per_step = _per_step("us/step")
    track_ratio_to_reference = _ratio_to_peer()
    track_reference_agreement = _agreement()


class DLNJax(_DLN):
    """Issue 16's goal: track_ratio_to_jax <= 0.7."""

    peer = "jax"
    time_jax_5_steps = _timed()
    track_jax_us_per_step = _per_step("us/step")
    track_ratio_to_jax = _ratio_to_peer()
    track_jax_agreement = _agreement()


class DLNTorch(_DLN):
    peer = "torch"
    time_torch_5_steps = _timed()
    track_torch_us_per_step = _per_step("us/step")
    track_ratio_to_torch = _ratio_to_peer()
    track_torch_agreement = _agreement()


# --- the guard: mini-batch SGD on a 4-layer relu BN MLP -----------------------------

class SGDGuard:
    """Must not get slower: mini-batch SGD (batch_size 64) on a 4-layer MLP
    512 x 32 -> 128 -> 128 -> 128 (relu, BN) -> 10 (definition: _train_peers.sgd_guard),
    bnfast.train at 2 threads (and 1: track_bnfast_1_thread_us_per_step) and
    bnfast.reference.train on the same batches."""

    timeout = _TIMEOUT
    repeat = (3, 10, 3.0)
    warmup_time = 0.0

    def setup(self):
        bnfast.set_num_threads(2)
        self.w = peers.workload("sgd_guard")
        self.native = peers.runner("sgd_guard", "bnfast")
        self.reference = peers.runner("sgd_guard", "reference")
        self.n_native = peers.TIMED_STEPS["sgd_guard"]["bnfast"]
        self.n_reference = peers.TIMED_STEPS["sgd_guard"]["reference"]

    def time_bnfast_50_steps(self):
        self.native(self.w.params0, self.n_native)

    def time_reference_10_steps(self):
        self.reference(self.w.params0, self.n_reference)

    def track_bnfast_us_per_step(self):
        return 1e6 * min_time(self.time_bnfast_50_steps, repeat=7) / self.n_native
    track_bnfast_us_per_step.unit = "us/step"

    def track_bnfast_1_thread_us_per_step(self):
        """The same at 1 thread (on a loaded machine 2 threads can be the slower)."""
        one = peers.runner("sgd_guard", "bnfast", 1)
        seconds = min_time(lambda: one(self.w.params0, self.n_native), repeat=7)
        bnfast.set_num_threads(2)
        return 1e6 * seconds / self.n_native
    track_bnfast_1_thread_us_per_step.unit = "us/step"

    def track_reference_us_per_step(self):
        return 1e6 * min_time(self.time_reference_10_steps, repeat=5) / self.n_reference
    track_reference_us_per_step.unit = "us/step"

    def track_reference_agreement(self):
        """bnfast against the reference after 300 SGD steps (the same batches)."""
        return peers.agreement("sgd_guard", "reference")
    track_reference_agreement.unit = "relative difference"


# --- many tiny instances at once ---------------------------------------------------

class TrainMany:
    """bnfast.train_many: 4096 Example-3.2-sized instances (3 samples, 2 weights, one
    frozen-BN neuron, the same X, y and lr as Example 3.2), each from its own w0 ~
    N(0, I) (seed 0), trained together.

    track_instance_steps_per_second: instances x steps / second, 2 threads.
    track_ratio_to_single: that rate / the single-instance rate of bnfast.train on
    Example 3.2 (steps / second), measured interleaved in one process; issue 16 /
    performance.md's goal: >= 8.
    """

    INSTANCES = 4096
    STEPS = 1_000
    timeout = _TIMEOUT
    repeat = (3, 10, 3.0)
    warmup_time = 0.0

    def setup(self):
        bnfast.set_num_threads(2)
        self.w = peers.workload("example32")
        rng = np.random.default_rng(0)
        self.params0 = rng.standard_normal((self.INSTANCES, self.w.net.num_params))
        self.single = peers.runner("example32", "bnfast", 2)
        self.n_single = peers.TIMED_STEPS["example32"]["bnfast"]
        self._many()  # warm (and fail here, not in a timed call, on a wrong call)

    def _many(self):
        # One network (the architecture), params0 (instances, num_params), the learning
        # set shared by all instances.
        return bnfast.train_many(self.w.net, self.params0, self.w.X, self.w.y, self.w.lr,
                                 self.STEPS)

    def time_train_many_4096_x_1000_steps(self):
        self._many()

    def track_instance_steps_per_second(self):
        return self.INSTANCES * self.STEPS / min_time(self._many, repeat=7)
    track_instance_steps_per_second.unit = "instance-steps/s"

    def track_ratio_to_single(self):
        # ratio() gives time(single) / time(many); rates are steps / time.
        r = ratio(lambda: self.single(self.w.params0, self.n_single), self._many, repeat=7)
        return r * (self.INSTANCES * self.STEPS) / self.n_single
    track_ratio_to_single.unit = "x"
