"""Gradient explosion at initialization in deep BN networks (Yang, Pennington, Rao,
Sohl-Dickstein and Schoenholz, "A Mean Field Theory of Batch Normalization", ICLR 2019,
arXiv:1902.08129, Theorems 8 and 9 and section "Gradient explosion"; the Wikipedia
"Batch normalization" article's sentence about it is the seed).

The claim: in a deep, wide BN network at random initialization (gamma = 1, beta = 0,
eps = 0, batch of B samples), going down the network the SQUARED gradient norm of a
layer's weights grows by a factor lambda(B) per layer, so that a deep BN network without
skip connections is untrainable; residual connections relieve it. docs/experiments/explosion.md
has the closed forms; the mean-field statement is a limit of infinite width at fixed B.

    linear:   lambda(B) = (B - 2) / (B - 3)
    ReLU:     lambda(B) = (J'(c) + (B - 1) J(1)) / ((B - 3)(J(1) - J(c))) - 1/(B - 3)
              J(c) = (sqrt(1 - c^2) + (pi - arccos c) c) / pi,
              J'(c) = (pi - arccos c) / pi,  c = -1/(B - 1)
    tanh:     no closed form here (predicted None)

Set-up: ``depth`` layers x -> phi(BN(W x)) of width N (no bias: BN's centring removes
it; gamma, beta constants 1 and 0; eps = 0, the exact transform, which the engine
allows), W ~ N(0, 1/N) (the engine's default draw; Yang et al. use N(0, sigma_w^2/N), and
at eps = 0 BN makes the network invariant to sigma_w), then a linear read-out Dense(N, N)
without BN and the squared loss against Gaussian targets; inputs Gaussian (B, N). The
measurement: per BN layer l, ||dL/dW_l||_F^2 from one backward pass; the growth rate is
exp(-slope) of the least-squares line through log ||dL/dW_l||^2 against l over the layers
at least ``skip`` away from both ends (the ends carry the input's and the loss's
transients; the rate far from the top does not depend on the loss). The residual variant
wraps every layer in bnfast.Residual (x -> x + phi(BN(W x))), same weights.

Version 3 (issue 28; docs/experiments/README.md, "Version 2 set-ups") judges the rate
extrapolated to infinite width instead of one finite width. The networks themselves (bnfast.Network, the
engine) run at width 512, where they give the residual comparison, the profiles and a
check of the draws below; the widths 512 to 65536 of the extrapolation come from
``sampled_squared_gradient_norms``, which draws the same per-layer norms as the network
by Gaussian conditioning at O(depth N B^2) work instead of O(depth N^2) (a width-4096,
depth-30 network holds 31 x 4096^2 doubles, 4.2 GB, and its gradient as much again).
"""

import math

import numpy as np

from .._validate import choice, integer
from ..nn import BatchNorm, Dense, Network, Residual
from .result import combine
from ..executors import one_blas_thread
from .spec import Experiment, derived_seed
from .stats import t_quantile

__all__ = ["ACTIVATIONS", "EXPERIMENT", "LAMBDA_RELU_LIMIT", "bn_network",
           "correction_exponent", "extrapolate", "fit_rate", "judge_deviation",
           "lambda_linear", "lambda_relu", "layer_squared_gradient_norms",
           "predicted_rate", "sampled_squared_gradient_norms"]

#: The activations of the experiment and the engine's name for each.
ACTIVATIONS = {"linear": "identity", "relu": "relu", "tanh": "tanh"}
#: lim_{B -> inf} lambda_relu(B) = pi / (pi - 1).
LAMBDA_RELU_LIMIT = math.pi / (math.pi - 1.0)
#: The plain nets whose measured rate is at least this explode (1.3^20 ~ 190x over a
#: 20-layer fit), so that there is an explosion for residual connections to relieve.
#: Chosen away from every predicted lambda(B) of the grids (B = 4, 8, 16, 64, 256), so
#: that which nets are judged does not hang on seed noise: linear 2, 1.2, 1.077, 1.016,
#: 1.004 and ReLU 3.08, 1.79, 1.59, 1.49, 1.47 (all >= pi/(pi-1) = 1.467); 1.3 lies
#: between linear B = 8 (1.2 exactly) and the smallest ReLU value, >= 8% from each.
EXPLODING_RATE = 1.3
#: How many standard errors of the paired per-init differences the residual rule asks.
SIGMAS = 3.0
#: The tolerance on the extrapolated exponent: |log rate_inf - log lambda(B)| < this
#: fraction of log lambda(B). 10% of the exponent: the predicted explosion lambda^L over
#: L layers is right to within a factor lambda^(L/10); it tells lambda(B) apart from the
#: readings it is confused with (the norm reading halves the exponent, no explosion
#: zeroes it) and from lambda at the neighbouring batch sizes of the grid (the closest,
#: ReLU B = 16 and 64, are 14% apart in log).
TOLERANCE_FRACTION = 0.1
#: Each one-sided test at this level: the decision interval is the two-sided 90% one.
ALPHA = 0.05
#: The network (the engine) and the Gaussian-conditioning draws at the network's width
#: must agree within this many standard errors of their difference.
METHOD_CHECK_SIGMAS = 4.0
#: The extrapolation's design per batch size: the widths measured (each >= 512 and up
#: to 65536 at B = 4) and the random inits at each width.
EXTRAPOLATION = {
    "4": {"widths": [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536], "inits": 24},
    "8": {"widths": [512, 1024, 2048, 4096, 8192, 16384, 32768], "inits": 10},
    "16": {"widths": [512, 1024, 2048, 4096, 8192, 16384], "inits": 10},
    "64": {"widths": [512, 1024, 2048, 4096, 8192, 16384], "inits": 10},
}
#: Version 3's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"replicates": 10, "width": 512, "depth": 30, "skip": 5,
               "batch_sizes": [4, 8, 16, 64, 256], "residual_batch_sizes": [4, 8, 16, 64],
               "sigmas": SIGMAS, "exploding_rate": EXPLODING_RATE,
               "extrapolation": EXTRAPOLATION, "min_width_per_batch": 16,
               "tolerance_fraction": TOLERANCE_FRACTION, "alpha": ALPHA,
               "method_check_sigmas": METHOD_CHECK_SIGMAS, "alternative_skip": 8,
               "bootstrap_resamples": 2000}
