"""Example 3.2 of Dannemann and Junike (2025), the counterexample to Lemma 4.5 of
Santurkar et al. (2018), with the canonical numbers (derived in docs/math/lemma_4_5.md):

    x(1) = (1, 0), x(2) = (0, 1), x(3) = (1, 1);  y = 5 x1 + 3 x2 + 3 = (8, 6, 11)
    one identity neuron without bias; gamma = 1, beta = 0, eps = 0
    W0 = W* = (7, 5): the initialization IS the standard network's optimum, so the
    right side of (1) is 0, while the BN optima are the ray 3 w1 = 5 w2, w1 > 0,
    whose closest point (125/17, 75/17) is at squared distance 8/17 > 0.
"""

import numpy as np

from .lemma_4_5 import check_lemma_4_5

__all__ = ["example_3_2", "EXAMPLE_3_2"]

#: The data of the canonical instance (integers, so both arithmetics read them exactly).
EXAMPLE_3_2 = {
    "X": np.array([[1, 0], [0, 1], [1, 1]]),     # (m, d) = (3, 2)
    "y": np.array([8, 6, 11]),                   # 5 x1 + 3 x2 + 3
    "w0": np.array([7, 5]),                      # W0 = W*
    "gamma": 1,
    "beta": 0,
}


def example_3_2(exact=False, *, cross_check=True, gd_lr=None, gd_steps=None):
    """check_lemma_4_5 on the canonical instance of Example 3.2 (see the module
    docstring). exact=True gives every number exactly (sympy)."""
    data = EXAMPLE_3_2
    return check_lemma_4_5(data["X"], data["y"], data["w0"], gamma=data["gamma"],
                           beta=data["beta"], exact=exact, cross_check=cross_check,
                           gd_lr=gd_lr, gd_steps=gd_steps)
