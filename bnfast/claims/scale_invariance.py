"""Scale invariance of the weights of a BN layer (Arora, Li and Lyu, "Theoretical
analysis of auto rate-tuning by batch normalization", ICLR 2019, arXiv:1812.03981:
their lemma on scale-invariant parameters), checked on one small network in float64
(bnfast's engine) or exactly (sympy); docs/math/scale_invariance.md.

The network (one BN layer, then a linear read-out, the papers' sum-of-squares loss):

    X  (m, d)   inputs, one sample per row (the batch)
    W  (d, k)   the BN layer's weights; h = X W (m, k) its pre-activations
    z  (m, k)   gamma * (h - mu) / sqrt(sigma^2 + eps) + beta, per column over the batch
                (mu, sigma^2 the column's mean and biased variance; gamma, beta scalars
                or (k,), constants of the check)
    V  (k,)     read-out weights; out = z V (m,)
    y  (m,)     targets; L(W) = sum_i (y_i - out_i)^2
    G  (d, k)   grad_W L;  dL/dgamma (k,) = sum_i (dL/dz)_ij hhat_ij

With eps = 0, z(c W) = z(W) for every c > 0, so L is homogeneous of degree 0 in W and
Euler's identity gives the paper's two statements:

    "orthogonal"  <W, G> = 0                                      (Frobenius product)
    "norm-step"   ||W - lr G||^2 = ||W||^2 + lr^2 ||G||^2          (one GD step)

With eps > 0 the loss is not scale-invariant and <W, G> = 0 fails; differentiating
z(c W) at c = 1 gives, for every eps >= 0,

    "corrected"   <W, G> = sum_j gamma_j eps / (sigma_j^2 + eps) dL/dgamma_j

(at eps = 0 the right side is 0; the norm step then gains -2 lr times it). All three are
equalities: lhs, rhs are the two sides and holds says whether they are equal (exactly,
or within the rounding tolerance on the float path).

Exact path (exact=True): sympy numbers throughout, inputs taken exactly (floats at their
binary value). The derivatives come from sympy's symbolic differentiation: the Jacobian
d hhat / dh of the BN transform of m symbols (with a symbol eps) and the gradient of the
loss in the symbols z are derived once per (m, k), then evaluated at the instance's
numbers; the chain rule through the linear layer (G = X^T dL/dh) is exact matrix
algebra. Every number is then a sum of rational multiples of square roots.

Float path (exact=False): bnfast's engine. The network is a bnfast.Network (Dense(d, k,
bias=False) with BatchNorm(gamma, beta, eps), then Dense(k, 1, bias=False), loss "sum");
G and dL/dgamma are its gradient and W - lr G is one step of bnfast.train. The sides
are compared with a tolerance rel * M, rel = 64 (m + d k) eps_64, M the sum of the
absolute values of every product the two sides are made of (see _magnitudes), so an
equality lost in rounding counts as holding and a violation larger than the rounding is
never missed.
"""

from functools import lru_cache, partial

import numpy as np

from .._validate import choice
from .counterexample import BOUND, Row
from .statement import Quantities, StatementReport, arithmetic, batch_matrix

__all__ = ["AUDIT_ROWS", "FORMS", "check_scale_invariance"]

#: The forms of the statement (see the module docstring).
FORMS = ("orthogonal", "norm-step", "corrected")

_EPS64 = np.finfo(np.float64).eps


