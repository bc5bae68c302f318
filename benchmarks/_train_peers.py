"""The training workloads of issue 16 and the same gradient descent in each peer.

A workload is a bnfast.Network with its learning set, learning rate and initial
parameters (``Workload``; ``WORKLOADS`` builds them by name). A peer is a function
``peer(workload) -> run`` where ``run(params0, steps)`` does ``steps`` full-batch
gradient-descent steps from the flat float64 vector ``params0`` (bnfast's parameter
order) and returns the final parameters in the same order, so that every peer can be
compared with bnfast.train entry by entry:

    bnfast      bnfast.train (the native C++ loop), record_every = steps
    reference   bnfast.reference.train (the NumPy oracle on layer dicts)
    jax         jax.jit(lax.fori_loop) of the step, the gradient by jax.grad, float64
    torch       a Python loop: autograd (torch.autograd.grad), update under no_grad;
                BN by F.batch_norm(training=True), i.e. biased batch variance
                (with eps = 0, which F.batch_norm refuses, the formula written out)
    numba       Example 3.2 only: njit, the step hand-unrolled into scalar code

The same maths in every peer (docs/math/networks.md): per Dense layer
H = A W^T (+ b), BN per column with the batch mean and the BIASED batch variance,
z = gamma (H - mu) / sqrt(s^2 + eps) + beta (gamma, beta trainable or constants as the
layer's BatchNorm says), A' = phi(z); the loss sum_i ||y_i - f(x_i)||^2 (Network's
default "sum"; "mean" divides by the rows); params <- params - lr * gradient. Only the
rounding differs: ``agreement`` runs 300 steps in each peer and bnfast and reports the
largest parameter difference relative to the largest parameter, so "same maths" is
checked, not assumed.

A peer that is not importable raises NotImplementedError (asv's skip) when asked for a
runner. ``python -m benchmarks._train_peers`` (from the repository root) prints every
workload's time per step in each peer and the agreement.

``PeerSuite`` is what is done with workloads and peers whatever they are (build each
once per process, time steps, check agreement, print the table); ``SUITE`` is this
module's, and the module-level ``workload``, ``runner``, ``agreement``, ``check`` and
``seconds_per_step`` are its methods. _cnn_peers.py has another suite (the
convolutional networks) that reuses ``Workload``, ``bnfast_peer`` and
``reference_peer``.
"""

import functools
import math
import time

import numpy as np

import bnfast
import bnfast.reference as reference
from bnfast import BatchNorm, Dense, Network

AGREEMENT_STEPS = 300
#: Largest relative parameter difference to bnfast after AGREEMENT_STEPS steps that
#: still counts as the same maths (rounding only).
AGREEMENT_TOL = 1e-10


class Workload:
    """A network, its learning set (X, y), the learning rate and params0.

    X float64 (m, in) or (m, C, *S); y float64 targets, or int64 class labels (m,) for
    the cross-entropy losses (``net.takes_labels``); Y the targets as (m, out)."""

    def __init__(self, name, net, X, y, lr, batch_size=None):
        self.name, self.net, self.lr, self.batch_size = name, net, float(lr), batch_size
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.y = np.ascontiguousarray(y, dtype=np.int64 if net.takes_labels else np.float64)
        self.Y = self.y.reshape(len(self.y), -1)  # (m, out) for the peers
        self.params0 = net.params
        self.layers = [layer.to_dict() for layer in net.layers]  # the oracle's input

    @staticmethod
    def bn_spec(layer):
        """A layer's BN as None or (eps, trainable, gamma, beta), the constant gamma,
        beta as float64 (out,) arrays (per channel for a convolution)."""
        bn = layer.batch_norm
        if layer.applied_noise is not None:
            raise ValueError("the peers implement networks without noise")
        if bn is None:
            if layer.normalization is not None:
                raise ValueError("the peers implement batch normalization only")
            return None
        if bn.norm != "std":
            raise ValueError("the peers implement standard BN")
        gamma, beta = bn.values(layer.out_features)
        return (bn.eps, bn.trainable, gamma, beta)

    def dense_specs(self):
        """Per Dense layer: (activation, has bias, BN as ``bn_spec``); ValueError for a
        network with other layers (the peers of this module implement Dense chains)."""
        if not all(isinstance(layer, Dense) for layer in self.net.layers):
            raise ValueError("the peers implement chains of Dense layers only")
        return [(layer.activation, layer.bias, self.bn_spec(layer))
                for layer in self.net.layers]

    def split(self, params):
        """The flat vector as one dict per layer of float64 arrays (copies)."""
        return [{k: np.array(v) for k, v in d.items()} for d in self.net.unflatten(params)]

    def join(self, layer_dicts):
        """The inverse of ``split``: a flat float64 vector in bnfast's order."""
        out = np.empty(self.net.num_params)
        for entry, arrays in zip(self.net.param_layout(), layer_dicts):
            for name, (sl, _) in entry.items():
                out[sl] = np.asarray(arrays[name], dtype=np.float64).ravel()
        return out


