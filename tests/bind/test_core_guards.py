"""The bindings guard every raw pointer they hand to the core: called directly (as only
bnfast's own Python layer should), a wrong array raises instead of reading or writing
out of bounds. The public API never reaches these messages for the guards that the
Python layer's conversions make impossible (dtype, contiguity, params length); the
shape rules the bindings own are tested through the public API in tests/kernels and
tests/nn."""

import numpy as np
import pytest

from bnfast import _core


def norm(kind="batch", **kw):
    spec = dict(kind=_core.NormKind.__members__[kind], trainable=True, gamma=[], beta=[],
                eps=1e-5)
    spec.update(kw)
    return _core.NormSpec(**spec)


def layer(**kw):
    spec = dict(in_features=2, out_features=1, activation=_core.Activation.identity,
                bias=True)
    spec.update(kw)
    return _core.LayerSpec(**spec)


@pytest.fixture
def net():
    return _core.Network([layer()])


X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
SGD = _core.OptimizerSpec(kind=_core.OptimizerKind.sgd)
Y = np.array([[8.0], [6.0], [11.0]])


@pytest.mark.parametrize("params,exc,match", [
    (np.zeros(2), ValueError, r"params must have shape \(3,\), got \(2,\)"),
    (np.zeros((3, 1)), ValueError, r"params must have shape \(3,\)"),
    (np.zeros(3, np.float32), TypeError, "params must be a C-contiguous float64 array"),
    (np.zeros(6)[::2], TypeError, "params must be a C-contiguous float64 array"),
    ([0.0, 0.0, 0.0], TypeError, "params must be a numpy.ndarray"),
])
def test_params_guard(net, params, exc, match):
    for call in (lambda: net.loss(params, X, Y), lambda: net.gradient(params, X, Y),
                 lambda: net.forward(params, X)):
        with pytest.raises(exc, match=match):
            call()


def test_learning_set_guards(net):
    p = np.zeros(3)
    with pytest.raises(TypeError, match="X must be a C-contiguous float64 array"):
        net.loss(p, X.astype(np.float32), Y)
    with pytest.raises(TypeError, match="y must be a C-contiguous float64 array"):
        net.loss(p, X, np.zeros((6, 1))[::2])
    with pytest.raises(ValueError, match=r"y must have shape \(m, 1\) or \(m,\), got \(3,\)"):
        net.loss(p, X, Y.ravel())


def test_train_guards(net):
    p = np.zeros(3)
    with pytest.raises(ValueError, match=r"optimizer_buffers must have shape \(3,\)"):
        net.train(p, np.zeros(0), 0, X, Y, 0.1, None, 1, 0, 0, 1, None,
                  _core.OptimizerSpec(kind=_core.OptimizerKind.sgd, momentum=0.9),
                  np.zeros(0), 0)
    with pytest.raises(ValueError, match=r"lr_per_step must have shape \(2,\)"):
        net.train(p, np.zeros(0), 0, X, Y, 0.1, np.ones(1), 2, 0, 0, 1, None, SGD,
                  np.zeros(0), 0)
    with pytest.raises(ValueError, match="batch_size 4 is larger than the 3 samples"):
        net.train(p, np.zeros(0), 0, X, Y, 0.1, None, 1, 4, 0, 1, None, SGD, np.zeros(0), 0)
    frozen = np.zeros(3)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="params must be writable"):
        net.train(frozen, np.zeros(0), 0, X, Y, 0.1, None, 1, 0, 0, 1, None, SGD, np.zeros(0), 0)


def test_layer_structure_is_checked_by_the_core():
    with pytest.raises(ValueError, match="at least one layer"):
        _core.Network([])
    with pytest.raises(ValueError, match=r"layers\[1\] has in_features 2 but layers\[0\]"):
        _core.Network([layer(out_features=3), layer()])
    with pytest.raises(ValueError, match="constant gamma and beta need out_features values"):
        _core.Network([layer(norm=norm(trainable=False, gamma=[1.0, 2.0], beta=[0.0]))])
    with pytest.raises(ValueError, match=r"layers\[0\]: 2 groups do not divide the 3 features"):
        _core.Network([layer(out_features=3, norm=norm("group", groups=2))])


def test_kernel_guards():
    x = np.arange(12.0).reshape(4, 3)
    out = np.empty_like(x)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        _core.forward_train(np.asfortranarray(x), None, None, 1e-5, out, None, None, 0.1)
    with pytest.raises(TypeError, match="weight must have dtype float64 at this level"):
        _core.forward_train(x, np.ones(3, np.float32), None, 1e-5, out, None, None, 0.1)
    with pytest.raises(ValueError, match="out must have the shape of x"):
        _core.forward_train(x, None, None, 1e-5, out[:2], None, None, 0.1)
    with pytest.raises(ValueError, match="mean is required"):
        _core.backward(x, x, None, np.ones(3), None, out)
    with pytest.raises(ValueError, match="invstd is required"):
        _core.backward(x, x, np.zeros(3), None, None, out)


def test_param_layout_is_the_cores():
    net = _core.Network([layer(in_features=3, out_features=2, norm=norm()),
                         layer(in_features=2, out_features=1, bias=False)])
    assert net.param_layout == [
        {"W": (0, (2, 3)), "b": (6, (2,)), "gamma": (8, (2,)), "beta": (10, (2,))},
        {"W": (12, (1, 2))}]
    assert net.num_params == 14
    assert layer(in_features=3, out_features=2, norm=norm()).num_params == 12
    assert layer(in_features=3, out_features=2, norm=norm("layer")).num_params == 12
    assert layer(in_features=3, out_features=2,
                 norm=norm("layer", trainable=False, gamma=[1.0] * 2, beta=[0.0] * 2)
                 ).num_params == 8
