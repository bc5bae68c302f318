"""Convolutional networks against their peers (performance.md, "Next targets"): one
full-batch SGD step (no momentum) of the mean cross-entropy, float64, batch 100, on the
MNIST-1D CNN and the digits Conv2d network, in bnfast.train and in the same maths in a
PyTorch autograd loop (float64, and float32 for reference), JAX (a jitted step called
from Python; and jit(lax.fori_loop), "jax_fori", 5-8x slower on the digits network) and
the NumPy reference; and the Hessian-vector product against the gradient, PyTorch's
double backward and JAX's jit(jvp(grad)). 2 threads (bnfast.set_num_threads,
torch.set_num_threads; XLA picks its own).

The networks and the peers' code are in _cnn_peers.py (each network's definition in its
function's docstring: mnist1d_cnn, digits_cnn; `python -m benchmarks._cnn_peers` prints
the whole table). Per network and peer one class (MNIST1DTorch, DigitsJax, ...),
skipped when the peer is not importable (asv shows n/a); <Network>Bnfast times bnfast
alone:

    time_<peer>_<N>_steps      N steps from the network's initial params (divide by N)
    track_<peer>_us_per_step   min of repeats / N
    track_ratio_to_<peer>      bnfast time per step / the peer's, both measured
                               interleaved in one process (min of repeats); lower is
                               better: performance.md's goals are <= 0.5 against torch
                               (float64) and <= 0.7 against JAX; torch_f32 is reported
    track_<peer>_agreement     max |params_peer - params_bnfast| / max |params_bnfast|
                               after 50 steps from the same start; fails above 1e-12
                               (float64 peers only)

and per network the Hessian-vector product H v at the initial params, v ~ N(0, I):

    <Network>Hvp.track_hvp_over_gradient   bnfast's net.hvp time / its net.gradient
                                           time, interleaved; goal <= 3
    <Network>Hvp<Peer>.track_ratio_to_<peer>_hvp   bnfast's hvp time / the peer's
                                           (torch double backward: goal <= 0.5; JAX
                                           jit(jvp(grad)): goal <= 0.7)
    <Network>Hvp<Peer>.track_<peer>_hvp_agreement  max |Hv_peer - Hv_bnfast| /
                                           max |Hv_bnfast|; fails above 1e-11

Each timed call includes the peer's fixed cost per call (converting the params in and
out, a jitted call), amortized over N steps; an hvp call includes converting params and
v in and the product out, in every peer.
"""

import bnfast

from . import _cnn_peers as peers
from ._common import min_time, ratio

_TIMEOUT = 300


class _PeerBench:
    """One peer on one network. Subclasses set ``workload`` and ``peer`` and bind the
    benchmarks to their names with the factories below."""

    workload = None  # a key of peers.WORKLOADS
    peer = None      # a key of peers.PEERS
    threads = 2

    timeout = _TIMEOUT
    repeat = (3, 10, 3.0)
    warmup_time = 0.0

    def setup(self):
        bnfast.set_num_threads(self.threads)
        self.w = peers.workload(self.workload)
        self.steps = peers.TIMED_STEPS[self.workload][self.peer]
        # NotImplementedError (asv's skip) when the peer is not importable
        self.run = peers.runner(self.workload, self.peer, self.threads)

    def _call(self):
        return self.run(self.w.params0, self.steps)


def _timed():
    """time_<peer>_<N>_steps: N steps (N = TIMED_STEPS[workload][peer])."""
    def time_steps(self):
        self._call()
    return time_steps


def _per_step():
    """track_<peer>_us_per_step: min of repeats / N."""
    def track_per_step(self):
        return min_time(self._call, repeat=7) / self.steps * 1e6
    track_per_step.unit = "us/step"
    return track_per_step


def _ratio_to_peer():
    """track_ratio_to_<peer>: bnfast's time per step (2 threads) / the peer's, both
    timed interleaved in one process (min of repeats); lower is better."""
    def track_ratio(self):
        native = peers.runner(self.workload, "bnfast", 2)
        n_native = peers.TIMED_STEPS[self.workload]["bnfast"]
        r = ratio(lambda: native(self.w.params0, n_native), self._call, repeat=7)
        return r * self.steps / n_native
    track_ratio.unit = "x"
    return track_ratio


def _agreement():
    """track_<peer>_agreement: the relative parameter difference to bnfast after
    peers.AGREEMENT_STEPS steps; AssertionError above peers.AGREEMENT_TOL."""
    def track_agreement(self):
        return peers.agreement(self.workload, self.peer)
    track_agreement.unit = "relative difference"
    return track_agreement


