"""The network maths of docs/math/networks.md in plain NumPy (the oracle).

A layer maps A (m, in) to phi(N(A W^T + b)), N its normalization (none, batch
normalization with statistics per column over the m rows, or layer or group
normalization with statistics per row); the loss is sum_i ||y_i - f(x_i)||^2 ("sum")
or that divided by m ("mean"), or the cross-entropy of the outputs as logits against
class labels y_i, sum_i logsumexp(f(x_i)) - f(x_i)[y_i] ("cross_entropy_sum") or that
divided by m ("cross_entropy", PyTorch's F.cross_entropy). A network is a list of
entries, each a layer dict or a residual block. A Dense layer dict (the format of
bnfast.Dense.to_dict(); optionally with "type": "dense"):

    {"in_features": int, "out_features": int,
     "activation": "identity" | "sigmoid" | "tanh" | "relu", "bias": bool,
     and exactly one of
     "normalization": None or one of
        {"kind": "batch", <the batch_norm keys below>}
        {"kind": "layer", "gamma", "beta", "trainable", "eps", optional "norm": "std"}
        {"kind": "group", "groups": int >= 1 dividing out_features,
         "gamma", "beta", "trainable", "eps", optional "norm": "std"}
     "batch_norm" (legacy; means kind "batch"):
        None or {"gamma": float or (out,), "beta": float or (out,),
                 "trainable": bool, "eps": float >= 0,
                 optional:
                 "momentum": float in (0, 1] or None   (default 0.1),
                 "norm": "std" | "l1" | "l2" | "linf"  (default "std"),
                 "noise": None or {"n_mu": >= 0, "n_sigma": >= 1,
                                   "r_mu": >= 0, "r_sigma": >= 0}},
     optional "noise": None or a noise dict as above, only with normalization None:
        the same noise on the layer's pre-activation H (the noisy-bn experiment's control)}

with gamma, beta, trainable and eps meaning the same for every kind. Kind "layer" is
PyTorch's nn.LayerNorm(out) on each row of the pre-activation H (m, out); kind "group"
is nn.GroupNorm(groups, out) on H as (m, out) (contiguous groups of out/groups
features, statistics per row and group, gamma and beta per feature); neither has
running statistics, momentum or noise (section 14).

Convolutional networks (section 17) take X (m, C, L) or (m, C, H, W), PyTorch's layout,
with the layer dicts (sizes are lists with one int per spatial dimension, [k] or
[kh, kw]; every conv and pool layer of a network has the same number):

    {"type": "conv", "in_channels": int, "out_channels": int,
     "kernel_size": [k...] >= 1, "stride": [s...] >= 1, "padding": [p...] >= 0,
     "activation": ..., "bias": bool, "normalization" or "batch_norm" as above,
     optional "noise" as above}
        phi(N(conv(A, W) + b)): PyTorch's F.conv1d / F.conv2d (a cross-correlation,
        zero padding p on both sides), W (out_channels, in_channels, *kernel_size).
        N per channel: kind "batch" over the batch and the positions (BatchNorm1d/2d;
        norms, momentum and running statistics as for Dense, the unbiased variance
        with the count m * positions; noise per sample and channel); kind "layer" is
        GroupNorm(1, out_channels) and kind "group" nn.GroupNorm(groups,
        out_channels): per sample over groups of channels and all their positions,
        gamma and beta per channel.
    {"type": "maxpool" | "avgpool", "kernel_size": [k...], "stride": [s...] or None}
        PyTorch's max_pool / avg_pool with padding 0 and floor output sizes; stride
        None means kernel_size. Max pool: the first maximal entry of a window in
        row-major scan order is its maximum (it gets the gradient); a NaN in a window is
        its maximum. Avg pool divides by prod(kernel_size).
    {"type": "flatten"}
        (m, C, *) -> (m, C * prod(*)), row-major (torch.flatten(x, 1)).

Output sizes per dimension: floor((n + 2p - k)/s) + 1, at least 1. The spatial sizes
are checked when X is seen (ValueError naming the layer): a conv layer's in_channels
are its input's channels, a dense layer after a flatten has in_features C * prod(*),
a dense layer needs (m, features) inputs. The losses and accuracy need (m, k) outputs
(a network ending with a dense or flatten layer); forward and predict return the last
layer's output whatever its shape.

Or a residual block {"residual": [dense or conv layer dicts]} (no nesting, no pools or
flatten; its output of the same shape as its input, checked: feature or channel counts
with the dicts, spatial sizes with X) mapping x to x + block(x), the sum after the last
layer's activation.

The flat float64 parameter vector runs layer by layer, a block's layers in place: W
(out, in) row-major (conv: (out_channels, in_channels, *kernel_size) row-major), then
b (out,) if bias, then gamma, beta (out,) each if the normalization (any kind) is
trainable; pools and flatten have none. A constant normalization uses the dict's gamma
and beta. "The BN layers in network order" are the layers (dense or conv) with a
normalization of kind "batch" in this flat order; running statistics are lists with
one (out,) array (out_channels for conv) per BN layer. Layer and group normalizations
use each row's statistics in training and in inference (network_predict) alike.

Noise (section 8) enters only training (train); forward, loss, gradient, hvp and predict
are noise free. A draw (s, m) per sample and unit, z <- s z + m after the normalization
(without one: on H), before phi; on a conv layer the unit is the channel, its draw
shared by all positions of the sample's channel.
"""

