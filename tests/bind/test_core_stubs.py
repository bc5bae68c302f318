"""bnfast/_core.pyi against the built module: the same public names, and for every
function and method the same parameter names as pybind11's own signature line."""

import ast
import importlib.resources
import re

import pytest

from bnfast import _core

STUB = ast.parse((importlib.resources.files("bnfast") / "_core.pyi").read_text())


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _stub_defs(body):
    """{name: node} of the functions, classes and annotated names of a stub body."""
    out = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def _stub_params(fn):
    args = fn.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return [n for n in names if n != "self"]


def _runtime_params(obj, name):
    """Parameter names from the first line of pybind11's docstring, 'name(a: T, ...) -> R'."""
    first = (obj.__doc__ or "").splitlines()[0]
    match = re.match(rf"{re.escape(name)}\((.*)\)( -> .*)?$", first)
    assert match, f"no pybind11 signature line for {name}: {first!r}"
    params = [p.split(":")[0].strip() for p in re.split(r",\s*(?![^\[]*\])", match.group(1))
              if p.strip()]
    return [p for p in params if p not in ("self", "*")]


STUB_DEFS = _stub_defs(STUB.body)
TYPE_ALIASES = {n for n, node in STUB_DEFS.items() if n.startswith("_")}


def test_the_stub_and_the_module_name_the_same_things():
    runtime = _public(vars(_core))
    stub = _public(STUB_DEFS) - TYPE_ALIASES
    assert runtime - stub == set(), "in the module, missing from _core.pyi"
    assert stub - runtime == set(), "in _core.pyi, not in the module"


FUNCTIONS = [n for n, node in STUB_DEFS.items() if isinstance(node, ast.FunctionDef)]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_parameters(name):
    assert _stub_params(STUB_DEFS[name]) == _runtime_params(getattr(_core, name), name)


CLASSES = [n for n, node in STUB_DEFS.items()
           if isinstance(node, ast.ClassDef) and n not in TYPE_ALIASES]


@pytest.mark.parametrize("name", CLASSES)
def test_class_members(name):
    cls = getattr(_core, name)
    members = {}
    for base in STUB_DEFS[name].bases:      # stub-only bases such as _Enum
        if base.id in TYPE_ALIASES:
            members.update(_stub_defs(STUB_DEFS[base.id].body))
    members.update(_stub_defs(STUB_DEFS[name].body))
    if issubclass(cls, Exception):
        return
    assert _public(members) == _public(dir(cls))
    for member, node in members.items():
        if isinstance(node, ast.FunctionDef) and not any(
                isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list):
            if member.startswith("__") and member != "__init__":
                continue
            if name == "TrainOutcome" and member == "__init__":
                continue  # not constructible from Python: pybind11 gives no signature
            assert _stub_params(node) == _runtime_params(getattr(cls, member), member), member
