"""`bnfast audit [STATEMENT] [--exact] [--json] [--seed S] [--instance FILE]
[--no-progress]`: every statement of Santurkar et al. (2018) section 4, and the scale
invariance of BN weights (Arora, Li and Lyu 2019) and the l1 constant (Hoffer et al.
2018), checked (bnfast.claims.audit).

Without --instance: a table, one row per statement and form, with the verdict and, for
the statements that fail, the smallest counterexample the search found (re-checked in
exact arithmetic). With --instance FILE (a .json object or an .npz archive of the
checker's arguments, e.g. h, grad, gamma, beta; hessian for theorem-4-2): the
statement's checks on that instance. Exit codes: 0 done; 2 usage errors and bad
instance files (the message names the field).
"""

import inspect
import json
import math

import numpy as np

from . import _options as options

__all__ = ["register", "run"]


def register(subparsers):
    from ..claims.audit import statements

    names = statements()
    parser = subparsers.add_parser(
        "audit", help="check every statement of Santurkar et al. (2018) section 4, "
                      "the scale invariance of BN weights and the l1 constant",
        description="Checks the statements of section 4 of Santurkar et al. (2018, "
                    "arXiv:1805.11604), the scale invariance of BN weights (Arora, Li "
                    "and Lyu 2019, arXiv:1812.03981) and the l1 batch-norm constant "
                    "(Hoffer et al. 2018, arXiv:1803.01814), in each of their forms, on "
                    "small integer instances: the verdict of each, and the smallest "
                    "counterexample of those that fail, re-checked in exact arithmetic.")
    parser.add_argument("statement", nargs="?", choices=names, metavar="STATEMENT",
                        help="one statement: " + ", ".join(names) + " (default: all)")
    options.add_exact(parser)
    options.add_json(parser)
    options.add_seed(parser, "the instance search")
    parser.add_argument("--instance", metavar="FILE",
                        help="check STATEMENT on your own instance (.json or .npz)")
    options.add_progress(parser)
    parser.set_defaults(run=run)


def run(args):
    from ..claims import audit

    try:
        seed = options.seed(args)       # checked even where --instance does not use it
    except ValueError as exc:
        return options.fail(args, str(exc))
    if args.instance is not None:
        if args.statement is None:
            return options.fail(args, "--instance needs a STATEMENT")
        try:
            instance = load_instance(args.instance, args.statement, exact=args.exact)
            reports = audit.check_instance(args.statement, instance, exact=args.exact)
        except (ValueError, TypeError, OSError) as exc:
            return options.fail(args, f"{args.instance}: {exc}")
        if args.json:
            rows = [{"statement": r.statement, "form": r.form, **r.to_dict()}
                    for r in reports]
            print(json.dumps({"statement": args.statement, "instance": args.instance,
                              "rows": rows}, indent=2))
        else:
            print(render_instance(reports))
        return 0
    rows = audit.audit(None if args.statement is None else [args.statement],
                       exact=args.exact, seed=seed, progress=not args.no_progress)
    if args.json:
        print(json.dumps({"arithmetic": "exact" if args.exact else "float64",
                          "seed": seed, "rows": [r.to_dict() for r in rows]},
                         indent=2))
    else:
        print(render(rows, args.exact))
    return 0


# ---- instance files ----------------------------------------------------------------

def instance_fields(statement):
    """(required, optional) argument names of the statement's checkers: the instance
    data, i.e. every argument but ``exact``, those the row fixes and the keyword-only
    ones (settings of the check, such as Lemma 4.5's cross-check)."""
    from ..claims.audit import rows

    required, optional = [], []
    for row in rows():
        if row.name != statement:
            continue
        fixed = getattr(row.check, "keywords", {})          # a functools.partial's
        checker = getattr(row.check, "func", row.check)
        for p in inspect.signature(checker).parameters.values():
            if (p.name == "exact" or p.name in fixed or p.kind is p.KEYWORD_ONLY
                    or p.name in required + optional):
                continue
            (required if p.default is inspect.Parameter.empty else optional).append(p.name)
    return required, optional


