"""A new experiment, sweep or audit row is one new module: a dummy module put into the
package (a folder added to its __path__ for one test) is listed by the library and by
the command everywhere the real ones are: `bnfast run --list` and `bnfast run NAME`,
`bnfast search --help` and `bnfast search NAME`, the `bnfast audit` table."""

import importlib
import json
import sys
import textwrap

import pytest

from bnfast import cli


@pytest.fixture
def add_module(tmp_path, monkeypatch):
    """add_module(package, name, source): the module package.name, for this test only."""
    added = []

    def add(package, name, source):
        pkg = importlib.import_module(package)
        folder = tmp_path / package.replace(".", "_")
        folder.mkdir()
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(folder)])
        added.append((pkg, name))

    yield add
    for pkg, name in added:
        sys.modules.pop(f"{pkg.__name__}.{name}", None)
        if hasattr(pkg, name):
            delattr(pkg, name)


def _main(capsys, *argv):
    """(exit code, stdout) of `bnfast ARGV` run in this process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:     # --help
        code = exc.code
    return code, capsys.readouterr().out


EXPERIMENT = '''
    from bnfast.experiments.result import combine
    from bnfast.experiments.spec import Experiment

    def settings(quick):
        return {"reduced": ["nothing to reduce: a dummy"]}

    def tasks(settings, seed):
        return [{"seed": seed}]

    def run_task(task):
        return {"value": 1}

    def conclude(settings, results):
        outcome = "supported" if results[0]["value"] == 1 else "refuted"
        return combine({"value": outcome}, "a dummy set-up"), {
            "verdict_inputs": {"value": results[0]["value"]}, "alternatives": {}}

    EXPERIMENT = Experiment(
        name="dummy-claim", claim="A dummy claim that every value is one.",
        source="Nobody (2025), a test of the registry", rule="supported if the value is 1",
        rule_version=2, rule_params={"value": 1}, settings=settings, tasks=tasks, run_task=run_task, conclude=conclude,
        summary=lambda measurements: ["value = 1"])
'''


def test_an_experiment_module_is_an_experiment(add_module, capsys):
    from bnfast import experiments

    seven = experiments.names()
    add_module("bnfast.experiments", "dummy_claim", EXPERIMENT)
    assert experiments.names() == (*seven, "dummy-claim")
    code, out = _main(capsys, "run", "--list")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [*seven, "dummy-claim"]
    assert "Nobody (2025)" in out.splitlines()[-1]
    code, out = _main(capsys, "run", "dummy-claim", "--json", "--no-progress")
    assert code == 0
    fields = json.loads(out)
    assert fields["experiment"] == "dummy-claim" and fields["verdict"] == "supported"
    # the rule's version, parameters and hash travel with the result
    spec = experiments.experiment("dummy-claim")
    assert (fields["rule_version"], fields["rule_params"], fields["rule_hash"]) == (
        2, {"value": 1}, spec.rule_hash)


SWEEP = '''
    from bnfast.search.result import SearchResult
    from bnfast.search.sweep import Option, Sweep

    def dummy(instances, samples=2, seed=0, executor=None, progress=True, out=None,
              resume=False, overwrite=False, level=0.5):
        settings = {"statement": "dummy-sweep", "samples": samples, "seed": seed,
                    "level": level, "degenerate": 0, "decided_exactly": 0}
        return SearchResult("dummy-sweep", instances, instances, instances, 1.0, None,
                            (0.9, 1.0), [], 0.01, settings)

    SWEEPS = (Sweep(name="dummy-sweep", title="A dummy statement", run=dummy,
                    samples="the dummy size, default 2",
                    law=lambda s: f"level {s['level']:g}, seed {s['seed']}",
                    premise="instances:", holds="it holds:", example=lambda c: [],
                    options=(Option("level", "X", float, "the dummy level (default 0.5)"),)),)
'''


def test_a_sweep_module_is_a_sweep(add_module, capsys):
    from bnfast import search

    add_module("bnfast.search", "dummy_sweep", SWEEP)
    # in module order: dummy_sweep.py, lemma_4_5.py, theorems.py
    assert list(search.sweeps()) == ["dummy-sweep", "lemma-4-5", "theorem-4-1", "theorem-4-4"]
    code, out = _main(capsys, "search", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "the statement: dummy-sweep, lemma-4-5, theorem-4-1, theorem-4-4" in text
    assert "--level X dummy-sweep: the dummy level (default 0.5)" in text
    assert "dummy-sweep: the dummy size, default 2" in text
    code, out = _main(capsys, "search", "dummy-sweep", "--instances", "7", "--level",
                      "0.25", "--seed", "3", "--json")
    assert code == 0
    settings = json.loads(out)["settings"]
    assert (settings["level"], settings["seed"], settings["samples"]) == (0.25, 3, 2)
    code, out = _main(capsys, "search", "dummy-sweep", "--instances", "7")
    assert code == 0
    assert out.startswith("A dummy statement over 7 random instances (level 0.5, seed 0)")


AUDIT_ROW = '''
    from types import SimpleNamespace

    from bnfast.claims.counterexample import Row, draw_h_grad

    def check(h, grad, exact=False):
        """A dummy statement: 0 <= ||h||^2."""
        rhs = float(h @ h)
        return SimpleNamespace(holds=True, lhs=0.0, rhs=rhs, gap=rhs, tolerance=0.0,
                               exact=exact)

    AUDIT_ROWS = (Row("dummy-9-1", "Dummy 9.1", "printed", check, draw_h_grad,
                      extra=lambda: {"dummy_number": 7},
                      notes=lambda extra: [f"a note on {extra['dummy_number']}"]),)
'''


def test_an_audit_row_module_is_a_row(add_module, capsys):
    from bnfast.claims import audit

    add_module("bnfast.claims", "dummy_statement", AUDIT_ROW)
    # after Lemma 4.5 (9.1 > 4.5), before the rows of later papers (no section number)
    names = audit.statements()
    assert names.index("dummy-9-1") == names.index("lemma-4-5") + 1
    code, out = _main(capsys, "audit")
    assert code == 0
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("Dummy 9.1"))
    assert lines[row].split()[:4] == ["Dummy", "9.1", "printed", "holds"]
    lemma = next(i for i, line in enumerate(lines) if line.startswith("Lemma 4.5"))
    # the last real row, with its notes
    assert lemma < row and all(line.startswith(" ") for line in lines[lemma + 1:row])
    assert lines[row + 1].strip() == "a note on 7"
    code, out = _main(capsys, "audit", "dummy-9-1", "--json")
    assert code == 0
    (fields,) = json.loads(out)["rows"]
    assert fields["statement"] == "Dummy 9.1" and fields["dummy_number"] == 7
    code, out = _main(capsys, "audit", "--help")
    assert "dummy-9-1" in out
