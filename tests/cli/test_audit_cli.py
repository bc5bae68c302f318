"""`bnfast audit`: the table, --json, one statement, --instance files and their errors,
run as a user runs it (a subprocess of `python -m bnfast`, outside the source tree)."""

import json
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "bnfast", "audit", *args],
                          capture_output=True, text=True, timeout=300,
                          cwd=tempfile.gettempdir())


def test_table_lists_every_row_with_its_verdict():
    start = time.perf_counter()
    p = run("--no-progress")     # stderr stays empty (a bar shows after a second)
    seconds = time.perf_counter() - start
    assert p.returncode == 0, p.stderr
    assert seconds < 10, seconds
    out = p.stdout
    for line in ["Theorem 4.1      printed      FAILS", "Theorem 4.1      corrected    identity",
                 "Theorem 4.2(a)   printed      identity", "Theorem 4.2(b)   printed      FAILS",
                 "Observation 4.3  constant     FAILS", "Theorem 4.4      printed      FAILS",
                 "Theorem 4.4      corrected    identity", "Lemma 4.5        printed      FAILS",
                 "l1 constant      population   identity", "l1 constant      batch B      FAILS",
                 "l1 constant      corrected    identity",
                 "Scale invariance orthogonal   identity", "Scale invariance norm step    identity",
                 "Scale invariance eps > 0      FAILS", "Scale invariance corrected    identity",
                 "lhs sqrt(2)/2 != rhs 1/sqrt(pi) at B=2 sigma=1 mu=0",
                 "-> sqrt(2/pi) = 0.7979; 8 of 8 exact values in",
                 "= 0.4873", "for a random W0 with the premise",
                 "it fails for 51% of the initializations with the",
                 "premise (26% of all)"]:
        assert line in out, line
    assert p.stderr == ""


def test_json_has_one_entry_per_row():
    p = run("--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert len(d["rows"]) == 16
    for row in d["rows"]:
        assert {"statement", "form", "holds", "lhs", "rhs", "gap",
                "counterexample"} <= set(row)
        assert (row["counterexample"] is None) == row["holds"]
    (lemma,) = [row for row in d["rows"] if row["statement"] == "Lemma 4.5"]
    assert lemma["example_3_2_holds_probability"] == pytest.approx(0.4873, abs=1e-4)
    assert lemma["counterexample"]["instance"]["w0"]


def test_one_statement_in_exact_mode():
    p = run("theorem-4-4", "--exact", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["rows"]
    assert [(r["form"], r["verdict"]) for r in rows] == [("printed", "fails"),
                                                          ("corrected", "identity")]
    assert rows[1]["exact_forms"]["gap"] == "0"


def test_instance_from_json_and_npz(tmp_path):
    path = tmp_path / "i.json"
    path.write_text(json.dumps({"h": [0, 1, 3], "grad": [1, 0, 0], "gamma": 2}))
    p = run("theorem-4-1", "--instance", str(path))
    assert p.returncode == 0, p.stderr
    assert "Theorem 4.1 (printed): FAILS" in p.stdout
    assert "Theorem 4.1 (corrected): holds" in p.stdout
    npz = tmp_path / "i.npz"
    rng = np.random.default_rng(0)
    H = rng.normal(size=(4, 4))
    np.savez(npz, h=rng.normal(size=4), grad=rng.normal(size=4), hessian=H + H.T)
    p = run("theorem-4-2", "--instance", str(npz), "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["rows"]
    assert [r["statement"] for r in rows] == ["Theorem 4.2(a)", "Theorem 4.2(b)"]
    assert rows[0]["holds"] is True


@pytest.mark.parametrize("content,match", [
    ({"h": [0, 1, 3]}, "field 'grad' is missing"),
    ({"h": [0, 1, 3], "grad": [1, 0, 0], "lam": 1}, "field 'lam' is not an argument"),
    ({"h": [0, 1, 3], "grad": ["a", "b", "c"]}, "field 'grad' must hold numbers"),
    ({"h": [1, 1, 1], "grad": [1, 0, 0]}, "h is constant"),
    ({"h": [0, 1], "grad": [1, 0, 0]}, "grad"),
    ([1, 2], "one object of named fields"),
])
def test_bad_instance_files_name_the_field(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    p = run("theorem-4-1", "--instance", str(path))
    assert p.returncode == 2
    assert match in p.stderr
    assert "Traceback" not in p.stderr


def test_instance_usage_errors(tmp_path):
    p = run("--instance", "x.json")
    assert p.returncode == 2 and "needs a STATEMENT" in p.stderr
    p = run("theorem-4-1", "--instance", str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "No such file" in p.stderr
    p = run("theorem-4-1", "--instance", str(tmp_path / "x.txt"))
    assert p.returncode == 2 and ".json or .npz" in p.stderr
    (tmp_path / "broken.json").write_text("{")
    p = run("theorem-4-1", "--instance", str(tmp_path / "broken.json"))
    assert p.returncode == 2 and "not valid JSON" in p.stderr
    p = run("theorem-9")
    assert p.returncode == 2 and "invalid choice" in p.stderr


def test_the_later_papers_rows_on_instance_files(tmp_path):
    # scale invariance on the one-neuron counterexample (eps = 1): <W, G> = 16/25
    path = tmp_path / "si.json"
    path.write_text(json.dumps({"X": [[0], [1]], "W": [[1]], "V": [1], "y": [0, 0],
                                "eps": 1, "lr": 2}))
    p = run("scale-invariance", "--instance", str(path), "--exact")
    assert p.returncode == 0, p.stderr
    assert "Scale invariance (orthogonal): FAILS\n  lhs = 16/25\n  rhs = 0" in p.stdout
    assert "Scale invariance (corrected): holds\n  lhs = 16/25\n  rhs = 16/25" in p.stdout
    # the l1 constant at B = 4 (a JSON 4 is read as 4.0 without --exact: still a size)
    path = tmp_path / "l1.json"
    path.write_text(json.dumps({"sigma": 2, "mu": 1, "B": 4}))
    p = run("l1-constant", "--instance", str(path), "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["rows"]
    assert [(r["form"], r["holds"], r["relation"]) for r in rows] == [
        ("population", True, "="), ("batch", False, "="), ("corrected", True, "=")]
    assert rows[1]["quantities"]["ratio"] == pytest.approx(3 ** 0.5 / 2, rel=1e-13)
    path.write_text(json.dumps({"sigma": 2, "B": 1}))
    p = run("l1-constant", "--instance", str(path))
    assert p.returncode == 2 and "B must be >= 2" in p.stderr
