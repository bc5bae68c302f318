"""The update rules of bnfast.train (docs/math/networks.md section 16): PyTorch's
torch.optim.SGD (momentum with dampening 0, Nesterov, L2 weight decay) and
torch.optim.Adam (bias-corrected, L2 weight decay, amsgrad off), computed by the C++
core (csrc/core/nn/optimizer.hpp) in torch's operation order.

An optimizer crosses to the core as one bound OptimizerSpec; its state (momentum buffer,
Adam's moments, the count of updates) comes back in TrainResult.optimizer_state and can
be handed to the next train call to continue the run.
"""

import math
from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validate import boolean, real_number, update_count

__all__ = ["Adam", "OptimizerState", "SGD"]


def _in_range(value, name, low, high=math.inf, high_open=False):
    """value as a float in [low, high] ([low, high) when high_open), finite."""
    value = real_number(value, name)
    ok = math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bound = f"[{low:g}, {high:g}{')' if high_open else ']'}" if math.isfinite(high) \
            else f">= {low:g} and finite"
        raise ValueError(f"{name} must be {'in ' if math.isfinite(high) else ''}{bound}, "
                         f"got {value}")
    return value


@dataclass(frozen=True)
class OptimizerState:
    """An optimizer's state after a run: ``buffers`` float64 (k, num_params) (SGD with
    momentum: the momentum buffer; Adam: exp_avg, then exp_avg_sq; plain SGD: k = 0) and
    ``updates``, the updates made with them (0 for a rule without buffers; Adam's bias
    correction counts them; SGD's momentum buffer starts as the first gradient when it is
    0)."""

    buffers: np.ndarray
    updates: int = 0


class SGD:
    """Gradient descent with PyTorch's torch.optim.SGD rule (dampening 0):

        g = grad + weight_decay * params
        buf = g (first update), else momentum * buf + g
        g = g + momentum * buf (nesterov), else buf (momentum > 0)
        params = params - lr * g

    momentum : float >= 0; nesterov : bool (needs momentum > 0); weight_decay : float >= 0.
    SGD() is plain gradient descent, params - lr * grad, the papers' update.
    """

    def __init__(self, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.momentum = _in_range(momentum, "momentum", 0.0)
        self.nesterov = boolean(nesterov, "nesterov")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        self.weight_decay = _in_range(weight_decay, "weight_decay", 0.0)

    def spec(self):
        """The core's bound OptimizerSpec."""
        return _core.OptimizerSpec(kind=_core.OptimizerKind.sgd, momentum=self.momentum,
                                   nesterov=self.nesterov, weight_decay=self.weight_decay)

    def __repr__(self):
        return (f"SGD(momentum={self.momentum}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay})")


class Adam:
    """Adam with PyTorch's torch.optim.Adam rule (bias-corrected, L2 weight decay):

        g = grad + weight_decay * params;  t = updates + 1
        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
        params = params - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    betas : (beta1, beta2), each in [0, 1); eps : float > 0; weight_decay : float >= 0.
    """

    def __init__(self, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise TypeError("betas must be a pair (beta1, beta2)")
        self.betas = (_in_range(betas[0], "betas[0]", 0.0, 1.0, high_open=True),
                      _in_range(betas[1], "betas[1]", 0.0, 1.0, high_open=True))
        self.eps = _in_range(eps, "eps", 0.0)
        if self.eps == 0:
            raise ValueError("eps must be > 0")
        self.weight_decay = _in_range(weight_decay, "weight_decay", 0.0)

    def spec(self):
        """The core's bound OptimizerSpec."""
        return _core.OptimizerSpec(kind=_core.OptimizerKind.adam, beta1=self.betas[0],
                                   beta2=self.betas[1], eps=self.eps,
                                   weight_decay=self.weight_decay)

    def __repr__(self):
        return f"Adam(betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay})"


def start_state(optimizer, num_params, state):
    """The buffers (a new float64 (k, num_params) array) and update count a run starts
    from: ``state`` (an OptimizerState of an earlier run with this optimizer), or zeros."""
    k = optimizer.spec().buffers
    if state is None:
        return np.zeros((k, num_params)), 0
    if not isinstance(state, OptimizerState):
        raise TypeError("optimizer_state must be a bnfast.OptimizerState (a TrainResult's) "
                        f"or None, got {type(state).__name__}")
    buffers = np.array(state.buffers, dtype=np.float64)
    if buffers.shape != (k, num_params):
        raise ValueError(f"optimizer_state has buffers of shape {buffers.shape}, but this "
                         f"optimizer on this network keeps ({k}, {num_params})")
    if not np.all(np.isfinite(buffers)):
        raise ValueError("optimizer_state's buffers must be finite")
    return buffers, update_count(state.updates, "optimizer_state.updates")
