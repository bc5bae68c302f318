"""Native gradient-descent training: the whole loop runs in C++ with the GIL released
(docs/math/networks.md)."""

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validate import compute_dtype, integer, positive_finite
from .network import Network
from .optimizers import SGD, Adam, OptimizerState, start_state

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
    optimizer_state : OptimizerState, the optimizer's buffers and update count after the
        run (hand it to the next train call to continue the run).
    sharpness : None, or (steps, values) with sharpness_every: int64 and float64 arrays,
        the largest eigenvalue of the full-data train-mode loss's Hessian before those
        steps (compare with 2 / lr: gradient descent is stable below it).
    """

    params: np.ndarray
    losses: np.ndarray
    steps: int = 0
    stopped_by_callback: bool = False
    optimizer_state: OptimizerState = None
    sharpness: tuple = None


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


def _learning_rates(lr, steps):
    """(lr, lr_per_step): a float > 0 and None, or the first ``steps`` rates of an array
    (each finite and > 0; lr then its first rate)."""
    if np.ndim(lr) == 0:
        return positive_finite(lr, "lr"), None
    rates = np.asarray(lr)
    compute_dtype(rates, "lr")
    rates = np.asarray(rates, dtype=np.float64)
    if rates.ndim != 1 or rates.shape[0] < steps:
        raise ValueError(f"lr must be a number or a 1-D array of at least steps = {steps} "
                         f"per-step rates, got shape {rates.shape}")
    rates = np.ascontiguousarray(rates[:steps])
    if not np.all(np.isfinite(rates) & (rates > 0)):
        raise ValueError("lr: every per-step rate must be finite and > 0")
    return (float(rates[0]) if steps else 1.0), rates


#: The most loss records a run without a callback may ask for up front: 2**28 float64
#: values are 2 GiB; a run that needs more must record less often (or stop by callback).
MAX_RECORDS = 2**28


def check_records_fit(records, counted, remedy):
    """Refuses, before any work, a run whose loss records (``records``, the value of
    the expression ``counted``) would exceed MAX_RECORDS; ``remedy`` says what to do."""
    if records > MAX_RECORDS:
        raise ValueError(f"{counted} = {records} loss records would not fit in memory (at "
                         f"most {MAX_RECORDS}): {remedy}")


def _train_args(steps, batch_size, seed, record_every, callback, optimizer,
                sharpness_every=None):
    """The values of a train call (the bindings check batch_size against the data)."""
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
    if callback is None:
        check_records_fit(steps // record_every + 1, "steps // record_every + 1",
                          "raise record_every, or pass a callback that stops the run")
    sharpness_every = (0 if sharpness_every is None
                       else integer(sharpness_every, "sharpness_every", 1, 2**63 - 1))
    if optimizer is None:
        optimizer = SGD()
    if not isinstance(optimizer, (SGD, Adam)):
        raise TypeError("optimizer must be a bnfast.SGD, a bnfast.Adam or None, got "
                        f"{type(optimizer).__name__}")
    return steps, batch_size, seed, record_every, optimizer, sharpness_every


def train(net, X, y, lr, steps, batch_size=None, seed=0, record_every=1, callback=None,
          optimizer=None, optimizer_state=None, sharpness_every=None):
    """Train ``net`` by gradient descent on its loss.

    Parameters
    ----------
    net : bnfast.Network; its params are the starting point and receive the result.
    X : (m, in_features); y : (m, out_features) targets, or (m,) when out_features == 1;
        for the cross-entropy losses, (m,) class labels.
    lr : float > 0, the step size; or a 1-D array of per-step rates (the first ``steps``
        are used), each finite and > 0.
    steps : int >= 0, the number of updates.
    batch_size : None (or m) for full-batch gradient descent on the rows in their
        order; else mini-batch SGD over disjoint batches of this size, reshuffled each
        epoch from ``seed`` (the m mod batch_size left-over samples of an epoch are not
        used in that epoch).
        BN statistics are those of the batch. Every step also updates the running
        statistics of the BN layers from its batch (net.running_mean/running_var), and
        draws the noise of noisy BN layers from ``seed``.
    record_every : record the full learning-set loss every this many steps.
    callback : optional callable(step, loss) called at each record, with the GIL held;
        returning True stops the run (the result holds the parameters at that step).
    optimizer : None or bnfast.SGD() for params <- params - lr * gradient (the papers'
        update); bnfast.SGD(momentum, nesterov, weight_decay) or bnfast.Adam(betas, eps,
        weight_decay) for PyTorch's rules (docs/math/networks.md section 16).
    optimizer_state : None (fresh buffers) or the ``optimizer_state`` of an earlier
        run's TrainResult with the same optimizer: a full-batch run continued this way
        equals one longer run (mini-batch shuffles and BN noise start again from seed).
    sharpness_every : None, or K >= 1: record the sharpness (the largest eigenvalue of the
        Hessian of the full-data, train-mode loss) before steps 0, K, 2K, ... in C++,
        by a few Lanczos steps on exact Hessian-vector products warm-started from the
        last record (20 for the first record, 4 after: ~10 gradients' work a record;
        docs/math/curvature.md). The one-neuron fast step is not used then.

    Returns
    -------
    TrainResult(params, losses, steps, stopped_by_callback, optimizer_state, sharpness);
    net.params == result.params.

    Raises TrainingDiverged (a FloatingPointError) if the loss becomes inf or NaN, and
    KeyboardInterrupt on Ctrl-C; in both cases net.params and the running statistics are
    left unchanged.
    """
    return _train(net, X, y, lr, steps, batch_size, seed, record_every, callback,
                  optimizer, optimizer_state, sharpness_every)[0]


def _train(net, X, y, lr, steps, batch_size=None, seed=0, record_every=1, callback=None,
           optimizer=None, optimizer_state=None, sharpness_every=None, allow_one_neuron=True):
    """train(), and whether the specialised step of one BN neuron ran (nn/one_neuron_step.hpp);
    allow_one_neuron=False forces the general step (tests compare the two)."""
    if not isinstance(net, Network):
        raise TypeError(f"net must be a bnfast.Network, got {type(net).__name__}")
    X, y = net.learning_set(X, y)
    for name, values in (("X", X), ("y", y)):
        if not np.all(np.isfinite(values)):
            bad = np.argwhere(~np.isfinite(values))[0]
            raise ValueError(f"{name} holds {values[tuple(bad)]} at {tuple(int(i) for i in bad)}:"
                             " training needs finite data")
    steps, batch_size, seed, record_every, optimizer, sharpness_every = _train_args(
        steps, batch_size, seed, record_every, callback, optimizer, sharpness_every)
    lr, lr_per_step = _learning_rates(lr, steps)
    buffers, updates_done = start_state(optimizer, net.num_params, optimizer_state)
    # The run works on copies, committed only when it succeeds (a failed call changes
    # nothing).
    params, running, updates = net._training_state()
    losses, outcome, updates, optimizer_updates = net._core.train(
        params, running, updates, X, y, lr, lr_per_step, steps, batch_size, seed,
        record_every, callback, optimizer.spec(), buffers.reshape(-1), updates_done,
        sharpness_every, allow_one_neuron)
    if outcome.reason == _core.StopReason.diverged:
        raise TrainingDiverged(outcome.diverged_step, outcome.diverged_loss, losses,
                               outcome.params_overflowed)
    net._commit_training(params, running, updates)
    state = OptimizerState(buffers, optimizer_updates)
    sharpness = None if not sharpness_every else (
        np.array(outcome.sharpness_steps, dtype=np.int64), np.array(outcome.sharpness))
    return (TrainResult(params.copy(), losses, outcome.steps_done,
                        outcome.reason == _core.StopReason.requested, state, sharpness),
            outcome.one_neuron_path)
