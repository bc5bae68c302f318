"""The audit (Santurkar et al. section 4, scale invariance, the l1 constant) and the
counterexample search: verdicts, the smallest counterexamples (minimal under the shrink,
failing exactly), determinism, the order of the rows."""

import numpy as np
import pytest

from bnfast.claims import audit as audit_module
from bnfast.claims import check_lemma_4_5, check_theorem_4_1
from bnfast.claims.counterexample import find_counterexample, shrink

EXPECTED = {  # (statement, form) -> verdict, from docs/math/santurkar_section_4.md,
    #            docs/math/l1_constant.md and docs/math/scale_invariance.md
    ("Theorem 4.1", "printed"): "fails",
    ("Theorem 4.1", "corrected"): "identity",
    ("Theorem 4.2(a)", "printed"): "identity",
    ("Theorem 4.2(b)", "printed"): "fails",
    ("Observation 4.3", "w-dependent"): "identity",
    ("Observation 4.3", "constant"): "fails",
    ("Theorem 4.4", "printed"): "fails",
    ("Theorem 4.4", "corrected"): "identity",
    ("Lemma 4.5", "printed"): "fails",
    ("l1 constant", "population"): "identity",
    ("l1 constant", "batch B"): "fails",
    ("l1 constant", "corrected"): "identity",
    ("Scale invariance", "orthogonal"): "identity",
    ("Scale invariance", "norm step"): "identity",
    ("Scale invariance", "eps > 0"): "fails",
    ("Scale invariance", "corrected"): "identity",
}


@pytest.fixture(scope="module")
def rows():
    return audit_module.audit(seed=0)


def test_every_row_has_the_expected_verdict(rows):
    assert {(r.statement, r.form): r.verdict for r in rows} == EXPECTED


def test_rows_in_the_order_of_the_papers(rows):
    # Santurkar et al. by section number, then the later papers' rows (names without a
    # trailing section number: the 1 of "l1-constant" is not one), in module order
    assert audit_module.statements() == (
        "theorem-4-1", "theorem-4-2", "observation-4-3", "theorem-4-4", "lemma-4-5",
        "l1-constant", "scale-invariance")
    # the new rows are equalities (a failure reads lhs != rhs), the others inequalities
    later = {"l1 constant", "Scale invariance"}
    for r in rows:
        assert r.relation == r.to_dict()["relation"] == ("=" if r.statement in later
                                                         else "<=")


def test_counterexamples_fail_exactly_and_are_minimal(rows):
    for row in (r for r in rows if r.verdict == "fails"):
        ce = row.counterexample
        assert ce.m == 2                      # the smallest batch already fails
        assert row.report.exact and row.report.holds is False
        check = next(r.check for r in audit_module.rows()
                     if (r.statement, r.form) == (row.statement, row.form))
        # no single entry can move towards 0 and still fail
        for name, array in ce.instance.items():
            for index in np.ndindex(array.shape):
                v = int(array[index])
                for smaller in ([0] if abs(v) == 1 else [0, v - np.sign(v)]) if v else []:
                    trial = {k: a.copy() for k, a in ce.instance.items()}
                    trial[name][index] = smaller
                    if name == "hessian":
                        trial[name][index[::-1]] = smaller
                    try:
                        still = check(**trial, exact=True).holds is False
                    except ValueError:
                        still = False
                    assert not still, (row.statement, name, index, smaller)


def test_theorem_4_1_counterexample_is_the_known_one(rows):
    row = rows[0]
    assert (row.statement, row.form) == ("Theorem 4.1", "printed")
    r = check_theorem_4_1(**row.counterexample.instance, form="printed", exact=True)
    assert r.holds is False and r.gap == row.gap


def test_lemma_4_5_row_carries_the_closed_form_probability(rows):
    (row,) = [r for r in rows if r.statement == "Lemma 4.5"]
    assert row.extra["example_3_2_holds_probability"] == pytest.approx(0.4872947, abs=1e-7)
    assert row.extra["example_3_2_theta_degrees"] == pytest.approx(4.573921, abs=1e-6)
    i = row.counterexample.instance
    assert check_lemma_4_5(i["X"], i["y"], i["w0"], exact=True, cross_check=False).refutes


def test_the_audit_is_deterministic_for_a_seed(rows):
    again = audit_module.audit(["theorem-4-4", "lemma-4-5"], seed=0)
    mine = [r for r in rows if r.statement in ("Theorem 4.4", "Lemma 4.5")]
    for a, b in zip(again, mine):
        assert a.to_dict() == b.to_dict()


def test_exact_mode_agrees_on_one_statement():
    (printed, corrected) = audit_module.audit(["theorem-4-1"], exact=True, seed=3)
    assert printed.verdict == "fails" and corrected.verdict == "identity"
    assert corrected.gap == 0 and corrected.to_dict()["exact_forms"]["gap"] == "0"


def test_unknown_statement():
    with pytest.raises(ValueError, match="unknown statement 'theorem-9'"):
        audit_module.audit(["theorem-9"])
    with pytest.raises(ValueError, match="unknown statement"):
        audit_module.check_instance("nope", {})


def test_search_and_shrink_on_a_toy_statement():
    """'the sum of the entries is below 5' fails first at m where 4-bounded entries can
    reach 5; the shrink stops where no entry can get closer to 0."""
    def check(instance, exact):
        return int(np.sum(instance["v"])) < 5

    def draw(rng, m):
        return {"v": rng.integers(-4, 5, m)}

    ce = find_counterexample(check, draw, sizes=range(1, 5), tries=200, seed=1)
    assert ce.m == 2 and int(ce.instance["v"].sum()) == 5
    assert sorted(ce.instance["v"].tolist()) in ([1, 4], [2, 3])
    assert find_counterexample(check, draw, sizes=range(1, 5), tries=200, seed=1).to_dict() \
        == ce.to_dict()
    assert shrink(check, {"v": np.array([4, 4, -1])})["v"].tolist() == [2, 3, 0]
    assert find_counterexample(lambda i, e: True, draw, sizes=[2], tries=5) is None
