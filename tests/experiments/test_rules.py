"""Pre-registration a reader can check (issue 28, item 3): every experiment's rule has a
version and a hash of {name, version, text, params}; registered_rules.json pins every
published version; a rule whose text or parameters change without a new version fails
here, as does a registered version that disappears or changes."""

import copy
import json
import pathlib

import pytest

from bnfast.experiments import experiment, names
from bnfast.experiments.result import ExperimentResult, canonical_rule, rule_hash

ROOT = pathlib.Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "bnfast" / "experiments" / "registered_rules.json"
RESULTS = ROOT / "docs" / "experiments" / "results"

#: The published versions, pinned a second time here (the first 12 hex digits of each
#: hash): changing a registered entry means changing this table too, in review.
PINNED = {
    "ics": {1: "697eddff7faf", 2: "daa809ab305d", 3: "d84efd613459"},
    "landscape": {1: "c6f6a32df819", 2: "20b049c5e535", 3: "d33fe85ab231"},
    "noisy-bn": {1: "7ab7a64cbb78", 2: "a5b0fb92e607", 3: "7346aa825a9c"},
    "lp-norm": {1: "eaf45e9e6b5e", 2: "e92c2677710a", 3: "1bf06841b6b5"},
    "explosion": {1: "027605585550", 2: "e9a66430e583", 3: "1d2bfcbdf843"},
    "decoupling": {1: "9dd1b9ebc041", 2: "03c1b8bdadf5"},
    "lipschitz": {1: "2ee0fa504aa7", 2: "d093531dbec2"},
    "residual-identity": {1: "7fe79b69697d"},
    "rank-collapse": {1: "490358b49e2a"},
    "large-lr": {1: "8bf1253ec3c6"},
    "edge-of-stability": {1: "1b3a84cf9ef7"},
    "hessian-outliers": {1: "2f64eb9f3feb"},
    "precise-bn": {1: "aab82840306d"},
}

#: Experiments whose first registered rule already gives the version-2 labels (result.py):
#: their rules start at version 1.
FIRST_RULE_WITH_V2_LABELS = {"residual-identity", "rank-collapse", "large-lr",
                             "edge-of-stability", "hessian-outliers", "precise-bn"}


def _registry():
    return json.loads(REGISTRY.read_text())


def check(registry, specs):
    """The registry's checks; returns a list of problems (empty: all good).
    specs : {name: (version, text, params)} of the code's current rules."""
    problems = []
    for name, (version, text, params) in specs.items():
        entries = registry.get(name, {})
        entry = entries.get(str(version))
        if entry is None:
            problems.append(f"{name}: version {version} is not registered")
        elif entry["hash"] != rule_hash(name, version, text, params):
            problems.append(f"{name}: rule text or params changed without a new version "
                            f"(registered v{version} {entry['hash'][:12]})")
    for name, entries in registry.items():
        versions = sorted(int(v) for v in entries)
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"{name}: registered versions {versions} are not 1..n")
        for version, entry in entries.items():
            if entry["hash"] != rule_hash(name, int(version), entry["text"], entry["params"]):
                problems.append(f"{name}: registered v{version} does not hash to its hash")
            pinned = PINNED.get(name, {}).get(int(version))
            if pinned is None or not entry["hash"].startswith(pinned):
                problems.append(f"{name}: registered v{version} differs from the pinned "
                                "hash")
    for name, versions in PINNED.items():
        for version in versions:
            if str(version) not in registry.get(name, {}):
                problems.append(f"{name}: pinned v{version} disappeared from the registry")
    return problems


def _specs():
    return {name: (experiment(name).rule_version, experiment(name).rule,
                   experiment(name).rule_params) for name in names()}


def test_every_rule_is_registered_under_its_version():
    assert check(_registry(), _specs()) == []


def test_a_rule_changed_without_a_new_version_fails():
    specs = _specs()
    version, text, params = specs["ics"]
    assert check(_registry(), {"ics": (version, text + " ", params)})
    changed = {**params, "cosine_margin": 0.06}
    assert any("without a new version" in p
               for p in check(_registry(), {"ics": (version, text, changed)}))
    # the new version is not registered yet: that fails too, until it is
    assert any("not registered" in p
               for p in check(_registry(), {"ics": (version + 1, text, changed)}))


def test_a_registered_version_that_disappears_or_changes_fails():
    registry = _registry()
    gone = copy.deepcopy(registry)
    del gone["noisy-bn"]["1"]
    assert any("disappeared" in p or "not 1..n" in p for p in check(gone, _specs()))
    edited = copy.deepcopy(registry)
    edited["lp-norm"]["1"]["text"] += " (edited)"
    assert any("does not hash" in p for p in check(edited, _specs()))
    rehashed = copy.deepcopy(edited)
    entry = rehashed["lp-norm"]["1"]
    entry["hash"] = rule_hash("lp-norm", 1, entry["text"], entry["params"])
    assert any("pinned" in p for p in check(rehashed, _specs()))


def test_the_hash_is_sha256_of_the_canonical_json():
    import hashlib
    text = canonical_rule("x", 2, "rule", {"b": 1, "a": 0.5})
    assert text == '{"name":"x","params":{"a":0.5,"b":1},"text":"rule","version":2}'
    assert rule_hash("x", 2, "rule", {"a": 0.5, "b": 1}) == \
        hashlib.sha256(text.encode()).hexdigest()
    assert rule_hash("x", 2, "rule", {"a": 0.5}) != rule_hash("x", 3, "rule", {"a": 0.5})
    with pytest.raises(ValueError):
        rule_hash("x", 2, "rule", {"a": float("nan")})


@pytest.mark.parametrize("name", names())
def test_rule_params_are_json_and_the_version_is_new(name):
    spec = experiment(name)
    first = 1 if name in FIRST_RULE_WITH_V2_LABELS else 2
    assert isinstance(spec.rule_version, int) and spec.rule_version >= first
    json.dumps(spec.rule_params, allow_nan=False)
    assert spec.rule_params


@pytest.mark.parametrize("name", names())
def test_committed_results_match_a_registered_version(name):
    result = ExperimentResult.from_dict(json.loads((RESULTS / f"{name}.json").read_text()))
    entry = _registry()[name][str(result.rule_version)]
    assert result.rule_hash == entry["hash"]


#: The settings key holding the number of seeds (independent replicates) of a full run.
SEED_KEYS = {"ics": "seeds", "landscape": "seeds", "noisy-bn": "seeds",
             "lp-norm": "seeds", "explosion": "replicates", "decoupling": "seeds",
             "lipschitz": "splits", "residual-identity": "seeds",
             "rank-collapse": "seeds", "large-lr": "seeds",
             "edge-of-stability": "seeds", "hessian-outliers": "seeds",
             "precise-bn": "seeds"}


@pytest.mark.parametrize("name", names())
def test_full_runs_have_ten_seeds_or_say_why_not(name):
    settings = experiment(name).settings(False)
    if name in SEED_KEYS:
        assert settings[SEED_KEYS[name]] >= 10
        assert experiment(name).rule_params[SEED_KEYS[name]] == settings[SEED_KEYS[name]]
    else:
        assert any("10 seeds" in line for line in settings["reduced"]), name