#: The setting of the verdict: the claim is a theorem of the infinite-width limit; the
#: rule judges the rates of depth-30 nets extrapolated to it from finite widths.
SETTING = ("random BN networks of depth 30 at initialization, rates extrapolated to "
           "infinite width from widths 512-65536")
#: The alternative summaries of the fragility line -> their options.
ALTERNATIVES = {
    "correction ~ 1/width at every B": {"exponent": 1.0},
    "correction ~ 1/sqrt(width) at every B": {"exponent": 0.5},
    "bootstrap interval over inits": {"bootstrap": True},
    "rate fitted 8 or more layers from either end": {"skip": "alternative"},
    "largest width alone, no extrapolation": {"largest_only": True},
}


def _batch_size(B):
    """B as an int >= 4 (the closed forms have a pole at B = 3)."""
    return integer(B, "the batch size B of the closed forms", 4)


def lambda_linear(B):
    """Yang et al.'s per-layer growth of the squared weight-gradient norm of a deep
    linear BN network, (B - 2)/(B - 3), for batch size B >= 4 (int)."""
    B = _batch_size(B)
    return (B - 2) / (B - 3)


def lambda_relu(B):
    """Yang et al.'s per-layer growth for ReLU (Theorem 8 with alpha = 1), B >= 4:
    (J'(c) + (B-1) J(1)) / ((B-3)(J(1) - J(c))) - 1/(B-3) at c = -1/(B-1), with the
    normalized arc-cosine kernel J(c) = (sqrt(1-c^2) + (pi - arccos c) c)/pi (J(1) = 1)
    and J'(c) = (pi - arccos c)/pi. Tends to pi/(pi - 1) as B -> inf."""
    B = _batch_size(B)
    c = -1.0 / (B - 1)
    J_c = (math.sqrt(1.0 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    dJ_c = (math.pi - math.acos(c)) / math.pi
    return (dJ_c + (B - 1)) / ((B - 3) * (1.0 - J_c)) - 1.0 / (B - 3)


def predicted_rate(activation, B):
    """lambda(B) for "linear" or "relu"; None for "tanh" (no closed form here)."""
    choice(activation, "activation", ACTIVATIONS)
    return {"linear": lambda_linear, "relu": lambda_relu}.get(
        activation, lambda _: None)(B)


def correction_exponent(B):
    """p in the finite-width form log rate(N) = log rate_inf + c N^-p, for batch size
    B >= 4: min(1, (B - 3)/2).

    Why. Going down one layer the squared gradient is multiplied by a mean over the N
    units of terms proportional to 1/sigma_j^2, sigma_j^2 the batch variance of unit j,
    which at the mean-field fixed point is a multiple of chi^2 with B - 1 degrees of
    freedom: 1/sigma_j^2 has a power tail of index a = (B - 1)/2 (its mean is finite
    for B > 3, the pole of lambda(B); its variance for B > 5). The log of a mean of N
    such terms is biased by O(N^(1 - a)) while 1 < a < 2 (the rare units with a tiny
    sigma), and by the ordinary O(1/N) of a smooth function of means once the variance
    is finite. So p = 1/2 at B = 4 and p = 1 from B = 5 on (B = 5: 1/N up to a log).
    The pilot (docs/experiments/explosion.md) agreed: at B = 4 the 1/sqrt(N) form fit
    ReLU and tanh (chi^2 9.0 and 15.4 on 6 dof) where 1/N did not (19.5, 25.1)."""
    B = _batch_size(B)
    return min(1.0, (B - 3) / 2.0)


def bn_network(width, depth, activation, residual=False, seed=0):
    """``depth`` BN layers x -> phi(BN(W x)) of width ``width`` (no bias, gamma 1 and
    beta 0 constant, eps 0), each wrapped in a Residual block when ``residual``, then
    a linear read-out Dense(width, width) without BN; W ~ N(0, 1/width) from ``seed``
    (the engine's default draw). The residual and plain nets of one seed have the same
    weights (the blocks add no parameters)."""
    def layer():
        return Dense(width, width, ACTIVATIONS[activation], bias=False,
                     batch_norm=BatchNorm(gamma=1.0, beta=0.0, trainable=False, eps=0.0))
    body = [Residual([layer()]) if residual else layer() for _ in range(depth)]
    return Network(body + [Dense(width, width, bias=False)], loss="sum", seed=seed)


def layer_squared_gradient_norms(net, X, Y):
    """||dL/dW_l||_F^2 for every Dense layer but the read-out, float64 (depth,), from
    one backward pass on the batch X (B, width), targets Y (B, width)."""
    grad = net.gradient(X, Y)
    return np.array([float(np.dot(grad[sl], grad[sl])) for sl in net.param_slices[:-1]])


def _activation(activation, u):
    """phi(u) and phi'(u) (None for the identity) of an (B, N) array."""
    if activation == "linear":
        return u, None
    if activation == "relu":
        return np.maximum(u, 0.0), (u > 0.0).astype(np.float64)
    t = np.tanh(u)
    return t, 1.0 - t * t


def _frame(h):
    """An orthonormal basis of the row space of h (B, N): (Qt (r, N) with orthonormal
    rows, coordinates C (B, r)) with h = C Qt; directions whose eigenvalue of h h^T is
    below 1e-10 of the largest are dropped (a linear BN layer's output has rows summing
    to zero: rank B - 1)."""
    s, U = np.linalg.eigh(h @ h.T)
    keep = s > 1e-10 * s[-1]
    Qt = (U[:, keep].T @ h) / np.sqrt(s[keep])[:, None]
    return Qt, h @ Qt.T


def sampled_squared_gradient_norms(X, Y, depth, activation, rng=None, residual=False,
                                   weights=None):
    """||dL/dW_l||_F^2, float64 (depth,), of bn_network(N, depth, activation, residual)
    at a random initialization W ~ N(0, 1/N), on the batch X (B, N) with targets Y
    (B, N): drawn from exactly the distribution of
    layer_squared_gradient_norms(bn_network(..., seed=<random>), X, Y), by Gaussian
    conditioning, with O(depth N B^2) work and memory instead of O(depth N^2).

    Why it is exact. Layer l sees its input h (B, N) only through W_l restricted to the
    row space of h: with Q (N, r) an orthonormal basis of it, z = h W_l^T = (h Q) A^T
    where A = W_l Q (N, r) has i.i.d. N(0, 1/N) entries (Q depends on the layers below
    only, which are independent of W_l). Backward, dL/dh = dz W_l = (dz A) Q^T +
    dz W_l (I - Q Q^T), and W_l (I - Q Q^T) is independent of A and of everything the
    forward and the layers above computed, so given dz (B, N) the second term is
    Gaussian with i.i.d. columns of covariance dz dz^T / N, projected off Q: it is drawn
    as C G (I - Q Q^T) with C C^T = dz dz^T / N and G (B, N) standard normal. The read-out
    is drawn the same way; the loss is sum ||F - Y||^2, so dL/dF = 2 (F - Y). Finally
    ||dL/dW_l||_F^2 = ||dz^T h||_F^2 = <dz dz^T, h h^T> (two B x B Gram matrices).

    rng : numpy Generator for the draws (A and G of every layer).
    weights : None (draw), or the depth + 1 weight matrices (N, N) of a network (as
        Dense stores them, (out, in)): the same algebra with A = W_l Q and
        dz W_l (I - Q Q^T) computed from them gives that network's norms up to rounding
        (tests check it against the engine).
    """
    X = np.asarray(X, dtype=np.float64)
    B, N = X.shape
    choice(activation, "activation", ACTIVATIONS)

    def restricted(Qt, layer):                       # A = W_layer Q, (N, r)
        if weights is not None:
            return np.asarray(weights[layer], dtype=np.float64) @ Qt.T
        return rng.standard_normal((N, Qt.shape[0])) * (1.0 / math.sqrt(N))

    def off_frame(d, Qt, layer):                     # d W_layer (I - Q Q^T), (B, N)
        if weights is not None:
            M = d @ np.asarray(weights[layer], dtype=np.float64)
        else:
            s, U = np.linalg.eigh(d @ d.T)
            M = (U * np.sqrt(np.clip(s, 0.0, None) / N)) @ rng.standard_normal((B, N))
        return M - (M @ Qt.T) @ Qt

    h, tape = X, []
    for layer in range(depth):
        Qt, C = _frame(h)
        A = restricted(Qt, layer)
        z = C @ A.T
        centred = z - z.mean(axis=0)
        std = np.sqrt((centred * centred).mean(axis=0))
        u = centred / std
        a, slope = _activation(activation, u)
        tape.append((h, Qt, A, u, std, slope))
        h = h + a if residual else a
    Qt, C = _frame(h)
    A = restricted(Qt, depth)
    d = 2.0 * (C @ A.T - np.asarray(Y, dtype=np.float64))
    dh = (d @ A) @ Qt + off_frame(d, Qt, depth)
    norms = np.empty(depth)
    for layer in range(depth - 1, -1, -1):
        h_in, Qt, A, u, std, slope = tape[layer]
        du = dh if slope is None else dh * slope
        dz = (du - du.mean(axis=0) - u * (du * u).mean(axis=0)) / std
        norms[layer] = float(np.sum((dz @ dz.T) * (h_in @ h_in.T)))
        below = (dz @ A) @ Qt + off_frame(dz, Qt, layer)
        dh = below + dh if residual else below
    return norms


def fit_rate(log_squared_norms, skip):
    """The per-layer growth rate going DOWN: exp(-slope) of the least-squares line
    through log ||dL/dW_l||^2 (depth,) against l = 0..depth-1, fitted on
    l = skip .. depth-1-skip (at least 3 layers)."""
    values = np.asarray(log_squared_norms, dtype=np.float64)
    layers = np.arange(len(values))[skip:len(values) - skip]
    if len(layers) < 3:
        raise ValueError(f"fit_rate needs >= 3 layers after skipping {skip} at each end, "
                         f"got {len(layers)}")
    slope = np.polyfit(layers, values[layers], 1)[0]
    return float(np.exp(-slope))


def extrapolate(widths, log_rates, exponent, alpha=ALPHA):
    """The infinite-width log-rate from per-init log-rates at several widths.

    widths : k >= 2 widths N; log_rates : k sequences, the per-init log-rates at each
    width (>= 2 inits each, not all equal). Fits mean(N) = a + c N^-exponent by least
    squares weighted by 1/SE_N^2 (SE_N: the standard error of the mean over inits at N;
    widths independent); a = log rate_inf.
    Returns {"intercept" a, "slope" c, "se" (of a, times "inflation"),
    "inflation" max(1, sqrt(chi2/dof)) (1 when dof = 0), "chi2", "dof" (k - 2),
    "df" (min inits - 1), "low", "high" (a -+ t_{1-alpha, df} se: the two-sided
    1 - 2 alpha interval), "weights" ((k,) list: a = weights . means), "means", "ses"}.
    """
    if len(widths) != len(log_rates) or len(widths) < 2:
        raise ValueError("extrapolate needs >= 2 widths, each with its log-rates")
    means, ses, counts = [], [], []
    for N, values in zip(widths, log_rates):
        values = np.asarray(values, dtype=np.float64)
        if len(values) < 2:
            raise ValueError(f"width {N}: >= 2 inits needed, got {len(values)}")
        se = float(np.std(values, ddof=1)) / math.sqrt(len(values))
        if not se > 0:
            raise ValueError(f"width {N}: the log-rates do not vary over inits")
        means.append(float(np.mean(values)))
        ses.append(se)
        counts.append(len(values))
    means, ses = np.array(means), np.array(ses)
    design = np.column_stack([np.ones(len(widths)),
                              np.asarray(widths, dtype=np.float64) ** -exponent])
    w = 1.0 / ses ** 2
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    rows = cov @ (design * w[:, None]).T                 # beta = rows @ means
    beta = rows @ means
    chi2 = float(np.sum(w * (means - design @ beta) ** 2))
    dof = len(widths) - 2
    inflation = max(1.0, math.sqrt(chi2 / dof)) if dof > 0 else 1.0
    se = math.sqrt(cov[0, 0]) * inflation
    df = min(counts) - 1
    q = t_quantile(1.0 - alpha, df)
    a = float(beta[0])
    return {"intercept": a, "slope": float(beta[1]), "se": se, "inflation": inflation,
            "chi2": chi2, "dof": dof, "df": df, "low": a - q * se, "high": a + q * se,
            "weights": rows[0].tolist(), "means": means.tolist(), "ses": ses.tolist()}


def judge_deviation(low, high, tolerance):
    """The outcome of an interval [low, high] of d = log rate - log lambda against the
    tolerance: "supported" inside (-tolerance, tolerance) (two one-sided tests),
    "refuted" wholly above tolerance or below -tolerance, else "undecided"."""
    if -tolerance < low and high < tolerance:
        return "supported"
    if low > tolerance or high < -tolerance:
        return "refuted"
    return "undecided"


def _log_rates(profiles, skip):
    """Per-init log-rates of a list of log ||dL/dW_l||^2 profiles."""
    return [math.log(fit_rate(p, skip)) for p in profiles]


def _stats(logs):
    """Mean, sample sd and standard error of a list of log-rates."""
    logs = np.asarray(logs, dtype=np.float64)
    sd = float(np.std(logs, ddof=1)) if len(logs) > 1 else 0.0
    return float(np.mean(logs)), sd, sd / math.sqrt(len(logs))


def settings(quick):
    """The set-up (module docstring); quick and full differ only in these numbers."""
    keys = ("width", "depth", "skip", "replicates", "batch_sizes", "residual_batch_sizes",
            "extrapolation", "alternative_skip", "bootstrap_resamples")
    if quick:
        s = dict(width=256, depth=20, skip=4, replicates=4, batch_sizes=[4, 8, 16],
                 residual_batch_sizes=[4, 8, 16], alternative_skip=6,
                 bootstrap_resamples=500,
                 extrapolation={"4": {"widths": [256, 512, 1024, 2048, 4096], "inits": 8},
                                "8": {"widths": [256, 512, 1024, 2048], "inits": 4},
                                "16": {"widths": [256, 512, 1024, 2048], "inits": 4}})
        reduced = ["quick: networks of width 256, depth 20, 4 inits, batch sizes 4, 8, "
                   "16; the extrapolation from widths 256-4096 (B = 4) or 256-2048 with 8 "
                   "inits at B = 4 and 4 at B = 8, 16, to stay within seconds"]
    else:
        s = {k: RULE_PARAMS[k] for k in keys}
        reduced = ["residual nets at B <= 64 only, and B = 256 measured at width 512 only, "
                   "not judged: its extrapolation needs widths >= 16 B = 4096 at B = 256, "
                   "about a minute a draw here (the plain nets explode most at small B)"]
    widths = sorted({w for plan in s["extrapolation"].values() for w in plan["widths"]})
    reduced += [
        f"finite widths {widths[0]}-{widths[-1]}, extrapolated to infinite width (the "
        "closed forms are the limit width -> inf at fixed B) by log rate(N) = log "
        "rate_inf + c N^-p; the widths above the network's are drawn by Gaussian "
        "conditioning (exactly the networks' distribution, checked against the networks "
        f"at width {s['width']}) because a network of width 4096 and depth 30 holds "
        "4.2 GB of weights and as much gradient",
        f"depth {s['depth']} (the paper's figures go deeper) on a CPU budget; the rate "
        f"is fitted on the layers {s['skip']} or more away from both ends",
        "one Gaussian batch per random init (Yang et al. average over inputs too)",
        "a linear read-out and the squared loss against Gaussian targets stand in for "
        "the loss; the rate far from the top does not depend on it",
    ]
    return {**s, "activations": list(ACTIVATIONS), "architectures": ["plain", "residual"],
            "min_width_per_batch": RULE_PARAMS["min_width_per_batch"],
            "tolerance_fraction": RULE_PARAMS["tolerance_fraction"],
            "alpha": RULE_PARAMS["alpha"], "sigmas": RULE_PARAMS["sigmas"],
            "method_check_sigmas": RULE_PARAMS["method_check_sigmas"],
            "exploding_rate": RULE_PARAMS["exploding_rate"], "eps": 0.0,
            "reduced": reduced}


def tasks(settings, seed):
    """The draws first (one task per (B, init, activation), all its widths; the largest
    B first, the costliest), then the networks: one task per (init r, architecture,
    activation) at width settings["width"], covering its batch sizes with one network
    built once (init r's weights and Gaussian batch are shared by every activation,
    batch size (the first B rows of one batch) and both architectures: paired; residual
    nets run at ``residual_batch_sizes``)."""
    out = []
    for key in sorted(settings["extrapolation"], key=int, reverse=True):
        plan, B = settings["extrapolation"][key], int(key)
        for r in range(plan["inits"]):
            for a, activation in enumerate(settings["activations"]):
                out.append(dict(kind="sampled", replicate=r, batch_size=B,
                                activation=activation, widths=list(plan["widths"]),
                                depth=settings["depth"], skip=settings["skip"],
                                seed=derived_seed(seed, 2, B, r, a)))
    width = settings["width"]
    for r in range(settings["replicates"]):
        init_seed = derived_seed(seed, r, width)
        data_seed = derived_seed(seed, r, width, 1)
        for arch in settings["architectures"]:
            sizes = settings["residual_batch_sizes" if arch == "residual" else "batch_sizes"]
            for activation in settings["activations"]:
                out.append(dict(kind="network", replicate=r, width=width, architecture=arch,
                                activation=activation, batch_sizes=list(sizes),
                                depth=settings["depth"], skip=settings["skip"],
                                max_batch=max(settings["batch_sizes"]),
                                init_seed=init_seed, data_seed=data_seed))
    return out


def run_task(task):
    """A "network" task: for each B of task["batch_sizes"], the per-layer log
    ||dL/dW_l||^2 and the fitted rate of one bnfast network on the first B rows of a
    Gaussian batch (max_batch, width) and of Gaussian targets; returns {"batches":
    [{"batch_size", "log_squared_norms" (depth,), "rate"}, ...]}. A "sampled" task: for
    each width of task["widths"], one draw of sampled_squared_gradient_norms on a
    Gaussian batch and targets (batch_size, width), its own stream per width; returns
    {"widths": [{"width", "log_squared_norms" (depth,), "rate"}, ...]}."""
    if task["kind"] == "sampled":
        out = []
        with one_blas_thread():
            for width in task["widths"]:
                rng = np.random.default_rng(derived_seed(task["seed"], width))
                B = task["batch_size"]
                X = rng.standard_normal((B, width))
                Y = rng.standard_normal((B, width))
                log_sq = np.log(sampled_squared_gradient_norms(
                    X, Y, task["depth"], task["activation"], rng))
                out.append({"width": int(width), "log_squared_norms": log_sq.tolist(),
                            "rate": fit_rate(log_sq, task["skip"])})
        return {"widths": out}
    width = task["width"]
    rng = np.random.default_rng(task["data_seed"])
    X = rng.standard_normal((task["max_batch"], width))
    Y = rng.standard_normal((task["max_batch"], width))
    net = bn_network(width, task["depth"], task["activation"],
                     task["architecture"] == "residual", task["init_seed"])
    batches = []
    for B in task["batch_sizes"]:
        log_sq = np.log(layer_squared_gradient_norms(net, X[:B], Y[:B]))
        batches.append({"batch_size": int(B), "log_squared_norms": log_sq.tolist(),
                        "rate": fit_rate(log_sq, task["skip"])})
    return {"batches": batches}


def _extrapolated(activation, B, profiles, settings, options=None, boot_seed=0):
    """The extrapolated log-rate of one (activation, B) and its outcome.

    profiles : {width: [log ||dL/dW_l||^2 profile (depth,) per init]} of the draws.
    options : {} for the rule, or one of ALTERNATIVES' values.
    Returns {"activation", "batch_size", "predicted", "exponent", "skip",
    "fitted_widths", "intercept", "low", "high" (the 1 - 2 alpha interval of
    log rate_inf), "rate", "rate_low", "rate_high", and for linear and ReLU
    "deviation" (intercept - log lambda), "tolerance", "outcome"} plus the fit's
    diagnostics ("se", "chi2", "dof", "inflation", "df", "slope") unless the largest
    width alone is used.
    """
    options = options or {}
    skip = settings["alternative_skip"] if options.get("skip") == "alternative" \
        else settings["skip"]
    alpha = settings["alpha"]
    logs = {N: _log_rates(profiles[N], skip) for N in sorted(profiles)}
    fitted = [N for N in logs if N >= settings["min_width_per_batch"] * B]
    exponent = options.get("exponent", correction_exponent(B))
    case = {"activation": activation, "batch_size": B, "predicted": predicted_rate(
        activation, B), "exponent": exponent, "skip": skip, "fitted_widths": fitted}
    if options.get("largest_only"):
        N = fitted[-1]
        mean, _, se = _stats(logs[N])
        q = t_quantile(1.0 - alpha, len(logs[N]) - 1)
        case.update(intercept=mean, low=mean - q * se, high=mean + q * se,
                    fitted_widths=[N])
    else:
        fit = extrapolate(fitted, [logs[N] for N in fitted], exponent, alpha)
        case.update({k: fit[k] for k in ("intercept", "slope", "se", "chi2", "dof",
                                           "inflation", "df", "low", "high")})
        if options.get("bootstrap"):
            rng = np.random.default_rng(boot_seed)
            draws = np.zeros(settings["bootstrap_resamples"])
            for weight, N in zip(fit["weights"], fitted):
                values = np.asarray(logs[N])
                picks = rng.integers(0, len(values), (len(draws), len(values)))
                draws += weight * values[picks].mean(axis=1)
            case.update(low=float(np.quantile(draws, alpha)),
                        high=float(np.quantile(draws, 1.0 - alpha)))
    case.update(rate=math.exp(case["intercept"]), rate_low=math.exp(case["low"]),
                rate_high=math.exp(case["high"]))
    if case["predicted"] is not None:
        log_lambda = math.log(case["predicted"])
        tolerance = settings["tolerance_fraction"] * log_lambda
        case.update(deviation=case["intercept"] - log_lambda, tolerance=tolerance,
                    outcome=judge_deviation(case["low"] - log_lambda,
                                            case["high"] - log_lambda, tolerance))
    return case


def _inits_factor(case):
    """How many times the inits would shrink the interval of an undecided case to a
    decision (the interval narrows like 1/sqrt(inits)), or None if none would."""
    half = (case["high"] - case["low"]) / 2.0
    room = abs(abs(case["deviation"]) - case["tolerance"])
    return (half / room) ** 2 if room > 0 else None


def _setting(settings):
    """The verdict's setting in words, from the run's settings (SETTING for a full
    run)."""
    widths = [w for plan in settings["extrapolation"].values() for w in plan["widths"]]
    return (f"random BN networks of depth {settings['depth']} at initialization, rates "
            f"extrapolated to infinite width from widths {min(widths)}-{max(widths)}")


def verdict_of(rate_cases, residual_cases, setting=SETTING):
    """Version 3's mapping: a rate case's outcome is its extrapolation's
    (judge_deviation), or undecided when the method check failed; a residual case
    relieved supports, one not relieved is undecided unless more than half are not
    (then they refute); result.combine over all cases."""
    conditions, decide = {}, []
    res_fail = sum(not c["relieved"] for c in residual_cases)
    for c in rate_cases:
        name = f"{c['activation']} B={c['batch_size']}"
        outcome = c["outcome"] if c["method_ok"] else "undecided"
        conditions[f"rate {name}"] = outcome
        if not c["method_ok"]:
            decide.append(f"{name}: networks vs draws at width {c['method_width']} "
                          f"(z {c['method_z']:.3g})")
        elif outcome == "undecided":
            factor = _inits_factor(c)
            decide.append(f"{name}: ~{factor:.2g}x the inits" if factor
                          else f"{name}: more inits or widths")
    for c in residual_cases:
        conditions[f"residual {c['activation']} B={c['batch_size']}"] = (
            "supported" if c["relieved"] else
            "refuted" if res_fail > len(residual_cases) / 2 else "undecided")
        if not c["relieved"] and res_fail <= len(residual_cases) / 2:
            decide.append(f"residual {c['activation']} B={c['batch_size']}: more inits")
    if not rate_cases or not residual_cases:
        conditions["judged cases"] = "undecided"
        decide.append("judged cases in both parts of the claim")
    return combine(conditions, setting, reduced=True, decide="; ".join(decide))


def conclude(settings, results):
    """The rule (RULE) on the fitted rates; measurements as documented in the docs."""
    seed = settings.get("seed", 0)
    network, sampled = {}, {}
    for task, res in zip(tasks(settings, seed), results):
        if task["kind"] == "sampled":
            for entry in res["widths"]:
                sampled.setdefault((task["activation"], task["batch_size"]), {}).setdefault(
                    entry["width"], []).append(entry["log_squared_norms"])
        else:
            for batch in res["batches"]:
                network.setdefault((task["architecture"], task["activation"],
                                    batch["batch_size"]), []).append(batch)
    width, skip, sigmas = settings["width"], settings["skip"], settings["sigmas"]

    def net_logs(arch, act, B):
        return [math.log(r["rate"]) for r in network[(arch, act, B)]]

    # the networks at width `width`: rates, profiles, residual blocks
    networks, residual_cases, profiles = [], [], []
    for act in settings["activations"]:
        for B in settings["batch_sizes"]:
            mean, sd, se = _stats(net_logs("plain", act, B))
            networks.append({"activation": act, "batch_size": B, "width": width,
                             "measured": math.exp(mean), "predicted": predicted_rate(act, B),
                             "log_rate_mean": mean, "log_rate_sd": sd, "log_rate_se": se,
                             "rate_per_seed": [r["rate"] for r in
                                               network[("plain", act, B)]]})
            for arch in settings["architectures"]:
                if (arch, act, B) in network:
                    curve = np.mean([r["log_squared_norms"]
                                     for r in network[(arch, act, B)]], axis=0)
                    profiles.append({"activation": act, "batch_size": B,
                                     "architecture": arch,
                                     "log_squared_norm": (curve - curve[-1]).tolist()})
            if B not in settings["residual_batch_sizes"]:
                continue
            diffs = np.array(net_logs("plain", act, B)) - np.array(
                net_logs("residual", act, B))
            d_mean, _, d_se = _stats(diffs)
            res_mean, res_sd, _ = _stats(net_logs("residual", act, B))
            residual_cases.append({
                "activation": act, "batch_size": B, "plain": math.exp(mean),
                "residual": math.exp(res_mean), "residual_log_rate_sd": res_sd,
                "log_ratio_mean": d_mean, "log_ratio_se": d_se,
                "judged": bool(math.exp(mean) >= settings["exploding_rate"]),
                "relieved": bool(d_mean > sigmas * d_se)})

    # the extrapolation in width, with the method check at the networks' width
    extrapolations, alternatives_cases = [], {name: [] for name in ALTERNATIVES}
    for (act, B), profiles_by_width in sorted(
            sampled.items(), key=lambda kv: (settings["activations"].index(kv[0][0]),
                                             kv[0][1])):
        a = settings["activations"].index(act)
        case = _extrapolated(act, B, profiles_by_width, settings)
        case["widths"] = []
        for N in sorted(profiles_by_width):
            logs = _log_rates(profiles_by_width[N], skip)
            mean, sd, se = _stats(logs)
            case["widths"].append({"width": N, "inits": len(logs), "log_rate_mean": mean,
                                   "log_rate_sd": sd, "log_rate_se": se,
                                   "fitted": N in case["fitted_widths"],
                                   "log_rate_per_init": logs})
        drawn = next(w for w in case["widths"] if w["width"] == width)
        net_mean, _, net_se = _stats(net_logs("plain", act, B))
        z = (net_mean - drawn["log_rate_mean"]) / math.hypot(net_se, drawn["log_rate_se"])
        case.update(method_width=width, method_network=net_mean,
                    method_sampled=drawn["log_rate_mean"], method_z=z,
                    method_ok=bool(abs(z) <= settings["method_check_sigmas"]))
        case["judged"] = case["predicted"] is not None
        extrapolations.append(case)
        for name, options in ALTERNATIVES.items():
            alt = _extrapolated(act, B, profiles_by_width, settings, options,
                                boot_seed=derived_seed(seed, 3, B, a))
            alt["method_ok"], alt["method_width"], alt["method_z"] = (
                case["method_ok"], width, z)
            alternatives_cases[name].append(alt)
            if "outcome" in alt:
                case.setdefault("alternative_outcomes", {})[name] = alt["outcome"]

    judged = [c for c in extrapolations if c["judged"]]
    judged_res = [c for c in residual_cases if c["judged"]]
    verdict = verdict_of(judged, judged_res, _setting(settings))
    alternatives = {name: verdict_of([c for c in cases if c["predicted"] is not None],
                                     judged_res, _setting(settings)).label
                    for name, cases in alternatives_cases.items()}

    extrapolated = {(c["activation"], c["batch_size"]): c for c in extrapolations}
    rates = []
    for act in settings["activations"]:
        for B in settings["batch_sizes"]:
            if (act, B) in extrapolated:
                c = extrapolated[(act, B)]
                rates.append({"activation": act, "batch_size": B, "measured": c["rate"],
                              "predicted": c["predicted"],
                              "source": "extrapolated to infinite width"})
            else:
                c = next(n for n in networks if (n["activation"], n["batch_size"]) == (act, B))
                rates.append({"activation": act, "batch_size": B, "measured": c["measured"],
                              "predicted": c["predicted"],
                              "source": f"networks at width {width}"})

    wiki = []
    for c in judged:
        log_lambda = math.log(c["predicted"])
        wiki.append({"activation": c["activation"], "batch_size": c["batch_size"],
                     "lambda": c["predicted"], "sqrt_lambda": math.sqrt(c["predicted"]),
                     "squared_norm_rate": c["rate"], "norm_rate": math.sqrt(c["rate"]),
                     "squared_reading_agrees": bool(abs(c["deviation"]) < c["tolerance"]),
                     "norm_reading_agrees": bool(abs(c["intercept"] / 2 - log_lambda)
                                                 < c["tolerance"])})
    rate_fail = sum(verdict.conditions[f"rate {c['activation']} B={c['batch_size']}"]
                    != "supported" for c in judged)
    measurements = {
        "rates": rates, "extrapolation": extrapolations, "networks": networks,
        "residual": residual_cases, "profiles": profiles, "alternatives": alternatives,
        "wikipedia_reading": {
            "sentence": "the gradient NORM grows like lambda^L (Wikipedia seed)",
            "correct": "the SQUARED norm grows by lambda per layer, the norm by "
                       "sqrt(lambda)",
            "cases": wiki,
            "squared_reading_agrees": sum(w["squared_reading_agrees"] for w in wiki),
            "norm_reading_agrees": sum(w["norm_reading_agrees"] for w in wiki),
            "relu_large_batch_norm_rate_predicted": math.sqrt(LAMBDA_RELU_LIMIT)},
        "verdict_inputs": {
            "rate_cases": [{k: c[k] for k in (
                "activation", "batch_size", "predicted", "rate", "rate_low", "rate_high",
                "deviation", "tolerance", "low", "high", "exponent", "chi2", "dof",
                "inflation", "outcome", "method_z", "method_ok")} for c in judged],
            "rate_cases_not_supported": rate_fail,
            "residual_cases": [{k: c[k] for k in ("activation", "batch_size", "plain",
                                                  "residual", "log_ratio_mean",
                                                  "log_ratio_se", "relieved")}
                               for c in judged_res],
            "residual_cases_failed": sum(not c["relieved"] for c in judged_res)},
    }
    return verdict, measurements


def summary(m):
    """The lines of the terminal report."""
    lines = ["per-layer growth of ||dL/dW_l||^2 going down, extrapolated to infinite "
             "width (90% interval; d = log rate_inf - log lambda against 10% of log "
             "lambda; fit: N^-p, chi2/dof; method: networks vs draws at the networks' "
             "width, z):"]
    for c in m["extrapolation"]:
        head = (f"  {c['activation']:6s} B={c['batch_size']:<3d} rate_inf {c['rate']:.4f} "
                f"[{c['rate_low']:.4f}, {c['rate_high']:.4f}]")
        if c["predicted"] is None:
            judge = "  lambda(B): none (not judged)"
        else:
            judge = (f"  lambda(B) {c['predicted']:.4f}  d/log lambda "
                     f"{c['deviation'] / math.log(c['predicted']):+.2%}  "
                     f"{c['outcome'] if c['method_ok'] else 'undecided (method check)'}")
        lines.append(f"{head}{judge}  p={c['exponent']:g} chi2 {c['chi2']:.1f}/{c['dof']}"
                     f"  z {c['method_z']:+.2f}")
        lines.append("           mean rate by width: " + ", ".join(
            f"{w['width']}: {math.exp(w['log_rate_mean']):.4f}"
            + ("" if w["fitted"] else " (not fitted)") for w in c["widths"]))
    nets = m["networks"]
    if nets:
        lines.append(f"bnfast networks at width {nets[0]['width']} (mean over inits +- sd "
                     "of the log-rate):")
        for c in nets:
            pred = "   none" if c["predicted"] is None else f"{c['predicted']:7.4f}"
            lines.append(f"  {c['activation']:6s} B={c['batch_size']:<4d} measured "
                         f"{c['measured']:7.4f} +- {c['log_rate_sd']:.4f}  lambda(B) {pred}")
    lines.append("residual blocks (same weights): rate plain -> residual")
    for c in m["residual"]:
        lines.append(f"  {c['activation']:6s} B={c['batch_size']:<4d} {c['plain']:7.4f} -> "
                     f"{c['residual']:7.4f}"
                     + (f"  {'relieved' if c['relieved'] else 'NOT relieved'}"
                        if c["judged"] else
                        f"  (plain < {EXPLODING_RATE:g}: not judged)"))
    w = m["wikipedia_reading"]
    lines.append(f"Wikipedia's 'norm grows like lambda^L': the squared-norm reading agrees "
                 f"in {w['squared_reading_agrees']}/{len(w['cases'])} judged cases, the "
                 f"norm reading in {w['norm_reading_agrees']}/{len(w['cases'])}; the norm "
                 f"grows by sqrt(lambda) (ReLU, B -> inf: "
                 f"{w['relu_large_batch_norm_rate_predicted']:.3f} per layer)")
    return lines


def _plan_text(extrapolation):
    return "; ".join(f"B = {B}: widths {', '.join(str(w) for w in plan['widths'])}, "
                     f"{plan['inits']} inits" for B, plan in extrapolation.items())


RULE = (
    "Extrapolation in width (the closed forms are the limit width N -> inf at fixed B). "
    "For linear, ReLU and tanh BN nets of depth "
    f"{RULE_PARAMS['depth']} at random initialization ({_plan_text(EXTRAPOLATION)}), the "
    "per-layer norms drawn by Gaussian conditioning (exactly the networks' "
    "distribution, at O(depth N B^2) cost); per init the log-rate (fitted "
    f"{RULE_PARAMS['skip']} layers or more from either end); per width the mean and its "
    "standard error SE over inits. On the widths N >= "
    f"{RULE_PARAMS['min_width_per_batch']} B, mean log-rate(N) = log rate_inf + c N^-p "
    "is fitted by least squares weighted by 1/SE^2, with p = min(1, (B - 3)/2) fixed "
    "by theory (1/2 at B = 4, where 1/sigma^2 of a BN unit has a power tail of index 3/2 "
    "and infinite variance; 1 from B = 5 on, the ordinary 1/N), the SE of log rate_inf "
    "inflated by max(1, sqrt(chi^2/dof)) when the form misfits. For linear and ReLU at "
    "each B, d = log rate_inf - log lambda(B) with tolerance "
    f"{RULE_PARAMS['tolerance_fraction']:g} x log lambda(B) (the exponent within 10%: "
    "it tells lambda(B) from the norm reading, from no explosion and from lambda at the "
    "grid's neighbouring B) and the two-sided "
    f"{1 - 2 * RULE_PARAMS['alpha']:.0%} t interval of d (inits - 1 degrees of freedom: "
    "two one-sided tests at 5%): the case supports if the interval lies inside "
    "(-tolerance, tolerance), refutes if it lies wholly beyond one side, else is "
    "undecided. Method check: bnfast networks at width "
    f"{RULE_PARAMS['width']} ({RULE_PARAMS['replicates']} inits) and the draws at that "
    "width must agree in mean log-rate within "
    f"{RULE_PARAMS['method_check_sigmas']:g} SE of their difference, else the case is "
    "undecided. Residual blocks (the networks at width "
    f"{RULE_PARAMS['width']}, B in {RULE_PARAMS['residual_batch_sizes']}, same weights): "
    f"for every net whose plain rate is >= {EXPLODING_RATE:g} (an explosion to relieve; "
    "a cut-off away from every lambda(B) of the grid), the residual net's log-rate must "
    f"be lower by more than {SIGMAS:g} SE of the paired per-init differences; a case not "
    "relieved is undecided unless more than half are not (then they refute). B = 256 "
    "(networks only) and tanh are reported, not judged. Each case is a pre-registered "
    "condition; verdict by result.combine: supported (refuted) if every condition "
    "supports (refutes), mixed if some support and some refute, else underpowered (what "
    "decides it: the inits or widths printed). Fragility: the same rule with the "
    "correction ~ 1/N at every B, ~ 1/sqrt(N) at every B, a bootstrap percentile "
    f"interval over inits ({RULE_PARAMS['bootstrap_resamples']} resamples), the rate "
    f"fitted {RULE_PARAMS['alternative_skip']} or more layers from either end, and the "
    "largest width alone without extrapolation.")


def headline(inputs):
    """The verdict's key figures: how many judged extrapolated rates lie within the
    tolerance of lambda(B), those that do not, and how many residual cases are
    relieved. (Results of versions 1-2, which judged one width, read as they did.)"""
    from .result import figure
    rates = inputs["rate_cases"]
    if rates and "rate_low" not in rates[0]:                  # versions 1 and 2
        off = [c for c in rates if not c["agrees"]]
        text = f"{len(rates) - len(off)} of {len(rates)} judged rates agree with lambda(B)"
        if off:
            text += " (off: " + ", ".join(
                f"{c['activation']} B={c['batch_size']} {figure(c['measured'])} vs "
                f"{figure(c['predicted'])}" for c in off) + ")"
    else:
        ok = [c for c in rates if c["outcome"] == "supported" and c["method_ok"]]
        text = (f"{len(ok)} of {len(rates)} extrapolated rates within 10% of "
                "log lambda(B)")
        rest = [c for c in rates if c not in ok]
        if rest:
            text += " (" + ", ".join(
                f"{c['activation']} B={c['batch_size']} {figure(c['rate'])} vs "
                f"{figure(c['predicted'])}: "
                f"{c['outcome'] if c['method_ok'] else 'method check failed'}"
                for c in rest) + ")"
    residual = inputs.get("residual_cases", [])
    if residual:
        relieved = sum(bool(c["relieved"]) for c in residual)
        text += f"; residual blocks relieve {relieved} of {len(residual)} cases"
    return text


#: The claim in a few words, for the README's and the report's tables.
TITLE = ("BN nets explode at init: squared gradient norm x lambda(B) per layer; residual "
         "blocks relieve it (Yang et al. 2019, Thm 8-9)")

EXPERIMENT = Experiment(
    name="explosion",
    claim=("At initialization, a deep batch-normalized network suffers gradient explosion:"
           " going down the network the squared gradient norm grows by a factor "
           "lambda(B) > 1 per layer (lambda = (B-2)/(B-3) for linear networks, a closed "
           "form via the arc-cosine kernel for ReLU, pi/(pi-1) as B -> inf), so deep BN "
           "networks without skip connections are untrainable; residual connections "
           "relieve it. (Wikipedia: 'the gradient norm ... grows like lambda^L'.)"),
    source=("Yang, Pennington, Rao, Sohl-Dickstein, Schoenholz, 'A Mean Field Theory of "
            "Batch Normalization', ICLR 2019, arXiv:1902.08129, Theorems 8-9 and section "
            "'Gradient explosion'; Wikipedia 'Batch normalization' (seed)"),
    rule=RULE, rule_version=3, rule_params=RULE_PARAMS, settings=settings, tasks=tasks,
    run_task=run_task, conclude=conclude, summary=summary, headline=headline, order=5,
    title=TITLE)
