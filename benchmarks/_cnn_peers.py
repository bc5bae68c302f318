"""The convolutional workloads of performance.md's "Next targets" and the same training
step and Hessian-vector product in each peer.

Two networks, float64, batch 100, full-batch steps params <- params - lr * gradient of
the mean cross-entropy (one SGD step without momentum on the whole batch):

    mnist1d_cnn   the MNIST-1D CNN: Conv1d(1, 25, 5, stride 2, padding 1), BN, ReLU;
                  Conv1d(25, 25, 3, stride 2, padding 1), BN, ReLU, twice; Flatten;
                  Dense(125, 10); X (100, 1, 40)
    digits_cnn    the digits network: Conv2d(1, 16, 3, padding 1), BN, ReLU,
                  MaxPool2d(2); Conv2d(16, 32, 3, padding 1), BN, ReLU, MaxPool2d(2);
                  Flatten; Dense(128, 10); X (100, 1, 8, 8)

The peers, each ``peer(workload) -> run(params0, steps)`` on bnfast's flat parameter
vector as in _train_peers.py (whose ``Workload``, ``PeerSuite``, ``bnfast_peer`` and
``reference_peer`` serve here unchanged):

    bnfast      bnfast.train (the native loop), record_every = steps
    reference   bnfast.reference.train on the layers' to_dict() (NumPy)
    torch       a Python loop on leaf tensors cut from the flat vector: F.conv1d/conv2d,
                F.batch_norm(training=True), relu, F.max_pool2d, F.linear,
                F.cross_entropy; torch.autograd.grad; p -= lr * g under no_grad; float64
    torch_f32   the same loop in float32 (timed only: what a user might pick)
    jax         jax.jit of the step (lax.conv_general_dilated, lax.reduce_window,
                jax.grad), float64 (jax_enable_x64), called N times from Python
    jax_fori    the same step in jax.jit(lax.fori_loop) (as in _train_peers.py); 5-8x
                slower than ``jax`` on the digits network, hence both

"Same maths" is checked, not assumed: ``agreement`` runs AGREEMENT_STEPS steps in a
float64 peer and in bnfast from the same start and reports the largest parameter
difference relative to the largest parameter (AssertionError above AGREEMENT_TOL).

The Hessian-vector product H v of the same loss at params0, v ~ N(0, I) (seed 3):
``hvp_runner(name, peer)`` gives ``hvp(params, v)`` for bnfast (net.hvp, forward over
reverse with dual numbers), torch (double backward: grad of <grad, v>) and jax
(jit(jvp(grad))); ``gradient_runner`` gives bnfast's net.gradient, the yardstick of the
hvp's cost (performance.md: hvp <= 3x gradient).

Peers that are not importable raise NotImplementedError (asv's skip).
``python -m benchmarks._cnn_peers`` (from the repository root) prints the table.
"""

import functools
import math

import numpy as np

import bnfast
from bnfast.experiments import problems

from ._common import min_time
from ._train_peers import (PeerSuite, Workload, bnfast_peer, full_batch_only, import_peer,
                           reference_peer, relative_difference)

BATCH = 100
CLASSES = 10
LR = 0.05

#: Steps of the agreement check: the loss falls from 2.49 to 0.75 (mnist1d_cnn) and
#: from 3.12 to 0.62 (digits_cnn) over them; the float64 peers stay within ~6e-16 of
#: bnfast (relative, parameters).
AGREEMENT_STEPS = 50
#: Largest relative parameter difference to bnfast after AGREEMENT_STEPS steps that
#: still counts as the same maths (rounding only; three orders above what is seen).
AGREEMENT_TOL = 1e-12
#: The same for one hvp at params0 (seen: ~4e-15: second-order sums in other orders).
HVP_TOL = 1e-11