def check_scale_invariance(X, W, V, y, lr=1, gamma=1, beta=0, eps=0, form="orthogonal",
                           exact=False):
    """Checks the scale invariance of a BN layer's weights (Arora, Li and Lyu 2019) on
    one network and batch.

    X      (m, d) inputs, one sample per row, m >= 2
    W      (d, k) the BN layer's weights (a (d,) vector is one neuron, k = 1); with
           eps = 0 no column of X W may be constant (sigma = 0)
    V      (k,) read-out weights; y (m,) targets of the loss sum_i (y_i - (z V)_i)^2
    lr     > 0, the step of the gradient-descent step ("norm-step")
    gamma, beta   the BN scale and shift: numbers or (k,) arrays (constants)
    eps    >= 0; 0 is the scale-invariant transform of the paper
    form   "orthogonal" (<W, G> = 0), "norm-step" (||W - lr G||^2 = ||W||^2 +
           lr^2 ||G||^2) or "corrected" (<W, G> = sum_j gamma_j eps/(sigma_j^2 + eps)
           dL/dgamma_j, for every eps)
    exact  False: float64 through bnfast's engine. True: exact sympy numbers, the
           gradient by sympy's symbolic differentiation

    Returns a StatementReport (statement "Scale invariance", relation "="): lhs, rhs the
    two sides, gap = rhs - lhs, holds (lhs = rhs: exactly, or within the tolerance);
    quantities loss, grad (W's shape), grad_gamma (k,), sigma (k,), s (k,) =
    sqrt(sigma^2 + eps), w_dot_grad, defect (the corrected right side), norm_w_sq,
    norm_grad_sq, lr, and w_next = W - lr G with norm_w_next_sq (the float path takes
    the step, one bnfast.train step, only for form "norm-step"). Raises ValueError /
    TypeError for invalid arguments.
    """
    ar = arithmetic(exact)
    form = choice(form, "form", FORMS)
    net = _instance(ar, X, W, V, y, lr, gamma, beta, eps)
    values = _exact_values(net) if ar.exact else _float_values(net, form == "norm-step")
    lhs, rhs, size = _sides(form, net, values)
    if ar.exact:
        from ._exact import is_zero_expanded

        gap = _canonical(rhs - lhs)
        holds, tolerance, relative = is_zero_expanded(gap), 0, 0
        magnitude = 0
    else:
        gap = rhs - lhs
        tolerance = _rel(net) * size
        holds = bool(abs(gap) <= tolerance)
        magnitude = size
        relative = 0.0 if size == 0 else gap / size
    return StatementReport(
        statement="Scale invariance", form=form, exact=ar.exact, m=net["m"], lhs=lhs,
        rhs=rhs, gap=gap, holds=holds, tolerance=tolerance, magnitude=magnitude,
        relative_gap=relative, note=_note(form, net["eps_positive"], holds), eps=net["eps"],
        relation="=", quantities=Quantities(_quantities(net, values)))


# ---- arguments ---------------------------------------------------------------------

