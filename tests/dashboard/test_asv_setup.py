"""The asv set-up of benchmarks/: the build matrix holds what a build needs
(benchmarks/asv.conf.json against pyproject.toml's [build-system]), and the offline
dashboard (benchmarks/offline_dashboard.py): its rewrite of asv's page, its data shim,
and, with asv and Chromium installed, a real `asv run --python=same --set-commit-hash`
on two commits of a scratch repository, `asv publish`, the rewrite, and the page
opened from file:// with the network off.

`asv continuous` on two real commits of bnfast builds the extension twice (about 5
minutes on two cores): test_asv_continuous_builds_and_compares_two_commits runs it when
BNFAST_TEST_ASV_CONTINUOUS=1, as `.ci/run` does after the suite.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser_helpers import dump_dom, screenshot  # noqa: E402  (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"

pytestmark = pytest.mark.timeout(600)


def _load_dashboard():
    spec = importlib.util.spec_from_file_location(
        "offline_dashboard", BENCHMARKS / "offline_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _asv_conf(path):
    """asv.conf.json: JSON with // comments (asv's own reading)."""
    text = "\n".join(line for line in Path(path).read_text().splitlines()
                     if not line.lstrip().startswith("//"))
    return json.loads(text)


def _name(requirement):
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace(
        "_", "-")


def test_matrix_holds_every_build_requirement():
    tomllib = pytest.importorskip("tomllib")
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    conf = _asv_conf(BENCHMARKS / "asv.conf.json")
    matrix = {_name(k) for k in conf["matrix"]["req"]}
    # builds run without isolation: the environment itself must hold every requirement
    assert any("--no-build-isolation" in c for c in conf["build_command"])
    missing = [r for r in build["requires"] if _name(r) not in matrix]
    assert not missing, f"asv.conf.json's matrix lacks {missing}"
    assert {"cmake", "ninja", "numpy"} <= matrix


def _asv_index_html():
    asv = pytest.importorskip("asv")
    return (Path(asv.__file__).parent / "www" / "index.html").read_text()


def test_rewrite_points_every_external_tag_at_vendor():
    dashboard = _load_dashboard()
    page = dashboard.rewrite_page(_asv_index_html())
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", page):
        assert not re.search(r"""(src|href)=["'](https?:)?//""", tag), tag
        assert "integrity" not in tag
    for name in dashboard.VENDOR_FILES:
        assert f'"vendor/{name}"' in page, name
    # the data shim right after jQuery, before everything that uses $.ajax
    assert page.index("vendor/jquery-3.3.1.min.js") < page.index("offline-data.js") \
        < page.index("vendor/jquery.flot-0.8.3.min.js") < page.index('src="asv.js"')


def test_rewrite_refuses_an_unknown_external_tag():
    dashboard = _load_dashboard()
    with pytest.raises(ValueError, match="cdn.example.org/newlib.js"):
        dashboard.rewrite_page('<script src="https://cdn.example.org/newlib.js"></script>')


def test_embedded_data_holds_every_json_file_by_its_url(tmp_path):
    dashboard = _load_dashboard()
    (tmp_path / "graphs" / "cpu-AMD EPYC").mkdir(parents=True)
    (tmp_path / "index.json").write_text('{"project": "bnfast"}')
    (tmp_path / "graphs" / "cpu-AMD EPYC" / "b.json").write_text("[[1, 2.5]]")
    assert dashboard.embed_data(tmp_path) == 2
    script = (tmp_path / "offline-data.js").read_text()
    head = script.split(";\n", 1)[0]
    data = json.loads(head[len("window.ASV_OFFLINE_DATA = "):])
    assert json.loads(data["index.json"]) == {"project": "bnfast"}
    assert json.loads(data["graphs/cpu-AMD EPYC/b.json"]) == [[1, 2.5]]
    assert "decodeURIComponent" in script       # asv asks for graphs/cpu-AMD%20EPYC/...


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                            GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"))


