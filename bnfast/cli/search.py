"""`bnfast search lemma-4-5 [--instances N] [--data D] [--dim D] [--samples M] [--seed S]
[--scheduler ADDR] [--out FILE.parquet] [--resume] [--json]`: how often Lemma 4.5 fails
over random instances, every counterexample certified exactly (bnfast.search;
docs/math/search.md).

Exit codes: 0 the sweep ran; 2 usage errors (bad numbers, unreachable scheduler,
unwritable --out); 130 after Ctrl-C (the --out file then holds every finished chunk).
"""

import json
import sys

__all__ = ["register", "render", "run"]

STATEMENTS = ("lemma-4-5",)


def register(subparsers):
    parser = subparsers.add_parser(
        "search", help="how often a statement about BN fails over many random instances",
        description="Checks a statement over many random instances with the native "
                    "checker, locally or on a Dask cluster, and reports the rate at which "
                    "it holds, the closed form's prediction, a 95%% interval and small "
                    "counterexamples certified in exact arithmetic.")
    parser.add_argument("statement", choices=STATEMENTS, metavar="STATEMENT",
                        help="the statement: " + ", ".join(STATEMENTS))
    parser.add_argument("--instances", default="1000000", metavar="N",
                        help="instances to check (default 1000000)")
    parser.add_argument("--data", default="random", metavar="D",
                        help="'random' (X, y with N(0, 1) entries per instance) or "
                             "'example-3-2' (Dannemann & Junike's data); default random")
    parser.add_argument("--dim", default="2", metavar="D", help="inputs per sample (default 2)")
    parser.add_argument("--samples", default="3", metavar="M",
                        help="samples per instance, >= dim + 1 (default 3)")
    parser.add_argument("--seed", default="0", metavar="S", help="the sweep's seed (default 0)")
    parser.add_argument("--scheduler", metavar="ADDR",
                        help="run the chunks on the Dask cluster at ADDR (tcp://HOST:PORT)")
    parser.add_argument("--out", metavar="FILE.parquet",
                        help="keep each finished chunk's aggregates in this Parquet file")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep stored in --out")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object and nothing else on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def _fail(message):
    print(f"bnfast search: {message}", file=sys.stderr)
    return 2


def _int(text, name):
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"--{name} must be an integer, got {text!r}") from None


def run(args):
    from ..executors import Interrupted
    from ._scheduler import scheduler_client
    from ..search import lemma_4_5

    try:
        numbers = {name: _int(getattr(args, name), name)
                   for name in ("instances", "dim", "samples", "seed")}
        if args.resume and args.out is None:
            raise ValueError("--resume needs --out (the file to continue)")
    except ValueError as exc:
        return _fail(str(exc))
    try:
        client = scheduler_client(args.scheduler)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        result = lemma_4_5(numbers["instances"], data=args.data, dim=numbers["dim"],
                           samples=numbers["samples"], seed=numbers["seed"],
                           executor=client, progress=not args.no_progress, out=args.out,
                           resume=args.resume)
    except (ValueError, TypeError) as exc:
        return _fail(str(exc).replace("instances must", "--instances must")
                     .replace("dim must", "--dim must").replace("samples must", "--samples must")
                     .replace("seed must", "--seed must"))
    except (OSError, ImportError) as exc:
        return _fail(f"--out: {exc}")
    except Interrupted as exc:
        saved = f"; {args.out} holds them" if args.out else ""
        print(f"bnfast search: interrupted; {len(exc.finished)} of {exc.total} chunks had "
              f"finished{saved}", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
    print(json.dumps(result.to_dict(), indent=2) if args.json else render(result))
    return 0


def render(result):
    """The terminal report of a SearchResult."""
    s = result.settings
    low, high = result.ci
    lines = [f"Lemma 4.5 of Santurkar et al. (2018) over {result.instances:,} random "
             f"instances (data {s['data']}, dim {s['dim']}, samples {s['samples']}, "
             f"seed {s['seed']}; w0 ~ N(0, I))",
             f"  premise <w0, W*> > 0:  {result.premise:,} instances",
             f"  (1) holds:             {result.holds:,}  rate {result.rate:.5f}  "
             f"95% interval [{low:.5f}, {high:.5f}]"]
    if result.predicted is not None:
        inside = "inside" if low <= result.predicted <= high else "OUTSIDE"
        lines.append(f"  closed form:           {result.predicted:.5f} (mean of 1/2 - "
                     f"theta/(2 pi) over the data sets; {inside} the interval)")
    lines.append(f"  degenerate instances:  {s['degenerate']:,}; decided exactly: "
                 f"{s['decided_exactly']:,}")
    lines.append(f"Counterexamples (certified in exact arithmetic, smallest first): "
                 f"{len(result.counterexamples)}")
    for c in result.counterexamples:
        data = "" if "X" not in c else f"  X = {c['X']}  y = {c['y']}"
        lines.append(f"  w0 = {c['w0']}{data}")
        lines.append(f"      ||W0 - What*||^2 = {c['lhs']}  >  {c['rhs']} = right side of (1)")
    lines.append(f"({result.seconds:.1f} s, {result.instances / result.seconds:,.0f} "
                 "instances/s)")
    return "\n".join(lines)
