"""`bnfast run NAME [--quick] [--json] [--plot PATH] [--seed S] [--scheduler ADDR]` and
`bnfast run --list`, run as a user runs them (subprocesses of `python -m bnfast`)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from bnfast.experiments import VERDICTS, experiment, names
from sigint_helpers import default_sigint  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.timeout(300)

# The cheapest quick run, for the tests that need one whole run.
CHEAP = "decoupling"


def run(*args, timeout=240):
    # From outside the source tree, so the installed package is imported.
    return subprocess.run([sys.executable, "-m", "bnfast", "run", *args],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=tempfile.gettempdir())


def test_list_names_every_experiment_with_its_source():
    p = run("--list")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(names())
    assert all(len(line.split()) > 3 for line in lines)   # a source after each name


def test_json_prints_one_object_and_nothing_else():
    p = run(CHEAP, "--quick", "--json", "--seed", "3")
    assert p.returncode == 0, p.stderr
    fields = json.loads(p.stdout)     # the whole of stdout is one object
    assert fields["experiment"] == CHEAP and fields["settings"]["seed"] == 3
    assert fields["verdict"] in VERDICTS          # version 2's labels
    spec = experiment(CHEAP)
    assert (fields["rule_version"], fields["rule_hash"], fields["rule_params"]) == (
        spec.rule_version, spec.rule_hash, spec.rule_params)
    assert fields["verdict_detail"]["label"] == fields["verdict"]
    assert fields["quick"] is True and "flips" in fields["fragility"]


def test_text_report_and_figure(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "figure.svg"
    p = run(CHEAP, "--quick", "--plot", str(path), "--no-progress")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for heading in ("Claim:", "Set-up:", "Reduced relative to the paper:", "Measured:",
                    "Verdict: ", "Fragility: "):
        assert heading in out, heading
    # the rule with its version and the first 12 hex digits of its hash
    spec = experiment(CHEAP)
    assert (f"Rule (version {spec.rule_version}, sha256 {spec.rule_hash[:12]}):"
            in out.splitlines())
    assert spec.rule_version >= 2
    assert "reasonable alternative summaries flip the verdict" in out
    assert f"wrote {path}" in out
    assert path.read_text().lstrip().startswith("<?xml")
    assert p.stderr == ""   # no progress bar asked for, nothing else to say


@pytest.mark.parametrize("args, message", [
    (("nope",), "unknown experiment 'nope'; the experiments are: ics, landscape"),
    ((), "name an experiment"),
    ((CHEAP, "--seed", "-1"), "--seed must be in [0, 2**63)"),
    ((CHEAP, "--seed", "x"), "--seed must be an integer (e.g. 1000000 or 1e6), got 'x'"),
    ((CHEAP, "--plot", "figure.gif"), "must end in one of .png, .pdf, .svg"),
    ((CHEAP, "--scheduler", "nohost"), "--scheduler: scheduler address 'nohost' is not"),
])
def test_usage_errors_exit_2(args, message):
    p = run(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr
    assert p.stdout == ""


def test_unreachable_scheduler_is_an_error_not_a_hang():
    pytest.importorskip("distributed")
    start = time.perf_counter()
    p = run(CHEAP, "--quick", "--scheduler", "tcp://127.0.0.1:9")
    assert p.returncode == 2
    assert "no Dask scheduler answered at tcp://127.0.0.1:9" in p.stderr
    assert time.perf_counter() - start < 60


def test_a_dask_scheduler_gives_the_local_result():
    distributed = pytest.importorskip("distributed")
    local = json.loads(run(CHEAP, "--quick", "--json").stdout)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        p = run(CHEAP, "--quick", "--json", "--scheduler", cluster.scheduler_address)
    assert p.returncode == 0, p.stderr
    remote = json.loads(p.stdout)
    assert remote["measurements"] == local["measurements"]
    assert remote["verdict"] == local["verdict"]


def test_out_writes_the_json_object(tmp_path):
    path = tmp_path / "result.json"
    p = run(CHEAP, "--quick", "--json", "--no-progress", "--out", str(path))
    assert p.returncode == 0, p.stderr
    assert json.loads(path.read_text()) == json.loads(p.stdout)   # stdout stays the object
    assert p.stderr == f"wrote {path}\n"


def test_an_existing_out_file_is_refused_before_the_run(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("kept")
    start = time.perf_counter()
    p = run("ics", "--out", str(path))          # a full run, were it to start
    assert p.returncode == 2
    assert "--out:" in p.stderr and "pass --overwrite to replace it" in p.stderr
    assert p.stdout == "" and path.read_text() == "kept"
    assert time.perf_counter() - start < 30


def test_ctrl_c_stops_within_a_second(tmp_path):
    # A full run (minutes); SIGINT once it is under way. Its --out file, given with
    # --overwrite, is replaced only by a finished run: here it keeps its content.
    kept = tmp_path / "result.json"
    kept.write_text("the previous result")
    process = subprocess.Popen([sys.executable, "-m", "bnfast", "run", "explosion",
                                "--out", str(kept), "--overwrite"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=tempfile.gettempdir(), preexec_fn=default_sigint)
    try:
        time.sleep(6)
        assert process.poll() is None, process.communicate()
        sent = time.perf_counter()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert time.perf_counter() - sent < 1.0 + 0.5   # + the interpreter's exit
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "interrupted;" in err and "runs had finished" in err
    assert "Traceback" not in err
    assert kept.read_text() == "the previous result"
    assert [f.name for f in tmp_path.iterdir()] == ["result.json"]   # no temporary left