def load_instance(path, statement, exact=False):
    """The checker arguments in a .json object or an .npz archive; ValueError saying
    what is wrong with the file (not the format its name says, damaged) or naming the
    field that is missing, unknown, not numeric or out of range. exact: JSON integers
    are kept exactly (any size), for the exact checkers; otherwise every field must fit
    in float64. OSError when the file cannot be read."""
    required, optional = instance_fields(statement)
    if path.endswith(".npz"):
        data = _read_npz(path)
    elif path.endswith(".json"):
        data = {name: _json_field(name, value, exact)
                for name, value in _read_json(path).items()}
    else:
        raise ValueError("the instance file must end in .json or .npz")
    missing = [f for f in required if f not in data]
    if missing:
        raise ValueError(f"field {missing[0]!r} is missing ({statement} needs "
                         f"{', '.join(required)}; optional: {', '.join(optional)})")
    unknown = [f for f in data if f not in required + optional]
    if unknown:
        raise ValueError(f"field {unknown[0]!r} is not an argument of {statement} "
                         f"(fields: {', '.join(required + optional)})")
    out = {}
    for name, value in data.items():
        array = np.asarray(value)
        if array.dtype.kind not in "iuf" and not (exact and array.dtype == object):
            raise ValueError(f"field {name!r} must hold numbers, got {value!r:.60}")
        out[name] = array if array.ndim else array[()]
    return out


#: How the files start: a zip archive (.npz), a single .npy array.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


def _what_it_is(head):
    """What a file that is not what its suffix says looks like, from its first bytes."""
    if not head:
        return "the file is empty"
    if head.startswith(_ZIP_MAGIC):
        return "it is a zip archive (an .npz archive? name it .npz)"
    if head.startswith(_NPY_MAGIC):
        return "it is a single .npy array, not an archive of named fields (np.savez)"
    if head.lstrip()[:1] in (b"{", b"["):
        return "it looks like JSON (name it .json)"
    return "it starts with " + repr(head[:16])


def _read_npz(path):
    """The arrays of an .npz archive by name; ValueError when the file is not a zip
    archive of .npy arrays, is truncated or damaged, or holds object arrays."""
    import zipfile
    import zlib

    data, name = {}, None
    # Opened here (np.load leaves its own handle open when the archive is damaged).
    with open(path, "rb") as fh:
        head = fh.read(16)
        if not head.startswith(_ZIP_MAGIC):
            raise ValueError(f"not an .npz archive: {_what_it_is(head)}")
        fh.seek(0)
        try:
            with np.load(fh, allow_pickle=False) as archive:
                for name in archive.files:
                    data[name] = archive[name]
        except ValueError as exc:
            if name is not None and "allow_pickle" in str(exc):
                raise ValueError(f"field {name!r} holds Python objects (it would need "
                                 "pickle, which bnfast does not load): save arrays of "
                                 "numbers") from None
            raise ValueError(_damaged(name, exc)) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as exc:
            raise ValueError(_damaged(name, exc)) from None
    return data


def _damaged(name, exc):
    where = "" if name is None else f" (at field {name!r})"
    return f"the .npz archive is truncated or damaged{where}: {exc}"


class _BeyondFloat(str):
    """A JSON number literal whose value is beyond the float64 range (e.g. 1e400)."""


def _json_float(text):
    value = float(text)
    return value if np.isfinite(value) else _BeyondFloat(text)


def _read_json(path):
    """The JSON object of the file (a dict); ValueError when it is not valid JSON or
    not one object."""
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        data = json.loads(raw, parse_float=_json_float)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        hint = "" if raw.lstrip()[:1] in (b"{", b"[") else f"; {_what_it_is(raw[:16])}"
        raise ValueError(f"not valid JSON ({exc}{hint})") from None
    if not isinstance(data, dict):
        raise ValueError("the JSON file must hold one object of named fields")
    return data