import numpy as np

from ._checks import (POOLS, check_layers, check_params, class_labels, direction,
                      learning_set, num_params, reduction, running_stats, weight_shape)
from .bn_layer import batch_moments, infer, normalize, normalize_backward
from .conv import conv_backward, conv_forward, pool_backward, pool_forward
from .losses import MEAN_LOSSES, loss_sum, loss_sum_and_gradient
from .row_norm import normalize_rows, normalize_rows_backward

__all__ = ["network_accuracy", "network_forward", "network_loss", "network_gradient",
           "network_hvp", "network_predict", "param_count"]

# Complex-safe (network_hvp evaluates the gradient at complex parameters).
_PHI = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "tanh": np.tanh,
    # max(0, z), NaN kept (as np.maximum does) so that a diverged value stays visible
    "relu": lambda z: np.where((z.real > 0) | np.isnan(z.real), z, 0.0),
}

# phi'(z) from z and a = phi(z)
_DPHI = {
    "identity": lambda z, a: np.ones(z.shape),
    "sigmoid": lambda z, a: a * (1.0 - a),
    "tanh": lambda z, a: 1.0 - a * a,
}


def _chain(activation, dA, Z, A):
    """dA phi'(Z). ReLU's is PyTorch's threshold_backward: exactly 0 where Re Z <= 0 (so
    a NaN or inf from downstream stops at a unit that is off), dA where Re Z > 0 or Z is
    NaN."""
    if activation == "relu":
        return np.where(Z.real <= 0, 0.0, dA)
    return dA * _DPHI[activation](Z, A)

HVP_STEP = 1e-30  # the complex step h of network_hvp


def unpack(layers, vector):
    """Views into a flat vector (params or a gradient), one dict per layer with the
    entries the layer has: W (out, in) or (out_channels, in_channels, *kernel), b (out,),
    gamma (out,), beta (out,); {} for pools and flatten."""
    views, pos = [], 0

    def take(shape):
        nonlocal pos
        size = int(np.prod(shape))
        view = vector[pos:pos + size].reshape(shape)
        pos += size
        return view

    for layer in layers:
        v = {}
        if layer.type in ("dense", "conv"):
            n_out = layer.out_features
            v["W"] = take(weight_shape(layer))
            if layer.bias:
                v["b"] = take((n_out,))
            if layer.bn is not None and layer.bn.trainable:
                v["gamma"], v["beta"] = take((n_out,)), take((n_out,))
        views.append(v)
    assert pos == vector.size
    return views


def per_channel(v, ndim):
    """A per-channel (C,) array broadcastable against (m, C, *positions) of ``ndim``
    dimensions ((C,) itself for ndim 2)."""
    return v.reshape((-1,) + (1,) * (ndim - 2))


def per_sample_channel(a, ndim):
    """A (m, C) array of one value per sample and channel broadcastable against
    (m, C, *positions) of ``ndim`` dimensions (the noise draws of a conv layer)."""
    return a.reshape(a.shape + (1,) * (ndim - 2))


def by_channel(H):
    """(m, C, *P) -> (m * prod(P), C): one row per (sample, position), so that batch
    normalization's statistics per column are those of a channel over the batch and the
    positions (H itself for a dense layer's (m, C))."""
    return np.moveaxis(H, 1, -1).reshape(-1, H.shape[1])


