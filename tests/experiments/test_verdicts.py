"""The version-2 verdict labels (result.py): one definition, the reduced-setting
wording, mixed and underpowered saying which conditions / what would decide, the
fragility line, and version-1 results still read (labelled v1)."""

import json
import pathlib

import pytest

from bnfast.experiments import ExperimentResult, Verdict
from bnfast.experiments.result import (LABELS, combine, fragility, fragility_line,
                                       verdict_line)



def test_the_four_labels():
    assert LABELS == ("supported", "refuted", "mixed", "underpowered")
    with pytest.raises(ValueError, match="verdict must be one of"):
        Verdict("maybe")


@pytest.mark.parametrize("outcomes, label", [
    ({"a": "supported", "b": "supported"}, "supported"),
    ({"a": "refuted", "b": "refuted"}, "refuted"),
    ({"a": "supported", "b": "refuted"}, "mixed"),
    ({"a": "supported", "b": "refuted", "c": "undecided"}, "mixed"),
    ({"a": "supported", "b": "undecided"}, "underpowered"),
    ({"a": "refuted", "b": "inconclusive"}, "underpowered"),
    ({}, "underpowered"),
])
def test_combine(outcomes, label):
    assert combine(outcomes, "the DLN").label == label


def test_a_refutation_in_a_reduced_setting_says_where():
    v = combine({"lr 0.1": "refuted"}, "the dense digits MLP", reduced=True)
    assert v == "refuted" and str(v) == "refuted in the dense digits MLP"
    assert str(combine({"lr 0.1": "refuted"}, "the DLN")) == "refuted"
    with pytest.raises(ValueError, match="must name its setting"):
        Verdict("refuted", reduced=True)


def test_mixed_and_underpowered_say_which_and_what():
    v = combine({"lr 1e-6": "refuted", "lr 1e-7": "supported"}, "the DLN")
    assert v.text == "mixed (supported: lr 1e-7; refuted: lr 1e-6)"
    u = combine({"B=4": "undecided", "B=8": "supported"}, "width 512",
                decide="widths to 4096")
    assert u.text == "underpowered (would decide: widths to 4096)"
    with pytest.raises(ValueError, match="mixed verdict needs"):
        Verdict("mixed", conditions={"a": "supported"})
    with pytest.raises(ValueError, match="what would decide"):
        Verdict("underpowered")
    assert Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v


def test_fragility_counts_the_alternatives_that_flip():
    v = combine({"a": "supported"}, "s")
    f = fragility(v, {"window": "supported", "mean": "mixed", "matched loss": "refuted"})
    assert (f["flips"], f["of"], f["which"]) == (2, 3, ["mean", "matched loss"])
    assert fragility_line(f) == ("2 of 3 reasonable alternative summaries flip the "
                                 "verdict (mean; matched loss)")
    assert fragility_line(fragility(v, {})) == (
        "0 of 0 reasonable alternative summaries flip the verdict")


def test_version_1_results_are_read_and_labelled():
    # ics's version-1 full result as published before version 2 (its measurements cut
    # down to the numbers its rule used).
    v1 = pathlib.Path(__file__).parent / "data" / "ics_v1.json"
    result = ExperimentResult.from_dict(json.loads(v1.read_text()))
    assert result.rule_version == 1 and result.verdict == "inconclusive"
    assert result.fragility is None
    assert verdict_line(result).startswith("Verdict: inconclusive (rule v1): ")
    with pytest.raises(ValueError):       # "inconclusive" is not a version-2 label
        ExperimentResult("x", "c", "s", "inconclusive", "r", rule_version=2)


def test_a_mixed_verdict_counts_the_conditions_of_a_long_side():
    conditions = {f"width {2 ** k}": "supported" for k in range(5, 13)}
    conditions["relu: rank grows like sqrt(d)"] = "refuted"
    assert Verdict("mixed", conditions=conditions).text == (
        "mixed (supported: 8 of 9 conditions; refuted: relu: rank grows like sqrt(d))")