def example32():
    """Example 3.2 of Dannemann and Junike (2025): one identity neuron without bias and
    frozen BN (gamma 1, beta 0, eps 0) on X = [[1, 0], [0, 1], [1, 1]], y = (8, 6, 11),
    w0 = (7, 5), lr 1.0, full batch."""
    net = Network([Dense(2, 1, bias=False,
                         batch_norm=BatchNorm(1.0, 0.0, trainable=False, eps=0.0))])
    net.params = np.array([7.0, 5.0])
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    return Workload("example32", net, X, np.array([8.0, 6.0, 11.0]), lr=1.0)


def mlp():
    """BN MLP 256 x 16 -> 64 (tanh, BN) -> 64 (tanh, BN) -> 1 (bias, no BN); the BN
    layers have no bias (it would have no effect, networks.md section 3) and trainable
    gamma, beta (1, 0, eps 1e-5); W ~ N(0, 1/in) (Network's default draw, seed 0);
    X ~ N(0, 1), y = sin(x_1 + .. + x_4) + 0.1 x_5; lr 1e-3 on the summed loss."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 16))
    y = np.sin(X[:, :4].sum(axis=1)) + 0.1 * X[:, 4]
    net = Network([
        Dense(16, 64, "tanh", bias=False, batch_norm=BatchNorm()),
        Dense(64, 64, "tanh", bias=False, batch_norm=BatchNorm()),
        Dense(64, 1),
    ], seed=0)
    return Workload("mlp", net, X, y, lr=1e-3)


DLN_DEPTH, DLN_WIDTH, DLN_SAMPLES = 25, 32, 512


def dln():
    """25-layer BN deep linear network of width 32: 25 x Dense(32, 32, identity,
    bias=False, BatchNorm()) (trainable gamma 1, beta 0, eps 1e-5, BN on every layer,
    the output layer included), Glorot-uniform W (net.init("glorot", 0)); X (512, 32)
    and A (32, 32) standard normal (seed 1), y = X A^T; lr 1e-6 on the summed loss
    (16384 squared residuals): the loss falls steadily, 5.3e5 -> 7.9e4 over 3000 steps,
    and the peers stay within ~1e-13 of bnfast over 300 steps. (lr 1e-5 stalls on a
    plateau near 2.4e5 where the rounding differences of the peers grow to ~5% over
    300 steps: a chaotic regime, no use for checking the maths.)"""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((DLN_SAMPLES, DLN_WIDTH))
    A = rng.standard_normal((DLN_WIDTH, DLN_WIDTH))
    net = Network([Dense(DLN_WIDTH, DLN_WIDTH, "identity", bias=False,
                         batch_norm=BatchNorm()) for _ in range(DLN_DEPTH)])
    net.init("glorot", 0)
    return Workload("dln", net, X, X @ A.T, lr=1e-6)


def sgd_guard():
    """The guard: 4-layer MLP 512 x 32 -> 128 -> 128 -> 128 (relu, BN, no bias) -> 10
    (bias, no BN), W ~ N(0, 1/in) (seed 0); X ~ N(0, 1), y = one-hot of a random class
    in 10 (seed 2); mini-batch SGD with batch_size 64 (seed 0), lr 1e-3. Only bnfast and
    the reference (the peers here do full batch)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((512, 32))
    y = np.eye(10)[rng.integers(0, 10, 512)]
    net = Network([
        Dense(32, 128, "relu", bias=False, batch_norm=BatchNorm()),
        Dense(128, 128, "relu", bias=False, batch_norm=BatchNorm()),
        Dense(128, 128, "relu", bias=False, batch_norm=BatchNorm()),
        Dense(128, 10),
    ], seed=0)
    return Workload("sgd_guard", net, X, y, lr=1e-3, batch_size=64)


