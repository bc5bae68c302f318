"""The noise of noisy BN (docs/math/networks.md section 8, Santurkar et al. 2018,
Algorithm 1) in pure Python, drawn exactly as the C++ loop draws it.

One SplitMix64 generator seeded with seed XOR 0x6A09E667F3BCC909 runs through a whole
training run (independent of the shuffle stream). A uniform is u = (next() >> 11) 2^-53
in [0, 1); a standard normal is Box-Muller on two fresh uniforms,
sqrt(-2 ln(1 - u1)) cos(2 pi u2). At each update step, for each noisy layer (noisy BN,
or a layer's own noise without normalization) in network order, for each unit j = 0 ..
out-1 (a dense layer's features, a conv layer's channels):

    mu_j = n_mu (2u - 1);   s0_j = 1 + (n_sigma - 1) u
    then for each row i = 0 .. B-1 of the batch:
        m_ij = mu_j + r_mu (2u - 1);   s_ij = s0_j + r_sigma normal()

and the layer's BN output (without BN: its pre-activation) becomes z_ij <- s_ij z_ij +
m_ij before the activation; on a conv layer z_ij is all the positions of sample i's
channel j.
"""

import math

import numpy as np

from ._checks import layer_noise
from .shuffle import SplitMix64

__all__ = ["NOISE_SEED_XOR", "NoiseGenerator", "draw_noise"]

NOISE_SEED_XOR = 0x6A09E667F3BCC909


class NoiseGenerator:
    """The noise stream of a training run with shuffle seed ``seed``."""

    def __init__(self, seed):
        self.rng = SplitMix64(seed ^ NOISE_SEED_XOR)

    def uniform(self):
        """u = (next() >> 11) * 2**-53, a float in [0, 1) (exact: 53 bits)."""
        return (self.rng.next() >> 11) * 2.0**-53

    def normal(self):
        """Box-Muller, cosine branch: sqrt(-2 ln(1 - u1)) cos(2 pi u2)."""
        u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


def draw_noise(gen, layers, B):
    """One update step's noise: for each of ``layers`` (checked layers with noise,
    _checks.layer_noise, in network order) the pair (s, m) of float64 (B, out) arrays,
    out the features or channels; z <- s z + m."""
    result = []
    for layer in layers:
        noise, n_out = layer_noise(layer), layer.out_features
        s, m = np.empty((B, n_out)), np.empty((B, n_out))
        for j in range(n_out):
            mu = noise.n_mu * (2.0 * gen.uniform() - 1.0)
            s0 = 1.0 + (noise.n_sigma - 1.0) * gen.uniform()
            for i in range(B):
                m[i, j] = mu + noise.r_mu * (2.0 * gen.uniform() - 1.0)
                s[i, j] = s0 + noise.r_sigma * gen.normal()
        result.append((s, m))
    return result
