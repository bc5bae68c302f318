"""The options several subcommands share, each written once: its flag, metavar and help
(``add_*``), and the rule that reads it. A subcommand that has the option calls the
builder; none writes the flag itself.

    --seed S          add_seed, seed            --json            add_json
    --plot PATH       add_plot, check_plot, write_plot
    --scheduler ADDR  add_scheduler, scheduler_client
    --no-progress     add_progress              --exact           add_exact
    --out FILE        add_out; check_out (a sweep's Parquet file), check_json_out and
                      write_json_out (an experiment's result)
    --overwrite       (with --plot, --out)

A file a command writes (--plot, --out) is checked before any work starts, by one rule
(bnfast._files.check_target): its folder must be writable, and an existing file is
refused unless --overwrite is given (or, for --out, --resume continues it); it is then
written atomically, keeping its permissions and writing through a symbolic link.

``fail`` prints a usage error the way every subcommand does and returns its exit code;
``integer`` reads an integer option's text (a count such as --instances N, --top K),
1e6 as well as 1000000 (the rule: _validate.integer_text).
"""

import sys

from .._validate import integer_text, seed as seed_value

__all__ = ["add_exact", "add_json", "add_out", "add_overwrite", "add_plot",
           "add_progress", "add_scheduler", "add_seed", "check_file", "check_json_out",
           "check_out", "check_plot", "fail", "integer", "scheduler_client", "seed",
           "write_json_out", "write_plot"]


def fail(args, message):
    """Prints "bnfast COMMAND: message" to stderr; returns 2 (a usage error)."""
    print(f"bnfast {args.command}: {message}", file=sys.stderr)
    return 2


def integer(text, flag):
    """The int an option's text names ("1000000", "1e6"; ValueError worded for the user
    otherwise). Its range is the caller's rule."""
    return integer_text(text, flag)


# ---- --seed S ------------------------------------------------------------------------

def add_seed(parser, of):
    """--seed S: the seed ``of`` something (e.g. "the run"), read by ``seed``."""
    parser.add_argument("--seed", default="0", metavar="S",
                        help=f"the seed of {of}, an integer in [0, 2**63) (default 0)")


def seed(args):
    """--seed as an int; ValueError worded for the user (the rule: _validate.seed)."""
    return seed_value(integer(args.seed, "--seed"), "--seed")


# ---- --json ----------------------------------------------------------------------------

def add_json(parser):
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the text, and nothing "
                             "else on stdout")


# ---- --plot PATH ---------------------------------------------------------------------

def add_plot(parser, figure):
    """--plot PATH (and --overwrite): also draw ``figure`` (what it shows, e.g. "the
    loss landscapes")."""
    parser.add_argument("--plot", metavar="PATH",
                        help=f"also draw {figure} to PATH; the suffix names the format "
                             "(.png, .pdf, .svg; needs matplotlib: pip install "
                             "'bnfast[plot]'); an existing file needs --overwrite")
    add_overwrite(parser, "--plot")


def check_plot(args):
    """ValueError when --plot names a format or a file that cannot be written: checked
    before any work (the file rule: ``check_file``)."""
    if args.plot is not None:
        from ..plot.save import figure_format
        try:
            figure_format(args.plot)
        except ValueError as exc:
            raise ValueError(f"--plot: {exc}") from None
        check_file(args, "--plot", args.plot)


def write_plot(args, draw, note=None):
    """Calls draw(path) for --plot PATH and says where the figure went, after ``note``
    (on stderr with --json, so that stdout stays one JSON object); returns the exit
    code: 0, or 2 when matplotlib is missing or the file cannot be written (a file
    that appeared since ``check_plot`` is refused the same way)."""
    try:
        check_file(args, "--plot", args.plot)
    except ValueError as exc:
        return fail(args, str(exc))
    try:
        draw(args.plot)
    except ImportError as exc:
        return fail(args, str(exc))
    except OSError as exc:
        return fail(args, f"cannot write {args.plot}: {exc}")
    _say_written(args, args.plot, note)
    return 0


def _say_written(args, path, note=None):
    """"wrote PATH" (after ``note``): on stderr with --json, so that stdout stays one
    JSON object."""
    said = f"wrote {path}" if note is None else f"{note}; wrote {path}"
    print(said, file=sys.stderr if args.json else sys.stdout)


