"""bnfast.datasets.digits: scikit-learn's 8x8 digits scaled to [0, 1], split by a seeded
permutation; the experiments' digits are these."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402

from bnfast import datasets  # noqa: E402
from bnfast.experiments import problems  # noqa: E402

ROWS = 1797


def test_shapes_dtypes_and_ranges():
    d = datasets.digits()
    assert d.X_train.shape == (1438, 64) and d.X_test.shape == (359, 64)
    assert d.y_train.shape == (1438,) and d.y_test.shape == (359,)
    for X in (d.X_train, d.X_test):
        assert X.dtype == np.float64 and X.flags.c_contiguous
        assert X.min() == 0.0 and X.max() == 1.0
        assert np.array_equal(X * 16, np.round(X * 16))   # the raw values 0..16, / 16
    for y in (d.y_train, d.y_test):
        assert y.dtype == np.int64
        assert set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize("seed, split", [(0, 0.2), (7, 0.5), (2**63 - 1, 0.05)])
def test_rows_are_load_digits_in_the_documented_order(seed, split):
    raw = load_digits()
    order = np.random.default_rng(seed).permutation(ROWS)
    n_test = round(split * ROWS)
    d = datasets.digits(split=split, seed=seed)
    assert np.array_equal(d.X_test, raw.data[order[:n_test]] / 16.0)
    assert np.array_equal(d.X_train, raw.data[order[n_test:]] / 16.0)
    assert np.array_equal(d.y_test, raw.target[order[:n_test]])
    assert np.array_equal(d.y_train, raw.target[order[n_test:]])


@pytest.mark.parametrize("seed, split", [(0, 0.2), (3, 0.0), (11, 0.7)])
def test_images_are_the_flat_rows_reshaped(seed, split):
    flat = datasets.digits(split=split, seed=seed)
    images = datasets.digits(images=True, split=split, seed=seed)
    for f, i in ((flat.X_train, images.X_train), (flat.X_test, images.X_test)):
        assert i.shape == (len(f), 1, 8, 8) and i.dtype == np.float64
        assert np.array_equal(i, f.reshape(-1, 1, 8, 8))
    assert np.array_equal(images.y_train, flat.y_train)
    assert np.array_equal(images.y_test, flat.y_test)
    # channel 0 holds scikit-learn's own 8x8 image of the row (NCHW)
    raw = load_digits()
    order = np.random.default_rng(seed).permutation(ROWS)
    n_test = round(split * ROWS)
    assert np.array_equal(images.X_train[:, 0], raw.images[order[n_test:]] / 16.0)


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = datasets.digits(seed=1), datasets.digits(seed=1), datasets.digits(seed=2)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.y_test, c.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    # the same rows either way: a split, not new data
    both = lambda d: np.sort(np.concatenate([d.X_train, d.X_test]), axis=0)  # noqa: E731
    assert np.array_equal(both(a), both(c))


@pytest.mark.parametrize("split", [0.0, 0.01, 0.1, 0.25, 0.5, 0.9])
def test_split_is_the_test_fraction(split):
    d = datasets.digits(split=split, images=True)
    n_test = round(split * ROWS)
    assert len(d.X_test) == len(d.y_test) == n_test
    assert len(d.X_train) == len(d.y_train) == ROWS - n_test
    if split == 0:
        assert d.X_test.shape == (0, 1, 8, 8) and d.y_test.shape == (0,)
        assert d.y_test.dtype == np.int64


@pytest.mark.parametrize("seed", [0, 5, 12345])
def test_the_experiments_digits_are_these(seed):
    X, Y, X_test, Y_test, labels_test = problems.digits_data(seed)
    d = datasets.digits(seed=seed)
    assert np.array_equal(X, d.X_train) and np.array_equal(X_test, d.X_test)
    assert np.array_equal(labels_test, d.y_test)
    assert np.array_equal(Y, np.eye(10)[d.y_train]) and np.array_equal(Y_test,
                                                                       np.eye(10)[d.y_test])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"split": -0.1}, ValueError, r"split \(the test fraction\) must be in \[0, 1\)"),
    ({"split": 1.0}, ValueError, "split"),
    ({"split": float("nan")}, ValueError, "split"),
    ({"split": 0.9999}, ValueError, "split=0.9999 leaves no training rows out of 1797"),
    ({"split": "0.2"}, TypeError, "split must be a real number"),
    ({"split": True}, TypeError, "split must be a real number"),
    ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*63\)"),
    ({"seed": 2**63}, ValueError, "seed"),
    ({"seed": 1.0}, TypeError, "seed must be an int"),
    ({"seed": None}, TypeError, "seed must be an int"),
    ({"images": 1}, TypeError, "images must be a bool"),
])
def test_bad_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        datasets.digits(**kwargs)
