"""Every experiment's quick run: the fields and types of experiments' JSON object, the
verdict and the numbers its rule used, the reductions stated, the figure; the run is a
function of the seed whatever the executor; bad arguments get clear errors."""

import concurrent.futures as cf
import json
import math

import pytest

from bnfast import experiments
from bnfast.experiments import VERDICTS, ExperimentResult, names

pytestmark = pytest.mark.timeout(300)

FIELDS = ["experiment", "claim", "source", "verdict", "verdict_detail", "quick", "rule",
          "rule_version", "rule_hash", "rule_params", "fragility", "settings",
          "measurements", "seconds", "cpu_seconds"]


def _json_values(value, where):
    """Every leaf is a JSON value (no numpy scalars, no NaN hidden in a float)."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), (where, key)
            _json_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_values(item, f"{where}[{i}]")
    else:
        assert value is None or type(value) in (bool, int, float, str), (where, type(value))


NAMES = names()


def test_names_are_the_claims():
    assert NAMES == ("ics", "landscape", "noisy-bn", "lp-norm", "explosion", "decoupling",
                     "lipschitz", "residual-identity", "rank-collapse",
                     "edge-of-stability", "large-lr", "hessian-outliers",
                     "precise-bn")


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_fields(quick_result, name):
    result = quick_result(name)
    fields = result.to_dict()
    assert list(fields) == FIELDS
    assert fields["experiment"] == name
    assert fields["verdict"] in VERDICTS
    for key in ("claim", "source", "rule"):
        assert isinstance(fields[key], str) and len(fields[key]) > 20, key
    _json_values(fields["settings"], "settings")
    _json_values(fields["measurements"], "measurements")
    assert fields["settings"]["quick"] is True and fields["settings"]["seed"] == 0
    assert fields["quick"] is True       # said at the top level too
    reduced = fields["settings"]["reduced"]
    assert isinstance(reduced, list) and reduced and all(isinstance(r, str) for r in reduced)
    inputs = fields["measurements"]["verdict_inputs"]
    assert isinstance(inputs, dict) and inputs
    # The quick budget, under a minute on 2 cores, judged on the tasks' CPU time: the
    # wall time also counts whatever else runs on the machine (a CI neighbour, other
    # tests), and the tasks spread over the local workers, so 60 CPU-seconds of tasks
    # is about 30 s of wall time on two idle cores, leaving room for the serial part.
    assert fields["seconds"] > 0 and 0 < fields["cpu_seconds"] < 60
    again = json.loads(json.dumps(fields, allow_nan=False))
    assert ExperimentResult.from_dict(again) == result


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_summary_and_figure(quick_result, name, tmp_path):
    pytest.importorskip("matplotlib")
    from bnfast.cli.run import render
    from bnfast.plot.experiments import plot_experiment

    result = quick_result(name)
    text = render(result)
    assert f"Verdict: {result.verdict}" in text and result.source.split()[0] in text
    assert all(isinstance(line, str) for line in experiments.experiment(name).summary(
        result.measurements))
    path = tmp_path / f"{name}.png"
    plot_experiment(result.to_dict(), path)   # from the JSON form, as documented
    assert path.stat().st_size > 10_000


def test_same_seed_same_result_whatever_the_executor(quick_result):
    # The cheapest experiment, re-run on a thread pool: identical measurements.
    name = min(NAMES, key=lambda n: quick_result(n).seconds)
    with cf.ThreadPoolExecutor(2) as pool:
        again = experiments.run(name, quick=True, seed=0, executor=pool, progress=False)
    assert again.measurements == quick_result(name).measurements
    assert again.verdict == quick_result(name).verdict


def test_unknown_name_lists_the_experiments():
    with pytest.raises(ValueError, match="unknown experiment 'ICS'.*ics, landscape, "
                                         "noisy-bn, lp-norm, explosion, decoupling, "
                                         "lipschitz, residual-identity, rank-collapse, "
                                         "edge-of-stability, large-lr, "
                                         "hessian-outliers, "
                                         "precise-bn"):
        experiments.run("ICS")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"seed": -1}, ValueError, "seed must be in \\[0, 2\\*\\*63\\), got -1"),
    ({"seed": 2**63}, ValueError, "seed must be in \\[0, 2\\*\\*63\\)"),
    ({"seed": 1.5}, TypeError, "seed must be an int"),
    ({"seed": True}, TypeError, "seed must be an int"),
    ({"quick": 1}, TypeError, "quick must be a bool"),
    ({"progress": "no"}, TypeError, "progress must be a bool"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        experiments.run("decoupling", **kwargs)


def test_a_bad_executor_is_refused():
    with pytest.raises(TypeError, match="executor must be"):
        experiments.run("decoupling", quick=True, executor=object(), progress=False)


def test_result_refuses_an_unknown_verdict():
    with pytest.raises(ValueError, match="verdict must be one of"):
        ExperimentResult("x", "c", "s", "maybe", "r")


def test_derived_seeds_are_distinct_and_stable():
    seeds = {experiments.derived_seed(0, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert experiments.derived_seed(7, 3) == experiments.derived_seed(7, 3)
    assert experiments.derived_seed(7, 3) != experiments.derived_seed(3, 7)
    assert not math.isnan(experiments.derived_seed(2**62, 2**40))


def test_every_experiment_has_a_title_for_the_tables():
    for name in NAMES:
        title = experiments.experiment(name).title
        assert 20 < len(title) <= 160 and "\n" not in title and "|" not in title, name
