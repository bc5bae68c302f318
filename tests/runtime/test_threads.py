"""The thread count: checked by the Python layer, unchanged by a failed call."""

import numpy as np
import pytest

import bnfast


@pytest.mark.parametrize("n,exc,match", [(0, ValueError, "n must be >= 1"),
                                         (2**40, ValueError, "n must be <= 1024"),
                                         (True, TypeError, "n must be an int"),
                                         (2.0, TypeError, "n must be an int")])
def test_thread_counts_are_checked(n, exc, match):
    before = bnfast.get_num_threads()
    with pytest.raises(exc, match=match):
        bnfast.set_num_threads(n)
    assert bnfast.get_num_threads() == before
    bnfast.set_num_threads(np.int64(before))     # numpy integers are ints too
    assert bnfast.get_num_threads() == before
