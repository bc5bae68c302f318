# Type stubs of bnfast._core, the compiled module (csrc/bind). Private: the public API is
# bnfast's. tests/bind/test_core_stubs.py checks these names and signatures against the built
# module. Read-only properties are written as Final attributes.
from collections.abc import Callable, Sequence
from typing import ClassVar, Final, SupportsFloat, SupportsIndex, SupportsInt

import numpy
import numpy.typing

_Int = SupportsInt | SupportsIndex
_Float = SupportsFloat | SupportsIndex
_Vector = numpy.typing.NDArray[numpy.float64]


class ZeroVarianceError(ValueError): ...

# ---- runtime (bind_runtime.cpp)
def set_num_threads(n: _Int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
def empty(shape: Sequence[_Int], dtype: numpy.dtype) -> numpy.ndarray: ...
def clear_buffer_cache() -> None: ...
def cached_buffer_bytes() -> int: ...

# ---- kernels (bind_kernels.cpp)
def forward_train(x: object, weight: object, bias: object, eps: _Float, out: object,
                  running_mean: object, running_var: object,
                  momentum: _Float, axis: _Int = ...) -> tuple[_Vector, _Vector, int]: ...
def forward_train_fast(x: object, weight: object, bias: object, eps: _Float,
                       out: object) -> tuple[numpy.ndarray, _Vector, _Vector] | None: ...
def forward_eval(x: object, running_mean: object, running_var: object, weight: object,
                 bias: object, eps: _Float, out: object, axis: _Int = ...) -> None: ...
def backward(grad_y: object, x: object, mean: object, invstd: object, weight: object,
             out: object, axis: _Int = ...) -> tuple[_Vector, _Vector]: ...
def backward_fast(grad_y: object, x: object, mean: object, invstd: object, weight: object,
                  out: object) -> tuple[numpy.ndarray, _Vector, _Vector] | None: ...
def moments(x: object, axis: _Int = ...) -> tuple[int, _Vector, _Vector, _Vector, _Vector]: ...
def merge_moments(count: object, mean: object, mean_low: object, m2: object,
                  m2_low: object) -> tuple[_Vector, _Vector, _Vector, _Vector]: ...

# ---- networks (bind_nn.cpp)
class _Enum:  # what pybind11's enums have in common (not a runtime class)
    def __init__(self, value: _Int) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __int__(self) -> int: ...
    def __ne__(self, other: object) -> bool: ...
    name: Final[str]
    value: Final[int]

class Activation(_Enum):
    __members__: ClassVar[dict[str, Activation]]
    identity: ClassVar[Activation]
    sigmoid: ClassVar[Activation]
    tanh: ClassVar[Activation]
    relu: ClassVar[Activation]

class NormKind(_Enum):
    __members__: ClassVar[dict[str, NormKind]]
    batch: ClassVar[NormKind]
    layer: ClassVar[NormKind]
    group: ClassVar[NormKind]

class NormScale(_Enum):
    __members__: ClassVar[dict[str, NormScale]]
    std: ClassVar[NormScale]
    l1: ClassVar[NormScale]
    l2: ClassVar[NormScale]
    linf: ClassVar[NormScale]

class LossKind(_Enum):
    __members__: ClassVar[dict[str, LossKind]]
    sum: ClassVar[LossKind]
    mean: ClassVar[LossKind]
    cross_entropy: ClassVar[LossKind]
    cross_entropy_sum: ClassVar[LossKind]

class NoiseSpec:
    def __init__(self, *, n_mu: _Float, n_sigma: _Float, r_mu: _Float,
                 r_sigma: _Float) -> None: ...
    n_mu: Final[float]
    n_sigma: Final[float]
    r_mu: Final[float]
    r_sigma: Final[float]

class NormSpec:
    def __init__(self, *, kind: NormKind, groups: _Int = ..., scale: NormScale = ...,
                 trainable: bool, gamma: Sequence[_Float], beta: Sequence[_Float],
                 eps: _Float, momentum: _Float = ..., cumulative: bool = ...) -> None: ...
    kind: Final[NormKind]
    groups: Final[int]
    scale: Final[NormScale]
    trainable: Final[bool]
    eps: Final[float]
    momentum: Final[float]
    cumulative: Final[bool]

class LayerKind(_Enum):
    __members__: ClassVar[dict[str, LayerKind]]
    dense: ClassVar[LayerKind]
    conv: ClassVar[LayerKind]
    max_pool: ClassVar[LayerKind]
    avg_pool: ClassVar[LayerKind]
    flatten: ClassVar[LayerKind]

class LayerSpec:
    def __init__(self, *, kind: LayerKind = ..., in_features: _Int = ...,
                 out_features: _Int = ..., kernel: Sequence[_Int] = ...,
                 stride: Sequence[_Int] = ..., padding: Sequence[_Int] = ...,
                 activation: Activation = ..., bias: bool = ...,
                 norm: NormSpec | None = ..., noise: NoiseSpec | None = ...,
                 skip_from: _Int = ...) -> None: ...
    kind: Final[LayerKind]
    kernel: Final[list[int]]
    stride: Final[list[int]]
    padding: Final[list[int]]
    in_features: Final[int]
    out_features: Final[int]
    activation: Final[Activation]
    bias: Final[bool]
    norm: Final[NormSpec | None]
    noise: Final[NoiseSpec | None]
    skip_from: Final[int]
    num_params: Final[int]

class OptimizerKind(_Enum):
    __members__: ClassVar[dict[str, OptimizerKind]]
    sgd: ClassVar[OptimizerKind]
    adam: ClassVar[OptimizerKind]

class OptimizerSpec:
    def __init__(self, *, kind: OptimizerKind, momentum: _Float = ..., nesterov: bool = ...,
                 beta1: _Float = ..., beta2: _Float = ..., eps: _Float = ...,
                 weight_decay: _Float = ...) -> None: ...
    kind: Final[OptimizerKind]
    momentum: Final[float]
    nesterov: Final[bool]
    beta1: Final[float]
    beta2: Final[float]
    eps: Final[float]
    weight_decay: Final[float]
    buffers: Final[int]

class ManyStatus(_Enum):
    __members__: ClassVar[dict[str, ManyStatus]]
    finished: ClassVar[ManyStatus]
    diverged: ClassVar[ManyStatus]
    overflowed: ClassVar[ManyStatus]
    zero_variance: ClassVar[ManyStatus]

class StopReason(_Enum):
    __members__: ClassVar[dict[str, StopReason]]
    finished: ClassVar[StopReason]
    requested: ClassVar[StopReason]
    interrupted: ClassVar[StopReason]
    diverged: ClassVar[StopReason]

class TrainOutcome:
    def __init__(self, *args: object, **kwargs: object) -> None: ...
    reason: Final[StopReason]
    steps_done: Final[int]
    diverged_step: Final[int]
    diverged_loss: Final[float]
    params_overflowed: Final[bool]
    one_neuron_path: Final[bool]
    sharpness_steps: Final[list[int]]
    sharpness: Final[list[float]]

class Network:
    def __init__(self, layers: Sequence[LayerSpec], loss: LossKind = ...) -> None: ...
    num_params: Final[int]
    in_features: Final[int]
    out_features: Final[int]
    param_layout: Final[list[dict[str, tuple[int, tuple[int, ...]]]]]
    num_running: Final[int]
    running_offsets: Final[list[int]]
    one_neuron: Final[bool]
    def loss(self, params: object, X: object, y: object, running: object = ...) -> float: ...
    def normalization_input(self, params: object, running: object, X: object,
                            layer: _Int) -> _Vector: ...
    def gradient(self, params: object, X: object, y: object,
                 running: object = ...) -> tuple[float, _Vector]: ...
    def forward(self, params: object, X: object) -> _Vector: ...
    def predict(self, params: object, running: object, X: object) -> _Vector: ...
    def hvp(self, params: object, X: object, y: object, v: object,
            running: object = ...) -> tuple[float, _Vector, _Vector]: ...
    def train(self, params: numpy.ndarray, running: numpy.ndarray, updates: _Int, X: object,
              y: object, lr: _Float, lr_per_step: object, steps: _Int, batch_size: _Int,
              seed: _Int, record_every: _Int,
              callback: Callable[[int, float], object] | None, optimizer: OptimizerSpec,
              optimizer_buffers: numpy.ndarray, optimizer_updates: _Int,
              sharpness_every: _Int = ...,
              allow_one_neuron: bool = ...) -> tuple[_Vector, TrainOutcome, int, int]: ...
    def train_many(self, params: numpy.ndarray, losses: numpy.ndarray,
                   steps_done: numpy.ndarray, status: numpy.ndarray, X: object, y: object,
                   lr: object, steps: _Int, record_every: _Int) -> bool: ...

class HessianAt:
    def __init__(self, net: Network, params: object, X: object, y: object,
                 running: object = ...) -> None: ...
    size: Final[int]
    tangent_passes: Final[bool]
    def apply(self, v: object) -> _Vector: ...

class Lanczos:
    def __init__(self, start: object, locked: object = ...) -> None: ...
    def advance(self, op: HessianAt | Callable[[_Vector], object], k: _Int, which: str,
                tol: _Float, budget: _Int, seconds: _Float) -> str: ...
    def restart(self, direction: object) -> bool: ...
    def ritz_vectors(self, S: object) -> numpy.ndarray: ...
    n: Final[int]
    dim: Final[int]
    size: Final[int]
    exhausted: Final[bool]
    alpha: Final[_Vector]
    beta: Final[_Vector]
    basis: Final[numpy.ndarray]
    ritz_scale: float
    residual: Final[float]

def tridiagonal_eigen(diag: object, off: object) -> tuple[_Vector, _Vector]: ...

def epoch_permutations(m: _Int, seed: _Int, epochs: _Int) -> list[int]: ...
