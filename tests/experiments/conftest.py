"""Each experiment's quick run is computed once per test session and shared by the
tests that inspect it (a quick run takes seconds; the tests only read it)."""

import pytest

_RESULTS = {}


@pytest.fixture(scope="session")
def quick_result():
    """quick_result(name) -> the ExperimentResult of run(name, quick=True, seed=0)."""
    from bnfast import experiments

    def get(name):
        if name not in _RESULTS:
            _RESULTS[name] = experiments.run(name, quick=True, seed=0, progress=False)
        return _RESULTS[name]
    return get
