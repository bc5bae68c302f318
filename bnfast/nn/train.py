"""Native gradient-descent training: the whole loop runs in C++ with the GIL released
(docs/math/networks.md)."""

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validate import integer, positive_finite
from .network import Network

__all__ = ["TrainResult", "TrainingDiverged", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    params : float64 (num_params,), the parameters after the last step.
    losses : float64 array; losses[k] is the full learning-set loss before step
        k * record_every (the last entry is after the final step when steps is a
        multiple of record_every).
    steps : int, the number of updates applied.
    stopped_by_callback : bool, whether the callback ended the run early.
    """

    params: np.ndarray
    losses: np.ndarray
    steps: int = 0
    stopped_by_callback: bool = False


class TrainingDiverged(FloatingPointError):
    """The loss became inf or NaN, or an update made a parameter inf or NaN
    (``params_overflowed``; the loss can stay finite, e.g. a ReLU unit pushed to -inf).
    ``step`` and ``loss`` say where; ``losses`` holds what was recorded before. The
    network's params and running statistics are left as they were."""

    def __init__(self, step, loss, losses, params_overflowed=False):
        what = (f"the update of step {step} made parameters inf or NaN (the loss was {loss})"
                if params_overflowed else f"the loss became {loss} at step {step}")
        super().__init__(f"training diverged: {what} (try a smaller lr); the network's "
                         "params were left unchanged")
        self.step, self.loss, self.losses = step, loss, losses
        self.params_overflowed = params_overflowed


def _train_args(lr, steps, batch_size, seed, record_every, callback):
    """The values of a train call (the bindings check batch_size against the data)."""
    lr = positive_finite(lr, "lr")
    steps = integer(steps, "steps", 0)
    batch_size = 0 if batch_size is None else integer(batch_size, "batch_size", 1)
    seed = integer(seed, "seed", 0)
    if seed >= 2**64:
        raise ValueError("seed must be < 2**64")
    record_every = integer(record_every, "record_every", 1)
    for name, value in (("steps", steps), ("batch_size", batch_size),
                        ("record_every", record_every)):
        if value >= 2**63:
            raise ValueError(f"{name} must be < 2**63, got {value}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable (step, loss) -> bool, or None")
    return lr, steps, batch_size, seed, record_every


def train(net, X, y, lr, steps, batch_size=None, seed=0, record_every=1, callback=None):
    """Train ``net`` by gradient descent on its loss (sum_i ||y_i - f(x_i)||^2, or that
    / m with Network(loss="mean")).

    Parameters
    ----------
    net : bnfast.Network; its params are the starting point and receive the result.
    X : (m, in_features); y : (m, out_features), or (m,) when out_features == 1.
    lr : float > 0, the step size: params <- params - lr * gradient.
    steps : int >= 0, the number of updates.
    batch_size : None for full-batch gradient descent; else mini-batch SGD over
        disjoint batches of this size, reshuffled each epoch from ``seed`` (the
        m mod batch_size left-over samples of an epoch are not used in that epoch).
        BN statistics are those of the batch. Every step also updates the running
        statistics of the BN layers from its batch (net.running_mean/running_var), and
        draws the noise of noisy BN layers from ``seed``.
    record_every : record the full learning-set loss every this many steps.
    callback : optional callable(step, loss) called at each record, with the GIL held;
        returning True stops the run (the result holds the parameters at that step).

    Returns
    -------
    TrainResult(params, losses, steps, stopped_by_callback); net.params == result.params.

    Raises TrainingDiverged (a FloatingPointError) if the loss becomes inf or NaN, and
    KeyboardInterrupt on Ctrl-C; in both cases net.params and the running statistics are
    left unchanged.
    """
    return _train(net, X, y, lr, steps, batch_size, seed, record_every, callback)[0]


def _train(net, X, y, lr, steps, batch_size=None, seed=0, record_every=1, callback=None,
           allow_tiny=True):
    """train(), and whether the specialised step of one BN neuron ran (nn/tiny_step.hpp);
    allow_tiny=False forces the general step (tests compare the two)."""
    if not isinstance(net, Network):
        raise TypeError(f"net must be a bnfast.Network, got {type(net).__name__}")
    X, y = net.learning_set(X, y)
    lr, steps, batch_size, seed, record_every = _train_args(
        lr, steps, batch_size, seed, record_every, callback)
    # The run works on copies, committed only when it succeeds (a failed call changes
    # nothing).
    params, running = net.params, net._running.copy()
    losses, outcome, updates = net._core.train(params, running, net._updates, X, y, lr,
                                               steps, batch_size, seed, record_every,
                                               callback, allow_tiny)
    if outcome.reason == _core.StopReason.diverged:
        raise TrainingDiverged(outcome.diverged_step, outcome.diverged_loss, losses,
                               outcome.params_overflowed)
    net.params = params
    net._running, net._updates = running, updates
    return (TrainResult(params.copy(), losses, outcome.steps_done,
                        outcome.reason == _core.StopReason.requested), outcome.tiny_path)