WORKLOADS = {"example32": example32, "mlp": mlp, "dln": dln, "sgd_guard": sgd_guard}


# --- the peers --------------------------------------------------------------------

def bnfast_peer(w, threads=2):
    """bnfast.train on a copy of the workload's network (record_every = steps: the
    losses recorded before the first and after the last step only)."""
    net = Network(w.net.layers, loss=w.net.loss_kind)

    def run(params0, steps):
        bnfast.set_num_threads(threads)
        net.params = params0
        return bnfast.train(net, w.X, w.y, w.lr, steps, batch_size=w.batch_size,
                            record_every=max(steps, 1)).params
    return run


def reference_peer(w):
    """bnfast.reference.train, the NumPy loop bnfast.train is checked against."""
    def run(params0, steps):
        return reference.train(w.layers, params0, w.X, w.y, w.lr, steps,
                               batch_size=w.batch_size, record_every=max(steps, 1),
                               loss=w.net.loss_kind).params
    return run


def full_batch_only(w, peer):
    """NotImplementedError (asv's skip) for a mini-batch workload: ``peer`` does
    full-batch gradient descent only."""
    if w.batch_size is not None:
        raise NotImplementedError(f"the {peer} peer does full-batch gradient descent only")


def import_peer(name):
    """The module ``name``, or NotImplementedError (asv's skip) when not importable."""
    try:
        return __import__(name)
    except ImportError as exc:
        raise NotImplementedError(f"{name} is not importable ({exc})") from exc


def jax_peer(w):
    """jax.jit of lax.fori_loop over the update p <- p - lr * jax.grad(loss)(p), in
    float64 (jax_enable_x64), the parameters a list of per-layer dicts. The trip count
    is a traced argument: one compilation serves every ``steps``. XLA's CPU backend
    picks its own threads (2 on this machine)."""
    full_batch_only(w, "jax")
    jax = import_peer("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    acts = {"identity": lambda z: z, "tanh": jnp.tanh, "relu": jax.nn.relu,
            "sigmoid": jax.nn.sigmoid}
    specs = w.dense_specs()
    X, Y = jnp.asarray(w.X), jnp.asarray(w.Y)
    scale = 1.0 if w.net.loss_kind == "sum" else 1.0 / w.X.shape[0]
    lr = w.lr

    def loss(params):
        A = X
        for (act, bias, bn), p in zip(specs, params):
            H = A @ p["W"].T
            if bias:
                H = H + p["b"]
            if bn is not None:
                eps, trainable, gamma, beta = bn
                if trainable:
                    gamma, beta = p["gamma"], p["beta"]
                mu = jnp.mean(H, axis=0)
                C = H - mu
                s2 = jnp.mean(C * C, axis=0)
                H = gamma * (C / jnp.sqrt(s2 + eps)) + beta
            A = acts[act](H)
        R = A - Y
        return scale * jnp.sum(R * R)

    grad = jax.grad(loss)

    def step(_, params):
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grad(params))

    loop = jax.jit(lambda params, steps: jax.lax.fori_loop(0, steps, step, params))

    def run(params0, steps):
        params = [{k: jnp.asarray(v) for k, v in d.items()} for d in w.split(params0)]
        out = loop(params, steps)
        jax.block_until_ready(out)
        return w.join([{k: np.asarray(v) for k, v in d.items()} for d in out])

    run(w.params0, 1)  # compile now, not in the first timed call
    return run


