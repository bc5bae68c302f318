"""Hessian-vector products of the tanh BN MLP (``_train_peers.mlp``: 256 x 16 -> 64 ->
64 (tanh, BN, no bias) -> 1, summed squared loss, train mode: batch statistics) in
bnfast and its peers, and the same Lanczos eigensolver on each (issue 27, item 5).
Products come in two settings:

    at a new point each time (what one hvp costs)
        bnfast          Network.hvp: forward-over-reverse on dual numbers, in C++
        jax             jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1])
    many at one point (what an eigensolver needs)
        bnfast-point    a HessianAt: the first product keeps its pass, the next
                        recompute only the tangents (the same bits as Network.hvp)
        torch           double backward as PyHessian does it: the gradient g(p) built
                        once with create_graph=True, each product
                        torch.autograd.grad(g, p, v, retain_graph=True)
        jax-linearize   jax.jit of the function jax.linearize(jax.grad(loss), p) returns

float64, 2 threads (XLA picks its own). Every peer's loss is written from the flat
parameter vector in bnfast's layout (``net.param_layout()``), BN with the batch mean and
the biased batch variance, so the products agree with bnfast's to rounding
(``agreement``). The eigensolver is ``bnfast.curvature.lanczos`` (the core's Lanczos
process: full reorthogonalization, locking) on each peer's product, the same code and
seed as ``bnfast.curvature.top_eigenvalues``, which runs it on a HessianAt without
leaving C++ between products.

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


def bnfast_point_hvp(threads=2):
    """v -> H v by a HessianAt at the workload's point (the operator of
    curvature.top_eigenvalues)."""
    net, X, y = workload()
    bnfast.set_num_threads(threads)
    X, y = net.learning_set(X, y)
    point = bnfast._core.HessianAt(net._core, net.params, X, y)
    point.apply(np.zeros(net.num_params))   # the first product: the whole pass
    return point.apply


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


def jax_loss():
    """(jax, the loss as a function of the flat parameters) for the workload."""
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
    return jax, loss


def _numpy_product(jax, product):
    """numpy v -> numpy H v around a jitted jax product, compiled now."""
    net, _, _ = workload()

    def hvp(v):
        return np.asarray(product(jax.numpy.asarray(v)).block_until_ready())
    hvp(np.zeros(net.num_params))
    return hvp


def jax_hvp():
    """v (numpy) -> H v (numpy) by jax.jit(jvp(grad(loss))) at the point each time."""
    jax, loss = jax_loss()
    product = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1])
    p = jax.numpy.asarray(workload()[0].params)
    return _numpy_product(jax, lambda v: product(p, v))


def jax_linearized_hvp():
    """v (numpy) -> H v (numpy) by the jitted linearization of grad(loss) at the point."""
    jax, loss = jax_loss()
    _, linear = jax.linearize(jax.grad(loss), jax.numpy.asarray(workload()[0].params))
    return _numpy_product(jax, jax.jit(linear))


PEERS = {"bnfast": bnfast_hvp, "bnfast-point": bnfast_point_hvp, "torch": torch_hvp,
         "jax": jax_hvp, "jax-linearize": jax_linearized_hvp}

#: bnfast's product to compare each peer with: the one of the same setting.
SETTING = {"torch": "bnfast-point", "jax": "bnfast", "jax-linearize": "bnfast-point"}


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
            print(f"  {peer:13s} skipped: {exc}")
    grad = min_time(lambda: net.gradient(X, y), number=5, repeat=20)
    for mine in ("bnfast", "bnfast-point"):
        t = min_time(lambda: hvp_of(mine)(v), number=5, repeat=20)
        print(f"  {mine:13s} {t * 1e6:5.0f} us ({t / grad:.2f} gradients of {grad * 1e6:.0f} us)")
    for peer in (p for p in available if p in SETTING):
        mine, theirs = hvp_of(SETTING[peer]), hvp_of(peer)
        r = ratio(lambda: mine(v), lambda: theirs(v), number=5, repeat=10)
        t = min_time(lambda: theirs(v), number=5, repeat=10)
        print(f"  {SETTING[peer]} / {peer}: {r:.3f} ({peer} {t * 1e6:.0f} us; "
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
