"""Gradient descent of docs/math/networks.md section 5 in plain NumPy (the oracle of
bnfast.train): same arguments after the network, same batches, same records."""

from dataclasses import dataclass

import numpy as np

from ._checks import check_layers, check_params, learning_set, train_args
from .network import loss_and_gradient, loss_of
from .shuffle import EpochShuffler

__all__ = ["TrainResult", "TrainingDiverged", "train"]


@dataclass(frozen=True)
class TrainResult:
    """The oracle's record of a run, field by field what bnfast.train returns: the final
    params, the recorded losses (before steps 0, r, 2r, ... and after the last step when
    r divides steps), the number of updates, and whether the callback stopped it."""

    params: np.ndarray
    losses: np.ndarray
    steps: int = 0
    stopped_by_callback: bool = False


class TrainingDiverged(FloatingPointError):
    """The loss became inf or NaN at update ``step`` (``loss``); ``losses`` holds what
    was recorded before."""

    def __init__(self, step, loss, losses):
        super().__init__(f"training diverged: the loss became {loss} at step {step} "
                         "(try a smaller lr)")
        self.step, self.loss, self.losses = step, loss, losses


def train(layers, params, X, y, lr, steps, batch_size=None, seed=0, record_every=1,
          callback=None):
    """Gradient descent on sum_i ||y_i - f(x_i)||^2 from ``params`` (left unmodified).

    layers : list of layer dicts (see bnfast.reference.network); params : (num_params,).
    X : (m, in_features); y : (m, out_features), or (m,) when out_features == 1.
    lr > 0: params <- params - lr * gradient, ``steps`` >= 0 times.
    batch_size : None (or m) for full batch; else disjoint batches of an EpochShuffler
        permutation of the rows (seeded by ``seed``), a new one when fewer than
        batch_size unused rows remain; BN statistics of the batch.
    record_every : the full learning-set loss is recorded before steps 0, k, 2k, ...
        (and after the last step when it is a multiple of k); callback(step, loss) is
        called at each record and a truthy return stops the run.

    Returns TrainResult(params, losses, steps, stopped_by_callback); raises
    TrainingDiverged when a computed loss is inf or NaN.
    """
    layers = check_layers(layers)
    params = check_params(layers, params)
    X, y = learning_set(layers, X, y)
    m = X.shape[0]
    lr, steps, batch_size, seed, record_every = train_args(
        layers, m, lr, steps, batch_size, seed, record_every, callback)
    full = batch_size in (0, m)
    shuffler = EpochShuffler(m, seed)
    perm, pos = None, m
    losses, done, by_callback = [], 0, False
    for step in range(steps + 1):
        record = step % record_every == 0
        last = step == steps
        if full and not last:
            loss, grad = loss_and_gradient(layers, params, X, y)
        elif record or last:  # the final parameters are checked even when unrecorded
            loss = loss_of(layers, params, X, y)
        if ((full and not last) or record or last) and not np.isfinite(loss):
            raise TrainingDiverged(step, loss, np.array(losses, dtype=np.float64))
        if record:
            losses.append(loss)
            if callback is not None and callback(step, loss):
                by_callback = not last
                break
        if last:
            break
        if not full:
            if pos + batch_size > m:
                perm, pos = shuffler.next_epoch(), 0
            rows = perm[pos:pos + batch_size]
            pos += batch_size
            batch_loss, grad = loss_and_gradient(layers, params, X[rows], y[rows])
            if not np.isfinite(batch_loss):
                raise TrainingDiverged(step, batch_loss,
                                       np.array(losses, dtype=np.float64))
        params = params - lr * grad
        done = step + 1
    return TrainResult(params, np.array(losses, dtype=np.float64), done, by_callback)
