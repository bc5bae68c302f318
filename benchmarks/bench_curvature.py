"""Curvature against its peers (issue 27, item 5; docs/design/performance.md "Next
targets"): on the tanh BN MLP of _train_peers.py (5441 parameters, 256 rows, train
mode), float64, 2 threads (XLA picks its own):

    TopEigenvalue   the top Hessian eigenvalue to 1e-6 relative by the same Lanczos
    (...Torch)      (bnfast.curvature: full reorthogonalization, locking, seed 0) on
                    bnfast's products (curvature.top_eigenvalues) and on PyTorch
                    double-backward products (curvature.lanczos; what PyHessian runs,
                    there as power iteration): time_bnfast, time_torch,
                    track_ratio_to_torch (goal <= 0.3), track_torch_agreement (relative
                    difference of the two eigenvalues; fails above 1e-6).
    Hvp             one Hessian-vector product, bnfast's against the peer's of the same
                    setting (_curvature_peers.SETTING): at one point, bnfast's HessianAt
                    (the products of top_eigenvalues) against torch (PyHessian's: the
                    gradient graph built once, each product one autograd.grad with
                    retain_graph) and against jax-linearize (jit of jax.linearize's
                    function); at a new point each time, Network.hvp against jax
                    (jit(jvp(grad))). time_bnfast, time_peer, track_ratio_to_peer
                    (goals: <= 0.5 to torch, <= 0.7 to jax), track_peer_agreement (max
                    relative difference of the products; fails above 1e-12).

Ratios are bnfast's time over the peer's, measured interleaved in one process (min of
repeats; lower is better). The peers' code is in _curvature_peers.py; `python -m
benchmarks._curvature_peers` prints the whole table. A peer that is not importable is
skipped (asv shows n/a).
"""

from . import _curvature_peers as peers
from ._common import min_time, ratio

_TIMEOUT = 300


class TopEigenvalue:
    timeout = _TIMEOUT
    repeat = (3, 10, 5.0)
    warmup_time = 0.0

    def setup(self):
        peers.workload()

    def time_bnfast(self):
        peers.top_eigenvalue("bnfast")

    def track_bnfast_ms(self):
        return min_time(lambda: peers.top_eigenvalue("bnfast"), repeat=5) * 1e3
    track_bnfast_ms.unit = "ms"


class TopEigenvalueTorch:
    """The same on PyTorch's products (skipped without torch)."""
    timeout = _TIMEOUT
    repeat = (3, 10, 5.0)
    warmup_time = 0.0

    def setup(self):
        peers.hvp_of("torch")               # NotImplementedError (a skip) if missing

    def time_torch(self):
        peers.top_eigenvalue("torch")

    def track_ratio_to_torch(self):
        return ratio(lambda: peers.top_eigenvalue("bnfast"),
                     lambda: peers.top_eigenvalue("torch"), repeat=5, budget=20.0)
    track_ratio_to_torch.unit = "ratio"

    def track_torch_agreement(self):
        mine = peers.top_eigenvalue("bnfast").eigenvalues[0]
        theirs = peers.top_eigenvalue("torch").eigenvalues[0]
        difference = abs(mine - theirs) / abs(theirs)
        if difference > peers.TOL:
            raise AssertionError(f"top eigenvalues differ by {difference:.1e}")
        return difference
    track_torch_agreement.unit = "relative"


class Hvp:
    params = [["torch", "jax", "jax-linearize"]]
    param_names = ["peer"]
    timeout = _TIMEOUT
    repeat = (5, 30, 2.0)
    warmup_time = 0.05

    def setup(self, peer):
        self.v = peers.probe()
        self.bnfast = peers.hvp_of(peers.SETTING[peer])
        self.peer = peers.hvp_of(peer)      # NotImplementedError (a skip) if missing

    def time_bnfast(self, peer):
        self.bnfast(self.v)

    def time_peer(self, peer):
        self.peer(self.v)

    def track_ratio_to_peer(self, peer):
        return ratio(lambda: self.bnfast(self.v), lambda: self.peer(self.v), number=5,
                     repeat=10)
    track_ratio_to_peer.unit = "ratio"

    def track_peer_agreement(self, peer):
        difference = peers.agreement(peer)
        if difference > 1e-12:
            raise AssertionError(f"the products differ by {difference:.1e}")
        return difference
    track_peer_agreement.unit = "relative"
