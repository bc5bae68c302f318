"""The losses of a network's outputs F (m, out) in plain NumPy (docs/math/networks.md
sections 1, 6 and 15), each with dLoss/dF, before the division by m of the mean forms
("mean", "cross_entropy"), which backprop applies to the loss and the whole gradient.

    "sum", "mean"        sum_i ||y_i - F_i||^2,            dF = 2 (F - y)
    "cross_entropy", "cross_entropy_sum"
                         sum_i logsumexp(F_i) - F_i[y_i],   dF = softmax(F) - onehot(y)

The log-sum-exp is shifted by c_i = max_j Re F_ij (a constant: the value does not
depend on it), so logits up to ~1e300 in magnitude give finite losses and gradients:
loss_i = log(sum_j e^(F_ij - c_i)) - (F_i[y_i] - c_i), where the sum is >= 1.
Complex-safe (network_hvp's complex step): the shift reads real parts only.
"""

import numpy as np

from ._checks import CROSS_ENTROPY

__all__ = ["loss_sum", "loss_sum_and_gradient", "MEAN_LOSSES"]

MEAN_LOSSES = ("mean", "cross_entropy")  # divided by m (the rows of the evaluation)


def _shifted(F):
    with np.errstate(over="ignore", invalid="ignore"):  # inf logits: NaN, as diverged
        return F - np.max(F.real, axis=1, keepdims=True)


def _cross_entropy(F, y):
    """(sum_i loss_i, S = F - c, e^S, row sums of e^S)."""
    S = _shifted(F)
    E = np.exp(S)
    total = E.sum(axis=1)
    rows = np.arange(F.shape[0])
    return np.sum(np.log(total) - S[rows, y]), E, total


def loss_sum(F, y, loss):
    """The loss summed over rows (not yet divided by m for the mean forms)."""
    if loss in CROSS_ENTROPY:
        return _cross_entropy(F, y)[0]
    return np.sum((y - F) ** 2)


def loss_sum_and_gradient(F, y, loss):
    """(loss_sum(F, y, loss), its derivative by F (m, out))."""
    if loss in CROSS_ENTROPY:
        value, E, total = _cross_entropy(F, y)
        dF = E / total[:, None]
        dF[np.arange(F.shape[0]), y] -= 1.0
        return value, dF
    return np.sum((y - F) ** 2), 2.0 * (F - y)
