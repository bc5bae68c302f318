"""The cache of large output buffers: outputs stay valid and independent, freed
buffers are reused, and the cache stays within its bounds."""

import gc

import numpy as np
import pytest

import bnfast
from bnfast import _core

MIB = 1 << 20


def test_small_arrays_are_ordinary_numpy_arrays():
    a = _core.empty((3, 4), np.dtype(np.float32))
    assert a.shape == (3, 4) and a.dtype == np.float32 and a.flags.owndata


def test_large_array_has_requested_layout_and_is_writable():
    a = _core.empty((1024, 512), np.dtype(np.float64))
    assert a.shape == (1024, 512) and a.dtype == np.float64
    assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
    a[...] = 7.0
    assert a.sum() == 7.0 * a.size


def test_a_freed_buffer_is_reused_and_live_outputs_never_share():
    bnfast.clear_buffer_cache()
    x = np.random.default_rng(0).normal(size=(4096, 128))  # 4 MiB
    y1, _, _ = bnfast.batch_norm_forward(x)
    address = y1.__array_interface__["data"][0]
    y2, _, _ = bnfast.batch_norm_forward(x)
    assert not np.shares_memory(y1, y2)  # y1 is alive: its buffer is not handed out
    keep = y1.copy()
    del y1
    gc.collect()
    assert bnfast.cached_buffer_bytes() == x.nbytes
    y3, _, _ = bnfast.batch_norm_forward(x)
    assert y3.__array_interface__["data"][0] == address  # reused
    np.testing.assert_array_equal(y3, keep)
    assert bnfast.cached_buffer_bytes() == 0


def test_views_keep_the_buffer_alive():
    bnfast.clear_buffer_cache()
    x = np.random.default_rng(1).normal(size=(2048, 256))
    y, _, _ = bnfast.batch_norm_forward(x)
    view = y[::2]
    expected = view.copy()
    del y
    gc.collect()
    assert bnfast.cached_buffer_bytes() == 0  # the view still owns it
    z, _, _ = bnfast.batch_norm_forward(x + 1.0)
    assert not np.shares_memory(z, view)
    np.testing.assert_array_equal(view, expected)


def test_cache_is_bounded_and_can_be_cleared():
    bnfast.clear_buffer_cache()
    arrays = [_core.empty((MIB,), np.dtype(np.uint8)) for _ in range(20)]
    del arrays
    gc.collect()
    assert 0 < bnfast.cached_buffer_bytes() <= 8 * MIB  # at most 8 buffers kept
    big = [_core.empty((300 * MIB,), np.dtype(np.uint8)) for _ in range(2)]
    del big
    gc.collect()
    assert bnfast.cached_buffer_bytes() <= 512 * MIB
    bnfast.clear_buffer_cache()
    assert bnfast.cached_buffer_bytes() == 0


def test_negative_shape_is_rejected():
    with pytest.raises(ValueError, match="negative"):
        _core.empty((-1, 4), np.dtype(np.float64))

