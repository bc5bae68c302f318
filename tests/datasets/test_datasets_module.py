"""bnfast.datasets as a module: loaded on first use, light to import (scikit-learn and
mnist1d only when a call needs them), a clear message when they are missing, and the
Dataset it returns."""

import dataclasses
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import bnfast
from bnfast import datasets


def test_loaded_on_first_use_and_light():
    code = ("import sys, bnfast; first = 'bnfast.datasets' in sys.modules; "
            "d = bnfast.datasets; "
            "heavy = [m for m in ('sklearn', 'mnist1d', 'scipy', 'matplotlib', 'requests') "
            "if m in sys.modules]; "
            "print(first, d.__name__, d.digits.__name__, d.mnist1d.__name__, heavy)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=tempfile.gettempdir())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False bnfast.datasets digits mnist1d []"
    assert "datasets" in dir(bnfast)


@pytest.mark.parametrize("function, modules, package", [
    (datasets.digits, ("sklearn", "sklearn.datasets"), "scikit-learn"),
    (datasets.mnist1d, ("mnist1d", "mnist1d.data"), "the mnist1d package"),
])
def test_a_missing_package_says_what_to_install(monkeypatch, function, modules, package):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)   # import raises ImportError
    with pytest.raises(ImportError, match=rf"needs {package}.*pip install 'bnfast\[data\]'"):
        function()


def test_bad_arguments_raise_before_importing_anything(monkeypatch):
    for module in ("sklearn", "sklearn.datasets", "mnist1d", "mnist1d.data"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ValueError, match="split"):
        datasets.digits(split=1.5)
    with pytest.raises(ValueError, match="samples"):
        datasets.mnist1d(samples=-10)


def test_dataset_unpacks_is_frozen_and_shows_shapes():
    parts = (np.zeros((3, 1, 40)), np.arange(3), np.zeros((0, 1, 40)),
             np.zeros(0, dtype=np.int64))
    d = datasets.Dataset(*parts)
    X_train, y_train, X_test, y_test = d
    assert X_train is parts[0] and y_test is parts[3]
    assert [f.name for f in dataclasses.fields(d)] == ["X_train", "y_train", "X_test",
                                                       "y_test"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.X_train = None
    assert repr(d) == ("Dataset(X_train=float64 (3, 1, 40), y_train=int64 (3,), "
                       "X_test=float64 (0, 1, 40), y_test=int64 (0,))")
