"""`bnfast search lemma-4-5 [--instances N] [--data D] [--dim D] [--samples M] [--seed S]
[--scheduler ADDR] [--out FILE.parquet] [--resume] [--json]`, and `bnfast search
theorem-4-1 | theorem-4-4 [--samples M] [--lam L] ...`: how often a statement fails over
random instances, every counterexample certified exactly (bnfast.search;
docs/math/search.md).

Exit codes: 0 the sweep ran; 2 usage errors (bad numbers, unreachable scheduler,
unwritable --out); 130 after Ctrl-C (the --out file then holds every finished chunk).
"""

import json
import sys

__all__ = ["register", "render", "run"]

STATEMENTS = ("lemma-4-5", "theorem-4-1", "theorem-4-4")
#: What each statement says, for the report's first line.
TITLES = {"lemma-4-5": "Lemma 4.5 of Santurkar et al. (2018)",
          "theorem-4-1": "Theorem 4.1 of Santurkar et al. (2018), as printed",
          "theorem-4-4": "Theorem 4.4 of Santurkar et al. (2018), as printed"}


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
                        help="lemma-4-5: 'random' (X, y with N(0, 1) entries per instance) "
                             "or 'example-3-2' (Dannemann & Junike's data); default random")
    parser.add_argument("--dim", default="2", metavar="D",
                        help="lemma-4-5: inputs per sample (default 2)")
    parser.add_argument("--samples", metavar="M",
                        help="samples per instance (lemma-4-5: >= dim + 1, default 3; "
                             "theorems: the batch size, >= 2, default 4)")
    parser.add_argument("--lam", default="1.0", metavar="L",
                        help="theorem-4-4: the bound on ||X|| (default 1)")
    parser.add_argument("--seed", default="0", metavar="S", help="the sweep's seed (default 0)")
    parser.add_argument("--scheduler", metavar="ADDR",
                        help="run the chunks on the Dask cluster at ADDR (tcp://HOST:PORT)")
    parser.add_argument("--out", metavar="FILE.parquet",
                        help="keep each finished chunk's aggregates in this Parquet file")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep stored in --out")
    parser.add_argument("--plot", metavar="PATH",
                        help="lemma-4-5 with random data: also measure the failure law "
                             "per data set (200 data sets x 20,000 w0) and draw measured "
                             "vs predicted rates to PATH (.png, .pdf, .svg)")
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
    from .. import search
    from ..executors import Interrupted
    from ._scheduler import scheduler_client

    lemma = args.statement == "lemma-4-5"
    try:
        if args.samples is None:
            args.samples = "3" if lemma else "4"
        numbers = {name: _int(getattr(args, name), name)
                   for name in ("instances", "dim", "samples", "seed")}
        try:
            lam = float(args.lam)
        except ValueError:
            raise ValueError(f"--lam must be a number, got {args.lam!r}") from None
        if args.resume and args.out is None:
            raise ValueError("--resume needs --out (the file to continue)")
        if args.plot is not None:
            if not lemma or args.data != "random":
                raise ValueError("--plot draws Lemma 4.5's failure law over random data "
                                 "sets: it needs lemma-4-5 with --data random")
            from ..plot.save import figure_format
            figure_format(args.plot)
    except ValueError as exc:
        return _fail(str(exc))
    common = dict(instances=numbers["instances"], samples=numbers["samples"],
                  seed=numbers["seed"], progress=not args.no_progress, out=args.out,
                  resume=args.resume)
    if lemma:
        sweep = lambda client: search.lemma_4_5(data=args.data, dim=numbers["dim"],  # noqa
                                                executor=client, **common)
    elif args.statement == "theorem-4-1":
        sweep = lambda client: search.theorem_4_1(executor=client, **common)  # noqa: E731
    else:
        sweep = lambda client: search.theorem_4_4(lam=lam, executor=client, **common)  # noqa
    try:
        client = scheduler_client(args.scheduler)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        result = sweep(client)
        law = None if args.plot is None else search.failure_law(
            dim=numbers["dim"], samples=numbers["samples"], seed=numbers["seed"],
            executor=client, progress=not args.no_progress)
    except (ValueError, TypeError) as exc:
        return _fail(_as_option(str(exc)))
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
    fields = result.to_dict()
    if law is not None:
        fields["failure_law"] = law.to_dict()
    print(json.dumps(fields, indent=2) if args.json else render(result))
    if law is not None:
        try:
            from ..plot.failure_law import plot_failure_law
            plot_failure_law(args.plot, law)
        except ImportError as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(f"cannot write {args.plot}: {exc}")
        print(f"failure law: {100 * law.inside():.0f}% of {len(law.predicted)} data sets' "
              f"95% intervals contain the closed form; wrote {args.plot}",
              file=sys.stderr if args.json else sys.stdout)
    return 0


def _as_option(message):
    """An argument error of the library, worded with the command's option names."""
    for name in ("instances", "dim", "samples", "seed", "lam", "data"):
        if message.startswith(f"{name} must"):
            return f"--{message}"
    return message


def render(result):
    """The terminal report of a SearchResult."""
    s = result.settings
    low, high = result.ci
    if result.statement == "lemma-4-5":
        law = (f"data {s['data']}, dim {s['dim']}, samples {s['samples']}, seed "
               f"{s['seed']}; w0 ~ N(0, I)")
        premise, holds = "premise <w0, W*> > 0:", "(1) holds:"
        closed = "mean of 1/2 - theta/(2 pi) over the data sets"
    else:
        lam = f", lam {s['lam']:g}" if result.statement == "theorem-4-4" else ""
        law = (f"batch of {s['samples']}{lam}, seed {s['seed']}; h, g ~ N(0, I), gamma 1, "
               "beta 0, eps 0")
        premise, holds = "instances (no premise):", "the bound holds:"
        closed = "it fails whenever <g, hhat> != 0"
    lines = [f"{TITLES[result.statement]} over {result.instances:,} random instances "
             f"({law})",
             f"  {premise:<25}{result.premise:,}",
             f"  {holds:<25}{result.holds:,}  rate {result.rate:.5f}  "
             f"95% interval [{low:.5f}, {high:.5f}]"]
    if result.predicted is not None:
        inside = "inside" if low <= result.predicted <= high else "OUTSIDE"
        lines.append(f"  {'closed form:':<25}{result.predicted:.5f} ({closed}; {inside} "
                     "the interval)")
    lines.append(f"  degenerate instances:  {s['degenerate']:,}; decided exactly: "
                 f"{s['decided_exactly']:,}")
    lines.append(f"Counterexamples (certified in exact arithmetic, smallest first): "
                 f"{len(result.counterexamples)}")
    for c in result.counterexamples:
        if "w0" in c:
            data = "" if "X" not in c else f"  X = {c['X']}  y = {c['y']}"
            lines.append(f"  w0 = {c['w0']}{data}")
            lines.append(f"      ||W0 - What*||^2 = {c['lhs']}  >  {c['rhs']} = right "
                         "side of (1)")
        else:
            lines.append(f"  h = {c['h']}  g = {c['g']}")
            lines.append(f"      left side {c['lhs']}  >  {c['rhs']} = right side")
    lines.append(f"({result.seconds:.1f} s, {result.instances / result.seconds:,.0f} "
                 "instances/s)")
    return "\n".join(lines)
