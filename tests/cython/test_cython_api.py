"""The Cython C API (bnfast/cython_kernels.pxd): a third-party extension (third_party.pyx)
is built against the installed package, cimports the kernels, calls them without the GIL
and gets bnfast.batch_norm_forward/backward's results bit for bit; the error codes."""

import importlib
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bnfast

pytestmark = pytest.mark.timeout(300)

SETUP = textwrap.dedent("""
    from Cython.Build import cythonize
    from setuptools import Extension, setup
    setup(name="third_party", ext_modules=cythonize(
        [Extension("third_party", ["third_party.pyx"])],
        include_path={include!r}, quiet=True))
""")


@pytest.fixture(scope="module")
def third_party(tmp_path_factory):
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    where = tmp_path_factory.mktemp("third_party")
    shutil.copy(os.path.join(os.path.dirname(__file__), "third_party.pyx"), where)
    # Cython finds bnfast/cython_kernels.pxd next to the installed package.
    package_parent = os.path.dirname(os.path.dirname(bnfast.__file__))
    (where / "setup.py").write_text(SETUP.format(include=[package_parent]))
    p = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=where,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("third_party")
    finally:
        sys.path.remove(str(where))


def test_the_pxd_and_pyx_are_installed_with_the_package():
    folder = os.path.dirname(bnfast.__file__)
    assert os.path.exists(os.path.join(folder, "cython_kernels.pxd"))
    from bnfast import cython_kernels
    assert sorted(cython_kernels.__pyx_capi__) == [
        "batch_norm_backward_f32", "batch_norm_backward_f64", "batch_norm_forward_f32",
        "batch_norm_forward_f64"]
    assert cython_kernels.STATUS[0] == "ok" and cython_kernels.STATUS[1].startswith("zero")


CASES = [((5, 3, 1), np.float64), ((64, 7, 9), np.float64), ((2, 1, 1), np.float64),
         ((16, 4, 25), np.float32), ((3, 2, 1), np.float32)]


@pytest.mark.parametrize("shape, dtype", CASES)
@pytest.mark.parametrize("affine", [False, True])
def test_forward_and_backward_equal_the_python_api(third_party, shape, dtype, affine):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    weight = rng.standard_normal(c) if affine else None
    bias = rng.standard_normal(c) if affine else None
    code, y, mean, invstd = third_party.forward(x, weight, bias, 1e-5)
    assert code == 0
    y_ref, mean_ref, invstd_ref = bnfast.batch_norm_forward(x, weight, bias, eps=1e-5)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(mean, mean_ref)
    np.testing.assert_array_equal(invstd, invstd_ref)
    code, gx, gw, gb = third_party.backward(g, x, mean, invstd, weight)
    assert code == 0
    gx_ref, gw_ref, gb_ref = bnfast.batch_norm_backward(g, x, mean, invstd, weight)
    np.testing.assert_array_equal(gx, gx_ref)
    np.testing.assert_array_equal(gw, gw_ref)
    np.testing.assert_array_equal(gb, gb_ref)


def test_zero_variance_with_eps_zero_is_code_1_and_writes_nothing(third_party):
    x = np.ones((4, 2, 1))
    x[:, 1, 0] = [1, 2, 3, 4]          # channel 0 is constant
    code, y, mean, invstd = third_party.forward(x, None, None, 0.0)
    assert code == 1
    # the sentinels the caller wrote: untouched, statistics included (as the .pxd promises)
    assert np.all(y == -7.0) and np.all(mean == -7.0) and np.all(invstd == -7.0)


@pytest.mark.parametrize("shape, eps", [((1, 3, 1), 1e-5),      # one value per channel
                                        ((4, 3, 1), -1.0),
                                        ((4, 3, 1), float("nan")),
                                        ((4, 3, 1), float("inf"))])
def test_bad_arguments_are_code_2_and_write_nothing(third_party, shape, eps):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    code, y, mean, invstd = third_party.forward(x, None, None, eps)
    assert code == 2
    assert np.all(y == -7.0) and np.all(mean == -7.0)


def test_a_null_output_is_code_2(third_party):
    assert third_party.forward_null_output(np.ones((4, 3, 1))) == 2
