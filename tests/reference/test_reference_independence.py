"""bnfast.reference is an independent oracle (docs/design: it imports nothing from
bnfast outside bnfast/reference/): checked statically (an AST scan of its sources) and
by running a copy of it as a top-level package in a Python where bnfast cannot be
imported at all."""

import ast
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np

import bnfast.reference

PACKAGE = pathlib.Path(bnfast.reference.__file__).parent


def _outside(name):
    """Whether an absolute module name is bnfast outside bnfast.reference."""
    return (name == "bnfast" or name.startswith("bnfast.")) and not (
        name == "bnfast.reference" or name.startswith("bnfast.reference."))


def forbidden_imports(source, depth=1):
    """(line, what) for every import in ``source`` that could reach bnfast outside
    bnfast.reference: absolute imports of bnfast.*, relative imports leaving the package
    (level > depth, the file's depth inside it: 1 for reference/x.py), and dynamic
    imports (__import__, importlib.import_module)."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            bad += [(node.lineno, a.name) for a in node.names if _outside(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level > depth or (node.level == 0 and _outside(node.module or "")):
                bad.append((node.lineno, "." * node.level + (node.module or "")))
        elif isinstance(node, ast.Call):
            f = node.func
            name = getattr(f, "id", None) or getattr(f, "attr", None)
            if name in ("__import__", "import_module"):
                bad.append((node.lineno, f"{name}(...)"))
    return bad


def test_no_import_of_bnfast_outside_the_reference():
    files = sorted(PACKAGE.rglob("*.py"))
    names = {f.name for f in files}
    assert {"__init__.py", "_checks.py", "batchnorm.py", "bn_layer.py", "network.py",
            "noise.py", "shuffle.py", "train.py"} <= names
    found = {str(f.relative_to(PACKAGE)): forbidden_imports(
        f.read_text(), len(f.relative_to(PACKAGE).parts)) for f in files}
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_the_scan_reports_each_kind_of_forbidden_import():
    source = ("import bnfast\n"                        # 1
              "import bnfast.nn.layers as L\n"         # 2
              "from bnfast import train\n"             # 3
              "from bnfast.nn import Dense\n"          # 4
              "from ..nn import data\n"                # 5
              "from .. import _core\n"                 # 6
              "import importlib\n"
              "importlib.import_module('bnfast')\n"    # 8
              "__import__('bnfast.nn')\n"              # 9
              "import bnfast.reference.shuffle\n"
              "from bnfast.reference import batchnorm\n"
              "from . import shuffle\n"
              "from .batchnorm import batch_norm\n"
              "import bnfastish, numpy\n")
    assert [line for line, _ in forbidden_imports(source)] == [1, 2, 3, 4, 5, 6, 8, 9]
    assert forbidden_imports("from ..batchnorm import x\n", depth=2) == []


SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])


class NoBnfast:
    '''Refuses bnfast and its submodules, whatever else is on sys.path or sys.meta_path
    (an editable install of bnfast adds a finder of its own).'''

    def find_spec(self, name, path=None, target=None):
        if name == "bnfast" or name.startswith("bnfast."):
            raise ImportError(f"bnfast is not importable in this test ({name})")
        return None


sys.meta_path.insert(0, NoBnfast())
try:
    import bnfast  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("bnfast could still be imported")

import reference

case = json.loads(sys.argv[2])
layers, params, X, y = case["layers"], case["params"], case["X"], case["y"]
y_bn, mean, invstd = reference.batch_norm_forward(X)
run = reference.train(layers, params, X, y, lr=0.1, steps=5, batch_size=2, seed=1)
mean_run = reference.train(layers, params, X, y, lr=0.1, steps=3, loss="mean")
print(json.dumps({
    "loss": reference.network_loss(layers, params, X, y),
    "gradient": reference.network_gradient(layers, params, X, y).tolist(),
    "hvp": reference.network_hvp(layers, params, X, y, params).tolist(),
    "predict": reference.network_predict(layers, params, X[:1], run.running_mean,
                                         run.running_var).tolist(),
    "bn": [y_bn.tolist(), mean.tolist(), invstd.tolist()],
    "train": [run.params.tolist(), run.losses.tolist(), run.steps],
    "running": [[a.tolist() for a in run.running_mean + run.running_var],
                run.batches_seen],
    "mean_run": [mean_run.params.tolist(), mean_run.losses.tolist()],
    "bnfast_modules": sorted(m for m in sys.modules if m.split(".")[0] == "bnfast"),
    "file": reference.__file__,
}))
"""

CASE = {
    "layers": [
        {"in_features": 2, "out_features": 3, "activation": "tanh", "bias": False,
         "batch_norm": {"gamma": 1.0, "beta": 0.0, "trainable": True, "eps": 0.0,
                        "norm": "l2", "momentum": None,
                        "noise": {"n_mu": 0.5, "n_sigma": 1.25, "r_mu": 0.1,
                                  "r_sigma": 0.1}}},
        {"residual": [{"in_features": 3, "out_features": 3, "activation": "tanh",
                       "bias": True, "batch_norm": None}]},
        {"in_features": 3, "out_features": 1, "activation": "sigmoid", "bias": True,
         "batch_norm": {"gamma": [2.0], "beta": 0.5, "trainable": False, "eps": 1e-5}},
    ],
    "params": np.linspace(-1.0, 1.0, 6 + 6 + 12 + 3 + 1).tolist(),
    "X": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]],
    "y": [0.0, 1.0, 1.0, 0.0],
}


def test_a_copy_runs_where_bnfast_cannot_be_imported(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "reference",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # -I: no PYTHONPATH, no user site, neither the script's nor the current directory
    command = [sys.executable, "-I", "-c", SCRIPT, str(tmp_path), json.dumps(CASE)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["bnfast_modules"] == []
    assert pathlib.Path(out["file"]).parent == tmp_path / "reference"
    # the copy computes exactly what the package computes here
    ref = bnfast.reference
    layers, params, X, y = CASE["layers"], CASE["params"], CASE["X"], CASE["y"]
    assert out["loss"] == ref.network_loss(layers, params, X, y)
    assert np.isfinite(out["loss"])
    assert out["gradient"] == ref.network_gradient(layers, params, X, y).tolist()
    assert any(out["gradient"])
    assert out["bn"] == [a.tolist() for a in ref.batch_norm_forward(np.array(X))]
    run = ref.train(layers, params, X, y, lr=0.1, steps=5, batch_size=2, seed=1)
    assert out["train"] == [run.params.tolist(), run.losses.tolist(), 5]
    assert out["running"] == [[a.tolist() for a in run.running_mean + run.running_var], 5]
    assert out["hvp"] == ref.network_hvp(layers, params, X, y, params).tolist()
    assert any(out["hvp"])
    assert out["predict"] == ref.network_predict(layers, params, X[:1], run.running_mean,
                                                 run.running_var).tolist()
    mean_run = ref.train(layers, params, X, y, lr=0.1, steps=3, loss="mean")
    assert out["mean_run"] == [mean_run.params.tolist(), mean_run.losses.tolist()]
