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
(the "ics" and "noisy-bn" experiments); the curvature controls of version 2
(docs/experiments/README.md, "Version 2 set-ups"): sharpness along a run against the stability threshold 2/lr
(edge of stability, Cohen et al. 2021), the effective learning rate lr / ||W||^2 of
scale-invariant weights (Arora, Li, Lyu 2019), the largest stable learning rate
(Bjorck et al. 2018) and comparisons at matched loss; and what keeps results small,
strict JSON.
"""

import copy
import math

import numpy as np

from ..nn import Residual, TrainingDiverged, train
from .spec import derived_seed

__all__ = ["downsample", "edge_of_stability", "effective_learning_rates",
           "finite_or_none", "first_reach_steps", "gradient_line_measures",
           "internal_covariate_shift", "largest_hessian_eigenvalue", "largest_stable_lr",
           "matched_loss", "measured_training", "measurement_batch", "median_cosine",
           "scale_invariant_groups", "stability_threshold", "step_sizes"]


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
                      record_every=1, optimizer=None):
    """Trains ``net`` by bnfast.train for ``steps`` steps and calls
    ``measure(net, step) -> dict`` at steps 0, every, 2 every, ..., steps.

    X (m, in), y (m, out): the learning set; batch_size None: full-batch gradient
    descent, else mini-batch SGD (each segment of ``every`` steps reshuffles from a seed
    derived from (seed, segment)). ``every`` must divide ``steps`` and be a multiple of
    ``record_every``. optimizer: None (params -= lr g, as before) or a bnfast.SGD/Adam
    whose buffers carry over from one segment to the next (a full-batch run then equals
    one unbroken run).

    Returns (losses, measurements, diverged_step): losses, float64
    (steps // record_every + 1,), the learning-set loss before step k * record_every
    (the last after the final step), cut short if training diverged; measurements, the
    list of measure's dicts (each with "step" added); diverged_step, None or the step at
    which the loss or the parameters became non-finite (training stops there).
    """
    if steps % every or every % record_every:
        raise ValueError("every must divide steps and be a multiple of record_every")
    losses, measurements = [], [{"step": 0, **measure(net, 0)}]
    state = None
    for segment in range(steps // every):
        try:
            result = train(net, X, y, lr, every, batch_size=batch_size,
                           seed=derived_seed(seed, segment), record_every=record_every,
                           optimizer=optimizer, optimizer_state=state)
            state = result.optimizer_state if optimizer is not None else None
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
    """ICS of Definition 2.1 for every Dense or Conv layer of ``net`` at its current
    params (layers without parameters, pooling and Flatten, are skipped).

    net : bnfast.Network (its params are restored on return).
    X : (m, in_features) (or (m, channels, ...) for conv nets), y : (m, out_features)
        or (m,) labels: the step's batch, used for G and G'.
    step : float64 (num_params,), the update the optimizer applies at this step (for
        gradient descent, -lr * net.gradient(X, y)).

    Returns (l2 (k,), cosine (k,)) over the k layers with weights: ||G_i - G'_i||_2 and
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
    # The layers with weights (Dense, Conv); pooling and Flatten have no parameters and
    # move nothing. For a network of Dense layers only, weighted = 0..k-1.
    layout = net.param_layout()
    weighted = [j for j, entry in enumerate(layout) if "W" in entry]
    weights = [layout[j]["W"][0] for j in weighted]
    l2, cosine = np.empty(len(weights)), np.empty(len(weights))
    try:
        G = net.gradient(X, y)
        moved = params.copy()
        for i, w in enumerate(weights):
            if i > 0:
                # layers 1..i-1 at their step-(t+1) values, layers i..k unchanged
                between = layer_slices[weighted[i - 1]:weighted[i]]
                with np.errstate(over="ignore", invalid="ignore"):
                    for part in between:
                        moved[part] += step[part]
                if not all(np.all(np.isfinite(moved[part])) for part in between):
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


# ---- curvature controls (version 2; docs/experiments/README.md) ---------------------

def stability_threshold(lr, momentum=0.0, nesterov=False):
    """The sharpness above which the update diverges on a quadratic, in 1/lr units of
    the loss's Hessian eigenvalues: 2 / lr for gradient descent; (2 + 2 momentum) / lr
    for heavy-ball momentum (PyTorch's SGD: v <- momentum v + g, params -= lr v); and
    (2 + 2 momentum) / ((1 + 2 momentum) lr) for Nesterov's (Cohen et al. 2021,
    appendix on momentum). lr > 0, 0 <= momentum < 1. Returns a float."""
    lr, momentum = float(lr), float(momentum)
    if not lr > 0 or not 0 <= momentum < 1:
        raise ValueError("need lr > 0 and 0 <= momentum < 1")
    if nesterov:
        return (2 + 2 * momentum) / ((1 + 2 * momentum) * lr)
    return (2 + 2 * momentum) / lr


def edge_of_stability(sharpness, lr, momentum=0.0, nesterov=False, band=(0.9, 1.1),
                      from_step=0):
    """Sharpness along a run against the stability threshold (edge of stability: under
    full-batch gradient descent the sharpness rises to about 2/lr and hovers there,
    Cohen et al. 2021).

    sharpness : the ``sharpness`` of a TrainResult (train(..., sharpness_every=K)), a
        pair (steps int (r,), values float (r,)) of Hessian eigenvalues of the
        full-data train-mode loss (units: loss / parameter^2) before those steps; or the
        values alone (steps then 0..r-1).
    lr, momentum, nesterov : the run's optimizer; the threshold is
        stability_threshold(lr, momentum, nesterov) (2 / lr without momentum).
    band : (low, high), the ratios sharpness / threshold that count as "at the edge".
    from_step : only records at steps >= from_step count (e.g. after a warm-up).

    Returns a dict (JSON-able; None where a value is not finite or there is no record):
        threshold: float; steps (r',) and ratios (r',): sharpness / threshold of the
        counted records; fraction_in_band: the share of them with low <= ratio <= high;
        final_ratio: the last record's ratio; max_ratio; first_step_in_band: the step
        of the first record with ratio >= low (None: never).
    """
    if isinstance(sharpness, tuple) and len(sharpness) == 2:
        steps, values = (np.asarray(a) for a in sharpness)
    else:
        values = np.asarray(sharpness, dtype=np.float64)
        steps = np.arange(len(values))
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if steps.shape != values.shape or values.ndim != 1:
        raise ValueError("sharpness must be (steps, values) of equal 1-D shapes")
    low, high = band
    threshold = stability_threshold(lr, momentum, nesterov)
    keep = steps >= from_step
    steps, ratios = steps[keep], values[keep] / threshold
    with np.errstate(invalid="ignore"):
        in_band = (ratios >= low) & (ratios <= high)
        reached = np.flatnonzero(ratios >= low)
    return {"threshold": threshold, "steps": steps.tolist(),
            "ratios": finite_or_none(ratios),
            "fraction_in_band": float(in_band.mean()) if ratios.size else None,
            "final_ratio": _finite(ratios[-1]) if ratios.size else None,
            "max_ratio": _finite(np.max(ratios)) if ratios.size else None,
            "first_step_in_band": int(steps[reached[0]]) if reached.size else None}


def scale_invariant_groups(net, include_bias=True):
    """The layers whose weights are scale-invariant: every Dense/Conv layer followed by
    a normalization (BatchNorm of any norm, LayerNorm, GroupNorm) whose output, with
    eps -> 0 and batch statistics, does not change when the layer's W (and b) are
    multiplied by c > 0 (Arora, Li, Lyu 2019). BN cancels the bias in train mode, so W
    and b scale together; include_bias=False keeps W alone.

    Returns a list of (layer index, [slices of net.params]) in the order of
    net.param_slices (a Residual block's layers are counted one by one, as
    net.param_layout() does)."""
    flat = [layer for item in net.layers
            for layer in (item.layers if isinstance(item, Residual) else (item,))]
    layout = net.param_layout()
    groups = []
    for index, (layer, entry) in enumerate(zip(flat, layout)):
        if "W" not in entry or getattr(layer, "normalization", None) is None:
            continue
        names = ("W", "b") if include_bias else ("W",)
        groups.append((index, [entry[name][0] for name in names if name in entry]))
    return groups


def effective_learning_rates(net, lr, params=None, include_bias=True):
    """The effective learning rate lr / ||W_l||^2 of each scale-invariant layer
    (scale_invariant_groups): a gradient step of size lr on W_l moves its direction
    W_l / ||W_l|| as a step of lr / ||W_l||^2 would at unit norm, because the gradient
    at c W is the gradient at W divided by c (Arora, Li, Lyu 2019; with W and b scaled
    together when include_bias).

    net : bnfast.Network; lr : float > 0 (the step size; with momentum, the same ratio
    applies to the buffer's step); params : float (num_params,) (default net.params),
    e.g. a checkpoint along a run.

    Returns {"layers": [layer indices], "sq_norms": [||W_l||^2 (+ ||b_l||^2)],
    "effective_lr": [lr / sq_norm]} (floats; effective_lr None for a zero norm).
    Along a run: measured_training(..., measure=lambda net, step:
    effective_learning_rates(net, lr)), or one call per saved parameter vector."""
    params = net.params if params is None else np.asarray(params, dtype=np.float64)
    if params.shape != (net.num_params,):
        raise ValueError(f"params must have shape ({net.num_params},), got {params.shape}")
    layers, sq_norms, rates = [], [], []
    for index, slices in scale_invariant_groups(net, include_bias):
        sq = float(sum(np.dot(params[s], params[s]) for s in slices))
        layers.append(index)
        sq_norms.append(sq)
        rates.append(float(lr) / sq if sq > 0 else None)
    return {"layers": layers, "sq_norms": sq_norms, "effective_lr": rates}


def largest_stable_lr(net, X, y, steps, low, high, points=25, batch_size=None,
                      optimizer=None, seed=0, tolerance=0.0):
    """The largest stable learning rate on a log grid, by bisection (Bjorck et al.
    2018: BN allows larger learning rates).

    A learning rate is stable when ``steps`` steps of bnfast.train from ``net.params``
    (with ``batch_size``, ``optimizer`` and shuffles/noise from ``seed``) neither
    diverge (TrainingDiverged) nor end with a learning-set loss above (1 + tolerance)
    times the start loss. The grid is np.geomspace(low, high, points); stability is
    assumed to fail from some lr on (bisection over the grid's indices: about
    log2(points) + 2 runs). Deterministic for a given seed (and thread count). Each run
    trains a copy of net (copy.deepcopy: params and running statistics); net is left
    unchanged.

    Returns a dict: lr (float: the largest grid value found stable; None when low
    already fails), next_lr (the grid value above it, found unstable; None when high is
    stable), tried: [{"lr", "stable", "start_loss", "final_loss" (None if diverged),
    "diverged_step"}] in the order run.
    """
    if not 0 < low < high or points < 2 or steps < 1:
        raise ValueError("need 0 < low < high, points >= 2 and steps >= 1")
    grid = np.geomspace(low, high, int(points))
    tried, verdict = [], {}

    def stable(i):
        if i in verdict:
            return verdict[i]
        entry = {"lr": float(grid[i])}
        try:
            result = train(copy.deepcopy(net), X, y, float(grid[i]), steps, batch_size=batch_size,
                           seed=seed, record_every=steps, optimizer=optimizer)
            entry.update(start_loss=float(result.losses[0]),
                         final_loss=_finite(result.losses[-1]), diverged_step=None)
            entry["stable"] = bool(entry["final_loss"] is not None and
                                   result.losses[-1] <= (1 + tolerance) * result.losses[0])
        except TrainingDiverged as exc:
            entry.update(start_loss=_finite(exc.losses[0]) if len(exc.losses) else None,
                         final_loss=None, diverged_step=int(exc.step), stable=False)
        tried.append(entry)
        verdict[i] = entry["stable"]
        return verdict[i]

    if not stable(0):
        return {"lr": None, "next_lr": float(grid[0]), "tried": tried}
    if stable(len(grid) - 1):
        return {"lr": float(grid[-1]), "next_lr": None, "tried": tried}
    good, bad = 0, len(grid) - 1            # invariant: good stable, bad unstable
    while bad - good > 1:
        middle = (good + bad) // 2
        if stable(middle):
            good = middle
        else:
            bad = middle
    return {"lr": float(grid[good]), "next_lr": float(grid[bad]), "tried": tried}


def first_reach_steps(losses, levels, record_every=1):
    """For each loss level, the first step at which a loss curve is at or below it.

    losses : float (r,), losses[k] the loss before step k * record_every (a
        TrainResult's ``losses`` or measured_training's); non-finite entries never
        count. levels : float (n,). Returns a list of n ints (steps) or None (never
        reached)."""
    losses = np.asarray(losses, dtype=np.float64)
    out = []
    for level in np.asarray(levels, dtype=np.float64).reshape(-1):
        with np.errstate(invalid="ignore"):
            hit = np.flatnonzero(np.isfinite(losses) & (losses <= level))
        out.append(int(hit[0]) * int(record_every) if hit.size else None)
    return out


def matched_loss(losses_a, losses_b, levels=None, count=5, record_every=1,
                 checkpoints_a=None, checkpoints_b=None):
    """Two runs compared at matched loss rather than at matched step.

    losses_a, losses_b : float (r_a,), (r_b,) loss curves recorded every
        ``record_every`` steps (both).
    levels : float (n,) loss levels; None: ``count`` levels spaced geometrically from
        the smaller start loss down to the larger of the two best losses (both curves
        reach every one of them; for losses > 0).
    checkpoints_a, checkpoints_b : optional (steps int (k,), values (k, ...)) of a
        measurement taken along each run (e.g. sharpness from train(...,
        sharpness_every), or measured_training's checkpoints); at each matched step the
        checkpoint nearest to it (the earlier on a tie) is reported.

    Returns a dict: levels (n,), steps_a, steps_b (lists of ints or None: the first
    step at or below each level, first_reach_steps); with checkpoints, at_a / at_b
    (each a list of {"step": checkpoint step, "value": value as a list or float} or
    None where the level is not reached)."""
    a = np.asarray(losses_a, dtype=np.float64)
    b = np.asarray(losses_b, dtype=np.float64)
    if levels is None:
        fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
        if not fa.size or not fb.size:
            raise ValueError("a loss curve has no finite value")
        top, bottom = min(fa[0], fb[0]), max(fa.min(), fb.min())
        if not 0 < bottom <= top:
            raise ValueError("default levels need positive losses that fall")
        levels = np.geomspace(top, bottom, int(count))
        levels[-1] = bottom                       # exactly reached, not rounded past
    levels = np.asarray(levels, dtype=np.float64).reshape(-1)
    out = {"levels": levels.tolist(),
           "steps_a": first_reach_steps(a, levels, record_every),
           "steps_b": first_reach_steps(b, levels, record_every)}
    for key, checkpoints in (("a", checkpoints_a), ("b", checkpoints_b)):
        if checkpoints is not None:
            out["at_" + key] = [_checkpoint_at(checkpoints, step)
                                for step in out["steps_" + key]]
    return out


def _checkpoint_at(checkpoints, step):
    if step is None:
        return None
    steps, values = checkpoints
    steps = np.asarray(steps, dtype=np.int64)
    if not steps.size:
        return None
    i = int(np.argmin(np.abs(steps - step)))       # argmin: the earlier on a tie
    value = np.asarray(values[i], dtype=np.float64)
    return {"step": int(steps[i]),
            "value": _finite(value) if value.ndim == 0 else finite_or_none(value.ravel())}


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
