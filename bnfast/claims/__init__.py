"""Claims about batch normalization, checked in float64 and in exact arithmetic.

    check_lemma_4_5(X, y, w0, gamma=1.0, beta=0.0, exact=False) -> Lemma45Report
        Inequality (1) of Lemma 4.5 of Santurkar et al. (2018) on one instance.
    example_3_2(exact=False) -> Lemma45Report
        The counterexample of Dannemann and Junike (2025), Example 3.2.
    lemma_4_5_holds_probability(X, y, gamma=1.0) -> (p, theta)
        P[(1) holds | premise] for an isotropic random w0, and the angle behind it.

Section 4 of Santurkar et al. on one neuron h (m,) with gradient grad (m,) and Hessian
hessian (m, m) of the loss at the BN output; each returns a StatementReport:
    check_theorem_4_1(h, grad, gamma=1.0, beta=0.0, form="printed", exact=False, eps=0.0)
    check_theorem_4_2(h, grad, hessian, gamma=1.0, beta=0.0, part="a", exact=False, eps=0.0)
    check_theorem_4_4(h, grad, gamma=1.0, beta=0.0, lam=1.0, form="printed", exact=False,
                      eps=0.0)
    check_observation_4_3(X, W, y=None, gamma=None, beta=None, exact=False, eps=0.0)

Two statements of later papers, each an equality (StatementReport.relation "="):
    check_scale_invariance(X, W, V, y, lr=1, gamma=1, beta=0, eps=0, form="orthogonal",
                           exact=False)
        <W, grad_W L> = 0 and the GD norm step of a BN layer's weights (Arora, Li and
        Lyu 2019), their eps > 0 correction; the float path is bnfast's engine.
    check_l1_constant(sigma, mu=0, B=None, form="population", exact=False)
        E|x - mu| = sigma sqrt(2/pi) (Hoffer et al. 2018), its finite-batch reading and
        the c4(B) correction; l1_ratio_sweep(...) the Monte Carlo of E[mad_B]/E[std_B].

One file per statement (lemma_4_5.py, theorem_4_1.py, ...), each listing its rows of
`bnfast audit` in AUDIT_ROWS (audit.py finds them, counterexample.py says how); the
float64 and exact arithmetics they run on (_float.py, _exact.py); the report types
(report.py, and statement.py with what the section-4 checkers share); the native
gradient-descent cross-check (gd.py). The mathematics is in docs/math/lemma_4_5.md,
docs/math/santurkar_section_4.md, docs/math/scale_invariance.md and
docs/math/l1_constant.md.
"""

from .example_3_2 import EXAMPLE_3_2, example_3_2
from .l1_constant import check_l1_constant, l1_ratio_sweep
from .lemma_4_5 import check_lemma_4_5
from .lemma_4_5_probability import lemma_4_5_holds_probability
from .observation_4_3 import check_observation_4_3
from .report import GDCrossCheck, Lemma45Report
from .scale_invariance import check_scale_invariance
from .statement import StatementReport
from .theorem_4_1 import check_theorem_4_1
from .theorem_4_2 import check_theorem_4_2
from .theorem_4_4 import check_theorem_4_4

__all__ = ["check_lemma_4_5", "example_3_2", "EXAMPLE_3_2", "Lemma45Report", "GDCrossCheck",
           "lemma_4_5_holds_probability", "check_theorem_4_1", "check_theorem_4_2",
           "check_theorem_4_4", "check_observation_4_3", "StatementReport",
           "check_scale_invariance", "check_l1_constant", "l1_ratio_sweep"]
