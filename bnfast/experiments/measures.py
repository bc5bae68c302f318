"""What the experiments measure and share (one home: experiments never import each
other).

The loss landscape of Santurkar et al. (2018), section 3.2 and appendix A.2.2 (the
"landscape" and "lp-norm" experiments): at parameters x with gradient g = grad L(x),
move along the gradient, x'(eta) = x - eta g, for the step sizes eta in lr * multipliers:

    loss band             [min_eta L(x'), max_eta L(x')]; its width is the "loss range"
    gradient predictiveness  ||grad L(x) - grad L(x')||_2 for each eta (a band too)
    effective beta-smoothness  max_eta ||grad L(x) - grad L(x')||_2 / ||x - x'||_2,
                               with ||x - x'||_2 = eta ||g||_2

and, as a sharper local measure, the largest eigenvalue of the Hessian of L at x by
power iteration on Hessian-vector products (``Network.hvp``, exact); a training loop
that stops at checkpoints to take them; the internal covariate shift of Definition 2.1
(the "ics" and "noisy-bn" experiments); and what keeps results small, strict JSON.
"""

import math

import numpy as np

from ..nn import TrainingDiverged, train
from .spec import derived_seed

__all__ = ["downsample", "finite_or_none", "gradient_line_measures",
           "internal_covariate_shift", "largest_hessian_eigenvalue", "measured_training",
           "measurement_batch", "median_cosine", "step_sizes"]


# ---- the landscape measures ---------------------------------------------------------

def step_sizes(setup, points):
    """The etas along the gradient: lr * multipliers spaced as the set-up says, (points,)."""
    low, high = setup["multipliers"]
    if setup["spacing"] == "log":
        multipliers = np.geomspace(low, high, points)
    else:
        multipliers = np.linspace(low, high, points)
    return setup["lr"] * multipliers


def measurement_batch(X, y, batch_size, seed, step):
    """The rows the landscape is measured on at ``step``: all of them (full batch) or
    ``batch_size`` rows drawn without replacement from (seed, step), shared by the
    compared nets."""
    if batch_size is None:
        return X, y
    rows = np.random.default_rng(derived_seed(seed, 2, step)).choice(
        len(X), batch_size, replace=False)
    return X[rows], y[rows]


# Far from a minimum (a diverging run) norms can overflow: they become inf, reported None.
@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def gradient_line_measures(net, X, y, step_sizes):
    """The landscape measures along the gradient at ``net.params`` (left unchanged).

    net : bnfast.Network; X (m, in_features), y (m, out_features): the batch whose loss
        L is measured (batch statistics over its rows, train mode).
    step_sizes : (k,) positive floats eta.

    Returns a dict of floats (None where a value is not finite: a step that overflows):
        loss: L(x); grad_norm: ||g||;
        losses (k,): L(x - eta g); grad_changes (k,): ||g - grad L(x - eta g)||;
        loss_min, loss_max, loss_range (max - min of ``losses``);
        grad_change_min, grad_change_max; beta: the effective beta-smoothness.
    """
    step_sizes = np.asarray(step_sizes, dtype=np.float64)
    if step_sizes.ndim != 1 or step_sizes.size == 0 or not np.all(step_sizes > 0):
        raise ValueError("step_sizes must be a non-empty 1-D array of positive numbers")
    start = net.params
    loss, grad = net.loss_and_gradient(X, y)
    grad_norm = float(np.linalg.norm(grad))
    losses, changes = [], []
    try:
        for eta in step_sizes:
            moved = start - eta * grad
            if not np.all(np.isfinite(moved)):
                losses.append(np.inf)
                changes.append(np.inf)
                continue
            net.params = moved
            moved_loss, moved_grad = net.loss_and_gradient(X, y)
            losses.append(moved_loss)
            changes.append(np.linalg.norm(grad - moved_grad))
    finally:
        net.params = start
    losses, changes = np.array(losses, dtype=np.float64), np.array(changes, dtype=np.float64)
    # ||x - x'|| = eta ||g||; a zero gradient moves nowhere (beta undefined).
    distances = step_sizes * grad_norm
    beta = np.max(changes / distances) if grad_norm > 0 else np.nan
    return {"loss": _finite(loss), "grad_norm": _finite(grad_norm),
            "losses": [_finite(v) for v in losses],
            "grad_changes": [_finite(v) for v in changes],
            "loss_min": _finite(np.min(losses)), "loss_max": _finite(np.max(losses)),
            "loss_range": _finite(np.max(losses) - np.min(losses)),
            "grad_change_min": _finite(np.min(changes)),
            "grad_change_max": _finite(np.max(changes)), "beta": _finite(beta)}


def largest_hessian_eigenvalue(net, X, y, iterations=30, seed=0, rtol=1e-4):
    """The Hessian eigenvalue of largest magnitude at ``net.params`` (signed), by power
    iteration v <- H v / ||H v|| from a Gaussian start drawn from default_rng(seed);
    stops when the Rayleigh quotient v^T H v changes by less than rtol (relative) or after
    ``iterations`` Hessian-vector products. H: the Hessian of the train-mode loss on
    X (m, in), y (m, out). Returns a float (0.0 for H v = 0)."""
    v = np.random.default_rng(seed).standard_normal(net.num_params)
    v /= np.linalg.norm(v)
    estimate = None
    for _ in range(int(iterations)):
        hv = net.hvp(X, y, v)
        rayleigh = float(v @ hv)
        norm = np.linalg.norm(hv)
        if norm == 0:
            return 0.0
        v = hv / norm
        if estimate is not None and abs(rayleigh - estimate) <= rtol * abs(rayleigh):
            return rayleigh
        estimate = rayleigh
    return estimate


