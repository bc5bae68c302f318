"""Claims about batch normalization, checked in float64 and in exact arithmetic.

    check_lemma_4_5(X, y, w0, gamma=1.0, beta=0.0, exact=False) -> Lemma45Report
        Inequality (1) of Lemma 4.5 of Santurkar et al. (2018) on one instance.
    example_3_2(exact=False) -> Lemma45Report
        The counterexample of Dannemann and Junike (2025), Example 3.2.

The mathematics is in math.md section 3 and in the docstring of lemma_4_5.
"""

from .example_3_2 import EXAMPLE_3_2, example_3_2
from .lemma_4_5 import check_lemma_4_5
from .report import GDCrossCheck, Lemma45Report

__all__ = ["check_lemma_4_5", "example_3_2", "EXAMPLE_3_2", "Lemma45Report", "GDCrossCheck"]
