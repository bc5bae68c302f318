"""Hessian-vector products of the tanh BN MLP (``_train_peers.mlp``: 256 x 16 -> 64 ->
64 (tanh, BN, no bias) -> 1, summed squared loss, train mode: batch statistics) in
bnfast and its peers, and the same Lanczos eigensolver on each (issue 27, item 5):

    bnfast   Network.hvp: forward-over-reverse on dual numbers, in C++ (2 threads)
    torch    double backward as PyHessian does it: the gradient g(p) is built once with
             create_graph=True, each product is torch.autograd.grad(g, p, v,
             retain_graph=True) (float64, 2 threads)
    jax      jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1]), float64

Every peer's loss is written from the flat parameter vector in bnfast's layout
(``net.param_layout()``), BN with the batch mean and the biased batch variance, so the
products agree with bnfast's to rounding (``agreement``). The eigensolver is
``bnfast.curvature.lanczos`` (full reorthogonalization, locking) on each peer's product,
the same code and seed as ``bnfast.curvature.top_eigenvalues``: the ratio of their times
is the ratio of the products plus the solver's shared overhead.

``python -m benchmarks._curvature_peers`` (from the repository root) prints the times,
the ratios and the agreement.
"""

import functools

import numpy as np

import bnfast
from bnfast import curvature

from ._train_peers import import_peer, mlp

#: Relative tolerance of the top eigenvalue (issue 27: "to 1e-6 relative").
TOL = 1e-6


@functools.lru_cache(maxsize=1)
def workload():
    """(net, X, y) of the tanh BN MLP, at its initial parameters (seed 0)."""
    w = mlp()
    return w.net, w.X, w.y


def layout(net):
    """[(activation, bias, BN (eps) or None, {name: (slice, shape)})] per layer."""
    out = []
    for layer, entry in zip(net.layers, net.param_layout()):
        bn = layer.batch_norm
        if layer.applied_noise is not None or (
                bn is not None and (not bn.trainable or bn.norm != "std")):
            raise ValueError("the peers implement trainable std BN only, without noise")
        out.append((layer.activation, layer.bias, None if bn is None else bn.eps, entry))
    return out


def bnfast_hvp(threads=2):
    net, X, y = workload()
    bnfast.set_num_threads(threads)

    def hvp(v):
        return net.hvp(X, y, v)
    return hvp


def torch_hvp(threads=2):
    """v (numpy) -> H v (numpy) by double backward on a graph built once."""
    torch = import_peer("torch")
    torch.set_num_threads(threads)
    net, X, y = workload()
    acts = {"identity": lambda z: z, "tanh": torch.tanh}
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(y.reshape(len(y), -1))
    p = torch.tensor(net.params, requires_grad=True)

    def loss(p):
        A = Xt
        for act, bias, eps, entry in layout(net):
            sl, shape = entry["W"]
            H = A @ p[sl].reshape(shape).T
            if bias:
                H = H + p[entry["b"][0]]
            if eps is not None:
                mu = H.mean(dim=0)
                C = H - mu
                s2 = (C * C).mean(dim=0)
                H = p[entry["gamma"][0]] * C / torch.sqrt(s2 + eps) + p[entry["beta"][0]]
            A = acts[act](H)
        R = A - Yt
        return (R * R).sum()

    (g,) = torch.autograd.grad(loss(p), p, create_graph=True)

    def hvp(v):
        (hv,) = torch.autograd.grad(g, p, torch.from_numpy(v), retain_graph=True)
        return hv.numpy()
    return hvp


