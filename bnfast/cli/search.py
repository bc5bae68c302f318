"""`bnfast search STATEMENT [--instances N] [--samples M] [--seed S] [--scheduler ADDR]
[--out FILE] [--resume] [--plot PATH] [--json] [--no-progress]` and the
statement's own options (lemma-4-5: --data NAME, --dim D; theorem-4-4: --lam L): how
often a statement fails over random instances, every counterexample certified exactly
(bnfast.search; docs/math/search.md). The statements, their options and their reports
come from the sweeps bnfast.search lists (``bnfast.search.sweeps()``).

--overwrite replaces an existing --out or --plot file (refused without it).

Exit codes: 0 the sweep ran; 2 usage errors (bad numbers, unreachable scheduler,
unwritable --out or --plot, an existing --out without --resume or --overwrite, a
--resume file that is not this sweep's); 130 after Ctrl-C or SIGTERM (the --out file
then holds every finished chunk).
"""

import importlib
import json
import sys

from . import _options as options

__all__ = ["register", "render", "run"]

#: How an option's text is read, and what it must be.
_READ = {int: "an integer", float: "a number"}


def _by_sweep(known, text_of):
    """'a: x; b, c: y': each distinct text with the sweeps that have it."""
    names = {}
    for sweep in known.values():
        names.setdefault(text_of(sweep), []).append(sweep.name)
    return "; ".join(f"{', '.join(n)}: {text}" for text, n in names.items())


def _sweep_options(known):
    """{option name: (Option, names of the sweeps that take it)}, first one first."""
    out = {}
    for sweep in known.values():
        for option in sweep.options:
            out.setdefault(option.name, (option, []))[1].append(sweep.name)
    return out


def register(subparsers):
    from ..search import sweeps

    known = sweeps()
    figures = [s.figure.what for s in known.values() if s.figure is not None]
    parser = subparsers.add_parser(
        "search", help="how often a statement about BN fails over many random instances",
        description="Checks a statement over many random instances with the native "
                    "checker, locally or on a Dask cluster, and reports the rate at which "
                    "it holds, the closed form's prediction, a 95% interval and small "
                    "counterexamples certified in exact arithmetic.")
    parser.add_argument("statement", choices=list(known), metavar="STATEMENT",
                        help="the statement: " + ", ".join(known))
    parser.add_argument("--instances", default="1000000", metavar="N",
                        help="instances to check (default 1000000)")
    parser.add_argument("--samples", metavar="M",
                        help="samples per instance (" + _by_sweep(known, lambda s: s.samples)
                        + ")")
    for option, names in _sweep_options(known).values():
        parser.add_argument(f"--{option.name}", metavar=option.metavar,
                            help=f"{', '.join(names)}: {option.help}")
    options.add_seed(parser, "the sweep")
    options.add_scheduler(parser)
    options.add_out(parser, "each finished chunk's aggregates (a Parquet file)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep stored in --out (an existing --out file "
                             "is refused unless --resume continues it or --overwrite "
                             "replaces it)")
    options.add_plot(parser, " or ".join(figures) or "nothing (no sweep has a figure)")
    options.add_json(parser)
    options.add_progress(parser)
    parser.set_defaults(run=run)


def _read(name, parse, text):
    if parse is int:                          # a count: 1e6 as well as 1000000
        return options.integer(text, f"--{name}")
    try:
        return parse(text)
    except ValueError:
        raise ValueError(f"--{name} must be {_READ[parse]}, got {text!r}") from None


def run(args):
    from ..executors import Interrupted
    from ..search import sweeps

    known = sweeps()
    sweep = known[args.statement]
    taken = _sweep_options(known)
    try:
        kwargs = {"instances": _read("instances", int, args.instances)}
        if args.samples is not None:
            kwargs["samples"] = _read("samples", int, args.samples)
        # Every option given is read (a bad number is an error whatever the statement);
        # the sweep gets its own.
        given = {name: _read(name, option.parse, getattr(args, name))
                 for name, (option, _) in taken.items() if getattr(args, name) is not None}
        own = {o.name: given[o.name] for o in sweep.options if o.name in given}
        kwargs.update(own)
        kwargs["seed"] = options.seed(args)
        options.check_out(args)
        if args.plot is not None:
            if sweep.figure is None or not sweep.figure.applies(own):
                raise ValueError("; ".join(s.figure.refusal for s in known.values()
                                           if s.figure is not None)
                                 or "--plot: no sweep has a figure")
            options.check_plot(args)
        client = options.scheduler_client(args)
    except ValueError as exc:
        return options.fail(args, str(exc))
    progress = not args.no_progress
    try:
        result = sweep.run(executor=client, progress=progress, out=args.out,
                           resume=args.resume, overwrite=args.overwrite, **kwargs)
        data = None if args.plot is None else sweep.figure.measure(result, client, progress)
    except (ValueError, TypeError) as exc:
        return options.fail(args, _as_option(str(exc), ["instances", "samples", "seed",
                                                         *taken]))
    except (OSError, ImportError) as exc:
        return options.fail(args, f"--out: {exc}")
    except Interrupted as exc:
        saved = f"; {args.out} holds them" if args.out else ""
        print(f"bnfast search: interrupted; {len(exc.finished)} of {exc.total} chunks had "
              f"finished{saved}", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
    fields = result.to_dict()
    if data is not None:
        fields[sweep.figure.name] = data.to_dict()
    print(json.dumps(fields, indent=2) if args.json else render(result))
    if data is None:
        return 0

    def draw(path):
        name = sweep.figure.name
        module = importlib.import_module(f"..plot.{name}", __package__)
        getattr(module, f"plot_{name}")(path, data)
    return options.write_plot(args, draw, note=sweep.figure.summary(data))


def _as_option(message, names):
    """An argument error of the library, worded with the command's option names."""
    for name in names:
        if message.startswith(f"{name} must"):
            return f"--{message}"
    return message


def render(result):
    """The terminal report of a SearchResult."""
    from ..search import sweeps

    sweep = sweeps()[result.statement]
    s = result.settings
    low, high = result.ci
    lines = [f"{sweep.title} over {result.instances:,} random instances "
             f"({sweep.law(s)})",
             f"  {sweep.premise:<25}{result.premise:,}",
             f"  {sweep.holds:<25}{result.holds:,}  rate {result.rate:.5f}  "
             f"95% interval [{low:.5f}, {high:.5f}]"]
    if result.predicted is not None:
        inside = "inside" if low <= result.predicted <= high else "OUTSIDE"
        lines.append(f"  {'closed form:':<25}{result.predicted:.5f} ({sweep.closed}; "
                     f"{inside} the interval)")
    lines.append(f"  degenerate instances:  {s['degenerate']:,}; decided exactly: "
                 f"{s['decided_exactly']:,}")
    lines.append(f"Counterexamples (certified in exact arithmetic, smallest first): "
                 f"{len(result.counterexamples)}")
    for c in result.counterexamples:
        lines += sweep.example(c)
    lines.append(f"({result.seconds:.1f} s, {_rate(result)} instances/s)")
    return "\n".join(lines)


def _rate(result):
    """Instances per second, "-" for a sweep too quick to time (0.0 s)."""
    if not result.seconds > 0:
        return "-"
    return f"{result.instances / result.seconds:,.0f}"
