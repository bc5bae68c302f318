"""Gradient descent of docs/math/networks.md sections 5, 8, 9 and 16 in plain NumPy
(the oracle of bnfast.train): same arguments after the network, same batches, same
noise, same records, same running statistics, and the updates of torch.optim.SGD
(momentum, Nesterov, weight decay) and torch.optim.Adam."""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._checks import (bn_layers, check_layers, check_params, integer, layer_noise,
                      learning_set, reduction, running_stats, train_args)
from ._checks import optimizer as _optimizer
from ._checks import optimizer_state as optimizer_state_of
from .network import backprop, batch_statistics, loss_of
from .noise import NoiseGenerator, draw_noise
from .shuffle import EpochShuffler

__all__ = ["TrainResult", "TrainingDiverged", "train"]


@dataclass(frozen=True)
class TrainResult:
    """The oracle's record of a run, field by field what bnfast.train returns: the final
    params, the recorded losses (before steps 0, r, 2r, ... and after the last step when
    r divides steps), the number of updates, whether the callback stopped it, the
    running statistics after the run (one float64 (out,) array per BN layer in network
    order), the update counter (batches_seen given + steps) and the optimizer state
    after the run (None for plain gradient descent; see train), which a later run
    takes as optimizer_state to continue."""

    params: np.ndarray
    losses: np.ndarray
    steps: int = 0
    stopped_by_callback: bool = False
    running_mean: list = field(default_factory=list)
    running_var: list = field(default_factory=list)
    batches_seen: int = 0
    optimizer_state: Optional[dict] = None


class TrainingDiverged(FloatingPointError):
    """The loss became inf or NaN at update ``step`` (``loss``), or that update made a
    parameter inf or NaN (``params_overflowed``); ``losses`` holds what was recorded
    before."""

    def __init__(self, step, loss, losses, params_overflowed=False):
        what = "made parameters inf or NaN" if params_overflowed else f"gave the loss {loss}"
        super().__init__(f"training diverged: step {step} {what} (try a smaller lr)")
        self.step, self.loss, self.losses = step, loss, losses
        self.params_overflowed = params_overflowed


