"""Helpers of the bnfast.reference tests: layer dicts and parameters; the forward pass
written straight from docs/math/networks.md is tests/manual_network.py, so the
reference's own maths can be checked without native code."""

import numpy as np

from manual_network import manual_forward, rel_err  # noqa: F401 (re-exported for the tests)

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")

# How a layer is batch-normalized: None, or the keyword arguments of bn() but gamma/beta
# given as "scalar" (one number) or "list" (one per neuron).
BN_MODES = {
    "none": None,
    "trainable-eps0": dict(trainable=True, kind="scalar", eps=0.0),
    "trainable-list-eps": dict(trainable=True, kind="list", eps=0.3),
    "const-scalar-eps0": dict(trainable=False, kind="scalar", eps=0.0),
    "const-list-eps": dict(trainable=False, kind="list", eps=0.3),
}

# A ReLU pre-activation closer to 0 than this is within reach of a finite-difference
# step (the loss is not smooth there): such draws are redrawn.
RELU_MARGIN = 1e-3


def bn(gamma=1.0, beta=0.0, trainable=True, eps=1e-5, **optional):
    """A batch_norm dict; the optional keys (momentum, norm, noise) only when given."""
    return {"gamma": gamma, "beta": beta, "trainable": trainable, "eps": eps, **optional}


def noise(n_mu=0.5, n_sigma=1.25, r_mu=0.1, r_sigma=0.1):
    return {"n_mu": n_mu, "n_sigma": n_sigma, "r_mu": r_mu, "r_sigma": r_sigma}


def dense(n_in, n_out, activation="identity", bias=True, batch_norm=None):
    return {"in_features": n_in, "out_features": n_out, "activation": activation,
            "bias": bias, "batch_norm": batch_norm}


def residual(*layers):
    return {"residual": list(layers)}


def flat(layers):
    """The Dense dicts in network order (a residual block's layers in place)."""
    return [d for entry in layers
            for d in (entry["residual"] if "residual" in entry else [entry])]


def count_params(layers):
    """Written from the documented order, independently of reference.param_count."""
    n = 0
    for d in flat(layers):
        n += d["in_features"] * d["out_features"] + (d["out_features"] if d["bias"] else 0)
        if d["batch_norm"] is not None and d["batch_norm"]["trainable"]:
            n += 2 * d["out_features"]
    return n


def random_bn(mode, width, rng):
    spec = BN_MODES[mode]
    if spec is None:
        return None
    if spec["kind"] == "scalar":
        gamma, beta = float(rng.uniform(0.6, 1.4)), float(rng.uniform(-0.5, 0.5))
    else:
        signs = rng.choice([-1.0, 1.0], width)
        gamma = [float(g) for g in rng.uniform(0.6, 1.4, width) * signs]
        beta = [float(b) for b in rng.uniform(-0.5, 0.5, width)]
    return bn(gamma, beta, spec["trainable"], spec["eps"])


def random_params(layers, rng):
    """W ~ N(0, 1/in), b, gamma, beta all non-trivial, in the documented order."""
    chunks = []
    for d in flat(layers):
        n_in, n_out = d["in_features"], d["out_features"]
        chunks.append(rng.normal(0, 1 / np.sqrt(n_in), n_in * n_out))
        if d["bias"]:
            chunks.append(rng.normal(0, 0.5, n_out))
        if d["batch_norm"] is not None and d["batch_norm"]["trainable"]:
            chunks.append(rng.uniform(0.6, 1.4, n_out) * rng.choice([-1.0, 1.0], n_out))
            chunks.append(rng.uniform(-0.5, 0.5, n_out))
    return np.concatenate(chunks)


def random_case(activation, bn_mode, seed, m=7):
    """A 3-layer network (3 -> 4 -> 3 -> 2): the first two layers use ``activation`` and
    ``bn_mode`` (the second without a bias), the last is identity with a bias; with
    data, targets and parameters such that no ReLU pre-activation is near 0.

    Returns (layers, params, X, y)."""
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt])
        layers = [dense(3, 4, activation, True, random_bn(bn_mode, 4, rng)),
                  dense(4, 3, activation, False, random_bn(bn_mode, 3, rng)),
                  dense(3, 2, "identity", True, None)]
        params = random_params(layers, rng)
        X = rng.normal(0, 1, (m, 3))
        y = rng.normal(0, 1, (m, 2))
        _, Zs = manual_forward(layers, params, X)
        if activation != "relu" or min(np.min(np.abs(Z)) for Z in Zs[:2]) > RELU_MARGIN:
            return layers, params, X, y
    raise AssertionError("no data without ReLU pre-activations near 0 in 100 draws")


