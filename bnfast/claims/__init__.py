"""Claims about batch normalization, checked in float64 and in exact arithmetic.

    check_lemma_4_5(X, y, w0, gamma=1.0, beta=0.0, exact=False) -> Lemma45Report
        Inequality (1) of Lemma 4.5 of Santurkar et al. (2018) on one instance.
    example_3_2(exact=False) -> Lemma45Report
        The counterexample of Dannemann and Junike (2025), Example 3.2.

One file per statement (lemma_4_5.py, ...); the float64 and exact arithmetics they run
on (_float.py, _exact.py); the report types (report.py); the native gradient-descent
cross-check (gd.py). The mathematics is in docs/math/lemma_4_5.md.
"""

from .example_3_2 import EXAMPLE_3_2, example_3_2
from .lemma_4_5 import check_lemma_4_5
from .report import GDCrossCheck, Lemma45Report

__all__ = ["check_lemma_4_5", "example_3_2", "EXAMPLE_3_2", "Lemma45Report", "GDCrossCheck"]
