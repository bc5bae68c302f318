"""The relative error the network tests measure, and a forward pass written straight from docs/math/networks.md, shared by the nn and the
reference tests. It reads the flat parameter vector itself (layer by layer: W (out, in)
row-major, b if bias, gamma and beta if batch_norm is trainable) and shares no code with
bnfast. Layers may be bnfast.Dense objects or Dense.to_dict() dicts: the field names are
the same."""

import numpy as np


def rel_err(actual, expected):
    """max |actual - expected| / max |expected| (norm-wise relative error)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.max(np.abs(expected))
    assert scale > 0, "relative error against an all-zero expectation"
    return float(np.max(np.abs(actual - expected)) / scale)


def _field(obj, name):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def manual_forward(layers, params, X):
    """(outputs, [per layer the activation's input Z (m, out)]).

    Order of params: layer by layer, W (out, in) row-major, b if bias, gamma and beta if
    batch_norm is trainable; a constant batch_norm uses the layer's own gamma and beta.
    """
    params = np.asarray(params, dtype=np.float64)
    A, pos, Zs = np.asarray(X, dtype=np.float64), 0, []
    for d in layers:
        n_in, n_out = _field(d, "in_features"), _field(d, "out_features")
        W = params[pos:pos + n_in * n_out].reshape(n_out, n_in)
        pos += n_in * n_out
        H = A @ W.T
        if _field(d, "bias"):
            H = H + params[pos:pos + n_out]
            pos += n_out
        Z = H
        norm = _field(d, "batch_norm")
        if norm is not None:
            if _field(norm, "trainable"):
                gamma = params[pos:pos + n_out]
                beta = params[pos + n_out:pos + 2 * n_out]
                pos += 2 * n_out
            else:
                gamma = np.broadcast_to(np.asarray(_field(norm, "gamma"), dtype=float), (n_out,))
                beta = np.broadcast_to(np.asarray(_field(norm, "beta"), dtype=float), (n_out,))
            mu = H.mean(axis=0)
            var = ((H - mu) ** 2).mean(axis=0)
            Z = gamma * (H - mu) / np.sqrt(var + _field(norm, "eps")) + beta
        Zs.append(Z)
        activation = _field(d, "activation")
        if activation == "identity":
            A = Z
        elif activation == "sigmoid":
            A = 1 / (1 + np.exp(-Z))
        elif activation == "tanh":
            A = np.tanh(Z)
        else:
            A = np.maximum(Z, 0)
    assert pos == params.size, "manual_forward did not consume every parameter"
    return A, Zs