def from_channels(R, shape):
    """by_channel's inverse: (m * prod(P), C) -> ``shape`` (m, C, *P)."""
    return np.moveaxis(R.reshape((shape[0],) + shape[2:] + (shape[1],)), -1, 1)


def _gamma_beta(layer, v):
    return (v["gamma"], v["beta"]) if layer.bn.trainable else (layer.bn.gamma,
                                                               layer.bn.beta)


def forward_tape(layers, params, X, noise=None, running=None):
    """Every intermediate value, one dict per layer (the backward pass needs them).

    layers are checked (_checks.Layer), params float64 (or complex) of the right length.
    noise : None or {flat layer index: (s, m)}, (m, out) arrays applied as z <- s z + m
        after gamma and beta, or to H on a layer without normalization (training only);
        on a conv layer (m, out_channels), each entry applied to all positions of its
        sample and channel.
    running : None (training: batch statistics) or (running_mean, running_var), lists
        with one array per BN layer (inference). Layer and group normalizations use the
        statistics of each row in both modes.

    A conv layer's pre-activation H is (m, O, *out): batch normalization normalizes
    each channel over the batch and the positions (by_channel), layer and group
    normalization each sample over all positions of a group of channels (nn.GroupNorm
    on (m, O, *out): contiguous in the row-major (m, O * positions) view).
    """
    tape, A, skip, j = [], X, None, 0
    for index, (layer, v) in enumerate(zip(layers, unpack(layers, params))):
        rec = {"input": A}
        tape.append(rec)
        if layer.type in POOLS:
            A, rec["arg"] = pool_forward(A, layer.type, layer.kernel, layer.stride)
            rec["A"] = A
            continue
        if layer.type == "flatten":
            A = rec["A"] = A.reshape(A.shape[0], -1)
            continue
        if layer.block_start:
            skip = A
        if layer.type == "conv":
            H, rec["padded"] = conv_forward(A, v["W"], layer.stride, layer.padding)
        else:
            H = A @ v["W"].T
        if layer.bias:
            H = H + per_channel(v["b"], H.ndim)
        rec["H"], rec["W"] = H, v["W"]
        Z = H
        if layer.bn is not None:
            gamma, beta = _gamma_beta(layer, v)
            where = f"layer {index}"
            if layer.bn.kind != "batch":
                zhat, rec["cache"] = normalize_rows(H.reshape(H.shape[0], -1), layer.bn,
                                                    where)
                rec["zhat"] = zhat.reshape(H.shape)
            else:
                if running is None:
                    zhat, rec["cache"] = normalize(by_channel(H), layer.bn, where)
                else:
                    zhat = infer(by_channel(H), layer.bn, running[0][j], running[1][j],
                                 where)
                rec["zhat"] = from_channels(zhat, H.shape)
                j += 1
            rec["gamma"] = gamma
            Z = per_channel(gamma, H.ndim) * rec["zhat"] + per_channel(beta, H.ndim)
        if noise is not None and index in noise:
            s, m = (per_sample_channel(a, Z.ndim) for a in noise[index])
            rec["noise_s"] = s
            Z = s * Z + m
        a = _PHI[layer.activation](Z)
        rec["Z"], rec["a"] = Z, a
        A = a + skip if layer.block_end else a
        rec["A"] = A
    return tape


def _normalization_backward(layer, rec, dZ):
    """(dH, dgamma, dbeta) of the layer's normalization from dZ = dLoss/dZ."""
    H, zhat, gamma = rec["H"], rec["zhat"], rec["gamma"]
    if layer.bn.kind == "batch":
        dH, dgamma, dbeta = normalize_backward(by_channel(dZ), by_channel(H),
                                               by_channel(zhat), rec["cache"], gamma,
                                               layer.bn.norm)
        return from_channels(dH, H.shape), dgamma, dbeta
    # per sample: the (m, O * positions) view, gamma repeated over each channel's
    # positions; dgamma and dbeta per channel are the sums over its positions
    m, n_out = H.shape[:2]
    positions = H.size // (m * n_out)
    dH, dgamma, dbeta = normalize_rows_backward(dZ.reshape(m, -1), zhat.reshape(m, -1),
                                                rec["cache"], np.repeat(gamma, positions),
                                                layer.bn.groups)
    return (dH.reshape(H.shape), dgamma.reshape(n_out, positions).sum(axis=1),
            dbeta.reshape(n_out, positions).sum(axis=1))


