"""bnfast.datasets.mnist1d: MNIST-1D generated locally by the mnist1d package's
generator. The defaults are the package's default data set (its generator's output for
its default arguments, and the released mnist1d_data.pkl to rounding), and the
download path is never taken."""

import inspect
import json
import pathlib
import random
import socket

import numpy as np
import pytest

mnist1d_package = pytest.importorskip("mnist1d")

from mnist1d.data import get_dataset_args, get_templates, make_dataset  # noqa: E402

from bnfast import datasets  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent

#: The generator's knobs that bnfast.datasets.mnist1d exposes under the package's names.
KNOBS = ("corr_noise_scale", "iid_noise_scale", "max_translation", "padding",
         "scale_coeff", "shear_scale", "shuffle_seq", "final_seq_length")


@pytest.fixture(scope="module")
def default():
    return datasets.mnist1d()


def package_dataset(**changes):
    """The package's own generator with its default arguments, some changed."""
    args = get_dataset_args()
    for name, value in changes.items():
        setattr(args, name, value)
    return make_dataset(args, get_templates())


def test_the_defaults_are_the_packages():
    package = get_dataset_args(as_dict=True)
    ours = {name: p.default
            for name, p in inspect.signature(datasets.mnist1d).parameters.items()}
    assert ours["samples"] == package["num_samples"] == 5000
    assert ours["seed"] == package["seed"] == 42
    assert ours["split"] == pytest.approx(1 - package["train_split"])
    for knob in KNOBS:
        assert ours[knob] == (tuple(package[knob]) if knob == "padding" else package[knob])


def test_defaults_equal_the_packages_generator_and_its_split(default):
    package = package_dataset()
    assert default.X_train.shape == (4000, 1, 40) and default.X_test.shape == (1000, 1, 40)
    assert np.array_equal(default.X_train[:, 0], package["x"])
    assert np.array_equal(default.X_test[:, 0], package["x_test"])
    assert np.array_equal(default.y_train, package["y"])
    assert np.array_equal(default.y_test, package["y_test"])


