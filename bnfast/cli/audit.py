"""`bnfast audit [STATEMENT] [--exact] [--json] [--seed S] [--instance FILE]`: every
statement of Santurkar et al. (2018) section 4, checked (bnfast.claims.audit).

Without --instance: a table, one row per statement and form, with the verdict and, for
the statements that fail, the smallest counterexample the search found (re-checked in
exact arithmetic). With --instance FILE (a .json object or an .npz archive of the
checker's arguments, e.g. h, grad, gamma, beta; hessian for theorem-4-2): the
statement's checks on that instance. Exit codes: 0 done; 2 usage errors and bad
instance files (the message names the field).
"""

import inspect
import json

import numpy as np

from . import _options as options

__all__ = ["register", "run"]


def register(subparsers):
    from ..claims.audit import statements

    names = statements()
    parser = subparsers.add_parser(
        "audit", help="check every statement of Santurkar et al. (2018) section 4",
        description="Checks the statements of section 4 of Santurkar et al. (2018, "
                    "arXiv:1805.11604), in each of their forms, on small integer "
                    "instances: the verdict of each, and the smallest counterexample of "
                    "those that fail, re-checked in exact arithmetic.")
    parser.add_argument("statement", nargs="?", choices=names, metavar="STATEMENT",
                        help="one statement: " + ", ".join(names) + " (default: all)")
    options.add_exact(parser)
    options.add_json(parser)
    options.add_seed(parser, "the instance search")
    parser.add_argument("--instance", metavar="FILE",
                        help="check STATEMENT on your own instance (.json or .npz)")
    parser.set_defaults(run=run)


def run(args):
    from ..claims import audit

    if args.instance is not None:
        if args.statement is None:
            return options.fail(args, "--instance needs a STATEMENT")
        try:
            instance = load_instance(args.instance, args.statement)
            reports = audit.check_instance(args.statement, instance, exact=args.exact)
        except (ValueError, TypeError, OSError) as exc:
            return options.fail(args, f"{args.instance}: {exc}")
        if args.json:
            print(json.dumps({"statement": args.statement, "instance": args.instance,
                              "rows": [r.to_dict() for r in reports]}, indent=2))
        else:
            print(render_instance(reports))
        return 0
    try:
        seed = options.seed(args)
    except ValueError as exc:
        return options.fail(args, str(exc))
    rows = audit.audit(None if args.statement is None else [args.statement],
                       exact=args.exact, seed=seed)
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


def load_instance(path, statement):
    """The checker arguments in a .json object or an .npz archive; ValueError naming
    the field that is missing, unknown or not numeric."""
    required, optional = instance_fields(statement)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            data = {k: archive[k] for k in archive.files}
    elif path.endswith(".json"):
        with open(path) as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("the JSON file must hold one object of named fields")
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
        if array.dtype.kind not in "iuf":
            raise ValueError(f"field {name!r} must hold numbers, got {value!r:.60}")
        out[name] = array if array.ndim else array[()]
    return out


# ---- the text --------------------------------------------------------------------

def _short(x):
    """An exact number as it is when short, else its value; floats to 6 digits."""
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6g}"
    text = str(x)
    return text if len(text) <= 18 else f"{float(x):.6g}"


def _instance_text(instance):
    def entry(v):
        v = np.asarray(v)
        return str(v.tolist()).replace(" ", "")
    return " ".join(f"{k}={entry(v)}" for k, v in instance.items())


def render(rows, exact):
    """The audit table."""
    from ..claims.counterexample import BOUND

    lines = ["bnfast audit: Santurkar et al. (2018), 'How does batch normalization help",
             f"optimization?', section 4, on small integer instances (entries in [-{BOUND}, "
             f"{BOUND}],",
             "m = 2..6 samples); failures re-checked in exact arithmetic and shrunk",
             "arithmetic of the search: " + ("exact (sympy)" if exact else "float64"), ""]
    head = f"{'statement':<16} {'form':<12} {'verdict':<9} {'checked':>7}  evidence"
    lines += [head, "-" * len(head)]
    for r in rows:
        if r.counterexample is not None:
            evidence = (f"lhs {_short(r.lhs)} > rhs {_short(r.rhs)} at "
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
              "failure).", "Derivations: docs/math/santurkar_section_4.md and "
              "docs/math/lemma_4_5.md."]
    return "\n".join(lines)


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
