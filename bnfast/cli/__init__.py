"""The `bnfast` command line (`python -m bnfast` is the same).

One module per subcommand (verify.py, ...). Each registers itself: it defines
``register(subparsers)``, which adds its parser and sets ``run`` (a function of the
parsed arguments returning the exit code). main.py only builds the parser from the
modules it finds here and dispatches; _options.py builds the options several
subcommands share. Library code never imports this package.
"""

from .main import main

__all__ = ["main"]