def _instance(ar, X, W, V, y, lr, gamma, beta, eps):
    """The validated arguments as a dict (ar's numbers; W as a (d, k) matrix)."""
    X = batch_matrix(ar, X, "X")
    m, d = X.shape
    W = ar.array(W, "W")
    vector = W.ndim == 1
    if vector:
        W = W.reshape(-1, 1)
    if W.ndim != 2 or W.shape[0] != d or W.shape[1] == 0:
        raise ValueError(f"W must have shape ({d}, k) (or ({d},) for one neuron) for X of "
                         f"shape {X.shape}, got shape {W.shape}")
    k = W.shape[1]
    V = ar.array(V, "V")
    if V.shape != (k,):
        raise ValueError(f"V must have shape ({k},), one read-out weight per BN neuron, "
                         f"got shape {V.shape}")
    y = ar.array(y, "y")
    if y.shape != (m,):
        raise ValueError(f"y must have shape ({m},), one target per sample, got shape "
                         f"{y.shape}")
    lr = _scalar(ar, lr, "lr")
    if not ar.is_positive(lr, 0.0):
        raise ValueError(f"lr must be > 0, got {lr}")
    eps = _scalar(ar, eps, "eps")
    if ar.is_positive(-eps, 0.0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    eps_positive = bool(ar.is_positive(eps, 0.0))
    gamma, beta = (_per_neuron(ar, v, name, k) for v, name in ((gamma, "gamma"), (beta, "beta")))
    H = X @ W
    if not eps_positive:
        for j in range(k):
            if ar.all_equal(H[:, j]):
                raise ValueError(f"column {j} of X W is constant over the batch (sigma = "
                                 "0): hhat = (h - mu) / sigma is undefined with eps = 0")
    return dict(ar=ar, X=X, W=W, V=V, y=y, lr=lr, eps=eps, eps_positive=eps_positive,
                gamma=gamma, beta=beta, m=m, d=d, k=k, vector=vector)


def _scalar(ar, value, name):
    """A real scalar (a 0-d array too: the audit's instances hold them so)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
        if isinstance(value, np.integer):
            value = int(value)
        elif isinstance(value, np.floating):
            value = float(value)
    return ar.scalar(value, name)


def _per_neuron(ar, value, name, k):
    arr = ar.array(value, name)
    if arr.ndim == 0:
        return np.array([arr[()]] * k, dtype=arr.dtype)
    if arr.shape != (k,):
        raise ValueError(f"{name} must be a number or have shape ({k},), one per BN "
                         f"neuron, got shape {arr.shape}")
    return arr


# ---- the exact path ------------------------------------------------------------------

@lru_cache(maxsize=None)
def _bn_symbolic(m):
    """The BN transform of m symbols h with a symbol eps, hhat (m,), and its Jacobian
    d hhat / dh (m, m) by sympy's differentiation, both rewritten with common
    subexpressions (sympy.cse) so that evaluating them at numbers computes each shared
    piece once: (h, eps, steps, hhat, jacobian), steps the (symbol, expression) pairs to
    evaluate in order."""
    import sympy

    h = sympy.symbols(f"h0:{m}", real=True)
    eps = sympy.Symbol("eps", nonnegative=True)
    mu = sum(h, sympy.Integer(0)) / m
    var = sum(((x - mu) ** 2 for x in h), sympy.Integer(0)) / m
    hhat = sympy.Matrix([(x - mu) / sympy.sqrt(var + eps) for x in h])
    steps, (hhat_r, jac_r) = sympy.cse([hhat, hhat.jacobian(h)])
    return h, eps, tuple(steps), hhat_r, jac_r


def _bn_at(m, values, eps):
    """hhat (m,) and d hhat / dh (m, m) at h = values (exact numbers)."""
    h, eps_sym, steps, hhat, jac = _bn_symbolic(m)
    env = dict(zip(h, values))
    env[eps_sym] = eps
    for symbol, expression in steps:
        env[symbol] = expression.xreplace(env)
    return hhat.xreplace(env), jac.xreplace(env)


@lru_cache(maxsize=None)
def _loss_symbolic(m, k):
    """The loss sum_i (y_i - sum_j z_ij v_j)^2 of symbols z (m, k), v (k,), y (m,) and
    its gradient dL/dz (m, k), differentiated by sympy."""
    import sympy

    z = sympy.Matrix(m, k, sympy.symbols(f"z0:{m * k}", real=True))
    v = sympy.symbols(f"v0:{k}", real=True)
    y = sympy.symbols(f"y0:{m}", real=True)
    loss = sum(((y[i] - sum((z[i, j] * v[j] for j in range(k)), sympy.Integer(0))) ** 2
                for i in range(m)), sympy.Integer(0))
    grad = sympy.Matrix(m, k, lambda i, j: sympy.diff(loss, z[i, j]))
    return z, v, y, loss, grad


def _canonical(x):
    """An exact number in sympy's expanded form (a sum of rational multiples of square
    roots for the numbers here)."""
    from ._exact import expanded

    return expanded(x)


def _exact_values(net):
    """The forward and backward pass in exact arithmetic (see the module docstring)."""
    import sympy

    m, k = net["m"], net["k"]
    X, W, V, y = net["X"], net["W"], net["V"], net["y"]
    H = X @ W
    hhat = np.empty((m, k), dtype=object)
    jacobians, sigma, s = [], [], []
    for j in range(k):
        hhat_j, jac_j = _bn_at(m, H[:, j], net["eps"])
        hhat[:, j] = [_canonical(v) for v in hhat_j]
        jacobians.append(jac_j)
        mu = sum(H[:, j], sympy.Integer(0)) / m
        var = _canonical(sum(((v - mu) ** 2 for v in H[:, j]), sympy.Integer(0)) / m)
        sigma.append(sympy.sqrt(var))
        s.append(sympy.sqrt(var + net["eps"]))
    Z = np.array([[net["gamma"][j] * hhat[i, j] + net["beta"][j] for j in range(k)]
                  for i in range(m)], dtype=object)
    z_sym, v_sym, y_sym, loss_sym, grad_sym = _loss_symbolic(m, k)
    rep = {z_sym[i, j]: Z[i, j] for i in range(m) for j in range(k)}
    rep.update(zip(v_sym, V))
    rep.update(zip(y_sym, y))
    g = np.array(grad_sym.xreplace(rep).tolist(), dtype=object).reshape(m, k)   # dL/dz
    dH = np.empty((m, k), dtype=object)
    for j in range(k):
        dh = jacobians[j].T * sympy.Matrix(list(net["gamma"][j] * g[:, j]))
        dH[:, j] = list(dh)
    G = np.vectorize(_canonical, otypes=[object])(X.T @ dH)
    grad_gamma = np.array([_canonical(sum(g[:, j] * hhat[:, j])) for j in range(k)],
                          dtype=object)
    W_next = np.vectorize(_canonical, otypes=[object])(W - net["lr"] * G)
    return dict(loss=_canonical(loss_sym.xreplace(rep)), G=G, grad_gamma=grad_gamma,
                sigma=np.array(sigma, dtype=object), s=np.array(s, dtype=object),
                W_next=W_next)


# ---- the float path (bnfast's engine) ---------------------------------------------------

def _float_values(net, with_step=True):
    """The loss, G and dL/dgamma by bnfast's engine, W - lr G by one bnfast.train step
    (with_step; else None), and the absolute sizes the tolerance is measured against."""
    from ..nn import BatchNorm, Dense, Network, train

    d, k = net["d"], net["k"]
    X, W, V, y = net["X"], net["W"], net["V"], net["y"]
    bn = BatchNorm(gamma=net["gamma"], beta=net["beta"], trainable=True,
                   eps=float(net["eps"]))
    model = Network([Dense(d, k, bias=False, batch_norm=bn), Dense(k, 1, bias=False)],
                    loss="sum")
    first, read_out = model.param_layout()
    params = np.empty(model.num_params)
    params[first["W"][0]] = W.T.ravel()          # the engine's W is (out, in)
    params[first["gamma"][0]] = net["gamma"]
    params[first["beta"][0]] = net["beta"]
    params[read_out["W"][0]] = V
    model.params = params
    loss, grad = model.loss_and_gradient(X, y)
    G = grad[first["W"][0]].reshape(k, d).T
    grad_gamma = grad[first["gamma"][0]].copy()
    W_next = None
    if with_step:
        train(model, X, y, float(net["lr"]), 1)
        W_next = model.params[first["W"][0]].reshape(k, d).T

    H = X @ W
    mu = H.mean(axis=0)
    var = ((H - mu) ** 2).mean(axis=0)
    s = np.sqrt(var + net["eps"])
    sizes = _magnitudes(net, H, mu, s)
    return dict(loss=float(loss), G=G, grad_gamma=grad_gamma, sigma=np.sqrt(var), s=s,
                W_next=W_next, **sizes)


def _magnitudes(net, H, mu, s):
    """Absolute sizes (float path): a (m, k) >= |hhat| including the centring's
    rounding ((|h| + |mu|) / s), gabs (m, k) >= |dL/dz|'s terms, Gabs (d, k) >= the
    terms of G = X^T dL/dh, ggabs (k,) >= the terms of dL/dgamma."""
    X, V, y, gamma, beta = net["X"], net["V"], net["y"], net["gamma"], net["beta"]
    a = (np.abs(H) + np.abs(mu)) / s        # s > 0: eps > 0, or no constant column
    zabs = np.abs(gamma) * a + np.abs(beta)
    gabs = 2 * (np.abs(y) + zabs @ np.abs(V))[:, None] * np.abs(V)[None, :]
    babs = np.abs(gamma) / s * (gabs + gabs.mean(axis=0) + a * (gabs * a).mean(axis=0))
    return dict(Gabs=np.abs(X).T @ babs, ggabs=(gabs * a).sum(axis=0))


def _rel(net):
    return 64 * (net["m"] + net["d"] * net["k"]) * _EPS64


# ---- the statement ---------------------------------------------------------------------

def _defect(net, values):
    """sum_j gamma_j eps / (sigma_j^2 + eps) dL/dgamma_j (0 at eps = 0)."""
    if not net["eps_positive"]:
        return 0 if net["ar"].exact else 0.0
    terms = (net["gamma"][j] * net["eps"] / values["s"][j] ** 2 * values["grad_gamma"][j]
             for j in range(net["k"]))
    total = sum(terms, 0)
    return _canonical(total) if net["ar"].exact else float(total)


def _sides(form, net, values):
    """(lhs, rhs, M): the two sides of the form and, on the float path, the size M its
    rounding is measured against (None on the exact path)."""
    W, G, lr = net["W"], values["G"], net["lr"]
    exact = net["ar"].exact
    dot = _canonical(np.sum(W * G)) if exact else float(np.sum(W * G))
    size = None
    if not exact:
        dot_size = float(np.sum(np.abs(W) * values["Gabs"]))
    if form == "orthogonal":
        lhs, rhs = dot, (0 if exact else 0.0)
        size = None if exact else dot_size
    elif form == "corrected":
        lhs, rhs = dot, _defect(net, values)
        if not exact:
            per = np.abs(net["gamma"]) * float(net["eps"]) / values["s"] ** 2
            size = dot_size + float(np.sum(per * values["ggabs"]))
    else:
        W_next = values["W_next"]
        if exact:
            lhs = _canonical(np.sum(W_next * W_next))
            rhs = _canonical(np.sum(W * W) + lr ** 2 * np.sum(G * G))
        else:
            lhs = float(np.sum(W_next * W_next))
            w2, g2 = float(np.sum(W * W)), float(np.sum(G * G))
            rhs = w2 + lr ** 2 * g2
            size = (w2 + lhs + lr ** 2 * g2 + 2 * lr * dot_size
                    + 2 * lr ** 2 * float(np.sum(np.abs(G) * values["Gabs"])))
    return lhs, rhs, size


def _quantities(net, values):
    exact = net["ar"].exact
    W, G = net["W"], values["G"]

    def shaped(a):
        a = a.reshape(-1) if net["vector"] else a
        if exact:
            a = np.array(a, dtype=object)
            a.setflags(write=False)
        return a

    dot = _canonical(np.sum(W * G)) if exact else float(np.sum(W * G))
    square = (lambda a: _canonical(np.sum(a * a))) if exact else \
        (lambda a: float(np.sum(a * a)))
    out = {"loss": values["loss"], "grad": shaped(G), "grad_gamma": values["grad_gamma"],
           "sigma": values["sigma"], "s": values["s"], "w_dot_grad": dot,
           "defect": _defect(net, values), "norm_w_sq": square(W),
           "norm_grad_sq": square(G), "lr": net["lr"]}
    if values["W_next"] is not None:
        out["w_next"] = shaped(values["W_next"])
        out["norm_w_next_sq"] = square(values["W_next"])
    return out


def _note(form, eps_positive, holds):
    if form == "corrected":
        return ("d/dc L(c W) at c = 1 is <W, G>; z(c W) differs from z(W) only through "
                "s(c W) = sqrt(c^2 sigma^2 + eps), whose c-derivative gives hhat eps/(sigma^2 "
                "+ eps) per column, so <W, G> = sum_j gamma_j eps/(sigma_j^2 + eps) "
                "dL/dgamma_j for every eps >= 0 (0 at eps = 0).")
    if not eps_positive:
        if form == "orthogonal":
            return ("eps = 0: L(c W) = L(W) for c > 0 (BN removes the scale of each "
                    "column of X W), so L is homogeneous of degree 0 and Euler's identity "
                    "gives <W, grad_W L> = 0.")
        return ("eps = 0: ||W - lr G||^2 = ||W||^2 - 2 lr <W, G> + lr^2 ||G||^2 with "
                "<W, G> = 0, so one GD step grows the squared norm by exactly "
                "lr^2 ||G||^2 (Pythagoras).")
    where = ("<W, G> = sum_j gamma_j eps/(sigma_j^2 + eps) dL/dgamma_j (the corrected "
             "form)")
    if form == "orthogonal":
        return ("eps > 0: L is not scale-invariant and " + where
                + (", which is 0 here." if holds else ", not 0 here."))
    return ("eps > 0: the step changes ||W||^2 by lr^2 ||G||^2 - 2 lr <W, G>, with "
            + where + (", 0 here." if holds else ", not 0 here."))


# ---- the audit's rows -------------------------------------------------------------------

def _ints(rng, *shape):
    return rng.integers(-BOUND, BOUND + 1, shape)


def draw_network(rng, m):
    """X (m, d), W (d, k), V (k,), y (m,) with d in 1..3, k in 1..2 (small enough for
    the exact path to take a few hundredths of a second)."""
    d, k = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    return {"X": _ints(rng, m, d), "W": _ints(rng, d, k), "V": _ints(rng, k),
            "y": _ints(rng, m)}


def draw_network_lr(rng, m):
    """draw_network and a step lr in 1..BOUND (a 0-d array, so the shrink moves it)."""
    out = draw_network(rng, m)
    out["lr"] = np.array(int(rng.integers(1, BOUND + 1)))
    return out


def draw_network_eps(rng, m):
    """draw_network and eps in 1..BOUND (a 0-d array)."""
    out = draw_network(rng, m)
    out["eps"] = np.array(int(rng.integers(1, BOUND + 1)))
    return out


def draw_neuron_eps(rng, m):
    """One BN neuron (k = 1, d in 1..2) and eps in 1..BOUND: the eps > 0 row's
    counterexample is then one neuron, shrunk in a fraction of a second."""
    d = int(rng.integers(1, 3))
    return {"X": _ints(rng, m, d), "W": _ints(rng, d, 1), "V": _ints(rng, 1),
            "y": _ints(rng, m), "eps": np.array(int(rng.integers(1, BOUND + 1)))}


def _eps_notes(extra):
    return ["with eps > 0, <W, G> = sum_j gamma_j eps /",
            "(sigma_j^2 + eps) dL/dgamma_j (next row), and a",
            "GD step adds lr^2 ||G||^2 - 2 lr <W, G> to ||W||^2"]


#: The rows of `bnfast audit` (claims/audit.py): the paper's two identities at eps = 0,
#: the first one at eps > 0 (it fails) and its corrected form (an identity for every eps).
AUDIT_ROWS = (
    Row("scale-invariance", "Scale invariance", "orthogonal",
        partial(check_scale_invariance, form="orthogonal"), draw_network),
    Row("scale-invariance", "Scale invariance", "norm step",
        partial(check_scale_invariance, form="norm-step"), draw_network_lr),
    Row("scale-invariance", "Scale invariance", "eps > 0",
        partial(check_scale_invariance, form="orthogonal"), draw_neuron_eps,
        notes=_eps_notes),
    Row("scale-invariance", "Scale invariance", "corrected",
        partial(check_scale_invariance, form="corrected"), draw_network_eps),
)