# ---- --out FILE ---------------------------------------------------------------------

def add_out(parser, what):
    """--out FILE (and --overwrite): the file that keeps ``what`` (a sweep's chunks, an
    experiment's result), one help for every subcommand: each write replaces the file
    atomically, so a failed or interrupted command leaves a complete file
    (``bnfast run ... --json > FILE`` would empty FILE as the run starts)."""
    parser.add_argument("--out", metavar="FILE",
                        help=f"keep {what} in FILE; each write replaces it atomically (an "
                             "interrupted command leaves a complete file), and an "
                             "existing file needs --overwrite")
    add_overwrite(parser, "--out")


def check_json_out(args):
    """ValueError, before any work, when --out FILE.json cannot be written or exists
    without --overwrite (the file rule: ``check_file``)."""
    if args.out is not None:
        check_file(args, "--out", args.out)


def write_json_out(args, fields):
    """Writes ``fields`` to --out FILE.json (atomically) and says so; returns the exit
    code: 0, or 2 when the file cannot be written (or appeared since check_json_out)."""
    import json

    from .._files import replace_atomically
    try:
        check_file(args, "--out", args.out)
        text = json.dumps(fields, indent=2) + "\n"

        def write(tmp):
            with open(tmp, "w") as fh:
                fh.write(text)
        replace_atomically(args.out, write)
    except ValueError as exc:
        return fail(args, str(exc))
    except OSError as exc:
        return fail(args, f"cannot write {args.out}: {exc}")
    _say_written(args, args.out)
    return 0


# ---- --scheduler ADDR ----------------------------------------------------------------

def add_scheduler(parser):
    parser.add_argument("--scheduler", metavar="ADDR",
                        help="run the tasks on the Dask cluster whose scheduler is at ADDR "
                             "(tcp://HOST:PORT; needs pip install 'bnfast[dask]'); "
                             "default: local worker processes")


def scheduler_client(args):
    """None without --scheduler, else a dask.distributed.Client connected to it;
    ValueError with the message for the user when that fails (bad address, no dask,
    no scheduler answering)."""
    if args.scheduler is None:
        return None
    from ..executors import connect
    try:
        return connect(args.scheduler)
    except (ValueError, ImportError, OSError) as exc:
        raise ValueError(f"--scheduler: {exc}") from None


# ---- --no-progress, --out, --exact --------------------------------------------------

def add_progress(parser):
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar on stderr")


def check_out(args):
    """ValueError, before any work, when --out cannot be written or exists without
    --resume or --overwrite (the file rule: ``check_file``); --resume needs --out."""
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out (the file to continue)")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the --out file and --overwrite replaces it: "
                         "not both")
    if args.out is not None:
        check_file(args, "--out", args.out, continued=args.resume,
                   hint="pass --resume to continue it or --overwrite to replace it")


# ---- the rule for every file a command writes (--out, --plot) ------------------------

def check_file(args, flag, path, continued=False, hint="pass --overwrite to replace it"):
    """ValueError naming ``flag`` unless ``path`` may be written: its folder exists and
    is writable, it is not a folder, and it does not exist unless --overwrite was
    given or ``continued`` (bnfast._files.check_target, the one rule)."""
    from .._files import check_target
    try:
        check_target(path, flag, overwrite=args.overwrite or continued, exists_hint=hint)
    except OSError as exc:
        raise ValueError(str(exc)) from None


def add_exact(parser):
    parser.add_argument("--exact", action="store_true",
                        help="exact arithmetic (sympy: rationals and radicals) instead of "
                             "float64")


# ---- --overwrite ---------------------------------------------------------------------

def add_overwrite(parser, writes):
    """--overwrite: replace an existing file that the subcommand writes: ``writes`` is
    the option that names it ("--plot", "--out") or the file itself ("PATH.html"); read
    by ``check_file``. Added once per parser; each later option joins its help."""
    what = f"the file given to {writes}" if writes.startswith("--") else writes
    action = parser._option_string_actions.get("--overwrite")
    if action is not None:
        action.help = action.help.replace(" when it exists", f" or to {writes} when it exists")
        return
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} when it exists (default: refuse, before "
                             "any work)")