def _asv(cwd, *args, timeout=300, home=None, returncodes=(0,)):
    """`asv ARGS` in cwd; home: a HOME of its own (asv keeps ~/.asv-machine.json)."""
    env = dict(os.environ) if home is None else dict(os.environ, HOME=str(home))
    done = subprocess.run([sys.executable, "-m", "asv", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, env=env)
    assert done.returncode in returncodes, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_dashboard_of_python_same_runs_renders_offline(tmp_path):
    """The README's path: `asv run --python=same --set-commit-hash` on two commits,
    `asv publish`, offline_dashboard.py; then Chromium, network off, from file://."""
    pytest.importorskip("asv")
    from browser_helpers import browser
    browser()                                          # skips without Chromium
    dashboard = _load_dashboard()
    try:
        vendor = dashboard.vendor_files()
    except RuntimeError as exc:
        pytest.skip(f"the dashboard's libraries cannot be fetched here: {exc}")

    repo = tmp_path / "project"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "asv.conf.json").write_text(json.dumps({
        "version": 1, "project": "scratch", "repo": "..", "branches": ["main"],
        "environment_type": "existing", "benchmark_dir": ".", "results_dir": "results",
        "html_dir": "html"}))
    home = tmp_path / "home"
    home.mkdir()
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / ".gitignore").write_text("benchmarks/results/\nbenchmarks/html/\n")
    _git(repo, "init", "-q", "-b", "main")
    _asv(repo / "benchmarks", "machine", "--yes", "--machine", "box", home=home)
    for value in (1.0, 2.0):
        (repo / "benchmarks" / "bench_scratch.py").write_text(
            f"def track_ratio():\n    return {value}\ntrack_ratio.unit = 'ratio'\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"value {value}")
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, text=True,
                              capture_output=True, check=True).stdout.strip()
        out = _asv(repo / "benchmarks", "run", "--python=same", "--quick",
                   "--set-commit-hash", head, "--machine", "box", home=home)
        assert "track_ratio" in out
    assert len(list((repo / "benchmarks" / "results" / "box").glob("*-existing-*.json"))) \
        == 2
    _asv(repo / "benchmarks", "publish", home=home)
    html = repo / "benchmarks" / "html"
    assert dashboard.make_offline(html, cache=vendor) >= 3
    index = (html / "index.html").read_text()
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", index):
        assert not re.search(r"""(src|href)=["'](https?:)?//""", tag), tag

    url = (html / "index.html").resolve().as_uri()
    dom = dump_dom(url)
    assert "external (JavaScript) dependencies" not in dom
    assert "flot-base" in dom                           # the summary grid's plot drawn
    dom = dump_dom(url + "#bench_scratch.track_ratio")
    assert "No data for this combination" not in dom and "flot-base" in dom
    pixels = screenshot(url + "#bench_scratch.track_ratio", str(tmp_path / "graph.png"))
    assert pixels.std() > 0.05                          # a drawn graph, not a blank page


@pytest.mark.skipif(os.environ.get("BNFAST_TEST_ASV_CONTINUOUS") != "1",
                    reason="builds bnfast twice (~5 min): BNFAST_TEST_ASV_CONTINUOUS=1")
@pytest.mark.timeout(1800)  # the item's own mark: the module's 600 s is too short here
def test_asv_continuous_builds_and_compares_two_commits(tmp_path):
    pytest.importorskip("asv")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout of bnfast")
    clone = tmp_path / "bnfast"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    bench, home = clone / "benchmarks", tmp_path / "home"
    home.mkdir()
    _asv(bench, "machine", "--yes", "--machine", "ci", home=home)
    # asv continuous exits 1 when it finds a significant change (with --quick, one
    # sample a side, noise can be one); either way it printed its comparison
    out = _asv(bench, "continuous", "--quick", "--machine", "ci", "HEAD~1", "HEAD", "-b",
               r"BnfastKernels.time_forward_out", timeout=1700, home=home,
               returncodes=(0, 1))
    assert ("BENCHMARKS NOT SIGNIFICANTLY CHANGED" in out
            or "SOME BENCHMARKS HAVE CHANGED SIGNIFICANTLY" in out), out[-3000:]
    results = list((bench / "results" / "ci").glob("*.json"))
    assert len([r for r in results if r.name != "machine.json"]) == 2
    out = _asv(bench, "compare", "--machine", "ci", "HEAD~1", "HEAD", home=home)
    assert "time_forward_out" in out