# ---------------------------------------------------------------- sections 6-10 by hand


def _phi(activation, Z):
    if activation == "identity":
        return Z
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    if activation == "tanh":
        return np.tanh(Z)
    return np.maximum(Z, 0)


def manual_forward_ext(layers, params, X, noise=None, running=None):
    """The forward pass of docs/math/networks.md sections 7-10, written independently of
    bnfast.reference: BN norms, noise, inference with running statistics, residual
    blocks.

    noise : None or {index of the Dense layer in network order: (s, m)}, z <- s z + m.
    running : None (batch statistics) or (running_mean, running_var), one array per BN
        layer in network order.
    Returns (outputs, records): per Dense layer in network order a dict with H and Z
    (the activation's input) and, for BN in training mode, mu and s2 (s^2).
    """
    params = np.asarray(params, dtype=np.float64)
    A, pos, records, k = np.asarray(X, dtype=np.float64), 0, [], 0
    for entry in layers:
        block = entry["residual"] if "residual" in entry else [entry]
        block_input = A
        for d in block:
            n_in, n_out = d["in_features"], d["out_features"]
            W = params[pos:pos + n_in * n_out].reshape(n_out, n_in)
            pos += n_in * n_out
            H = A @ W.T
            if d["bias"]:
                H = H + params[pos:pos + n_out]
                pos += n_out
            rec = {"H": H}
            Z = H
            norm = d["batch_norm"]
            if norm is not None:
                if norm["trainable"]:
                    gamma = params[pos:pos + n_out]
                    beta = params[pos + n_out:pos + 2 * n_out]
                    pos += 2 * n_out
                else:
                    gamma = np.broadcast_to(np.asarray(norm["gamma"], float), (n_out,))
                    beta = np.broadcast_to(np.asarray(norm["beta"], float), (n_out,))
                if running is None:
                    kind = norm.get("norm", "std")
                    mu = H.mean(axis=0)
                    s2 = {"std": lambda: ((H - mu) ** 2).mean(axis=0),
                          "l1": lambda: np.abs(H).mean(axis=0) ** 2,
                          "l2": lambda: (H ** 2).mean(axis=0),
                          "linf": lambda: np.abs(H).max(axis=0) ** 2}[kind]()
                    rec["mu"], rec["s2"] = mu, s2
                    Z = gamma * (H - mu) / np.sqrt(s2 + norm["eps"]) + beta
                else:
                    mean, var = running[0][k], running[1][k]
                    Z = gamma * (H - mean) / np.sqrt(var + norm["eps"]) + beta
                k += 1
                if noise is not None and len(records) in noise:
                    s, m = noise[len(records)]
                    Z = s * Z + m
            rec["Z"] = Z
            records.append(rec)
            A = _phi(d["activation"], Z)
        if "residual" in entry:
            A = A + block_input
    assert pos == params.size, "manual_forward_ext did not consume every parameter"
    return A, records


def central_gradient(fun, params, h=1e-6):
    """Central differences of the scalar (or array) function fun at params."""
    params = np.asarray(params, dtype=np.float64)
    columns = []
    for k in range(params.size):
        e = np.zeros_like(params)
        e[k] = h
        up, down = np.asarray(fun(params + e)), np.asarray(fun(params - e))
        columns.append((up - down) / (2 * h))
    return np.stack(columns, axis=-1) if np.ndim(columns[0]) else np.array(columns)


def smooth_margin(layers, params, X):
    """How far the draw is from the non-smooth points of the lp norms and ReLU: the
    smallest |h| of an l1 layer, the gap between the two largest |h| of a column of a
    linf layer, the smallest |z| of a ReLU layer (inf when none applies)."""
    _, records = manual_forward_ext(layers, params, X)
    margin = np.inf
    for d, rec in zip(flat(layers), records):
        kind = d["batch_norm"].get("norm", "std") if d["batch_norm"] else None
        if kind == "l1":
            margin = min(margin, np.min(np.abs(rec["H"])))
        if kind == "linf":
            top = np.sort(np.abs(rec["H"]), axis=0)
            margin = min(margin, np.min(top[-1] - top[-2]))
        if d["activation"] == "relu":
            margin = min(margin, np.min(np.abs(rec["Z"])))
    return margin
