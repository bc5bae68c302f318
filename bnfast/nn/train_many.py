"""bnfast.train_many: many instances of one BN neuron trained at once, in SIMD lanes and
threads (csrc/core/nn/train_many.hpp), for sweeps such as Lemma 4.5's."""

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validate import integer, positive_finite
from .data import _float64
from .network import Network
from .train import check_records_fit

__all__ = ["TrainManyResult", "train_many"]

# The magnitude the one-neuron step handles (larger data: bnfast.train's general path).
_LARGEST = 2.0 ** 200


@dataclass(frozen=True)
class TrainManyResult:
    """What train_many produced, per instance i (k instances).

    params : float64 (k, num_params): the params after the last update applied; a
        stopped instance keeps those of the step it stopped at (whose loss, or whose
        update, was not finite).
    losses : float64 (k, steps // record_every + 1): losses[i, j] is instance i's loss
        before step j * record_every (the last column is after the final step when
        record_every divides steps), as bnfast.train records them; NaN where a stopped
        instance recorded nothing.
    steps : int64 (k,): the updates applied (for a stopped instance, the step it stopped
        at).
    diverged : bool (k,): the loss became inf or NaN, or an update made a parameter inf or
        NaN (then also params_overflowed[i]); bnfast.train would raise TrainingDiverged.
    params_overflowed : bool (k,).
    zero_variance : bool (k,): eps == 0 and the neuron's pre-activations were constant
        over the batch; bnfast.train would raise ZeroVarianceError.
    """

    params: np.ndarray
    losses: np.ndarray
    steps: np.ndarray
    diverged: np.ndarray
    params_overflowed: np.ndarray
    zero_variance: np.ndarray


def _data(a, name):
    """a as a float64 C-contiguous array of finite values of moderate magnitude (its
    shape is the bindings' to check)."""
    a = _float64(a, name)
    if not np.all(np.abs(a) <= _LARGEST):  # NaN fails too
        raise ValueError(f"{name} must hold finite values of magnitude <= 2**200")
    return a


def train_many(net, params, X, y, lr, steps, record_every=None):
    """Train k instances of the one-neuron network ``net`` by full-batch gradient
    descent, each as bnfast.train would train it (the same values, bit for bit).

    Parameters
    ----------
    net : bnfast.Network with one Dense layer of out_features 1, in_features <= 8, the
        identity activation and batch normalization (norm "std", no noise; gamma/beta
        frozen or trainable, any eps, with or without bias; loss "sum" or "mean"). It
        gives the architecture only: its params and running statistics are not used or
        changed (train_many updates no running statistics).
    params : (k, net.num_params) initial params, one row per instance.
    X : (m, in_features) shared by all instances, or (k, m, in_features); 2 <= m <= 64.
    y : (m,) or (m, 1) shared, or (k, m) or (k, m, 1).
    lr : float > 0, or (k,) per instance.
    steps : int >= 0, updates per instance.
    record_every : int >= 1, or None for steps (the first and the last loss).

    Returns
    -------
    TrainManyResult(params, losses, steps, diverged, params_overflowed, zero_variance),
    all with the instances on axis 0. A diverged instance stops (no exception); the
    others go on. Results do not depend on the thread count (bnfast.set_num_threads).

    Raises TypeError/ValueError naming the argument for wrong types, shapes or values
    (nothing is computed then), and KeyboardInterrupt on Ctrl-C (nothing is returned).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a bnfast.Network, got {type(net).__name__}")
    if not net._core.one_neuron:
        raise ValueError(
            "net must be one Dense layer with out_features 1, in_features <= 8, the "
            "identity activation and batch normalization (norm 'std', no noise): "
            "train_many trains that network (Lemma 4.5's setting); train others with "
            "bnfast.train")
    P = net.num_params
    p = np.array(_float64(params, "params"), order="C")  # a copy: the run's state
    if p.ndim != 2 or p.shape[1] != P:
        raise ValueError(f"params must have shape (k, {P}), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("params must be finite")
    k = p.shape[0]
    X = _data(X, "X")
    y = _data(y, "y")
    if isinstance(lr, np.ndarray) and lr.ndim > 0 or isinstance(lr, (list, tuple)):
        lr = _float64(lr, "lr")
        if lr.shape != (k,):
            raise ValueError(f"lr must be a number or have shape ({k},), got {lr.shape}")
        if not np.all((lr > 0) & np.isfinite(lr)):
            raise ValueError("lr must hold finite numbers > 0")
    else:
        lr = np.full(k, positive_finite(lr, "lr"))
    steps = integer(steps, "steps", 0)
    record_every = steps if record_every is None else integer(record_every, "record_every", 1)
    record_every = max(record_every, 1)
    # steps + 1 (the final loss is step `steps`) must fit an int64
    if steps >= 2**63 - 1 or record_every >= 2**63:
        raise ValueError("steps must be < 2**63 - 1 and record_every < 2**63")
    check_records_fit(k * (steps // record_every + 1), "k * (steps // record_every + 1)",
                      "raise record_every, or train fewer instances per call")
    losses = np.full((k, steps // record_every + 1), np.nan)
    done = np.zeros(k, dtype=np.int64)
    status = np.zeros(k, dtype=np.int8)
    net._core.train_many(p, losses, done, status, X, y, lr, steps, record_every)
    code = {name: int(member) for name, member in _core.ManyStatus.__members__.items()}
    overflowed = status == code["overflowed"]
    return TrainManyResult(p, losses, done, (status == code["diverged"]) | overflowed,
                           overflowed, status == code["zero_variance"])