def _data(shape, seed):
    """X ~ N(0, 1) of ``shape`` and labels uniform in 0..9. The time of a step does not
    depend on the values; continuous inputs keep max-pool windows and ReLU inputs off
    exact ties, so the agreement measures rounding and nothing else."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.integers(0, CLASSES, shape[0])


def mnist1d_cnn():
    """The MNIST-1D CNN: 3 x (Conv1d, BN, ReLU), channels 1 -> 25 -> 25 -> 25, kernels
    5, 3, 3, stride 2, padding 1 (positions 40 -> 19 -> 10 -> 5), no conv bias (BN
    removes it), BN trainable (gamma 1, beta 0, eps 1e-5); Flatten; Dense(125, 10)
    with bias; W ~ N(0, 1/fan_in) (Network's default, seed 0); X ~ N(0, 1) (100, 1, 40),
    labels uniform in 0..9 (seed 4); mean cross-entropy, lr 0.05."""
    X, y = _data((BATCH, 1, 40), seed=4)
    # the one definition of the network (bnfast.experiments.problems)
    net = problems.mnist1d_cnn(norm="std", seed=0, bias=False, init=None)
    return Workload("mnist1d_cnn", net, X, y, lr=LR)


def digits_cnn():
    """The digits network: Conv2d(1, 16, 3, padding 1), BN, ReLU, MaxPool2d(2) (8x8 ->
    4x4); Conv2d(16, 32, 3, padding 1), BN, ReLU, MaxPool2d(2) (-> 2x2); Flatten;
    Dense(128, 10) with bias; no conv bias, BN trainable (1, 0, eps 1e-5); W ~
    N(0, 1/fan_in) (seed 0); X ~ N(0, 1) (100, 1, 8, 8), labels uniform in 0..9
    (seed 5); mean cross-entropy, lr 0.05."""
    X, y = _data((BATCH, 1, 8, 8), seed=5)
    net = problems.digits_cnn(norm="std", seed=0, bias=False, init=None)
    return Workload("digits_cnn", net, X, y, lr=LR)


WORKLOADS = {"mnist1d_cnn": mnist1d_cnn, "digits_cnn": digits_cnn}


def layer_ops(w):
    """What a peer computes per layer of the workload's network: ("conv", axes, stride,
    padding, activation, bias, bn), ("dense", activation, bias, bn), ("max_pool" or
    "avg_pool", axes, kernel, stride) or ("flatten",); bn as Workload.bn_spec."""
    ops = []
    for layer in w.net.layers:
        kind = getattr(layer, "kind", None)  # a Residual block has none
        if kind == "conv":
            ops.append(("conv", layer.axes, layer.stride, layer.padding, layer.activation,
                        layer.bias, w.bn_spec(layer)))
        elif kind == "dense":
            ops.append(("dense", layer.activation, layer.bias, w.bn_spec(layer)))
        elif kind in ("max_pool", "avg_pool"):
            ops.append((kind, layer.axes, layer.kernel_size, layer.stride))
        elif kind == "flatten":
            ops.append(("flatten",))
        else:
            raise ValueError(f"the CNN peers do not implement {type(layer).__name__}")
    return ops


# --- PyTorch ----------------------------------------------------------------------

def _torch_loss(torch, w, dtype):
    """loss(params) of the workload in torch, params a list of per-layer dicts of
    tensors of ``dtype`` (w.split's layout)."""
    F = torch.nn.functional
    acts = {"identity": lambda z: z, "tanh": torch.tanh, "relu": torch.relu,
            "sigmoid": torch.sigmoid}
    convs = {1: F.conv1d, 2: F.conv2d}
    pools = {("max_pool", 1): F.max_pool1d, ("max_pool", 2): F.max_pool2d,
             ("avg_pool", 1): F.avg_pool1d, ("avg_pool", 2): F.avg_pool2d}
    X = torch.from_numpy(w.X).to(dtype)
    y = torch.from_numpy(w.y) if w.net.takes_labels else torch.from_numpy(w.Y).to(dtype)
    ops = layer_ops(w)

    def normalize(H, bn, p):
        if bn is None:
            return H
        eps, trainable, gamma, beta = bn
        if trainable:
            gamma, beta = p["gamma"], p["beta"]
        else:
            gamma = torch.from_numpy(gamma).to(dtype)
            beta = torch.from_numpy(beta).to(dtype)
        return F.batch_norm(H, None, None, gamma, beta, training=True, eps=eps)

    def forward(params):
        A = X
        for op, p in zip(ops, params):
            kind = op[0]
            if kind == "conv":
                _, axes, stride, padding, act, bias, bn = op
                H = convs[axes](A, p["W"], p["b"] if bias else None, stride=stride,
                                padding=padding)
                A = acts[act](normalize(H, bn, p))
            elif kind == "dense":
                _, act, bias, bn = op
                A = acts[act](normalize(F.linear(A, p["W"], p["b"] if bias else None), bn, p))
            elif kind == "flatten":
                A = torch.flatten(A, 1)
            else:
                _, axes, kernel, stride = op
                A = pools[kind, axes](A, kernel, stride)
        return A

    kind = w.net.loss_kind

    def loss(params):
        out = forward(params)
        if kind == "cross_entropy":
            return F.cross_entropy(out, y)
        if kind == "cross_entropy_sum":
            return F.cross_entropy(out, y, reduction="sum")
        total = ((out - y) ** 2).sum()
        return total / out.shape[0] if kind == "mean" else total
    return loss


def _torch_leaves(torch, w, params, dtype, requires_grad):
    """The flat vector as per-layer dicts of fresh ``dtype`` tensors, and their list."""
    tree = [{k: torch.tensor(v, dtype=dtype).requires_grad_(requires_grad)
             for k, v in d.items()} for d in w.split(params)]
    return tree, [p for d in tree for p in d.values()]


def _torch_join(w, tree):
    return w.join([{k: v.detach().numpy() for k, v in d.items()} for d in tree])


def torch_peer(w, threads=2, dtype="float64"):
    """The PyTorch loop: the parameters leaf tensors cut from the flat vector, each
    step torch.autograd.grad of the loss and p -= lr * g under torch.no_grad()."""
    full_batch_only(w, "torch")
    torch = import_peer("torch")
    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype)
    loss = _torch_loss(torch, w, dtype)
    lr = w.lr

    def run(params0, steps):
        tree, flat = _torch_leaves(torch, w, params0, dtype, True)
        for _ in range(steps):
            grads = torch.autograd.grad(loss(tree), flat)
            with torch.no_grad():
                for p, g in zip(flat, grads):
                    p.sub_(lr * g)
        return _torch_join(w, tree)
    return run