class _HvpSetup:
    """bnfast's net.hvp and net.gradient on one network at params0 (2 threads), no
    benchmarks: the base of the two below."""

    workload = None
    timeout = _TIMEOUT
    repeat = (5, 20, 3.0)
    warmup_time = 0.0

    def setup(self):
        bnfast.set_num_threads(2)
        self.w = peers.workload(self.workload)
        self.v = peers.hvp_direction(self.workload)
        self.bnfast_hvp = peers.hvp_runner(self.workload, "bnfast")
        self.gradient = peers.gradient_runner(self.workload)

    def _hvp(self):
        return self.bnfast_hvp(self.w.params0, self.v)

    def _gradient(self):
        return self.gradient(self.w.params0)


class _HvpBench(_HvpSetup):
    """bnfast's hvp against its gradient. Subclasses set ``workload``."""

    def time_bnfast_gradient(self):
        self._gradient()

    def time_bnfast_hvp(self):
        self._hvp()

    def track_hvp_over_gradient(self):
        """bnfast's hvp time / its gradient time, interleaved; goal <= 3."""
        return ratio(self._hvp, self._gradient, repeat=9)
    track_hvp_over_gradient.unit = "x"


class _HvpPeerBench(_HvpSetup):
    """A peer's hvp against bnfast's on one network. Subclasses set ``workload`` and
    ``peer`` (a key of peers.HVP_PEERS) and bind the benchmarks with the factories."""

    peer = None

    def setup(self):
        super().setup()
        # NotImplementedError (asv's skip) when the peer is not importable
        self.peer_hvp = peers.hvp_runner(self.workload, self.peer)

    def _peer_call(self):
        return self.peer_hvp(self.w.params0, self.v)


def _hvp_timed():
    """time_<peer>_hvp: one hvp of the peer."""
    def time_hvp(self):
        self._peer_call()
    return time_hvp


def _hvp_ratio():
    """track_ratio_to_<peer>_hvp: bnfast's hvp time / the peer's, interleaved."""
    def track_ratio(self):
        return ratio(self._hvp, self._peer_call, repeat=7)
    track_ratio.unit = "x"
    return track_ratio


def _hvp_agreement():
    """track_<peer>_hvp_agreement: max |Hv_peer - Hv_bnfast| / max |Hv_bnfast|;
    AssertionError above peers.HVP_TOL."""
    def track_agreement(self):
        return peers.hvp_agreement(self.workload, self.peer)
    track_agreement.unit = "relative difference"
    return track_agreement


# --- the MNIST-1D CNN ----------------------------------------------------------------

class _MNIST1D(_PeerBench):
    workload = "mnist1d_cnn"


class MNIST1DBnfast(_MNIST1D):
    """bnfast.train on the MNIST-1D CNN, 2 threads: 3 x (Conv1d, BN, ReLU), channels
    1 -> 25 -> 25 -> 25, kernels 5, 3, 3, stride 2, padding 1, no conv bias; Flatten;
    Dense(125, 10); X ~ N(0, 1) (100, 1, 40), labels in 0..9; mean cross-entropy,
    lr 0.05, full batch (_cnn_peers.mnist1d_cnn). The peers' classes hold the ratios."""

    peer = "bnfast"
    time_bnfast_20_steps = _timed()
    track_bnfast_us_per_step = _per_step()


class MNIST1DTorch(_MNIST1D):
    """performance.md's goal: track_ratio_to_torch <= 0.5."""

    peer = "torch"
    time_torch_10_steps = _timed()
    track_torch_us_per_step = _per_step()
    track_ratio_to_torch = _ratio_to_peer()
    track_torch_agreement = _agreement()


class MNIST1DTorchFloat32(_MNIST1D):
    """The PyTorch loop in float32 (reported; no agreement: another precision)."""

    peer = "torch_f32"
    time_torch_f32_20_steps = _timed()
    track_torch_f32_us_per_step = _per_step()
    track_ratio_to_torch_f32 = _ratio_to_peer()


class MNIST1DJax(_MNIST1D):
    """performance.md's goal: track_ratio_to_jax <= 0.7."""

    peer = "jax"
    time_jax_10_steps = _timed()
    track_jax_us_per_step = _per_step()
    track_ratio_to_jax = _ratio_to_peer()
    track_jax_agreement = _agreement()


