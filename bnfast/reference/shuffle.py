"""The epoch shuffles of mini-batch SGD, in pure Python (the C++ loop draws the same;
docs/math/networks.md, section 5).

SplitMix64 seeded with ``seed``; each epoch is a Fisher-Yates shuffle of 0..m-1 that
draws j = next() % (i + 1) for i = m-1 down to 1, starting from the identity.
"""

import numpy as np

_MASK = (1 << 64) - 1


class SplitMix64:
    """SplitMix64 with 64-bit state ``seed`` (arithmetic mod 2**64)."""

    def __init__(self, seed):
        self.state = seed & _MASK

    def next(self):
        """The next 64-bit output, a Python int in [0, 2**64)."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)


class EpochShuffler:
    def __init__(self, m, seed):
        self.m = m
        self.rng = SplitMix64(seed)

    def _next(self):
        return self.rng.next()

    def next_epoch(self):
        """The next permutation of range(m), as an int64 array."""
        perm = list(range(self.m))
        for i in range(self.m - 1, 0, -1):
            j = self._next() % (i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        return np.array(perm, dtype=np.int64)