def backprop(layers, params, X, y, loss="sum", noise=None):
    """(loss, gradient, tape) on checked arguments: backpropagation of docs/math/
    networks.md section 4, with the BN variants (section 7), noise as a constant
    (section 8), residual blocks (section 10), layer and group normalization (section
    14), the cross-entropy losses (section 15; y then int64 labels) and conv, pool and
    flatten layers (section 17). The mean forms ("mean", "cross_entropy") divide loss
    and gradient by m = X.shape[0]. Complex params give complex results (the complex
    step)."""
    tape = forward_tape(layers, params, X, noise)
    F = tape[-1]["A"]
    value, dA = loss_sum_and_gradient(F, y, loss)
    grad = np.zeros_like(params)
    dskip = None
    grads = unpack(layers, grad)
    for layer, rec, g in zip(reversed(layers), reversed(tape), reversed(grads)):
        if layer.type in POOLS:
            dA = pool_backward(dA, rec["input"].shape, layer.type, layer.kernel,
                               layer.stride, rec["arg"])
            continue
        if layer.type == "flatten":
            dA = dA.reshape(rec["input"].shape)
            continue
        if layer.block_end:
            dskip = dA  # the block's output gradient also reaches its input unchanged
        dH = _chain(layer.activation, dA, rec["Z"], rec["a"])
        if "noise_s" in rec:  # the draws are constants
            dH = dH * rec["noise_s"]
        if layer.bn is not None:
            dH, dgamma, dbeta = _normalization_backward(layer, rec, dH)
            if "gamma" in g:
                g["gamma"][...], g["beta"][...] = dgamma, dbeta
        if layer.type == "conv":
            dA, g["W"][...] = conv_backward(dH, rec["padded"], rec["W"], layer.stride,
                                            layer.padding)
            if "b" in g:
                g["b"][...] = dH.sum(axis=(0,) + tuple(range(2, dH.ndim)))
        else:
            g["W"][...] = dH.T @ rec["input"]
            if "b" in g:
                g["b"][...] = dH.sum(axis=0)
            dA = dH @ rec["W"]
        if layer.block_start:
            dA = dA + dskip
    if loss in MEAN_LOSSES:
        m = X.shape[0]
        value, grad = value / m, grad / m
    return value, grad, tape


def loss_of(layers, params, X, y, loss="sum"):
    """The noise-free loss on checked arguments, a float."""
    value = loss_sum(forward_tape(layers, params, X)[-1]["A"], y, loss)
    return float(value / X.shape[0] if loss in MEAN_LOSSES else value)


def loss_and_gradient(layers, params, X, y, loss="sum", noise=None):
    """(loss as a float, gradient) on checked real arguments."""
    value, grad, _ = backprop(layers, params, X, y, loss, noise)
    return float(value), grad


