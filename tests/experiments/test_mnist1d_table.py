"""docs/experiments/mnist1d_table.py (MNIST-1D's logistic/MLP/CNN table, with and without
BN), run as a user runs it, in a subprocess: --quick prints the five rows and the CNN
learns; the JSON it writes with --out; --quick alone writes nothing; an existing results
file is never replaced without --force."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mnist1d")

# Each quick run takes ~5 s on 2 cores (1 s of it generating the data set).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "experiments" / "mnist1d_table.py"
DEFAULT_OUT = SCRIPT.parent / "results" / "mnist1d.json"
ROWS = ("Logistic regression", "MLP", "MLP + BN", "CNN", "CNN + BN")
SUBPROCESS_TIMEOUT = 100

# The quick setting (seed 0, 300 Adam steps of the package's recipe) measured 79.7% for
# the CNN and 91.5% for the CNN with BN (seeds 0..4: 77.2-83.1% and 89.5-93.0%); chance
# is 10%. 50% is five times chance and more than 25 points below every seed measured.
CNN_QUICK_BOUND = 0.50


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), "--quick", "--no-progress", *args],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT)


def _table_rows(stdout):
    """{label: mean test accuracy in %} from the markdown table's body rows."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 5 and cells[0] in ROWS:
            rows[cells[0]] = float(re.match(r"([\d.]+)%", cells[1]).group(1))
    return rows


def test_quick_run_prints_the_five_rows_and_writes_the_json(tmp_path):
    out = tmp_path / "mnist1d.json"
    out.write_text("an older results file\n")
    p = _run("--out", str(out), "--force", cwd=tmp_path)   # --force: replaced
    assert p.returncode == 0, p.stderr
    assert "| model |" in p.stdout
    rows = _table_rows(p.stdout)
    assert list(rows) == list(ROWS), p.stdout
    assert rows["CNN"] >= 100 * CNN_QUICK_BOUND, p.stdout
    assert rows["CNN + BN"] >= 100 * CNN_QUICK_BOUND, p.stdout

    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert results["settings"]["seeds"] == [0]
    assert results["settings"]["optimizer"]["name"] == "Adam"
    assert [c["label"] for c in results["configurations"]] == list(ROWS)
    assert [c["num_params"] for c in results["configurations"]] == \
        [410, 15210, 15610, 5210, 5360]   # PyTorch's counts for the package's models
    for c in results["configurations"]:
        (run,) = c["runs"]
        assert run["seed"] == 0 and 0.0 <= run["test_accuracy"] <= 1.0
        assert round(100 * run["test_accuracy"], 1) == rows[c["label"]]
        assert run["train_seconds"] > 0
    assert results["bnfast_version"] and results["date"]
    assert results["differences_from_paper"]


def test_quick_run_without_out_writes_nothing(tmp_path):
    before = DEFAULT_OUT.stat().st_mtime_ns if DEFAULT_OUT.exists() else None
    p = _run("--steps", "1", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert list(_table_rows(p.stdout)) == list(ROWS)
    assert list(tmp_path.iterdir()) == []
    after = DEFAULT_OUT.stat().st_mtime_ns if DEFAULT_OUT.exists() else None
    assert after == before


def test_refuses_to_overwrite_a_results_file(tmp_path):
    out = tmp_path / "mnist1d.json"
    out.write_text("kept\n")
    p = _run("--out", str(out), cwd=tmp_path)
    assert p.returncode == 1
    assert "refusing to overwrite" in p.stderr and "--force" in p.stderr
    assert p.stdout == ""            # refused before training: no table
    assert out.read_text() == "kept\n"