def torch_peer(w, threads=2):
    """A PyTorch loop: the parameters leaf tensors (float64), each step
    torch.autograd.grad of the loss and p -= lr * g under torch.no_grad();
    BN by F.batch_norm(training=True) (biased variance, no running statistics), or
    for eps = 0 (Example 3.2; F.batch_norm rejects it) the same formula in tensor
    operations."""
    full_batch_only(w, "torch")
    torch = import_peer("torch")
    torch.set_num_threads(threads)
    F = torch.nn.functional
    acts = {"identity": lambda z: z, "tanh": torch.tanh, "relu": torch.relu,
            "sigmoid": torch.sigmoid}
    specs = []
    for act, bias, bn in w.dense_specs():
        if bn is not None:
            eps, trainable, gamma, beta = bn
            bn = (eps, trainable, torch.from_numpy(gamma), torch.from_numpy(beta))
        specs.append((acts[act], bias, bn))
    X, Y = torch.from_numpy(w.X), torch.from_numpy(w.Y)
    scale = 1.0 if w.net.loss_kind == "sum" else 1.0 / w.X.shape[0]
    lr = w.lr

    def loss(params):
        A = X
        for (act, bias, bn), p in zip(specs, params):
            H = F.linear(A, p["W"], p["b"] if bias else None)
            if bn is not None:
                eps, trainable, gamma, beta = bn
                if trainable:
                    gamma, beta = p["gamma"], p["beta"]
                if eps > 0:
                    H = F.batch_norm(H, None, None, gamma, beta, training=True, eps=eps)
                else:  # F.batch_norm refuses eps = 0 in training: the formula itself
                    C = H - H.mean(dim=0)
                    H = gamma * (C / torch.sqrt((C * C).mean(dim=0))) + beta
            A = act(H)
        R = A - Y
        return scale * torch.sum(R * R)

    def run(params0, steps):
        params = [{k: torch.from_numpy(v).requires_grad_() for k, v in d.items()}
                  for d in w.split(params0)]
        flat = [p for d in params for p in d.values()]
        for _ in range(steps):
            grads = torch.autograd.grad(loss(params), flat)
            with torch.no_grad():
                for p, g in zip(flat, grads):
                    p.sub_(lr * g)
        return w.join([{k: v.detach().numpy() for k, v in d.items()} for d in params])
    return run


@functools.lru_cache(maxsize=1)
def _numba_example32_loop():
    numba = import_peer("numba")

    @numba.njit(cache=False, fastmath=False)
    def loop(w0, w1, x00, x01, x10, x11, x20, x21, y0, y1, y2, gamma, beta, eps, lr,
             steps):
        for _ in range(steps):
            # forward: h = X w, BN over the 3 samples (biased variance), identity
            h0 = x00 * w0 + x01 * w1
            h1 = x10 * w0 + x11 * w1
            h2 = x20 * w0 + x21 * w1
            mu = (h0 + h1 + h2) / 3.0
            c0 = h0 - mu
            c1 = h1 - mu
            c2 = h2 - mu
            d = math.sqrt((c0 * c0 + c1 * c1 + c2 * c2) / 3.0 + eps)
            z0 = c0 / d
            z1 = c1 / d
            z2 = c2 / d
            # backward of sum_i (gamma z_i + beta - y_i)^2
            g0 = 2.0 * (gamma * z0 + beta - y0)
            g1 = 2.0 * (gamma * z1 + beta - y1)
            g2 = 2.0 * (gamma * z2 + beta - y2)
            gb = (g0 + g1 + g2) / 3.0
            gz = (g0 * z0 + g1 * z1 + g2 * z2) / 3.0
            k = gamma / d
            dh0 = k * (g0 - gb - gz * z0)
            dh1 = k * (g1 - gb - gz * z1)
            dh2 = k * (g2 - gb - gz * z2)
            w0 -= lr * (dh0 * x00 + dh1 * x10 + dh2 * x20)
            w1 -= lr * (dh0 * x01 + dh1 * x11 + dh2 * x21)
        return w0, w1
    return loop