def batch_statistics(layers, tape):
    """[(mu_B, v_B)] per BN layer in network order, from a training tape (section 9);
    a conv layer's statistics run over the batch and the positions, so the unbiased
    variance's count is m times the positions (section 17)."""
    return [batch_moments(rec["cache"], layer.bn.norm, rec["H"].size // rec["H"].shape[1])
            for layer, rec in zip(layers, tape)
            if layer.bn is not None and layer.bn.kind == "batch"]


def param_count(layers):
    """The number of parameters of a network described by ``layers`` (list of dicts)."""
    return num_params(check_layers(layers))


def network_forward(layers, params, X):
    """Outputs f(X), float64 (m, out_features) (or the last layer's (m, C, *) when the
    network ends with a conv or pool layer), batch statistics over the rows of X
    (training mode, no noise).

    layers : list of layer dicts; params : (param_count(layers),); X : (m, in_features),
    or (m, C, L) / (m, C, H, W) for a network with conv or pool layers.
    """
    layers = check_layers(layers)
    params = check_params(layers, params)
    X = learning_set(layers, X)
    return forward_tape(layers, params, X)[-1]["A"]


def network_predict(layers, params, X, running_mean, running_var):
    """Inference outputs (section 9), float64 (m, out_features), any m >= 1: every BN
    layer maps h to gamma (h - running_mean)/sqrt(running_var + eps) + beta (whatever
    its norm; per channel on a conv layer), rows do not interact, no noise. Layer and
    group normalizations normalize each row by its own statistics, as in training.

    running_mean, running_var : lists with one (out,) array (out_channels for a conv
        layer) per BN layer in network
        order (TrainResult.running_mean / running_var), or None for the initial zeros
        and ones. eps == 0 with a zero running_var raises ValueError.
    """
    layers = check_layers(layers)
    params = check_params(layers, params)
    X = learning_set(layers, X, training=False)
    running = running_stats(layers, running_mean, running_var)
    return forward_tape(layers, params, X, running=running)[-1]["A"]


def network_accuracy(layers, params, X, y, running_mean=None, running_var=None):
    """The fraction of rows whose largest inference output (network_predict; the first
    one at ties) is the class label y_i, a float in [0, 1].
    y : (m,) class labels in [0, out_features), ints or floats with integral values."""
    F = network_predict(layers, params, X, running_mean, running_var)
    if F.ndim != 2:
        raise ValueError(f"the network's outputs have shape {F.shape}, but accuracy needs "
                         "outputs (m, classes): end the network with a flatten or a dense "
                         "layer")
    labels = class_labels(y, F.shape[0], F.shape[1])
    return float(np.mean(np.argmax(F, axis=1) == labels))


def network_loss(layers, params, X, y, loss="sum"):
    """The loss, a float: sum_i ||y_i - f(x_i)||^2 ("sum") or that divided by m
    ("mean"), with y (m, out_features), or (m,) when out_features == 1; or
    sum_i logsumexp(f(x_i)) - f(x_i)[y_i] ("cross_entropy_sum") or that divided by m
    ("cross_entropy", PyTorch's F.cross_entropy), with y (m,) class labels in
    [0, out_features), ints or floats with integral values."""
    loss = reduction(loss)
    layers = check_layers(layers)
    params = check_params(layers, params)
    X, y = learning_set(layers, X, y, loss=loss)
    return loss_of(layers, params, _scale_free(layers, X), y, loss)


def _scale_free(layers, X):
    """X 2^-e when the training loss is the same function of params for X and 2^k X
    and X's largest magnitude is outside [2^-512, 2^512] (else X): d loss / d H is ~1/|H|
    and overflows for data near double's smallest numbers, and the complex step's
    imaginary parts underflow for data near its largest. Invariant: the first layer is
    dense or conv, normalized right after with eps == 0, by BN with the std scale (the
    centring removes the bias) or by any normalization without a bias, and no residual
    block starts at the input (networks.md section 7)."""
    first = layers[0]
    bn = first.bn
    if (first.type not in ("dense", "conv") or bn is None or bn.eps != 0
            or first.block_start
            or not ((bn.kind == "batch" and bn.norm == "std") or not first.bias)):
        return X
    largest = float(np.max(np.abs(X))) if X.size else 0.0
    if not (np.isfinite(largest) and largest > 0) or 2.0 ** -512 <= largest <= 2.0 ** 512:
        return X
    return np.ldexp(X, -int(np.frexp(largest)[1]))


def network_gradient(layers, params, X, y, loss="sum"):
    """d loss / d params, float64 (param_count(layers),), in the order of params."""
    loss = reduction(loss)
    layers = check_layers(layers)
    params = check_params(layers, params)
    X, y = learning_set(layers, X, y, loss=loss)
    return loss_and_gradient(layers, params, _scale_free(layers, X), y, loss)[1]


def network_hvp(layers, params, X, y, v, loss="sum"):
    """(d^2 loss / d params^2) v, float64 (param_count(layers),): the Hessian of the
    training-mode loss (batch statistics are functions of params) times v, by the
    complex step (section 11): Im gradient(params + i h v) / h with h = 1e-30. No
    difference is taken, so the result is exact to rounding.

    v : real, finite, (param_count(layers),). It is scaled to max |v| = 1 for the step
    (the product is linear in v), so that h v stays far below the parameters.
    """
    loss = reduction(loss)
    layers = check_layers(layers)
    params = check_params(layers, params)
    X, y = learning_set(layers, X, y, loss=loss)
    v = direction(v, params.size)
    scale = float(np.max(np.abs(v))) if v.size else 0.0
    scale = scale or 1.0  # v = 0 still evaluates (and checks) the network
    _, grad, _ = backprop(layers, params + 1j * HVP_STEP * (v / scale), _scale_free(layers, X),
                          y, loss)
    return grad.imag / HVP_STEP * scale

