"""`bnfast report PATH.html [--results DIR] [--asv DIR] [--overwrite]`: one
self-contained offline page of what bnfast finds (bnfast/cli/report.py). The page is
written once per module (about 10 s: verify, audit and a small sweep) and read by
every test; the browser test opens it in headless Chromium with the network off
(skipped without Chromium)."""

import json
import re
from pathlib import Path

import pytest

from bnfast.cli import main
from bnfast.cli import report
from browser_helpers import dump_dom, screenshot  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.timeout(300)

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "experiments" / "results"


def _experiments():
    out = {}
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if "verdict" in data:
            out[data["experiment"]] = data
    return out


def _asv_results(root):
    """A small asv results directory: one machine, one run, a ratio and a time."""
    machine = root / "box"
    machine.mkdir(parents=True)
    (root / "benchmarks.json").write_text(json.dumps({
        "bench_kernels.Ratios.track_forward_out_over_copy": {"unit": "ratio"},
        "bench_kernels.Copy.time_copyto": {"unit": "seconds"},
        "bench_train.MLP.track_us_per_step": {"unit": "us/step"},
        "version": 2}))
    (machine / "machine.json").write_text(json.dumps({"machine": "box", "version": 1}))
    columns = ["result", "params", "version", "started_at", "duration"]
    (machine / "0123abcd-existing.json").write_text(json.dumps({
        "commit_hash": "0123abcdef0123abcdef", "env_name": "existing-py", "date": 1.7e12,
        "result_columns": columns, "version": 2, "results": {
            "bench_kernels.Ratios.track_forward_out_over_copy":
                [[1.654321, None], [["'(3, 2) float64'", "'big'"]], "v", 0, 1.0],
            "bench_kernels.Copy.time_copyto": [[1e-3], [], "v", 0, 1.0],
            "bench_train.MLP.track_us_per_step": [[12.5], [], "v", 0, 1.0]}}))
    return root


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not RESULTS.is_dir():
        pytest.skip("docs/experiments/results is not beside the tests")
    root = tmp_path_factory.mktemp("report")
    asv = _asv_results(root / "asv")
    path = root / "report.html"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "FAILURE_LAW_INSTANCES", 20_000)     # the sweep, smaller
        code = main(["report", str(path), "--results", str(RESULTS), "--asv", str(asv)])
    assert code == 0
    return path, path.read_text(encoding="utf-8")


def test_report_holds_every_finding(page):
    _, text = page
    # verify: the verdict and the step-by-step argument
    assert "Lemma 4.5 of Santurkar et al. (2018) is refuted by Example 3.2" in text
    assert "Both sides of (1)" in text
    # audit: one row per statement and form, the failures with their counterexample
    for statement in ("Theorem 4.1", "Theorem 4.2(a)", "Theorem 4.2(b)", "Observation 4.3",
                      "Theorem 4.4", "Lemma 4.5", "l1 constant", "Scale invariance"):
        assert f"<td>{statement}</td>" in text
    assert text.count('<tr class="v-fails">') >= 6
    # a failing equality shows its two sides as unequal, with the Monte Carlo note
    assert "lhs sqrt(2)/2 != rhs 1/sqrt(pi) at B=2 sigma=1 mu=0" in text
    assert "Monte Carlo E[mad_B]/E[std_B]" in text
    # the failure law, with its premise
    assert "Lemma 4.5&#x27;s failure law" in text
    assert "of the initializations with the premise" in text
    assert "share of all initializations" in text
    # every experiment: its verdict, its rule, its figure
    experiments = _experiments()
    assert experiments, "no experiment results to report"
    for name, data in experiments.items():
        article = re.search(rf'<article id="exp-{re.escape(name)}">(.*?)</article>', text,
                            re.S)
        assert article, name
        assert f'class="verdict v-{data["verdict"]}"' in article.group(1)
        # the rule with its version: results written before version 2 carry no hash
        # and read as version 1; a version-2 file gives the first 12 hex digits of its
        # hash; both with the fragility line
        version = data.get("rule_version", 1)
        if data.get("rule_hash"):
            assert (f"<strong>Rule (version {version}, sha256 "
                    f"<code>{data['rule_hash'][:12]}</code>).</strong>") in article.group(1)
        else:
            assert version == 1
            assert "<strong>Rule (version 1).</strong>" in article.group(1)
        assert "Fragility: " in article.group(1)
        if data.get("fragility") is None:
            assert "fragility: not computed (a version-1 result)" in article.group(1)
        if (RESULTS / f"{name}.png").exists():
            assert 'src="data:image/png;base64,' in article.group(1), name
    # MNIST-1D's table
    assert "<td>CNN + BN</td>" in text and "<td>Logistic regression</td>" in text
    # the benchmark ratios: ratio benchmarks only, a failed value said so
    assert "<td>bench_kernels.Ratios.track_forward_out_over_copy</td>" in text
    assert "<td>1.65</td>" in text and "<td>failed</td>" in text
    assert "time_copyto" not in text and "track_us_per_step" not in text


def test_report_loads_nothing_from_anywhere(page):
    _, text = page
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert "url(" not in text
    sources = re.findall(r'\bsrc="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)


def test_report_refuses_to_replace_a_file_before_any_work(tmp_path, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("the report was built")
    monkeypatch.setattr(report, "write_report", no_work)
    path = tmp_path / "report.html"
    path.write_text("mine")
    assert main(["report", str(path)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert path.read_text() == "mine"


def test_report_overwrite_replaces_the_file(tmp_path, monkeypatch):
    calls = []

    def fake(path, results_dir=None, asv_dir=None, failure_law_instances=None):
        calls.append(path)
        Path(path).write_text("new")
        return "new"
    monkeypatch.setattr(report, "write_report", fake)
    path = tmp_path / "report.html"
    path.write_text("mine")
    assert main(["report", str(path), "--overwrite"]) == 0
    assert path.read_text() == "new" and len(calls) == 1


@pytest.mark.parametrize("argv, message", [
    (["report", "{tmp}/report.txt"], "PATH must end in .html"),
    (["report", "{tmp}/no/such/dir/report.html"], "not a writable folder"),
    (["report", "{tmp}/report.html", "--results", "{tmp}/missing"], "--results"),
    (["report", "{tmp}/report.html", "--asv", "{tmp}/missing"], "--asv"),
])
def test_report_usage_errors_exit_2_before_any_work(tmp_path, monkeypatch, capsys, argv,
                                                    message):
    monkeypatch.setattr(report, "write_report",
                        lambda *a, **k: pytest.fail("the report was built"))
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_report_without_results_says_where_they_come_from():
    _, _, body = report._experiments_section(None)
    assert "bnfast run NAME --json" in body
    _, _, body = report._benchmarks_section(None)
    assert "--asv benchmarks/results" in body


def test_report_renders_offline_in_chromium(page, tmp_path):
    path, _ = page
    url = path.resolve().as_uri()
    dom = dump_dom(url)
    assert 'id="verify-verdict"' in dom and "is refuted by Example 3.2" in dom
    assert "<td>Lemma 4.5</td>" in dom
    pixels = screenshot(url, str(tmp_path / "report.png"))
    # a rendered page: text, tables and a figure, not a blank or error page
    assert pixels.std() > 0.1
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02