def jax_hvp():
    """v (numpy) -> H v (numpy) by jax.jit(jvp(grad(loss)))."""
    jax = import_peer("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    net, X, y = workload()
    acts = {"identity": lambda z: z, "tanh": jnp.tanh}
    Xj, Yj = jnp.asarray(X), jnp.asarray(y.reshape(len(y), -1))
    spec = layout(net)

    def loss(p):
        A = Xj
        for act, bias, eps, entry in spec:
            sl, shape = entry["W"]
            H = A @ p[sl].reshape(shape).T
            if bias:
                H = H + p[entry["b"][0]]
            if eps is not None:
                mu = jnp.mean(H, axis=0)
                C = H - mu
                s2 = jnp.mean(C * C, axis=0)
                H = p[entry["gamma"][0]] * C / jnp.sqrt(s2 + eps) + p[entry["beta"][0]]
            A = acts[act](H)
        R = A - Yj
        return jnp.sum(R * R)

    product = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1])
    p = jnp.asarray(net.params)

    def hvp(v):
        return np.asarray(product(p, jnp.asarray(v)).block_until_ready())
    hvp(np.zeros(net.num_params))   # compile now
    return hvp


PEERS = {"bnfast": bnfast_hvp, "torch": torch_hvp, "jax": jax_hvp}


@functools.lru_cache(maxsize=None)
def hvp_of(peer):
    """The product of ``peer``, built once per process (NotImplementedError, asv's skip,
    when the peer is not importable)."""
    return PEERS[peer]()


def probe():
    """The vector the product benchmarks multiply (seed 1)."""
    net, _, _ = workload()
    return np.random.default_rng(1).standard_normal(net.num_params)


def top_eigenvalue(peer):
    """The top eigenvalue to TOL by the library's Lanczos: for bnfast
    curvature.top_eigenvalues itself, for a peer curvature.lanczos on its product
    (the same solver and start vector). Returns the Eigenpairs."""
    net, X, y = workload()
    if peer == "bnfast":
        bnfast.set_num_threads(2)
        return curvature.top_eigenvalues(net, X, y, k=1, tol=TOL, seed=0, progress=False)
    return curvature.lanczos(hvp_of(peer), net.num_params, k=1, tol=TOL, seed=0)


def agreement(peer):
    """max |H v (peer) - H v (bnfast)| / max |H v (bnfast)| on the probe vector."""
    v = probe()
    want = hvp_of("bnfast")(v)
    return float(np.max(np.abs(hvp_of(peer)(v) - want)) / np.max(np.abs(want)))


def main():  # pragma: no cover - a report for people
    from ._common import min_time, ratio

    net, X, y = workload()
    v = probe()
    print(f"tanh BN MLP: {net.num_params} parameters, 256 rows; float64, 2 threads")
    available = []
    for peer in PEERS:
        try:
            hvp_of(peer)(v)
            available.append(peer)
        except NotImplementedError as exc:
            print(f"  {peer:7s} skipped: {exc}")
    mine = hvp_of("bnfast")
    grad = min_time(lambda: net.gradient(X, y), number=5, repeat=20)
    hvp = min_time(lambda: mine(v), number=5, repeat=20)
    print(f"  bnfast: gradient {grad * 1e6:.0f} us, hvp {hvp * 1e6:.0f} us "
          f"({hvp / grad:.2f} gradients)")
    for peer in available[1:]:
        theirs = hvp_of(peer)
        print(f"  hvp bnfast / {peer}: "
              f"{ratio(lambda: mine(v), lambda: theirs(v), number=5, repeat=10):.3f} "
              f"({peer} {min_time(lambda: theirs(v), number=5, repeat=10) * 1e6:.0f} us; "
              f"agreement {agreement(peer):.1e})")
    if "torch" in available:
        rb, rt = top_eigenvalue("bnfast"), top_eigenvalue("torch")
        rel = abs(rb.eigenvalues[0] - rt.eigenvalues[0]) / abs(rt.eigenvalues[0])
        r = ratio(lambda: top_eigenvalue("bnfast"), lambda: top_eigenvalue("torch"),
                  repeat=5, budget=30.0)
        t = min_time(lambda: top_eigenvalue("bnfast"), repeat=5)
        print(f"  top eigenvalue bnfast / torch: {r:.3f} (bnfast {t * 1e3:.1f} ms, "
              f"{rb.iterations} + 1 products; torch {rt.iterations} + 1; lambda "
              f"{rb.eigenvalues[0]:.12g}, agreement {rel:.1e})")


if __name__ == "__main__":  # pragma: no cover
    main()
