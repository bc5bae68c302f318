"""Gradient descent of docs/math/networks.md sections 5, 8 and 9 in plain NumPy (the
oracle of bnfast.train): same arguments after the network, same batches, same noise,
same records, same running statistics."""

from dataclasses import dataclass, field

import numpy as np

from ._checks import (bn_layers, check_layers, check_params, integer, learning_set,
                      reduction, running_stats, train_args)
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
    order) and the update counter (batches_seen given + steps)."""

    params: np.ndarray
    losses: np.ndarray
    steps: int = 0
    stopped_by_callback: bool = False
    running_mean: list = field(default_factory=list)
    running_var: list = field(default_factory=list)
    batches_seen: int = 0


class TrainingDiverged(FloatingPointError):
    """The loss became inf or NaN at update ``step`` (``loss``), or that update made a
    parameter inf or NaN (``params_overflowed``); ``losses`` holds what was recorded
    before."""

    def __init__(self, step, loss, losses, params_overflowed=False):
        what = "made parameters inf or NaN" if params_overflowed else f"gave the loss {loss}"
        super().__init__(f"training diverged: step {step} {what} (try a smaller lr)")
        self.step, self.loss, self.losses = step, loss, losses
        self.params_overflowed = params_overflowed


def train(layers, params, X, y, lr, steps, batch_size=None, seed=0, record_every=1,
          callback=None, loss="sum", running_mean=None, running_var=None, batches_seen=0):
    """Gradient descent on the loss ("sum": sum_i ||y_i - f(x_i)||^2, "mean": that over
    the rows of the evaluation) from ``params`` (left unmodified).

    layers : list of layer dicts (see bnfast.reference.network); params : (num_params,).
    X : (m, in_features); y : (m, out_features), or (m,) when out_features == 1.
    lr > 0: params <- params - lr * gradient, ``steps`` >= 0 times.
    batch_size : None (or m) for full batch; else disjoint batches of an EpochShuffler
        permutation of the rows (seeded by ``seed``), a new one when fewer than
        batch_size unused rows remain; BN statistics of the batch.
    record_every : the full learning-set loss is recorded before steps 0, k, 2k, ...
        (and after the last step when it is a multiple of k); callback(step, loss) is
        called at each record and a truthy return stops the run. Recorded losses are
        noise free.
    Noise (BN layers with "noise", section 8): each update's gradient is evaluated with
        fresh draws of a NoiseGenerator(seed) (draw_noise), also with full batch (then
        the recorded loss is a separate noise-free evaluation).
    running_mean, running_var : the running statistics before the run (lists with one
        (out,) array per BN layer in network order; None: zeros, ones), not modified.
        Each update moves them towards the batch statistics of its gradient evaluation
        (at the params before the update): f = momentum, or 1/n for momentum None with
        n = batches_seen + the number of this update (section 9).

    Returns TrainResult(params, losses, steps, stopped_by_callback, running_mean,
    running_var, batches_seen); raises TrainingDiverged when a computed loss is inf or
    NaN.
    """
    layers = check_layers(layers)
    params = check_params(layers, params)
    X, y = learning_set(layers, X, y)
    m = X.shape[0]
    lr, steps, batch_size, seed, record_every = train_args(
        layers, m, lr, steps, batch_size, seed, record_every, callback)
    loss = reduction(loss)
    running_mean, running_var = running_stats(layers, running_mean, running_var)
    batches_seen = integer(batches_seen, "batches_seen", 0)
    full = batch_size in (0, m)
    noisy = [i for i, layer in enumerate(layers)
             if layer.bn is not None and layer.bn.noise is not None]
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
            params = params - lr * grad
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
                       running_mean, running_var, batches_seen + done)
