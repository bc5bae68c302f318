"""bnfast.search.failure_law and `bnfast search lemma-4-5 --plot`: per random data set,
the measured rate of Lemma 4.5 against its closed form."""

import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from bnfast.search import failure_law
from bnfast.search import _lemma_4_5_batch as native

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def law():
    return failure_law(data_sets=40, initializations=20_000, dim=3, samples=5, seed=3,
                       progress=False)


def test_rates_agree_with_the_closed_form(law):
    assert law.predicted.shape == law.premise.shape == law.holds.shape == (40,)
    assert np.all((law.predicted >= 0) & (law.predicted <= 0.5))
    # ~95% of the intervals should contain the closed form; 40 data sets: allow 80%+.
    assert law.inside() >= 0.8
    z = (law.rates() - law.predicted) / np.sqrt(0.25 / law.premise)
    assert abs(np.mean(z)) < 4 / np.sqrt(40)


def test_each_data_set_is_its_own_fixed_data_sweep(law):
    # Data set 0 of task 0, re-checked through the native loop directly.
    from bnfast.executors import derived_seed
    rng = np.random.default_rng(derived_seed(3, 0))
    X, y = rng.standard_normal((5, 3)), rng.standard_normal(5)
    counts, predicted_sum, predicted_count, _ = native.check_chunk(
        derived_seed(derived_seed(3, 0), 0), 20_000, 3, 5, X, y, keep=0)
    assert predicted_sum / predicted_count == law.predicted[0]
    assert counts[1] == law.holds[0] and counts[1] + counts[2] == law.premise[0]


def test_same_seed_same_law(law):
    again = failure_law(data_sets=40, initializations=20_000, dim=3, samples=5, seed=3,
                        progress=False)
    assert np.array_equal(again.holds, law.holds)
    assert json.dumps(again.to_dict()) == json.dumps(law.to_dict())


@pytest.mark.parametrize("kwargs, match", [({"dim": 1}, "dim must be >= 2"),
                                           ({"samples": 2}, "samples must be >= 3"),
                                           ({"data_sets": 0}, "data_sets must be >= 1")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        failure_law(**{"progress": False, **kwargs})


def test_cli_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "law.png"
    p = subprocess.run([sys.executable, "-m", "bnfast", "search", "lemma-4-5",
                        "--instances", "1000", "--plot", str(path), "--json"],
                       capture_output=True, text=True, timeout=240,
                       cwd=tempfile.gettempdir())
    assert p.returncode == 0, p.stderr
    fields = json.loads(p.stdout)
    assert len(fields["failure_law"]["predicted"]) == 200
    assert path.stat().st_size > 10_000 and f"wrote {path}" in p.stderr


def test_cli_plot_needs_random_data():
    p = subprocess.run([sys.executable, "-m", "bnfast", "search", "lemma-4-5", "--data",
                        "example-3-2", "--plot", "x.png"], capture_output=True, text=True,
                       timeout=60, cwd=tempfile.gettempdir())
    assert p.returncode == 2 and "--plot draws Lemma 4.5's failure law" in p.stderr