def _json_field(name, value, exact):
    """A JSON field as an array of numbers (its entries: ints and floats, no bools):
    float64, or with ``exact`` an object array of the entries as they are (ints of any
    size exactly; the exact checkers read floats at their binary value); ValueError
    naming the field otherwise."""
    try:
        array = np.array(value, dtype=object)
    except ValueError:
        raise ValueError(f"field {name!r} is not a rectangular array of numbers (its "
                         "rows differ in length)") from None
    for entry in array.flat:
        if isinstance(entry, _BeyondFloat):
            raise ValueError(f"field {name!r} holds {entry}, beyond the float64 range "
                             "(about 1.8e308); an integer written out in full is taken "
                             "exactly with --exact")
        if isinstance(entry, (list, dict)):
            raise ValueError(f"field {name!r} is not a rectangular array of numbers "
                             f"(rows of different lengths or nested objects), got "
                             f"{value!r:.60}")
        if isinstance(entry, bool) or not isinstance(entry, (int, float)):
            raise ValueError(f"field {name!r} must hold numbers, got {value!r:.60}")
        if not exact and isinstance(entry, int) and abs(entry) > _FLOAT_MAX:
            raise ValueError(f"field {name!r} holds an integer of {len(str(abs(entry)))} "
                             "digits, beyond the float64 range (about 1.8e308): pass "
                             "--exact to check it exactly")
    return array if exact else array.astype(np.float64)


_FLOAT_MAX = float(np.finfo(np.float64).max)


# ---- the text --------------------------------------------------------------------

def _short(x):
    """An exact number as it is when short, else its value to 6 digits (evaluated by
    sympy: an exact 1e-800 is not 0, nor 1e800 inf); floats to 6 digits."""
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6g}"
    text = str(x)
    if len(text) <= 18:
        return text
    value = float(x)
    if value != 0 and math.isfinite(value):
        return f"{value:.6g}"
    import sympy
    return str(sympy.N(x, 6))


def _instance_text(instance):
    def entry(v):
        v = np.asarray(v)
        return str(v.tolist()).replace(" ", "")
    return " ".join(f"{k}={entry(v)}" for k, v in instance.items())


def render(rows, exact):
    """The audit table."""
    from ..claims.counterexample import BOUND

    lines = ["bnfast audit: Santurkar et al. (2018), 'How does batch normalization help",
             "optimization?', section 4; scale invariance of BN weights (Arora, Li and",
             "Lyu 2019); the l1 batch-norm constant (Hoffer et al. 2018); on small",
             f"integer instances (entries in [-{BOUND}, {BOUND}], m = 2..6 samples); "
             "failures",
             "re-checked in exact arithmetic and shrunk",
             "arithmetic of the search: " + ("exact (sympy)" if exact else "float64"), ""]
    head = f"{'statement':<16} {'form':<12} {'verdict':<9} {'checked':>7}  evidence"
    lines += [head, "-" * len(head)]
    for r in rows:
        if r.counterexample is not None:
            evidence = (f"lhs {_short(r.lhs)} {_VIOLATED[r.relation]} rhs {_short(r.rhs)} at "
                        + _instance_text(r.counterexample.instance))
            if getattr(r.report, "hypothesis_met", None) is not None:
                evidence += (" (hypothesis met)" if r.report.hypothesis_met
                             else " (formal hypothesis not met)")
        elif r.verdict == "identity":
            evidence = "lhs = rhs on every instance (gap " + (
                "exactly 0)" if exact else "0 to rounding)")
        else:
            evidence = f"lhs <= rhs on every instance (last: {_short(r.gap)} to spare)"
        verdict = {"fails": "FAILS", "holds": "holds", "identity": "identity"}[r.verdict]
        lines.append(f"{r.statement:<16} {r.form:<12} {verdict:<9} {r.instances:>7}  "
                     f"{evidence}")
        lines += [f"{'':<49}{note}" for note in r.notes]
    lines += ["", "checked: instances checked (for a failing row: drawn until the first "
              "failure).", "Derivations: docs/math/santurkar_section_4.md, "
              "docs/math/lemma_4_5.md,", "docs/math/scale_invariance.md and "
              "docs/math/l1_constant.md."]
    return "\n".join(lines)


#: How a failing row shows its two sides: an inequality lhs <= rhs fails with
#: lhs > rhs, an equality with lhs != rhs.
_VIOLATED = {"<=": ">", "=": "!="}


def render_instance(reports):
    """The checks of one user instance."""
    lines = []
    for r in reports:
        verdict = {True: "holds", False: "FAILS", None: "no verdict"}[r.holds]
        lines += [f"{r.statement} ({getattr(r, 'form', 'printed')}): {verdict}",
                  f"  lhs = {_short(r.lhs)}", f"  rhs = {_short(r.rhs)}"]
        note = getattr(r, "note", "")
        if note:
            lines.append(f"  {note}")
    return "\n".join(lines)
