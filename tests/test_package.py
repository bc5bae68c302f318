"""The package as a user meets it: what `import bnfast` costs and loads, the lazy
subpackages, the version, the message when the source folder shadows the installed
package, and the layering rules of the source tree (csrc/core knows nothing of Python)."""

import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

import bnfast

REPO = pathlib.Path(__file__).resolve().parents[1]


def python(code, cwd=None, flags=()):
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True,
                          text=True, timeout=120, cwd=cwd or tempfile.gettempdir())


def test_import_is_light_and_fast():
    code = ("import sys, time; t = time.perf_counter(); import bnfast; "
            "t = time.perf_counter() - t; "
            "heavy = [m for m in ('sympy', 'matplotlib', 'sklearn', 'distributed', 'tqdm', "
            "'bnfast.claims', 'bnfast.plot', 'bnfast.cli', 'bnfast.reference', "
            "'bnfast.experiments', 'bnfast.executors', 'bnfast.datasets', 'mnist1d') "
            "if m in sys.modules]; "
            "print(t, heavy)")
    runs = []
    for _ in range(5):
        p = python(code)
        assert p.returncode == 0, p.stderr
        seconds, heavy = p.stdout.split(" ", 1)
        assert heavy.strip() == "[]", heavy
        runs.append(float(seconds))
    assert min(runs) < 0.15, runs   # numpy's own import is most of it


def test_subpackages_load_on_first_use():
    p = python("import sys, bnfast; c = bnfast.claims; r = bnfast.reference; "
               "print('bnfast.claims' in sys.modules, c.check_lemma_4_5.__name__, "
               "r.batch_norm.__name__, 'claims' in dir(bnfast))")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True", "check_lemma_4_5", "batch_norm", "True"]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        bnfast.nope  # noqa: B018


def test_version_is_the_package_metadata():
    import importlib.metadata
    assert bnfast.__version__ == importlib.metadata.version("bnfast")
    p = subprocess.run([sys.executable, "-m", "bnfast", "--version"], capture_output=True,
                       text=True, timeout=60, cwd=tempfile.gettempdir())
    assert p.returncode == 0 and p.stdout.strip() == f"bnfast {bnfast.__version__}"


def test_importing_the_source_folder_says_what_to_do(tmp_path):
    """A checkout without a built extension: the message says so instead of 'circular
    import'. -S keeps site-packages (and an editable install's finder) out of the way."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copytree(REPO / "bnfast", tmp_path / "bnfast",
                    ignore=shutil.ignore_patterns("_core.*.so", "_core.*.pyd", "__pycache__"))
    p = python("import bnfast", cwd=tmp_path, flags=("-S",))
    assert p.returncode != 0
    assert "you are importing the source folder" in p.stderr
    assert "pip install -e ." in p.stderr
    assert "circular import" not in p.stderr


def _sources(folder, suffixes):
    return [p for p in (REPO / folder).rglob("*") if p.suffix in suffixes]


def test_the_core_knows_nothing_of_python():
    files = _sources("csrc/core", {".hpp", ".cpp", ".h"})
    assert files
    for path in files:
        text = path.read_text()
        assert not re.search(r'#\s*include\s*[<"](pybind11|Python\.h)', text), path


def test_bindings_are_one_file_per_area():
    files = sorted(p.name for p in _sources("csrc/bind", {".cpp"}))
    assert {"arrays.cpp", "bind_kernels.cpp", "module.cpp"} <= set(files)
    module = (REPO / "csrc/bind/module.cpp").read_text()
    for area in (f for f in files if f.startswith("bind_")):
        assert f"{area[:-4]}(m);" in module, area   # module.cpp only wires the areas


def test_docstrings_cite_only_documents_in_the_repository():
    cited = set()
    for path in _sources("bnfast", {".py", ".pyi"}) + _sources("csrc", {".hpp", ".cpp"}):
        cited |= set(re.findall(r"\b(docs/[\w/.-]+\.md)\b", path.read_text()))
        assert not re.search(r"(?<![/\w])(math|product|reliability|performance|"
                             r"architecture|experiments)\.md", path.read_text()), path
    assert cited
    missing = [c for c in sorted(cited) if not (REPO / c).exists()]
    assert missing == []
