"""`bnfast run NAME [--quick] [--json] [--plot PATH] [--seed N] [--scheduler ADDR]` and
`bnfast run --list`: one empirical claim about BN as an experiment with a verdict
(docs/experiments/README.md; bnfast.experiments).

Exit codes: 0 the experiment ran (whatever its verdict); 2 usage errors (unknown name,
bad seed, unreachable scheduler, unwritable figure); 130 after Ctrl-C.
"""

import json
import sys
import textwrap

__all__ = ["register", "render", "run"]


def register(subparsers):
    parser = subparsers.add_parser(
        "run", help="run one experiment on an empirical claim about BN, with a verdict",
        description="Runs one experiment that settles an empirical claim about batch "
                    "normalization and prints the claim, what was measured and a verdict "
                    "decided by a rule fixed in advance. `bnfast run --list` lists them.")
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="the experiment (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments")
    parser.add_argument("--quick", action="store_true",
                        help="the reduced set-up (under a minute; same code as the full run)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (experiment, claim, source, verdict, "
                             "rule, settings, measurements, seconds) and nothing else on "
                             "stdout")
    parser.add_argument("--plot", metavar="PATH",
                        help="also draw the experiment's figure to PATH (.png, .pdf, .svg; "
                             "needs matplotlib: pip install 'bnfast[plot]')")
    parser.add_argument("--seed", default="0", metavar="N",
                        help="the run's seed, an integer >= 0 (default 0)")
    parser.add_argument("--scheduler", metavar="ADDR",
                        help="run the grid on the Dask cluster whose scheduler is at ADDR "
                             "(tcp://HOST:PORT; needs pip install 'bnfast[dask]'); default: "
                             "local worker processes")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar on stderr")
    parser.set_defaults(run=run)


def _fail(message):
    print(f"bnfast run: {message}", file=sys.stderr)
    return 2


def _seed(text):
    try:
        seed = int(text, 10)
    except ValueError:
        raise ValueError(f"--seed must be an integer >= 0, got {text!r}") from None
    if not 0 <= seed < 2**63:
        raise ValueError(f"--seed must be in [0, 2**63), got {seed}")
    return seed


def run(args):
    from .. import experiments
    from ..executors import Interrupted
    from ._scheduler import scheduler_client

    if args.list:
        for name in experiments.NAMES:
            spec = experiments.experiment(name)
            print(f"{name:<11} {spec.source}")
        return 0
    if args.name is None:
        return _fail("name an experiment (one of: " + ", ".join(experiments.NAMES) +
                     "), or use --list")
    try:
        experiments.experiment(args.name)
        seed = _seed(args.seed)
        if args.plot is not None:
            from ..plot.save import figure_format
            figure_format(args.plot)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        client = scheduler_client(args.scheduler)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        result = experiments.run(args.name, quick=args.quick, seed=seed, executor=client,
                                 progress=not args.no_progress)
    except Interrupted as exc:
        print(f"bnfast run {args.name}: interrupted; {len(exc.finished)} of {exc.total} "
              "runs had finished (no verdict from a partial grid)", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render(result))
    if args.plot is not None:
        try:
            from ..plot.experiments import plot_experiment
            plot_experiment(result, args.plot)
        except ImportError as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(f"cannot write {args.plot}: {exc}")
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _wrap(text, indent="  "):
    return textwrap.fill(" ".join(str(text).split()), width=88, initial_indent=indent,
                         subsequent_indent=indent)


def _number(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return str(value)


def render(result):
    """The terminal report of an ExperimentResult."""
    spec_lines = [f"{k} = {_number(v)}" for k, v in result.settings.items()
                  if k != "reduced" and not isinstance(v, dict)]
    lines = [f"Experiment {result.name}" + (" (quick)" if result.settings.get("quick")
                                            else ""),
             "Claim:", _wrap(f'"{result.claim}"'), _wrap(f"-- {result.source}"),
             "Set-up:", _wrap("; ".join(spec_lines))]
    reduced = result.settings.get("reduced") or []
    if reduced:
        lines.append("Reduced relative to the paper:")
        lines += [_wrap(f"- {item}") for item in reduced]
    from ..experiments import experiment
    lines.append("Measured:")
    lines += ["  " + line for line in experiment(result.name).summary(result.measurements)]
    lines += ["Rule:", _wrap(result.rule)]
    inputs = ", ".join(f"{k} = {_number(v)}"
                       for k, v in result.measurements["verdict_inputs"].items())
    lines.append(f"Verdict: {result.verdict} ({inputs})")
    lines.append(f"({result.seconds:.1f} s)")
    return "\n".join(lines)