def torch_f32_peer(w, threads=2):
    """torch_peer in float32 (X, parameters and the whole step)."""
    return torch_peer(w, threads, "float32")


def torch_hvp(w, threads=2):
    """hvp(params, v) by PyTorch's double backward: g = grad(loss, create_graph=True),
    then grad(<g, v>), float64."""
    torch = import_peer("torch")
    torch.set_num_threads(threads)
    loss = _torch_loss(torch, w, torch.float64)

    def hvp(params, v):
        tree, flat = _torch_leaves(torch, w, params, torch.float64, True)
        _, vs = _torch_leaves(torch, w, v, torch.float64, False)
        grads = torch.autograd.grad(loss(tree), flat, create_graph=True)
        hv = torch.autograd.grad(sum((g * u).sum() for g, u in zip(grads, vs)), flat)
        it = iter(hv)
        return _torch_join(w, [{k: next(it) for k in d} for d in tree])
    return hvp


# --- JAX --------------------------------------------------------------------------

def _jax_loss(jax, w):
    """loss(params) of the workload in JAX (float64), params a list of per-layer dicts
    of arrays (w.split's layout)."""
    jax.config.update("jax_enable_x64", True)
    jnp, lax = jax.numpy, jax.lax
    acts = {"identity": lambda z: z, "tanh": jnp.tanh, "relu": jax.nn.relu,
            "sigmoid": jax.nn.sigmoid}
    layouts = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW")}
    X = jnp.asarray(w.X)
    y = jnp.asarray(w.y) if w.net.takes_labels else jnp.asarray(w.Y)
    ops = layer_ops(w)

    def normalize(H, bn, p):
        if bn is None:
            return H
        eps, trainable, gamma, beta = bn
        if trainable:
            gamma, beta = p["gamma"], p["beta"]
        shape = (1, -1) + (1,) * (H.ndim - 2)  # per channel (or feature)
        axes = (0,) + tuple(range(2, H.ndim))
        mu = jnp.mean(H, axis=axes, keepdims=True)
        C = H - mu
        s2 = jnp.mean(C * C, axis=axes, keepdims=True)  # biased, as F.batch_norm
        return (jnp.reshape(gamma, shape) * (C / jnp.sqrt(s2 + eps))
                + jnp.reshape(beta, shape))

    def forward(params):
        A = X
        for op, p in zip(ops, params):
            kind = op[0]
            if kind == "conv":
                _, axes, stride, padding, act, bias, bn = op
                H = lax.conv_general_dilated(A, p["W"], stride, [(q, q) for q in padding],
                                             dimension_numbers=layouts[axes])
                if bias:
                    H = H + jnp.reshape(p["b"], (1, -1) + (1,) * axes)
                A = acts[act](normalize(H, bn, p))
            elif kind == "dense":
                _, act, bias, bn = op
                H = A @ p["W"].T
                A = acts[act](normalize(H + p["b"] if bias else H, bn, p))
            elif kind == "flatten":
                A = jnp.reshape(A, (A.shape[0], -1))
            else:
                _, axes, kernel, stride = op
                window, strides = (1, 1) + tuple(kernel), (1, 1) + tuple(stride)
                if kind == "max_pool":
                    A = lax.reduce_window(A, -jnp.inf, lax.max, window, strides, "VALID")
                else:
                    A = lax.reduce_window(A, 0.0, lax.add, window, strides,
                                          "VALID") / math.prod(kernel)
        return A

    kind = w.net.loss_kind

    def loss(params):
        out = forward(params)
        if kind.startswith("cross_entropy"):
            picked = jnp.take_along_axis(out, y[:, None], axis=1)[:, 0]
            per_row = jax.nn.logsumexp(out, axis=1) - picked
            return jnp.mean(per_row) if kind == "cross_entropy" else jnp.sum(per_row)
        R = out - y
        return jnp.sum(R * R) / (out.shape[0] if kind == "mean" else 1)
    return loss