def numba_peer(w):
    """Example 3.2 only: numba.njit of the step hand-unrolled into scalars (3 samples,
    2 weights, one neuron, frozen gamma/beta), fastmath off."""
    specs = w.dense_specs()
    if (w.X.shape != (3, 2) or w.Y.shape != (3, 1) or len(specs) != 1 or specs[0][1]
            or specs[0][0] != "identity" or specs[0][2] is None or specs[0][2][1]
            or w.net.loss_kind != "sum" or w.batch_size is not None):
        raise NotImplementedError("the numba peer is written for Example 3.2's shape only")
    loop = _numba_example32_loop()
    eps, _, gamma, beta = specs[0][2]
    consts = (*w.X.ravel(), *w.Y.ravel(), float(gamma[0]), float(beta[0]), eps, w.lr)

    def run(params0, steps):
        return np.array(loop(float(params0[0]), float(params0[1]), *consts, steps))

    run(w.params0, 1)  # compile now
    return run


PEERS = {"bnfast": bnfast_peer, "reference": reference_peer, "jax": jax_peer,
         "torch": torch_peer, "numba": numba_peer}


def relative_difference(got, want):
    """max |got - want| / max |want| over the parameter vector."""
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


class PeerSuite:
    """Workloads and peers by name, each built once per process, and what is done with
    them: time steps, check that a peer does bnfast's maths, print the table.

    workloads : {name: () -> Workload}
    peers : {name: peer}, peer(workload) -> run(params0, steps) (or peer(workload,
        threads) for the peers in ``threaded``); "bnfast" is the one compared with
    timed_steps : {workload: {peer: steps per timed call}}
    agreement_steps, agreement_tol : the defaults of ``agreement``
    timed_only : peers timed but not compared entry by entry (e.g. float32 twins)
    """

    def __init__(self, workloads, peers, timed_steps, threaded=("bnfast", "torch"),
                 agreement_steps=AGREEMENT_STEPS, agreement_tol=AGREEMENT_TOL,
                 timed_only=()):
        self.workloads, self.peers, self.timed_steps = workloads, peers, timed_steps
        self.threaded, self.timed_only = tuple(threaded), tuple(timed_only)
        self.agreement_steps, self.agreement_tol = agreement_steps, agreement_tol
        self._built, self._runners = {}, {}

    def workload(self, name):
        """The workload ``name``, built once per process."""
        if name not in self._built:
            self._built[name] = self.workloads[name]()
        return self._built[name]

    def runner(self, workload_name, peer, threads=2):
        """``run(params0, steps)`` of ``peer`` on the workload, built (and compiled) once
        per process; NotImplementedError when the peer is not importable or does not do
        the workload. ``threads``: the thread count of the peers in ``threaded`` (the
        others ignore it)."""
        threads = threads if peer in self.threaded else None
        key = workload_name, peer, threads
        if key not in self._runners:  # a NotImplementedError is raised again next time
            w = self.workload(workload_name)
            self._runners[key] = (self.peers[peer](w) if threads is None
                                  else self.peers[peer](w, threads))
        return self._runners[key]

    def agreement(self, workload_name, peer, steps=None, tol=None):
        """The relative difference (``relative_difference``) of ``peer``'s parameters
        after ``steps`` steps (default agreement_steps) to bnfast's from the same
        start; AssertionError above ``tol`` (default agreement_tol)."""
        steps = self.agreement_steps if steps is None else steps
        tol = self.agreement_tol if tol is None else tol
        w = self.workload(workload_name)
        want = self.runner(workload_name, "bnfast")(w.params0, steps)
        got = self.runner(workload_name, peer)(w.params0, steps)
        diff = relative_difference(got, want)
        assert diff <= tol, (f"{peer} and bnfast differ by {diff:.3g} (relative) after "
                             f"{steps} steps of {workload_name}: not the same maths")
        return diff

    def check(self, workload_names, steps=None, tol=None):
        """``agreement`` of every importable peer (but bnfast and the timed-only) on each
        workload: {(workload, peer): relative difference}, or None for a peer that is
        skipped. Asserts all within tol."""
        results = {}
        for name in workload_names:
            for peer in self.peers:
                if peer == "bnfast" or peer in self.timed_only:
                    continue
                try:
                    results[name, peer] = self.agreement(name, peer, steps, tol)
                except NotImplementedError:
                    results[name, peer] = None
        return results

    def seconds_per_step(self, workload_name, peer, steps, threads=2, repeat=5,
                         budget=3.0):
        """Minimum over repeats of the time of ``steps`` steps, divided by ``steps``."""
        w = self.workload(workload_name)
        run = self.runner(workload_name, peer, threads)
        run(w.params0, steps)  # warm
        best = math.inf
        start = time.perf_counter()
        for k in range(repeat):
            t0 = time.perf_counter()
            run(w.params0, steps)
            best = min(best, time.perf_counter() - t0)
            if k >= 1 and time.perf_counter() - start > budget:
                break
        return best / steps

    def print_table(self, workload_names, unit="ns"):
        """Print each workload's time per step in every importable peer of timed_steps,
        bnfast's time over the peer's, and the agreement after agreement_steps steps."""
        scale = {"ns": 1e9, "us": 1e6}[unit]
        for name in workload_names:
            counts = self.timed_steps[name]
            base = self.seconds_per_step(name, "bnfast", counts["bnfast"])
            print(f"{name}: bnfast {base * scale:,.0f} {unit}/step (2 threads)")
            for peer, n in counts.items():
                if peer == "bnfast":
                    continue
                try:
                    t = self.seconds_per_step(name, peer, n)
                    agrees = ("timed only" if peer in self.timed_only else
                              f"relative difference after {self.agreement_steps} steps "
                              f"{self.agreement(name, peer, tol=math.inf):.2g}")
                except NotImplementedError as exc:
                    print(f"  {peer}: skipped ({exc})")
                    continue
                print(f"  {peer}: {t * scale:,.0f} {unit}/step, bnfast/{peer} = "
                      f"{base / t:.3g}, {agrees}")