def measured_training(net, X, y, lr, steps, every, measure, batch_size=None, seed=0,
                      record_every=1):
    """Trains ``net`` by bnfast.train for ``steps`` steps and calls
    ``measure(net, step) -> dict`` at steps 0, every, 2 every, ..., steps.

    X (m, in), y (m, out): the learning set; batch_size None: full-batch gradient
    descent, else mini-batch SGD (each segment of ``every`` steps reshuffles from a seed
    derived from (seed, segment)). ``every`` must divide ``steps`` and be a multiple of
    ``record_every``.

    Returns (losses, measurements, diverged_step): losses, float64
    (steps // record_every + 1,), the learning-set loss before step k * record_every
    (the last after the final step), cut short if training diverged; measurements, the
    list of measure's dicts (each with "step" added); diverged_step, None or the step at
    which the loss or the parameters became non-finite (training stops there).
    """
    if steps % every or every % record_every:
        raise ValueError("every must divide steps and be a multiple of record_every")
    losses, measurements = [], [{"step": 0, **measure(net, 0)}]
    for segment in range(steps // every):
        try:
            result = train(net, X, y, lr, every, batch_size=batch_size,
                           seed=derived_seed(seed, segment), record_every=record_every)
        except TrainingDiverged as exc:
            losses.extend(exc.losses)
            return np.array(losses), measurements, segment * every + exc.step
        # Each segment records its start and its end; the end is the next one's start.
        losses.extend(result.losses[:-1])
        step = (segment + 1) * every
        measurements.append({"step": step, **measure(net, step)})
    losses.append(result.losses[-1] if steps else net.loss(X, y))
    return np.array(losses, dtype=np.float64), measurements, None


def _finite(value):
    value = float(value)
    return value if np.isfinite(value) else None


# ---- internal covariate shift (Santurkar et al. 2018, Definition 2.1) ----------------

def internal_covariate_shift(net, X, y, step):
    """ICS of Definition 2.1 for every Dense layer of ``net`` at its current params.

    net : bnfast.Network (its params are restored on return).
    X : (m, in_features), y : (m, out_features): the step's batch, used for G and G'.
    step : float64 (num_params,), the update the optimizer applies at this step (for
        gradient descent, -lr * net.gradient(X, y)).

    Returns (l2 (k,), cosine (k,)) over the k Dense layers: ||G_i - G'_i||_2 and
    cos(G_i, G'_i), G_i the gradient of layer i's weight matrix W at the current params
    and G'_i the same after the parameters (W, b, gamma, beta) of layers 1..i-1 moved by
    ``step``. Layer 1 has G' = G (nothing precedes it). A zero gradient has cosine NaN.
    Where the moved parameters are not finite (the step overflows), G'_i is undefined:
    that layer's and every later layer's l2 and cosine are NaN (the moved parameters
    only accumulate further steps).
    """
    params = net.params
    step = np.asarray(step, dtype=np.float64)
    if step.shape != params.shape:
        raise ValueError(f"step must have shape {params.shape}, got {step.shape}")
    layer_slices = net.param_slices
    weights = [entry["W"][0] for entry in net.param_layout()]
    l2, cosine = np.empty(len(weights)), np.empty(len(weights))
    try:
        G = net.gradient(X, y)
        moved = params.copy()
        for i, w in enumerate(weights):
            if i > 0:
                # layers 1..i-1 at their step-(t+1) values, layers i..k unchanged
                with np.errstate(over="ignore", invalid="ignore"):
                    moved[layer_slices[i - 1]] += step[layer_slices[i - 1]]
                if not np.all(np.isfinite(moved[layer_slices[i - 1]])):
                    # G' undefined here and for every later layer (moved stays
                    # non-finite); the network cannot take these params
                    l2[i:] = math.nan
                    cosine[i:] = math.nan
                    break
                net.params = moved
                G_moved = net.gradient(X, y)
            else:
                G_moved = G
            a, b = G[w], G_moved[w]
            with np.errstate(over="ignore", invalid="ignore"):  # an overflowed gradient
                l2[i] = np.linalg.norm(a - b)                    # gives inf / NaN here
                na, nb = np.linalg.norm(a), np.linalg.norm(b)
                defined = na > 0 and nb > 0 and math.isfinite(na) and math.isfinite(nb)
                cosine[i] = float((a / na) @ (b / nb)) if defined else math.nan
    finally:
        net.params = params
    return l2, cosine


def median_cosine(cosines):
    """The median of cos(G, G') over checkpoints and layers 2..k (layer 1's is 1 by
    definition). cosines : (checkpoints, k) nested lists or array; NaNs ignored."""
    values = np.asarray(cosines, dtype=np.float64)[:, 1:]
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


# ---- results as small, strict JSON ---------------------------------------------------

def downsample(values, points=200):
    """At most ``points`` evenly spaced entries of ``values`` (the first and last kept),
    as a list of floats: curves in the JSON output stay small."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) <= points:
        return values.tolist()
    index = np.unique(np.linspace(0, len(values) - 1, points).round().astype(np.int64))
    return values[index].tolist()


def finite_or_none(values):
    """A list of floats with the non-finite ones (a diverged run's last loss) as None,
    so that the result stays valid JSON."""
    return [float(v) if np.isfinite(v) else None for v in values]