def _lerp(start, end, weight):
    """torch.lerp's formula (written without its fused multiply-add)."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


def update(opt, state, params, grad, lr):
    """The new params after one step with learning rate ``lr``; ``state`` (the dict of
    optimizer_state) is updated in place with new arrays. The operations and their
    order are those of torch's single-tensor SGD and Adam (networks.md section 16);
    torch's vectorized kernels fuse some multiply-adds (FMA), so they may differ from
    these in the last bit."""
    if opt is None:
        return params - lr * grad
    g = grad + opt.weight_decay * params if opt.weight_decay != 0 else grad
    if opt.name == "sgd":
        if opt.momentum != 0:
            buf = state["momentum_buffer"]
            buf = g.copy() if buf is None else buf * opt.momentum + g
            state["momentum_buffer"] = buf
            g = g + opt.momentum * buf if opt.nesterov else buf
        return params - lr * g
    beta1, beta2 = opt.betas
    state["step"] += 1
    step = state["step"]
    state["exp_avg"] = m = _lerp(state["exp_avg"], g, 1 - beta1)
    state["exp_avg_sq"] = v = state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    denom = np.sqrt(v) / bias_correction2 ** 0.5 + opt.eps
    return params + -step_size * m / denom


def train(layers, params, X, y, lr, steps, batch_size=None, seed=0, record_every=1,
          callback=None, loss="sum", running_mean=None, running_var=None, batches_seen=0,
          optimizer=None, optimizer_state=None):
    """Gradient descent on the loss from ``params`` (left unmodified): "sum":
    sum_i ||y_i - f(x_i)||^2, "mean": that over the rows of the evaluation,
    "cross_entropy_sum": sum_i logsumexp(f(x_i)) - f(x_i)[y_i], "cross_entropy": that
    over the rows of the evaluation.

    layers : list of layer dicts (see bnfast.reference.network); params : (num_params,).
    X : (m, in_features), or (m, C, L) / (m, C, H, W) for a network with conv or pool
        layers (section 17); y : (m, out_features), or (m,) when out_features == 1; for
        the cross-entropy losses (m,) class labels in [0, out_features).
    lr : a float > 0, or a 1-D array of at least ``steps`` per-step rates > 0 (lr[t]
        for the t-th update of this run). Without an optimizer:
        params <- params - lr * gradient, ``steps`` >= 0 times.
    optimizer : None (plain gradient descent, as above), {"name": "sgd", "momentum":
        >= 0 (default 0), "nesterov": bool (default False; needs momentum > 0),
        "weight_decay": >= 0 (default 0)} (torch.optim.SGD, dampening 0) or
        {"name": "adam", "betas": (b1, b2) in [0, 1) (default (0.9, 0.999)), "eps": > 0
        (default 1e-8), "weight_decay": >= 0 (default 0)} (torch.optim.Adam, L2 weight
        decay, amsgrad False); see networks.md section 16.
    optimizer_state : the state before the run (TrainResult.optimizer_state of an
        earlier run, not modified), or None for the initial state: None without an
        optimizer; sgd {"momentum_buffer": None or (num_params,)} (None until the first
        step with momentum, which sets it to that step's gradient); adam {"step": int,
        "exp_avg": (num_params,), "exp_avg_sq": (num_params,)} (0, zeros, zeros).
        A full-batch run of s1 steps continued for s2 steps from its params, running
        statistics, batches_seen and optimizer_state (and lr[s1:] for per-step rates)
        gives bit for bit the run of s1 + s2 steps.
    batch_size : None (or m) for full batch; else disjoint batches of an EpochShuffler
        permutation of the rows (seeded by ``seed``), a new one when fewer than
        batch_size unused rows remain; BN statistics of the batch.
    record_every : the full learning-set loss is recorded before steps 0, k, 2k, ...
        (and after the last step when it is a multiple of k); callback(step, loss) is
        called at each record and a truthy return stops the run. Recorded losses are
        noise free.
    Noise (BN layers with "noise", and layers with their own "noise", section 8): each
        update's gradient is evaluated with fresh draws of a NoiseGenerator(seed)
        (draw_noise), also with full batch (then the recorded loss is a separate
        noise-free evaluation).
    running_mean, running_var : the running statistics before the run (lists with one
        (out,) array per BN layer in network order, (out_channels,) for a conv layer;
        None: zeros, ones), not modified.
        Each update moves them towards the batch statistics of its gradient evaluation
        (at the params before the update): f = momentum, or 1/n for momentum None with
        n = batches_seen + the number of this update (section 9).

    Returns TrainResult(params, losses, steps, stopped_by_callback, running_mean,
    running_var, batches_seen, optimizer_state); raises TrainingDiverged when a computed
    loss is inf or NaN, or an update makes a parameter inf or NaN.
    """
    loss = reduction(loss)
    layers = check_layers(layers)
    params = check_params(layers, params)
    X, y = learning_set(layers, X, y, loss=loss)
    m = X.shape[0]
    lr, steps, batch_size, seed, record_every = train_args(
        layers, m, lr, steps, batch_size, seed, record_every, callback)
    running_mean, running_var = running_stats(layers, running_mean, running_var)
    batches_seen = integer(batches_seen, "batches_seen", 0)
    opt = _optimizer(optimizer)
    state = optimizer_state_of(opt, optimizer_state, params.size)
    rates = lr if isinstance(lr, np.ndarray) else None
    full = batch_size in (0, m)
    noisy = [i for i, layer in enumerate(layers) if layer_noise(layer) is not None]
    plain_full = full and not noisy  # one evaluation gives the update and the record
    shuffler, noise_gen = EpochShuffler(m, seed), NoiseGenerator(seed)
    perm, pos = None, m
    losses, done, by_callback = [], 0, False
    for step in range(steps + 1):
        record = step % record_every == 0
        last = step == steps
        if plain_full and not last:
            value, grad, tape = backprop(layers, params, X, y, loss)
            value = step_loss = float(value)
        elif record or last:  # the final parameters are checked even when unrecorded
            value = loss_of(layers, params, X, y, loss)
        if ((plain_full and not last) or record or last) and not np.isfinite(value):
            raise TrainingDiverged(step, value, np.array(losses, dtype=np.float64))
        if record:
            losses.append(value)
            if callback is not None and callback(step, value):
                by_callback = not last
                break
        if last:
            break
        if not plain_full:
            if full:
                Xb, yb = X, y
            else:
                if pos + batch_size > m:
                    perm, pos = shuffler.next_epoch(), 0
                rows = perm[pos:pos + batch_size]
                pos += batch_size
                Xb, yb = X[rows], y[rows]
            noise = None
            if noisy:
                draws = draw_noise(noise_gen, [layers[i] for i in noisy], Xb.shape[0])
                noise = dict(zip(noisy, draws))
            step_loss, grad, tape = backprop(layers, params, Xb, yb, loss, noise)
            if not np.isfinite(step_loss):
                raise TrainingDiverged(step, float(step_loss),
                                       np.array(losses, dtype=np.float64))
        with np.errstate(over="ignore", invalid="ignore"):
            params = update(opt, state, params, grad, lr if rates is None else rates[step])
        if not np.all(np.isfinite(params)):
            raise TrainingDiverged(step, float(step_loss), np.array(losses, dtype=np.float64),
                                   params_overflowed=True)
        n = batches_seen + step + 1
        for j, (layer, (mu, v)) in enumerate(zip(bn_layers(layers),
                                                 batch_statistics(layers, tape))):
            f = layer.bn.momentum if layer.bn.momentum is not None else 1.0 / n
            running_mean[j] = (1 - f) * running_mean[j] + f * mu
            running_var[j] = (1 - f) * running_var[j] + f * v
        done = step + 1
    return TrainResult(params, np.array(losses, dtype=np.float64), done, by_callback,
                       running_mean, running_var, batches_seen + done, state)
