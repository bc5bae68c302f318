"""`bnfast COMMAND ...`: finds the subcommand modules of bnfast.cli (those that define
``register``), builds the parser, dispatches.

Exit codes: what the subcommand returns; 2 for usage errors (argparse's convention);
130 after Ctrl-C (SIGINT) or SIGTERM, which every command handles alike: work stops,
local worker processes are stopped, what finished is kept (a sweep's --out file holds
every finished chunk), and the status is 130."""

import argparse
import contextlib
import signal
import sys
import threading

from .. import __version__
from .._registry import collect

__all__ = ["main"]

#: The exit status after Ctrl-C or SIGTERM (128 + SIGINT, the shell's convention).
INTERRUPTED = 130


def build_parser():
    """The argparse parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="bnfast",
        description="Batch normalization numerics, and checks of what the literature "
                    "claims about batch normalization.",
        epilog="Exit status: 0 success (what else a command returns, its help says); 2 "
               "usage errors; 130 after Ctrl-C or SIGTERM (what finished is kept).")
    parser.add_argument("--version", action="version", version=f"bnfast {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in collect(__package__, "register"):
        register(subparsers)
    return parser


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_ctrl_c():
    """SIGTERM raises KeyboardInterrupt for the duration, as Ctrl-C does (the main
    thread only: elsewhere signal handlers cannot be set, and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv=None):
    """Entry point of the `bnfast` console script; returns the exit code (module
    docstring: 130 after Ctrl-C or SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with sigterm_as_ctrl_c():
            return args.run(args)
    except KeyboardInterrupt:
        print(f"bnfast {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