def test_defaults_reproduce_the_released_data_set(default):
    """mnist1d_data.pkl, the file the package's download path fetches, matches the
    local generator to rounding (8.9e-16 at worst with NumPy 2.4 / SciPy 1.17)."""
    release = json.loads((HERE / "mnist1d_release.json").read_text())
    x, x_test = default.X_train[:, 0], default.X_test[:, 0]
    assert list(x.shape) == release["shapes"]["x"]
    assert list(x_test.shape) == release["shapes"]["x_test"]
    np.testing.assert_allclose(x[:2], release["x_rows"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(x_test[:2], release["x_test_rows"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(x.sum(0), release["x_column_sums"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(x_test.sum(0), release["x_test_column_sums"], rtol=0,
                               atol=1e-9)
    assert default.y_train[:100].tolist() == release["y_head"]
    assert default.y_test[:100].tolist() == release["y_test_head"]
    assert np.bincount(default.y_train).tolist() == release["y_counts"]
    assert np.bincount(default.y_test).tolist() == release["y_test_counts"]


def test_generation_never_downloads_nor_writes(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("the download path was taken")

    import mnist1d.data
    import requests
    monkeypatch.setattr(mnist1d.data, "get_dataset", refuse)
    monkeypatch.setattr(mnist1d.data, "from_pickle", refuse)
    monkeypatch.setattr(mnist1d.data, "to_pickle", refuse)
    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.chdir(tmp_path)   # get_dataset would leave ./mnist1d_data.pkl here
    d = datasets.mnist1d(samples=100, seed=3)
    assert d.X_train.shape == (80, 1, 40)
    assert list(tmp_path.iterdir()) == []


def test_shapes_dtypes_and_labels():
    d = datasets.mnist1d(samples=300, seed=1, split=0.1)
    assert d.X_train.shape == (270, 1, 40) and d.X_test.shape == (30, 1, 40)
    assert d.y_train.shape == (270,) and d.y_test.shape == (30,)
    for X in (d.X_train, d.X_test):
        assert X.dtype == np.float64 and X.flags.c_contiguous and np.isfinite(X).all()
    for y in (d.y_train, d.y_test):
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 9
    labels = np.concatenate([d.y_train, d.y_test])
    assert np.bincount(labels).tolist() == [30] * 10   # samples // 10 per class
    X = np.concatenate([d.X_train, d.X_test])
    assert abs(X.mean()) < 1e-12 and abs(X.std() - 1) < 1e-12   # standardized as a whole


def test_same_seed_same_data_other_seed_other_data():
    a, b = datasets.mnist1d(samples=200, seed=5), datasets.mnist1d(samples=200, seed=5)
    c = datasets.mnist1d(samples=200, seed=6)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.y_test, c.y_test)
    assert not np.allclose(a.X_train, c.X_train)


@pytest.mark.parametrize("split, n_test", [(0.0, 0), (0.05, 10), (0.2, 40), (0.5, 100),
                                           (0.99, 198)])
def test_split_is_the_test_fraction_taken_from_the_end(split, n_test):
    d = datasets.mnist1d(samples=200, seed=2, split=split)
    assert len(d.X_test) == len(d.y_test) == n_test
    assert len(d.X_train) == len(d.y_train) == 200 - n_test
    assert d.X_test.shape[1:] == (1, 40) and d.y_test.dtype == np.int64
    whole = datasets.mnist1d(samples=200, seed=2, split=0)
    assert np.array_equal(np.concatenate([d.X_train, d.X_test]), whole.X_train)
    assert np.array_equal(np.concatenate([d.y_train, d.y_test]), whole.y_train)


@pytest.mark.parametrize("knobs", [
    {"iid_noise_scale": 0.0, "corr_noise_scale": 0.0},
    {"max_translation": 1, "shear_scale": 0.0, "scale_coeff": 0.0},
    {"padding": (10, 20), "final_seq_length": 64},
    {"shuffle_seq": True},
])
def test_knobs_are_the_packages_arguments(knobs):
    d = datasets.mnist1d(samples=100, seed=9, split=0.2, **knobs)
    changes = {k: list(v) if k == "padding" else v for k, v in knobs.items()}
    package = package_dataset(num_samples=100, seed=9, **changes)
    length = knobs.get("final_seq_length", 40)
    assert d.X_train.shape == (80, 1, length)
    assert np.array_equal(d.X_train[:, 0], package["x"])
    assert np.array_equal(d.X_test[:, 0], package["x_test"])
    assert np.array_equal(d.y_test, package["y_test"])
    if length == 40:   # the knobs change the signals
        assert not np.allclose(d.X_train, datasets.mnist1d(samples=100, seed=9).X_train)


def test_the_callers_random_state_is_left_alone():
    np.random.seed(123)
    random.seed(456)
    np_state, py_state = np.random.get_state(), random.getstate()
    datasets.mnist1d(samples=50, seed=1)
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state


@pytest.mark.parametrize("kwargs, error, message", [
    ({"samples": -10}, ValueError, "samples must be >= 10, got -10"),
    ({"samples": 0}, ValueError, "samples must be >= 10"),
    ({"samples": 15}, ValueError, "samples must be a multiple of 10"),
    ({"samples": 100.0}, TypeError, "samples must be an int"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": 2**32}, ValueError, "seed must be <= 4294967295"),
    ({"seed": "42"}, TypeError, "seed must be an int"),
    ({"seed": 4.2}, TypeError, "seed must be an int"),
    ({"split": 1.0}, ValueError, r"split \(the test fraction\) must be in \[0, 1\)"),
    ({"split": -0.5}, ValueError, "split"),
    ({"split": None}, TypeError, "split must be a real number"),
    ({"samples": 10, "split": 0.96}, ValueError, "leaves no training rows out of 10"),
    ({"iid_noise_scale": -1.0}, ValueError, "iid_noise_scale must be a finite number >= 0"),
    ({"corr_noise_scale": float("inf")}, ValueError, "corr_noise_scale"),
    ({"shear_scale": "0.5"}, TypeError, "shear_scale must be a real number"),
    ({"scale_coeff": 2.0}, ValueError, r"scale_coeff must be in \[0, 2\)"),
    ({"max_translation": 0}, ValueError, "max_translation must be >= 1"),
    ({"padding": (60, 36)}, ValueError, r"padding\[1\] must be >= 60"),
    ({"padding": (-1, 36)}, ValueError, r"padding\[0\] must be >= 0"),
    ({"padding": (1.0, 36)}, TypeError, r"padding\[0\] must be an int"),
    ({"padding": (1, 2, 3)}, TypeError, r"padding must be a pair of ints"),
    ({"padding": 36}, TypeError, r"padding must be a pair of ints"),
    ({"shuffle_seq": 1}, TypeError, "shuffle_seq must be a bool"),
    ({"final_seq_length": 0}, ValueError, "final_seq_length must be >= 1"),
])
def test_bad_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        datasets.mnist1d(**kwargs)