#: Steps per timed call, per workload and peer: each call takes ~5-50 ms when the
#: machine is quiet (Example 3.2: bnfast ~137 ns, JAX ~45 ns, numba ~32 ns, PyTorch
#: ~70-170 us, the reference ~12 us per step).
TIMED_STEPS = {
    "example32": {"bnfast": 100_000, "jax": 100_000, "numba": 100_000, "torch": 300,
                  "reference": 1_000},
    "mlp": {"bnfast": 20, "jax": 20, "torch": 20, "reference": 5},
    "dln": {"bnfast": 5, "jax": 5, "torch": 5, "reference": 2},
    "sgd_guard": {"bnfast": 50, "reference": 10},
}


SUITE = PeerSuite(WORKLOADS, PEERS, TIMED_STEPS)
workload = SUITE.workload
runner = SUITE.runner
seconds_per_step = SUITE.seconds_per_step


def agreement(workload_name, peer, steps=AGREEMENT_STEPS, tol=AGREEMENT_TOL):
    """``PeerSuite.agreement`` on this module's workloads."""
    return SUITE.agreement(workload_name, peer, steps, tol)


def check(workload_names=("example32", "mlp", "dln"), steps=AGREEMENT_STEPS,
          tol=AGREEMENT_TOL):
    """``PeerSuite.check`` on this module's workloads."""
    return SUITE.check(workload_names, steps, tol)


def main():
    """Print each workload's time per step in every importable peer and the agreement
    after AGREEMENT_STEPS steps (the table of issue 16)."""
    SUITE.print_table([name for name in TIMED_STEPS if name != "sgd_guard"])


if __name__ == "__main__":
    main()