def _jax_tree(jax, w, params):
    return [{k: jax.numpy.asarray(v) for k, v in d.items()} for d in w.split(params)]


def _jax_join(w, tree):
    return w.join([{k: np.asarray(v) for k, v in d.items()} for d in tree])


def _jax_step(jax, w):
    """The update p <- p - lr * jax.grad(loss)(p) on the per-layer tree."""
    grad = jax.grad(_jax_loss(jax, w))
    lr = w.lr
    return lambda params: jax.tree_util.tree_map(lambda p, g: p - lr * g, params,
                                                 grad(params))


def jax_peer(w):
    """jax.jit of the step, called ``steps`` times from Python (dispatch costs ~10 us
    against a step of milliseconds), float64; XLA picks its own threads. Not
    lax.fori_loop: that is as fast on the MNIST-1D CNN but 5-8x slower on the digits
    network (XLA's CPU backend inside a while loop; see jax_fori_peer)."""
    full_batch_only(w, "jax")
    jax = import_peer("jax")
    step = jax.jit(_jax_step(jax, w))

    def run(params0, steps):
        params = _jax_tree(jax, w, params0)
        for _ in range(steps):
            params = step(params)
        jax.block_until_ready(params)
        return _jax_join(w, params)

    run(w.params0, 1)  # compile now, not in the first timed call
    return run


def jax_fori_peer(w):
    """jax.jit of lax.fori_loop over the step (as _train_peers' JAX peer), the trip
    count a traced argument (one compilation for every ``steps``)."""
    full_batch_only(w, "jax")
    jax = import_peer("jax")
    step = _jax_step(jax, w)
    loop = jax.jit(lambda params, steps: jax.lax.fori_loop(0, steps, lambda _, p: step(p),
                                                           params))

    def run(params0, steps):
        out = loop(_jax_tree(jax, w, params0), steps)
        jax.block_until_ready(out)
        return _jax_join(w, out)

    run(w.params0, 1)  # compile now
    return run


def jax_hvp(w):
    """hvp(params, v) by jax.jit(jvp(grad(loss))) (forward over reverse), float64."""
    jax = import_peer("jax")
    grad = jax.grad(_jax_loss(jax, w))
    product = jax.jit(lambda p, v: jax.jvp(grad, (p,), (v,))[1])

    def hvp(params, v):
        out = product(_jax_tree(jax, w, params), _jax_tree(jax, w, v))
        jax.block_until_ready(out)
        return _jax_join(w, out)

    hvp(w.params0, w.params0)  # compile now
    return hvp


# --- bnfast's hvp and gradient -----------------------------------------------------

def bnfast_hvp(w, threads=2):
    """hvp(params, v) by net.hvp on a copy of the workload's network."""
    net = bnfast.Network(w.net.layers, loss=w.net.loss_kind)

    def hvp(params, v):
        bnfast.set_num_threads(threads)
        net.params = params
        return net.hvp(w.X, w.y, v)
    return hvp


def gradient_runner(workload_name, threads=2):
    """gradient(params) by net.gradient on a copy of the workload's network (the hvp's
    yardstick)."""
    w = workload(workload_name)
    net = bnfast.Network(w.net.layers, loss=w.net.loss_kind)

    def gradient(params):
        bnfast.set_num_threads(threads)
        net.params = params
        return net.gradient(w.X, w.y)
    return gradient