class MNIST1DJaxFori(_MNIST1D):
    """JAX's step in jit(lax.fori_loop), as in bench_train_peers.py."""

    peer = "jax_fori"
    time_jax_fori_10_steps = _timed()
    track_jax_fori_us_per_step = _per_step()
    track_ratio_to_jax_fori = _ratio_to_peer()
    track_jax_fori_agreement = _agreement()


class MNIST1DReference(_MNIST1D):
    peer = "reference"
    time_reference_2_steps = _timed()
    track_reference_us_per_step = _per_step()
    track_ratio_to_reference = _ratio_to_peer()
    track_reference_agreement = _agreement()


class MNIST1DHvp(_HvpBench):
    """bnfast's hvp and gradient on the MNIST-1D CNN at its initial params."""

    workload = "mnist1d_cnn"


class MNIST1DHvpTorch(_HvpPeerBench):
    workload, peer = "mnist1d_cnn", "torch"
    time_torch_hvp = _hvp_timed()
    track_ratio_to_torch_hvp = _hvp_ratio()
    track_torch_hvp_agreement = _hvp_agreement()


class MNIST1DHvpJax(_HvpPeerBench):
    workload, peer = "mnist1d_cnn", "jax"
    time_jax_hvp = _hvp_timed()
    track_ratio_to_jax_hvp = _hvp_ratio()
    track_jax_hvp_agreement = _hvp_agreement()


# --- the digits Conv2d network ---------------------------------------------------------

class _Digits(_PeerBench):
    workload = "digits_cnn"


class DigitsBnfast(_Digits):
    """bnfast.train on the digits network, 2 threads: Conv2d(1, 16, 3, padding 1), BN,
    ReLU, MaxPool2d(2); Conv2d(16, 32, 3, padding 1), BN, ReLU, MaxPool2d(2); Flatten;
    Dense(128, 10); no conv bias; X ~ N(0, 1) (100, 1, 8, 8), labels in 0..9; mean
    cross-entropy, lr 0.05, full batch (_cnn_peers.digits_cnn)."""

    peer = "bnfast"
    time_bnfast_10_steps = _timed()
    track_bnfast_us_per_step = _per_step()


class DigitsTorch(_Digits):
    """performance.md's goal: track_ratio_to_torch <= 0.5."""

    peer = "torch"
    time_torch_10_steps = _timed()
    track_torch_us_per_step = _per_step()
    track_ratio_to_torch = _ratio_to_peer()
    track_torch_agreement = _agreement()


class DigitsTorchFloat32(_Digits):
    """The PyTorch loop in float32 (reported; no agreement: another precision)."""

    peer = "torch_f32"
    time_torch_f32_20_steps = _timed()
    track_torch_f32_us_per_step = _per_step()
    track_ratio_to_torch_f32 = _ratio_to_peer()


class DigitsJax(_Digits):
    """performance.md's goal: track_ratio_to_jax <= 0.7."""

    peer = "jax"
    time_jax_10_steps = _timed()
    track_jax_us_per_step = _per_step()
    track_ratio_to_jax = _ratio_to_peer()
    track_jax_agreement = _agreement()


class DigitsJaxFori(_Digits):
    """JAX's step in jit(lax.fori_loop), as in bench_train_peers.py."""

    peer = "jax_fori"
    time_jax_fori_2_steps = _timed()
    track_jax_fori_us_per_step = _per_step()
    track_ratio_to_jax_fori = _ratio_to_peer()
    track_jax_fori_agreement = _agreement()


class DigitsReference(_Digits):
    peer = "reference"
    time_reference_2_steps = _timed()
    track_reference_us_per_step = _per_step()
    track_ratio_to_reference = _ratio_to_peer()
    track_reference_agreement = _agreement()


class DigitsHvp(_HvpBench):
    """bnfast's hvp and gradient on the digits network at its initial params."""

    workload = "digits_cnn"


class DigitsHvpTorch(_HvpPeerBench):
    workload, peer = "digits_cnn", "torch"
    time_torch_hvp = _hvp_timed()
    track_ratio_to_torch_hvp = _hvp_ratio()
    track_torch_hvp_agreement = _hvp_agreement()


class DigitsHvpJax(_HvpPeerBench):
    workload, peer = "digits_cnn", "jax"
    time_jax_hvp = _hvp_timed()
    track_ratio_to_jax_hvp = _hvp_ratio()
    track_jax_hvp_agreement = _hvp_agreement()