HVP_PEERS = {"bnfast": bnfast_hvp, "torch": torch_hvp, "jax": jax_hvp}


@functools.lru_cache(maxsize=None)
def _hvp_runner(workload_name, peer, threads):
    w = workload(workload_name)
    return HVP_PEERS[peer](w) if threads is None else HVP_PEERS[peer](w, threads)


def hvp_runner(workload_name, peer, threads=2):
    """``hvp(params, v)`` of ``peer`` (a key of HVP_PEERS) on the workload, built (and
    compiled) once per process; NotImplementedError when not importable."""
    return _hvp_runner(workload_name, peer, threads if peer in ("bnfast", "torch") else None)


@functools.lru_cache(maxsize=None)
def hvp_direction(workload_name):
    """The direction v ~ N(0, I) (seed 3) of the hvp benchmarks."""
    return np.random.default_rng(3).standard_normal(workload(workload_name).net.num_params)


def hvp_agreement(workload_name, peer, tol=HVP_TOL):
    """max |Hv_peer - Hv_bnfast| / max |Hv_bnfast| at params0 along hvp_direction;
    AssertionError above ``tol``."""
    w, v = workload(workload_name), hvp_direction(workload_name)
    want = hvp_runner(workload_name, "bnfast")(w.params0, v)
    diff = relative_difference(hvp_runner(workload_name, peer)(w.params0, v), want)
    assert diff <= tol, (f"{peer}'s hvp and bnfast's differ by {diff:.3g} (relative) on "
                         f"{workload_name}: not the same maths")
    return diff


# --- the suite ----------------------------------------------------------------------

PEERS = {"bnfast": bnfast_peer, "reference": reference_peer, "jax": jax_peer,
         "jax_fori": jax_fori_peer, "torch": torch_peer, "torch_f32": torch_f32_peer}

#: Steps per timed call, per workload and peer: ~20-100 ms per call on a quiet machine
#: (a step: bnfast ~1-4 ms, torch ~2-5 ms, JAX ~2-6 ms, the reference ~20-40 ms).
TIMED_STEPS = {
    "mnist1d_cnn": {"bnfast": 20, "torch": 10, "torch_f32": 20, "jax": 10, "jax_fori": 10,
                    "reference": 2},
    "digits_cnn": {"bnfast": 10, "torch": 10, "torch_f32": 20, "jax": 10, "jax_fori": 2,
                   "reference": 2},
}

SUITE = PeerSuite(WORKLOADS, PEERS, TIMED_STEPS,
                  threaded=("bnfast", "torch", "torch_f32"),
                  agreement_steps=AGREEMENT_STEPS, agreement_tol=AGREEMENT_TOL,
                  timed_only=("torch_f32",))
workload = SUITE.workload
runner = SUITE.runner
agreement = SUITE.agreement
seconds_per_step = SUITE.seconds_per_step


def print_hvp_table(workload_names):
    """Per workload: bnfast's gradient and hvp times and their ratio, and each peer's
    hvp time, bnfast's hvp time over it and the relative difference of the products."""
    for name in workload_names:
        w, v = workload(name), hvp_direction(name)
        gradient = gradient_runner(name)
        hvp = hvp_runner(name, "bnfast")
        t_gradient = min_time(lambda: gradient(w.params0), repeat=10)
        t_hvp = min_time(lambda: hvp(w.params0, v), repeat=10)
        print(f"{name}: bnfast gradient {t_gradient * 1e6:,.0f} us, hvp "
              f"{t_hvp * 1e6:,.0f} us, hvp/gradient = {t_hvp / t_gradient:.3g}")
        for peer, what in (("torch", "double backward"), ("jax", "jit(jvp(grad))")):
            try:
                other = hvp_runner(name, peer)
                t = min_time(lambda: other(w.params0, v), repeat=10)
                diff = hvp_agreement(name, peer, tol=math.inf)
            except NotImplementedError as exc:
                print(f"  {peer} hvp: skipped ({exc})")
                continue
            print(f"  {peer} hvp ({what}): {t * 1e6:,.0f} us, bnfast/{peer} = "
                  f"{t_hvp / t:.3g}, relative difference {diff:.2g}")


def main():
    """Print each network's time per step in every importable peer (bnfast/peer, the
    agreement after AGREEMENT_STEPS steps), then the hvp times."""
    SUITE.print_table(list(TIMED_STEPS), unit="us")
    print_hvp_table(list(TIMED_STEPS))


if __name__ == "__main__":
    main()
